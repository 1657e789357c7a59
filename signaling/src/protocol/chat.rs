//! Text chat as clients see it: who a message is for, and the message itself, as both
//! live `chat` messages and `chat_history` carry it.
//!
//! Text is plain and verbatim: the server never interprets, trims or escapes it, and
//! clients must render it as text, never as markup.

use serde::{Deserialize, Serialize};

/// Longest chat text, in characters (Unicode scalar values, not bytes): a long paragraph,
/// and well inside the frame limit even in four-byte characters.
pub const MAX_CHAT_CHARS: usize = 2000;

/// Who a chat message goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChatScope {
    /// Everyone in the sender's zone (the zone presence is shared with).
    Zone,
    /// Everyone in the world.
    World,
    /// One user, wherever they are in the world (and the sender).
    Direct,
}

/// A person as a chat message names them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatParty {
    /// The user ID (from the join token).
    pub user: String,
    /// The display name when the message was sent.
    pub name: String,
}

/// One chat message, as delivered and as history holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// Unique within the world; sorts by time (`c-` then the time in milliseconds).
    pub id: String,
    pub scope: ChatScope,
    /// The zone's ID, for `zone` messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
    pub from: ChatParty,
    /// The recipient, for `direct` messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<ChatParty>,
    /// Verbatim, as the sender wrote it.
    pub text: String,
    /// When the server took it, in milliseconds since the Unix epoch.
    pub at: i64,
}
