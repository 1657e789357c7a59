//! Synthetic RTP: Opus-shaped audio packets every 20 ms and VP8 frames at 30 fps, each in
//! one packet, whose payloads say who sent them and in which order.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use isoplane_sfu::protocol::AvatarId;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;
use webrtc::rtp::header::Header;
use webrtc::rtp::packet::Packet;
use webrtc::track::track_local::TrackLocalWriter;
use webrtc::track::track_local::track_local_static_rtp::TrackLocalStaticRTP;

use super::SentCounters;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Audio,
    Video,
}

pub const AUDIO_PACKET_INTERVAL: Duration = Duration::from_millis(20);
pub const VIDEO_FRAME_INTERVAL: Duration = Duration::from_millis(33);
/// A keyframe at least this often, as encoders do, besides those PLIs and FIRs ask for.
pub const KEYFRAME_INTERVAL: Duration = Duration::from_secs(2);

/// Marks our payloads, after the codec header.
const MAGIC: &[u8; 4] = b"ISOP";
/// Opus TOC: config 31 (CELT fullband, 20 ms), mono, one frame.
const OPUS_TOC: u8 = 31 << 3;
/// VP8 payload descriptor: no extensions, S=1 (start of a partition), PID=0.
const VP8_DESCRIPTOR: u8 = 0x10;
/// VP8 frame tag (little-endian 24 bits): P (bit 0) = 0 for a keyframe, version 0,
/// show_frame, first partition size 100.
const VP8_KEYFRAME_TAG: [u8; 3] = [0x90, 0x0c, 0x00];
const VP8_INTERFRAME_TAG: [u8; 3] = [0x91, 0x0c, 0x00];
/// What follows a keyframe's tag: the start code and 320x180 (no scaling).
const VP8_KEYFRAME_START: [u8; 7] = [0x9d, 0x01, 0x2a, 0x40, 0x01, 0xb4, 0x00];

const AUDIO_FILL: usize = 80;
const VIDEO_KEYFRAME_FILL: usize = 900;
const VIDEO_INTERFRAME_FILL: usize = 300;

/// What a payload of ours says about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parsed {
    pub avatar: AvatarId,
    pub kind: Kind,
    pub counter: u32,
    pub keyframe: bool,
}

/// Filler byte `i`: any change of `avatar` or `counter` changes the seed (odd factors
/// make both products one-to-one), and every seed byte recurs in the filler.
fn fill_byte(avatar: AvatarId, counter: u32, i: usize) -> u8 {
    let seed = avatar.wrapping_mul(0x9e37_79b1) ^ counter.wrapping_mul(0x85eb_ca77);
    seed.to_le_bytes()[i % 4] ^ i as u8
}

fn kind_byte(kind: Kind) -> u8 {
    match kind {
        Kind::Audio => b'A',
        Kind::Video => b'V',
    }
}

/// The payload of packet `counter` of `avatar`'s track of `kind`: the codec header, our
/// marker (avatar, kind, counter) and filler derived from them.
pub fn payload(kind: Kind, avatar: AvatarId, counter: u32, keyframe: bool) -> Bytes {
    let mut b = BytesMut::with_capacity(1024);
    let fill = match kind {
        Kind::Audio => {
            b.put_u8(OPUS_TOC);
            AUDIO_FILL
        }
        Kind::Video if keyframe => {
            b.put_u8(VP8_DESCRIPTOR);
            b.put_slice(&VP8_KEYFRAME_TAG);
            b.put_slice(&VP8_KEYFRAME_START);
            VIDEO_KEYFRAME_FILL
        }
        Kind::Video => {
            b.put_u8(VP8_DESCRIPTOR);
            b.put_slice(&VP8_INTERFRAME_TAG);
            VIDEO_INTERFRAME_FILL
        }
    };
    b.put_slice(MAGIC);
    b.put_u32(avatar);
    b.put_u8(kind_byte(kind));
    b.put_u32(counter);
    for i in 0..fill {
        b.put_u8(fill_byte(avatar, counter, i));
    }
    b.freeze()
}

/// Reads a payload made by [`payload`]; `None` unless it is exactly one of ours.
pub fn parse_payload(kind: Kind, p: &[u8]) -> Option<Parsed> {
    let (rest, keyframe) = match kind {
        Kind::Audio => (p.strip_prefix(&[OPUS_TOC])?, false),
        Kind::Video => {
            let frame = p.strip_prefix(&[VP8_DESCRIPTOR])?;
            if let Some(rest) = frame.strip_prefix(&VP8_KEYFRAME_TAG) {
                (rest.strip_prefix(&VP8_KEYFRAME_START)?, true)
            } else {
                (frame.strip_prefix(&VP8_INTERFRAME_TAG)?, false)
            }
        }
    };
    let rest = rest.strip_prefix(MAGIC)?;
    let avatar = AvatarId::from_be_bytes(rest.get(0..4)?.try_into().ok()?);
    let kind_in_payload = match rest.get(4)? {
        b'A' => Kind::Audio,
        b'V' => Kind::Video,
        _ => return None,
    };
    let counter = u32::from_be_bytes(rest.get(5..9)?.try_into().ok()?);
    let parsed = Parsed { avatar, kind: kind_in_payload, counter, keyframe };
    // Rebuilding it is the simplest complete check of every byte.
    (payload(kind_in_payload, avatar, counter, keyframe) == p).then_some(parsed)
}

/// Writes synthetic packets to `track` until `stop`. Video starts with a keyframe, sends
/// one when `keyframe_wanted` (a PLI or FIR came) and every [`KEYFRAME_INTERVAL`].
pub async fn send_synthetic(
    track: Arc<TrackLocalStaticRTP>,
    kind: Kind,
    avatar: AvatarId,
    sent: Arc<SentCounters>,
    keyframe_wanted: Arc<AtomicBool>,
    stop: CancellationToken,
) {
    let (interval, ticks_per_packet) = match kind {
        Kind::Audio => (AUDIO_PACKET_INTERVAL, 960u32),
        Kind::Video => (VIDEO_FRAME_INTERVAL, 2970u32),
    };
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut sequence_number: u16 = rand::random();
    let mut timestamp: u32 = rand::random();
    let mut counter = 0u32;
    let mut last_keyframe: Option<Instant> = None;
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let keyframe = kind == Kind::Video
            && (keyframe_wanted.load(Ordering::Relaxed)
                || last_keyframe.is_none_or(|t| t.elapsed() >= KEYFRAME_INTERVAL));
        let packet = Packet {
            header: Header {
                version: 2,
                // One packet per frame: every video packet ends its frame.
                marker: kind == Kind::Video,
                sequence_number,
                timestamp,
                ..Default::default()
            },
            payload: payload(kind, avatar, counter, keyframe),
        };
        timestamp = timestamp.wrapping_add(ticks_per_packet);
        match track.write_rtp(&packet).await {
            // Nothing is bound until DTLS is up: keep the numbers, so the first packet
            // that leaves is still a keyframe.
            Ok(0) => continue,
            Ok(_) => {}
            Err(e) => {
                tracing::debug!(avatar, ?kind, "write_rtp: {e}");
                continue;
            }
        }
        sequence_number = sequence_number.wrapping_add(1);
        counter = counter.wrapping_add(1);
        sent.packets.fetch_add(1, Ordering::Relaxed);
        if keyframe {
            sent.keyframes.fetch_add(1, Ordering::Relaxed);
            keyframe_wanted.store(false, Ordering::Relaxed);
            last_keyframe = Some(Instant::now());
        }
    }
}
