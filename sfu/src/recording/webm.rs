//! A minimal streaming WebM (Matroska) writer: one track, SimpleBlocks in Clusters.
//!
//! The file is written as pieces that can be stored one after the other: a header (EBML
//! header, then a Segment of unknown size holding Info and Tracks) and complete Clusters.
//! The Segment's size is never written, so a file cut after any Cluster is still valid;
//! there are no Cues (players seek by scanning clusters). Timestamps are milliseconds
//! (TimestampScale 1 000 000 ns).
//!
//! Encoding follows RFC 8794 (EBML) and the Matroska specification: an element is its ID
//! (the ID's bytes keep their length marker), its size as a variable-length integer, then
//! its data.

/// Element IDs (with their length-marker bits, as written).
mod id {
    pub const EBML: u32 = 0x1A45_DFA3;
    pub const EBML_VERSION: u32 = 0x4286;
    pub const EBML_READ_VERSION: u32 = 0x42F7;
    pub const EBML_MAX_ID_LENGTH: u32 = 0x42F2;
    pub const EBML_MAX_SIZE_LENGTH: u32 = 0x42F3;
    pub const DOC_TYPE: u32 = 0x4282;
    pub const DOC_TYPE_VERSION: u32 = 0x4287;
    pub const DOC_TYPE_READ_VERSION: u32 = 0x4285;
    pub const SEGMENT: u32 = 0x1853_8067;
    pub const INFO: u32 = 0x1549_A966;
    pub const TIMESTAMP_SCALE: u32 = 0x2A_D7B1;
    pub const MUXING_APP: u32 = 0x4D80;
    pub const WRITING_APP: u32 = 0x5741;
    pub const DURATION: u32 = 0x4489;
    pub const TRACKS: u32 = 0x1654_AE6B;
    pub const TRACK_ENTRY: u32 = 0xAE;
    pub const TRACK_NUMBER: u32 = 0xD7;
    pub const TRACK_UID: u32 = 0x73C5;
    pub const TRACK_TYPE: u32 = 0x83;
    pub const FLAG_LACING: u32 = 0x9C;
    pub const CODEC_ID: u32 = 0x86;
    pub const CODEC_PRIVATE: u32 = 0x63A2;
    pub const SEEK_PRE_ROLL: u32 = 0x56BB;
    pub const VIDEO: u32 = 0xE0;
    pub const PIXEL_WIDTH: u32 = 0xB0;
    pub const PIXEL_HEIGHT: u32 = 0xBA;
    pub const AUDIO: u32 = 0xE1;
    pub const SAMPLING_FREQUENCY: u32 = 0xB5;
    pub const CHANNELS: u32 = 0x9F;
    pub const CLUSTER: u32 = 0x1F43_B675;
    pub const TIMESTAMP: u32 = 0xE7;
    pub const SIMPLE_BLOCK: u32 = 0xA3;
}

/// The size that means "unknown": every value bit of an 8-byte size set.
const UNKNOWN_SIZE: [u8; 8] = [0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF];

/// The largest size an 8-byte variable-length integer holds (all ones is reserved).
const MAX_SIZE: u64 = (1 << 56) - 2;

/// Nanoseconds per timestamp unit: timestamps are milliseconds.
pub const TIMESTAMP_SCALE_NS: u64 = 1_000_000;

/// The only track's number (SimpleBlocks name it).
pub const TRACK_NUMBER: u64 = 1;

/// Appends an element ID: its big-endian bytes without leading zeros (the marker bits
/// are part of the ID, so its length is already encoded).
pub fn write_id(out: &mut Vec<u8>, id: u32) {
    let bytes = id.to_be_bytes();
    let skip = (id.leading_zeros() / 8).min(3) as usize;
    out.extend_from_slice(&bytes[skip..]);
}

/// Appends a size as the shortest variable-length integer that holds it: `n` bytes carry
/// `7n` value bits after a marker bit, and the all-ones value of each length is reserved.
pub fn write_size(out: &mut Vec<u8>, size: u64) {
    // Sizes here are bounded by the recorder's limits (megabytes), far below MAX_SIZE.
    debug_assert!(size <= MAX_SIZE, "EBML size {size} too large");
    let size = size.min(MAX_SIZE);
    let mut length = 1;
    while length < 8 && size >= (1u64 << (7 * length)) - 1 {
        length += 1;
    }
    let marked = size | (1u64 << (7 * length));
    out.extend_from_slice(&marked.to_be_bytes()[8 - length..]);
}

/// Appends an unsigned integer element with the fewest bytes (at least one).
pub fn write_uint(out: &mut Vec<u8>, id: u32, value: u64) {
    let length = (8 - value.leading_zeros() as usize / 8).max(1);
    write_id(out, id);
    write_size(out, length as u64);
    out.extend_from_slice(&value.to_be_bytes()[8 - length..]);
}

/// Appends a float element as an 8-byte IEEE double.
pub fn write_float(out: &mut Vec<u8>, id: u32, value: f64) {
    write_id(out, id);
    write_size(out, 8);
    out.extend_from_slice(&value.to_be_bytes());
}

/// Appends a binary (or ASCII/UTF-8 string) element.
pub fn write_bytes(out: &mut Vec<u8>, id: u32, data: &[u8]) {
    write_id(out, id);
    write_size(out, data.len() as u64);
    out.extend_from_slice(data);
}

/// Appends a master element whose children are already encoded.
pub fn write_master(out: &mut Vec<u8>, id: u32, children: &[u8]) {
    write_bytes(out, id, children);
}

/// What the single track holds.
#[derive(Debug, Clone, PartialEq)]
pub enum TrackSettings {
    Video {
        /// Matroska codec ID, e.g. `V_VP8`.
        codec_id: &'static str,
        width: u16,
        height: u16,
    },
    Audio {
        /// Matroska codec ID, e.g. `A_OPUS`.
        codec_id: &'static str,
        codec_private: Vec<u8>,
        sampling_frequency: f64,
        channels: u8,
        /// How much audio a decoder needs before a seek point to be right (Opus: 80 ms).
        seek_pre_roll_ns: Option<u64>,
    },
}

/// The file's beginning: EBML header, the Segment's start (unknown size), Info and
/// Tracks. `duration_ms`: the Segment's duration, once known.
pub fn header(track: &TrackSettings, track_uid: u64, duration_ms: Option<f64>) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);

    let mut ebml = Vec::with_capacity(40);
    write_uint(&mut ebml, id::EBML_VERSION, 1);
    write_uint(&mut ebml, id::EBML_READ_VERSION, 1);
    write_uint(&mut ebml, id::EBML_MAX_ID_LENGTH, 4);
    write_uint(&mut ebml, id::EBML_MAX_SIZE_LENGTH, 8);
    write_bytes(&mut ebml, id::DOC_TYPE, b"webm");
    write_uint(&mut ebml, id::DOC_TYPE_VERSION, 4);
    write_uint(&mut ebml, id::DOC_TYPE_READ_VERSION, 2);
    write_master(&mut out, id::EBML, &ebml);

    write_id(&mut out, id::SEGMENT);
    out.extend_from_slice(&UNKNOWN_SIZE);

    let mut info = Vec::with_capacity(48);
    write_uint(&mut info, id::TIMESTAMP_SCALE, TIMESTAMP_SCALE_NS);
    write_bytes(&mut info, id::MUXING_APP, b"isoplane");
    write_bytes(&mut info, id::WRITING_APP, b"isoplane");
    if let Some(duration) = duration_ms {
        write_float(&mut info, id::DURATION, duration);
    }
    write_master(&mut out, id::INFO, &info);

    let mut entry = Vec::with_capacity(64);
    write_uint(&mut entry, id::TRACK_NUMBER, TRACK_NUMBER);
    write_uint(&mut entry, id::TRACK_UID, track_uid.max(1));
    match track {
        TrackSettings::Video { codec_id, width, height } => {
            write_uint(&mut entry, id::TRACK_TYPE, 1);
            write_uint(&mut entry, id::FLAG_LACING, 0);
            write_bytes(&mut entry, id::CODEC_ID, codec_id.as_bytes());
            let mut video = Vec::with_capacity(8);
            write_uint(&mut video, id::PIXEL_WIDTH, u64::from(*width));
            write_uint(&mut video, id::PIXEL_HEIGHT, u64::from(*height));
            write_master(&mut entry, id::VIDEO, &video);
        }
        TrackSettings::Audio { codec_id, codec_private, sampling_frequency, channels, seek_pre_roll_ns } => {
            write_uint(&mut entry, id::TRACK_TYPE, 2);
            write_uint(&mut entry, id::FLAG_LACING, 0);
            write_bytes(&mut entry, id::CODEC_ID, codec_id.as_bytes());
            if !codec_private.is_empty() {
                write_bytes(&mut entry, id::CODEC_PRIVATE, codec_private);
            }
            if let Some(pre_roll) = seek_pre_roll_ns {
                write_uint(&mut entry, id::SEEK_PRE_ROLL, *pre_roll);
            }
            let mut audio = Vec::with_capacity(16);
            write_float(&mut audio, id::SAMPLING_FREQUENCY, *sampling_frequency);
            write_uint(&mut audio, id::CHANNELS, u64::from(*channels));
            write_master(&mut entry, id::AUDIO, &audio);
        }
    }
    let mut tracks = Vec::with_capacity(entry.len() + 8);
    write_master(&mut tracks, id::TRACK_ENTRY, &entry);
    write_master(&mut out, id::TRACKS, &tracks);
    out
}

/// Opus's identification header (RFC 7845 §5.1), the track's CodecPrivate: channel
/// mapping family 0 (mono or stereo), no output gain.
pub fn opus_head(channels: u8, pre_skip: u16, input_sample_rate: u32) -> [u8; 19] {
    let mut head = [0u8; 19];
    head[..8].copy_from_slice(b"OpusHead");
    head[8] = 1;
    head[9] = channels;
    head[10..12].copy_from_slice(&pre_skip.to_le_bytes());
    head[12..16].copy_from_slice(&input_sample_rate.to_le_bytes());
    // Output gain (2 bytes) and mapping family (1 byte) stay zero.
    head
}

/// A Cluster being filled: its timestamp and the SimpleBlocks so far. Blocks carry their
/// time relative to the cluster's as an i16, so a block fits only within ±32.767 s.
#[derive(Debug, Clone)]
pub struct Cluster {
    timestamp_ms: u64,
    body: Vec<u8>,
}

impl Cluster {
    pub fn new(timestamp_ms: u64) -> Cluster {
        let mut body = Vec::with_capacity(64 * 1024);
        write_uint(&mut body, id::TIMESTAMP, timestamp_ms);
        Cluster { timestamp_ms, body }
    }

    pub fn timestamp_ms(&self) -> u64 {
        self.timestamp_ms
    }

    /// The encoded size so far, without the Cluster's own ID and size.
    pub fn byte_len(&self) -> usize {
        self.body.len()
    }

    /// Whether a block at `time_ms` can join this cluster (its relative time fits an i16
    /// and does not go before the cluster's start).
    pub fn fits(&self, time_ms: u64) -> bool {
        self.relative(time_ms).is_some()
    }

    fn relative(&self, time_ms: u64) -> Option<i16> {
        let delta = time_ms.checked_sub(self.timestamp_ms)?;
        i16::try_from(delta).ok()
    }

    /// Appends one frame as a SimpleBlock; `false` (and nothing appended) when its time
    /// does not fit this cluster, see [`Cluster::fits`].
    pub fn push_block(&mut self, time_ms: u64, keyframe: bool, frame: &[u8]) -> bool {
        let Some(relative) = self.relative(time_ms) else { return false };
        write_id(&mut self.body, id::SIMPLE_BLOCK);
        // Track number (a 1-byte varint), relative timestamp, flags, then the frame.
        write_size(&mut self.body, 4 + frame.len() as u64);
        write_size(&mut self.body, TRACK_NUMBER);
        self.body.extend_from_slice(&relative.to_be_bytes());
        self.body.push(if keyframe { 0x80 } else { 0x00 });
        self.body.extend_from_slice(frame);
        true
    }

    /// The complete Cluster element.
    pub fn finish(self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.body.len() + 12);
        write_master(&mut out, id::CLUSTER, &self.body);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn size(value: u64) -> Vec<u8> {
        let mut out = Vec::new();
        write_size(&mut out, value);
        out
    }

    #[test]
    fn sizes_take_the_fewest_bytes_and_avoid_the_reserved_all_ones() {
        assert_eq!(size(0), [0x80]);
        assert_eq!(size(1), [0x81]);
        assert_eq!(size(126), [0xFE]);
        // 127 in one byte would be 0xFF, the reserved "unknown" value.
        assert_eq!(size(127), [0x40, 0x7F]);
        assert_eq!(size(16_382), [0x7F, 0xFE]);
        assert_eq!(size(16_383), [0x20, 0x3F, 0xFF]);
        assert_eq!(size((1 << 21) - 2), [0x3F, 0xFF, 0xFE]);
        assert_eq!(size((1 << 21) - 1), [0x10, 0x1F, 0xFF, 0xFF]);
        assert_eq!(size(MAX_SIZE), [0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFE]);
    }

    #[test]
    fn ids_are_written_with_their_own_length() {
        let mut out = Vec::new();
        write_id(&mut out, id::SIMPLE_BLOCK);
        write_id(&mut out, id::DURATION);
        write_id(&mut out, id::TIMESTAMP_SCALE);
        write_id(&mut out, id::CLUSTER);
        assert_eq!(out, [0xA3, 0x44, 0x89, 0x2A, 0xD7, 0xB1, 0x1F, 0x43, 0xB6, 0x75]);
    }

    #[test]
    fn elements_encode_id_size_and_minimal_data() {
        let mut out = Vec::new();
        write_uint(&mut out, id::TRACK_NUMBER, 1);
        write_uint(&mut out, id::TIMESTAMP, 0);
        write_uint(&mut out, id::TIMESTAMP_SCALE, 1_000_000);
        write_uint(&mut out, id::TRACK_UID, u64::MAX);
        assert_eq!(
            out,
            [
                0xD7, 0x81, 0x01, // TrackNumber 1
                0xE7, 0x81, 0x00, // Timestamp 0 still takes one byte
                0x2A, 0xD7, 0xB1, 0x83, 0x0F, 0x42, 0x40, // 1 000 000 in three bytes
                0x73, 0xC5, 0x88, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
            ]
        );
        let mut out = Vec::new();
        write_float(&mut out, id::DURATION, 1.5);
        assert_eq!(out, [0x44, 0x89, 0x88, 0x3F, 0xF8, 0, 0, 0, 0, 0, 0]);
        let mut out = Vec::new();
        write_bytes(&mut out, id::CODEC_ID, b"V_VP8");
        assert_eq!(out, [0x86, 0x85, b'V', b'_', b'V', b'P', b'8']);
    }

    #[test]
    fn header_starts_with_ebml_and_an_unknown_size_segment() {
        let track = TrackSettings::Video { codec_id: "V_VP9", width: 320, height: 240 };
        let header = header(&track, 7, None);
        assert_eq!(header[..4], [0x1A, 0x45, 0xDF, 0xA3]);
        let ebml_size = usize::from(header[4] & 0x7F);
        let segment = &header[5 + ebml_size..];
        assert_eq!(segment[..4], [0x18, 0x53, 0x80, 0x67]);
        assert_eq!(segment[4..12], UNKNOWN_SIZE);
        let contains = |needle: &[u8]| header.windows(needle.len()).any(|w| w == needle);
        assert!(contains(b"\x42\x82\x84webm"));
        assert!(contains(b"\x86\x85V_VP9"));
        assert!(contains(&[0xB0, 0x82, 0x01, 0x40])); // PixelWidth 320
        assert!(contains(&[0xBA, 0x81, 0xF0])); // PixelHeight 240
        assert!(!contains(&[0x44, 0x89]), "no Duration until it is known");
        let with_duration = super::header(&track, 7, Some(2500.0));
        assert_eq!(with_duration.len(), header.len() + 11);
    }

    #[test]
    fn opus_head_is_the_19_byte_identification_header() {
        let head = opus_head(2, 312, 48_000);
        assert_eq!(head, *b"OpusHead\x01\x02\x38\x01\x80\xBB\x00\x00\x00\x00\x00");
    }

    #[test]
    fn cluster_blocks_carry_relative_times_and_refuse_what_an_i16_cannot_hold() {
        let mut cluster = Cluster::new(1000);
        assert!(cluster.push_block(1000, true, &[0xAA]));
        assert!(cluster.push_block(1033, false, &[0xBB, 0xCC]));
        assert!(!cluster.push_block(999, false, &[1]), "before the cluster's start");
        assert!(!cluster.push_block(1000 + 32_768, false, &[1]), "past an i16");
        assert!(cluster.fits(1000 + 32_767));
        let bytes = cluster.finish();
        assert_eq!(
            bytes,
            [
                0x1F, 0x43, 0xB6, 0x75, 0x93, // Cluster, 19 bytes
                0xE7, 0x82, 0x03, 0xE8, // Timestamp 1000
                0xA3, 0x85, 0x81, 0x00, 0x00, 0x80, 0xAA, // keyframe at +0
                0xA3, 0x86, 0x81, 0x00, 0x21, 0x00, 0xBB, 0xCC, // +33
            ]
        );
    }
}
