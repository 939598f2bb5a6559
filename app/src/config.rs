//! What the page needs to know from the server (greeting, who is signed in, which model answers), and
//! the server function that tells it.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

/// The greeting when `CHAT_GREETING` is not set (the reference's).
pub const DEFAULT_GREETING: &str = "What would you like to know?";

/// The suggested prompts of the empty chat (the reference's two).
pub const SUGGESTIONS: [&str; 2] = ["How can you help me?", "Tell me something I might not know"];

/// Server-side settings the UI shows; the server puts them in the Leptos context.
#[derive(Clone, Debug, PartialEq)]
pub struct UiSettings {
    pub greeting: String,
    /// Which back end answers: `local`, `databricks`, `openai`, or `unconfigured`.
    pub backend: String,
    /// The model or serving endpoint name.
    pub model: String,
    /// Chats are saved on the server.
    pub chat_history: bool,
}

/// The signed-in user, as the Databricks Apps proxy forwards them (`X-Forwarded-*`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub email: Option<String>,
    pub name: Option<String>,
    pub preferred_username: Option<String>,
}

impl User {
    /// Reads the forwarded identity headers; empty values count as absent.
    pub fn from_headers<'a>(header: impl Fn(&str) -> Option<&'a str>) -> Self {
        let get = |name: &str| header(name).map(str::trim).filter(|v| !v.is_empty()).map(str::to_string);
        User {
            email: get("x-forwarded-email"),
            name: get("x-forwarded-user"),
            preferred_username: get("x-forwarded-preferred-username"),
        }
    }

    /// The stable identity data is keyed by: the email, else the preferred username, else the user
    /// header. `None` for a request with no forwarded identity (local development).
    pub fn id(&self) -> Option<&str> {
        self.email.as_deref().or(self.preferred_username.as_deref()).or(self.name.as_deref())
    }

    /// How the page names the user.
    pub fn display_name(&self) -> &str {
        self.preferred_username.as_deref().or(self.email.as_deref()).or(self.name.as_deref()).unwrap_or("local user")
    }
}

/// Everything the chat page reads from the server once.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChatConfig {
    pub greeting: String,
    pub suggestions: Vec<String>,
    pub user: User,
    pub backend: String,
    pub model: String,
    /// Chats are kept on the server (else the chat is "Ephemeral").
    pub chat_history: bool,
    /// Thumbs up/down are recorded.
    pub feedback: bool,
}

impl ChatConfig {
    /// The configuration for one request: the server's settings and the user its headers name.
    pub fn new(settings: &UiSettings, user: User) -> Self {
        ChatConfig {
            greeting: settings.greeting.clone(),
            suggestions: SUGGESTIONS.iter().map(|s| s.to_string()).collect(),
            user,
            backend: settings.backend.clone(),
            model: settings.model.clone(),
            chat_history: settings.chat_history,
            feedback: settings.chat_history,
        }
    }

    /// What the page uses if it has nothing better (the chat still works).
    pub fn fallback() -> Self {
        let settings = UiSettings {
            greeting: DEFAULT_GREETING.into(),
            backend: "unknown".into(),
            model: "unknown".into(),
            chat_history: false,
        };
        ChatConfig::new(&settings, User::default())
    }

    /// The page's configuration: computed while the server renders the page and shipped to the browser
    /// with it (no second request, no loading state).
    pub fn for_page() -> Self {
        SharedValue::new(|| {
            #[cfg(feature = "ssr")]
            if let (Some(settings), Some(parts)) = (use_context::<UiSettings>(), use_context::<http::request::Parts>())
            {
                let user = User::from_headers(|name| parts.headers.get(name).and_then(|v| v.to_str().ok()));
                return ChatConfig::new(&settings, user);
            }
            ChatConfig::fallback()
        })
        .into_inner()
    }
}

/// `POST /api/config`: the same configuration, for clients other than the rendered page.
#[server(prefix = "/api", endpoint = "config")]
pub async fn load_chat_config() -> Result<ChatConfig, ServerFnError> {
    let settings = use_context::<UiSettings>().ok_or_else(|| ServerFnError::new("UI settings missing"))?;
    let headers: http::HeaderMap = leptos_axum::extract().await?;
    let user = User::from_headers(|name| headers.get(name).and_then(|v| v.to_str().ok()));
    Ok(ChatConfig::new(&settings, user))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_user_comes_from_forwarded_headers() {
        let headers = [("x-forwarded-email", "ana@example.com"), ("x-forwarded-preferred-username", " ana ")];
        let user = User::from_headers(|n| headers.iter().find(|(k, _)| *k == n).map(|(_, v)| *v));
        assert_eq!(user.id(), Some("ana@example.com"));
        assert_eq!(user.display_name(), "ana");
        let nobody = User::from_headers(|n| (n == "x-forwarded-email").then_some(""));
        assert_eq!(nobody.id(), None);
        assert_eq!(nobody.display_name(), "local user");
    }
}
