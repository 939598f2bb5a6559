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
    /// OAuth scopes the user's token must grant for the tools and MCP servers that act as the user.
    pub user_scopes: Vec<String>,
    /// The app runs behind the Databricks Apps proxy, which forwards the user's token when user
    /// authorization is on: without it, on-behalf-of tools cannot work.
    pub expects_user_token: bool,
}

/// Where the Databricks Apps proxy forwards the signed-in user's token (user authorization).
pub const USER_TOKEN_HEADER: &str = "x-forwarded-access-token";

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

    /// The key a user's data is kept under: the email, lower-cased (the same person whatever case the
    /// proxy sends), else the preferred username, else the user header, each in its own key space
    /// (`username:`, `user:`) so that no header can pose as another user's email. `None` for a
    /// request with no forwarded identity (local development).
    pub fn id(&self) -> Option<String> {
        if let Some(email) = &self.email {
            return Some(email.to_lowercase());
        }
        if let Some(name) = &self.preferred_username {
            return Some(format!("username:{}", name.to_lowercase()));
        }
        self.name.as_ref().map(|user| format!("user:{user}"))
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
    /// On-behalf-of: scopes the signed-in user's token lacks for the tools that act as the user.
    pub user_authorization: UserAuthorization,
}

/// What the tools that act as the signed-in user need from their token, and what it lacks.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserAuthorization {
    pub required_scopes: Vec<String>,
    /// Required scopes the user's token does not grant (all of them when the app gets no token).
    pub missing_scopes: Vec<String>,
    /// The app received no user token (user authorization is off for the app).
    pub no_token: bool,
}

impl UserAuthorization {
    /// Compares what is required with the scopes of the forwarded token (`x-forwarded-access-token`,
    /// a JWT whose `scope` (space-separated) or `scp` (list) claim names them). A required `a.b` is
    /// granted by `a.b` or `a`, anything by `all-apis`. An opaque token cannot be read: nothing is
    /// reported missing then. Without a token, everything is missing where one is expected.
    pub fn check(required: &[String], token: Option<&str>, expects_token: bool) -> Self {
        let mut status = UserAuthorization { required_scopes: required.to_vec(), ..Default::default() };
        if required.is_empty() {
            return status;
        }
        let Some(token) = token.map(str::trim).filter(|t| !t.is_empty()) else {
            if expects_token {
                status.no_token = true;
                status.missing_scopes = required.to_vec();
            }
            return status;
        };
        let Some(granted) = token_scopes(token) else { return status };
        let grants = |scope: &str| {
            let family = scope.split('.').next().unwrap_or(scope);
            granted.iter().any(|g| g == scope || g == family || g == "all-apis")
        };
        status.missing_scopes = required.iter().filter(|s| !grants(s)).cloned().collect();
        status
    }
}

/// The scopes a JWT access token grants, from its payload's `scope` or `scp` claim (the signature
/// is not checked: this only tells the user what to fix; the workspace checks the token). `None`
/// when the token is not a readable JWT.
pub fn token_scopes(token: &str) -> Option<Vec<String>> {
    let payload = token.split('.').nth(1)?;
    let claims: serde_json::Value = serde_json::from_slice(&base64url_decode(payload)?).ok()?;
    let split = |s: &str| s.split_whitespace().map(str::to_string).collect::<Vec<_>>();
    match (claims.get("scope"), claims.get("scp")) {
        (Some(serde_json::Value::String(s)), _) | (_, Some(serde_json::Value::String(s))) => Some(split(s)),
        (_, Some(serde_json::Value::Array(list))) => {
            Some(list.iter().filter_map(|v| v.as_str()).map(str::to_string).collect())
        }
        _ => Some(Vec::new()),
    }
}

/// A JWT segment: base64url, padding optional.
#[cfg(feature = "ssr")]
fn base64url_decode(text: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(text.trim_end_matches('=')).ok()
}

/// Tokens are only read on the server.
#[cfg(not(feature = "ssr"))]
fn base64url_decode(_: &str) -> Option<Vec<u8>> {
    None
}

impl ChatConfig {
    /// The configuration for one request: the server's settings, the user its headers name and the
    /// token the proxy forwarded for them.
    pub fn new(settings: &UiSettings, user: User, user_token: Option<&str>) -> Self {
        ChatConfig {
            user_authorization: UserAuthorization::check(
                &settings.user_scopes,
                user_token,
                settings.expects_user_token,
            ),
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
            user_scopes: Vec::new(),
            expects_user_token: false,
        };
        ChatConfig::new(&settings, User::default(), None)
    }

    /// The page's configuration: computed while the server renders the page and shipped to the browser
    /// with it (no second request, no loading state).
    pub fn for_page() -> Self {
        SharedValue::new(|| {
            #[cfg(feature = "ssr")]
            if let (Some(settings), Some(parts)) = (use_context::<UiSettings>(), use_context::<http::request::Parts>())
            {
                let header = |name: &str| parts.headers.get(name).and_then(|v| std::str::from_utf8(v.as_bytes()).ok());
                return ChatConfig::new(&settings, User::from_headers(header), header(USER_TOKEN_HEADER));
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
    let header = |name: &str| headers.get(name).and_then(|v| std::str::from_utf8(v.as_bytes()).ok());
    Ok(ChatConfig::new(&settings, User::from_headers(header), header(USER_TOKEN_HEADER)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_user_comes_from_forwarded_headers() {
        let headers = [("x-forwarded-email", "ana@example.com"), ("x-forwarded-preferred-username", " ana ")];
        let user = User::from_headers(|n| headers.iter().find(|(k, _)| *k == n).map(|(_, v)| *v));
        assert_eq!(user.id().as_deref(), Some("ana@example.com"));
        let shouting = User::from_headers(|n| (n == "x-forwarded-email").then_some("ANA@Example.COM"));
        assert_eq!(shouting.id(), user.id(), "one user whatever the case");
        // A username that looks like someone's email is not their email.
        let posing = User::from_headers(|n| (n == "x-forwarded-preferred-username").then_some("ana@example.com"));
        assert_eq!(posing.id().as_deref(), Some("username:ana@example.com"));
        assert_eq!(user.display_name(), "ana");
        let nobody = User::from_headers(|n| (n == "x-forwarded-email").then_some(""));
        assert_eq!(nobody.id(), None);
        assert_eq!(nobody.display_name(), "local user");
    }

    /// A JWT with these claims (unsigned: only the payload is read).
    #[cfg(feature = "ssr")]
    fn jwt(claims: &str) -> String {
        use base64::Engine;
        format!("eyJhbGciOiJub25lIn0.{}.sig", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(claims))
    }

    #[cfg(feature = "ssr")]
    #[test]
    fn missing_user_scopes_are_read_from_the_token() {
        let required = vec!["sql".to_string(), "genie".to_string(), "serving.serving-endpoints".to_string()];
        let check = |token: Option<&str>, expects| UserAuthorization::check(&required, token, expects);
        // `scope` as a string; `serving` grants `serving.serving-endpoints`.
        let token = jwt(r#"{"sub":"ana","scope":"offline_access sql serving"}"#);
        assert_eq!(token_scopes(&token).unwrap(), ["offline_access", "sql", "serving"]);
        assert_eq!(check(Some(&token), true).missing_scopes, ["genie"]);
        // `scp` as a list.
        let token = jwt(r#"{"scp":["genie","sql"]}"#);
        assert_eq!(check(Some(&token), true).missing_scopes, ["serving.serving-endpoints"]);
        assert!(check(Some(&jwt(r#"{"scope":"all-apis"}"#)), true).missing_scopes.is_empty());
        // No token: everything is missing behind the Apps proxy, nothing locally.
        let none = check(None, true);
        assert!(none.no_token && none.missing_scopes.len() == 3);
        assert!(check(None, false).missing_scopes.is_empty());
        // An opaque token cannot be read, and nothing is required when no tool acts as the user.
        assert!(check(Some("dapi-opaque"), true).missing_scopes.is_empty());
        assert!(UserAuthorization::check(&[], None, true).missing_scopes.is_empty());
    }
}
