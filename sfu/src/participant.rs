//! One peer in a room: its WebRTC session (a str0m `Rtc` in RTP mode), what it publishes,
//! what it receives, and the SDP negotiation the SFU leads towards it.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use str0m::change::SdpPendingOffer;
use str0m::channel::ChannelId;
use str0m::format::{Codec, CodecSpec};
use str0m::media::{MediaKind, Mid, Rid};
use str0m::rtp::Ssrc;
use str0m::{Candidate, Rtc};

use crate::egress::{Egress, OwnStream};
use crate::forward::Forwarder;
use crate::packet_history::{PacketHistory, SentLog};
use crate::protocol::{AvatarId, Permissions, Quality, Source, TrackInfo, Wanted};
use crate::srtp_keys::SessionKeys;
use crate::vp8_munger::Vp8Munger;
use crate::vp9_svc::SpatialFilter;

/// Unique within the process, so IDs never collide across rooms and workers.
pub type ParticipantId = u64;

/// A track the participant sends to the SFU.
#[derive(Debug)]
pub struct Published {
    pub mid: Mid,
    pub kind: MediaKind,
    pub source: Source,
    /// Simulcast layers in the order the publisher listed them (lowest first, by
    /// convention); one `None` layer without simulcast.
    pub layers: Vec<Layer>,
    /// The codec of each payload type the publisher uses, learnt on first sight.
    pub codecs: HashMap<u8, Option<CodecSpec>>,
    /// VP9 spatial layers (SVC), by layer ID: bits received in the current second, and
    /// the rate measured over the last one.
    pub spatial_bits: [u64; SPATIAL_LAYERS],
    pub spatial_bps: [u64; SPATIAL_LAYERS],
}

/// Of layers costing `costs` bits per second (lowest first), the index of the best that
/// `quality` allows and fits `share_bps`, else the lowest; `None` without layers.
fn best_fitting(costs: &[u64], quality: Quality, share_bps: Option<u64>) -> Option<usize> {
    let last = costs.len().checked_sub(1)?;
    let ceiling = match quality {
        Quality::Off | Quality::Low => 0,
        Quality::Medium => last / 2 + last % 2,
        Quality::High => last,
    };
    let fits = |index: usize| share_bps.is_none_or(|share| costs[index] <= share);
    Some((0..=ceiling).rev().find(|&index| fits(index)).unwrap_or(0))
}

/// VP9 spatial layer IDs are three bits.
pub const SPATIAL_LAYERS: usize = 8;

#[derive(Debug)]
pub struct Layer {
    pub rid: Option<Rid>,
    /// Bits received in the current second, and the rate measured over the last one.
    pub bits_this_second: u64,
    pub bitrate_bps: u64,
    pub last_keyframe_request: Option<Instant>,
    /// When its last packet came.
    pub last_packet: Option<Instant>,
    /// Its recent packets, to answer every subscriber's NACKs.
    pub history: PacketHistory,
}

impl Layer {
    pub fn new(rid: Option<Rid>) -> Layer {
        Layer {
            rid,
            bits_this_second: 0,
            bitrate_bps: 0,
            last_keyframe_request: None,
            last_packet: None,
            history: PacketHistory::default(),
        }
    }

    /// Whether it sent, but nothing for `LAYER_SILENCE`.
    fn is_silent(&self, now: Instant) -> bool {
        self.last_packet.is_some_and(|at| now.saturating_duration_since(at) > LAYER_SILENCE)
    }
}

/// A simulcast layer silent this long has stopped (video sends every 33–100 ms; a
/// keyframe takes a few packets more).
const LAYER_SILENCE: Duration = Duration::from_millis(400);

impl Published {
    pub fn is_simulcast(&self) -> bool {
        self.layers.len() > 1
    }

    /// Marks as stopped the simulcast layers that went quiet (an encoder drops its upper
    /// layers when its bandwidth or CPU falls short), without waiting for the next
    /// second's measurement; whether any of them was counted as sending.
    pub fn silence_stopped_layers(&mut self, now: Instant) -> bool {
        if !self.is_simulcast() {
            return false;
        }
        let mut any = false;
        for layer in self.layers.iter_mut().filter(|layer| layer.is_silent(now)) {
            any |= layer.bitrate_bps > 0;
            layer.bitrate_bps = 0;
        }
        any
    }

    /// Ends a second of measurement, `elapsed` seconds long: each layer's rate is what it
    /// sent over it, but a simulcast layer that has since stopped stays stopped (the bits
    /// it sent before stopping would bring it back for a second, and whoever follows the
    /// best layer would switch to it and wait for a keyframe that never comes).
    pub fn measure_second(&mut self, now: Instant, elapsed: f64) {
        let simulcast = self.is_simulcast();
        for layer in &mut self.layers {
            let stopped = simulcast && layer.is_silent(now);
            layer.bitrate_bps = if stopped { 0 } else { (layer.bits_this_second as f64 / elapsed) as u64 };
            layer.bits_this_second = 0;
        }
        for (bits, bps) in self.spatial_bits.iter_mut().zip(&mut self.spatial_bps) {
            *bps = (*bits as f64 / elapsed) as u64;
            *bits = 0;
        }
    }

    /// The layer to send for a wanted quality and a bandwidth share: the best layer the
    /// publisher is actually sending that is no better than asked for and fits the share;
    /// else the lowest one it sends.
    pub fn choose_layer(&self, quality: Quality, share_bps: Option<u64>) -> Option<Rid> {
        // Encoders leave layers out (small captures, CPU or bandwidth limits).
        let sending: Vec<&Layer> = self.layers.iter().filter(|layer| layer.bitrate_bps > 0).collect();
        sending[best_fitting(&self.sending_costs(), quality, share_bps)?].rid
    }

    /// The bitrates of the layers the publisher is sending, lowest first.
    fn sending_costs(&self) -> Vec<u64> {
        self.layers.iter().map(|layer| layer.bitrate_bps).filter(|bps| *bps > 0).collect()
    }

    /// The highest VP9 spatial layer to send for a wanted quality and a bandwidth share,
    /// as [`Self::choose_layer`] picks a simulcast layer (a layer's cost includes the
    /// layers below it, which it needs); `None` without spatial layers.
    pub fn choose_spatial(&self, quality: Quality, share_bps: Option<u64>) -> Option<u8> {
        let costs = self.spatial_costs();
        if costs.len() < 2 {
            return None;
        }
        u8::try_from(best_fitting(&costs, quality, share_bps)?).ok()
    }

    /// What this video costs a subscriber who wants `quality` and has `share_bps`, in
    /// bits per second: `(now, next, best)`, the layer that fits, the one above it (or
    /// that one, at the top) and the best layer the quality allows.
    pub fn bitrate_goals(&self, quality: Quality, share_bps: Option<u64>) -> Option<(u64, u64, u64)> {
        let spatial = self.spatial_costs();
        let costs = if self.is_simulcast() || spatial.len() < 2 { self.sending_costs() } else { spatial };
        let now = best_fitting(&costs, quality, share_bps)?;
        let best = best_fitting(&costs, quality, None)?;
        Some((costs[now], costs[(now + 1).min(best)], costs[best]))
    }

    /// Each VP9 spatial layer's cost: its rate and that of the layers below it.
    fn spatial_costs(&self) -> Vec<u64> {
        let Some(last) = self.spatial_bps.iter().rposition(|bps| *bps > 0) else { return Vec::new() };
        let mut total = 0;
        self.spatial_bps[..=last]
            .iter()
            .map(|bps| {
                total += bps;
                total
            })
            .collect()
    }

    pub fn layer_mut(&mut self, rid: Option<Rid>) -> Option<&mut Layer> {
        self.layers.iter_mut().find(|layer| layer.rid == rid)
    }
}

/// Where the negotiation of a received track stands (the SFU offers; the client
/// answers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutState {
    ToOpen,
    Negotiating(Mid),
    Open(Mid),
    ToStop(Mid),
    NegotiatingStop(Mid),
}

/// A track the participant receives: another participant's published track.
#[derive(Debug)]
pub struct Received {
    pub publisher: ParticipantId,
    pub publisher_mid: Mid,
    pub avatar: AvatarId,
    pub kind: MediaKind,
    pub source: Source,
    pub state: OutState,
    pub forwarder: Forwarder,
    /// VP8 picture numbers continued across layer switches.
    pub vp8: Vp8Munger,
    /// The VP9 spatial layers sent.
    pub spatial: SpatialFilter,
    /// Publisher payload type → ours and its RTX payload type, learnt on first sight.
    pub payload_types: HashMap<u8, Option<(str0m::media::Pt, Option<str0m::media::Pt>)>>,
    /// A keyframe of the target layer is needed from the publisher.
    pub wants_keyframe: bool,
    /// For what the SFU sends itself: the stream as its session declared it, once read.
    pub own_stream: Option<OwnStream>,
    /// What each recent packet sent was, to send it again when the subscriber NACKs it.
    pub sent_log: SentLog,
    /// The subscriber's round trip, as its last report measured it.
    pub rtt: Option<Duration>,
}

impl Received {
    pub fn mid(&self) -> Option<Mid> {
        match self.state {
            OutState::ToOpen => None,
            OutState::Negotiating(mid)
            | OutState::Open(mid)
            | OutState::ToStop(mid)
            | OutState::NegotiatingStop(mid) => Some(mid),
        }
    }
}

/// Counters for `/metrics` and room stats.
#[derive(Debug, Default, Clone, Copy)]
pub struct Counters {
    pub packets_in: u64,
    pub packets_out: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub nacks_received: u64,
    pub plis_received: u64,
    pub lost_in: u64,
    pub expected_in: u64,
}

#[derive(Debug)]
pub struct Participant {
    pub id: ParticipantId,
    pub sub: String,
    pub avatar: AvatarId,
    pub permissions: Permissions,
    pub audio_muted: bool,
    pub video_muted: bool,
    pub rtc: Rtc,
    /// What the SFU sends this session itself, beside str0m.
    pub egress: Egress,
    pub connected: bool,
    /// When ICE last lost the peer, while it stays lost.
    pub disconnected_since: Option<Instant>,
    pub published: Vec<Published>,
    pub received: Vec<Received>,
    /// What the client said each of its sending mids carries.
    pub sources: BTreeMap<String, Source>,
    /// `None`: everyone, video at high quality.
    pub wanted: Option<Vec<Wanted>>,
    /// The SFU's offer awaiting the client's answer.
    pub pending_offer: Option<(u32, SdpPendingOffer)>,
    pub next_offer_id: u32,
    /// The client's first offer was answered: the SFU may offer from now on.
    pub negotiated: bool,
    pub channel: Option<ChannelId>,
    pub data_window: (Instant, u32),
    /// Bits per second: what its videos would cost with the next layers up while one is
    /// held below the quality asked for (padding tops the session up to it, within the
    /// estimate), and at the quality asked for.
    pub bandwidth_goals: (u64, u64),
    /// On the room's list of sessions to drain.
    pub queued_to_drain: bool,
    /// Seconds in a row above the publisher bitrate limit.
    pub seconds_over_limit: u32,
    pub bits_this_second: u64,
    pub ssrc_tracks: HashMap<Ssrc, (Mid, Option<Rid>)>,
    pub counters: Counters,
    /// The last total seen per stream (mid, rid, egress?) in str0m's stats.
    pub stat_marks: HashMap<(Mid, Option<Rid>, bool), u64>,
    pub next_timeout: Instant,
    /// A broadcaster's stream (sfu/src/ingest.rs): when it joined and when signaling last
    /// said it goes on. It only publishes; nothing is offered to it.
    pub ingest: Option<IngestLease>,
}

/// Signaling renews a broadcaster's session while its stream is on the stage.
#[derive(Debug, Clone, Copy)]
pub struct IngestLease {
    pub joined: Instant,
    pub renewed: Instant,
}

impl Participant {
    pub fn new(
        id: ParticipantId,
        sub: String,
        avatar: AvatarId,
        permissions: Permissions,
        rtc: Rtc,
        now: Instant,
    ) -> Self {
        Participant {
            id,
            sub,
            avatar,
            permissions,
            audio_muted: false,
            video_muted: false,
            rtc,
            // A session whose keys are never kept sends everything through str0m.
            egress: Egress::new(SessionKeys::default(), now),
            connected: false,
            disconnected_since: None,
            published: Vec::new(),
            received: Vec::new(),
            sources: BTreeMap::new(),
            wanted: None,
            pending_offer: None,
            next_offer_id: 1,
            negotiated: false,
            channel: None,
            data_window: (now, 0),
            bandwidth_goals: (0, 0),
            queued_to_drain: false,
            seconds_over_limit: 0,
            bits_this_second: 0,
            ssrc_tracks: HashMap::new(),
            counters: Counters::default(),
            stat_marks: HashMap::new(),
            next_timeout: now,
            ingest: None,
        }
    }

    /// The quality this participant wants of an avatar's `source`, if any: its camera as
    /// `video` says, its screen (picture and sound) as `screen` says, so a subscriber may
    /// take screens and not cameras, or the other way round.
    pub fn wants(&self, avatar: AvatarId, source: Source) -> Option<Quality> {
        if !self.permissions.subscribe {
            return None;
        }
        let Some(wanted) = &self.wanted else { return Some(Quality::High) };
        let entry = wanted.iter().find(|w| w.avatar == avatar)?;
        let quality = match source {
            Source::Microphone => return entry.audio.then_some(Quality::High),
            Source::Camera => entry.video,
            Source::Screen => entry.screen,
            Source::ScreenAudio => return (entry.screen != Quality::Off).then_some(Quality::High),
        };
        (quality != Quality::Off).then_some(quality)
    }

    /// Whether a published source may be forwarded now.
    pub fn forwards(&self, source: Source) -> bool {
        let muted = if source.is_audio() { self.audio_muted } else { self.video_muted };
        !muted && self.permissions.allows(source)
    }

    /// The tracks this participant receives, as the client is told of them.
    pub fn track_list(&self, publisher_muted: impl Fn(ParticipantId, Source) -> bool) -> Vec<TrackInfo> {
        self.received
            .iter()
            .filter_map(|received| match received.state {
                OutState::Open(mid) | OutState::Negotiating(mid) => Some(TrackInfo {
                    mid: mid.to_string(),
                    avatar: received.avatar,
                    source: received.source,
                    muted: publisher_muted(received.publisher, received.source),
                }),
                _ => None,
            })
            .collect()
    }

    /// Whether the SFU has changes to offer and may offer now.
    pub fn needs_offer(&self) -> bool {
        self.negotiated
            && self.pending_offer.is_none()
            && self.received.iter().any(|r| matches!(r.state, OutState::ToOpen | OutState::ToStop(_)))
    }

    /// Counts a data channel message against the per-second budget.
    pub fn take_data_budget(&mut self, now: Instant, per_second: u32) -> bool {
        let (start, count) = &mut self.data_window;
        if now.saturating_duration_since(*start) >= Duration::from_secs(1) {
            *start = now;
            *count = 0;
        }
        *count += 1;
        *count <= per_second
    }

    pub fn loss(&self) -> f32 {
        if self.counters.expected_in == 0 {
            return 0.0;
        }
        self.counters.lost_in as f32 / self.counters.expected_in as f32
    }
}

/// Which local candidates a new session gets.
#[derive(Debug, Clone)]
pub struct Candidates {
    /// Each worker's UDP candidate, by worker: a session gets its own worker's.
    pub udp: Vec<Candidate>,
    pub tcp: Option<Candidate>,
}

/// Two codec descriptions name the same codec for forwarding purposes.
pub fn same_codec(a: &CodecSpec, b: &CodecSpec) -> bool {
    if a.codec != b.codec || a.clock_rate != b.clock_rate {
        return false;
    }
    match a.codec {
        // H.264 profiles and packetization modes are not interchangeable.
        Codec::H264 => {
            a.format.profile_level_id == b.format.profile_level_id
                && a.format.packetization_mode == b.format.packetization_mode
        }
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn camera(layers: &[(&str, u64)], spatial_bps: &[u64]) -> Published {
        let mut track = Published {
            mid: Mid::from("0"),
            kind: MediaKind::Video,
            source: Source::Camera,
            layers: layers
                .iter()
                .map(|(rid, bps)| Layer { bitrate_bps: *bps, ..Layer::new((!rid.is_empty()).then(|| Rid::from(*rid))) })
                .collect(),
            codecs: HashMap::new(),
            spatial_bits: Default::default(),
            spatial_bps: Default::default(),
        };
        track.spatial_bps[..spatial_bps.len()].copy_from_slice(spatial_bps);
        track
    }

    #[test]
    fn a_layer_that_stopped_mid_second_is_not_brought_back_by_that_seconds_measurement() {
        let start = Instant::now();
        let mut track = camera(&[("q", 160_000), ("f", 160_000)], &[]);
        // Both layers sent all through the last second; in this one they send for 600 ms,
        // then the encoder drops `f`.
        for ms in (0..1000).step_by(50) {
            for (index, layer) in track.layers.iter_mut().enumerate() {
                if index == 0 || ms < 600 {
                    layer.bits_this_second += 8_000;
                    layer.last_packet = Some(start + Duration::from_millis(ms));
                }
            }
        }
        let now = start + Duration::from_millis(1050);
        assert!(track.silence_stopped_layers(now), "f has been silent 450 ms");
        assert_eq!((track.layers[0].bitrate_bps, track.layers[1].bitrate_bps), (160_000, 0));
        track.measure_second(now, 1.0);
        assert_eq!(track.layers[0].bitrate_bps, 160_000);
        assert_eq!(track.layers[1].bitrate_bps, 0, "f stopped 450 ms ago");
        assert_eq!(track.choose_layer(Quality::High, None), Some(Rid::from("q")));
        // It comes back: the next second counts it again.
        track.layers[1].bits_this_second = 400_000;
        track.layers[1].last_packet = Some(now + Duration::from_millis(900));
        track.measure_second(now + Duration::from_secs(1), 1.0);
        assert_eq!(track.layers[1].bitrate_bps, 400_000);
        assert_eq!(track.choose_layer(Quality::High, None), Some(Rid::from("f")));
        // A track without simulcast is never taken for stopped: its one layer is all there is.
        let mut single = camera(&[("", 300_000)], &[]);
        single.layers[0].last_packet = Some(start);
        assert!(!single.silence_stopped_layers(start + Duration::from_secs(5)));
        assert_eq!(single.layers[0].bitrate_bps, 300_000);
    }

    #[test]
    fn layers_and_bandwidth_goals_follow_quality_and_share() {
        let simulcast = camera(&[("q", 150_000), ("f", 800_000)], &[]);
        assert_eq!(simulcast.choose_layer(Quality::High, Some(300_000)), Some(Rid::from("q")));
        assert_eq!(simulcast.choose_layer(Quality::High, None), Some(Rid::from("f")));
        assert_eq!(simulcast.bitrate_goals(Quality::High, Some(300_000)), Some((150_000, 800_000, 800_000)));
        assert_eq!(simulcast.bitrate_goals(Quality::High, None), Some((800_000, 800_000, 800_000)));
        assert_eq!(simulcast.bitrate_goals(Quality::Low, None), Some((150_000, 150_000, 150_000)));
        assert_eq!(simulcast.choose_spatial(Quality::High, None), None, "no spatial layers");

        // VP9 SVC: a layer costs itself and those below it.
        let svc = camera(&[("", 800_000)], &[100_000, 200_000, 500_000]);
        assert_eq!(svc.choose_spatial(Quality::High, None), Some(2));
        assert_eq!(svc.choose_spatial(Quality::High, Some(350_000)), Some(1));
        assert_eq!(svc.choose_spatial(Quality::Medium, None), Some(1));
        assert_eq!(svc.choose_spatial(Quality::Low, None), Some(0));
        assert_eq!(svc.choose_spatial(Quality::High, Some(50_000)), Some(0), "the lowest when nothing fits");
        assert_eq!(svc.bitrate_goals(Quality::High, Some(350_000)), Some((300_000, 800_000, 800_000)));
        let single = camera(&[("", 600_000)], &[]);
        assert_eq!(single.bitrate_goals(Quality::High, Some(100_000)), Some((600_000, 600_000, 600_000)));
    }

    #[test]
    fn a_subscriber_takes_cameras_and_screens_apart() {
        let now = Instant::now();
        let rtc = Rtc::builder().build(now);
        let mut subscriber = Participant::new(1, "u".into(), 5, Permissions::from_token(true), rtc, now);
        let every = [Source::Microphone, Source::Camera, Source::Screen, Source::ScreenAudio];
        assert!(every.iter().all(|&s| subscriber.wants(7, s) == Some(Quality::High)), "no subscription: everything");
        // Screens, not cameras.
        subscriber.wanted = Some(vec![Wanted { avatar: 7, audio: true, video: Quality::Off, screen: Quality::High }]);
        assert_eq!(subscriber.wants(7, Source::Camera), None);
        assert_eq!(subscriber.wants(7, Source::Screen), Some(Quality::High));
        assert_eq!(subscriber.wants(7, Source::ScreenAudio), Some(Quality::High));
        assert_eq!(subscriber.wants(7, Source::Microphone), Some(Quality::High));
        // Cameras at low, no screens (their sound neither).
        subscriber.wanted = Some(vec![Wanted { avatar: 7, audio: false, video: Quality::Low, screen: Quality::Off }]);
        assert_eq!(subscriber.wants(7, Source::Camera), Some(Quality::Low));
        assert_eq!(subscriber.wants(7, Source::Screen), None);
        assert_eq!(subscriber.wants(7, Source::ScreenAudio), None);
        assert_eq!(subscriber.wants(7, Source::Microphone), None);
        assert_eq!(subscriber.wants(8, Source::Camera), None, "someone not listed: nothing");
    }
}
