//! A worker thread: owns a share of the rooms (by hash of their name) with every
//! session in them, and one of the sockets bound to the shared media port. This is the
//! I/O shell around [`Room`]: it reads datagrams and commands, passes them in with the
//! time, and writes out what the rooms put in their outbox.
//!
//! The kernel spreads peers over the workers' sockets (SO_REUSEPORT hashes the
//! address pair), not by room, so a datagram may land on a worker that does not own its
//! peer; that worker hands it to the owner, which the peer's ICE ufrag names. Nothing on
//! the packet path is shared or locked.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use isoplane_auth::SfuClaims;
use str0m::bwe::Bitrate;
use str0m::config::DtlsCert;
use str0m::net::{Protocol, Receive};
use str0m::{IceCreds, Input, Rtc};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::config::Limits;
use crate::demux;
use crate::metrics::Metrics;
use crate::participant::{Candidates, Participant, ParticipantId};
use crate::protocol::{
    ClientMessage, ErrorCode, ParticipantUpdate, Permissions, RoomSettings, RoomStats, RoomSummary, ServerMessage,
};
use crate::room::{AdmitError, Outbox, Room, Who};

/// Messages queued towards one client; a client this far behind is dropped.
pub const CLIENT_QUEUE: usize = 256;
/// Commands queued towards one worker. Datagrams handed over by another worker are
/// dropped (and counted in `handoffs_dropped`) when it is full, as the kernel would drop
/// them; every other command waits for room, so a join, a signal or a control call is
/// never lost, only slowed.
pub const COMMAND_QUEUE: usize = 4096;
/// Longest ICE-TCP frame (RFC 4571 allows 65535; media never needs more than this).
const MAX_TCP_FRAME: usize = 4096;
/// How often rooms get their periodic work (speakers, meters, layer choices).
const TICK: Duration = Duration::from_millis(50);
/// Datagrams read in one go before the worker looks at its other inputs.
const READ_BATCH: usize = 64;

/// A frame read from an ICE-TCP connection: (peer, local address, bytes).
type TcpFrame = (SocketAddr, SocketAddr, Vec<u8>);

/// What the rest of the server asks of a worker.
#[derive(Debug)]
pub enum Command {
    Join {
        claims: SfuClaims,
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
    /// A datagram that reached another worker's socket (or a TCP connection).
    Datagram {
        proto: Protocol,
        source: SocketAddr,
        destination: SocketAddr,
        contents: Vec<u8>,
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
}

/// What every worker shares: how to reach the others, and process-wide counters.
pub struct Shared {
    pub workers: Vec<mpsc::Sender<Command>>,
    pub metrics: Arc<Metrics>,
    pub limits: Arc<Limits>,
    pub candidates: Candidates,
    pub certificate: DtlsCert,
    pub next_participant: AtomicU64,
}

impl Shared {
    /// The worker that owns a room.
    pub fn worker_for_room(&self, room: &str) -> usize {
        // FNV-1a: stable across runs and processes, unlike the std hasher.
        let hash = room
            .bytes()
            .fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3));
        (hash % self.workers.len() as u64) as usize
    }
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
    rooms: HashMap<String, Room>,
    /// Room settings set through the control API before anyone joined.
    settings: HashMap<String, RoomSettings>,
    participant_rooms: HashMap<ParticipantId, String>,
    links: HashMap<ParticipantId, mpsc::Sender<ServerMessage>>,
    ufrags: HashMap<String, ParticipantId>,
    /// Peers' addresses, learnt from their STUN requests: who a datagram is from.
    addresses: HashMap<(Protocol, SocketAddr), ParticipantId>,
    /// Which worker owns a peer address that reached this worker's socket.
    routes: HashMap<(Protocol, SocketAddr), usize>,
    tcp_writers: HashMap<SocketAddr, mpsc::Sender<Vec<u8>>>,
    tcp_frames: (mpsc::Sender<TcpFrame>, mpsc::Receiver<TcpFrame>),
    timers: BinaryHeap<Reverse<(Instant, ParticipantId)>>,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker").field("index", &self.index).field("rooms", &self.rooms.len()).finish()
    }
}

/// Longest a route to another worker is remembered before it is rebuilt.
const MAX_ROUTES: usize = 200_000;

impl Worker {
    pub fn new(index: usize, shared: Arc<Shared>, socket: Arc<UdpSocket>) -> std::io::Result<Worker> {
        let local_udp = socket.local_addr()?;
        Ok(Worker {
            index,
            shared,
            socket,
            local_udp,
            rooms: HashMap::new(),
            settings: HashMap::new(),
            participant_rooms: HashMap::new(),
            links: HashMap::new(),
            ufrags: HashMap::new(),
            addresses: HashMap::new(),
            routes: HashMap::new(),
            tcp_writers: HashMap::new(),
            tcp_frames: mpsc::channel(1024),
            timers: BinaryHeap::new(),
        })
    }

    /// Runs until shutdown; every session in this worker's rooms is ended on the way out.
    pub async fn run(mut self, mut commands: mpsc::Receiver<Command>, shutdown: CancellationToken) {
        let mut buffer = vec![0u8; 2048];
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let next_timer = self.timers.peek().map(|Reverse((at, _))| *at);
            let sleep_until = next_timer.unwrap_or_else(|| Instant::now() + Duration::from_secs(1));
            let mut out = Outbox::default();
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                Some(command) = commands.recv() => self.on_command(command, &mut out),
                received = self.socket.recv_from(&mut buffer) => {
                    if let Ok((length, source)) = received {
                        self.on_datagram(Protocol::Udp, source, self.local_udp, &buffer[..length], &mut out);
                    }
                    // Drain what else is waiting before looking at other inputs.
                    for _ in 0..READ_BATCH {
                        let Ok((length, source)) = self.socket.try_recv_from(&mut buffer) else { break };
                        self.on_datagram(Protocol::Udp, source, self.local_udp, &buffer[..length], &mut out);
                    }
                }
                Some((source, destination, frame)) = self.tcp_frames.1.recv() => {
                    self.on_datagram(Protocol::Tcp, source, destination, &frame, &mut out);
                }
                _ = tokio::time::sleep_until(sleep_until.into()) => self.on_timers(&mut out),
                _ = tick.tick() => self.on_tick(&mut out),
            }
            self.flush(out);
        }
        let mut out = Outbox::default();
        for room in self.rooms.values_mut() {
            room.close("the SFU is shutting down", &mut out);
        }
        self.flush(out);
    }

    fn on_command(&mut self, command: Command, out: &mut Outbox) {
        let now = Instant::now();
        match command {
            Command::Join { claims, link, reply } => {
                let result = self.join(now, claims, link, out);
                let _ = reply.send(result);
            }
            Command::Signal { participant, message } => self.on_signal(now, participant, message, out),
            Command::Leave { participant } => {
                if let Some(room) = self.participant_rooms.get(&participant).and_then(|r| self.rooms.get_mut(r)) {
                    room.remove(participant, "left", out);
                }
            }
            Command::Datagram { proto, source, destination, contents } => {
                self.on_datagram(proto, source, destination, &contents, out)
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

    fn max_participants(&self, settings: &RoomSettings) -> u32 {
        let limit = self.shared.limits.participants_per_room;
        settings.max_participants.map_or(limit, |max| max.min(limit))
    }

    fn join(
        &mut self,
        now: Instant,
        claims: SfuClaims,
        link: mpsc::Sender<ServerMessage>,
        out: &mut Outbox,
    ) -> Result<ParticipantId, (ErrorCode, String)> {
        let id = self.shared.next_participant.fetch_add(1, Ordering::Relaxed);
        let ufrag = demux::new_ufrag(self.index);
        let rtc = self.new_session(ufrag.clone(), now);
        let mut participant =
            Participant::new(id, claims.sub, claims.avatar, Permissions::from_token(claims.publish), rtc, now);
        // A mute from signaling holds from the first packet, in every room the user enters.
        participant.audio_muted = claims.audio_muted;
        participant.video_muted = claims.video_muted;
        let max = self.settings.get(&claims.room).map(|s| self.max_participants(s));
        let room = self.rooms.entry(claims.room.clone()).or_insert_with(|| {
            self.shared.metrics.rooms.inc();
            let mut room = Room::new(claims.room.clone(), self.shared.limits.clone(), now);
            if let Some(max) = max {
                room.max_participants = max;
            }
            room
        });
        // The link first, so the room's `joined` message reaches the client.
        self.links.insert(id, link);
        if let Err(refusal) = room.admit(participant, out) {
            self.links.remove(&id);
            let refusal = match refusal {
                AdmitError::Full => (ErrorCode::RoomFull, format!("the room is full ({} participants)", room.len())),
                AdmitError::AlreadyHere => (ErrorCode::NotAllowed, "this avatar is already in the room".to_owned()),
            };
            if room.is_empty() {
                self.rooms.remove(&claims.room);
                self.shared.metrics.rooms.dec();
            }
            return Err(refusal);
        }
        self.participant_rooms.insert(id, claims.room);
        self.ufrags.insert(ufrag, id);
        self.shared.metrics.participants.inc();
        self.timers.push(Reverse((now, id)));
        Ok(id)
    }

    fn new_session(&self, ufrag: String, now: Instant) -> Rtc {
        let pass: String = {
            use rand::Rng;
            rand::rng().sample_iter(&rand::distr::Alphanumeric).take(24).map(char::from).collect()
        };
        let mut rtc = Rtc::builder()
            .set_rtp_mode(true)
            .set_ice_lite(true)
            .set_local_ice_credentials(IceCreds { ufrag, pass })
            .set_dtls_cert(self.shared.certificate.clone())
            .clear_codecs()
            .enable_opus(true, false)
            .enable_vp8(true)
            .enable_vp9(true)
            .enable_h264(true)
            .enable_bwe(Some(Bitrate::kbps(1_000)))
            .set_stats_interval(Some(Duration::from_secs(1)))
            .build(now);
        rtc.add_local_candidate(self.shared.candidates.udp.clone());
        if let Some(tcp) = &self.shared.candidates.tcp {
            rtc.add_local_candidate(tcp.clone());
        }
        rtc
    }

    fn on_signal(&mut self, now: Instant, id: ParticipantId, message: ClientMessage, out: &mut Outbox) {
        let Some(room) = self.participant_rooms.get(&id).and_then(|r| self.rooms.get_mut(r)) else { return };
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
        // STUN always re-reads the owner from the ufrag, so a reused address re-routes.
        let owner = match demux::stun_worker(contents) {
            Some(worker) if worker < self.shared.workers.len() => {
                if self.routes.len() >= MAX_ROUTES {
                    self.routes.clear();
                }
                self.routes.insert(key, worker);
                worker
            }
            Some(_) => return,
            None => match self.routes.get(&key) {
                Some(worker) => *worker,
                None => {
                    out.dropped_unknown += 1;
                    return;
                }
            },
        };
        if owner != self.index {
            // Never wait here: two workers handing datagrams to each other would deadlock.
            let handoff = Command::Datagram { proto, source, destination, contents: contents.to_vec() };
            if let Err(mpsc::error::TrySendError::Full(_)) = self.shared.workers[owner].try_send(handoff) {
                out.handoffs_dropped += 1;
            }
            return;
        }
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
        let length = contents.len();
        let Ok(contents) = contents.try_into() else { return };
        let now = Instant::now();
        let input = Input::Receive(now, Receive { proto, source, destination, contents });
        let Some(room) = self.participant_rooms.get(&participant).and_then(|r| self.rooms.get_mut(r)) else { return };
        room.handle_input(now, participant, input, length, out);
    }

    fn on_timers(&mut self, out: &mut Outbox) {
        let now = Instant::now();
        while let Some(Reverse((at, id))) = self.timers.peek().copied() {
            if at > now {
                break;
            }
            self.timers.pop();
            let Some(room) = self.participant_rooms.get(&id).and_then(|r| self.rooms.get_mut(r)) else { continue };
            // A stale entry: the session's timeout moved since.
            if room.next_timeout(id).is_some_and(|next| next > now) {
                continue;
            }
            room.handle_timeout(now, id, out);
        }
    }

    fn on_tick(&mut self, out: &mut Outbox) {
        let now = Instant::now();
        for room in self.rooms.values_mut() {
            room.tick(now, out);
        }
    }

    /// Sends the rooms' output, and forgets sessions that ended.
    fn flush(&mut self, out: Outbox) {
        let metrics = &self.shared.metrics;
        metrics.forwarded.inc_by(out.forwarded);
        metrics.keyframe_requests.inc_by(out.keyframe_requests);
        metrics.nacks_received.inc_by(out.nacks);
        metrics.plis_received.inc_by(out.plis);
        metrics.packets_lost_in.inc_by(out.lost_in);
        metrics.packets_in.inc_by(out.datagrams_in);
        metrics.bytes_in.inc_by(out.bytes_in);
        metrics.dropped_unknown.inc_by(out.dropped_unknown);
        metrics.handoffs_dropped.inc_by(out.handoffs_dropped);
        metrics.packets_out.inc_by(out.transmits.len() as u64);
        let bytes_out: usize = out.transmits.iter().map(|t| t.contents.len()).sum();
        metrics.bytes_out.inc_by(bytes_out as u64);
        for transmit in out.transmits {
            match transmit.proto {
                Protocol::Udp => {
                    // UDP: a full socket buffer drops the datagram, as the network would.
                    let _ = self.socket.try_send_to(&transmit.contents, transmit.destination);
                }
                _ => {
                    if let Some(writer) = self.tcp_writers.get(&transmit.destination) {
                        let _ = writer.try_send(transmit.contents.to_vec());
                    }
                }
            }
        }
        let mut slow = Vec::new();
        for (id, message) in out.messages {
            let Some(link) = self.links.get(&id) else { continue };
            if link.try_send(message).is_err() && !out.removed.contains(&id) {
                slow.push(id);
            }
        }
        for (id, at) in out.timeouts {
            self.timers.push(Reverse((at, id)));
        }
        for id in out.removed {
            self.forget(id);
        }
        // A client that cannot keep up with its messages (or went away) is dropped.
        if !slow.is_empty() {
            let mut more = Outbox::default();
            for id in slow {
                if let Some(room) = self.participant_rooms.get(&id).and_then(|r| self.rooms.get_mut(r)) {
                    room.remove(id, "the client did not keep up", &mut more);
                }
            }
            self.flush(more);
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
        if let Some(name) = self.participant_rooms.remove(&id)
            && self.rooms.get(&name).is_some_and(Room::is_empty)
        {
            self.rooms.remove(&name);
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A STUN binding request whose USERNAME names `local` as the SFU's ufrag.
    fn binding_request(local: &str) -> Vec<u8> {
        let username = format!("{local}:remote");
        let padded = (username.len() + 3) & !3;
        let mut request = vec![0x00, 0x01];
        request.extend_from_slice(&((4 + padded) as u16).to_be_bytes());
        request.extend_from_slice(&0x2112_A442_u32.to_be_bytes());
        request.extend_from_slice(&[7; 12]);
        request.extend_from_slice(&0x0006_u16.to_be_bytes());
        request.extend_from_slice(&(username.len() as u16).to_be_bytes());
        request.extend_from_slice(username.as_bytes());
        request.resize(20 + 4 + padded, 0);
        request
    }

    #[tokio::test]
    async fn a_datagram_for_a_worker_whose_queue_is_full_is_dropped_and_counted_not_waited_for() {
        str0m::crypto::from_feature_flags().install_process_default();
        let certificate = str0m::crypto::from_feature_flags().dtls_provider.generate_certificate().unwrap();
        let socket = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
        let local = socket.local_addr().unwrap();
        // Worker 1's queue holds one command, and nobody reads it.
        let (to_first, _first) = mpsc::channel(COMMAND_QUEUE);
        let (to_second, mut second) = mpsc::channel(1);
        let shared = Arc::new(Shared {
            workers: vec![to_first, to_second],
            metrics: Arc::new(Metrics::default()),
            limits: Arc::new(Limits::default()),
            candidates: Candidates { udp: str0m::Candidate::host(local, "udp").unwrap(), tcp: None },
            certificate,
            next_participant: AtomicU64::new(1),
        });
        let mut worker = Worker::new(0, shared.clone(), socket).unwrap();
        let request = binding_request(&demux::new_ufrag(1));
        let peer: SocketAddr = "127.0.0.1:40000".parse().unwrap();
        let mut out = Outbox::default();
        worker.on_datagram(Protocol::Udp, peer, local, &request, &mut out);
        worker.on_datagram(Protocol::Udp, peer, local, &request, &mut out);
        assert_eq!(out.handoffs_dropped, 1, "the second did not fit");
        worker.flush(out);
        assert_eq!(shared.metrics.handoffs_dropped.get(), 1);
        let Ok(Command::Datagram { contents, .. }) = second.try_recv() else { panic!("the first was handed over") };
        assert_eq!(contents, request);
    }
}
