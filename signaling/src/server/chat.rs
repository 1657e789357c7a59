//! The chat history's way to and from the database.
//!
//! Delivery never waits on the database: the world task hands each delivered message
//! (and each deletion) to a bounded queue without waiting, and one writer task drains it
//! into the database in batches, in order. A full queue (the database far behind) drops
//! the write, counted and logged: the message was delivered and stays in the world's
//! memory, it only would not survive a restart. The writer stops once every world task
//! has stopped and its queue is empty, so a graceful shutdown loses nothing queued.
//!
//! At start (and when this node takes a world over from another) a world's recent history
//! is read back and given to its engine ([`load`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use isoplane_metadata::{ChatAudience, ChatRecord, Metadata, MetadataError};
use tokio::sync::mpsc;

use super::metrics::Metrics;
use super::world_task::{WorldCommand, unix_ms};
use crate::engine::{CHAT_HISTORY_AGE, CHAT_HISTORY_LEN};
use crate::protocol::{ChatMessage, ChatParty, ChatScope};

/// Writes waiting for the database, across every world of this node: at the rate limit
/// of one message a second per connection, a few thousand cover several seconds of a
/// busy node's chat while the database stalls, at a few kilobytes each at most.
pub const CHAT_WRITE_QUEUE: usize = 4096;

/// Most writes the writer puts in one transaction.
const WRITE_BATCH: usize = 256;

/// How often the writer deletes messages older than the history keeps.
const PRUNE_EVERY: Duration = Duration::from_secs(60 * 60);

const AGE_MS: i64 = CHAT_HISTORY_AGE.as_millis() as i64;

/// One change to the stored history.
#[derive(Debug)]
pub enum ChatWrite {
    Store(ChatRecord),
    Erase { workspace: String, world: String, id: String, at: i64 },
}

/// A world task's handle on the writer's queue.
#[derive(Debug, Clone)]
pub struct ChatWriter {
    queue: mpsc::Sender<ChatWrite>,
    workspace: Arc<str>,
    world: Arc<str>,
    metrics: Arc<Metrics>,
}

impl ChatWriter {
    pub fn new(queue: mpsc::Sender<ChatWrite>, workspace: &str, world: &str, metrics: Arc<Metrics>) -> ChatWriter {
        ChatWriter { queue, workspace: workspace.into(), world: world.into(), metrics }
    }

    /// Queues a delivered message for the database, without waiting.
    pub fn store(&self, message: ChatMessage) {
        self.offer(ChatWrite::Store(record(&self.workspace, &self.world, message)));
    }

    /// Queues an admin's deletion, after every message queued before it.
    pub fn erase(&self, id: String) {
        let (workspace, world) = (self.workspace.to_string(), self.world.to_string());
        self.offer(ChatWrite::Erase { workspace, world, id, at: unix_ms() });
    }

    fn offer(&self, write: ChatWrite) {
        if let Err(error) = self.queue.try_send(write) {
            self.metrics.chat_writes_dropped.inc();
            if matches!(error, mpsc::error::TrySendError::Full(_)) {
                tracing::warn!(world = %self.world, "the chat history's write queue is full: a message will not survive a restart");
            }
        }
    }
}

/// A message as the database keeps it.
fn record(workspace: &str, world: &str, message: ChatMessage) -> ChatRecord {
    let audience = match (message.scope, message.zone, message.to) {
        (ChatScope::Zone, zone, _) => ChatAudience::Zone { zone: zone.unwrap_or_default() },
        (ChatScope::World, ..) => ChatAudience::World,
        (ChatScope::Direct, _, to) => {
            let to = to.unwrap_or(ChatParty { user: String::new(), name: String::new() });
            ChatAudience::Direct { user: to.user, name: to.name }
        }
    };
    ChatRecord {
        workspace: workspace.to_owned(),
        world: world.to_owned(),
        id: message.id,
        audience,
        from_user: message.from.user,
        from_name: message.from.name,
        text: message.text,
        sent_at: message.at,
    }
}

/// A stored message as clients see it.
fn message(record: ChatRecord) -> ChatMessage {
    let (scope, zone, to) = match record.audience {
        ChatAudience::Zone { zone } => (ChatScope::Zone, Some(zone), None),
        ChatAudience::World => (ChatScope::World, None, None),
        ChatAudience::Direct { user, name } => (ChatScope::Direct, None, Some(ChatParty { user, name })),
    };
    ChatMessage {
        id: record.id,
        scope,
        zone,
        from: ChatParty { user: record.from_user, name: record.from_name },
        to,
        text: record.text,
        at: record.sent_at,
    }
}

/// Gives a world's engine its history as stored now (this node just took the world
/// over: what another node wrote meanwhile is there). On failure the world keeps what it
/// held, which is logged.
pub async fn refresh(metadata: &Metadata, workspace: &str, world: &str, commands: &mpsc::Sender<WorldCommand>) {
    match load(metadata, workspace, world, unix_ms()).await {
        Ok(messages) => {
            let _ = commands.send(WorldCommand::LoadChat { messages }).await;
        }
        Err(error) => tracing::error!(%error, world, "cannot read the world's chat history"),
    }
}

/// A world's recent history as stored, oldest first, as of `now_ms`.
pub async fn load(
    metadata: &Metadata,
    workspace: &str,
    world: &str,
    now_ms: i64,
) -> Result<Vec<ChatMessage>, MetadataError> {
    let since = now_ms.saturating_sub(AGE_MS);
    let records = metadata.recent_chat(workspace, world, since, CHAT_HISTORY_LEN as u32).await?;
    Ok(records.into_iter().map(message).collect())
}

/// Drains the queue into the database until every [`ChatWriter`] is gone and nothing is
/// left; deletes old messages now and then.
pub async fn run_writer(metadata: Metadata, mut queue: mpsc::Receiver<ChatWrite>, metrics: Arc<Metrics>) {
    let mut pruned_at: Option<Instant> = None;
    let mut batch = Vec::with_capacity(WRITE_BATCH);
    while queue.recv_many(&mut batch, WRITE_BATCH).await > 0 {
        let mut stores = Vec::new();
        for write in batch.drain(..) {
            match write {
                ChatWrite::Store(record) => stores.push(record),
                ChatWrite::Erase { workspace, world, id, at } => {
                    // In order: what was queued before the deletion is written first.
                    flush(&metadata, &mut stores, &metrics).await;
                    if let Err(error) = metadata.delete_chat(&workspace, &world, &id, at).await {
                        metrics.chat_write_failures.inc();
                        tracing::error!(%error, %world, %id, "cannot delete a chat message from the stored history");
                    }
                }
            }
        }
        flush(&metadata, &mut stores, &metrics).await;
        if pruned_at.is_none_or(|at| at.elapsed() >= PRUNE_EVERY) {
            pruned_at = Some(Instant::now());
            match metadata.prune_chat(unix_ms().saturating_sub(AGE_MS)).await {
                Ok(0) => {}
                Ok(pruned) => tracing::info!(pruned, "deleted chat messages older than the history keeps"),
                Err(error) => tracing::warn!(%error, "cannot delete old chat messages"),
            }
        }
    }
}

async fn flush(metadata: &Metadata, stores: &mut Vec<ChatRecord>, metrics: &Metrics) {
    if stores.is_empty() {
        return;
    }
    if let Err(error) = metadata.store_chat(stores).await {
        metrics.chat_write_failures.inc_by(stores.len() as u64);
        tracing::error!(%error, messages = stores.len(), "cannot store chat messages: they will not survive a restart");
    }
    stores.clear();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_of_message_comes_back_from_its_record_unchanged() {
        let ada = ChatParty { user: "u-ada".into(), name: "Ada".into() };
        let zone = ChatMessage {
            id: "c-1764770000123-000000010000".into(),
            scope: ChatScope::Zone,
            zone: Some("cafe".into()),
            from: ada.clone(),
            to: None,
            text: "<b>verbatim</b> & \"quoted\"".into(),
            at: 1_764_770_000_123,
        };
        let world = ChatMessage { scope: ChatScope::World, zone: None, ..zone.clone() };
        let direct = ChatMessage {
            scope: ChatScope::Direct,
            zone: None,
            to: Some(ChatParty { user: "u-bob".into(), name: "Bob".into() }),
            ..zone.clone()
        };
        for sent in [zone, world, direct] {
            let stored = record("acme", "demo", sent.clone());
            assert_eq!((stored.workspace.as_str(), stored.world.as_str()), ("acme", "demo"));
            assert_eq!(message(stored), sent);
        }
    }
}
