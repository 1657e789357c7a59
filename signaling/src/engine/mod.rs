//! The world engine: presence, movement correction, exclusive occupancy and media plans
//! for one world, as a sans-IO state machine.
//!
//! One engine per world, owned by one task. It never reads a clock or touches a socket:
//! every input carries `now`, and effects come out of [`WorldEngine::poll_output`]. The
//! loop rule (as in str0m): after any input, drain `poll_output` until it returns
//! `None`, then sleep until [`WorldEngine::poll_timeout`] and call
//! [`WorldEngine::handle_timeout`].
//!
//! Invariants:
//! - Each avatar is in exactly one zone's member set: the zone of its position.
//! - An avatar holds at most one exclusive object, the one under its position, and the
//!   holders of an object never exceed its capacity.
//! - Presence leaves the engine once per zone per tick, as one encoded frame for all the
//!   zone's connected members, holding only the avatars that changed; nothing crosses zones
//!   but what people.rs lets through (the list of everyone, a followee's place to its
//!   followers, knocks).
//! - One avatar per user per world: joining again as the same user takes the session
//!   over (a resume), and the connection it had, if any, is closed.
//! - Chat (chat.rs) follows the same state: a zone's history goes out right after each
//!   snapshot, so a message is either in it or delivered after it.

mod chat;
mod connectivity;
mod ingest;
mod media;
mod moderation;
mod pages;
mod people;
mod reload;
mod zone_media;

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use isoplane_world_format::{Facing, MoveRejection, ObjectIndex, ObjectKind, Position, World, ZoneIndex, ZoneKind};

pub use crate::auth::SfuClaims;
use crate::auth::{Role, TokenKey};
use crate::policy::{PolicyConfig, ZoneMode, ZonePolicy};
use crate::protocol::binary::{MoveIntent, Pose, PresenceEntry, encode_presence};
use crate::protocol::{
    AvatarId, AvatarInfo, AvatarState, ChatMessage, CorrectionReason, ErrorCode, IceOutcome, IceServer, MediaPlan,
    PROTOCOL_VERSION, Point, ServerMessage, SfuAccess, SignalKind, Status, WorldRef, ZoneInfo,
};
use crate::turn_credentials;
pub use chat::{CHAT_HISTORY_AGE, CHAT_HISTORY_LEN};
pub use connectivity::PROBE_TOKEN_SECONDS;
pub use ingest::IngestSlot;
pub use isoplane_service::sfu_directory::SfuNode;
pub use media::{Mute, SfuEndpoint};
use media::{Participant, PlanKey, plan_zone};
pub use moderation::{LateKick, Moderation, ModerationError};
pub use people::{FOLLOW_UPDATE_INTERVAL, KNOCK_AGAIN_AFTER, KNOCK_TIMEOUT, MAX_PENDING_KNOCKS_PER_ZONE, PASS_TTL};

/// Walking distance banks up for at most this long: after a pause, the next moves may
/// cover at most `max_speed · 1 s + slack` in all.
pub const MAX_MOVE_WINDOW: Duration = Duration::from_secs(1);

/// Identifies a client connection; assigned by the I/O shell.
pub type ConnId = u64;

/// How media reaches the outside world: STUN/TURN servers and the SFU.
#[derive(Debug, Clone, Default)]
pub struct MediaConfig {
    /// `stun:` URLs handed to every client.
    pub stun_urls: Vec<String>,
    pub turn: Option<TurnAccess>,
    pub sfu: Option<SfuConfig>,
}

/// TURN servers sharing a TURN REST API secret with signaling.
#[derive(Debug, Clone)]
pub struct TurnAccess {
    /// `turn:` / `turns:` URLs.
    pub urls: Vec<String>,
    pub secret: Vec<u8>,
    /// How long minted credentials last; plans are re-sent at half of it.
    pub ttl: Duration,
}

/// The SFU nodes that take crowded zones.
#[derive(Debug, Clone)]
pub struct SfuConfig {
    /// Key of the scoped tokens every SFU node verifies.
    pub key: TokenKey,
    pub token_ttl: Duration,
    /// The nodes known at start: one configured SFU, or none until the SFU directory
    /// reports (see [`WorldEngine::set_sfu_nodes`]).
    pub nodes: Vec<SfuNode>,
}

/// Engine settings.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Presence is batched and sent at this interval (15 Hz: 66 ms).
    pub tick_interval: Duration,
    /// How long a dropped client's avatar waits for it to come back.
    pub resume_grace: Duration,
    pub policy: PolicyConfig,
    pub media: MediaConfig,
    /// Origins whose pages clients may embed (the workspace's allow-list), told to each
    /// client on joining and checked on shared pages (pages.rs).
    pub embed_origins: Vec<String>,
}

impl Default for EngineConfig {
    fn default() -> EngineConfig {
        EngineConfig {
            tick_interval: Duration::from_micros(66_667),
            resume_grace: Duration::from_secs(20),
            policy: PolicyConfig::default(),
            media: MediaConfig::default(),
            embed_origins: Vec::new(),
        }
    }
}

/// Who is joining, from their verified token.
#[derive(Debug, Clone)]
pub struct JoinUser {
    pub id: String,
    pub name: String,
    /// Admins walk into locked zones.
    pub role: Role,
    /// What an admin muted of this user, as recorded.
    pub mute: Mute,
    /// An admin muted this user's chat, as recorded.
    pub chat_muted: bool,
    /// When this join happened (milliseconds since the Unix epoch, the shell's clock): a
    /// kick recorded later removes the avatar even if its command missed this node.
    pub joined_at: i64,
}

/// An effect for the I/O shell to carry out.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// A control message to one connection.
    Send { conn: ConnId, message: ServerMessage },
    /// The same control message to each listed connection (encoded once by the shell).
    SendMany { recipients: Vec<ConnId>, message: ServerMessage },
    /// A control message already encoded as JSON (chat histories, encoded once and shared).
    SendJson { conn: ConnId, json: Bytes },
    /// One presence frame for every listed connection.
    Presence { recipients: Vec<ConnId>, frame: Bytes },
    /// Tell the connection why, then close it.
    Close { conn: ConnId, code: ErrorCode },
    /// The avatar's plan no longer includes this SFU room (it left the zone, the zone
    /// left the SFU, or it left the world): the SFU must end its session there, whatever
    /// its client does.
    SfuRevoke { room: String, avatar: AvatarId, control_url: String },
    /// An admin changed the user's mute while it is in this SFU room: the SFU must apply
    /// it now (new rooms get it in the token).
    SfuMute { room: String, user: String, mute: Mute, control_url: String },
    /// A chat message was delivered: keep it in the world's stored history.
    StoreChat { message: ChatMessage },
    /// An admin deleted this chat message: take it out of the stored history.
    EraseChat { id: String },
    /// The SFU node serving `room` must record it as `id`: start, or go on (the engine
    /// renews a recording every [`RECORDING_RENEWAL`]; the SFU ends one not renewed), or
    /// `stop`.
    SfuRecording { room: String, id: String, by: String, change: RecordingChange, control_url: String },
}

/// What the SFU is told of a recording.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordingChange {
    Start,
    /// It goes on (the SFU answers whether it still records it: see
    /// [`WorldEngine::recording_lost`]).
    Renew,
    Stop,
}

/// How often the SFU is told again that a recording goes on: a recording signaling forgot
/// (a restart, a lost stop) ends at the SFU within a few renewals.
pub const RECORDING_RENEWAL: Duration = Duration::from_secs(10);

/// Counters for `/metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EngineStats {
    pub moves_accepted: u64,
    pub corrections: u64,
    pub presence_frames: u64,
    pub presence_deliveries: u64,
    pub zone_changes: u64,
    pub resumes: u64,
    pub signals_relayed: u64,
    pub chat_messages: u64,
    /// Grid slots a late presence tick ran past: each is a tick the zone did not get
    /// (its moves went out in the late one instead).
    pub presence_ticks_missed: u64,
}

#[derive(Debug)]
struct Avatar {
    id: AvatarId,
    user: String,
    name: String,
    role: Role,
    mute: Mute,
    chat_muted: bool,
    /// The sequence number of its last move intent, echoed in corrections.
    last_seq: u32,
    conn: Option<ConnId>,
    /// When its current session joined (unix ms): the first join, or the latest takeover.
    joined_at: i64,
    detached_since: Option<Instant>,
    position: Position,
    facing: Facing,
    state: AvatarState,
    status: Status,
    zone: ZoneIndex,
    /// Distance the avatar may still walk (sub-tile units), as of `budget_at`. It refills
    /// at the world's top speed up to one second's walk plus the slack, and each accepted
    /// move spends its length: late or bunched messages (network or scheduling jitter)
    /// spend banked distance instead of being corrected, and no sequence of moves goes
    /// faster than the top speed for long.
    move_budget: f64,
    budget_at: Instant,
    held: Option<ObjectIndex>,
    /// The object held before the current one, for interaction chains.
    previous_object: Option<ObjectIndex>,
    relay_needed: bool,
    peers: BTreeSet<AvatarId>,
    plan: Option<PlanKey>,
    plan_sent_at: Option<Instant>,
    /// A new connection took the session over: the plan goes out again even if unchanged.
    resend_plan: bool,
}

impl Avatar {
    fn info(&self) -> AvatarInfo {
        AvatarInfo {
            avatar: self.id,
            user: self.user.clone(),
            name: self.name.clone(),
            position: Point { x: self.position.x, y: self.position.y },
            facing: self.facing,
            state: self.state,
            status: self.status,
        }
    }
}

#[derive(Debug, Default)]
struct ZoneState {
    members: BTreeSet<AvatarId>,
    /// Members whose presence changed since the last tick.
    changed: BTreeSet<AvatarId>,
    policy: ZonePolicy,
    /// Media plans must be recomputed at the next tick.
    replan: bool,
    /// An admin locked the zone: only admins may walk in.
    locked: bool,
    /// An admin's limit on people in the zone, instead of the world file's.
    capacity: Option<u32>,
    /// The page someone opened for everyone in the zone (pages.rs).
    page: Option<crate::protocol::SharedPage>,
    /// An admin allowed (or forbade) recording here, over the world file (zone_media.rs).
    recording_allowed: Option<bool>,
    /// The recording in progress (zone_media.rs).
    recording: Option<zone_media::Recording>,
    /// The media key of an end-to-end encrypted zone with people inside (zone_media.rs).
    e2ee_key: Option<zone_media::ZoneKey>,
    /// A broadcaster's stream on a stage (ingest.rs).
    ingest: Option<ingest::Ingest>,
}

/// The presence and media state of one world.
#[derive(Debug)]
pub struct WorldEngine {
    name: String,
    world: Arc<World>,
    world_ref: WorldRef,
    config: EngineConfig,
    started: Instant,
    unix_at_start: u64,
    avatars: BTreeMap<AvatarId, Avatar>,
    by_conn: HashMap<ConnId, AvatarId>,
    by_user: HashMap<String, AvatarId>,
    zones: Vec<ZoneState>,
    holders: HashMap<ObjectIndex, Vec<AvatarId>>,
    /// The SFU nodes that may take rooms, as last reported.
    sfu_nodes: Vec<SfuNode>,
    /// Which SFU node serves each zone on the SFU, by node ID.
    placements: HashMap<ZoneIndex, String>,
    /// Who follows whom, by follower (people.rs).
    follows: BTreeMap<AvatarId, people::Follow>,
    /// Knocks on zones and the passes they led to (people.rs).
    knocks: people::Knocks,
    /// Every chat history of the world (chat.rs).
    chat: chat::ChatLog,
    next_avatar: AvatarId,
    /// Numbers broadcasters' streams (ingest.rs).
    next_ingest: AvatarId,
    tick: u32,
    next_tick: Option<Instant>,
    /// When the last presence tick was due: later ticks fall on its grid.
    last_tick_due: Option<Instant>,
    outputs: VecDeque<Output>,
    stats: EngineStats,
}

impl WorldEngine {
    /// An empty world. `unix_now` anchors wall-clock expiries (TURN and SFU tokens).
    pub fn new(
        name: &str,
        world: Arc<World>,
        world_ref: WorldRef,
        config: EngineConfig,
        now: Instant,
        unix_now: u64,
    ) -> WorldEngine {
        let zones = (0..world.zones().len()).map(|_| ZoneState::default()).collect();
        let sfu_nodes = config.media.sfu.as_ref().map(|sfu| sfu.nodes.clone()).unwrap_or_default();
        WorldEngine {
            name: name.to_owned(),
            world,
            world_ref,
            config,
            started: now,
            unix_at_start: unix_now,
            avatars: BTreeMap::new(),
            by_conn: HashMap::new(),
            by_user: HashMap::new(),
            zones,
            holders: HashMap::new(),
            sfu_nodes,
            placements: HashMap::new(),
            follows: BTreeMap::new(),
            knocks: people::Knocks::default(),
            chat: chat::ChatLog::default(),
            next_avatar: 1,
            next_ingest: rand::random::<u16>().into(),
            tick: 0,
            next_tick: None,
            last_tick_due: None,
            outputs: VecDeque::new(),
            stats: EngineStats::default(),
        }
    }

    pub fn world(&self) -> &World {
        &self.world
    }

    /// The world file served now, as clients are told of it.
    pub fn world_ref(&self) -> &WorldRef {
        &self.world_ref
    }

    /// The world's name in the workspace.
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn stats(&self) -> EngineStats {
        self.stats
    }

    /// Avatars in the world, connected or waiting for a resume.
    pub fn population(&self) -> usize {
        self.avatars.len()
    }

    /// Number of zones with at least one avatar.
    pub fn occupied_zones(&self) -> usize {
        self.zones.iter().filter(|z| !z.members.is_empty()).count()
    }

    fn unix(&self, now: Instant) -> u64 {
        self.unix_at_start + now.saturating_duration_since(self.started).as_secs()
    }

    /// Unix milliseconds at `now`, as near as the start's whole seconds tell (for chat
    /// expiries, which the shell's own times then correct).
    fn unix_ms(&self, now: Instant) -> i64 {
        let elapsed = i64::try_from(now.saturating_duration_since(self.started).as_millis()).unwrap_or(i64::MAX);
        i64::try_from(self.unix_at_start).unwrap_or(i64::MAX).saturating_mul(1000).saturating_add(elapsed)
    }

    fn send(&mut self, conn: ConnId, message: ServerMessage) {
        self.outputs.push_back(Output::Send { conn, message });
    }

    /// Sends to every connected member of a zone but `except`.
    fn send_zone(&mut self, zone: ZoneIndex, except: Option<AvatarId>, message: &ServerMessage) {
        let recipients: Vec<ConnId> = self.zones[usize::from(zone.0)]
            .members
            .iter()
            .filter(|&&id| Some(id) != except)
            .filter_map(|id| self.avatars.get(id).and_then(|a| a.conn))
            .collect();
        if !recipients.is_empty() {
            self.outputs.push_back(Output::SendMany { recipients, message: message.clone() });
        }
    }

    fn zone_info(&self, index: ZoneIndex) -> ZoneInfo {
        let zone = self.world.zone(index);
        ZoneInfo {
            id: zone.id.to_owned(),
            name: zone.name.to_owned(),
            zone_type: zone.kind.type_name().to_owned(),
            page: self.zones[usize::from(index.0)].page.clone(),
            e2ee: zone.e2ee,
            recording_allowed: self.recording_allowed(index),
            recording: self.zones[usize::from(index.0)].recording.as_ref().map(|r| r.info.clone()),
            ingest: self.zones[usize::from(index.0)].ingest.as_ref().map(|i| i.info.clone()),
        }
    }

    /// The snapshot of an avatar's zone, as sent on joining and on zone changes (and by
    /// the shell to a client that fell behind).
    pub fn snapshot_for(&self, conn: ConnId) -> Option<ServerMessage> {
        let avatar = self.avatars.get(self.by_conn.get(&conn)?)?;
        let avatars = self.zones[usize::from(avatar.zone.0)]
            .members
            .iter()
            .filter(|&&id| id != avatar.id)
            .filter_map(|id| self.avatars.get(id).map(Avatar::info))
            .collect();
        Some(ServerMessage::Snapshot { zone: Box::new(self.zone_info(avatar.zone)), avatars, you: avatar.info() })
    }

    /// A verified user enters the world (or takes back their session).
    pub fn join(
        &mut self,
        now: Instant,
        conn: ConnId,
        user: JoinUser,
        spawn: Option<&str>,
    ) -> Result<AvatarId, ErrorCode> {
        if self.by_conn.contains_key(&conn) {
            // One join per connection.
            return Err(ErrorCode::JoinFirst);
        }
        self.observe_unix_ms(user.joined_at);
        if let Some(&id) = self.by_user.get(&user.id) {
            return Ok(self.resume(now, conn, id, &user));
        }
        let spawn = match spawn {
            Some(id) => self.world.spawn(id).ok_or(ErrorCode::UnknownSpawn)?,
            None => self.world.default_spawn(),
        };
        let position = World::spawn_position(spawn);
        let zone = self.world.zone_of(position).unwrap_or(ZoneIndex::DEFAULT);
        let id = self.next_avatar;
        self.next_avatar += 1;
        let avatar = Avatar {
            id,
            user: user.id.clone(),
            name: user.name,
            role: user.role,
            mute: user.mute,
            chat_muted: user.chat_muted,
            last_seq: 0,
            conn: Some(conn),
            joined_at: user.joined_at,
            detached_since: None,
            position,
            facing: spawn.facing,
            state: AvatarState::Idle,
            status: Status::Available,
            zone,
            move_budget: self.budget_cap(),
            budget_at: now,
            held: None,
            previous_object: None,
            relay_needed: false,
            peers: BTreeSet::new(),
            plan: None,
            plan_sent_at: None,
            resend_plan: false,
        };
        let entered = ServerMessage::AvatarEntered { avatar: avatar.info() };
        self.avatars.insert(id, avatar);
        self.by_conn.insert(conn, id);
        self.by_user.insert(user.id, id);
        self.send_zone(zone, Some(id), &entered);
        let state = &mut self.zones[usize::from(zone.0)];
        state.members.insert(id);
        state.replan = true;
        self.welcome(conn, id, false);
        self.entered_zone_media(zone, Some(conn));
        self.schedule_tick(now);
        Ok(id)
    }

    fn welcome(&mut self, conn: ConnId, id: AvatarId, resumed: bool) {
        let role = self.avatars.get(&id).map(|a| a.role);
        let (admin, builder) = (role == Some(Role::Admin), matches!(role, Some(Role::Admin | Role::Builder)));
        let world = self.world_ref.clone();
        let embed_origins = self.config.embed_origins.clone();
        let welcome = ServerMessage::Welcome {
            protocol: PROTOCOL_VERSION,
            avatar: id,
            world,
            resumed,
            admin,
            builder,
            embed_origins,
        };
        self.send(conn, welcome);
        if let Some(snapshot) = self.snapshot_for(conn) {
            self.send(conn, snapshot);
        }
        for json in self.chat_histories_for(conn) {
            self.outputs.push_back(Output::SendJson { conn, json });
        }
    }

    fn resume(&mut self, now: Instant, conn: ConnId, id: AvatarId, user: &JoinUser) -> AvatarId {
        let Some(avatar) = self.avatars.get_mut(&id) else { return id };
        // Role and mute as recorded now: they may have changed while it was away.
        avatar.role = user.role;
        avatar.mute = user.mute;
        avatar.chat_muted = user.chat_muted;
        // A session taken over after a kick was let in after it (a kick is not a ban).
        avatar.joined_at = user.joined_at;
        let old = avatar.conn.replace(conn);
        avatar.detached_since = None;
        // Its media plan is re-sent in full to the new connection at the next tick; the
        // plan itself is kept, so its SFU session can still be revoked meanwhile.
        avatar.resend_plan = true;
        let zone = avatar.zone;
        if let Some(old) = old {
            self.by_conn.remove(&old);
            self.outputs.push_back(Output::Close { conn: old, code: ErrorCode::Replaced });
        }
        self.by_conn.insert(conn, id);
        self.zones[usize::from(zone.0)].replan = true;
        self.stats.resumes += 1;
        self.welcome(conn, id, true);
        self.entered_zone_media(zone, Some(conn));
        self.people_resumed(now, id);
        self.schedule_tick(now);
        id
    }

    /// The connection dropped without leaving: the avatar waits for a resume.
    pub fn disconnect(&mut self, now: Instant, conn: ConnId) {
        if let Some(id) = self.by_conn.remove(&conn)
            && let Some(avatar) = self.avatars.get_mut(&id)
            && avatar.conn == Some(conn)
        {
            avatar.conn = None;
            avatar.detached_since = Some(now);
            self.schedule_tick(now);
        }
    }

    /// Numbers new avatars from `first` on (see the cluster: a world that moves between
    /// nodes must not hand out IDs the SFU still knows from the previous node).
    pub fn number_avatars_from(&mut self, first: AvatarId) {
        self.next_avatar = first.max(1);
    }

    /// Another node serves this world now: every avatar goes, connected or not.
    pub fn evacuate(&mut self, now: Instant) {
        self.end_all_ingests(now);
        let ids: Vec<AvatarId> = self.avatars.keys().copied().collect();
        for id in ids {
            self.remove_avatar(id);
        }
    }

    /// The client left on purpose: its avatar goes at once.
    pub fn leave(&mut self, _now: Instant, conn: ConnId) {
        if let Some(id) = self.by_conn.remove(&conn) {
            self.remove_avatar(id);
        }
    }

    fn remove_avatar(&mut self, id: AvatarId) {
        let Some(avatar) = self.avatars.remove(&id) else { return };
        if let Some(plan) = &avatar.plan {
            self.revoke_sfu_session(plan, id);
        }
        if let Some(conn) = avatar.conn {
            self.by_conn.remove(&conn);
        }
        self.by_user.remove(&avatar.user);
        if let Some(object) = avatar.held {
            self.release(object, id);
        }
        let zone = &mut self.zones[usize::from(avatar.zone.0)];
        zone.members.remove(&id);
        zone.changed.remove(&id);
        zone.replan = true;
        self.unpair(avatar.zone, id);
        self.send_zone(avatar.zone, Some(id), &ServerMessage::AvatarLeft { avatar: id });
        self.page_opener_left(avatar.zone, id);
        self.left_zone_media(avatar.zone, id);
        self.people_left(id);
    }

    /// Forgets `id` as a media peer of everyone in `zone`, at once: no signal may reach it
    /// from there, even before the zone's plans are recomputed at the next tick.
    fn unpair(&mut self, zone: ZoneIndex, id: AvatarId) {
        for member in &self.zones[usize::from(zone.0)].members {
            if let Some(avatar) = self.avatars.get_mut(member) {
                avatar.peers.remove(&id);
            }
        }
    }

    fn release(&mut self, object: ObjectIndex, id: AvatarId) {
        if let Some(holders) = self.holders.get_mut(&object) {
            holders.retain(|&h| h != id);
            if holders.is_empty() {
                self.holders.remove(&object);
            }
        }
    }

    /// The avatar currently holding `object`, for tests and moderation views.
    pub fn holders_of(&self, object: ObjectIndex) -> &[AvatarId] {
        self.holders.get(&object).map_or(&[], Vec::as_slice)
    }

    /// Top walking speed, in sub-tile units per second.
    fn speed(&self) -> f64 {
        f64::from(self.world.file().movement.max_speed) * f64::from(isoplane_world_format::SUBTILE)
    }

    /// The most distance an avatar can bank: one second's walk plus the world's slack.
    fn budget_cap(&self) -> f64 {
        let slack = f64::from(self.world.file().movement.slack) * f64::from(isoplane_world_format::SUBTILE);
        self.speed() * MAX_MOVE_WINDOW.as_secs_f64() + slack
    }

    fn correct(&mut self, conn: ConnId, seq: u32, id: AvatarId, reason: CorrectionReason) {
        self.stats.corrections += 1;
        if let Some(avatar) = self.avatars.get(&id) {
            let message = ServerMessage::Correction {
                seq,
                position: Point { x: avatar.position.x, y: avatar.position.y },
                facing: avatar.facing,
                state: avatar.state,
                reason,
            };
            self.send(conn, message);
        }
    }

    /// A `MoveIntent` from a client, `now` being when it arrived: accepted (and batched
    /// into its zone's next presence frame), or answered with a correction to the last
    /// accepted position.
    pub fn handle_move(&mut self, now: Instant, conn: ConnId, intent: MoveIntent) {
        let Some(&id) = self.by_conn.get(&conn) else { return };
        let (speed, cap) = (self.speed(), self.budget_cap());
        if let Some(avatar) = self.avatars.get_mut(&id) {
            avatar.last_seq = intent.seq;
        }
        let Some(avatar) = self.avatars.get(&id) else { return };
        let to = Position::new(intent.position.x, intent.position.y);
        let refill = now.saturating_duration_since(avatar.budget_at).as_secs_f64() * speed;
        let budget = (avatar.move_budget + refill).min(cap);
        let accepted = match self.world.check_move_within(avatar.position, to, budget as u32) {
            Ok(accepted) => accepted,
            Err(rejection) => return self.correct(conn, intent.seq, id, correction_reason(rejection)),
        };
        // Exclusive objects on the way must have room, and their chains must hold.
        for object in accepted.touched.iter() {
            if avatar.held == Some(object) {
                continue;
            }
            let capacity = self.world.object(object).capacity as usize;
            if self.holders_of(object).len() >= capacity {
                return self.correct(conn, intent.seq, id, CorrectionReason::Occupied);
            }
            if !self.world.chain_allows(avatar.previous_object.or(avatar.held), &accepted.touched, object) {
                return self.correct(conn, intent.seq, id, CorrectionReason::ChainBroken);
            }
        }
        let entering = accepted.zone != avatar.zone;
        if entering
            && let Some(refusal) = self.entry_refusal(avatar, accepted.zone)
            && !self.knocks.pass_admits(id, accepted.zone, now)
        {
            return self.correct(conn, intent.seq, id, refusal);
        }
        if entering {
            self.knocks.entered(id, accepted.zone);
        }
        let spent = (avatar.position.distance_squared(to) as f64).sqrt();
        if let Some(avatar) = self.avatars.get_mut(&id) {
            avatar.move_budget = (budget - spent).max(0.0);
            avatar.budget_at = now;
        }
        let on_seat = accepted.object.is_some_and(|o| self.world.object(o).kind == ObjectKind::Seat);
        let state =
            if intent.pose.state == AvatarState::Sitting && !on_seat { AvatarState::Idle } else { intent.pose.state };
        self.apply_move(
            now,
            id,
            to,
            Pose { facing: intent.pose.facing, state },
            accepted.zone,
            accepted.object,
            &accepted.touched,
        );
    }

    /// Why `avatar` may not walk into `zone` as things stand (an admin's lock, the zone's
    /// capacity), if it may not. A pass from an admitted knock overrides this.
    fn entry_refusal(&self, avatar: &Avatar, zone: ZoneIndex) -> Option<CorrectionReason> {
        let state = &self.zones[usize::from(zone.0)];
        if state.locked && avatar.role != Role::Admin {
            return Some(CorrectionReason::ZoneLocked);
        }
        let capacity = state.capacity.or(self.world.zone(zone).kind.capacity())?;
        (state.members.len() >= capacity as usize).then_some(CorrectionReason::ZoneFull)
    }

    #[allow(clippy::too_many_arguments)] // one accepted move's parts, kept apart for clarity
    fn apply_move(
        &mut self,
        now: Instant,
        id: AvatarId,
        to: Position,
        pose: Pose,
        zone: ZoneIndex,
        object: Option<ObjectIndex>,
        touched: &isoplane_world_format::TouchedObjects,
    ) {
        self.stats.moves_accepted += 1;
        let Some(avatar) = self.avatars.get_mut(&id) else { return };
        let moved = avatar.position != to || avatar.facing != pose.facing || avatar.state != pose.state;
        avatar.position = to;
        avatar.facing = pose.facing;
        avatar.state = pose.state;
        let old_zone = avatar.zone;
        let old_held = avatar.held;
        if old_held != object {
            // What was passed on the way counts as the previous object for chains.
            let passed = touched.iter().filter(|&o| Some(o) != object).last();
            avatar.previous_object = passed.or(old_held).or(avatar.previous_object);
            avatar.held = object;
        }
        if old_held != object {
            if let Some(old) = old_held {
                self.release(old, id);
            }
            if let Some(new) = object {
                self.holders.entry(new).or_default().push(id);
            }
        }
        if zone != old_zone {
            self.change_zone(id, old_zone, zone);
        } else if moved {
            let state = &mut self.zones[usize::from(zone.0)];
            state.changed.insert(id);
            if matches!(self.world.zone(zone).kind, ZoneKind::Open { .. } | ZoneKind::Stage { .. }) {
                // Proximity and podium decide pairings there.
                state.replan = true;
            }
        }
        self.schedule_tick(now);
    }

    fn change_zone(&mut self, id: AvatarId, from: ZoneIndex, to: ZoneIndex) {
        self.stats.zone_changes += 1;
        let Some(avatar) = self.avatars.get_mut(&id) else { return };
        avatar.zone = to;
        avatar.peers.clear();
        let info = avatar.info();
        let conn = avatar.conn;
        let old = &mut self.zones[usize::from(from.0)];
        old.members.remove(&id);
        old.changed.remove(&id);
        old.replan = true;
        self.unpair(from, id);
        self.send_zone(from, Some(id), &ServerMessage::AvatarLeft { avatar: id });
        self.page_opener_left(from, id);
        self.left_zone_media(from, id);
        self.send_zone(to, Some(id), &ServerMessage::AvatarEntered { avatar: info });
        let new = &mut self.zones[usize::from(to.0)];
        new.members.insert(id);
        new.replan = true;
        if let Some(conn) = conn
            && let Some(snapshot) = self.snapshot_for(conn)
        {
            self.send(conn, snapshot);
            let json = self.zone_chat_history(to);
            self.outputs.push_back(Output::SendJson { conn, json });
        }
        self.entered_zone_media(to, conn);
        self.prompt_knocks(id);
    }

    /// A WebRTC payload for a peer: relayed only between avatars the server paired.
    pub fn handle_signal(&mut self, conn: ConnId, to: AvatarId, kind: SignalKind, data: serde_json::Value) {
        let Some(&from) = self.by_conn.get(&conn) else { return };
        let paired = self.avatars.get(&from).is_some_and(|a| a.peers.contains(&to));
        match self.avatars.get(&to).and_then(|a| a.conn) {
            Some(target) if paired => {
                self.stats.signals_relayed += 1;
                self.send(target, ServerMessage::Signal { from, kind, data });
            }
            _ => {
                let code = ErrorCode::NotPaired;
                self.send(conn, ServerMessage::Error { code, message: code.text().to_owned() });
            }
        }
    }

    /// Someone says how available they are: their zone, them included, is told; turning
    /// do-not-disturb on or off re-plans the zone's media at the next tick.
    pub fn set_status(&mut self, now: Instant, conn: ConnId, status: Status) {
        let Some(&id) = self.by_conn.get(&conn) else { return };
        let Some(avatar) = self.avatars.get_mut(&id) else { return };
        let before = std::mem::replace(&mut avatar.status, status);
        if before == status {
            return;
        }
        let zone = avatar.zone;
        if (before == Status::DoNotDisturb) != (status == Status::DoNotDisturb) {
            self.zones[usize::from(zone.0)].replan = true;
            self.schedule_tick(now);
        }
        self.send_zone(zone, None, &ServerMessage::StatusChanged { avatar: id, status });
    }

    /// A client's view of its connectivity: a failure gets it relayed links from now on.
    pub fn handle_media_report(&mut self, now: Instant, conn: ConnId, ice: IceOutcome) {
        let Some(&id) = self.by_conn.get(&conn) else { return };
        let Some(avatar) = self.avatars.get_mut(&id) else { return };
        // Once relayed, stay relayed: a link that failed once would fail again.
        if ice == IceOutcome::Failed && !avatar.relay_needed {
            avatar.relay_needed = true;
            let zone = avatar.zone;
            self.zones[usize::from(zone.0)].replan = true;
            self.schedule_tick(now);
        }
    }

    /// Presence ticks fall on a fixed grid of `tick_interval` from the first one, so a
    /// tick that ran late does not push every later one back: under load the zone is still
    /// served at the configured rate, not at the rate minus each tick's lateness.
    fn schedule_tick(&mut self, now: Instant) {
        if self.next_tick.is_some() {
            return;
        }
        let interval = self.config.tick_interval;
        let next = match self.last_tick_due {
            Some(due) if !interval.is_zero() => {
                let elapsed = now.saturating_duration_since(due).as_nanos() / interval.as_nanos();
                due + interval * u32::try_from(elapsed + 1).unwrap_or(u32::MAX)
            }
            _ => now + interval,
        };
        self.next_tick = Some(next);
    }

    /// When the engine next needs [`WorldEngine::handle_timeout`].
    pub fn poll_timeout(&self) -> Option<Instant> {
        let expiries = self.avatars.values().filter_map(|a| a.detached_since).map(|t| t + self.config.resume_grace);
        let holds = self.zones.iter().filter_map(|z| z.policy.next_check(&self.config.policy));
        let renewals = self.zones.iter().filter_map(|z| z.recording.as_ref().and_then(zone_media::Recording::renew_at));
        self.next_tick.into_iter().chain(expiries).chain(holds).chain(renewals).chain(self.people_deadline()).min()
    }

    /// The next effect to carry out.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// Runs what is due at `now`: the presence tick, media plans, expired sessions.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.observe_unix_ms(self.unix_ms(now));
        let expired: Vec<AvatarId> = self
            .avatars
            .values()
            .filter(|a| a.detached_since.is_some_and(|t| now >= t + self.config.resume_grace))
            .map(|a| a.id)
            .collect();
        for id in expired {
            self.remove_avatar(id);
        }
        if let Some(due) = self.next_tick.filter(|due| now >= *due) {
            self.next_tick = None;
            self.last_tick_due = Some(due);
            self.tick = self.tick.wrapping_add(1);
            let interval = self.config.tick_interval.as_nanos().max(1);
            self.stats.presence_ticks_missed += u64::try_from((now - due).as_nanos() / interval).unwrap_or(u64::MAX);
            self.flush_presence();
        }
        self.people_timeout(now);
        self.plan_media(now);
        if self.zones.iter().any(|z| z.replan || !z.changed.is_empty()) {
            self.schedule_tick(now);
        }
    }

    fn flush_presence(&mut self) {
        for zone in &mut self.zones {
            if zone.changed.is_empty() {
                continue;
            }
            let entries: Vec<PresenceEntry> = zone
                .changed
                .iter()
                .filter_map(|id| self.avatars.get(id))
                .map(|a| PresenceEntry {
                    avatar: a.id,
                    position: Point { x: a.position.x, y: a.position.y },
                    pose: Pose { facing: a.facing, state: a.state },
                })
                .collect();
            zone.changed.clear();
            let recipients: Vec<ConnId> =
                zone.members.iter().filter_map(|id| self.avatars.get(id).and_then(|a| a.conn)).collect();
            if recipients.is_empty() || entries.is_empty() {
                continue;
            }
            self.stats.presence_frames += 1;
            self.stats.presence_deliveries += recipients.len() as u64;
            let frame = Bytes::from(encode_presence(self.tick, &entries));
            self.outputs.push_back(Output::Presence { recipients, frame });
        }
    }

    /// The SFU nodes that may take rooms now (from the SFU directory). Zones on a node
    /// that is gone move to another, or back to peer-to-peer if none has room.
    pub fn set_sfu_nodes(&mut self, now: Instant, nodes: Vec<SfuNode>) {
        self.sfu_nodes = nodes;
        let gone: Vec<ZoneIndex> = self
            .placements
            .iter()
            .filter(|(_, node)| !self.sfu_nodes.iter().any(|n| &n.id == *node))
            .map(|(zone, _)| *zone)
            .collect();
        for zone in gone {
            self.placements.remove(&zone);
            self.zones[usize::from(zone.0)].replan = true;
        }
        // Zones waiting for an SFU may escalate now; the tick looks at every zone.
        self.schedule_tick(now);
    }

    /// The SFU node serving `zone`, choosing one (the least loaded with room) if the zone
    /// has none yet.
    fn sfu_node_for(&mut self, zone: ZoneIndex) -> Option<&SfuNode> {
        let placed = self.placements.get(&zone).and_then(|id| self.sfu_nodes.iter().position(|n| &n.id == id));
        let index = match placed {
            Some(index) => index,
            None => {
                let placed_on = |id: &str| self.placements.values().filter(|p| *p == id).count();
                let index = (0..self.sfu_nodes.len())
                    .filter(|&i| self.sfu_nodes[i].has_room())
                    .min_by_key(|&i| (self.sfu_nodes[i].participants, placed_on(&self.sfu_nodes[i].id)))?;
                self.placements.insert(zone, self.sfu_nodes[index].id.clone());
                index
            }
        };
        self.sfu_nodes.get(index)
    }

    /// Asks the SFU to end the avatar's session in the room of `plan`, if it has one
    /// and its node is still there.
    fn revoke_sfu_session(&mut self, plan: &PlanKey, avatar: AvatarId) {
        if let (Some(room), Some(node)) = (&plan.sfu_room, &plan.sfu_node)
            && self.sfu_nodes.iter().any(|n| n.control_url == node.control_url)
        {
            let control_url = node.control_url.clone();
            self.outputs.push_back(Output::SfuRevoke { room: room.clone(), avatar, control_url });
        }
    }

    fn plan_media(&mut self, now: Instant) {
        let refresh_after = self.config.media.turn.as_ref().map(|t| t.ttl / 2);
        let world = Arc::clone(&self.world);
        for index in 0..self.zones.len() {
            let zone_index = ZoneIndex(index as u16);
            let kind = world.zone(zone_index).kind;
            let placed = self.placements.get(&zone_index).is_some_and(|id| self.sfu_nodes.iter().any(|n| &n.id == id));
            let sfu_available =
                self.config.media.sfu.is_some() && (placed || self.sfu_nodes.iter().any(SfuNode::has_room));
            let people = self.zones[index].members.len();
            let before = self.zones[index].policy.mode();
            // A recording, or a broadcaster's stream, needs the SFU however few are inside.
            let needs_sfu = self.zones[index].recording.is_some() || self.zones[index].ingest.is_some();
            let mode =
                self.zones[index].policy.update(kind, people, needs_sfu, sfu_available, &self.config.policy, now);
            let node = if mode == ZoneMode::Sfu {
                self.sfu_node_for(zone_index)
                    .map(|n| SfuEndpoint { url: n.url.clone(), control_url: n.control_url.clone() })
            } else {
                self.placements.remove(&zone_index);
                None
            };
            self.keep_recording_on(now, zone_index, node.as_ref());
            self.keep_ingest_on(now, zone_index, node.as_ref().map(|n| n.control_url.as_str()));
            let credentials_due = self.zones[index].members.iter().any(|id| {
                self.avatars
                    .get(id)
                    .is_some_and(|a| a.plan_sent_at.zip(refresh_after).is_some_and(|(sent, after)| now >= sent + after))
            });
            if !(self.zones[index].replan || mode != before || credentials_due) {
                continue;
            }
            self.zones[index].replan = false;
            let members: Vec<AvatarId> = self.zones[index].members.iter().copied().collect();
            let room = format!("{}/{}", self.name, world.zone(zone_index).id);
            let plans = {
                let people: Vec<Participant<'_>> = members
                    .iter()
                    .filter_map(|id| self.avatars.get(id))
                    .map(|a| Participant {
                        avatar: a.id,
                        position: a.position,
                        relay_needed: a.relay_needed,
                        peers: &a.peers,
                        mute: a.mute,
                        do_not_disturb: a.status == Status::DoNotDisturb,
                    })
                    .collect();
                plan_zone(kind, mode, &room, &people, self.config.policy.mesh_max_peers as usize)
            };
            let e2ee = world.zone(zone_index).e2ee;
            let plans = plans.into_iter().map(|plan| PlanKey {
                sfu_node: node.clone().filter(|_| plan.sfu_room.is_some()),
                e2ee,
                ..plan
            });
            for (id, plan) in members.into_iter().zip(plans) {
                self.offer_plan(now, id, plan, credentials_due);
            }
        }
    }

    /// Records an avatar's plan and sends it if it changed (or its credentials age).
    fn offer_plan(&mut self, now: Instant, id: AvatarId, plan: PlanKey, refresh: bool) {
        let unix = self.unix(now);
        let Some(avatar) = self.avatars.get_mut(&id) else { return };
        avatar.peers = plan.peers.iter().map(|p| p.avatar).collect();
        let unchanged = avatar.plan.as_ref() == Some(&plan);
        if unchanged && !refresh && !avatar.resend_plan {
            return;
        }
        if let Some(old) = avatar.plan.clone()
            && (old.sfu_room != plan.sfu_room || old.sfu_node != plan.sfu_node)
        {
            self.revoke_sfu_session(&old, id);
        }
        let Some(avatar) = self.avatars.get_mut(&id) else { return };
        let Some(conn) = avatar.conn else {
            avatar.plan = Some(plan);
            return;
        };
        let message =
            ServerMessage::Media { plan: media_plan(&self.config.media, &plan, &avatar.user, avatar.id, unix) };
        avatar.plan = Some(plan);
        avatar.plan_sent_at = Some(now);
        avatar.resend_plan = false;
        self.send(conn, message);
    }
}

/// The plan as sent: ICE servers with fresh TURN credentials, and the SFU token.
fn media_plan(config: &MediaConfig, plan: &PlanKey, user: &str, avatar: AvatarId, unix: u64) -> MediaPlan {
    let mut ice_servers = Vec::new();
    if !config.stun_urls.is_empty() {
        ice_servers.push(IceServer { urls: config.stun_urls.clone(), username: None, credential: None });
    }
    if let Some(turn) = &config.turn {
        let credentials = turn_credentials::mint(&turn.secret, user, unix, turn.ttl.as_secs());
        ice_servers.push(IceServer {
            urls: turn.urls.clone(),
            username: Some(credentials.username),
            credential: Some(credentials.password),
        });
    }
    let sfu = match (&plan.sfu_room, &plan.sfu_node, &config.sfu) {
        (Some(room), Some(node), Some(sfu)) => {
            let claims = SfuClaims {
                room: room.clone(),
                sub: user.to_owned(),
                avatar,
                publish: plan.publish,
                audio_muted: plan.mute.audio,
                video_muted: plan.mute.video,
                e2ee: plan.e2ee,
                exp: unix + sfu.token_ttl.as_secs(),
            };
            Some(SfuAccess { url: node.url.clone(), room: room.clone(), token: sfu.key.sign(&claims) })
        }
        _ => None,
    };
    MediaPlan {
        topology: plan.topology,
        ice_servers,
        peers: plan.peers.clone(),
        sfu,
        publish: plan.publish,
        audio_muted: plan.mute.audio,
        video_muted: plan.mute.video,
        e2ee: plan.e2ee,
    }
}

fn correction_reason(rejection: MoveRejection) -> CorrectionReason {
    match rejection {
        MoveRejection::OffGrid => CorrectionReason::OffGrid,
        MoveRejection::TooFast { .. } => CorrectionReason::TooFast,
        MoveRejection::Blocked { .. } => CorrectionReason::Blocked,
        MoveRejection::Wall { .. } => CorrectionReason::Wall,
        MoveRejection::Cliff { .. } => CorrectionReason::Cliff,
        MoveRejection::NotThroughEntry { .. } => CorrectionReason::NotThroughEntry,
    }
}

#[cfg(test)]
mod tests;
