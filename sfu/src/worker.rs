//! A worker thread: owns a share of the rooms (by hash of their name) with every
//! session in them, and a UDP media port of its own. This is the I/O shell around
//! [`Room`]: it reads datagrams and commands, passes them in with the time, and writes
//! out what the rooms put in their outbox.
//!
//! Every session's ICE candidate names its worker's port, so a peer's datagrams reach
//! the thread that owns its session: nothing on the packet path is handed between
//! threads, shared or locked. Datagrams come in with `recvmmsg` and go out with
//! `sendmmsg`, a batch per system call.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use isoplane_auth::SfuClaims;
use isoplane_service::udp_batch::{ReceiveBatch, SendBatch};
use object_store::ObjectStore;
use str0m::config::DtlsCert;
use str0m::net::{Protocol, Receive};
use str0m::{IceCreds, Input, Rtc};
use tokio::io::{AsyncReadExt, AsyncWriteExt, Interest};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::config::Limits;
use crate::demux;
use crate::egress::Egress;
use crate::metrics::Metrics;
use crate::participant::{Candidates, IngestLease, Participant, ParticipantId};
use crate::protocol::{
    AvatarId, ClientMessage, ErrorCode, ParticipantUpdate, Permissions, RoomSettings, RoomStats, RoomSummary,
    ServerMessage,
};
use crate::recording::store::RecordingStore;
use crate::room::{AdmitError, Outbox, RecordingRefused, Room, Who};
use crate::srtp_keys::{self, SessionKeys};

/// Messages queued towards one client; a client this far behind is dropped.
pub const CLIENT_QUEUE: usize = 256;
/// Commands queued towards one worker. A sender waits for room, so a join, a signal or
/// a control call is never lost, only slowed.
/// How long a stopped recording's ID is remembered (a late start for it is refused).
const STOPPED_MEMORY: Duration = Duration::from_secs(600);
pub const COMMAND_QUEUE: usize = 4096;
/// Longest ICE-TCP frame (RFC 4571 allows 65535; media never needs more than this).
const MAX_TCP_FRAME: usize = 4096;
/// How often rooms get their periodic work (speakers, meters, layer choices).
const TICK: Duration = Duration::from_millis(50);
/// Datagrams read or sent in one system call.
const BATCH: usize = 32;
/// Longest datagram read; longer ones are dropped (media and DTLS stay under an MTU).
const MAX_DATAGRAM: usize = 2048;
/// Sent datagrams' buffers a worker keeps for the ones it writes itself (about 1.5 KiB
/// each): enough for one packet to a room of a few hundred, at most 1.5 MiB.
const MAX_SPARE_BUFFERS: usize = 1024;
/// Reads of the socket in one go before the worker looks at its other inputs: a flood
/// cannot hold up commands, timers or ICE-TCP.
const READS_PER_TURN: usize = 4;

/// A frame read from an ICE-TCP connection: (peer, local address, bytes).
type TcpFrame = (SocketAddr, SocketAddr, Vec<u8>);

/// What the rest of the server asks of a worker.
#[derive(Debug)]
pub enum Command {
    Join {
        claims: SfuClaims,
        /// A broadcaster's stream (ingest.rs), not a client.
        ingest: bool,
        link: mpsc::Sender<ServerMessage>,
        reply: oneshot::Sender<Result<ParticipantId, (ErrorCode, String)>>,
    },
    Signal {
        participant: ParticipantId,
        message: ClientMessage,
    },
    Leave {
        participant: ParticipantId,
    },
    /// An ICE-TCP connection whose first frame (already read) names this worker.
    TcpConnection {
        stream: std::net::TcpStream,
        first_frame: Vec<u8>,
    },
    CreateRoom {
        room: String,
        settings: RoomSettings,
        reply: oneshot::Sender<()>,
    },
    CloseRoom {
        room: String,
        reply: oneshot::Sender<bool>,
    },
    Update {
        room: String,
        sub: String,
        update: ParticipantUpdate,
        reply: oneshot::Sender<bool>,
    },
    Remove {
        room: String,
        who: Who,
        reason: &'static str,
        reply: oneshot::Sender<bool>,
    },
    Stats {
        room: String,
        reply: oneshot::Sender<Option<RoomStats>>,
    },
    ListRooms {
        reply: oneshot::Sender<Vec<RoomSummary>>,
    },
    /// Records the room (created if nobody joined yet) as `id`.
    StartRecording {
        room: String,
        id: String,
        started_by: String,
        /// Only renew it: never start it.
        renew: bool,
        unix_ms: i64,
        reply: oneshot::Sender<Result<(), RecordingRefused>>,
    },
    /// Signaling says a broadcaster's stream goes on: `Some(connected)`, or `None` when
    /// it is not in the room.
    RenewIngest {
        room: String,
        avatar: AvatarId,
        reply: oneshot::Sender<Option<bool>>,
    },
    /// Stops recording the room (only recording `id`, when given; `id` can never start
    /// afterwards); answers whether it was recorded.
    StopRecording {
        room: String,
        id: Option<String>,
        reply: oneshot::Sender<bool>,
    },
}

/// What every worker shares: how to reach the others, and process-wide counters.
pub struct Shared {
    pub workers: Vec<mpsc::Sender<Command>>,
    pub metrics: Arc<Metrics>,
    pub limits: Arc<Limits>,
    pub candidates: Candidates,
    pub certificate: DtlsCert,
    pub next_participant: AtomicU64,
    /// Where recordings go, when recording is enabled.
    pub recording_store: Option<Arc<dyn ObjectStore>>,
    /// The service's multi-threaded runtime: recording uploads (request signing, TLS)
    /// run there, never on a worker's thread between media packets.
    pub uploads: tokio::runtime::Handle,
}

impl Shared {
    /// The worker that owns a room.
    pub fn worker_for_room(&self, room: &str) -> usize {
        worker_for_room(room, self.workers.len())
    }
}

/// Which of `workers` owns `room`: the same in every run and process.
pub fn worker_for_room(room: &str, workers: usize) -> usize {
    // FNV-1a: stable across runs and processes, unlike the std hasher.
    let hash = room
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3));
    (hash % workers.max(1) as u64) as usize
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared").field("workers", &self.workers.len()).finish_non_exhaustive()
    }
}

pub struct Worker {
    index: usize,
    shared: Arc<Shared>,
    socket: Arc<UdpSocket>,
    local_udp: SocketAddr,
    /// Message headers for sending, kept from batch to batch.
    send_batch: SendBatch,
    rooms: HashMap<String, Room>,
    /// Room settings set through the control API before anyone joined.
    settings: HashMap<String, RoomSettings>,
    /// Each participant's room (the name shared, so naming a room to drive is no copy).
    participant_rooms: HashMap<ParticipantId, Arc<str>>,
    links: HashMap<ParticipantId, mpsc::Sender<ServerMessage>>,
    ufrags: HashMap<String, ParticipantId>,
    /// Peers' addresses, learnt from their STUN requests: who a datagram is from.
    addresses: HashMap<(Protocol, SocketAddr), ParticipantId>,
    tcp_writers: HashMap<SocketAddr, mpsc::Sender<Vec<u8>>>,
    tcp_frames: (mpsc::Sender<TcpFrame>, mpsc::Receiver<TcpFrame>),
    /// Rooms whose sessions wait to be drained at the end of this turn.
    rooms_to_drive: Vec<Arc<str>>,
    timers: BinaryHeap<Reverse<(Instant, ParticipantId)>>,
    /// This worker's uploader of recording pieces (started with the worker).
    recordings: Option<RecordingStore>,
    /// Recordings stopped lately, by ID: a start that arrives after its stop (requests
    /// overtake each other) is refused.
    stopped_recordings: HashMap<String, Instant>,
    /// This worker's share of the `recordings` gauge.
    recording_rooms: i64,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker").field("index", &self.index).field("rooms", &self.rooms.len()).finish()
    }
}

impl Worker {
    /// Takes over this worker's media socket (non-blocking); call inside the worker's
    /// runtime, which polls it from then on.
    pub fn new(index: usize, shared: Arc<Shared>, socket: std::net::UdpSocket) -> std::io::Result<Worker> {
        let local_udp = socket.local_addr()?;
        Ok(Worker {
            index,
            shared,
            socket: Arc::new(UdpSocket::from_std(socket)?),
            local_udp,
            send_batch: SendBatch::new(BATCH),
            rooms: HashMap::new(),
            settings: HashMap::new(),
            participant_rooms: HashMap::new(),
            links: HashMap::new(),
            ufrags: HashMap::new(),
            addresses: HashMap::new(),
            tcp_writers: HashMap::new(),
            tcp_frames: mpsc::channel(1024),
            rooms_to_drive: Vec::new(),
            timers: BinaryHeap::new(),
            recordings: None,
            stopped_recordings: HashMap::new(),
            recording_rooms: 0,
        })
    }

    /// Runs until shutdown; every session in this worker's rooms is ended on the way out.
    pub async fn run(mut self, mut commands: mpsc::Receiver<Command>, shutdown: CancellationToken) {
        self.recordings = self
            .shared
            .recording_store
            .clone()
            .map(|store| RecordingStore::start(store, Arc::clone(&self.shared.metrics), &self.shared.uploads));
        let mut received = ReceiveBatch::new(BATCH, MAX_DATAGRAM);
        let socket = self.socket.clone();
        // One outbox for the worker's life: emptied after each send, its vectors keep
        // their room, so a turn's output allocates nothing of its own.
        let mut out = Outbox::default();
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let next_timer = self.timers.peek().map(|Reverse((at, _))| *at);
            let sleep_until = next_timer.unwrap_or_else(|| Instant::now() + Duration::from_secs(1));
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                Some(command) = commands.recv() => self.on_command(command, &mut out),
                Some((source, destination, frame)) = self.tcp_frames.1.recv() => {
                    self.on_datagram(Protocol::Tcp, source, destination, &frame, &mut out);
                }
                _ = tokio::time::sleep_until(sleep_until.into()) => self.on_timers(&mut out),
                _ = tick.tick() => self.on_tick(&mut out),
                // Last: a socket that stays full (a flood, or more than the worker can
                // forward) must not hold up timers (RTCP, NACKs, estimates), layer
                // choices or ICE-TCP sessions.
                ready = socket.readable() => {
                    if ready.is_ok() {
                        self.read_udp(&socket, &mut received, &mut out);
                    }
                }
            }
            self.drive_rooms(&mut out);
            self.flush(&mut out);
        }
        let now = Instant::now();
        for room in self.rooms.values_mut() {
            room.stop_recording(now, &mut out);
            room.close("the SFU is shutting down", &mut out);
        }
        self.flush(&mut out);
        if let Some(recordings) = self.recordings.take() {
            recordings.close().await;
        }
    }

    /// Reads what waits on the media socket, a batch per call, until the queue is found
    /// empty or [`READS_PER_TURN`] batches were read (then the socket stays ready and is
    /// read again after the other inputs had their turn).
    fn read_udp(&mut self, socket: &UdpSocket, received: &mut ReceiveBatch, out: &mut Outbox) {
        let ipv6 = self.local_udp.is_ipv6();
        for _ in 0..READS_PER_TURN {
            let mut count = 0;
            let read = socket.try_io(Interest::READABLE, || {
                count = received.read(socket, ipv6)?;
                // A short batch found the queue empty. Answering WouldBlock makes tokio
                // forget the readiness (a datagram arriving later raises it again) and
                // saves a read that would find nothing.
                if count < received.capacity() {
                    return Err(std::io::ErrorKind::WouldBlock.into());
                }
                Ok(())
            });
            // ICMP errors (a peer's port unreachable) surface here on Linux, once each:
            // the socket stays ready, and what is behind them is read at the next turn.
            if count == 0 {
                return;
            }
            for (contents, source) in received.datagrams() {
                self.on_datagram(Protocol::Udp, source, self.local_udp, contents, out);
                // A packet for a large room is a batch of datagrams of its own: they leave
                // before the rest of what was read is handled.
                if out.transmits.len() >= BATCH {
                    self.send_transmits(out);
                }
            }
            if read.is_err() {
                return;
            }
        }
    }

    fn on_command(&mut self, command: Command, out: &mut Outbox) {
        let now = Instant::now();
        match command {
            Command::Join { claims, ingest, link, reply } => {
                let result = self.join(now, claims, ingest, link, out);
                let _ = reply.send(result);
            }
            Command::Signal { participant, message } => self.on_signal(now, participant, message, out),
            Command::Leave { participant } => {
                if let Some(room) = self.participant_rooms.get(&participant).and_then(|r| self.rooms.get_mut(&**r)) {
                    room.remove(participant, "left", out);
                }
            }
            Command::TcpConnection { stream, first_frame } => self.adopt_tcp(stream, first_frame, out),
            Command::CreateRoom { room, settings, reply } => {
                let max = self.max_participants(&settings);
                if let Some(existing) = self.rooms.get_mut(&room) {
                    existing.max_participants = max;
                }
                self.settings.insert(room, settings);
                let _ = reply.send(());
            }
            Command::CloseRoom { room, reply } => {
                self.settings.remove(&room);
                let found = match self.rooms.get_mut(&room) {
                    Some(open) => {
                        open.close("the room was closed", out);
                        true
                    }
                    None => false,
                };
                let _ = reply.send(found);
            }
            Command::Update { room, sub, update, reply } => {
                let found = self.rooms.get_mut(&room).is_some_and(|r| r.update(now, &sub, &update, out));
                let _ = reply.send(found);
            }
            Command::Remove { room, who, reason, reply } => {
                let found = self.rooms.get_mut(&room).is_some_and(|r| r.remove_matching(&who, reason, out));
                let _ = reply.send(found);
            }
            Command::Stats { room, reply } => {
                let _ = reply.send(self.rooms.get(&room).map(Room::stats));
            }
            Command::StartRecording { room, id, started_by, renew, unix_ms, reply } => {
                let recording_it = self.rooms.get(&room).and_then(Room::recording_id) == Some(id.as_str());
                let result = if renew && !recording_it {
                    Err(RecordingRefused::NotRecording)
                } else {
                    self.start_recording(now, room, &id, &started_by, unix_ms, out)
                };
                let _ = reply.send(result);
            }
            Command::RenewIngest { room, avatar, reply } => {
                let _ = reply.send(self.rooms.get_mut(&room).and_then(|r| r.renew_ingest(now, avatar)));
            }
            Command::StopRecording { room, id, reply } => {
                if let Some(id) = &id {
                    self.stopped_recordings.insert(id.clone(), now);
                }
                let found = match self.rooms.get_mut(&room) {
                    Some(open) if open.recording_id().is_some_and(|on| id.as_deref().is_none_or(|id| id == on)) => {
                        open.stop_recording(now, out);
                        true
                    }
                    _ => false,
                };
                if self.rooms.get(&room).is_some_and(|r| r.is_empty() && !r.is_recording()) {
                    self.rooms.remove(&room);
                    self.shared.metrics.rooms.dec();
                }
                let _ = reply.send(found);
            }
            Command::ListRooms { reply } => {
                let rooms = self
                    .rooms
                    .values()
                    .map(|room| RoomSummary { room: room.name.clone(), participants: room.len() as u32 })
                    .collect();
                let _ = reply.send(rooms);
            }
        }
    }

    fn start_recording(
        &mut self,
        now: Instant,
        name: String,
        id: &str,
        started_by: &str,
        unix_ms: i64,
        out: &mut Outbox,
    ) -> Result<(), RecordingRefused> {
        if self.stopped_recordings.contains_key(id) {
            return Err(RecordingRefused::Stopped);
        }
        let max = self.settings.get(&name).map(|s| self.max_participants(s));
        self.room_entry(name, max, now).start_recording(now, id, started_by, unix_ms, out)
    }

    /// The room, opened if it is not.
    fn room_entry(&mut self, name: String, max: Option<u32>, now: Instant) -> &mut Room {
        self.rooms.entry(name.clone()).or_insert_with(|| {
            self.shared.metrics.rooms.inc();
            let mut room = Room::new(name, self.shared.limits.clone(), now);
            if let Some(max) = max {
                room.max_participants = max;
            }
            room
        })
    }

    fn max_participants(&self, settings: &RoomSettings) -> u32 {
        let limit = self.shared.limits.participants_per_room;
        settings.max_participants.map_or(limit, |max| max.min(limit))
    }

    fn join(
        &mut self,
        now: Instant,
        claims: SfuClaims,
        ingest: bool,
        link: mpsc::Sender<ServerMessage>,
        out: &mut Outbox,
    ) -> Result<ParticipantId, (ErrorCode, String)> {
        let id = self.shared.next_participant.fetch_add(1, Ordering::Relaxed);
        let ufrag = demux::new_ufrag(self.index);
        let (rtc, keys) = self.new_session(ufrag.clone(), now);
        let mut participant =
            Participant::new(id, claims.sub, claims.avatar, Permissions::from_token(claims.publish), rtc, now);
        participant.egress = Egress::new(keys, now);
        // A mute from signaling holds from the first packet, in every room the user enters.
        participant.audio_muted = claims.audio_muted;
        participant.video_muted = claims.video_muted;
        participant.ingest = ingest.then_some(IngestLease { joined: now, renewed: now });
        let max = self.settings.get(&claims.room).map(|s| self.max_participants(s));
        // The link first, so the room's `joined` message reaches the client.
        self.links.insert(id, link);
        let room = self.room_entry(claims.room.clone(), max, now);
        if claims.e2ee && !room.e2ee {
            // Signaling never records an encrypted zone; should a recording be running
            // (the world changed), it ends before any encrypted frame could reach it.
            room.e2ee = true;
            if room.is_recording() {
                tracing::warn!(room = %room.name, "an end-to-end encrypted participant joined: the recording stops");
                room.stop_recording(now, out);
            }
        }
        if let Err(refusal) = room.admit(participant, out) {
            let refusal = match refusal {
                AdmitError::Full => (ErrorCode::RoomFull, format!("the room is full ({} participants)", room.len())),
                AdmitError::AlreadyHere => (ErrorCode::NotAllowed, "this avatar is already in the room".to_owned()),
            };
            let unused = room.is_empty() && !room.is_recording();
            self.links.remove(&id);
            if unused {
                self.rooms.remove(&claims.room);
                self.shared.metrics.rooms.dec();
            }
            return Err(refusal);
        }
        self.participant_rooms.insert(id, claims.room.into());
        self.ufrags.insert(ufrag, id);
        self.shared.metrics.participants.inc();
        self.timers.push(Reverse((now, id)));
        Ok(id)
    }

    /// A session, and the SRTP keys its handshake will export (for `crate::egress`).
    fn new_session(&self, ufrag: String, now: Instant) -> (Rtc, SessionKeys) {
        let pass: String = {
            use rand::Rng;
            rand::rng().sample_iter(&rand::distr::Alphanumeric).take(24).map(char::from).collect()
        };
        let config = Rtc::builder()
            .set_rtp_mode(true)
            .set_ice_lite(true)
            .set_local_ice_credentials(IceCreds { ufrag, pass })
            .set_dtls_cert(self.shared.certificate.clone())
            .clear_codecs()
            .enable_opus(true, false)
            .enable_vp8(true)
            .enable_vp9(true)
            .enable_h264(true)
            // The SFU estimates each subscriber's bandwidth itself, from the feedback on
            // what it sends (crate::egress): str0m's estimator would pad on the same
            // RTX streams.
            .set_stats_interval(Some(Duration::from_secs(1)));
        let (mut rtc, keys) = srtp_keys::build_rtc(config, now);
        rtc.add_local_candidate(self.shared.candidates.udp[self.index].clone());
        if let Some(tcp) = &self.shared.candidates.tcp {
            rtc.add_local_candidate(tcp.clone());
        }
        (rtc, keys)
    }

    fn on_signal(&mut self, now: Instant, id: ParticipantId, message: ClientMessage, out: &mut Outbox) {
        let Some(room) = self.participant_rooms.get(&id).and_then(|r| self.rooms.get_mut(&**r)) else { return };
        match message {
            ClientMessage::Offer { id: offer_id, sdp, sources } => {
                room.handle_offer(now, id, offer_id, &sdp, sources, out)
            }
            ClientMessage::Answer { id: offer_id, sdp } => room.handle_answer(now, id, offer_id, &sdp, out),
            ClientMessage::Subscribe { avatars } => room.handle_subscribe(now, id, avatars, out),
            ClientMessage::Leave => room.remove(id, "left", out),
            // Joining twice on one WebSocket is refused before it reaches a worker.
            ClientMessage::Join { .. } => {}
        }
    }

    fn on_datagram(
        &mut self,
        proto: Protocol,
        source: SocketAddr,
        destination: SocketAddr,
        contents: &[u8],
        out: &mut Outbox,
    ) {
        let key = (proto, source);
        out.datagrams_in += 1;
        out.bytes_in += contents.len() as u64;
        let participant = match demux::stun_local_ufrag(contents).and_then(|ufrag| self.ufrags.get(ufrag)) {
            Some(id) => {
                self.addresses.insert(key, *id);
                *id
            }
            None => match self.addresses.get(&key) {
                Some(id) => *id,
                None => {
                    out.dropped_unknown += 1;
                    return;
                }
            },
        };
        let datagram = contents;
        let Ok(contents) = datagram.try_into() else { return };
        let now = Instant::now();
        let input = Input::Receive(now, Receive { proto, source, destination, contents });
        let Some(name) = self.participant_rooms.get(&participant) else { return };
        let Some(room) = self.rooms.get_mut(&**name) else { return };
        room.handle_input(now, participant, input, datagram, out);
        if room.report_drive_needed() {
            self.rooms_to_drive.push(Arc::clone(name));
        }
    }

    /// Drains the sessions that datagrams left with output (subscribers of what was
    /// forwarded), once per batch. A room whose sessions have a send batch of datagrams
    /// to go has them sent before the rest are drained: with hundreds of subscribers,
    /// the first ones' packets do not wait for the last ones' encryption.
    fn drive_rooms(&mut self, out: &mut Outbox) {
        let now = Instant::now();
        let mut names = std::mem::take(&mut self.rooms_to_drive);
        for name in names.drain(..) {
            while let Some(room) = self.rooms.get_mut(&*name)
                && room.drive_some(now, out, BATCH)
            {
                self.send_transmits(out);
            }
        }
        self.rooms_to_drive = names;
    }

    fn on_timers(&mut self, out: &mut Outbox) {
        let now = Instant::now();
        while let Some(Reverse((at, id))) = self.timers.peek().copied() {
            if at > now {
                break;
            }
            self.timers.pop();
            let Some(room) = self.participant_rooms.get(&id).and_then(|r| self.rooms.get_mut(&**r)) else { continue };
            // A stale entry: the session's timeout moved since.
            if room.next_timeout(id).is_some_and(|next| next > now) {
                continue;
            }
            room.handle_timeout(now, id, out);
        }
    }

    fn on_tick(&mut self, out: &mut Outbox) {
        let now = Instant::now();
        let mut recording = 0;
        for room in self.rooms.values_mut() {
            if room.recording_lapsed(now) {
                tracing::warn!(room = %room.name, "a recording signaling stopped renewing ends");
                if let Some(id) = room.recording_id() {
                    self.stopped_recordings.insert(id.to_owned(), now);
                }
                room.stop_recording(now, out);
            }
            recording += i64::from(room.is_recording());
            room.tick(now, out);
        }
        // A room kept open empty for its recording closes once the recording ended.
        let before = self.rooms.len();
        self.rooms.retain(|_, room| !room.is_empty() || room.is_recording());
        self.shared.metrics.rooms.dec_by((before - self.rooms.len()) as i64);
        self.stopped_recordings.retain(|_, at| now.saturating_duration_since(*at) < STOPPED_MEMORY);
        let metrics = &self.shared.metrics;
        match recording - self.recording_rooms {
            change if change > 0 => metrics.recordings.inc_by(change),
            change => metrics.recordings.dec_by(-change),
        };
        self.recording_rooms = recording;
    }

    /// Sends the datagrams in `out` and empties its list of them.
    fn send_transmits(&mut self, out: &mut Outbox) {
        let metrics = &self.shared.metrics;
        let transmits = &mut out.transmits;
        metrics.packets_out.inc_by(transmits.len() as u64);
        let bytes_out: usize = transmits.iter().map(|t| t.contents.len()).sum();
        metrics.bytes_out.inc_by(bytes_out as u64);
        // ICE-TCP sessions are few: their frames are taken out, and the rest go in batches.
        if transmits.iter().any(|t| t.proto != Protocol::Udp) {
            for transmit in transmits.extract_if(.., |t| t.proto != Protocol::Udp) {
                if let Some(writer) = self.tcp_writers.get(&transmit.destination) {
                    let _ = writer.try_send(transmit.contents.to_vec());
                }
            }
        }
        // UDP: a full socket buffer drops a datagram, as the network would.
        let sent = self.send_batch.send(&*self.socket, transmits, |t| (t.destination, &t.contents));
        metrics.send_dropped.inc_by((transmits.len() - sent) as u64);
        // Their buffers serve the datagrams the SFU writes itself, up to a bound.
        let spare = &mut out.spare_buffers;
        let keep = MAX_SPARE_BUFFERS.saturating_sub(spare.len()).min(transmits.len());
        spare.extend(transmits.drain(..keep).map(|t| Vec::from(t.contents)));
        transmits.clear();
    }

    /// Sends the rooms' output, forgets sessions that ended, and empties `out`.
    fn flush(&mut self, out: &mut Outbox) {
        let metrics = &self.shared.metrics;
        metrics.forwarded.inc_by(out.forwarded);
        metrics.retransmitted.inc_by(out.retransmitted);
        metrics.padding.inc_by(out.padding);
        metrics.keyframe_requests.inc_by(out.keyframe_requests);
        metrics.nacks_received.inc_by(out.nacks);
        metrics.plis_received.inc_by(out.plis);
        metrics.packets_lost_in.inc_by(out.lost_in);
        metrics.packets_in.inc_by(out.datagrams_in);
        metrics.bytes_in.inc_by(out.bytes_in);
        metrics.dropped_unknown.inc_by(out.dropped_unknown);
        if let Some(recordings) = &self.recordings
            && !out.store_writes.is_empty()
        {
            recordings.submit(std::mem::take(&mut out.store_writes));
        }
        self.send_transmits(out);
        let mut slow = Vec::new();
        for (id, message) in out.messages.drain(..) {
            let Some(link) = self.links.get(&id) else { continue };
            if link.try_send(message).is_err() && !out.removed.contains(&id) {
                slow.push(id);
            }
        }
        for (id, at) in out.timeouts.drain(..) {
            self.timers.push(Reverse((at, id)));
        }
        for id in out.removed.drain(..) {
            self.forget(id);
        }
        out.clear();
        // A client that cannot keep up with its messages (or went away) is dropped.
        if !slow.is_empty() {
            let mut more = Outbox::default();
            for id in slow {
                if let Some(room) = self.participant_rooms.get(&id).and_then(|r| self.rooms.get_mut(&**r)) {
                    room.remove(id, "the client did not keep up", &mut more);
                }
            }
            self.flush(&mut more);
        }
    }

    fn forget(&mut self, id: ParticipantId) {
        self.links.remove(&id);
        self.ufrags.retain(|_, participant| *participant != id);
        let tcp_writers = &mut self.tcp_writers;
        self.addresses.retain(|(proto, address), participant| {
            let keep = *participant != id;
            if !keep && *proto == Protocol::Tcp {
                tcp_writers.remove(address);
            }
            keep
        });
        self.shared.metrics.participants.dec();
        // A room being recorded stays open empty: its people may be reconnecting, and
        // the recording goes on until signaling stops it.
        if let Some(name) = self.participant_rooms.remove(&id)
            && self.rooms.get(&*name).is_some_and(|room| room.is_empty() && !room.is_recording())
        {
            self.rooms.remove(&*name);
            self.shared.metrics.rooms.dec();
        }
    }

    /// Takes over an ICE-TCP connection: frames in go to the rooms like datagrams,
    /// frames out go through a writer task.
    fn adopt_tcp(&mut self, stream: std::net::TcpStream, first_frame: Vec<u8>, out: &mut Outbox) {
        // Registered with this worker's runtime, which polls it from now on.
        let Ok(stream) = tokio::net::TcpStream::from_std(stream) else { return };
        let (Ok(peer), Ok(local)) = (stream.peer_addr(), stream.local_addr()) else { return };
        let (mut reader, mut writer) = stream.into_split();
        let (frames_out, mut to_write) = mpsc::channel::<Vec<u8>>(256);
        self.tcp_writers.insert(peer, frames_out);
        // Both tasks run on this worker's own runtime, which ends (and drops them) when the
        // worker stops: they cannot outlive the SFU.
        tokio::spawn(async move {
            while let Some(frame) = to_write.recv().await {
                let Ok(length) = u16::try_from(frame.len()) else { continue };
                if writer.write_all(&length.to_be_bytes()).await.is_err() || writer.write_all(&frame).await.is_err() {
                    break;
                }
            }
        });
        let frames_in = self.tcp_frames.0.clone();
        tokio::spawn(async move {
            while let Ok(frame) = read_frame(&mut reader).await {
                if frames_in.send((peer, local, frame)).await.is_err() {
                    break;
                }
            }
        });
        self.on_datagram(Protocol::Tcp, peer, local, &first_frame, out);
    }
}

/// Reads one RFC 4571 frame: a 16-bit length, then that many bytes.
pub async fn read_frame<R: AsyncReadExt + Unpin>(reader: &mut R) -> std::io::Result<Vec<u8>> {
    let mut length = [0u8; 2];
    reader.read_exact(&mut length).await?;
    let length = usize::from(u16::from_be_bytes(length));
    if length == 0 || length > MAX_TCP_FRAME {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "ICE-TCP frame of a bad length"));
    }
    let mut frame = vec![0u8; length];
    reader.read_exact(&mut frame).await?;
    Ok(frame)
}
