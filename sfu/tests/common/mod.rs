//! A webrtc-rs client of the SFU's `/v1/sfu` session, for the interop tests (and as a
//! model for the load tool): an independent WebRTC stack that joins, publishes synthetic
//! Opus and VP8 RTP whose payloads it can recognise, and counts what it receives.
//!
//! Everything stays on loopback: webrtc-rs gathers only 127.0.0.1 UDP host candidates,
//! without mDNS or STUN.
#![allow(dead_code)] // each test binary uses a different part of this module

pub mod media;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt};
use isoplane_auth::{SfuClaims, TokenKey};
use isoplane_sfu::protocol::{AvatarId, ClientMessage, ErrorCode, ServerMessage, TrackInfo, Wanted};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tokio_util::sync::CancellationToken;
use webrtc::api::APIBuilder;
use webrtc::api::interceptor_registry::register_default_interceptors;
use webrtc::api::media_engine::{MIME_TYPE_OPUS, MIME_TYPE_VP8, MediaEngine};
use webrtc::api::setting_engine::SettingEngine;
use webrtc::data_channel::RTCDataChannel;
use webrtc::ice::mdns::MulticastDnsMode;
use webrtc::ice::network_type::NetworkType;
use webrtc::interceptor::registry::Registry;
use webrtc::peer_connection::configuration::RTCConfiguration;
use webrtc::peer_connection::peer_connection_state::RTCPeerConnectionState;
use webrtc::peer_connection::sdp::session_description::RTCSessionDescription;
use webrtc::peer_connection::{OnTrackHdlrFn, RTCPeerConnection};
use webrtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use webrtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use webrtc::rtp_transceiver::rtp_codec::{RTCRtpCodecCapability, RTPCodecType};
use webrtc::rtp_transceiver::rtp_sender::RTCRtpSender;
use webrtc::rtp_transceiver::rtp_transceiver_direction::RTCRtpTransceiverDirection;
use webrtc::rtp_transceiver::{RTCRtpTransceiver, RTCRtpTransceiverInit};
use webrtc::track::track_local::track_local_static_rtp::TrackLocalStaticRTP;
use webrtc::track::track_remote::TrackRemote;

pub use media::Kind;

/// How long one signaling step (join, an offer/answer round, ICE gathering) may take.
pub const STEP_TIMEOUT: Duration = Duration::from_secs(10);

/// An SFU on loopback for one test; cancelled when dropped.
#[derive(Debug)]
pub struct TestSfu {
    pub http: SocketAddr,
    /// Each worker's media port, by worker.
    pub udp: Vec<SocketAddr>,
    pub key: TokenKey,
    shutdown: CancellationToken,
}

impl TestSfu {
    // The SFU wants at least 16 bytes.
    pub const SECRET: &'static str = "test-secret-0123456789";

    pub async fn start() -> TestSfu {
        Self::start_with(isoplane_sfu::Config::for_tests(Self::SECRET)).await
    }

    /// An SFU with other settings (its secret must stay [`TestSfu::SECRET`]).
    pub async fn start_with(config: isoplane_sfu::Config) -> TestSfu {
        init_logging();
        let sfu = isoplane_sfu::bind(config).await.expect("bind the SFU on loopback");
        let (http, udp) = (sfu.http_addr(), sfu.udp_addrs());
        let shutdown = CancellationToken::new();
        tokio::spawn(sfu.run(shutdown.clone()));
        TestSfu { http, udp, key: TokenKey::new(Self::SECRET), shutdown }
    }

    /// A current token for `room`, valid for an hour.
    pub fn token(&self, room: &str, avatar: AvatarId, publish: bool) -> String {
        self.key.sign(&claims(room, avatar, publish, unix_now() + 3600))
    }

    /// A counter's value in `/metrics` (`name` without the `isoplane_sfu_` prefix).
    pub async fn counter(&self, name: &str) -> u64 {
        let url = format!("http://{}/metrics", self.http);
        let text = reqwest::get(url).await.expect("/metrics answers").text().await.expect("/metrics text");
        let line = format!("isoplane_sfu_{name} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&line))
            .and_then(|value| value.trim().parse().ok())
            .unwrap_or_else(|| panic!("no counter {name} in {text}"))
    }
}

impl Drop for TestSfu {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

pub fn claims(room: &str, avatar: AvatarId, publish: bool, exp: u64) -> SfuClaims {
    SfuClaims {
        room: room.to_owned(),
        sub: format!("user-{avatar}"),
        avatar,
        publish,
        audio_muted: false,
        video_muted: false,
        e2ee: false,
        exp,
    }
}

pub fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// Chooses rustls's crypto provider for webrtc-rs's DTLS: with both `ring` and `aws-lc-rs`
/// enabled across the workspace, rustls refuses to guess.
pub fn install_tls_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// `RUST_LOG=isoplane_sfu=debug` shows the SFU's logs beside the test's.
pub fn init_logging() {
    install_tls_provider();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

#[derive(Debug)]
pub enum ClientError {
    /// The SFU answered with an `error`.
    Refused {
        code: ErrorCode,
        message: String,
        fatal: bool,
    },
    Closed,
    Timeout(&'static str),
    Unexpected(String),
    WebSocket(Box<tokio_tungstenite::tungstenite::Error>),
    WebRtc(webrtc::Error),
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Refused { code, message, fatal } => {
                write!(f, "the SFU refused: {code:?} ({message}, fatal: {fatal})")
            }
            ClientError::Closed => write!(f, "the SFU closed the session"),
            ClientError::Timeout(what) => write!(f, "timed out waiting for {what}"),
            ClientError::Unexpected(what) => write!(f, "unexpected: {what}"),
            ClientError::WebSocket(e) => write!(f, "WebSocket: {e}"),
            ClientError::WebRtc(e) => write!(f, "webrtc-rs: {e}"),
        }
    }
}

impl std::error::Error for ClientError {}

impl From<tokio_tungstenite::tungstenite::Error> for ClientError {
    fn from(e: tokio_tungstenite::tungstenite::Error) -> Self {
        ClientError::WebSocket(Box::new(e))
    }
}

impl From<webrtc::Error> for ClientError {
    fn from(e: webrtc::Error) -> Self {
        ClientError::WebRtc(e)
    }
}

/// The `/v1/sfu` WebSocket, one JSON message per text frame.
#[derive(Debug)]
pub struct SfuSocket {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl SfuSocket {
    pub async fn open(http: SocketAddr) -> Result<SfuSocket, ClientError> {
        let url = format!("ws://{http}/v1/sfu");
        let (ws, _) = tokio::time::timeout(STEP_TIMEOUT, tokio_tungstenite::connect_async(url))
            .await
            .map_err(|_| ClientError::Timeout("the WebSocket handshake"))??;
        Ok(SfuSocket { ws })
    }

    pub async fn send(&mut self, message: &ClientMessage) -> Result<(), ClientError> {
        let text = serde_json::to_string(message).map_err(|e| ClientError::Unexpected(e.to_string()))?;
        self.ws.send(Message::text(text)).await?;
        Ok(())
    }

    /// The next message; `None` once the SFU closed the socket.
    pub async fn recv(&mut self) -> Result<Option<ServerMessage>, ClientError> {
        loop {
            let Some(frame) = self.ws.next().await else { return Ok(None) };
            match frame {
                Ok(Message::Text(text)) => {
                    let message = serde_json::from_str(text.as_str())
                        .map_err(|e| ClientError::Unexpected(format!("bad JSON from the SFU ({e}): {text}")))?;
                    return Ok(Some(message));
                }
                Ok(Message::Close(_)) => return Ok(None),
                // Pings are answered by tungstenite; nothing else is part of the protocol.
                Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_)) => continue,
                Ok(Message::Binary(_)) => return Err(ClientError::Unexpected("a binary frame".into())),
                // A reset after the SFU ended the session counts as closed.
                Err(tokio_tungstenite::tungstenite::Error::ConnectionClosed)
                | Err(tokio_tungstenite::tungstenite::Error::AlreadyClosed)
                | Err(tokio_tungstenite::tungstenite::Error::Protocol(_))
                | Err(tokio_tungstenite::tungstenite::Error::Io(_)) => return Ok(None),
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// A close frame, so the SFU ends the session at once.
    pub async fn close(&mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(2), self.ws.close(None)).await;
    }

    /// Sends `join` and waits for `joined` (or the SFU's refusal).
    pub async fn join(&mut self, token: &str) -> Result<Joined, ClientError> {
        self.send(&ClientMessage::Join { token: token.to_owned() }).await?;
        let reply =
            tokio::time::timeout(STEP_TIMEOUT, self.recv()).await.map_err(|_| ClientError::Timeout("joined"))??;
        match reply {
            Some(ServerMessage::Joined { room, avatar, publish }) => Ok(Joined { room, avatar, publish }),
            Some(ServerMessage::Error { code, message, fatal }) => Err(ClientError::Refused { code, message, fatal }),
            Some(other) => Err(ClientError::Unexpected(format!("{other:?} instead of joined"))),
            None => Err(ClientError::Closed),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Joined {
    pub room: String,
    pub avatar: AvatarId,
    pub publish: bool,
}

/// What a participant received from one publisher's track of one kind.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Received {
    /// `on_track` calls attributed to this publisher and kind.
    pub tracks: u32,
    pub packets: u64,
    pub bytes: u64,
    /// Packets whose payload is exactly what the publisher wrote.
    pub intact: u64,
    /// Packets whose payload is not ours or was changed on the way.
    pub corrupt: u64,
    /// Intact packets whose payload names another publisher or kind than the track's
    /// attribution (by its `mid` in the SFU's `tracks`, else its msid `a{avatar}`).
    pub misattributed: u64,
    /// Tracks whose `mid` and msid name different avatars, or whose source does not
    /// match their kind.
    pub inconsistent_tracks: u32,
    pub keyframes: u64,
    /// Whether the first video packet of every track was the start of a keyframe.
    pub started_with_keyframe: bool,
    /// Largest `counter` seen, to spot whether packets flow at all.
    pub last_counter: Option<u32>,
}

/// What a participant received, by publisher and kind.
pub type ReceivedByTrack = BTreeMap<(AvatarId, Kind), Received>;

/// What one of this participant's send tracks wrote to the SFU.
#[derive(Debug, Default)]
pub struct SentCounters {
    /// Packets webrtc-rs put on the wire (not those dropped before DTLS was up).
    pub packets: AtomicU64,
    pub keyframes: AtomicU64,
    /// PLIs and FIRs the SFU sent for this track.
    pub keyframe_requests: AtomicU64,
}

/// A snapshot of [`SentCounters`].
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Sent {
    pub packets: u64,
    pub keyframes: u64,
    pub keyframe_requests: u64,
}

impl SentCounters {
    pub fn snapshot(&self) -> Sent {
        Sent {
            packets: self.packets.load(Ordering::Relaxed),
            keyframes: self.keyframes.load(Ordering::Relaxed),
            keyframe_requests: self.keyframe_requests.load(Ordering::Relaxed),
        }
    }
}

/// State shared by the signaling task, the media tasks and the test.
#[derive(Debug)]
struct Shared {
    avatar: AvatarId,
    received: Mutex<ReceivedByTrack>,
    /// The SFU's latest `tracks` list, by mid.
    tracks: Mutex<BTreeMap<String, TrackInfo>>,
    /// `error` and `removed` messages, for the test to inspect.
    problems: Mutex<Vec<ServerMessage>>,
    /// SFU offers answered so far.
    offers_answered: AtomicU64,
    /// Bumped on every change above, so the test can await conditions.
    changed: watch::Sender<u64>,
}

impl Shared {
    fn bump(&self) {
        self.changed.send_modify(|n| *n += 1);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

enum Command {
    /// Offer the current transceivers; the reply comes once the SFU's answer is applied.
    Negotiate(oneshot::Sender<Result<(), ClientError>>),
    Send(ClientMessage),
}

/// What a participant publishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Publish {
    Nothing,
    /// An Opus microphone track and a VP8 camera track.
    AudioAndVideo,
}

/// One participant: a WebSocket session and one webrtc-rs peer connection.
pub struct WebrtcRsParticipant {
    pub joined: Joined,
    pc: Arc<RTCPeerConnection>,
    shared: Arc<Shared>,
    sent_audio: Arc<SentCounters>,
    sent_video: Arc<SentCounters>,
    commands: mpsc::UnboundedSender<Command>,
    stop: CancellationToken,
    signaling: Option<JoinHandle<()>>,
    /// Media and RTCP tasks.
    tasks: Vec<JoinHandle<()>>,
    _data_channel: Arc<RTCDataChannel>,
}

impl WebrtcRsParticipant {
    /// Joins with `token`, publishes what `publish` says (synthetic RTP starts at once),
    /// and returns once the SFU answered the first offer.
    pub async fn connect(http: SocketAddr, token: &str, publish: Publish) -> Result<Self, ClientError> {
        install_tls_provider();
        let mut socket = SfuSocket::open(http).await?;
        let joined = socket.join(token).await?;
        let pc = new_peer_connection().await?;
        let (changed, _) = watch::channel(0);
        let shared = Arc::new(Shared {
            avatar: joined.avatar,
            received: Mutex::new(BTreeMap::new()),
            tracks: Mutex::new(BTreeMap::new()),
            problems: Mutex::new(Vec::new()),
            offers_answered: AtomicU64::new(0),
            changed,
        });
        // Every participant has a data channel, as the browser client does.
        let data_channel = pc.create_data_channel("isoplane", None).await?;
        let mut send_tracks = Vec::new();
        if publish == Publish::AudioAndVideo {
            for kind in [Kind::Audio, Kind::Video] {
                send_tracks.push((kind, add_send_track(&pc, kind, joined.avatar).await?));
            }
        }
        pc.on_track(on_track_handler(Arc::clone(&shared)));

        let stop = CancellationToken::new();
        let (commands, command_rx) = mpsc::unbounded_channel();
        let (first_reply, first_answered) = oneshot::channel();
        let signaling = tokio::spawn(signaling(
            socket,
            Arc::clone(&pc),
            Arc::clone(&shared),
            command_rx,
            first_reply,
            stop.clone(),
        ));
        let mut participant = WebrtcRsParticipant {
            joined,
            pc,
            shared,
            sent_audio: Arc::new(SentCounters::default()),
            sent_video: Arc::new(SentCounters::default()),
            commands,
            stop,
            signaling: Some(signaling),
            tasks: Vec::new(),
            _data_channel: data_channel,
        };
        // Media starts at once; webrtc-rs drops it until DTLS is up.
        for (kind, (track, sender)) in send_tracks {
            let sent = Arc::clone(match kind {
                Kind::Audio => &participant.sent_audio,
                Kind::Video => &participant.sent_video,
            });
            let keyframe_wanted = Arc::new(AtomicBool::new(true));
            participant.tasks.push(tokio::spawn(read_sender_rtcp(
                sender,
                Arc::clone(&sent),
                Arc::clone(&keyframe_wanted),
            )));
            participant.tasks.push(tokio::spawn(media::send_synthetic(
                track,
                kind,
                participant.joined.avatar,
                sent,
                keyframe_wanted,
                participant.stop.clone(),
            )));
        }
        wait_answered(first_answered).await?;
        Ok(participant)
    }

    pub fn avatar(&self) -> AvatarId {
        self.joined.avatar
    }

    /// Sends an offer of the current transceivers and waits for the SFU's answer.
    pub async fn negotiate(&self) -> Result<(), ClientError> {
        let (reply, answered) = oneshot::channel();
        self.commands.send(Command::Negotiate(reply)).map_err(|_| ClientError::Closed)?;
        wait_answered(answered).await
    }

    /// `subscribe`: `None` for everyone.
    pub fn subscribe(&self, avatars: Option<Vec<Wanted>>) -> Result<(), ClientError> {
        self.commands.send(Command::Send(ClientMessage::Subscribe { avatars })).map_err(|_| ClientError::Closed)
    }

    /// Waits until the peer connection is connected (ICE and DTLS up).
    pub async fn wait_connected(&self) -> Result<(), ClientError> {
        let (tx, mut rx) = mpsc::unbounded_channel();
        self.pc.on_peer_connection_state_change(Box::new(move |state| {
            let _ = tx.send(state);
            Box::pin(async {})
        }));
        let deadline = tokio::time::Instant::now() + STEP_TIMEOUT;
        loop {
            match self.pc.connection_state() {
                RTCPeerConnectionState::Connected => return Ok(()),
                state @ (RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed) => {
                    return Err(ClientError::Unexpected(format!("peer connection {state}")));
                }
                _ => {}
            }
            tokio::time::timeout_at(deadline, rx.recv())
                .await
                .map_err(|_| ClientError::Timeout("the peer connection to connect"))?;
        }
    }

    /// Waits until `condition` holds for this participant, or `timeout`.
    pub async fn wait_for(
        &self,
        what: &'static str,
        timeout: Duration,
        condition: impl Fn(&Self) -> bool,
    ) -> Result<(), ClientError> {
        let mut changed = self.shared.changed.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            changed.mark_unchanged();
            if condition(self) {
                return Ok(());
            }
            match tokio::time::timeout_at(deadline, changed.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return Err(ClientError::Closed),
                Err(_) => return Err(ClientError::Timeout(what)),
            }
        }
    }

    /// What arrived from `avatar`'s track of `kind` (default if nothing).
    pub fn received(&self, avatar: AvatarId, kind: Kind) -> Received {
        lock(&self.shared.received).get(&(avatar, kind)).cloned().unwrap_or_default()
    }

    /// Every (publisher, kind) this participant received anything from.
    pub fn received_all(&self) -> ReceivedByTrack {
        lock(&self.shared.received).clone()
    }

    /// Whether at least one intact packet arrived from `avatar`'s track of `kind`.
    pub fn has_media_from(&self, avatar: AvatarId, kind: Kind) -> bool {
        self.received(avatar, kind).intact > 0
    }

    pub fn sent(&self, kind: Kind) -> Sent {
        match kind {
            Kind::Audio => self.sent_audio.snapshot(),
            Kind::Video => self.sent_video.snapshot(),
        }
    }

    /// The SFU's latest `tracks` list for this participant.
    pub fn tracks(&self) -> Vec<TrackInfo> {
        lock(&self.shared.tracks).values().cloned().collect()
    }

    /// `error` and `removed` messages the SFU sent.
    pub fn problems(&self) -> Vec<ServerMessage> {
        lock(&self.shared.problems).clone()
    }

    pub fn offers_answered(&self) -> u64 {
        self.shared.offers_answered.load(Ordering::Relaxed)
    }

    /// The UDP ports of the SFU's ICE candidates in its latest description.
    pub async fn sfu_udp_ports(&self) -> Vec<u16> {
        let Some(description) = self.pc.remote_description().await else { return Vec::new() };
        // a=candidate:<foundation> <component> <transport> <priority> <address> <port> typ …
        description
            .sdp
            .lines()
            .filter_map(|line| line.strip_prefix("a=candidate:"))
            .map(|candidate| candidate.split_whitespace().collect::<Vec<_>>())
            .filter(|fields| fields.get(2).is_some_and(|t| t.eq_ignore_ascii_case("udp")))
            .filter_map(|fields| fields.get(5)?.parse().ok())
            .collect()
    }

    /// Says `leave`, stops the media and closes the peer connection.
    pub async fn leave(mut self) {
        let _ = self.commands.send(Command::Send(ClientMessage::Leave));
        self.shutdown().await;
    }

    async fn shutdown(&mut self) {
        // Signaling first (it flushes `leave`), so it is not answering an offer on a
        // closed peer connection; closing the peer connection then ends the RTCP readers.
        if let Some(signaling) = self.signaling.take() {
            let _ = tokio::time::timeout(Duration::from_secs(2), signaling).await;
        }
        self.stop.cancel();
        let _ = self.pc.close().await;
        for task in self.tasks.drain(..) {
            let _ = tokio::time::timeout(Duration::from_secs(2), task).await;
        }
    }
}

impl fmt::Debug for WebrtcRsParticipant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebrtcRsParticipant").field("joined", &self.joined).finish_non_exhaustive()
    }
}

impl Drop for WebrtcRsParticipant {
    fn drop(&mut self) {
        self.stop.cancel();
        for task in self.tasks.iter().chain(&self.signaling) {
            task.abort();
        }
    }
}

async fn wait_answered(answered: oneshot::Receiver<Result<(), ClientError>>) -> Result<(), ClientError> {
    tokio::time::timeout(STEP_TIMEOUT, answered)
        .await
        .map_err(|_| ClientError::Timeout("the SFU's answer"))?
        .map_err(|_| ClientError::Closed)?
}

/// A peer connection that only ever uses 127.0.0.1 over UDP.
async fn new_peer_connection() -> Result<Arc<RTCPeerConnection>, ClientError> {
    let mut media_engine = MediaEngine::default();
    media_engine.register_default_codecs()?;
    // NACKs, RTCP reports and TWCC, as a browser would have.
    let registry = register_default_interceptors(Registry::new(), &mut media_engine)?;

    let mut settings = SettingEngine::default();
    settings.set_network_types(vec![NetworkType::Udp4]);
    settings.set_include_loopback_candidate(true);
    settings.set_ip_filter(Box::new(|ip: IpAddr| ip.is_loopback()));
    settings.set_ice_multicast_dns_mode(MulticastDnsMode::Disabled);

    let api = APIBuilder::new()
        .with_media_engine(media_engine)
        .with_interceptor_registry(registry)
        .with_setting_engine(settings)
        .build();
    // No ICE servers: host candidates on loopback are all there is.
    let pc = api.new_peer_connection(RTCConfiguration::default()).await?;
    Ok(Arc::new(pc))
}

async fn add_send_track(
    pc: &RTCPeerConnection,
    kind: Kind,
    avatar: AvatarId,
) -> Result<(Arc<TrackLocalStaticRTP>, Arc<RTCRtpSender>), ClientError> {
    let codec = match kind {
        Kind::Audio => RTCRtpCodecCapability {
            mime_type: MIME_TYPE_OPUS.to_owned(),
            clock_rate: 48_000,
            channels: 2,
            sdp_fmtp_line: "minptime=10;useinbandfec=1".to_owned(),
            rtcp_feedback: vec![],
        },
        Kind::Video => RTCRtpCodecCapability {
            mime_type: MIME_TYPE_VP8.to_owned(),
            clock_rate: 90_000,
            channels: 0,
            sdp_fmtp_line: String::new(),
            rtcp_feedback: vec![],
        },
    };
    let track = Arc::new(TrackLocalStaticRTP::new(codec, format!("{kind:?}").to_lowercase(), format!("p{avatar}")));
    let transceiver = pc
        .add_transceiver_from_track(
            Arc::clone(&track) as _,
            Some(RTCRtpTransceiverInit { direction: RTCRtpTransceiverDirection::Sendonly, send_encodings: vec![] }),
        )
        .await?;
    Ok((track, transceiver.sender().await))
}

/// Drains the sender's RTCP (the interceptors need it read) and turns PLIs and FIRs into
/// keyframe requests.
async fn read_sender_rtcp(sender: Arc<RTCRtpSender>, sent: Arc<SentCounters>, keyframe_wanted: Arc<AtomicBool>) {
    while let Ok((packets, _)) = sender.read_rtcp().await {
        for packet in packets {
            let any = packet.as_any();
            if any.downcast_ref::<PictureLossIndication>().is_some() || any.downcast_ref::<FullIntraRequest>().is_some()
            {
                sent.keyframe_requests.fetch_add(1, Ordering::Relaxed);
                keyframe_wanted.store(true, Ordering::Relaxed);
            }
        }
    }
}

fn on_track_handler(shared: Arc<Shared>) -> OnTrackHdlrFn {
    Box::new(move |track, _receiver, transceiver| {
        let shared = Arc::clone(&shared);
        // webrtc-rs holds its handler lock while this runs: hand the reading to a task.
        tokio::spawn(receive_track(shared, track, transceiver));
        Box::pin(async {})
    })
}

/// Attributes a received track to its publisher and checks every packet of it.
async fn receive_track(shared: Arc<Shared>, track: Arc<TrackRemote>, transceiver: Arc<RTCRtpTransceiver>) {
    let kind = match track.kind() {
        RTPCodecType::Audio => Kind::Audio,
        RTPCodecType::Video => Kind::Video,
        RTPCodecType::Unspecified => return,
    };
    let mid = transceiver.mid().map(|m| m.to_string());
    let info = mid.as_ref().and_then(|mid| lock(&shared.tracks).get(mid).cloned());
    let by_msid = track.stream_id().strip_prefix('a').and_then(|id| id.parse::<AvatarId>().ok());
    let Some(avatar) = info.as_ref().map(|i| i.avatar).or(by_msid) else {
        tracing::warn!(?mid, stream_id = %track.stream_id(), "a track neither its mid nor its msid attributes");
        return;
    };
    let consistent = by_msid.is_none_or(|a| a == avatar)
        && info.as_ref().is_none_or(|i| i.source.is_audio() == (kind == Kind::Audio));
    tracing::info!(me = shared.avatar, from = avatar, ?kind, ?mid, source = ?info.map(|i| i.source), "on_track");
    {
        let mut received = lock(&shared.received);
        let entry = received
            .entry((avatar, kind))
            .or_insert_with(|| Received { started_with_keyframe: true, ..Default::default() });
        entry.tracks += 1;
        if !consistent {
            entry.inconsistent_tracks += 1;
        }
    }
    shared.bump();

    let mut first = true;
    while let Ok((packet, _)) = track.read_rtp().await {
        let parsed = media::parse_payload(kind, &packet.payload);
        {
            let mut received = lock(&shared.received);
            let entry = received.entry((avatar, kind)).or_default();
            entry.packets += 1;
            entry.bytes += packet.payload.len() as u64;
            match parsed {
                Some(p) => {
                    entry.intact += 1;
                    if p.avatar != avatar || p.kind != kind {
                        entry.misattributed += 1;
                    }
                    if p.keyframe {
                        entry.keyframes += 1;
                    }
                    if first && kind == Kind::Video && !p.keyframe {
                        entry.started_with_keyframe = false;
                    }
                    entry.last_counter = Some(entry.last_counter.map_or(p.counter, |c| c.max(p.counter)));
                }
                None => entry.corrupt += 1,
            }
        }
        first = false;
        shared.bump();
    }
}

/// The session: the SFU's messages and the test's commands, one at a time, so the client
/// never offers while it is answering an SFU offer.
async fn signaling(
    mut socket: SfuSocket,
    pc: Arc<RTCPeerConnection>,
    shared: Arc<Shared>,
    mut commands: mpsc::UnboundedReceiver<Command>,
    first_reply: oneshot::Sender<Result<(), ClientError>>,
    stop: CancellationToken,
) {
    // Our offer awaiting the SFU's answer. The first goes out before any SFU message is
    // read: an SFU offer already on the way then meets an outstanding offer and is ignored.
    let mut outstanding: Option<(u32, oneshot::Sender<Result<(), ClientError>>)> =
        match send_offer(&mut socket, &pc, 1).await {
            Ok(()) => Some((1, first_reply)),
            Err(e) => {
                let _ = first_reply.send(Err(e));
                return;
            }
        };
    let mut next_offer_id = 2u32;
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            command = commands.recv(), if outstanding.is_none() => {
                let Some(command) = command else { break };
                match command {
                    Command::Negotiate(reply) => {
                        let id = next_offer_id;
                        next_offer_id += 1;
                        match send_offer(&mut socket, &pc, id).await {
                            Ok(()) => outstanding = Some((id, reply)),
                            Err(e) => { let _ = reply.send(Err(e)); }
                        }
                    }
                    Command::Send(message) => {
                        let leaving = message == ClientMessage::Leave;
                        if let Err(e) = socket.send(&message).await {
                            tracing::warn!(me = shared.avatar, "cannot send {message:?}: {e}");
                        }
                        if leaving {
                            break;
                        }
                    }
                }
            }
            message = socket.recv() => {
                let message = match message {
                    Ok(Some(message)) => message,
                    Ok(None) => break,
                    Err(e) => {
                        tracing::warn!(me = shared.avatar, "SFU socket: {e}");
                        break;
                    }
                };
                match message {
                    ServerMessage::Answer { id, sdp } => {
                        let Some((expected, reply)) = outstanding.take() else {
                            tracing::warn!(me = shared.avatar, id, "an answer to no offer");
                            continue;
                        };
                        tracing::debug!(me = shared.avatar, id, "the SFU's answer:\n{sdp}");
                        let result = if id == expected {
                            apply_answer(&pc, sdp).await
                        } else {
                            Err(ClientError::Unexpected(format!("answer {id} to offer {expected}")))
                        };
                        let _ = reply.send(result);
                    }
                    ServerMessage::Offer { id, sdp, tracks } => {
                        if outstanding.is_some() {
                            // Glare: the SFU rolls its offer back and re-offers after answering ours.
                            tracing::debug!(me = shared.avatar, id, "ignoring the SFU's offer while ours is outstanding");
                            continue;
                        }
                        tracing::debug!(me = shared.avatar, id, ?tracks, "the SFU's offer:\n{sdp}");
                        set_tracks(&shared, tracks);
                        match answer_offer(&pc, sdp).await {
                            Ok(answer) => {
                                if let Err(e) = socket.send(&ClientMessage::Answer { id, sdp: answer }).await {
                                    tracing::warn!(me = shared.avatar, "cannot send answer {id}: {e}");
                                    break;
                                }
                                shared.offers_answered.fetch_add(1, Ordering::Relaxed);
                                shared.bump();
                            }
                            Err(e) => {
                                tracing::warn!(me = shared.avatar, id, "cannot answer the SFU's offer: {e}");
                                lock(&shared.problems).push(ServerMessage::Error {
                                    code: ErrorCode::BadSdp,
                                    message: format!("client could not answer offer {id}: {e}"),
                                    fatal: false,
                                });
                                shared.bump();
                            }
                        }
                    }
                    ServerMessage::Tracks { tracks } => set_tracks(&shared, tracks),
                    ServerMessage::Speakers { .. } | ServerMessage::Joined { .. } => {}
                    problem @ (ServerMessage::Error { .. } | ServerMessage::Removed { .. }) => {
                        tracing::info!(me = shared.avatar, "SFU says {problem:?}");
                        lock(&shared.problems).push(problem);
                        shared.bump();
                    }
                }
            }
        }
    }
    if let Some((_, reply)) = outstanding {
        let _ = reply.send(Err(ClientError::Closed));
    }
    socket.close().await;
}

fn set_tracks(shared: &Shared, tracks: Vec<TrackInfo>) {
    *lock(&shared.tracks) = tracks.into_iter().map(|t| (t.mid.clone(), t)).collect();
    shared.bump();
}

/// The local description once ICE gathering is complete (the SFU takes no trickled
/// candidates).
async fn set_local_and_gather(
    pc: &RTCPeerConnection,
    description: RTCSessionDescription,
) -> Result<String, ClientError> {
    let mut gathered = pc.gathering_complete_promise().await;
    pc.set_local_description(description).await?;
    tokio::time::timeout(STEP_TIMEOUT, gathered.recv()).await.map_err(|_| ClientError::Timeout("ICE gathering"))?;
    let local = pc.local_description().await.ok_or(ClientError::Unexpected("no local description".into()))?;
    check_loopback_candidates(&local.sdp, "ours")?;
    Ok(local.sdp)
}

/// Tests stay on this machine: every candidate, ours and the SFU's, must be on loopback
/// (and ours must exist, or the SFU could not reach us).
fn check_loopback_candidates(sdp: &str, whose: &str) -> Result<(), ClientError> {
    let mut count = 0;
    for line in sdp.lines() {
        let Some(candidate) = line.trim().strip_prefix("a=candidate:") else { continue };
        // foundation component transport priority address port typ ...
        let address = candidate.split_whitespace().nth(4).and_then(|a| a.parse::<IpAddr>().ok());
        if !address.is_some_and(|a| a.is_loopback()) {
            return Err(ClientError::Unexpected(format!("{whose} candidate is not on loopback: {line}")));
        }
        count += 1;
    }
    if count == 0 {
        return Err(ClientError::Unexpected(format!("{whose} SDP has no candidates")));
    }
    Ok(())
}

async fn send_offer(socket: &mut SfuSocket, pc: &RTCPeerConnection, id: u32) -> Result<(), ClientError> {
    let offer = pc.create_offer(None).await?;
    let sdp = set_local_and_gather(pc, offer).await?;
    socket.send(&ClientMessage::Offer { id, sdp, sources: BTreeMap::new() }).await
}

async fn apply_answer(pc: &RTCPeerConnection, sdp: String) -> Result<(), ClientError> {
    check_loopback_candidates(&sdp, "the SFU's")?;
    pc.set_remote_description(RTCSessionDescription::answer(sdp)?).await?;
    Ok(())
}

async fn answer_offer(pc: &RTCPeerConnection, sdp: String) -> Result<String, ClientError> {
    check_loopback_candidates(&sdp, "the SFU's")?;
    let incoming = sending_ssrcs(&sdp);
    pc.set_remote_description(RTCSessionDescription::offer(sdp)?).await?;
    let answer = pc.create_answer(None).await?;
    let answer = set_local_and_gather(pc, answer).await?;
    wait_for_receivers(pc, &incoming).await?;
    Ok(answer)
}

/// The primary SSRCs of the media the SFU's offer sends (RTX SSRCs left out).
fn sending_ssrcs(sdp: &str) -> BTreeSet<u32> {
    let (mut ssrcs, mut repairs) = (BTreeSet::new(), BTreeSet::new());
    // The current m-section's SSRCs, kept if the section is open and sends to us.
    let mut section = Vec::new();
    let mut sends = false;
    for line in sdp.lines().map(str::trim) {
        if let Some(media) = line.strip_prefix("m=") {
            if sends {
                ssrcs.extend(section.drain(..));
            }
            section.clear();
            // A port of 0 is a stopped section.
            sends = media.split_whitespace().nth(1).is_some_and(|port| port != "0");
        } else if line == "a=recvonly" || line == "a=inactive" {
            sends = false;
        } else if let Some(attribute) = line.strip_prefix("a=ssrc:") {
            section.extend(attribute.split_whitespace().next().and_then(|s| s.parse::<u32>().ok()));
        } else if let Some(group) = line.strip_prefix("a=ssrc-group:FID ") {
            repairs.extend(group.split_whitespace().skip(1).filter_map(|s| s.parse::<u32>().ok()));
        }
    }
    if sends {
        ssrcs.extend(section);
    }
    &ssrcs - &repairs
}

/// webrtc-rs starts the receivers of a new remote description in a queued operation that
/// may run after `set_local_description` returned; the SFU forwards as soon as it has the
/// answer, so answering before they run loses the first packets (a keyframe, say) as
/// unknown SSRCs. webrtc-rs has no event for this, hence the polling.
async fn wait_for_receivers(pc: &RTCPeerConnection, ssrcs: &BTreeSet<u32>) -> Result<(), ClientError> {
    let deadline = tokio::time::Instant::now() + STEP_TIMEOUT;
    loop {
        let mut started = BTreeSet::new();
        for receiver in pc.get_receivers().await {
            started.extend(receiver.tracks().await.iter().map(|track| track.ssrc()));
        }
        if ssrcs.is_subset(&started) {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(ClientError::Timeout("webrtc-rs to start its receivers"));
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}
