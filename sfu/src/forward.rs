//! One forwarded track towards one subscriber: which simulcast layer goes out, and the
//! sequence numbers and timestamps it goes out with.
//!
//! A subscriber sees one continuous RTP stream per track whatever layer the SFU picks:
//! a layer switch happens only on a keyframe of the new layer, and rebases sequence
//! numbers (no gap, no repeat) and timestamps (advanced by the wall-clock time since the
//! last packet sent), so the subscriber's jitter buffer and decoder never notice.

use std::collections::VecDeque;
use std::time::Instant;

use str0m::format::Codec;
use str0m::media::Rid;
use str0m::rtp::Vp8Descriptor;

use crate::vp9_svc::Vp9Layers;

/// What the SFU reads of a video payload: read once per incoming packet, used for every
/// subscriber.
#[derive(Debug, Clone, Copy, Default)]
pub struct VideoPayload {
    /// It starts a keyframe (of the base layer, with VP9 spatial layers).
    pub keyframe: bool,
    /// The VP8 payload descriptor, for the munger.
    pub vp8: Option<Vp8Descriptor>,
    /// The VP9 layer fields, when the stream has layer indices.
    pub vp9: Option<Vp9Layers>,
}

impl VideoPayload {
    pub fn read(codec: Codec, payload: &[u8]) -> VideoPayload {
        match codec {
            Codec::Vp8 => {
                let vp8 = Vp8Descriptor::parse(payload).ok();
                let keyframe = vp8.is_some_and(|descriptor| descriptor.starts_keyframe(payload));
                VideoPayload { keyframe, vp8, vp9: None }
            }
            Codec::Vp9 => {
                let vp9 = Vp9Layers::parse(payload);
                VideoPayload { keyframe: vp9_starts_keyframe(vp9, payload), vp8: None, vp9 }
            }
            Codec::H264 => VideoPayload { keyframe: h264_starts_keyframe(payload), ..VideoPayload::default() },
            _ => VideoPayload::default(),
        }
    }
}

impl VideoPayload {
    /// What may be read of an end-to-end encrypted payload: the codec's RTP payload
    /// descriptor, never the (encrypted) frame behind it. VP9's descriptor says which
    /// picture is a keyframe (P clear, base layer), so VP9 switches layers as usual. VP8's
    /// only says where a picture starts: `keyframe` then marks any picture's start, so a
    /// subscriber's stream may begin there; its decoder waits for the keyframe the SFU
    /// asks for. H.264 has no descriptor: a stream may begin at any packet.
    pub fn read_opaque(codec: Codec, payload: &[u8]) -> VideoPayload {
        match codec {
            Codec::Vp8 => {
                let vp8 = Vp8Descriptor::parse(payload).ok();
                // S set and partition index 0: the first packet of a picture.
                let starts_picture = vp8.is_some() && payload.first().is_some_and(|b| b & 0x10 != 0 && b & 0x07 == 0);
                VideoPayload { keyframe: starts_picture, vp8, vp9: None }
            }
            Codec::Vp9 => VideoPayload::read(codec, payload),
            Codec::H264 => VideoPayload { keyframe: true, ..VideoPayload::default() },
            _ => VideoPayload::default(),
        }
    }
}

/// Whether an RTP payload starts a keyframe, for the codecs the SFU forwards video of.
pub fn starts_keyframe(codec: Codec, payload: &[u8]) -> bool {
    VideoPayload::read(codec, payload).keyframe
}

/// VP9 (RFC 9628 payload descriptor): the start of a frame (B) that is not
/// inter-picture predicted (P clear) and, with spatial layers, of the base layer.
fn vp9_starts_keyframe(layers: Option<Vp9Layers>, payload: &[u8]) -> bool {
    if let Some(layers) = layers {
        return layers.begins_keyframe();
    }
    // No layer indices (L clear): one layer.
    payload.first().is_some_and(|first| first & 0x08 != 0 && first & 0x40 == 0 && first & 0x20 == 0)
}

/// H.264 (RFC 6184): an IDR slice or a sequence parameter set, alone, at the start of
/// a fragmented unit, or inside an aggregation packet.
fn h264_starts_keyframe(payload: &[u8]) -> bool {
    const IDR: u8 = 5;
    const SPS: u8 = 7;
    const STAP_A: u8 = 24;
    const FU_A: u8 = 28;
    let Some(&header) = payload.first() else { return false };
    match header & 0x1f {
        IDR | SPS => true,
        FU_A => payload.get(1).is_some_and(|fu| fu & 0x80 != 0 && matches!(fu & 0x1f, IDR | SPS)),
        STAP_A => {
            let mut rest = &payload[1..];
            while rest.len() > 2 {
                let size = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
                let Some(unit) = rest.get(2..2 + size) else { return false };
                if unit.first().is_some_and(|nal| matches!(nal & 0x1f, IDR | SPS)) {
                    return true;
                }
                rest = &rest[2 + size..];
            }
            false
        }
        _ => false,
    }
}

/// Skips remembered for late packets (a second of video at several hundred packets).
const MAX_SKIPS_REMEMBERED: usize = 1024;

/// What to do with an incoming packet of the forwarded track.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Send it with this sequence number and timestamp. `starts_layer`: the first packet
    /// of a layer (the stream's first, or a switch), where codec numbering is rebased.
    Send { seq_no: u64, timestamp: u32, starts_layer: bool },
    /// Not for this subscriber (another layer, before the first keyframe, or late).
    Drop,
}

/// The rewriting state of one forwarded track.
#[derive(Debug)]
pub struct Forwarder {
    clock_rate: u32,
    /// The layer being sent, once the first packet went out.
    current: Option<Option<Rid>>,
    /// The layer wanted; a switch waits for its next keyframe.
    target: Option<Rid>,
    /// `out = in + seq_delta` for the current layer's packets newer than `highest_in`.
    seq_delta: i64,
    /// The newest incoming sequence number of the current layer, sent or skipped.
    highest_in: u64,
    /// Where skipped packets changed the delta: `(from this incoming sequence number on,
    /// delta)`, oldest first, for packets that arrive late; older ones use `base_delta`.
    skips: VecDeque<(u64, i64)>,
    base_delta: i64,
    /// Incoming packets older than the current layer's first are late: dropped.
    first_in_seq: u64,
    ts_delta: u32,
    last_out: Option<(u64, u32, Instant)>,
}

impl Forwarder {
    pub fn new(clock_rate: u32, target: Option<Rid>) -> Forwarder {
        Forwarder {
            clock_rate,
            current: None,
            target,
            seq_delta: 0,
            highest_in: 0,
            skips: VecDeque::new(),
            base_delta: 0,
            first_in_seq: 0,
            ts_delta: 0,
            last_out: None,
        }
    }

    /// Leaves out a packet of the current layer on purpose (a spatial layer the
    /// subscriber does not get): the packets after it move down a number, so the
    /// subscriber sees no gap. A packet skipped after newer ones went out leaves its gap.
    pub fn skip(&mut self, seq_no: u64) {
        if self.current.is_none() || seq_no < self.first_in_seq || seq_no <= self.highest_in {
            return;
        }
        self.highest_in = seq_no;
        self.seq_delta -= 1;
        self.skips.push_back((seq_no + 1, self.seq_delta));
        if self.skips.len() > MAX_SKIPS_REMEMBERED
            && let Some((_, delta)) = self.skips.pop_front()
        {
            self.base_delta = delta;
        }
    }

    /// The delta for a packet that arrives after newer ones.
    fn late_delta(&self, seq_no: u64) -> i64 {
        let newest_before = self.skips.iter().rev().find(|(from, _)| *from <= seq_no);
        newest_before.map_or(self.base_delta, |(_, delta)| *delta)
    }

    pub fn target(&self) -> Option<Rid> {
        self.target
    }

    /// The layer being sent now (`None` before the first packet).
    pub fn current(&self) -> Option<Option<Rid>> {
        self.current
    }

    /// Asks for another layer; it takes over at its next keyframe. Returns whether a
    /// keyframe is now needed from that layer.
    pub fn set_target(&mut self, target: Option<Rid>) -> bool {
        self.target = target;
        self.current != Some(target)
    }

    /// Whether a keyframe of the target layer is awaited.
    pub fn awaiting_keyframe(&self) -> bool {
        self.current != Some(self.target)
    }

    /// Decides on one incoming packet. `keyframe`: whether it starts a keyframe; layers
    /// switch only there. Audio and single-layer video pass `needs_keyframe = false`:
    /// they start at once.
    pub fn decide(
        &mut self,
        rid: Option<Rid>,
        seq_no: u64,
        timestamp: u32,
        keyframe: bool,
        needs_keyframe: bool,
        now: Instant,
    ) -> Verdict {
        if self.current == Some(rid) {
            if seq_no < self.first_in_seq {
                return Verdict::Drop;
            }
            return self.send(seq_no, timestamp, now, false);
        }
        if rid != self.target || (needs_keyframe && !keyframe) {
            return Verdict::Drop;
        }
        self.rebase(rid, seq_no, timestamp, now);
        self.send(seq_no, timestamp, now, true)
    }

    fn rebase(&mut self, rid: Option<Rid>, seq_no: u64, timestamp: u32, now: Instant) {
        let (out_seq, out_ts) = match self.last_out {
            // The first packet keeps its own numbers (a fresh stream starts anywhere).
            None => (seq_no & 0xffff, timestamp),
            Some((last_seq, last_ts, last_at)) => {
                let elapsed = now.saturating_duration_since(last_at);
                let ticks = (elapsed.as_micros() * u128::from(self.clock_rate) / 1_000_000).max(1);
                (last_seq + 1, last_ts.wrapping_add(ticks as u32))
            }
        };
        self.seq_delta = out_seq as i64 - seq_no as i64;
        self.base_delta = self.seq_delta;
        self.skips.clear();
        self.highest_in = seq_no;
        self.ts_delta = out_ts.wrapping_sub(timestamp);
        self.first_in_seq = seq_no;
        self.current = Some(rid);
    }

    fn send(&mut self, seq_no: u64, timestamp: u32, now: Instant, starts_layer: bool) -> Verdict {
        let delta = if seq_no >= self.highest_in {
            self.highest_in = seq_no;
            self.seq_delta
        } else {
            self.late_delta(seq_no)
        };
        let out_seq = (seq_no as i64 + delta).max(0) as u64;
        let out_ts = timestamp.wrapping_add(self.ts_delta);
        if self.last_out.is_none_or(|(last_seq, _, _)| out_seq > last_seq) {
            self.last_out = Some((out_seq, out_ts, now));
        }
        Verdict::Send { seq_no: out_seq, timestamp: out_ts, starts_layer }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn sent(verdict: Verdict) -> (u64, u32) {
        match verdict {
            Verdict::Send { seq_no, timestamp, .. } => (seq_no, timestamp),
            Verdict::Drop => panic!("expected the packet to be sent"),
        }
    }

    #[test]
    fn a_layer_switch_waits_for_a_keyframe_and_keeps_the_stream_continuous() {
        let start = Instant::now();
        let low = Some(Rid::from("q"));
        let high = Some(Rid::from("f"));
        let mut forwarder = Forwarder::new(90_000, low);
        assert_eq!(forwarder.decide(low, 500, 1_000, false, true, start), Verdict::Drop, "no keyframe yet");
        assert_eq!(sent(forwarder.decide(low, 501, 1_000, true, true, start)), (501, 1_000));
        assert_eq!(sent(forwarder.decide(low, 502, 4_000, false, true, start)), (502, 4_000));
        assert_eq!(forwarder.decide(high, 9_000, 77_000, true, true, start), Verdict::Drop, "not the target");

        assert!(forwarder.set_target(high));
        let later = start + Duration::from_millis(33);
        assert_eq!(forwarder.decide(high, 9_001, 80_000, false, true, later), Verdict::Drop, "wait for a keyframe");
        assert_eq!(sent(forwarder.decide(low, 503, 7_000, false, true, later)), (503, 7_000), "old layer goes on");
        let switch = later + Duration::from_millis(10);
        let (seq, ts) = sent(forwarder.decide(high, 9_002, 83_000, true, true, switch));
        assert_eq!(seq, 504, "sequence numbers continue without a gap");
        assert_eq!(ts, 7_000 + 900, "10 ms later at 90 kHz");
        assert_eq!(sent(forwarder.decide(high, 9_003, 86_000, false, true, switch)), (505, 10_900));
        assert_eq!(forwarder.decide(low, 504, 10_000, true, true, switch), Verdict::Drop, "old layer stops");
        assert_eq!(forwarder.decide(high, 9_001, 80_000, false, true, switch), Verdict::Drop, "late, before switch");
    }

    #[test]
    fn retransmissions_within_the_layer_keep_their_rewritten_numbers() {
        let now = Instant::now();
        let mut forwarder = Forwarder::new(48_000, None);
        assert_eq!(sent(forwarder.decide(None, 70_000, 5, false, false, now)), (70_000 & 0xffff, 5));
        assert_eq!(sent(forwarder.decide(None, 70_002, 965, false, false, now)), ((70_000 & 0xffff) + 2, 965));
        assert_eq!(sent(forwarder.decide(None, 70_001, 485, false, false, now)), ((70_000 & 0xffff) + 1, 485));
    }

    #[test]
    fn skipped_packets_leave_no_gap_and_late_packets_keep_their_numbers() {
        let now = Instant::now();
        let mut forwarder = Forwarder::new(90_000, None);
        forwarder.skip(99);
        assert_eq!(
            sent(forwarder.decide(None, 100, 0, true, true, now)),
            (100, 0),
            "a skip before the start is nothing"
        );
        assert_eq!(sent(forwarder.decide(None, 101, 0, false, true, now)), (101, 0));
        forwarder.skip(102);
        forwarder.skip(103);
        assert_eq!(sent(forwarder.decide(None, 104, 0, false, true, now)), (102, 0), "two skipped: no gap");
        // 106 overtakes 105, which is skipped late: its gap stays, and numbers hold.
        assert_eq!(sent(forwarder.decide(None, 106, 0, false, true, now)), (104, 0));
        forwarder.skip(105);
        assert_eq!(sent(forwarder.decide(None, 107, 0, false, true, now)), (105, 0));
        // Late packets (a retransmission, reordering) get the numbers of their place.
        assert_eq!(sent(forwarder.decide(None, 101, 0, false, true, now)), (101, 0));
        assert_eq!(sent(forwarder.decide(None, 104, 0, false, true, now)), (102, 0));
        for seq in 108..108 + 2 * MAX_SKIPS_REMEMBERED as u64 {
            forwarder.skip(seq);
        }
        let after = 108 + 2 * MAX_SKIPS_REMEMBERED as u64;
        assert_eq!(sent(forwarder.decide(None, after, 0, false, true, now)), (106, 0), "continues after many skips");
    }

    #[test]
    fn keyframes_are_recognised_per_codec() {
        // VP8: S=1, PID=0, then a payload header with P=0.
        assert!(starts_keyframe(Codec::Vp8, &[0x10, 0x00, 0x00, 0x00, 0x9d, 0x01, 0x2a]));
        assert!(!starts_keyframe(Codec::Vp8, &[0x10, 0x01, 0x00, 0x00]), "P=1: an interframe");
        assert!(!starts_keyframe(Codec::Vp8, &[0x00, 0x00]), "not the start of a partition");
        // H.264: IDR alone, FU-A start of IDR, STAP-A with SPS, and a non-IDR slice.
        assert!(starts_keyframe(Codec::H264, &[0x65, 0x88]));
        assert!(starts_keyframe(Codec::H264, &[0x7c, 0x85]));
        assert!(!starts_keyframe(Codec::H264, &[0x7c, 0x05]), "FU-A continuation");
        assert!(starts_keyframe(Codec::H264, &[0x78, 0x00, 0x02, 0x67, 0x42, 0x00, 0x01, 0x68]));
        assert!(!starts_keyframe(Codec::H264, &[0x41, 0x9a]));
        assert!(!starts_keyframe(Codec::H264, &[0x78, 0x00, 0x09, 0x67]), "truncated STAP-A");
        // VP9: B=1 without P, and with P.
        assert!(starts_keyframe(Codec::Vp9, &[0x08]));
        assert!(!starts_keyframe(Codec::Vp9, &[0x48]));
        assert!(!starts_keyframe(Codec::Opus, &[0x10, 0x00]));
    }
}
