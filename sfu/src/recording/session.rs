//! One room's recording: which tracks are written, under which names, and the manifest
//! that says who, when and which tracks. Sans-IO: it hands out [`StoreWrite`]s, which the
//! worker passes to the uploader ([`super::store`]) in order.
//!
//! Layout in the object store, under `recordings/{id}/`:
//! - `manifest.json`: the [`Manifest`], rewritten when a track starts or ends, every
//!   [`MANIFEST_INTERVAL`] while recording (its `updated_at` tells a live recording from
//!   one whose SFU died), and at the end with `stopped_at`;
//! - `{file}/header.webm` then `{file}/000001.webm`, `000002.webm`…: one WebM file per
//!   track, cut in clusters as they close, so a crash loses at most the open cluster;
//!   the header is rewritten at the end with the duration. Concatenated in name order
//!   they are a playable file (the asset server serves them so).
//!
//! Every track's frames are timed on the recording's timeline (milliseconds since it
//! started), so the files of one recording line up.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::Serialize;
use str0m::media::{MediaKind, Mid, Rid};

use super::track::{Piece, TrackCodec, TrackRecorder};
use crate::forward::{Forwarder, Verdict};
use crate::participant::ParticipantId;
use crate::protocol::Source;

/// The manifest is rewritten at least this often while recording.
pub const MANIFEST_INTERVAL: Duration = Duration::from_secs(10);

/// Folder of every recording in the object store.
pub const RECORDINGS_PREFIX: &str = "recordings";

/// One object to put in the store (a later write of the same key replaces it).
#[derive(Debug, Clone, PartialEq)]
pub struct StoreWrite {
    pub key: String,
    pub bytes: Bytes,
}

/// What `recordings/{id}/manifest.json` holds.
#[derive(Debug, Clone, Serialize)]
pub struct Manifest {
    pub id: String,
    pub room: String,
    pub started_by: String,
    /// Unix milliseconds.
    pub started_at: i64,
    /// Set when the recording ended cleanly; absent after a crash.
    pub stopped_at: Option<i64>,
    /// When this manifest was written: a recording without `stopped_at` whose manifest is
    /// older than a few intervals lost its SFU.
    pub updated_at: i64,
    pub tracks: Vec<TrackManifest>,
}

/// One recorded track.
#[derive(Debug, Clone, Serialize)]
pub struct TrackManifest {
    /// Folder of its pieces, and the downloaded file's name (`{file}.webm`).
    pub file: String,
    pub avatar: u32,
    /// The user's ID.
    pub sub: String,
    pub source: Source,
    /// `audio` or `video`.
    pub kind: &'static str,
    /// `opus`, `vp8` or `vp9`.
    pub codec: &'static str,
    /// Where its first frame sits on the recording's timeline.
    pub offset_ms: u64,
    pub ended_at: Option<i64>,
    pub frames: u64,
    /// Milliseconds of media written.
    pub duration_ms: u64,
}

/// A published track as the recording needs to know it.
#[derive(Debug, Clone, Copy)]
pub struct TrackSource<'a> {
    pub publisher: ParticipantId,
    pub mid: Mid,
    /// The simulcast layer to record first (the best one sent when the track started).
    pub rid: Option<Rid>,
    /// Whether the track is simulcast: its recorded layer may change (see
    /// [`RoomRecording::follow_layer`]).
    pub simulcast: bool,
    pub avatar: u32,
    pub sub: &'a str,
    pub source: Source,
    pub kind: MediaKind,
    pub codec: TrackCodec,
    pub clock_rate: u32,
}

/// One received RTP packet of a recorded track, as the recording needs it.
#[derive(Debug, Clone, Copy)]
pub struct LayerPacket<'a> {
    /// Its simulcast layer.
    pub rid: Option<Rid>,
    /// Whether it starts a keyframe (a layer switch happens only there).
    pub keyframe: bool,
    /// The extended sequence number str0m gives.
    pub seq_no: u64,
    pub timestamp: u32,
    pub marker: bool,
    pub payload: &'a [u8],
}

struct RecordedTrack {
    publisher: ParticipantId,
    mid: Mid,
    /// Which layer is written, and its packets' numbers made continuous across layer
    /// switches (as a subscriber's are), so the file goes on where the layer changed.
    layer: Forwarder,
    simulcast: bool,
    /// Its folder, which names its pieces.
    file: String,
    recorder: TrackRecorder,
    clusters: u32,
    ended: bool,
}

/// A room being recorded.
pub struct RoomRecording {
    manifest: Manifest,
    started: Instant,
    tracks: Vec<RecordedTrack>,
    /// Files named so far, to number a second file of the same name.
    names: HashMap<String, u32>,
    next_manifest: Instant,
    writes: Vec<StoreWrite>,
}

impl std::fmt::Debug for RoomRecording {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RoomRecording").field("id", &self.manifest.id).field("tracks", &self.tracks.len()).finish()
    }
}

/// Whether `id` may name a recording: it becomes part of object keys.
pub fn valid_id(id: &str) -> bool {
    (1..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn codec_name(codec: TrackCodec) -> &'static str {
    match codec {
        TrackCodec::Opus => "opus",
        TrackCodec::Vp8 => "vp8",
        TrackCodec::Vp9 => "vp9",
    }
}

fn source_name(source: Source) -> &'static str {
    match source {
        Source::Microphone => "microphone",
        Source::Camera => "camera",
        Source::Screen => "screen",
        Source::ScreenAudio => "screen_audio",
    }
}

impl RoomRecording {
    /// Starts recording `room` as `id` (checked with [`valid_id`]) at `now`, which is
    /// `unix_ms` on the wall clock.
    pub fn new(id: &str, room: &str, started_by: &str, now: Instant, unix_ms: i64) -> RoomRecording {
        let manifest = Manifest {
            id: id.to_owned(),
            room: room.to_owned(),
            started_by: started_by.to_owned(),
            started_at: unix_ms,
            stopped_at: None,
            updated_at: unix_ms,
            tracks: Vec::new(),
        };
        let mut recording = RoomRecording {
            manifest,
            started: now,
            tracks: Vec::new(),
            names: HashMap::new(),
            next_manifest: now + MANIFEST_INTERVAL,
            writes: Vec::new(),
        };
        recording.write_manifest(now);
        recording
    }

    pub fn id(&self) -> &str {
        &self.manifest.id
    }

    fn unix_ms(&self, now: Instant) -> i64 {
        let elapsed = i64::try_from(now.saturating_duration_since(self.started).as_millis()).unwrap_or(i64::MAX);
        self.manifest.started_at.saturating_add(elapsed)
    }

    fn key(&self, rest: &str) -> String {
        format!("{RECORDINGS_PREFIX}/{}/{rest}", self.manifest.id)
    }

    fn write_manifest(&mut self, now: Instant) {
        self.manifest.updated_at = self.unix_ms(now);
        for (entry, track) in self.manifest.tracks.iter_mut().zip(&self.tracks) {
            entry.frames = track.recorder.frames();
            entry.duration_ms = track.recorder.last_timestamp_ms().map_or(0, |last| last - entry.offset_ms);
        }
        // Serialising plain data cannot fail.
        let bytes = serde_json::to_vec_pretty(&self.manifest).unwrap_or_default();
        let key = self.key("manifest.json");
        self.writes.push(StoreWrite { key, bytes: Bytes::from(bytes) });
        self.next_manifest = now + MANIFEST_INTERVAL;
    }

    /// Whether this track is being recorded (started and not ended).
    pub fn records(&self, publisher: ParticipantId, mid: Mid) -> bool {
        self.live_track(publisher, mid).is_some()
    }

    /// A simulcast track is to be recorded at `rid` from now on (the layer recorded
    /// stopped, or a better one came back): the file switches at that layer's next
    /// keyframe, and goes on with the old layer until then. Returns whether that keyframe
    /// is needed.
    pub fn follow_layer(&mut self, publisher: ParticipantId, mid: Mid, rid: Rid) -> bool {
        let Some(index) = self.live_track(publisher, mid) else { return false };
        let track = &mut self.tracks[index];
        if !track.simulcast || track.layer.target() == Some(rid) {
            return false;
        }
        tracing::info!(recording = %self.manifest.id, file = %track.file, from = ?track.layer.target(), to = %rid, "recorded layer changes");
        track.layer.set_target(Some(rid))
    }

    fn live_track(&self, publisher: ParticipantId, mid: Mid) -> Option<usize> {
        self.tracks.iter().position(|t| t.publisher == publisher && t.mid == mid && !t.ended)
    }

    /// A track starts being recorded now.
    pub fn add_track(&mut self, now: Instant, track: TrackSource<'_>) {
        if self.live_track(track.publisher, track.mid).is_some() {
            return;
        }
        let base = format!("a{}-{}", track.avatar, source_name(track.source));
        let seen = self.names.entry(base.clone()).or_insert(0);
        *seen += 1;
        let file = if *seen == 1 { base } else { format!("{base}-{seen}") };
        let offset = now.saturating_duration_since(self.started);
        let manifest = TrackManifest {
            file,
            avatar: track.avatar,
            sub: track.sub.to_owned(),
            source: track.source,
            kind: if track.kind == MediaKind::Audio { "audio" } else { "video" },
            codec: codec_name(track.codec),
            offset_ms: u64::try_from(offset.as_millis()).unwrap_or(u64::MAX),
            ended_at: None,
            frames: 0,
            duration_ms: 0,
        };
        let file = manifest.file.clone();
        self.manifest.tracks.push(manifest);
        self.tracks.push(RecordedTrack {
            publisher: track.publisher,
            mid: track.mid,
            layer: Forwarder::new(track.clock_rate, track.rid),
            simulcast: track.simulcast,
            file,
            recorder: TrackRecorder::new(track.codec, track.clock_rate, offset),
            clusters: 0,
            ended: false,
        });
        self.write_manifest(now);
    }

    /// One packet of a recorded track, of any of its layers: written if it is of the
    /// layer recorded. Returns the layer that needs a keyframe, if one does: the recorded
    /// one at the recording's start or after a loss the decoder could not get past, or
    /// the one a switch waits for.
    pub fn push(
        &mut self,
        now: Instant,
        publisher: ParticipantId,
        mid: Mid,
        packet: LayerPacket<'_>,
    ) -> Option<Option<Rid>> {
        let index = self.live_track(publisher, mid)?;
        let track = &mut self.tracks[index];
        let verdict =
            track.layer.decide(packet.rid, packet.seq_no, packet.timestamp, packet.keyframe, track.simulcast, now);
        let Verdict::Send { seq_no, timestamp, .. } = verdict else {
            return track.layer.awaiting_keyframe().then_some(track.layer.target());
        };
        track.recorder.push(seq_no, timestamp, packet.marker, packet.payload);
        let pieces: Vec<Piece> = std::iter::from_fn(|| track.recorder.poll_piece()).collect();
        self.store_pieces(index, pieces);
        let track = &mut self.tracks[index];
        // Asked for as long as the video waits (the room paces the requests): a request
        // or the keyframe it brings may be lost, and an encoder sends none unasked.
        let waits = track.recorder.take_keyframe_request() | track.recorder.waiting_for_keyframe();
        waits.then_some(packet.rid)
    }

    fn store_pieces(&mut self, index: usize, pieces: Vec<Piece>) {
        for piece in pieces {
            let track = &mut self.tracks[index];
            let (name, bytes) = match piece {
                Piece::Header(bytes) => ("header.webm".to_owned(), bytes),
                Piece::Cluster(bytes) => {
                    track.clusters += 1;
                    (format!("{:06}.webm", track.clusters), bytes)
                }
            };
            let key = format!("{RECORDINGS_PREFIX}/{}/{}/{name}", self.manifest.id, track.file);
            self.writes.push(StoreWrite { key, bytes });
        }
    }

    /// A track stopped (unpublished, or its publisher left): its file is finished.
    pub fn end_track(&mut self, now: Instant, publisher: ParticipantId, mid: Mid) {
        if let Some(index) = self.live_track(publisher, mid) {
            self.finish_track(now, index);
            self.write_manifest(now);
        }
    }

    /// Every track of a publisher that left.
    pub fn end_publisher(&mut self, now: Instant, publisher: ParticipantId) {
        let live: Vec<usize> = (0..self.tracks.len())
            .filter(|&i| self.tracks[i].publisher == publisher && !self.tracks[i].ended)
            .collect();
        if live.is_empty() {
            return;
        }
        for index in live {
            self.finish_track(now, index);
        }
        self.write_manifest(now);
    }

    fn finish_track(&mut self, now: Instant, index: usize) {
        let ended_at = self.unix_ms(now);
        let pieces = self.tracks[index].recorder.finish();
        self.store_pieces(index, pieces);
        self.tracks[index].ended = true;
        if let Some(entry) = self.manifest.tracks.get_mut(index) {
            entry.ended_at = Some(ended_at);
        }
    }

    /// Once a second or so: the manifest is rewritten when due.
    pub fn tick(&mut self, now: Instant) {
        if now >= self.next_manifest {
            self.write_manifest(now);
        }
    }

    /// Ends the recording: every file finished, the manifest says when it stopped.
    pub fn finish(&mut self, now: Instant) {
        for index in 0..self.tracks.len() {
            if !self.tracks[index].ended {
                self.finish_track(now, index);
            }
        }
        self.manifest.stopped_at = Some(self.unix_ms(now));
        self.write_manifest(now);
    }

    /// What to store, in order.
    pub fn take_writes(&mut self) -> Vec<StoreWrite> {
        std::mem::take(&mut self.writes)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::recording::track::tests::vp8_packet;

    fn manifest_of(writes: &[StoreWrite]) -> serde_json::Value {
        let last = writes.iter().rev().find(|w| w.key.ends_with("manifest.json")).unwrap();
        serde_json::from_slice(&last.bytes).unwrap()
    }

    fn opus_track(publisher: ParticipantId, avatar: u32) -> TrackSource<'static> {
        TrackSource {
            publisher,
            mid: Mid::from("0"),
            rid: None,
            simulcast: false,
            avatar,
            sub: "ada",
            source: Source::Microphone,
            kind: MediaKind::Audio,
            codec: TrackCodec::Opus,
            clock_rate: 48_000,
        }
    }

    #[test]
    fn ids_that_could_leave_the_recordings_folder_are_refused() {
        assert!(valid_id("0123abcdef"));
        assert!(!valid_id(""));
        assert!(!valid_id("../assets"));
        assert!(!valid_id("a/b"));
        assert!(!valid_id(&"a".repeat(65)));
    }

    #[test]
    fn the_manifest_names_the_tracks_and_says_when_it_stopped() {
        let t0 = Instant::now();
        let mut recording = RoomRecording::new("r1", "demo/meeting", "Ada", t0, 1_000_000);
        let first = recording.take_writes();
        assert_eq!(first.len(), 1);
        assert_eq!(first[0].key, "recordings/r1/manifest.json");
        assert!(manifest_of(&first)["stopped_at"].is_null());

        recording.add_track(t0 + Duration::from_secs(2), opus_track(7, 12));
        // A 20 ms Opus frame (CELT, silence) every 20 ms of RTP time, for 6 s.
        for i in 0..300u32 {
            let at = t0 + Duration::from_millis(2000 + 20 * u64::from(i));
            let packet = LayerPacket {
                rid: None,
                keyframe: false,
                seq_no: u64::from(i),
                timestamp: i * 960,
                marker: true,
                payload: &[0xF8, 0xFF, 0xFE],
            };
            assert_eq!(recording.push(at, 7, Mid::from("0"), packet), None);
        }
        // The same avatar publishing again (a rejoin) gets a file of its own.
        recording.end_publisher(t0 + Duration::from_secs(9), 7);
        recording.add_track(t0 + Duration::from_secs(10), opus_track(8, 12));
        recording.finish(t0 + Duration::from_secs(12));
        let writes = recording.take_writes();
        let manifest = manifest_of(&writes);
        assert_eq!(manifest["stopped_at"], 1_012_000);
        assert_eq!(manifest["tracks"][0]["file"], "a12-microphone");
        assert_eq!(manifest["tracks"][0]["offset_ms"], 2000);
        assert_eq!(manifest["tracks"][0]["ended_at"], 1_009_000);
        assert_eq!(manifest["tracks"][0]["codec"], "opus");
        assert_eq!(manifest["tracks"][1]["file"], "a12-microphone-2");
        let frames = manifest["tracks"][0]["frames"].as_u64().unwrap();
        assert!(frames >= 299, "frames written: {frames}");
        let header = writes.iter().filter(|w| w.key == "recordings/r1/a12-microphone/header.webm").count();
        assert!(header >= 1, "the header is written");
        assert!(writes.iter().any(|w| w.key == "recordings/r1/a12-microphone/000001.webm"));
    }

    #[test]
    fn the_manifest_is_rewritten_while_recording() {
        let t0 = Instant::now();
        let mut recording = RoomRecording::new("r2", "demo/meeting", "Ada", t0, 0);
        recording.take_writes();
        recording.tick(t0 + Duration::from_secs(5));
        assert!(recording.take_writes().is_empty());
        recording.tick(t0 + MANIFEST_INTERVAL);
        let writes = recording.take_writes();
        assert_eq!(manifest_of(&writes)["updated_at"], 10_000);
    }

    #[test]
    fn a_simulcast_camera_whose_recorded_layer_stops_goes_on_in_the_layer_still_sent() {
        let t0 = Instant::now();
        let mut recording = RoomRecording::new("r3", "demo/meeting", "Ada", t0, 0);
        let (high, low) = (Rid::from("h"), Rid::from("l"));
        let mid = Mid::from("1");
        recording.add_track(
            t0,
            TrackSource {
                mid,
                rid: Some(high),
                simulcast: true,
                source: Source::Camera,
                kind: MediaKind::Video,
                codec: TrackCodec::Vp8,
                clock_rate: 90_000,
                ..opus_track(7, 12)
            },
        );
        // 30 frames a second on both layers, each with numbers of its own; a keyframe
        // every 2 s. The high layer stops after 3 s.
        let mut wanted = Vec::new();
        for frame in 0..180u32 {
            let at = t0 + Duration::from_micros(33_333 * u64::from(frame));
            if frame == 90 {
                assert!(recording.follow_layer(7, mid, low), "the switch needs a keyframe of the low layer");
                assert!(!recording.follow_layer(7, mid, low), "asked once");
            }
            let keyframe = frame % 60 == 0;
            let layers = [(high, 1000, 50_000), (low, 30_000, 7_000_000)];
            for (rid, first_seq, first_timestamp) in layers.into_iter().filter(|(rid, ..)| *rid == low || frame < 90) {
                let payload = vp8_packet(keyframe, frame as u8);
                let packet = LayerPacket {
                    rid: Some(rid),
                    keyframe,
                    seq_no: first_seq + u64::from(frame),
                    timestamp: first_timestamp + 3000 * frame,
                    marker: true,
                    payload: &payload,
                };
                if let Some(layer) = recording.push(at, 7, mid, packet) {
                    wanted.push((frame, layer));
                }
            }
        }
        // Past the start (whose first keyframe may have been asked for), only the switch
        // asked: the low layer's keyframe, at every packet until frame 120 brought one.
        let after_start: Vec<_> = wanted.iter().filter(|(frame, _)| *frame > 0).collect();
        assert!(
            after_start.iter().all(|(frame, layer)| (90..120).contains(frame) && *layer == Some(low)),
            "{wanted:?}"
        );
        assert_eq!(after_start.len(), 30);
        recording.finish(t0 + Duration::from_secs(6));
        let manifest = manifest_of(&recording.take_writes());
        let track = &manifest["tracks"][0];
        // 0–3 s from the high layer, 4–6 s from the low one: nothing between frame 90
        // and the low layer's keyframe at frame 120 was decodable.
        assert_eq!(track["frames"], 90 + 60);
        let duration = track["duration_ms"].as_u64().unwrap();
        assert!((5900..=6000).contains(&duration), "the file runs to the end: {duration} ms");
    }
}
