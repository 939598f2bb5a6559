//! The model that judges answers and plays the users of simulated conversations.

use std::sync::Arc;

use crate::llm::{ChatMessage, ChatModel, ChatRequest, UserContent};

/// The model that judges (and plays users): a chat model and its name.
#[derive(Clone)]
pub struct Judge {
    pub model: Arc<dyn ChatModel>,
    pub name: String,
    pub max_tokens: Option<u64>,
}

impl Judge {
    pub async fn ask(&self, system: &str, user: String) -> Result<String, String> {
        let request = ChatRequest {
            model: self.name.clone(),
            messages: vec![
                ChatMessage::System { content: system.into() },
                ChatMessage::User { content: UserContent::Text(user) },
            ],
            temperature: Some(0.0),
            max_tokens: self.max_tokens,
            ..ChatRequest::default()
        };
        crate::llm::complete_text(self.model.as_ref(), request).await.map_err(|e| e.to_string())
    }
}
