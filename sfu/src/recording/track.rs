//! One track's recording: its RTP packets in, a WebM file out as pieces to store.
//!
//! Sans-IO: the caller pushes packets and stores what [`TrackRecorder::poll_piece`] hands
//! out, in order. The codec frames are copied into the file as they are (no transcoding).
//!
//! - Timeline: milliseconds from the recording's start. The track's first packet is at
//!   `offset`, later frames at `offset` plus their RTP time since (unwrapped across the
//!   32-bit wrap), so the files of one recording line up and the wait for a first
//!   keyframe shows as a late start rather than a shift.
//! - Clusters: video starts a new one at a keyframe once the open one spans
//!   [`CLUSTER_MIN_MS`], any track once it would span [`CLUSTER_MAX_MS`] or hold
//!   [`CLUSTER_MAX_BYTES`]. A cluster is handed out as soon as it is closed, so a crash
//!   loses the open one at most; the file written so far stays playable.
//! - The header goes out with the first decodable frame (video: the first keyframe gives
//!   the size), and again from [`TrackRecorder::finish`] with the duration: the caller
//!   replaces the stored header with it. A video whose size changes later keeps the first
//!   size in its header; VP8 and VP9 decoders follow the size in each keyframe.

use std::collections::VecDeque;
use std::time::Duration;

use bytes::Bytes;

use super::depacketize::{Depacketizer, Frame};
use super::webm::{self, Cluster, TrackSettings};

/// Video: a keyframe starts a new cluster once the open one is this long.
pub const CLUSTER_MIN_MS: u64 = 1000;
/// A cluster never spans this long (SimpleBlock times are i16 milliseconds from the
/// cluster's: 32 s would be the hard limit).
pub const CLUSTER_MAX_MS: u64 = 5000;
/// A cluster is closed before a frame would make it larger than this (a single frame
/// larger than this gets a cluster of its own).
pub const CLUSTER_MAX_BYTES: usize = 4 << 20;
/// Opus's recommended seek pre-roll (RFC 7845 and the WebM codec mapping): 80 ms.
const OPUS_SEEK_PRE_ROLL_NS: u64 = 80_000_000;
/// How far before the first packet pushed an earlier one may move the timeline's zero.
const ANCHOR_REORDER_MS: i64 = 1000;
/// Each file holds one track, so its UID needs to be unique within the file only.
const TRACK_UID: u64 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrackCodec {
    Opus,
    Vp8,
    Vp9,
}

impl TrackCodec {
    fn is_video(self) -> bool {
        self != TrackCodec::Opus
    }

    fn default_clock_rate(self) -> u32 {
        if self.is_video() { 90_000 } else { 48_000 }
    }

    /// A frame's duration when no interval has been seen (the last frame of a track).
    fn default_frame_ms(self) -> u64 {
        if self.is_video() { 33 } else { 20 }
    }
}

/// What the recorder hands out to be stored, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Piece {
    /// The file's beginning: EBML header, Segment (unknown size), Info, Tracks. Emitted once
    /// when the first decodable frame arrives (video: a keyframe, whose dimensions it
    /// carries); emitted again by `finish` with the Duration filled in (the caller overwrites
    /// the stored header with it).
    Header(Bytes),
    /// One complete Cluster element (with its size), to be appended after the header and the
    /// clusters before it. Concatenating Header + all Clusters in order gives a playable file.
    Cluster(Bytes),
}

/// One RTP stream recorded to WebM. VP9: spatial layer 0 only is recorded: a higher
/// layer's frames predict from the layers below, so no decoder can use them alone, and a
/// WebM track holds one picture per time.
#[derive(Debug)]
pub struct TrackRecorder {
    codec: TrackCodec,
    clock_rate: u32,
    offset_ms: u64,
    depacketizer: Depacketizer,
    /// The RTP timestamp of the track's first packet: the timeline's `offset`.
    anchor: Option<u32>,
    /// The last frame's RTP timestamp and its unwrapped distance from the anchor.
    last_rtp: Option<(u32, i64)>,
    /// Known once the first header is out.
    settings: Option<TrackSettings>,
    cluster: Option<Cluster>,
    out: VecDeque<Piece>,
    frames: u64,
    last_ms: Option<u64>,
    last_interval_ms: Option<u64>,
    finished: bool,
}

impl TrackRecorder {
    /// `offset`: how long after the recording's start this track began (its frames are
    /// timestamped on the recording's timeline, so the files of one recording line up).
    /// A `clock_rate` of 0 means the codec's usual one.
    pub fn new(codec: TrackCodec, clock_rate: u32, offset: Duration) -> TrackRecorder {
        let clock_rate = if clock_rate == 0 { codec.default_clock_rate() } else { clock_rate };
        TrackRecorder {
            codec,
            clock_rate,
            offset_ms: u64::try_from(offset.as_millis()).unwrap_or(u64::MAX / 2),
            depacketizer: Depacketizer::new(codec, clock_rate),
            anchor: None,
            last_rtp: None,
            settings: None,
            cluster: None,
            out: VecDeque::new(),
            frames: 0,
            last_ms: None,
            last_interval_ms: None,
            finished: false,
        }
    }

    /// One received RTP packet, in any order, duplicates and retransmissions included.
    /// `seq_no` is the extended (64-bit, unwrapped) sequence number str0m gives.
    pub fn push(&mut self, seq_no: u64, timestamp: u32, marker: bool, payload: &[u8]) {
        if self.finished {
            return;
        }
        self.move_anchor(timestamp);
        self.depacketizer.push(seq_no, timestamp, marker, payload);
        self.take_frames();
    }

    /// The next piece ready to store, if any.
    pub fn poll_piece(&mut self) -> Option<Piece> {
        self.out.pop_front()
    }

    /// True once after a loss made the video undecodable until the next keyframe (and at the
    /// start, before the first keyframe): the caller then asks the publisher for a keyframe.
    pub fn take_keyframe_request(&mut self) -> bool {
        !self.finished && self.depacketizer.take_keyframe_request()
    }

    /// Whether the video waits for a keyframe (frames are dropped until one comes): the
    /// caller keeps asking, at its own pace, since a request or its answer may be lost.
    pub fn waiting_for_keyframe(&self) -> bool {
        !self.finished && self.depacketizer.waiting_for_keyframe()
    }

    /// Ends the track: the pending frames and cluster go out, then the final Header. Nothing
    /// when no frame was ever recorded (there is no file); nothing on a second call.
    pub fn finish(&mut self) -> Vec<Piece> {
        if self.finished {
            return Vec::new();
        }
        self.depacketizer.flush();
        self.take_frames();
        self.close_cluster();
        self.finished = true;
        let mut pieces: Vec<Piece> = self.out.drain(..).collect();
        if let (Some(settings), Some(last_ms)) = (&self.settings, self.last_ms) {
            let duration = last_ms.saturating_add(self.last_interval_ms.unwrap_or(self.codec.default_frame_ms()));
            let header = webm::header(settings, TRACK_UID, Some(duration as f64));
            pieces.push(Piece::Header(Bytes::from(header)));
        }
        pieces
    }

    /// Frames written so far.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// The timeline position of the last frame written (milliseconds).
    pub fn last_timestamp_ms(&self) -> Option<u64> {
        self.last_ms
    }

    /// The timeline's zero is the track's earliest packet: the first one pushed, or one
    /// that was sent before it and arrives before any frame is written (reordering),
    /// within [`ANCHOR_REORDER_MS`] so that one stray timestamp cannot move it far.
    fn move_anchor(&mut self, timestamp: u32) {
        let Some(anchor) = self.anchor else {
            self.anchor = Some(timestamp);
            return;
        };
        let earlier_by = i64::from(anchor.wrapping_sub(timestamp) as i32);
        let limit = i64::from(self.clock_rate) * ANCHOR_REORDER_MS / 1000;
        if self.frames == 0 && earlier_by > 0 && earlier_by <= limit {
            self.anchor = Some(timestamp);
        }
    }

    fn take_frames(&mut self) {
        while let Some(frame) = self.depacketizer.poll_frame() {
            self.write(frame);
        }
    }

    fn write(&mut self, frame: Frame) {
        if self.settings.is_none() {
            let Some(settings) = self.settings_from(&frame) else { return };
            self.out.push_back(Piece::Header(Bytes::from(webm::header(&settings, TRACK_UID, None))));
            self.settings = Some(settings);
        }
        let time_ms = self.timeline_ms(frame.timestamp);
        let keyframe = frame.keyframe || !self.codec.is_video();
        let cut = self.cluster.as_ref().is_none_or(|cluster| {
            let span = time_ms.saturating_sub(cluster.timestamp_ms());
            !cluster.fits(time_ms)
                || span >= CLUSTER_MAX_MS
                || cluster.byte_len() + frame.data.len() > CLUSTER_MAX_BYTES
                || (self.codec.is_video() && keyframe && span >= CLUSTER_MIN_MS)
        });
        if cut {
            self.close_cluster();
        }
        let cluster = self.cluster.get_or_insert_with(|| Cluster::new(time_ms));
        // Fits: a new cluster starts at this frame, an open one was checked above.
        let written = cluster.push_block(time_ms, keyframe, &frame.data);
        debug_assert!(written, "a frame at {time_ms} ms outside its cluster");
        if let Some(last) = self.last_ms {
            self.last_interval_ms = Some(time_ms.saturating_sub(last));
        }
        self.last_ms = Some(time_ms);
        self.frames += 1;
    }

    /// The header's track description, from the first frame to record; `None` while no
    /// video keyframe has given the picture's size.
    fn settings_from(&self, frame: &Frame) -> Option<TrackSettings> {
        let video = |codec_id| {
            let (width, height) = frame.dimensions?;
            Some(TrackSettings::Video { codec_id, width, height })
        };
        match self.codec {
            TrackCodec::Vp8 => video("V_VP8"),
            TrackCodec::Vp9 => video("V_VP9"),
            // WebRTC's Opus is always negotiated as 2 channels (RFC 7587); a mono stream
            // decodes as stereo.
            TrackCodec::Opus => Some(TrackSettings::Audio {
                codec_id: "A_OPUS",
                codec_private: webm::opus_head(2, 0, 48_000).to_vec(),
                sampling_frequency: 48_000.0,
                channels: 2,
                seek_pre_roll_ns: Some(OPUS_SEEK_PRE_ROLL_NS),
            }),
        }
    }

    /// A frame's place on the recording's timeline, never before the previous frame's
    /// (block times must not go backwards within a cluster).
    fn timeline_ms(&mut self, timestamp: u32) -> u64 {
        let (previous, distance) = self.last_rtp.unwrap_or((self.anchor.unwrap_or(timestamp), 0));
        let distance = distance + i64::from(timestamp.wrapping_sub(previous) as i32);
        self.last_rtp = Some((timestamp, distance));
        let since_anchor_ms = distance.saturating_mul(1000) / i64::from(self.clock_rate);
        let offset_ms = i64::try_from(self.offset_ms).unwrap_or(i64::MAX);
        // Never before the track's start (a packet older than the first one pushed), so
        // `last_timestamp_ms() - offset` is the track's length.
        let time_ms = u64::try_from(offset_ms.saturating_add(since_anchor_ms)).unwrap_or(0);
        time_ms.max(self.offset_ms).max(self.last_ms.unwrap_or(0))
    }

    fn close_cluster(&mut self) {
        if let Some(cluster) = self.cluster.take() {
            self.out.push_back(Piece::Cluster(Bytes::from(cluster.finish())));
        }
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// A block as read back: relative time, keyframe, frame length.
    type Block = (i16, bool, usize);

    /// A cluster's Timestamp and its blocks.
    fn read_cluster(bytes: &[u8]) -> (u64, Vec<Block>) {
        let (id, size, mut at) = read_element_head(bytes, 0);
        assert_eq!(id, 0x1F43_B675);
        assert_eq!(at + size, bytes.len(), "the cluster's size covers it exactly");
        let mut timestamp = None;
        let mut blocks = Vec::new();
        while at < bytes.len() {
            let (id, size, data) = read_element_head(bytes, at);
            let body = &bytes[data..data + size];
            match id {
                0xE7 => timestamp = Some(body.iter().fold(0u64, |value, byte| value << 8 | u64::from(*byte))),
                0xA3 => {
                    assert_eq!(body[0], 0x81, "track 1");
                    blocks.push((i16::from_be_bytes([body[1], body[2]]), body[3] & 0x80 != 0, size - 4));
                }
                other => panic!("unexpected element {other:x} in a cluster"),
            }
            at = data + size;
        }
        (timestamp.unwrap(), blocks)
    }

    /// An element's ID, size and where its data starts.
    fn read_element_head(bytes: &[u8], at: usize) -> (u32, usize, usize) {
        let id_len = bytes[at].leading_zeros() as usize + 1;
        let id = bytes[at..at + id_len].iter().fold(0u32, |value, byte| value << 8 | u32::from(*byte));
        let size_at = at + id_len;
        let size_len = bytes[size_at].leading_zeros() as usize + 1;
        let mut size = u64::from(bytes[size_at] & (0xFF >> size_len));
        for byte in &bytes[size_at + 1..size_at + size_len] {
            size = size << 8 | u64::from(*byte);
        }
        (id, usize::try_from(size).unwrap(), size_at + size_len)
    }

    fn drain(recorder: &mut TrackRecorder) -> Vec<Piece> {
        std::iter::from_fn(|| recorder.poll_piece()).collect()
    }

    /// Opus frames every 20 ms, in order, each `size` bytes.
    fn push_opus(recorder: &mut TrackRecorder, count: u64, first_timestamp: u32, size: usize) -> Vec<Piece> {
        let mut pieces = Vec::new();
        for index in 0..count {
            let timestamp = first_timestamp.wrapping_add(960 * index as u32);
            let mut payload = vec![0xF8, 0xFF, 0xFE];
            payload.resize(size, 0);
            recorder.push(1000 + index, timestamp, true, &payload);
            pieces.extend(drain(recorder));
        }
        pieces
    }

    fn clusters(pieces: &[Piece]) -> Vec<(u64, Vec<Block>)> {
        pieces
            .iter()
            .filter_map(|piece| match piece {
                Piece::Cluster(bytes) => Some(read_cluster(bytes)),
                Piece::Header(_) => None,
            })
            .collect()
    }

    #[test]
    fn audio_clusters_are_cut_every_5_seconds_and_time_runs_across_the_rtp_wrap() {
        let mut recorder = TrackRecorder::new(TrackCodec::Opus, 48_000, Duration::from_millis(1500));
        // 12 s of 20 ms frames whose RTP time wraps after 2 s.
        let mut pieces = push_opus(&mut recorder, 600, u32::MAX - 96_000 + 1, 3);
        assert!(!recorder.take_keyframe_request(), "audio never asks for keyframes");
        assert!(matches!(pieces[0], Piece::Header(_)));
        pieces.extend(recorder.finish());
        let clusters = clusters(&pieces);
        let starts: Vec<u64> = clusters.iter().map(|c| c.0).collect();
        assert_eq!(starts, [1500, 6500, 11_500]);
        let times: Vec<u64> =
            clusters.iter().flat_map(|(start, blocks)| blocks.iter().map(move |b| start + b.0 as u64)).collect();
        let expected: Vec<u64> = (0..600).map(|i| 1500 + 20 * i).collect();
        assert_eq!(times, expected);
        assert!(clusters.iter().all(|(_, blocks)| blocks.iter().all(|b| b.1)), "every audio block is a keyframe");
        assert_eq!((recorder.frames(), recorder.last_timestamp_ms()), (600, Some(1500 + 20 * 599)));
        let Some(Piece::Header(last)) = pieces.last() else { panic!("the final header comes last") };
        let duration = (1500 + 20 * 600) as f64;
        assert!(last.windows(11).any(|w| w[..3] == [0x44, 0x89, 0x88] && w[3..] == duration.to_be_bytes()));
    }

    #[test]
    fn an_earlier_packet_arriving_after_the_first_still_starts_the_timeline() {
        let mut recorder = TrackRecorder::new(TrackCodec::Opus, 48_000, Duration::from_millis(40));
        let order = [2u64, 0, 1, 3, 5, 4, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19];
        for index in order {
            recorder.push(index, 500 + 960 * index as u32, true, &[0xF8, 0xFF, 0xFE]);
        }
        let pieces = recorder.finish();
        let (start, blocks) = &clusters(&pieces)[0];
        let times: Vec<u64> = blocks.iter().map(|b| start + b.0 as u64).collect();
        assert_eq!(times, (0..20).map(|i| 40 + 20 * i).collect::<Vec<u64>>());
    }

    #[test]
    fn clusters_are_closed_before_they_hold_4_mib() {
        let mut recorder = TrackRecorder::new(TrackCodec::Opus, 48_000, Duration::ZERO);
        let pieces = push_opus(&mut recorder, 100, 0, 60_000);
        let sizes: Vec<usize> = pieces
            .iter()
            .filter_map(|p| match p {
                Piece::Cluster(bytes) => Some(bytes.len()),
                Piece::Header(_) => None,
            })
            .collect();
        assert_eq!(sizes.len(), 1, "69 frames fill the first cluster");
        assert!(sizes[0] <= CLUSTER_MAX_BYTES + 16 && sizes[0] > CLUSTER_MAX_BYTES - 60_100, "{sizes:?}");
    }

    /// A VP8 picture as one packet (a 7-bit PictureID descriptor).
    /// A VP8 RTP payload of one packet: a keyframe of 320×240, or a delta frame.
    pub(in crate::recording) fn vp8_packet(key: bool, picture: u8) -> Vec<u8> {
        let mut payload = vec![0x90, 0x80, picture & 0x7F];
        if key {
            payload.extend_from_slice(&[0x10, 0x02, 0x00, 0x9D, 0x01, 0x2A, 0x40, 0x01, 0xF0, 0x00]);
        } else {
            payload.extend_from_slice(&[0x11, 0x02, 0x00]);
        }
        payload
    }

    #[test]
    fn video_clusters_start_at_keyframes_after_a_second_or_after_5_seconds_anyway() {
        let mut recorder = TrackRecorder::new(TrackCodec::Vp8, 90_000, Duration::ZERO);
        assert!(recorder.take_keyframe_request(), "the first keyframe is asked for");
        // 30 fps: keyframes every half second for 3 s, then none for 12 s.
        let mut pieces = Vec::new();
        for index in 0..450u32 {
            let key = index < 90 && index % 15 == 0;
            recorder.push(u64::from(index), 3000 * index, true, &vp8_packet(key, index as u8));
            pieces.extend(drain(&mut recorder));
        }
        pieces.extend(recorder.finish());
        let clusters = clusters(&pieces);
        let starts: Vec<u64> = clusters.iter().map(|c| c.0).collect();
        // Keyframes at 0, 500, ... 2500 ms: a cluster per second; then every 5 s.
        assert_eq!(starts, [0, 1000, 2000, 7000, 12_000]);
        for (start, blocks) in &clusters[..3] {
            let keys: Vec<i16> = blocks.iter().filter(|b| b.1).map(|b| b.0).collect();
            assert_eq!(keys, [0, 500], "cluster at {start}");
        }
        assert!(clusters[3].1.iter().all(|b| !b.1) && clusters[3].1[0].0 == 0);
        assert_eq!(recorder.frames(), 450);
        assert!(!recorder.take_keyframe_request());
        let Some(Piece::Header(first)) = pieces.first() else { panic!("the header comes first") };
        assert!(first.windows(4).any(|w| w == [0xB0, 0x82, 0x01, 0x40]), "width 320 from the keyframe");
    }

    #[test]
    fn video_before_its_first_keyframe_is_dropped_but_keeps_its_place_on_the_timeline() {
        let mut recorder = TrackRecorder::new(TrackCodec::Vp8, 90_000, Duration::from_secs(2));
        assert!(recorder.take_keyframe_request());
        for index in 0..10u32 {
            recorder.push(u64::from(index), 3000 * index, true, &vp8_packet(index == 6, index as u8));
        }
        let pieces = drain(&mut recorder);
        assert_eq!(pieces.len(), 1, "the header, once the keyframe came");
        assert_eq!(recorder.frames(), 4);
        assert_eq!(recorder.last_timestamp_ms(), Some(2000 + 300));
        let pieces = recorder.finish();
        let clusters = clusters(&pieces);
        assert_eq!(clusters[0].0, 2200, "the keyframe 200 ms after the track's first packet");
        assert_eq!(recorder.finish(), [], "finished once");
    }

    #[test]
    fn nothing_is_stored_for_a_track_that_never_became_decodable() {
        let mut recorder = TrackRecorder::new(TrackCodec::Vp9, 90_000, Duration::ZERO);
        recorder.push(1, 0, true, &[0xCC, 0x01, 0x02]);
        assert_eq!(recorder.poll_piece(), None);
        assert_eq!(recorder.finish(), []);
        assert_eq!((recorder.frames(), recorder.last_timestamp_ms()), (0, None));
    }

    #[test]
    fn a_lost_video_packet_drops_until_the_next_keyframe_and_asks_once() {
        let mut recorder = TrackRecorder::new(TrackCodec::Vp8, 90_000, Duration::ZERO);
        assert!(recorder.take_keyframe_request());
        let mut requests = 0;
        for index in (0..60u32).filter(|&i| i != 20) {
            recorder.push(u64::from(index), 3000 * index, true, &vp8_packet(index % 30 == 0, index as u8));
            requests += usize::from(recorder.take_keyframe_request());
        }
        recorder.finish();
        assert_eq!(requests, 1);
        assert_eq!(recorder.frames(), 20 + 30, "pictures 20 to 29 are gone");
    }

    mod decoded {
        //! The recorder's files read back by ffmpeg, a real demuxer and decoder.

        use std::path::Path;
        use std::process::Command;

        use super::super::*;
        use crate::recording::depacketize::{vp8_keyframe_dimensions, vp9_keyframe_dimensions};

        const FPS: u64 = 30;
        const VIDEO_FRAMES: u64 = 90;

        /// Runs a tool of Debian's ffmpeg package; a missing tool fails the test.
        fn tool(name: &str, args: &[&str]) -> Vec<u8> {
            let output = Command::new(name).args(args).output().unwrap_or_else(|error| {
                panic!("cannot run {name} ({error}): these tests need Debian's ffmpeg (apt-get install ffmpeg)")
            });
            assert!(output.status.success(), "{name} {args:?} failed: {}", String::from_utf8_lossy(&output.stderr));
            output.stdout
        }

        fn probe(path: &Path) -> serde_json::Value {
            let path = path.to_str().unwrap();
            let output = tool(
                "ffprobe",
                &[
                    "-v",
                    "error",
                    "-count_frames",
                    "-show_entries",
                    "stream=codec_name,width,height,sample_rate,nb_read_frames:format=duration",
                    "-of",
                    "json",
                    path,
                ],
            );
            serde_json::from_slice(&output).unwrap()
        }

        /// What ffmpeg complains about while demuxing and decoding the whole file.
        fn decoding_complaints(path: &Path) -> String {
            let output = Command::new("ffmpeg")
                .args(["-v", "warning", "-i", path.to_str().unwrap(), "-f", "null", "-"])
                .output()
                .unwrap_or_else(|error| panic!("cannot run ffmpeg ({error}): install Debian's ffmpeg"));
            assert!(output.status.success());
            String::from_utf8_lossy(&output.stderr).into_owned()
        }

        /// The stored packets' presentation times, in seconds.
        fn packet_times(path: &Path) -> Vec<f64> {
            let path = path.to_str().unwrap();
            let args = ["-v", "error", "-show_entries", "packet=pts_time", "-of", "csv=p=0", path];
            let output = String::from_utf8(tool("ffprobe", &args)).unwrap();
            output.lines().map(|line| line.trim().trim_end_matches(',').parse().unwrap()).collect()
        }

        /// The frames of an IVF file with their pts in 90 kHz ticks: a 32-byte file header
        /// (time base at 16: denominator, 20: numerator), then per frame its size (u32 LE),
        /// pts (u64 LE) and data.
        fn ivf_frames(bytes: &[u8]) -> Vec<(u64, Vec<u8>)> {
            assert_eq!(&bytes[..4], b"DKIF");
            let le32 = |at: usize| u64::from(u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()));
            let (denominator, numerator) = (le32(16), le32(20));
            let mut frames = Vec::new();
            let mut at = 32;
            while at + 12 <= bytes.len() {
                let size = le32(at) as usize;
                let pts = u64::from_le_bytes(bytes[at + 4..at + 12].try_into().unwrap());
                frames.push((pts * 90_000 * numerator / denominator, bytes[at + 12..at + 12 + size].to_vec()));
                at += 12 + size;
            }
            frames
        }

        /// The packets of an Ogg stream (RFC 3533): segments of 255 bytes continue a packet.
        fn ogg_packets(bytes: &[u8]) -> Vec<Vec<u8>> {
            let mut packets = Vec::new();
            let mut packet = Vec::new();
            let mut at = 0;
            while at + 27 <= bytes.len() {
                assert_eq!(&bytes[at..at + 4], b"OggS");
                let segments = usize::from(bytes[at + 26]);
                let table = &bytes[at + 27..at + 27 + segments];
                let mut data = at + 27 + segments;
                for &length in table {
                    packet.extend_from_slice(&bytes[data..data + usize::from(length)]);
                    data += usize::from(length);
                    if length < 255 {
                        packets.push(std::mem::take(&mut packet));
                    }
                }
                at = data;
            }
            packets
        }

        /// RTP-like packets: `(seq, timestamp, marker, payload)`.
        type Packet = (u64, u32, bool, Vec<u8>);

        /// Splits each frame into fragments of at most 1100 bytes behind `descriptor(frame,
        /// index, first fragment, last fragment)`.
        fn packetize(
            frames: &[(u32, Vec<u8>)],
            mut descriptor: impl FnMut(&[u8], usize, bool, bool) -> Vec<u8>,
        ) -> Vec<Packet> {
            let mut packets = Vec::new();
            let mut seq = 40_000u64;
            for (index, (timestamp, frame)) in frames.iter().enumerate() {
                let count = frame.len().div_ceil(1100);
                for (fragment, data) in frame.chunks(1100).enumerate() {
                    let last = fragment + 1 == count;
                    let mut payload = descriptor(frame, index, fragment == 0, last);
                    payload.extend_from_slice(data);
                    packets.push((seq, *timestamp, last, payload));
                    seq += 1;
                }
            }
            packets
        }

        /// Shuffles within windows of 8 packets (a seeded xorshift) and sends every 13th
        /// packet twice, the copy a little later (a retransmission that was not needed).
        fn shuffle(packets: Vec<Packet>) -> Vec<Packet> {
            let mut state = 0x9E37_79B9_7F4A_7C15u64;
            let mut random = move || {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state
            };
            let mut shuffled: Vec<Packet> = Vec::with_capacity(packets.len() * 2);
            for window in packets.chunks(8) {
                let mut window = window.to_vec();
                for index in (1..window.len()).rev() {
                    window.swap(index, (random() % (index as u64 + 1)) as usize);
                }
                shuffled.extend(window);
            }
            for index in (0..shuffled.len()).step_by(13).rev() {
                let copy = shuffled[index].clone();
                shuffled.insert((index + 5).min(shuffled.len()), copy);
            }
            shuffled
        }

        /// Pushes the packets; returns the pieces before `finish`, and after.
        fn record(recorder: &mut TrackRecorder, packets: &[Packet]) -> (Vec<Piece>, Vec<Piece>) {
            let mut pieces = Vec::new();
            for (seq, timestamp, marker, payload) in packets {
                recorder.push(*seq, *timestamp, *marker, payload);
                let _ = recorder.take_keyframe_request();
                pieces.extend(std::iter::from_fn(|| recorder.poll_piece()));
            }
            (pieces, recorder.finish())
        }

        /// The stored file: every piece in order, a later header replacing the earlier one.
        fn file(pieces: &[Piece]) -> Vec<u8> {
            let mut header = Vec::new();
            let mut clusters = Vec::new();
            for piece in pieces {
                match piece {
                    Piece::Header(bytes) => header = bytes.to_vec(),
                    Piece::Cluster(bytes) => clusters.extend_from_slice(bytes),
                }
            }
            header.extend(clusters);
            header
        }

        fn encode_video(dir: &Path, encoder: &str) -> Vec<(u64, Vec<u8>)> {
            let path = dir.join(format!("{encoder}.ivf"));
            let frames = VIDEO_FRAMES.to_string();
            tool(
                "ffmpeg",
                &[
                    "-v",
                    "error",
                    "-f",
                    "lavfi",
                    "-i",
                    "testsrc=size=320x240:rate=30",
                    "-frames:v",
                    &frames,
                    "-pix_fmt",
                    "yuv420p",
                    "-c:v",
                    encoder,
                    "-g",
                    "30",
                    // As a browser encodes: no look-ahead, so no hidden alt-ref frames.
                    "-deadline",
                    "realtime",
                    "-cpu-used",
                    "8",
                    "-lag-in-frames",
                    "0",
                    "-b:v",
                    "1M",
                    "-f",
                    "ivf",
                    path.to_str().unwrap(),
                ],
            );
            ivf_frames(&std::fs::read(path).unwrap())
        }

        /// Records `packets`, writes the complete and the crashed file, and checks both.
        fn check_video(codec: TrackCodec, codec_name: &str, packets: &[Packet], dir: &Path) {
            let mut recorder = TrackRecorder::new(codec, 90_000, Duration::ZERO);
            let (before_finish, after_finish) = record(&mut recorder, packets);
            assert_eq!(recorder.frames(), VIDEO_FRAMES, "every frame pushed is recorded");

            let complete = dir.join(format!("{codec_name}.webm"));
            std::fs::write(&complete, file(&[before_finish.clone(), after_finish].concat())).unwrap();
            let probed = probe(&complete);
            eprintln!("{codec_name}: {probed}");
            let stream = &probed["streams"][0];
            assert_eq!(stream["codec_name"], codec_name);
            assert_eq!((stream["width"].as_u64(), stream["height"].as_u64()), (Some(320), Some(240)));
            assert_eq!(stream["nb_read_frames"].as_str(), Some(VIDEO_FRAMES.to_string().as_str()));
            let duration: f64 = probed["format"]["duration"].as_str().unwrap().parse().unwrap();
            let expected = VIDEO_FRAMES as f64 / FPS as f64;
            assert!((duration - expected).abs() <= expected / 10.0, "duration {duration} s, expected {expected} s");
            // Each frame at its RTP time, in milliseconds.
            let expected: Vec<f64> = (0..VIDEO_FRAMES).map(|i| (i * 1000 / FPS) as f64 / 1000.0).collect();
            assert_eq!(packet_times(&complete), expected);
            assert_eq!(decoding_complaints(&complete), "");

            let crashed = dir.join(format!("{codec_name}-crashed.webm"));
            std::fs::write(&crashed, file(&before_finish)).unwrap();
            let probed = probe(&crashed);
            eprintln!("{codec_name} without finish: {probed}");
            let read: u64 = probed["streams"][0]["nb_read_frames"].as_str().unwrap().parse().unwrap();
            assert!(read > 0 && read < VIDEO_FRAMES, "{read} frames read from the clusters closed before the crash");
            assert_eq!(decoding_complaints(&crashed), "");
        }

        #[test]
        fn vp8_from_shuffled_packets_decodes_every_frame() {
            let dir = tempfile::tempdir().unwrap();
            let frames = encode_video(dir.path(), "libvpx");
            assert_eq!(frames.len() as u64, VIDEO_FRAMES);
            // RTP time crosses the 32-bit wrap one second in.
            let first = u32::MAX - 90_000 + 1;
            let frames: Vec<(u32, Vec<u8>)> =
                frames.into_iter().map(|(pts, data)| (first.wrapping_add(pts as u32), data)).collect();
            let packets = packetize(&frames, |_, index, first_fragment, _| {
                // X, S on the first fragment; I with a 15-bit PictureID.
                let picture = (index as u16 + 32_000) & 0x7FFF;
                let start = if first_fragment { 0x10 } else { 0x00 };
                vec![0x80 | start, 0x80, 0x80 | (picture >> 8) as u8, picture as u8]
            });
            assert!(packets.len() > frames.len(), "frames span several packets");
            assert!(vp8_keyframe_dimensions(&frames[0].1).is_some());
            check_video(TrackCodec::Vp8, "vp8", &shuffle(packets), dir.path());
        }

        #[test]
        fn vp9_from_shuffled_packets_decodes_every_frame() {
            let dir = tempfile::tempdir().unwrap();
            let frames = encode_video(dir.path(), "libvpx-vp9");
            assert_eq!(frames.len() as u64, VIDEO_FRAMES);
            let frames: Vec<(u32, Vec<u8>)> =
                frames.into_iter().map(|(pts, data)| (pts as u32 + 12_345, data)).collect();
            let packets = packetize(&frames, |frame, index, first_fragment, last_fragment| {
                let key = vp9_keyframe_dimensions(frame).is_some();
                let picture = (index as u16 + 100) & 0x7FFF;
                // I, P on predicted frames, L (non-flexible: TID/SID 0 and TL0PICIDX), B, E,
                // and on a keyframe's first packet V with one layer's size.
                let mut first = 0x80 | 0x20;
                first |= if key { 0 } else { 0x40 };
                first |= if first_fragment { 0x08 } else { 0 };
                first |= if last_fragment { 0x04 } else { 0 };
                let with_scalability = key && first_fragment;
                first |= if with_scalability { 0x02 } else { 0 };
                let mut descriptor = vec![first, 0x80 | (picture >> 8) as u8, picture as u8, 0x00, index as u8];
                if with_scalability {
                    descriptor.extend_from_slice(&[0x10, 0x01, 0x40, 0x00, 0xF0]);
                }
                descriptor
            });
            assert!(packets.len() > frames.len(), "frames span several packets");
            check_video(TrackCodec::Vp9, "vp9", &shuffle(packets), dir.path());
        }

        #[test]
        fn opus_from_shuffled_packets_plays_5_seconds() {
            let dir = tempfile::tempdir().unwrap();
            let ogg = dir.path().join("sine.ogg");
            tool(
                "ffmpeg",
                &[
                    "-v",
                    "error",
                    "-f",
                    "lavfi",
                    "-i",
                    "sine=frequency=440:sample_rate=48000:duration=5",
                    "-c:a",
                    "libopus",
                    "-b:a",
                    "64k",
                    "-frame_duration",
                    "20",
                    "-f",
                    "ogg",
                    ogg.to_str().unwrap(),
                ],
            );
            // The first two packets are OpusHead and OpusTags.
            let opus: Vec<Vec<u8>> = ogg_packets(&std::fs::read(&ogg).unwrap()).into_iter().skip(2).collect();
            assert!((249..=252).contains(&opus.len()), "{} packets of 20 ms", opus.len());
            let packets: Vec<Packet> = opus
                .iter()
                .enumerate()
                .map(|(index, data)| {
                    (7 + index as u64, (u32::MAX - 4800).wrapping_add(960 * index as u32), true, data.clone())
                })
                .collect();
            let mut recorder = TrackRecorder::new(TrackCodec::Opus, 48_000, Duration::ZERO);
            let (before, after) = record(&mut recorder, &shuffle(packets));
            assert_eq!(recorder.frames(), opus.len() as u64);

            let path = dir.path().join("opus.webm");
            std::fs::write(&path, file(&[before, after].concat())).unwrap();
            let probed = probe(&path);
            eprintln!("opus: {probed}");
            let stream = &probed["streams"][0];
            assert_eq!(stream["codec_name"], "opus");
            assert_eq!(stream["sample_rate"], "48000");
            assert_eq!(stream["nb_read_frames"].as_str(), Some(opus.len().to_string().as_str()));
            let duration: f64 = probed["format"]["duration"].as_str().unwrap().parse().unwrap();
            assert!((duration - 5.0).abs() <= 0.5, "duration {duration} s");
            assert!((duration - opus.len() as f64 * 0.02).abs() < 1e-6, "{duration} s for {} frames", opus.len());
            let expected: Vec<f64> = (0..opus.len()).map(|i| i as f64 * 0.02).collect();
            assert_eq!(decoding_complaints(&path), "");
            let times = packet_times(&path);
            assert_eq!(times.len(), expected.len());
            assert!(times.iter().zip(&expected).all(|(time, expected)| (time - expected).abs() < 1e-6), "{times:?}");
        }
    }
}
