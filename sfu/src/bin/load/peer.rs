//! One WebRTC peer of the load: a str0m `Rtc` (full ICE, RTP mode) on its own UDP socket
//! on 127.0.0.1. A publisher sends synthetic audio and video once connected; every peer
//! counts and times the stamped packets it receives. Signaling is someone else's job:
//! it negotiates on [`Peer::rtc`] before [`Peer::run`], and sends later offers in
//! through the `offers` channel.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use str0m::change::SdpOffer;
use str0m::format::Codec;
use str0m::media::{Direction, KeyframeRequest, MediaKind, Mid, Pt};
use str0m::net::{Protocol, Receive};
use str0m::rtp::RtpWrite;
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::load::media::{self, Clock, Kind, Stamp};
use crate::load::stats::{Stats, StreamTracker};

/// A datagram read in one go before the peer looks at its timers again.
const READ_BATCH: usize = 32;
/// A sender this far behind its schedule skips ahead instead of bursting.
const MAX_LAG: Duration = Duration::from_millis(100);

/// What publishers send, per stream.
#[derive(Debug, Clone, Copy)]
pub struct MediaPlan {
    pub audio_interval: Duration,
    pub audio_bytes: usize,
    pub video_interval: Duration,
    pub video_bytes: usize,
    /// A keyframe every this many video packets (besides those asked for).
    pub keyframe_every: u32,
}

/// An offer from the far end, with where to send our answer.
#[derive(Debug)]
pub struct RemoteOffer {
    pub sdp: String,
    pub answer: oneshot::Sender<Result<String, String>>,
}

/// One stream a publisher sends.
#[derive(Debug)]
struct SendStream {
    mid: Mid,
    kind: Kind,
    pt: Option<Pt>,
    interval: Duration,
    bytes: usize,
    next_at: Instant,
    counter: u32,
    keyframe_wanted: bool,
}

#[derive(Debug)]
pub struct Peer {
    pub rtc: Rtc,
    pub id: u32,
    socket: UdpSocket,
    local: SocketAddr,
    clock: Clock,
    stats: Arc<Stats>,
    plan: MediaPlan,
    sending: Vec<SendStream>,
    tracker: StreamTracker,
    connected: bool,
    /// Set when ICE fails or disconnects: the peer stops.
    failed: Option<String>,
}

impl Peer {
    /// A peer on a fresh 127.0.0.1 socket whose host candidate goes in its SDP.
    pub async fn new(id: u32, clock: Clock, stats: Arc<Stats>, plan: MediaPlan) -> Result<Peer, String> {
        let socket = UdpSocket::bind("127.0.0.1:0").await.map_err(|e| format!("cannot bind a UDP socket: {e}"))?;
        let local = socket.local_addr().map_err(|e| e.to_string())?;
        let now = Instant::now();
        let mut rtc =
            Rtc::builder().set_rtp_mode(true).clear_codecs().enable_opus(true, false).enable_vp8(true).build(now);
        let candidate = Candidate::host(local, "udp").map_err(|e| format!("bad candidate {local}: {e}"))?;
        rtc.add_local_candidate(candidate);
        Ok(Peer {
            rtc,
            id,
            socket,
            local,
            clock,
            stats,
            plan,
            sending: Vec::new(),
            tracker: StreamTracker::default(),
            connected: false,
            failed: None,
        })
    }

    /// Adds a send-only audio and a send-only video section; returns the offer to send.
    pub fn offer_to_publish(&mut self) -> Result<(String, str0m::change::SdpPendingOffer), String> {
        let mut api = self.rtc.sdp_api();
        let audio = api.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None);
        let video = api.add_media(MediaKind::Video, Direction::SendOnly, None, None, None);
        let (offer, pending) = api.apply().ok_or("nothing to offer")?;
        let now = Instant::now();
        let plan = self.plan;
        for (mid, kind, interval, bytes) in [
            (audio, Kind::Audio, plan.audio_interval, plan.audio_bytes),
            (video, Kind::Video, plan.video_interval, plan.video_bytes),
        ] {
            self.sending.push(SendStream {
                mid,
                kind,
                pt: None,
                interval,
                bytes,
                next_at: now,
                counter: 0,
                keyframe_wanted: true,
            });
        }
        Ok((offer.to_sdp_string(), pending))
    }

    /// An offer with only a data channel: a receiver's first offer (the Isoplane SFU
    /// offers tracks only after the client's first offer was answered).
    pub fn offer_to_receive(&mut self) -> Result<(String, str0m::change::SdpPendingOffer), String> {
        let mut api = self.rtc.sdp_api();
        api.add_channel("load".into());
        let (offer, pending) = api.apply().ok_or("nothing to offer")?;
        Ok((offer.to_sdp_string(), pending))
    }

    pub fn accept_answer(&mut self, pending: str0m::change::SdpPendingOffer, sdp: &str) -> Result<(), String> {
        let answer = str0m::change::SdpAnswer::from_sdp_string(sdp).map_err(|e| format!("bad answer: {e}"))?;
        self.rtc.sdp_api().accept_answer(pending, answer).map_err(|e| format!("answer refused: {e}"))
    }

    pub fn accept_offer(&mut self, sdp: &str) -> Result<String, String> {
        let offer = SdpOffer::from_sdp_string(sdp).map_err(|e| format!("bad offer: {e}"))?;
        let answer = self.rtc.sdp_api().accept_offer(offer).map_err(|e| format!("offer refused: {e}"))?;
        Ok(answer.to_sdp_string())
    }

    /// Runs the peer until `stop`: ICE, DTLS, media both ways, later offers.
    /// Returns why it ended early, if it did.
    pub async fn run(
        mut self,
        mut offers: mpsc::UnboundedReceiver<RemoteOffer>,
        stop: CancellationToken,
    ) -> Option<String> {
        let mut buffer = vec![0u8; 2048];
        let mut offers_open = true;
        // str0m's ICE agent schedules nothing until it has seen the time once.
        if let Err(e) = self.rtc.handle_input(Input::Timeout(Instant::now())) {
            return Some(format!("session failed to start: {e}"));
        }
        self.drain();
        loop {
            if let Some(reason) = self.failed.take() {
                return Some(reason);
            }
            let wake = self.next_wake();
            tokio::select! {
                biased;
                _ = stop.cancelled() => break,
                received = self.socket.recv_from(&mut buffer) => {
                    if let Ok((length, source)) = received {
                        self.on_datagram(source, &buffer[..length]);
                    }
                    for _ in 0..READ_BATCH {
                        let Ok((length, source)) = self.socket.try_recv_from(&mut buffer) else { break };
                        self.on_datagram(source, &buffer[..length]);
                    }
                }
                offer = offers.recv(), if offers_open => match offer {
                    Some(offer) => {
                        let answer = self.accept_offer(&offer.sdp);
                        let _ = offer.answer.send(answer);
                    }
                    None => offers_open = false,
                },
                _ = tokio::time::sleep_until(wake.into()) => {
                    let now = Instant::now();
                    if let Err(e) = self.rtc.handle_input(Input::Timeout(now)) {
                        return Some(format!("timeout handling failed: {e}"));
                    }
                    self.send_due(now);
                }
            }
            self.drain();
        }
        self.rtc.disconnect();
        self.drain();
        None
    }

    fn next_wake(&mut self) -> Instant {
        let media = if self.connected { self.sending.iter().map(|s| s.next_at).min() } else { None };
        let rtc = match self.rtc.poll_output() {
            Ok(Output::Timeout(at)) => at,
            // Output left over (never expected after `drain`): come back at once.
            Ok(_) => Instant::now(),
            Err(e) => {
                self.failed = Some(format!("session failed: {e}"));
                Instant::now()
            }
        };
        media.map_or(rtc, |media| media.min(rtc))
    }

    fn on_datagram(&mut self, source: SocketAddr, contents: &[u8]) {
        let Ok(contents) = contents.try_into() else { return };
        let input =
            Input::Receive(Instant::now(), Receive { proto: Protocol::Udp, source, destination: self.local, contents });
        // A datagram this session does not take (a stray one) is simply dropped.
        if self.rtc.accepts(&input) {
            let _ = self.rtc.handle_input(input);
        }
        self.drain();
    }

    /// Writes the media packets that are due, then lets str0m packetize them.
    fn send_due(&mut self, now: Instant) {
        if !self.connected {
            return;
        }
        let plan = self.plan;
        for index in 0..self.sending.len() {
            let stream = &mut self.sending[index];
            if stream.next_at > now {
                continue;
            }
            if now.saturating_duration_since(stream.next_at) > MAX_LAG {
                stream.next_at = now;
            }
            let (mid, kind) = (stream.mid, stream.kind);
            let pt = match stream.pt {
                Some(pt) => pt,
                None => match payload_type(&self.rtc, mid, kind) {
                    Some(pt) => {
                        self.sending[index].pt = Some(pt);
                        pt
                    }
                    None => {
                        let stream = &mut self.sending[index];
                        stream.next_at += stream.interval;
                        continue;
                    }
                },
            };
            let stream = &mut self.sending[index];
            let keyframe = kind == Kind::Video
                && (stream.keyframe_wanted || stream.counter.is_multiple_of(plan.keyframe_every.max(1)));
            stream.keyframe_wanted = false;
            let sent_ns = self.clock.ns(now);
            let stamp = Stamp { publisher: self.id, kind, counter: stream.counter, sent_ns };
            let payload = media::payload(kind, keyframe, &stamp, stream.bytes);
            let clock_rate: u64 = if kind == Kind::Audio { 48_000 } else { 90_000 };
            let rtp_time = (sent_ns / 1_000 * clock_rate / 1_000_000) as u32;
            let seq = u64::from(stream.counter) + 1;
            stream.counter += 1;
            stream.next_at += stream.interval;
            let mut api = self.rtc.direct_api();
            let Some(tx) = api.stream_tx_by_mid(mid, None) else { continue };
            tx.write_rtp(
                RtpWrite::new(pt, seq.into(), rtp_time, now, payload)
                    .marker(kind == Kind::Video)
                    .nackable(kind == Kind::Video),
            );
            self.stats.on_sent(sent_ns);
        }
        // Time moves forward for str0m only through inputs: this puts the packets out.
        let _ = self.rtc.handle_input(Input::Timeout(now));
    }

    /// Sends every transmit and handles every event until str0m wants a timeout.
    fn drain(&mut self) {
        loop {
            match self.rtc.poll_output() {
                Ok(Output::Timeout(_)) => return,
                Ok(Output::Transmit(transmit)) => {
                    // The load tool only ever talks to loopback.
                    if !transmit.destination.ip().is_loopback() {
                        self.stats.on_refused_destination();
                        continue;
                    }
                    // UDP: a full socket buffer drops the datagram, as a network would.
                    let _ = self.socket.try_send_to(&transmit.contents, transmit.destination);
                }
                Ok(Output::Event(event)) => self.on_event(event),
                Err(e) => {
                    self.failed = Some(format!("session failed: {e}"));
                    return;
                }
            }
        }
    }

    fn on_event(&mut self, event: Event) {
        match event {
            Event::Connected => {
                self.connected = true;
                let now = Instant::now();
                for stream in &mut self.sending {
                    stream.next_at = now;
                }
            }
            Event::RtpPacket(packet) => {
                let Some(stamp) = media::parse(&packet.payload) else { return };
                let received_ns = self.clock.ns(Instant::now());
                let gap = self.tracker.gap(&stamp);
                self.stats.on_received(&stamp, received_ns, packet.payload.len(), gap);
            }
            Event::KeyframeRequest(KeyframeRequest { mid, .. }) => {
                if let Some(stream) = self.sending.iter_mut().find(|s| s.mid == mid) {
                    stream.keyframe_wanted = true;
                }
            }
            Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                self.failed = Some("ICE disconnected".into());
            }
            _ => {}
        }
    }
}

/// The payload type the far end accepted for `kind`'s codec on `mid`.
fn payload_type(rtc: &Rtc, mid: Mid, kind: Kind) -> Option<Pt> {
    let codec = if kind == Kind::Audio { Codec::Opus } else { Codec::Vp8 };
    let remote = rtc.media(mid)?.remote_pts().to_vec();
    rtc.codec_config().params().iter().find(|p| remote.contains(&p.pt()) && p.spec().codec == codec).map(|p| p.pt())
}
