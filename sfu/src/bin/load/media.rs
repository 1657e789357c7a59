//! Synthetic RTP payloads: an Opus-shaped audio packet or a VP8-shaped video packet,
//! each stamped (after the codec header) with who sent it, its counter and when, so the
//! receiver computes latency and loss per stream.

use std::time::{Duration, Instant};

/// Marks our stamp, after the codec header.
const MAGIC: &[u8; 4] = b"ISLD";
/// Opus TOC: config 31 (CELT fullband, 20 ms), mono, one frame.
const OPUS_TOC: u8 = 31 << 3;
/// VP8 payload descriptor: no extensions, S=1 (start of partition 0).
const VP8_DESCRIPTOR: u8 = 0x10;
/// VP8 frame tag, P (bit 0) = 0: a keyframe; then the start code and 320x180.
const VP8_KEYFRAME_HEADER: [u8; 10] = [0x90, 0x0c, 0x00, 0x9d, 0x01, 0x2a, 0x40, 0x01, 0xb4, 0x00];
/// VP8 frame tag, P = 1: an interframe.
const VP8_INTERFRAME_HEADER: [u8; 3] = [0x91, 0x0c, 0x00];
/// magic + publisher + kind + counter + sent (ns).
const STAMP_LEN: usize = 4 + 4 + 1 + 4 + 8;
/// The stamp starts within this many bytes of the payload (the longest codec header).
const STAMP_SEARCH: usize = 1 + VP8_KEYFRAME_HEADER.len() + 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Audio,
    Video,
}

impl Kind {
    fn byte(self) -> u8 {
        match self {
            Kind::Audio => b'A',
            Kind::Video => b'V',
        }
    }

    fn from_byte(byte: u8) -> Option<Kind> {
        match byte {
            b'A' => Some(Kind::Audio),
            b'V' => Some(Kind::Video),
            _ => None,
        }
    }
}

/// What a received payload says about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    pub publisher: u32,
    pub kind: Kind,
    pub counter: u32,
    /// Nanoseconds since the run's [`Clock`] started, when the publisher wrote it.
    pub sent_ns: u64,
}

/// The run's shared time origin: every peer lives in this process, so send and receive
/// times are on one clock.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    start: Instant,
}

impl Clock {
    pub fn new() -> Clock {
        Clock { start: Instant::now() }
    }

    pub fn ns(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.start).as_nanos()).unwrap_or(u64::MAX)
    }

    pub fn at(&self, ns: u64) -> Instant {
        self.start + Duration::from_nanos(ns)
    }
}

/// Payload of packet `counter` of a publisher's `kind` stream, `size` bytes long (at
/// least the headers and the stamp).
pub fn payload(kind: Kind, keyframe: bool, stamp: &Stamp, size: usize) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(size.max(STAMP_SEARCH + STAMP_LEN));
    match kind {
        Kind::Audio => bytes.push(OPUS_TOC),
        Kind::Video => {
            bytes.push(VP8_DESCRIPTOR);
            if keyframe {
                bytes.extend_from_slice(&VP8_KEYFRAME_HEADER);
            } else {
                bytes.extend_from_slice(&VP8_INTERFRAME_HEADER);
            }
        }
    }
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&stamp.publisher.to_be_bytes());
    bytes.push(stamp.kind.byte());
    bytes.extend_from_slice(&stamp.counter.to_be_bytes());
    bytes.extend_from_slice(&stamp.sent_ns.to_be_bytes());
    // Filler that changes per packet, so nothing along the way could compress it.
    let seed = stamp.counter.to_le_bytes();
    while bytes.len() < size {
        let i = bytes.len();
        bytes.push(seed[i % 4] ^ i as u8);
    }
    bytes
}

/// Reads our stamp from a received payload; `None` for anything that is not ours.
pub fn parse(payload: &[u8]) -> Option<Stamp> {
    let head = payload.get(..(STAMP_SEARCH + MAGIC.len()).min(payload.len()))?;
    let at = head.windows(MAGIC.len()).position(|w| w == MAGIC)? + MAGIC.len();
    let stamp = payload.get(at..at + STAMP_LEN - MAGIC.len())?;
    let publisher = u32::from_be_bytes(stamp.get(0..4)?.try_into().ok()?);
    let kind = Kind::from_byte(*stamp.get(4)?)?;
    let counter = u32::from_be_bytes(stamp.get(5..9)?.try_into().ok()?);
    let sent_ns = u64::from_be_bytes(stamp.get(9..17)?.try_into().ok()?);
    Some(Stamp { publisher, kind, counter, sent_ns })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_survive_every_header() {
        for (kind, keyframe) in [(Kind::Audio, false), (Kind::Video, true), (Kind::Video, false)] {
            let stamp = Stamp { publisher: 7, kind, counter: 123_456, sent_ns: 9_876_543_210 };
            let bytes = payload(kind, keyframe, &stamp, 200);
            assert_eq!(bytes.len(), 200);
            assert_eq!(parse(&bytes), Some(stamp));
        }
        assert_eq!(parse(b"short"), None);
    }

    #[test]
    fn keyframes_are_what_the_sfu_looks_for() {
        let stamp = Stamp { publisher: 1, kind: Kind::Video, counter: 0, sent_ns: 0 };
        let key = payload(Kind::Video, true, &stamp, 100);
        let delta = payload(Kind::Video, false, &stamp, 100);
        assert_eq!(key[0], VP8_DESCRIPTOR);
        assert_eq!(key[1] & 1, 0, "P bit clear on a keyframe");
        assert_eq!(delta[1] & 1, 1, "P bit set on an interframe");
    }
}
