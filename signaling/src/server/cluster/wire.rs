//! What nodes send each other on the cluster's Redis channels, as wire types of its own.
//!
//! The engine's [`Moderation`] and the cluster's [`ClusterRequest`] / [`ClusterReply`]
//! are converted at this edge, so they can change without breaking a cluster where nodes
//! of two versions run side by side (during a rolling upgrade). Every message carries
//! its version in `v`: a node reads the versions it speaks, and a message of another
//! version is reported to the caller (which logs and ignores it), never a crash. A change
//! that an older node would misread gets a new version.
//!
//! Version 1, as JSON: `{"v": 1, "kind": "request", "id", "from", "to", "request"}` and
//! `{"v": 1, "kind": "reply", "id", "reply"}`; requests, replies and actions are objects
//! told apart by their `type`.

use serde::{Deserialize, Serialize};

use super::{ClusterReply, ClusterRequest};
use crate::auth::Role;
use crate::engine::{Moderation, ModerationError, Mute};
use crate::protocol::PersonInfo;

/// The version this node sends, and the only one it reads.
pub const VERSION: u32 = 1;

/// One message between nodes, as this version has it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ClusterMessage {
    /// A request to one node (`to`), or to every node but the sender.
    Request { id: u64, from: String, to: Option<String>, request: WireRequest },
    /// The answer to the sender's request `id`.
    Reply { id: u64, reply: WireReply },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum WireRequest {
    /// In one world (if served there) or in every world.
    Moderate {
        world: Option<String>,
        action: WireAction,
    },
    People,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum WireReply {
    /// For one world: avatars reached. For every world: worlds where someone was reached.
    Moderated {
        reached: u64,
    },
    /// The world could not carry the action out.
    Refused {
        error: WireRefusal,
    },
    People {
        people: Vec<PersonInfo>,
    },
}

/// Why a world could not carry an action out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WireRefusal {
    UnknownZone,
    UnknownSpawn,
    SpawnInZone,
    UnknownMessage,
}

/// A moderation action, as the engine's [`Moderation`] has it in this version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum WireAction {
    Remove {
        user: String,
        banned: bool,
        by: String,
        reason: String,
    },
    SetMute {
        user: String,
        audio: bool,
        video: bool,
        by: String,
        reason: String,
    },
    SetRole {
        user: String,
        admin: bool,
    },
    MoveToSpawn {
        user: String,
        spawn: Option<String>,
        by: String,
        reason: String,
    },
    Notice {
        zone: Option<String>,
        text: String,
        by: String,
    },
    EndMeeting {
        zone: String,
        spawn: Option<String>,
        except: Option<String>,
        by: String,
        reason: String,
    },
    SetZone {
        zone: String,
        locked: bool,
        capacity: Option<u32>,
    },
    ClearZones,
    /// Added within version 1: a node that does not know it ignores the request, and the
    /// admin hears that the world did not answer.
    AllowRecording {
        zone: String,
        allowed: bool,
        by: String,
    },
    /// Added within version 1, as `AllowRecording`.
    EndIngest {
        key: String,
        avatar: Option<u32>,
    },
    /// Added within version 1, as `AllowRecording`.
    CheckStage {
        zone: String,
    },
    /// Added within version 1: a node that does not know it cannot read the request and
    /// ignores it (the periodic mute re-check applies the recorded chat mute later).
    SetChatMute {
        user: String,
        muted: bool,
        by: String,
        reason: String,
    },
    /// Added within version 1: a node that does not know it ignores the request, and the
    /// admin hears that the world did not answer.
    DeleteChat {
        id: String,
    },
}

/// Why a message from another node cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("not a cluster message: {0}")]
    Unreadable(#[source] serde_json::Error),
    #[error("a message of cluster protocol version {0}; this node speaks version {VERSION}")]
    UnknownVersion(u32),
    #[error("a malformed version {VERSION} message: {0}")]
    Malformed(#[source] serde_json::Error),
}

/// The version of a message, read before the rest.
#[derive(Deserialize)]
struct Version {
    v: u32,
}

/// A message as sent: its version first.
#[derive(Serialize)]
struct Versioned<'a> {
    v: u32,
    #[serde(flatten)]
    message: &'a ClusterMessage,
}

/// The text to publish.
pub fn encode(message: &ClusterMessage) -> String {
    // Plain data with string keys: serialising it cannot fail.
    serde_json::to_string(&Versioned { v: VERSION, message }).unwrap_or_default()
}

/// Reads a published message of this node's version.
pub fn decode(text: &str) -> Result<ClusterMessage, WireError> {
    let Version { v } = serde_json::from_str(text).map_err(WireError::Unreadable)?;
    if v != VERSION {
        return Err(WireError::UnknownVersion(v));
    }
    serde_json::from_str(text).map_err(WireError::Malformed)
}

impl From<ClusterRequest> for WireRequest {
    fn from(request: ClusterRequest) -> WireRequest {
        match request {
            ClusterRequest::Moderate { world, action } => WireRequest::Moderate { world, action: action.into() },
            ClusterRequest::People => WireRequest::People,
        }
    }
}

impl From<WireRequest> for ClusterRequest {
    fn from(request: WireRequest) -> ClusterRequest {
        match request {
            WireRequest::Moderate { world, action } => ClusterRequest::Moderate { world, action: action.into() },
            WireRequest::People => ClusterRequest::People,
        }
    }
}

impl From<ClusterReply> for WireReply {
    fn from(reply: ClusterReply) -> WireReply {
        match reply {
            ClusterReply::Moderated(Ok(reached)) => WireReply::Moderated { reached: reached as u64 },
            ClusterReply::Moderated(Err(error)) => WireReply::Refused { error: error.into() },
            ClusterReply::People(people) => WireReply::People { people },
        }
    }
}

impl From<WireReply> for ClusterReply {
    fn from(reply: WireReply) -> ClusterReply {
        match reply {
            WireReply::Moderated { reached } => {
                ClusterReply::Moderated(Ok(usize::try_from(reached).unwrap_or(usize::MAX)))
            }
            WireReply::Refused { error } => ClusterReply::Moderated(Err(error.into())),
            WireReply::People { people } => ClusterReply::People(people),
        }
    }
}

impl From<ModerationError> for WireRefusal {
    fn from(error: ModerationError) -> WireRefusal {
        match error {
            ModerationError::UnknownZone => WireRefusal::UnknownZone,
            ModerationError::UnknownSpawn => WireRefusal::UnknownSpawn,
            ModerationError::SpawnInZone => WireRefusal::SpawnInZone,
            ModerationError::UnknownMessage => WireRefusal::UnknownMessage,
        }
    }
}

impl From<WireRefusal> for ModerationError {
    fn from(error: WireRefusal) -> ModerationError {
        match error {
            WireRefusal::UnknownZone => ModerationError::UnknownZone,
            WireRefusal::UnknownSpawn => ModerationError::UnknownSpawn,
            WireRefusal::SpawnInZone => ModerationError::SpawnInZone,
            WireRefusal::UnknownMessage => ModerationError::UnknownMessage,
        }
    }
}

impl From<Moderation> for WireAction {
    fn from(action: Moderation) -> WireAction {
        match action {
            Moderation::Remove { user, banned, by, reason } => WireAction::Remove { user, banned, by, reason },
            Moderation::SetMute { user, mute: Mute { audio, video }, by, reason } => {
                WireAction::SetMute { user, audio, video, by, reason }
            }
            Moderation::SetRole { user, role } => WireAction::SetRole { user, admin: role == Role::Admin },
            Moderation::MoveToSpawn { user, spawn, by, reason } => WireAction::MoveToSpawn { user, spawn, by, reason },
            Moderation::Notice { zone, text, by } => WireAction::Notice { zone, text, by },
            Moderation::EndMeeting { zone, spawn, except, by, reason } => {
                WireAction::EndMeeting { zone, spawn, except, by, reason }
            }
            Moderation::SetZone { zone, locked, capacity } => WireAction::SetZone { zone, locked, capacity },
            Moderation::ClearZones => WireAction::ClearZones,
            Moderation::AllowRecording { zone, allowed, by } => WireAction::AllowRecording { zone, allowed, by },
            Moderation::EndIngest { key, avatar } => WireAction::EndIngest { key, avatar },
            Moderation::CheckStage { zone } => WireAction::CheckStage { zone },
            Moderation::SetChatMute { user, muted, by, reason } => WireAction::SetChatMute { user, muted, by, reason },
            Moderation::DeleteChat { id } => WireAction::DeleteChat { id },
        }
    }
}

impl From<WireAction> for Moderation {
    fn from(action: WireAction) -> Moderation {
        match action {
            WireAction::Remove { user, banned, by, reason } => Moderation::Remove { user, banned, by, reason },
            WireAction::SetMute { user, audio, video, by, reason } => {
                Moderation::SetMute { user, mute: Mute { audio, video }, by, reason }
            }
            WireAction::SetRole { user, admin } => {
                Moderation::SetRole { user, role: if admin { Role::Admin } else { Role::Member } }
            }
            WireAction::MoveToSpawn { user, spawn, by, reason } => Moderation::MoveToSpawn { user, spawn, by, reason },
            WireAction::Notice { zone, text, by } => Moderation::Notice { zone, text, by },
            WireAction::EndMeeting { zone, spawn, except, by, reason } => {
                Moderation::EndMeeting { zone, spawn, except, by, reason }
            }
            WireAction::SetZone { zone, locked, capacity } => Moderation::SetZone { zone, locked, capacity },
            WireAction::ClearZones => Moderation::ClearZones,
            WireAction::AllowRecording { zone, allowed, by } => Moderation::AllowRecording { zone, allowed, by },
            WireAction::EndIngest { key, avatar } => Moderation::EndIngest { key, avatar },
            WireAction::CheckStage { zone } => Moderation::CheckStage { zone },
            WireAction::SetChatMute { user, muted, by, reason } => Moderation::SetChatMute { user, muted, by, reason },
            WireAction::DeleteChat { id } => Moderation::DeleteChat { id },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn through_the_wire(message: &ClusterMessage) -> ClusterMessage {
        decode(&encode(message)).unwrap()
    }

    #[test]
    fn every_action_crosses_the_wire_unchanged() {
        let by = || "Ada".to_owned();
        let actions = [
            Moderation::Remove { user: "bob".into(), banned: true, by: by(), reason: "spam".into() },
            Moderation::SetMute {
                user: "bob".into(),
                mute: Mute { audio: true, video: false },
                by: by(),
                reason: "".into(),
            },
            Moderation::SetRole { user: "bob".into(), role: Role::Admin },
            Moderation::SetRole { user: "bob".into(), role: Role::Member },
            Moderation::MoveToSpawn { user: "bob".into(), spawn: Some("door".into()), by: by(), reason: "".into() },
            Moderation::Notice { zone: None, text: "Fire drill".into(), by: by() },
            Moderation::EndMeeting {
                zone: "room".into(),
                spawn: None,
                except: Some("ada".into()),
                by: by(),
                reason: "over".into(),
            },
            Moderation::SetZone { zone: "room".into(), locked: true, capacity: Some(4) },
            Moderation::ClearZones,
            Moderation::AllowRecording { zone: "room".into(), allowed: true, by: by() },
            Moderation::EndIngest { key: "k1".into(), avatar: Some(7) },
            Moderation::CheckStage { zone: "stage".into() },
            Moderation::SetChatMute { user: "bob".into(), muted: true, by: by(), reason: "spam".into() },
            Moderation::DeleteChat { id: "c-1764770000123-0000000a0001".into() },
        ];
        for action in actions {
            let request = ClusterRequest::Moderate { world: Some("demo".into()), action: action.clone() };
            let message = ClusterMessage::Request { id: 7, from: "a".into(), to: None, request: request.into() };
            let ClusterMessage::Request { id: 7, request, .. } = through_the_wire(&message) else {
                panic!("not the request sent")
            };
            let ClusterRequest::Moderate { world, action: read } = ClusterRequest::from(request) else {
                panic!("not a moderation request")
            };
            assert_eq!((world.as_deref(), read), (Some("demo"), action));
        }
    }

    #[test]
    fn replies_cross_the_wire_unchanged() {
        let replies = [
            ClusterReply::Moderated(Ok(3)),
            ClusterReply::Moderated(Err(ModerationError::UnknownSpawn)),
            ClusterReply::Moderated(Err(ModerationError::UnknownMessage)),
            ClusterReply::People(Vec::new()),
        ];
        for reply in replies {
            let message = ClusterMessage::Reply { id: 9, reply: reply.clone().into() };
            let ClusterMessage::Reply { id: 9, reply: read } = through_the_wire(&message) else {
                panic!("not the reply sent")
            };
            assert_eq!(ClusterReply::from(read), reply);
        }
    }

    #[test]
    fn a_message_says_its_version_and_kind() {
        let message =
            ClusterMessage::Request { id: 1, from: "a".into(), to: Some("b".into()), request: WireRequest::People };
        let value: serde_json::Value = serde_json::from_str(&encode(&message)).unwrap();
        assert_eq!(
            value,
            serde_json::json!({"v": 1, "kind": "request", "id": 1, "from": "a", "to": "b", "request": {"type": "people"}})
        );
    }

    #[test]
    fn another_version_is_reported_not_misread() {
        let newer = r#"{"v": 2, "kind": "request", "id": 1, "from": "a", "to": null, "request": {"type": "people"}}"#;
        assert!(matches!(decode(newer), Err(WireError::UnknownVersion(2))));
        // A version this node speaks, with a shape it does not know.
        let odd = r#"{"v": 1, "kind": "request", "id": 1, "from": "a", "to": null, "request": {"type": "teleport"}}"#;
        assert!(matches!(decode(odd), Err(WireError::Malformed(_))));
        // No version at all (an older node's message), or no JSON.
        let unversioned = r#"{"id": 1, "from": "a", "to": null, "request": "People"}"#;
        assert!(matches!(decode(unversioned), Err(WireError::Unreadable(_))));
        assert!(matches!(decode("not json"), Err(WireError::Unreadable(_))));
    }
}
