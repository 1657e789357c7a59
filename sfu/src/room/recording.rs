//! A room's side of recording: which packets reach the [`RoomRecording`], which layer of
//! a simulcast camera is recorded, keyframe requests for the recorder, and when tracks
//! start and end.
//!
//! A track starts being recorded at its first packet after the recording began: audio at
//! once; a simulcast camera on the best layer its publisher sends then (measured each
//! second, so a camera that just started waits up to a second), and on whichever layer is
//! best later (switching at that layer's keyframe, the file's numbering continuous). VP9 with
//! spatial layers is recorded at its base layer (see `recording::depacketize`). H.264 is
//! not recorded. Muted media is not recorded.

use std::time::{Duration, Instant};

use str0m::format::Codec;
use str0m::media::{MediaKind, Mid, Rid};
use str0m::rtp::RtpPacket;

use super::{Outbox, Room};
use crate::participant::ParticipantId;
use crate::protocol::Quality;
use crate::recording::session::{LayerPacket, RoomRecording, TrackSource};
use crate::recording::track::TrackCodec;

/// Why a room cannot be recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RecordingRefused {
    #[error("the room is end-to-end encrypted: the SFU cannot read its media")]
    EndToEndEncrypted,
    #[error("this recording was stopped: a new one has a new ID")]
    Stopped,
    #[error("that recording is not going on here")]
    NotRecording,
}

/// A recording signaling has not renewed for this long is over: signaling restarted and
/// forgot it, or its stop was lost. (Signaling renews every 10 s.)
pub const RECORDING_LEASE: Duration = Duration::from_secs(35);

impl Room {
    pub fn is_recording(&self) -> bool {
        self.recording.is_some()
    }

    /// The recording in progress, by ID.
    pub fn recording_id(&self) -> Option<&str> {
        self.recording.as_ref().map(RoomRecording::id)
    }

    /// Whether the recording in progress went unrenewed past its lease.
    pub fn recording_lapsed(&self, now: Instant) -> bool {
        self.recording.is_some() && now.saturating_duration_since(self.recording_renewed) > RECORDING_LEASE
    }

    /// Starts recording as `id` (a recording under another ID ends first; the same ID
    /// again renews its lease).
    pub fn start_recording(
        &mut self,
        now: Instant,
        id: &str,
        started_by: &str,
        unix_ms: i64,
        out: &mut Outbox,
    ) -> Result<(), RecordingRefused> {
        if self.e2ee {
            return Err(RecordingRefused::EndToEndEncrypted);
        }
        self.recording_renewed = now;
        if self.recording.as_ref().is_some_and(|r| r.id() == id) {
            return Ok(());
        }
        self.stop_recording(now, out);
        tracing::info!(room = %self.name, recording = id, started_by, "recording started");
        self.recording = Some(RoomRecording::new(id, &self.name, started_by, now, unix_ms));
        self.drain_recording(out);
        Ok(())
    }

    /// Ends the recording in progress, if any: every file finished, the manifest final.
    pub fn stop_recording(&mut self, now: Instant, out: &mut Outbox) {
        let Some(mut recording) = self.recording.take() else { return };
        recording.finish(now);
        out.store_writes.extend(recording.take_writes());
        tracing::info!(room = %self.name, recording = recording.id(), "recording stopped");
    }

    pub(super) fn tick_recording(&mut self, now: Instant, out: &mut Outbox) {
        if let Some(recording) = &mut self.recording {
            recording.tick(now);
        }
        self.drain_recording(out);
    }

    fn drain_recording(&mut self, out: &mut Outbox) {
        if let Some(recording) = &mut self.recording {
            out.store_writes.extend(recording.take_writes());
        }
    }

    /// The publisher's tracks (one, or all of them) stopped: their files end.
    pub(super) fn end_recorded_tracks(&mut self, publisher: ParticipantId, mid: Option<Mid>) {
        let now = self.latest;
        let Some(recording) = &mut self.recording else { return };
        match mid {
            Some(mid) => recording.end_track(now, publisher, mid),
            None => recording.end_publisher(now, publisher),
        }
    }

    /// A publisher's packet, forwarded or about to be: written if its track is recorded.
    /// `keyframe`: whether it starts one (where the recorded layer may switch).
    pub(super) fn record(
        &mut self,
        now: Instant,
        from: ParticipantId,
        (mid, rid): (Mid, Option<Rid>),
        (codec, keyframe): (Codec, bool),
        packet: &RtpPacket,
        out: &mut Outbox,
    ) {
        self.latest = now;
        let Some(recording) = &mut self.recording else { return };
        if !recording.records(from, mid) {
            let Some(publisher) = self.participants.get(&from) else { return };
            let Some(track) = publisher.published.iter().find(|t| t.mid == mid) else { return };
            let codec = match codec {
                Codec::Opus => TrackCodec::Opus,
                Codec::Vp8 => TrackCodec::Vp8,
                Codec::Vp9 => TrackCodec::Vp9,
                other => {
                    tracing::debug!(room = %self.name, ?other, "a track in a codec the recorder does not write");
                    return;
                }
            };
            // The best layer sent now; none measured yet: wait for the first second.
            let simulcast = track.is_simulcast();
            let layer = if simulcast { track.choose_layer(Quality::High, None) } else { rid };
            if simulcast && layer.is_none() {
                return;
            }
            let clock_rate = if track.kind == MediaKind::Audio { 48_000 } else { 90_000 };
            recording.add_track(
                now,
                TrackSource {
                    publisher: from,
                    mid,
                    rid: layer,
                    simulcast,
                    avatar: publisher.avatar,
                    sub: &publisher.sub,
                    source: track.source,
                    kind: track.kind,
                    codec,
                    clock_rate,
                },
            );
        }
        let packet = LayerPacket {
            rid,
            keyframe,
            seq_no: *packet.seq_no,
            timestamp: packet.header.timestamp,
            marker: packet.header.marker,
            payload: &packet.payload,
        };
        let wants_keyframe = recording.push(now, from, mid, packet);
        out.store_writes.extend(recording.take_writes());
        if let Some(layer) = wants_keyframe {
            self.request_keyframe(now, from, mid, layer, out);
        }
    }

    /// A simulcast camera is recorded at the best layer its publisher sends: when that
    /// changes (an encoder short of CPU or bandwidth stops its upper layers, and resumes
    /// them later), the recording follows, so its file never stops while the camera is on.
    pub(super) fn follow_recorded_layers(&mut self, now: Instant, out: &mut Outbox) {
        let Some(recording) = &mut self.recording else { return };
        let mut switches = Vec::new();
        for publisher in self.participants.values() {
            for track in publisher.published.iter().filter(|t| t.is_simulcast()) {
                if let Some(best) = track.choose_layer(Quality::High, None)
                    && recording.follow_layer(publisher.id, track.mid, best)
                {
                    switches.push((publisher.id, track.mid, best));
                }
            }
        }
        for (publisher, mid, rid) in switches {
            self.request_keyframe(now, publisher, mid, Some(rid), out);
        }
    }
}
