//! Chat history as the server stores it and the page reads it (`GET /api/history`, `GET /api/chat/{id}`).

use serde::{Deserialize, Serialize};

/// Public chats can be read (not changed) by other signed-in users who have the link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Visibility {
    Public,
    Private,
}

impl Visibility {
    pub fn as_str(self) -> &'static str {
        match self {
            Visibility::Public => "public",
            Visibility::Private => "private",
        }
    }

    pub fn parse(s: &str) -> Self {
        if s == "public" { Visibility::Public } else { Visibility::Private }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatSummary {
    pub id: String,
    pub title: String,
    pub visibility: Visibility,
    pub created_at: i64,
    pub updated_at: i64,
}

/// How an answer ended; a stopped or failed answer keeps what it had.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MessageStatus {
    Complete,
    /// Still being written, or cut off (the client went away, the server stopped).
    Incomplete,
    Failed,
}

impl MessageStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            MessageStatus::Complete => "complete",
            MessageStatus::Incomplete => "incomplete",
            MessageStatus::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Self {
        match s {
            "complete" => MessageStatus::Complete,
            "failed" => MessageStatus::Failed,
            _ => MessageStatus::Incomplete,
        }
    }
}

/// One side of an exchange. A user message has `text`; an answer has `items` (its output items as
/// JSON, tool calls and outputs included) and the text the user saw.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredMessage {
    pub id: String,
    pub position: i64,
    pub role: String,
    pub text: String,
    pub items: serde_json::Value,
    pub status: MessageStatus,
    pub error: Option<String>,
    pub trace_id: Option<String>,
    /// The background response that writes it (the page reattaches to it after a reload).
    #[serde(default)]
    pub response_id: Option<String>,
    /// This user's vote on it: true = thumbs up.
    pub vote: Option<bool>,
    pub created_at: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredChat {
    pub chat: ChatSummary,
    /// The chat belongs to the caller (else it is someone's public chat: read only).
    pub owned: bool,
    pub messages: Vec<StoredMessage>,
}

/// A page of the chat list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatPage {
    pub chats: Vec<ChatSummary>,
    /// More chats are older than the last one here (`ending_before` its `updated_at`).
    pub has_more: bool,
}

/// `PATCH /api/chat/{id}`: rename and/or change the visibility.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatUpdate {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub visibility: Option<Visibility>,
}

/// `POST /api/feedback` (the reference's body).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Feedback {
    pub chat_id: String,
    pub message_id: String,
    /// `thumbs_up` or `thumbs_down`.
    pub feedback_type: String,
}
