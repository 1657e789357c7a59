//! Text chat inside one world: to the sender's zone, to the whole world, or to one user;
//! the recent history of each; an admin's mute and deletions.
//!
//! The engine holds the live history in memory and is the only source of what a client
//! reads: a zone's history goes out right after each `snapshot`, the world's and the
//! user's direct messages after joining, all from the same state that live messages
//! come from. So every message is either in the history a client reads or delivered to
//! it after that history, never lost in between. Persisting is the shell's job: each
//! delivered message comes out as [`Output::StoreChat`], each deletion as
//! [`Output::EraseChat`], and history read back from the database at start goes in
//! through [`WorldEngine::load_chat`]. Nothing here reads a clock: a message's time
//! (`at`, Unix milliseconds) comes from the shell with it.
//!
//! Invariants:
//! - Each history (a zone's, the world's, one user's direct messages sent and received)
//!   holds at most [`CHAT_HISTORY_LEN`] messages, none older than [`CHAT_HISTORY_AGE`]
//!   as of the latest time the engine was given.
//! - A message reaches exactly its audience as it stands when it is sent: the zone's
//!   connected members, everyone connected in the world, or the sender and the
//!   recipient; the sender always gets it back (with its ID and time).
//! - A user whose chat is muted, or a connection no longer in the world (left, kicked,
//!   banned), sends nothing: its messages still queued are dropped.
//! - A deleted message is in no history, and everyone connected who could read it there
//!   is told.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use isoplane_world_format::ZoneIndex;

use super::{ConnId, Output, WorldEngine};
use crate::protocol::{AvatarId, ChatMessage, ChatParty, ChatScope, ErrorCode, MAX_CHAT_CHARS, ServerMessage};

/// Messages each history keeps: a screenful or two of scrollback on joining, bounded so a
/// zone change costs one bounded message whatever has been said there.
pub const CHAT_HISTORY_LEN: usize = 200;

/// How long a message stays in history: a day covers "what did I miss this morning"
/// without the server keeping conversations for good.
pub const CHAT_HISTORY_AGE: Duration = Duration::from_secs(24 * 60 * 60);

const AGE_MS: i64 = CHAT_HISTORY_AGE.as_millis() as i64;

/// How often, in the shell's time, old messages are swept from every history (each
/// history also drops its old messages whenever it is written or read).
const SWEEP_EVERY_MS: i64 = 60 * 60 * 1000;

/// Where a message sits in the log, found by its scope and parties.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shelf<'a> {
    Zone(ZoneIndex),
    World,
    Direct(&'a str),
}

/// A zone's `chat_history` message as sent, kept until the zone's history changes: a
/// zone change costs a copy of it, not an encoding of up to 200 long messages (walking
/// back and forth across a zone's edge must not make the world task work for each step).
#[derive(Debug)]
struct Encoded {
    json: Bytes,
    /// When its oldest message was sent: once that is too old, it is encoded again.
    oldest_at: Option<i64>,
}

/// The chat of one world: every history, and how IDs are made.
#[derive(Debug, Default)]
pub(super) struct ChatLog {
    /// By zone index.
    zones: HashMap<ZoneIndex, VecDeque<Arc<ChatMessage>>>,
    /// Each zone's history as last encoded, while it holds.
    encoded: HashMap<ZoneIndex, Encoded>,
    world: VecDeque<Arc<ChatMessage>>,
    /// By user ID: the messages they sent or received.
    direct: HashMap<String, VecDeque<Arc<ChatMessage>>>,
    /// Set per engine by the shell, so two engines (a restart, a world moving between
    /// nodes) never make the same ID even within one millisecond.
    tag: u32,
    next: u16,
    /// The latest time (Unix ms) the engine was given; history older than a day before
    /// it is gone.
    clock: i64,
    swept_at: i64,
}

fn expired(message: &ChatMessage, clock: i64) -> bool {
    message.at < clock.saturating_sub(AGE_MS)
}

fn trim(shelf: &mut VecDeque<Arc<ChatMessage>>, clock: i64) {
    while shelf.len() > CHAT_HISTORY_LEN || shelf.front().is_some_and(|m| expired(m, clock)) {
        shelf.pop_front();
    }
}

impl ChatLog {
    fn shelf(&mut self, shelf: Shelf<'_>) -> &mut VecDeque<Arc<ChatMessage>> {
        match shelf {
            Shelf::Zone(zone) => self.zones.entry(zone).or_default(),
            Shelf::World => &mut self.world,
            Shelf::Direct(user) => self.direct.entry(user.to_owned()).or_default(),
        }
    }

    /// The world file changed: zone histories follow their zones' new indices (`zones`,
    /// by old index); those of zones that are gone are dropped here (the database keeps
    /// them, by zone ID, until they age out).
    pub(super) fn remap_zones(&mut self, zones: &[Option<ZoneIndex>]) {
        let new_index = |zone: &ZoneIndex| zones.get(usize::from(zone.0)).copied().flatten();
        let histories = std::mem::take(&mut self.zones);
        self.zones = histories.into_iter().filter_map(|(zone, shelf)| Some((new_index(&zone)?, shelf))).collect();
        let encoded = std::mem::take(&mut self.encoded);
        self.encoded = encoded.into_iter().filter_map(|(zone, json)| Some((new_index(&zone)?, json))).collect();
    }

    fn put(&mut self, shelf: Shelf<'_>, message: Arc<ChatMessage>) {
        if let Shelf::Zone(zone) = shelf {
            self.encoded.remove(&zone);
        }
        let clock = self.clock;
        let shelf = self.shelf(shelf);
        shelf.push_back(message);
        trim(shelf, clock);
    }

    /// A history's messages, oldest first, as of the log's clock.
    fn read(&self, shelf: Shelf<'_>) -> Vec<ChatMessage> {
        let messages = match shelf {
            Shelf::Zone(zone) => self.zones.get(&zone),
            Shelf::World => Some(&self.world),
            Shelf::Direct(user) => self.direct.get(user),
        };
        messages.into_iter().flatten().filter(|m| !expired(m, self.clock)).map(|m| ChatMessage::clone(m)).collect()
    }

    /// Moves the clock on; once an hour, drops old messages everywhere (and the direct
    /// histories left empty), so users who never come back do not hold memory.
    fn observe(&mut self, unix_ms: i64) {
        self.clock = self.clock.max(unix_ms);
        if self.clock - self.swept_at < SWEEP_EVERY_MS {
            return;
        }
        self.swept_at = self.clock;
        self.encoded.clear();
        let clock = self.clock;
        self.zones.values_mut().chain(std::iter::once(&mut self.world)).for_each(|s| trim(s, clock));
        self.direct.retain(|_, shelf| {
            trim(shelf, clock);
            !shelf.is_empty()
        });
    }

    fn next_id(&mut self, at: i64) -> String {
        let id = format!("c-{at:013}-{:08x}{:04x}", self.tag, self.next);
        self.next = self.next.wrapping_add(1);
        id
    }

    /// Removes a message from every history holding it; returns it if it was there.
    fn remove(&mut self, id: &str) -> Option<Arc<ChatMessage>> {
        self.encoded.clear();
        let mut found = None;
        let shelves = self.zones.values_mut().chain(std::iter::once(&mut self.world)).chain(self.direct.values_mut());
        for shelf in shelves {
            if let Some(index) = shelf.iter().position(|m| m.id == id) {
                found = shelf.remove(index);
            }
        }
        found
    }
}

/// A server message as sent on the wire.
fn encode(message: &ServerMessage) -> Bytes {
    // Plain data with string keys: serialising it cannot fail.
    Bytes::from(serde_json::to_vec(message).unwrap_or_default())
}

/// Why a `chat_send` is refused before anything is sent, with the text to say so.
fn check(scope: ChatScope, to: Option<&str>, text: &str) -> Result<(), String> {
    if text.trim().is_empty() {
        return Err("a chat message needs some text".into());
    }
    let length = text.chars().count();
    if length > MAX_CHAT_CHARS {
        return Err(format!("a chat message is at most {MAX_CHAT_CHARS} characters; this one has {length}"));
    }
    match (scope, to) {
        (ChatScope::Direct, None) => Err("a direct message needs `to`: the user ID of its recipient".into()),
        (ChatScope::Zone | ChatScope::World, Some(_)) => Err("`to` is only for direct messages".into()),
        _ => Ok(()),
    }
}

impl WorldEngine {
    /// Numbers chat messages with `tag` from now on (the shell gives each engine a random
    /// one; see [`ChatLog`]).
    pub fn tag_chat_ids(&mut self, tag: u32) {
        self.chat.tag = tag;
    }

    /// The history read back from the database (oldest first), instead of what the engine
    /// held: at start, or when this node takes the world over. Zones this world no longer
    /// has are skipped.
    pub fn load_chat(&mut self, messages: Vec<ChatMessage>, unix_ms: i64) {
        let (tag, next) = (self.chat.tag, self.chat.next);
        self.chat = ChatLog { tag, next, ..ChatLog::default() };
        self.chat.observe(unix_ms);
        for message in messages {
            let message = Arc::new(message);
            match message.scope {
                ChatScope::Zone => {
                    let Some(zone) = message.zone.as_deref().and_then(|z| self.world.zone_by_id(z)) else { continue };
                    self.chat.put(Shelf::Zone(zone), message);
                }
                ChatScope::World => self.chat.put(Shelf::World, message),
                ChatScope::Direct => {
                    let to = message.to.as_ref().map(|p| p.user.clone());
                    self.chat.put(Shelf::Direct(&message.from.user), Arc::clone(&message));
                    if let Some(to) = to.filter(|to| *to != message.from.user) {
                        self.chat.put(Shelf::Direct(&to), message);
                    }
                }
            }
        }
    }

    /// The shell's clock (Unix ms), as it was at some input: expiries follow it.
    pub(super) fn observe_unix_ms(&mut self, unix_ms: i64) {
        self.chat.observe(unix_ms);
    }

    /// `chat_send` from `conn`, taken by the shell at `at` (Unix ms): sent to its audience
    /// and kept in history, or refused with a non-closing error.
    pub fn send_chat(&mut self, conn: ConnId, at: i64, scope: ChatScope, to: Option<String>, text: String) {
        // Gone from the world (left, kicked, banned): whatever it still had queued is dropped.
        let Some(&id) = self.by_conn.get(&conn) else { return };
        let Some(sender) = self.avatars.get(&id) else { return };
        if sender.chat_muted {
            return self.error(conn, ErrorCode::ChatMuted);
        }
        if let Err(message) = check(scope, to.as_deref(), &text) {
            return self.send(conn, ServerMessage::Error { code: ErrorCode::ChatInvalid, message });
        }
        let from = ChatParty { user: sender.user.clone(), name: sender.name.clone() };
        let (zone, recipient) = match scope {
            ChatScope::Zone => (Some(sender.zone), None),
            ChatScope::World => (None, None),
            ChatScope::Direct => {
                let found = to.as_deref().and_then(|user| self.by_user.get(user)).and_then(|r| self.avatars.get(r));
                let Some(recipient) = found else { return self.error(conn, ErrorCode::UnknownUser) };
                (None, Some(recipient.id))
            }
        };
        self.observe_unix_ms(at);
        let to = recipient
            .and_then(|r| self.avatars.get(&r))
            .map(|r| ChatParty { user: r.user.clone(), name: r.name.clone() });
        let message = Arc::new(ChatMessage {
            id: self.chat.next_id(at),
            scope,
            zone: zone.map(|z| self.zone_id(z)),
            from,
            to,
            text,
            at,
        });
        let recipients = match (zone, recipient) {
            (Some(zone), _) => {
                self.chat.put(Shelf::Zone(zone), Arc::clone(&message));
                self.zone_conns(zone)
            }
            (None, Some(recipient)) => {
                self.chat.put(Shelf::Direct(&message.from.user), Arc::clone(&message));
                if let Some(to) = message.to.as_ref().filter(|to| to.user != message.from.user) {
                    self.chat.put(Shelf::Direct(&to.user), Arc::clone(&message));
                }
                self.conns_of(&[id, recipient])
            }
            (None, None) => {
                self.chat.put(Shelf::World, Arc::clone(&message));
                self.avatars.values().filter_map(|a| a.conn).collect()
            }
        };
        self.stats.chat_messages += 1;
        let chat = ServerMessage::Chat { message: ChatMessage::clone(&message) };
        self.outputs.push_back(Output::SendMany { recipients, message: chat });
        self.outputs.push_back(Output::StoreChat { message: ChatMessage::clone(&message) });
    }

    /// The connections of `avatars`, once each.
    fn conns_of(&self, avatars: &[AvatarId]) -> Vec<ConnId> {
        let mut conns: Vec<ConnId> =
            avatars.iter().filter_map(|id| self.avatars.get(id).and_then(|a| a.conn)).collect();
        conns.dedup();
        conns
    }

    fn zone_conns(&self, zone: ZoneIndex) -> Vec<ConnId> {
        self.zones[usize::from(zone.0)]
            .members
            .iter()
            .filter_map(|id| self.avatars.get(id).and_then(|a| a.conn))
            .collect()
    }

    /// The zone's history as sent after each snapshot, encoded once for everyone who
    /// enters until it changes.
    pub(super) fn zone_chat_history(&mut self, zone: ZoneIndex) -> Bytes {
        let clock = self.chat.clock;
        if let Some(encoded) = self.chat.encoded.get(&zone)
            && encoded.oldest_at.is_none_or(|at| at >= clock.saturating_sub(AGE_MS))
        {
            return encoded.json.clone();
        }
        let messages = self.chat.read(Shelf::Zone(zone));
        let oldest_at = messages.first().map(|m| m.at);
        let history = ServerMessage::ChatHistory { scope: ChatScope::Zone, zone: Some(self.zone_id(zone)), messages };
        let json = encode(&history);
        self.chat.encoded.insert(zone, Encoded { json: json.clone(), oldest_at });
        json
    }

    /// Every history `conn` may read, encoded: its zone's, the world's, and its direct
    /// messages (after joining, and for a client that fell behind).
    pub fn chat_histories_for(&mut self, conn: ConnId) -> Vec<Bytes> {
        let Some(avatar) = self.by_conn.get(&conn).and_then(|id| self.avatars.get(id)) else { return Vec::new() };
        let (zone, user) = (avatar.zone, avatar.user.clone());
        let world =
            ServerMessage::ChatHistory { scope: ChatScope::World, zone: None, messages: self.chat.read(Shelf::World) };
        let direct = ServerMessage::ChatHistory {
            scope: ChatScope::Direct,
            zone: None,
            messages: self.chat.read(Shelf::Direct(&user)),
        };
        vec![self.zone_chat_history(zone), encode(&world), encode(&direct)]
    }

    /// An admin deleted message `id`: it leaves every history, and everyone connected who
    /// could read it there is told. Returns how many connections were told, or `None`
    /// if no history holds it.
    pub(super) fn delete_chat(&mut self, id: &str) -> Option<usize> {
        let message = self.chat.remove(id)?;
        let recipients = match message.scope {
            ChatScope::Zone => {
                let zone = message.zone.as_deref().and_then(|z| self.world.zone_by_id(z));
                zone.map(|z| self.zone_conns(z)).unwrap_or_default()
            }
            ChatScope::World => self.avatars.values().filter_map(|a| a.conn).collect(),
            ChatScope::Direct => {
                let parties = [Some(&message.from.user), message.to.as_ref().map(|p| &p.user)];
                let avatars: Vec<AvatarId> =
                    parties.into_iter().flatten().filter_map(|user| self.by_user.get(user).copied()).collect();
                self.conns_of(&avatars)
            }
        };
        let told = recipients.len();
        if !recipients.is_empty() {
            let deleted = ServerMessage::ChatDeleted { id: id.to_owned() };
            self.outputs.push_back(Output::SendMany { recipients, message: deleted });
        }
        self.outputs.push_back(Output::EraseChat { id: id.to_owned() });
        Some(told)
    }

    /// An admin muted or unmuted the user's chat; returns how many avatars it reached.
    pub(super) fn set_chat_mute(&mut self, user: &str, muted: bool, by: String, reason: String) -> usize {
        let Some(avatar) = self.by_user.get(user).and_then(|id| self.avatars.get_mut(id)) else { return 0 };
        if std::mem::replace(&mut avatar.chat_muted, muted) != muted
            && let Some(conn) = avatar.conn
        {
            let action = if muted {
                crate::protocol::ModeratedAction::ChatMuted
            } else {
                crate::protocol::ModeratedAction::ChatUnmuted
            };
            self.send(conn, ServerMessage::Moderated { action, by, reason });
        }
        1
    }

    /// Checks this module's invariants (for the engine's property tests).
    #[cfg(test)]
    pub(super) fn chat_invariants(&self) -> Result<(), String> {
        let shelves =
            self.chat.zones.values().chain(std::iter::once(&self.chat.world)).chain(self.chat.direct.values());
        for shelf in shelves {
            if shelf.len() > CHAT_HISTORY_LEN {
                return Err(format!("a chat history holds {} messages", shelf.len()));
            }
        }
        Ok(())
    }
}
