//! One simulated person: join, walk, measure, leave and come back, reconnect when lost.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use isoplane_sfu::protocol::{ClientMessage as SfuClientMessage, ServerMessage as SfuServerMessage};
use isoplane_signaling::client::{Client, ClientError, ClientWriter, Event};
use isoplane_signaling::protocol::binary::PresenceEntry;
use isoplane_signaling::protocol::{
    AvatarId, AvatarState, ClientMessage, ErrorCode, MediaPlan, ModeratedAction, Point, ServerMessage, SfuAccess,
    SignalKind, Topology,
};
use isoplane_world_format::{Facing, SUBTILE};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tokio::net::TcpStream;
use tokio::time::MissedTickBehavior;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::backoff::{Backoff, base_from_hint};
use super::world::{CrowdWorld, Rect};
use super::{CrowdSettings, Shared, add, lock};

/// A join (connect, welcome, snapshot) that takes longer has failed.
const JOIN_TIMEOUT: Duration = Duration::from_secs(10);
/// Opening an SFU session, likewise.
const SFU_TIMEOUT: Duration = Duration::from_secs(5);
/// Saying goodbye to a server that may be gone takes no longer than this.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);
/// Moves remembered for the latency measure: about 2 s at 15 moves/s.
const REMEMBERED_MOVES: usize = 32;
/// Presence positions are sub-tile units rounded down to a multiple of this.
const PRESENCE_QUANTUM: i32 = 4;

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Where a person recently moved, and when: the receivers' side of the latency measure.
#[derive(Debug, Default)]
pub(super) struct SentMoves {
    recent: VecDeque<((i32, i32), Instant)>,
}

fn quantised(point: Point) -> (i32, i32) {
    (point.x.div_euclid(PRESENCE_QUANTUM), point.y.div_euclid(PRESENCE_QUANTUM))
}

impl SentMoves {
    fn push(&mut self, point: Point, at: Instant) {
        if self.recent.len() == REMEMBERED_MOVES {
            self.recent.pop_front();
        }
        self.recent.push_back((quantised(point), at));
    }

    /// When the move to this presence position was sent (the latest such move).
    fn sent_at(&self, seen: Point) -> Option<Instant> {
        let key = quantised(seen);
        self.recent.iter().rev().find(|(point, _)| *point == key).map(|(_, at)| *at)
    }

    fn clear(&mut self) {
        self.recent.clear();
    }
}

/// Errors after which the browser does not come back by itself (web/js/net.js).
fn is_final(code: ErrorCode) -> bool {
    matches!(
        code,
        ErrorCode::Replaced
            | ErrorCode::InvalidToken
            | ErrorCode::ExpiredToken
            | ErrorCode::Forbidden
            | ErrorCode::UnknownWorld
            | ErrorCode::UnknownSpawn
            | ErrorCode::TooManyConnections
            | ErrorCode::Kicked
            | ErrorCode::Banned
    )
}

/// A protocol code as it is written on the wire (`not_paired`).
fn code_name(code: impl serde::Serialize) -> String {
    match serde_json::to_value(code) {
        Ok(serde_json::Value::String(name)) => name,
        _ => "unknown".into(),
    }
}

/// How a connection ended.
enum End {
    /// The crowd is stopping.
    Stopped,
    /// Churn: the person said `leave`.
    Left,
    /// The connection dropped or the join failed; the server's `reconnect.after_ms` if it
    /// sent one.
    Lost { hint: Option<u32> },
    /// Kicked or banned.
    Moderated,
    /// An error the browser treats as final.
    Final,
}

/// Sleeps unless the crowd stops first; whether it slept.
async fn pause(shared: &Shared, duration: Duration) -> bool {
    tokio::select! {
        () = tokio::time::sleep(duration) => true,
        () = shared.stop.cancelled() => false,
    }
}

/// The person's task.
pub(super) async fn run(index: usize, shared: Arc<Shared>) {
    let settings = &shared.settings.0;
    let mut rng = SmallRng::from_os_rng();
    let arrival = settings.ramp_up.mul_f64(index as f64 / settings.people.max(1) as f64);
    if !pause(&shared, arrival).await {
        return;
    }
    let spawn = settings.layout.zones.get(index % settings.layout.zones.len().max(1)).map(|z| z.spawn.as_str());
    let mut backoff = Backoff::default();
    let mut lost = false;
    loop {
        shared.count_attempt();
        let token = (settings.token)(index);
        let join = tokio::time::timeout(JOIN_TIMEOUT, Client::join_at(&settings.url, &token, &settings.world, spawn));
        let joined = tokio::select! {
            joined = join => joined,
            () = shared.stop.cancelled() => return,
        };
        let end = match joined {
            Ok(Ok(client)) => {
                add(&shared.counters.joins);
                if client.resumed() {
                    add(&shared.counters.resumed);
                }
                if std::mem::take(&mut lost) {
                    add(&shared.counters.reconnects);
                }
                backoff.joined();
                Session::new(index, &shared, &mut rng, &client).run(client).await
            }
            Ok(Err(error)) => {
                add(&shared.counters.join_failures);
                match error {
                    ClientError::Refused { code, .. } => {
                        shared.count_error(code_name(code));
                        if is_final(code) { End::Final } else { End::Lost { hint: None } }
                    }
                    other => {
                        // Counted by kind (the server down, a reset, a timeout…) to tell
                        // why joins failed.
                        let kind = match other {
                            ClientError::Socket(error) => format!("join:{}", socket_error_kind(&error)),
                            ClientError::Unexpected(_) => "join:unexpected".to_owned(),
                            ClientError::Timeout => "join:timeout".to_owned(),
                            ClientError::Closed | ClientError::Refused { .. } => "join:closed".to_owned(),
                        };
                        shared.count_error(kind);
                        End::Lost { hint: None }
                    }
                }
            }
            Err(_elapsed) => {
                shared.count_error("join:no_answer".to_owned());
                add(&shared.counters.join_failures);
                End::Lost { hint: None }
            }
        };
        match end {
            End::Stopped => return,
            End::Moderated => return add(&shared.counters.moderated),
            End::Final => return add(&shared.counters.gave_up),
            End::Left => {
                add(&shared.counters.leaves);
                let mean = settings.churn.map_or(Duration::ZERO, |c| c.mean_pause);
                if !pause(&shared, mean.mul_f64(rng.random_range(0.5..1.5))).await {
                    return;
                }
            }
            End::Lost { hint } => {
                if let Some(after_ms) = hint {
                    backoff.base_ms = base_from_hint(after_ms);
                }
                lost = true;
                if !pause(&shared, backoff.next_delay(rng.random())).await {
                    return;
                }
            }
        }
    }
}

/// The walk: straight lines to random points, mostly in the zone the person is in.
#[derive(Debug)]
struct Walker {
    position: Point,
    target: Point,
    /// Sub-tile units per move.
    step: f64,
    /// The zone a person in the hall heads for.
    home: usize,
}

/// A random point on a rectangle, half a tile from its edges (and so inside the grid).
fn point_in(rng: &mut SmallRng, area: Rect) -> Point {
    let half = SUBTILE / 2;
    let (left, top) = (area.x as i32 * SUBTILE + half, area.y as i32 * SUBTILE + half);
    let (right, bottom) = (left + (area.w as i32 - 1) * SUBTILE, top + (area.h as i32 - 1) * SUBTILE);
    Point { x: rng.random_range(left..=right), y: rng.random_range(top..=bottom) }
}

/// The way from `from` to `to`, north (−y) first and clockwise.
fn facing(from: Point, to: Point) -> Facing {
    let angle = f64::from(to.x - from.x).atan2(f64::from(from.y - to.y));
    let sector = (angle / std::f64::consts::FRAC_PI_4).round() as i32;
    Facing::ALL[sector.rem_euclid(8) as usize]
}

impl Walker {
    fn choose_target(&mut self, rng: &mut SmallRng, layout: &CrowdWorld, wander: f64) {
        let zones = layout.zones.len();
        if zones == 0 {
            return;
        }
        let here = layout.zone_at(self.position).unwrap_or(self.home);
        let zone = if zones > 1 && rng.random_bool(wander.clamp(0.0, 1.0)) {
            (here + rng.random_range(1..zones)) % zones
        } else {
            here
        };
        self.target = point_in(rng, layout.zones[zone].area);
    }

    /// The next position on the way, and the way it faces.
    fn advance(&mut self, rng: &mut SmallRng, layout: &CrowdWorld, wander: f64) -> (Point, Facing) {
        let from = self.position;
        let (dx, dy) = (f64::from(self.target.x - from.x), f64::from(self.target.y - from.y));
        let distance = dx.hypot(dy);
        if distance <= self.step {
            self.position = self.target;
            self.choose_target(rng, layout, wander);
        } else {
            let scale = self.step / distance;
            self.position = Point { x: from.x + (dx * scale) as i32, y: from.y + (dy * scale) as i32 };
        }
        (self.position, facing(from, self.position))
    }
}

/// An open SFU session and the plan's access it was opened with.
struct SfuSession {
    socket: Socket,
    url: String,
    room: String,
}

/// The next message of the SFU session, or never when there is none.
async fn next_sfu(session: &mut Option<SfuSession>) -> Option<Result<Message, tokio_tungstenite::tungstenite::Error>> {
    match session {
        Some(session) => session.socket.next().await,
        None => std::future::pending().await,
    }
}

/// One joined connection.
struct Session<'a> {
    index: usize,
    shared: &'a Shared,
    settings: &'a CrowdSettings,
    rng: &'a mut SmallRng,
    avatar: AvatarId,
    walker: Walker,
    /// The peers of the current plan, for signals.
    peers: Vec<AvatarId>,
    hint: Option<u32>,
    moderated: bool,
    final_error: bool,
}

enum Step {
    Stop,
    Event(Result<Event, ClientError>),
    Sfu(Option<Result<Message, tokio_tungstenite::tungstenite::Error>>),
    Tick,
}

impl<'a> Session<'a> {
    fn new(index: usize, shared: &'a Shared, rng: &'a mut SmallRng, client: &Client) -> Session<'a> {
        let settings = &shared.settings.0;
        let rate = f64::from(settings.moves_per_second.max(1));
        let zones = settings.layout.zones.len().max(1);
        let position = client.position();
        let mut walker = Walker {
            position,
            target: position,
            step: settings.walk_speed * f64::from(SUBTILE) / rate,
            home: index % zones,
        };
        walker.choose_target(rng, &settings.layout, settings.wander);
        Session {
            index,
            shared,
            settings,
            rng,
            avatar: client.avatar(),
            walker,
            peers: Vec::new(),
            hint: None,
            moderated: false,
            final_error: false,
        }
    }

    async fn run(mut self, client: Client) -> End {
        let counters = &self.shared.counters;
        counters.connected.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        lock(&self.shared.avatars).insert(self.avatar, self.index);
        lock(&self.shared.moves[self.index]).clear();
        let (mut writer, mut reader) = client.split();
        let mut sfu: Option<SfuSession> = None;
        let end = self.serve(&mut writer, &mut reader, &mut sfu).await;
        if matches!(end, End::Stopped | End::Left) {
            let _ = tokio::time::timeout(CLOSE_TIMEOUT, writer.send(&ClientMessage::Leave)).await;
        }
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, writer.close()).await;
        close_sfu(&mut sfu).await;
        {
            let mut avatars = lock(&self.shared.avatars);
            if avatars.get(&self.avatar) == Some(&self.index) {
                avatars.remove(&self.avatar);
            }
        }
        counters.connected.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        if matches!(end, End::Lost { .. }) {
            add(&counters.unexpected_closes);
        }
        end
    }

    /// Walks and listens until the connection ends.
    async fn serve(
        &mut self,
        writer: &mut ClientWriter,
        reader: &mut isoplane_signaling::client::ClientReader,
        sfu: &mut Option<SfuSession>,
    ) -> End {
        let moving = self.settings.moves_per_second > 0;
        let rate = self.settings.moves_per_second.max(1);
        let period = if moving { Duration::from_secs(1) / rate } else { Duration::from_secs(1) };
        // People tick out of step with each other, and skip the ticks a busy machine missed.
        let phase = period.mul_f64(self.rng.random());
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + phase, period);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
        let ticks_per_second = if moving { rate } else { 1 };
        let mut signal_countdown = self.signal_wait(ticks_per_second);
        let leave_at = self.settings.churn.map(|churn| {
            // Exponentially distributed stays.
            let u: f64 = self.rng.random_range(f64::EPSILON..1.0);
            Instant::now() + churn.mean_stay.mul_f64(-u.ln())
        });
        let stop = self.shared.stop.clone();
        let mut seq: u32 = 0;
        loop {
            let step = tokio::select! {
                () = stop.cancelled() => Step::Stop,
                event = reader.next_event() => Step::Event(event),
                message = next_sfu(sfu) => Step::Sfu(message),
                _ = ticker.tick() => Step::Tick,
            };
            match step {
                Step::Stop => return End::Stopped,
                Step::Event(Ok(Event::Presence { tick, entries })) => self.measure(tick, &entries),
                Step::Event(Ok(Event::Message(message))) => self.handle(message, sfu).await,
                Step::Event(Ok(Event::Closed(_)) | Err(ClientError::Socket(_) | ClientError::Closed)) => {
                    return self.lost();
                }
                Step::Event(Err(_unreadable)) => self.shared.count_error("unreadable".into()),
                Step::Sfu(message) => self.handle_sfu(message, sfu),
                Step::Tick => {
                    if leave_at.is_some_and(|at| Instant::now() >= at) {
                        return End::Left;
                    }
                    if moving {
                        seq = seq.wrapping_add(1);
                        let (point, facing) =
                            self.walker.advance(self.rng, &self.settings.layout, self.settings.wander);
                        lock(&self.shared.moves[self.index]).push(point, Instant::now());
                        if writer.send_move(seq, point, facing, AvatarState::Walking).await.is_err() {
                            return self.lost();
                        }
                        add(&self.shared.counters.moves_sent);
                    }
                    if self.settings.signals {
                        signal_countdown = signal_countdown.saturating_sub(1);
                        if signal_countdown == 0 {
                            signal_countdown = self.signal_wait(ticks_per_second);
                            if !self.send_signal(writer, seq).await {
                                return self.lost();
                            }
                        }
                    }
                }
            }
        }
    }

    /// How the connection ended when it was not the person's doing.
    fn lost(&self) -> End {
        if self.moderated {
            End::Moderated
        } else if self.final_error {
            End::Final
        } else {
            End::Lost { hint: self.hint }
        }
    }

    /// Ticks until the next signal: 1 to 3 seconds.
    fn signal_wait(&mut self, ticks_per_second: u32) -> u32 {
        self.rng.random_range(ticks_per_second..=3 * ticks_per_second)
    }

    /// A signal to one of the plan's peers, if it has any; false when the connection is gone.
    async fn send_signal(&mut self, writer: &mut ClientWriter, seq: u32) -> bool {
        if self.peers.is_empty() {
            return true;
        }
        let to = self.peers[self.rng.random_range(0..self.peers.len())];
        let data = serde_json::json!({"candidate": format!("crowd {} {seq}", self.index)});
        let signal = ClientMessage::Signal { to, kind: SignalKind::Candidate, data };
        if writer.send(&signal).await.is_err() {
            return false;
        }
        add(&self.shared.counters.signals_sent);
        true
    }

    /// Times one avatar of a presence frame (another each frame) against when its person
    /// sent that position.
    fn measure(&self, tick: u32, entries: &[PresenceEntry]) {
        let now = Instant::now();
        let others = entries.len().saturating_sub(usize::from(entries.iter().any(|e| e.avatar == self.avatar)));
        if others == 0 {
            return;
        }
        let pick = (tick as usize).wrapping_add(self.index) % others;
        let Some(entry) = entries.iter().filter(|e| e.avatar != self.avatar).nth(pick) else { return };
        let Some(sender) = lock(&self.shared.avatars).get(&entry.avatar).copied() else { return };
        let sent = lock(&self.shared.moves[sender]).sent_at(entry.position);
        if let Some(at) = sent {
            self.shared.latency.record(now.saturating_duration_since(at));
        }
    }

    async fn handle(&mut self, message: ServerMessage, sfu: &mut Option<SfuSession>) {
        let counters = &self.shared.counters;
        match message {
            ServerMessage::Correction { position, .. } => {
                add(&counters.corrections);
                self.walker.position = position;
            }
            ServerMessage::Media { plan } => {
                self.peers = match plan.topology {
                    Topology::P2p | Topology::Turn => plan.peers.iter().map(|p| p.avatar).collect(),
                    Topology::None | Topology::Sfu => Vec::new(),
                };
                if self.settings.sfu_sessions {
                    self.follow_plan(&plan, sfu).await;
                }
            }
            ServerMessage::Signal { .. } => add(&counters.signals_received),
            ServerMessage::Error { code, .. } => {
                self.shared.count_error(code_name(code));
                if is_final(code) {
                    self.final_error = true;
                }
            }
            ServerMessage::Reconnect { after_ms, .. } => self.hint = Some(after_ms),
            ServerMessage::Moderated { action: ModeratedAction::Kicked | ModeratedAction::Banned, .. } => {
                self.moderated = true;
            }
            _ => {}
        }
    }

    /// Opens, keeps or closes the SFU session as the plan says.
    async fn follow_plan(&mut self, plan: &MediaPlan, sfu: &mut Option<SfuSession>) {
        let wanted = plan.sfu.as_ref().filter(|_| plan.topology == Topology::Sfu);
        if let (Some(open), Some(access)) = (sfu.as_ref(), wanted)
            && open.url == access.url
            && open.room == access.room
        {
            return;
        }
        close_sfu(sfu).await;
        if let Some(access) = wanted {
            *sfu = self.open_sfu(access).await;
        }
    }

    async fn open_sfu(&self, access: &SfuAccess) -> Option<SfuSession> {
        let counters = &self.shared.counters;
        let opened = tokio::time::timeout(SFU_TIMEOUT, async {
            let (mut socket, _) = tokio_tungstenite::connect_async(access.url.as_str()).await.ok()?;
            let join = serde_json::to_string(&SfuClientMessage::Join { token: access.token.clone() }).ok()?;
            socket.send(Message::text(join)).await.ok()?;
            loop {
                match socket.next().await? {
                    Ok(Message::Text(text)) => return Some((socket, serde_json::from_str::<SfuServerMessage>(&text))),
                    Ok(Message::Ping(_) | Message::Pong(_)) => continue,
                    _ => return None,
                }
            }
        })
        .await;
        match opened {
            Ok(Some((socket, Ok(SfuServerMessage::Joined { .. })))) => {
                add(&counters.sfu_joined);
                return Some(SfuSession { socket, url: access.url.clone(), room: access.room.clone() });
            }
            Ok(Some((_, Ok(SfuServerMessage::Error { code, .. })))) => {
                add(&counters.sfu_refused);
                self.shared.count_error(format!("sfu:{}", code_name(code)));
            }
            Ok(Some((_, Ok(_other)))) => {
                add(&counters.sfu_refused);
                self.shared.count_error("sfu:unexpected".into());
            }
            Ok(Some((_, Err(_)))) => self.shared.count_error("sfu:unreadable".into()),
            Ok(None) | Err(_) => add(&counters.sfu_failed),
        }
        None
    }

    fn handle_sfu(
        &self,
        message: Option<Result<Message, tokio_tungstenite::tungstenite::Error>>,
        sfu: &mut Option<SfuSession>,
    ) {
        match message {
            Some(Ok(Message::Text(text))) => match serde_json::from_str::<SfuServerMessage>(&text) {
                Ok(SfuServerMessage::Error { code, fatal, .. }) => {
                    self.shared.count_error(format!("sfu:{}", code_name(code)));
                    if fatal {
                        *sfu = None;
                    }
                }
                Ok(SfuServerMessage::Removed { .. }) => *sfu = None,
                Ok(_) => {}
                Err(_) => self.shared.count_error("sfu:unreadable".into()),
            },
            Some(Ok(Message::Close(_)) | Err(_)) | None => *sfu = None,
            Some(Ok(_)) => {}
        }
    }
}

/// Says `leave` to the SFU and closes the session, if one is open.
async fn close_sfu(sfu: &mut Option<SfuSession>) {
    let Some(mut session) = sfu.take() else { return };
    let goodbye = async {
        if let Ok(leave) = serde_json::to_string(&SfuClientMessage::Leave) {
            let _ = session.socket.send(Message::text(leave)).await;
        }
        let _ = session.socket.close(None).await;
    };
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, goodbye).await;
}

/// A short name for why a WebSocket connection failed.
fn socket_error_kind(error: &tokio_tungstenite::tungstenite::Error) -> String {
    use tokio_tungstenite::tungstenite::Error;
    match error {
        Error::Io(io) => format!("{:?}", io.kind()),
        Error::Http(response) => format!("http_{}", response.status().as_u16()),
        Error::ConnectionClosed | Error::AlreadyClosed => "closed".to_owned(),
        Error::Protocol(_) => "protocol".to_owned(),
        _ => "other".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_presence_position_finds_the_move_it_came_from() {
        let mut moves = SentMoves::default();
        let start = Instant::now();
        for i in 0..40 {
            moves.push(Point { x: 1000 + i * 43, y: 2000 }, start + Duration::from_millis(i as u64 * 66));
        }
        // Presence rounds down to the quantum.
        let seen = Point { x: (1000 + 39 * 43) / 4 * 4, y: 2000 };
        assert_eq!(moves.sent_at(seen), Some(start + Duration::from_millis(39 * 66)));
        // Only the last REMEMBERED_MOVES are kept.
        assert_eq!(moves.sent_at(Point { x: 1000, y: 2000 }), None);
        assert_eq!(moves.sent_at(Point { x: 5, y: 5 }), None);
    }

    #[test]
    fn facings_go_clockwise_from_north() {
        let o = Point { x: 1000, y: 1000 };
        assert_eq!(facing(o, Point { x: 1000, y: 900 }), Facing::North);
        assert_eq!(facing(o, Point { x: 1100, y: 1000 }), Facing::East);
        assert_eq!(facing(o, Point { x: 1000, y: 1100 }), Facing::South);
        assert_eq!(facing(o, Point { x: 900, y: 900 }), Facing::NorthWest);
    }

    #[test]
    fn walkers_stay_on_their_zones_floor_and_keep_their_pace() {
        let layout = CrowdWorld::new(4);
        let mut rng = SmallRng::seed_from_u64(7);
        let start = Point { x: 8 * SUBTILE, y: 8 * SUBTILE };
        let mut walker = Walker { position: start, target: start, step: 40.0, home: 0 };
        walker.choose_target(&mut rng, &layout, 0.0);
        for _ in 0..2000 {
            let before = walker.position;
            let (after, _) = walker.advance(&mut rng, &layout, 0.0);
            let moved = f64::from(after.x - before.x).hypot(f64::from(after.y - before.y));
            assert!(moved <= 40.0 + 1.0, "{before:?} → {after:?}");
            assert_eq!(layout.zone_at(after), Some(0), "never wanders with wander 0");
        }
        // With wander 1 every destination is in another zone.
        let mut visited = std::collections::BTreeSet::new();
        for _ in 0..20_000 {
            walker.advance(&mut rng, &layout, 1.0);
            visited.extend(layout.zone_at(walker.position));
        }
        assert_eq!(visited.len(), 4, "{visited:?}");
    }
}
