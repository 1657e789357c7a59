//! The task that owns one world's engine: commands in from connections, the engine's
//! outputs routed out to them, timers driven by the engine's own deadline.
//!
//! The world task never waits on a client: each connection has a bounded queue, and a
//! full queue marks the client as lagging instead of blocking the zone. A lagging client
//! gets no more presence deltas; once its queue has room it gets a fresh snapshot of its
//! zone (presence coalesced into one message), and if it stays stuck for
//! `slow_client_seconds` it is disconnected with `too_slow`.

use super::chat::ChatWriter;
use super::sfu_control::SfuControl;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::extract::ws::Utf8Bytes;
use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::metrics::Metrics;
use crate::engine::{ConnId, EngineStats, JoinUser, LateKick, Moderation, ModerationError, Output, WorldEngine};
use crate::protocol::binary::MoveIntent;
use crate::protocol::{
    AvatarId, ChatMessage, ChatScope, ErrorCode, IceOutcome, KnockId, PersonInfo, ServerMessage, SignalKind, Status,
};
use isoplane_service::metrics::Counter;

/// What a connection sends its world.
#[derive(Debug)]
pub enum WorldCommand {
    Join {
        conn: ConnId,
        user: JoinUser,
        spawn: Option<String>,
        outbound: mpsc::Sender<Outbound>,
        kill: Kill,
        reply: oneshot::Sender<Result<AvatarId, ErrorCode>>,
    },
    /// `received`: when the frame arrived, so queueing delays are not taken for speed.
    Move {
        conn: ConnId,
        intent: MoveIntent,
        received: Instant,
    },
    Signal {
        conn: ConnId,
        to: AvatarId,
        kind: SignalKind,
        data: serde_json::Value,
    },
    MediaReport {
        conn: ConnId,
        ice: IceOutcome,
    },
    SetStatus {
        conn: ConnId,
        status: Status,
    },
    /// `list_people`: answered to the connection by the engine.
    ListPeople {
        conn: ConnId,
        id: u32,
    },
    SharePage {
        conn: ConnId,
        url: Option<String>,
    },
    ProbeSfu {
        conn: ConnId,
    },
    SetRecording {
        conn: ConnId,
        on: bool,
    },
    Follow {
        conn: ConnId,
        avatar: AvatarId,
    },
    Unfollow {
        conn: ConnId,
    },
    Knock {
        conn: ConnId,
        zone: String,
    },
    AnswerKnock {
        conn: ConnId,
        knock: KnockId,
        admit: bool,
    },
    /// `chat_send`; `at`: when the frame arrived (Unix ms), the message's time.
    ChatSend {
        conn: ConnId,
        at: i64,
        scope: ChatScope,
        to: Option<String>,
        text: String,
    },
    /// The history read back from the database, instead of what the world holds (when
    /// this node takes the world over).
    LoadChat {
        messages: Vec<ChatMessage>,
    },
    Leave {
        conn: ConnId,
    },
    Disconnect {
        conn: ConnId,
    },
    /// Tell the client about a problem with what it sent (in order with its replies).
    Notify {
        conn: ConnId,
        code: ErrorCode,
    },
    /// An authorized admin action; the reply says how many avatars it reached.
    Moderate {
        action: Moderation,
        reply: oneshot::Sender<Result<usize, ModerationError>>,
    },
    /// Whether a broadcaster's stream is still on its stage (whip.rs).
    IngestIsLive {
        key: String,
        avatar: crate::protocol::AvatarId,
        reply: oneshot::Sender<bool>,
    },
    /// A broadcaster's stream (whip.rs) asks for its slot on a stage.
    StartIngest {
        key: String,
        zone: String,
        name: String,
        reply: oneshot::Sender<Result<crate::engine::IngestSlot, String>>,
    },
    /// Everyone in the world, for the admin panel.
    People {
        reply: oneshot::Sender<Vec<PersonInfo>>,
    },
    /// When the earliest session here joined (unix ms), if anyone is here.
    OldestJoin {
        reply: oneshot::Sender<Option<i64>>,
    },
    /// Recorded kicks by user ID: removes those who joined before theirs; the reply says how many.
    EnforceKicks {
        kicks: Arc<HashMap<String, LateKick>>,
        reply: oneshot::Sender<usize>,
    },
    /// Another node serves this world now: everyone here reconnects (and reaches it).
    Evacuate,
    /// The SFU nodes that may take rooms, from the SFU directory.
    SfuNodes(Vec<crate::engine::SfuNode>),
    /// A new version of the world file to serve from now on (world_updates.rs).
    Replace {
        world: Arc<isoplane_world_format::World>,
        world_ref: crate::protocol::WorldRef,
    },
}

/// What a world sends a connection's writer. Text and frames are shared, not copied,
/// when one message goes to many.
#[derive(Debug, Clone)]
pub enum Outbound {
    Text(Utf8Bytes),
    Binary(Bytes),
    /// Send this error, then close.
    Close(ErrorCode),
}

/// A way to end a connection from outside its task, with the reason to give.
#[derive(Debug, Clone, Default)]
pub struct Kill {
    token: CancellationToken,
    reason: Arc<Mutex<Option<ErrorCode>>>,
}

impl Kill {
    pub fn kill(&self, code: ErrorCode) {
        if let Ok(mut reason) = self.reason.lock() {
            reason.get_or_insert(code);
        }
        self.token.cancel();
    }

    /// Ends the connection without an error (the client closed, or left).
    pub fn stop(&self) {
        self.token.cancel();
    }

    pub fn reason(&self) -> Option<ErrorCode> {
        self.reason.lock().ok().and_then(|r| *r)
    }

    pub async fn killed(&self) {
        self.token.cancelled().await;
    }
}

struct Connection {
    outbound: mpsc::Sender<Outbound>,
    kill: Kill,
    /// Since when the client's queue has been full.
    lagging_since: Option<Instant>,
}

/// The world's connections, and which of them are lagging (kept apart so a command
/// costs nothing extra when nobody lags).
#[derive(Default)]
struct Connections {
    by_id: HashMap<ConnId, Connection>,
    lagging: HashSet<ConnId>,
}

impl Connections {
    fn remove(&mut self, conn: ConnId) -> Option<Connection> {
        self.lagging.remove(&conn);
        self.by_id.remove(&conn)
    }

    /// Hands one message to a connection without waiting; a full queue marks it lagging.
    fn offer(&mut self, conn: ConnId, message: Outbound, metrics: &Metrics) -> bool {
        let Some(connection) = self.by_id.get_mut(&conn) else { return false };
        match connection.outbound.try_send(message) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                metrics.queue_drops.inc();
                connection.lagging_since.get_or_insert_with(Instant::now);
                self.lagging.insert(conn);
                false
            }
            // The connection is closing; its disconnect is on the way.
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }
}

/// Seconds since the Unix epoch, for token and credential expiries.
pub fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Milliseconds since the Unix epoch, for when a session joined (compared with kicks).
pub fn unix_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Runs one world until shutdown or until every sender is gone.
pub async fn run(
    mut engine: WorldEngine,
    mut commands: mpsc::Receiver<WorldCommand>,
    metrics: Arc<Metrics>,
    slow_client: Duration,
    sfu: Option<SfuControl>,
    chat: ChatWriter,
    shutdown: CancellationToken,
) {
    let mut connections = Connections::default();
    let mut reported = Reported::default();
    let (lost_tx, mut lost) = mpsc::unbounded_channel();
    let sfu = sfu.map(|sfu| sfu.reporting_lost_recordings(lost_tx));
    loop {
        let deadline = engine.poll_timeout().map(tokio::time::Instant::from_std);
        tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            // A due tick goes first: while commands keep coming (a flood of them, or
            // more than the task can take), presence still goes out at the tick rate.
            // Then the commands already waiting, up to a budget: a tick that is always
            // due (a world heavier than the task can take) must not starve joins, moves
            // and admin commands either.
            () = sleep_until(deadline) => {
                engine.handle_timeout(Instant::now());
                for _ in 0..COMMANDS_AFTER_A_TICK {
                    let Ok(command) = commands.try_recv() else { break };
                    handle(&mut engine, &mut connections, command, &metrics);
                }
            }
            command = commands.recv() => match command {
                Some(command) => handle(&mut engine, &mut connections, command, &metrics),
                None => break,
            },
            Some(id) = lost.recv() => engine.recording_lost(Instant::now(), &id),
        }
        route(&mut engine, &mut connections, &metrics, sfu.as_ref(), &chat);
        resync_lagging(&mut engine, &mut connections, &metrics, slow_client);
        if reported.at.elapsed() >= METRICS_INTERVAL {
            reported.publish(&engine, &metrics);
        }
    }
    reported.publish(&engine, &metrics);
    reported.withdraw(&metrics);
}

/// Commands a world task takes after each tick before it looks at the clock again.
const COMMANDS_AFTER_A_TICK: usize = 256;

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

fn handle(engine: &mut WorldEngine, connections: &mut Connections, command: WorldCommand, metrics: &Metrics) {
    let now = Instant::now();
    match command {
        WorldCommand::Join { conn, user, spawn, outbound, kill, reply } => {
            let result = engine.join(now, conn, user, spawn.as_deref());
            if result.is_ok() {
                connections.by_id.insert(conn, Connection { outbound, kill, lagging_since: None });
            }
            // The connection may have gone meanwhile; its disconnect follows.
            let _ = reply.send(result);
        }
        WorldCommand::Move { conn, intent, received } => engine.handle_move(received, conn, intent),
        WorldCommand::Signal { conn, to, kind, data } => engine.handle_signal(conn, to, kind, data),
        WorldCommand::MediaReport { conn, ice } => engine.handle_media_report(now, conn, ice),
        WorldCommand::SetStatus { conn, status } => engine.set_status(now, conn, status),
        WorldCommand::ListPeople { conn, id } => engine.list_people(conn, id),
        WorldCommand::SharePage { conn, url } => engine.share_page(conn, url),
        WorldCommand::ProbeSfu { conn } => engine.probe_sfu(now, conn),
        WorldCommand::SetRecording { conn, on } => engine.set_recording(now, conn, on),
        WorldCommand::IngestIsLive { key, avatar, reply } => {
            let _ = reply.send(engine.ingest_is_live(&key, avatar));
        }
        WorldCommand::StartIngest { key, zone, name, reply } => {
            let _ = reply.send(engine.start_ingest(now, &key, &zone, &name));
        }
        WorldCommand::Follow { conn, avatar } => engine.follow(now, conn, avatar),
        WorldCommand::Unfollow { conn } => engine.unfollow(conn),
        WorldCommand::Knock { conn, zone } => engine.knock(now, conn, &zone),
        WorldCommand::AnswerKnock { conn, knock, admit } => engine.answer_knock(now, conn, knock, admit),
        WorldCommand::ChatSend { conn, at, scope, to, text } => engine.send_chat(conn, at, scope, to, text),
        WorldCommand::LoadChat { messages } => engine.load_chat(messages, unix_ms()),
        WorldCommand::Leave { conn } => {
            engine.leave(now, conn);
            connections.remove(conn);
        }
        WorldCommand::Disconnect { conn } => {
            engine.disconnect(now, conn);
            connections.remove(conn);
        }
        WorldCommand::Notify { conn, code } => {
            let message = ServerMessage::Error { code, message: code.text().to_owned() };
            connections.offer(conn, Outbound::Text(to_json(&message)), metrics);
        }
        WorldCommand::Moderate { action, reply } => {
            // The admin may have given up waiting; the action stands.
            let _ = reply.send(engine.moderate(now, action));
        }
        WorldCommand::People { reply } => {
            let _ = reply.send(engine.people());
        }
        WorldCommand::OldestJoin { reply } => {
            let _ = reply.send(engine.oldest_join());
        }
        WorldCommand::EnforceKicks { kicks, reply } => {
            let _ = reply.send(engine.enforce_kicks(&kicks));
        }
        WorldCommand::SfuNodes(nodes) => engine.set_sfu_nodes(now, nodes),
        WorldCommand::Replace { world, world_ref } => {
            metrics.world_reloads.inc();
            engine.replace_world(now, world, world_ref);
        }
        WorldCommand::Evacuate => {
            for (conn, connection) in connections.by_id.drain() {
                if connection.outbound.try_send(Outbound::Close(ErrorCode::TryAgain)).is_err() {
                    connection.kill.kill(ErrorCode::TryAgain);
                }
                engine.leave(now, conn);
            }
            connections.lagging.clear();
            engine.evacuate(now);
        }
    }
}

fn route(
    engine: &mut WorldEngine,
    connections: &mut Connections,
    metrics: &Metrics,
    sfu: Option<&SfuControl>,
    chat: &ChatWriter,
) {
    while let Some(output) = engine.poll_output() {
        match output {
            Output::Send { conn, message } => {
                connections.offer(conn, Outbound::Text(to_json(&message)), metrics);
            }
            Output::SendJson { conn, json } => match Utf8Bytes::try_from(json) {
                Ok(text) => {
                    connections.offer(conn, Outbound::Text(text), metrics);
                }
                Err(error) => tracing::error!(%error, "the engine encoded a message that is not UTF-8"),
            },
            Output::SendMany { recipients, message } => {
                let text = to_json(&message);
                for conn in recipients {
                    connections.offer(conn, Outbound::Text(text.clone()), metrics);
                }
            }
            Output::Presence { recipients, frame } => {
                for conn in recipients {
                    // Lagging clients get a snapshot instead, once they have room.
                    if !connections.lagging.contains(&conn) {
                        connections.offer(conn, Outbound::Binary(frame.clone()), metrics);
                    }
                }
            }
            Output::Close { conn, code } => {
                if !connections.offer(conn, Outbound::Close(code), metrics)
                    && let Some(connection) = connections.by_id.get(&conn)
                {
                    connection.kill.kill(code);
                }
                connections.remove(conn);
            }
            Output::SfuRevoke { room, avatar, control_url } => {
                if let Some(sfu) = sfu {
                    sfu.revoke(&control_url, &room, avatar);
                }
            }
            Output::SfuMute { room, user, mute, control_url } => {
                if let Some(sfu) = sfu {
                    sfu.set_mute(&control_url, &room, &user, mute);
                }
            }
            Output::SfuRecording { room, id, by, change, control_url } => {
                if let Some(sfu) = sfu {
                    sfu.set_recording(&control_url, &room, &id, &by, change);
                }
            }
            Output::StoreChat { message } => chat.store(message),
            Output::EraseChat { id } => chat.erase(id),
        }
    }
}

/// The chat histories a client that fell behind gets after its snapshot: its zone's, the
/// world's and its direct messages.
const RESYNC_CHAT_HISTORIES: usize = 3;

/// Sends lagging clients a fresh snapshot once they have room; cuts off the stuck ones.
fn resync_lagging(engine: &mut WorldEngine, connections: &mut Connections, metrics: &Metrics, slow_client: Duration) {
    if connections.lagging.is_empty() {
        return;
    }
    let now = Instant::now();
    let lagging: Vec<ConnId> = connections.lagging.iter().copied().collect();
    for conn in lagging {
        let Some(connection) = connections.by_id.get_mut(&conn) else {
            connections.lagging.remove(&conn);
            continue;
        };
        let since = connection.lagging_since.unwrap_or(now);
        // The snapshot and every chat history (chat dropped while it lagged is in them),
        // read only once there is room for all of them.
        // The world's version first: a client that lagged through a `world_changed` loads
        // the new file (one that has it ignores this). Built only once there is room:
        // stalled clients are looked at on every round of the task.
        if connection.outbound.capacity() > RESYNC_CHAT_HISTORIES + 1
            && let Some(snapshot) = engine.snapshot_for(conn)
            && connection
                .outbound
                .try_send(Outbound::Text(to_json(&ServerMessage::WorldChanged { world: engine.world_ref().clone() })))
                .is_ok()
            && connection.outbound.try_send(Outbound::Text(to_json(&snapshot))).is_ok()
            && engine
                .chat_histories_for(conn)
                .into_iter()
                .filter_map(|json| Utf8Bytes::try_from(json).ok())
                .all(|history| connection.outbound.try_send(Outbound::Text(history)).is_ok())
        {
            connection.lagging_since = None;
            connections.lagging.remove(&conn);
        } else if now.duration_since(since) >= slow_client {
            metrics.slow_disconnects.inc();
            connection.kill.kill(ErrorCode::TooSlow);
            connections.remove(conn);
            // Its avatar waits for a resume like any dropped client's.
            engine.disconnect(now, conn);
        }
    }
}

fn to_json(message: &ServerMessage) -> Utf8Bytes {
    // Server messages are plain data with string keys.
    serde_json::to_string(message).unwrap_or_default().into()
}

/// How often a world adds its counters to the global metrics.
const METRICS_INTERVAL: Duration = Duration::from_millis(200);

/// What this world last added to the global metrics, so each change adds only its delta.
struct Reported {
    at: Instant,
    stats: EngineStats,
    avatars: i64,
    zones_occupied: i64,
}

impl Default for Reported {
    fn default() -> Reported {
        Reported { at: Instant::now(), stats: EngineStats::default(), avatars: 0, zones_occupied: 0 }
    }
}

impl Reported {
    fn publish(&mut self, engine: &WorldEngine, metrics: &Metrics) {
        let stats = engine.stats();
        let pairs: [(&Counter, u64, u64); 9] = [
            (&metrics.moves_accepted, stats.moves_accepted, self.stats.moves_accepted),
            (&metrics.corrections, stats.corrections, self.stats.corrections),
            (&metrics.presence_frames, stats.presence_frames, self.stats.presence_frames),
            (&metrics.presence_deliveries, stats.presence_deliveries, self.stats.presence_deliveries),
            (&metrics.zone_changes, stats.zone_changes, self.stats.zone_changes),
            (&metrics.resumes, stats.resumes, self.stats.resumes),
            (&metrics.signals_relayed, stats.signals_relayed, self.stats.signals_relayed),
            (&metrics.chat_messages, stats.chat_messages, self.stats.chat_messages),
            (&metrics.presence_ticks_missed, stats.presence_ticks_missed, self.stats.presence_ticks_missed),
        ];
        for (counter, now, before) in pairs {
            counter.inc_by(now - before);
        }
        self.stats = stats;
        let avatars = engine.population() as i64;
        let zones = engine.occupied_zones() as i64;
        metrics.avatars.inc_by(avatars - self.avatars);
        metrics.zones_occupied.inc_by(zones - self.zones_occupied);
        self.avatars = avatars;
        self.zones_occupied = zones;
        self.at = Instant::now();
    }

    fn withdraw(&self, metrics: &Metrics) {
        metrics.avatars.dec_by(self.avatars);
        metrics.zones_occupied.dec_by(self.zones_occupied);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use isoplane_world_format::{DEMO_WORLD, Facing, Position, World};

    use super::*;
    use crate::auth::Role;
    use crate::engine::EngineConfig;
    use crate::protocol::binary::Pose;
    use crate::protocol::{AvatarState, Point, WorldRef};

    async fn join(
        commands: &mpsc::Sender<WorldCommand>,
        conn: ConnId,
        user: &str,
        queue: usize,
    ) -> (mpsc::Receiver<Outbound>, Kill) {
        let (outbound, receiver) = mpsc::channel(queue);
        let kill = Kill::default();
        let (reply, answer) = oneshot::channel();
        let user = JoinUser {
            id: user.into(),
            name: user.into(),
            role: Role::Member,
            mute: Default::default(),
            chat_muted: false,
            joined_at: 0,
        };
        let command = WorldCommand::Join { conn, user, spawn: None, outbound, kill: kill.clone(), reply };
        commands.send(command).await.unwrap();
        answer.await.unwrap().unwrap();
        (receiver, kill)
    }

    /// A client whose queue nobody drains (a socket that stopped reading) does not hold
    /// up its zone, and is cut off after `slow_client`.
    #[tokio::test]
    async fn a_stuck_client_does_not_stall_its_zone_and_is_disconnected() {
        let world = Arc::new(World::from_json(DEMO_WORLD).unwrap());
        let world_ref = WorldRef { name: "demo".into(), version: "v".into(), url: "/".into() };
        let engine = WorldEngine::new("demo", world, world_ref, EngineConfig::default(), Instant::now(), unix_now());
        let (commands, receiver) = mpsc::channel(64);
        let metrics = Arc::new(Metrics::default());
        let shutdown = CancellationToken::new();
        let (writes, _unwritten) = mpsc::channel(16);
        let chat = ChatWriter::new(writes, "acme", "demo", metrics.clone());
        let slow = Duration::from_millis(500);
        let task = tokio::spawn(run(engine, receiver, metrics.clone(), slow, None, chat, shutdown.clone()));

        let (_stuck_queue, stuck) = join(&commands, 1, "stuck", 2).await;
        let (mut live_queue, _live) = join(&commands, 2, "live", 1024).await;
        let spawn = Position::from_tiles(10.5, 7.5);
        let started = Instant::now();
        let mut frames = 0;
        for step in 0..30 {
            let position = Point { x: spawn.x + (step % 2) * 40, y: spawn.y };
            let intent = MoveIntent {
                seq: step as u32,
                position,
                pose: Pose { facing: Facing::East, state: AvatarState::Walking },
            };
            commands.send(WorldCommand::Move { conn: 2, intent, received: Instant::now() }).await.unwrap();
            tokio::time::sleep(Duration::from_millis(70)).await;
            while let Ok(message) = live_queue.try_recv() {
                frames += usize::from(matches!(message, Outbound::Binary(_)));
            }
        }
        // The live client got its presence all along (about one frame per tick).
        assert!(frames >= 20, "only {frames} presence frames in {:?}", started.elapsed());
        // The stuck one was cut off for being too slow.
        tokio::time::timeout(Duration::from_secs(2), stuck.killed()).await.unwrap();
        assert_eq!(stuck.reason(), Some(ErrorCode::TooSlow));
        assert!(metrics.queue_drops.get() > 0);
        assert_eq!(metrics.slow_disconnects.get(), 1);
        shutdown.cancel();
        task.await.unwrap();
    }
}
