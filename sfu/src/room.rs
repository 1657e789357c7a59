//! A room: its participants' sessions and everything that flows between them, as a
//! sans-IO state machine. The worker feeds it datagrams, client messages and time, and
//! sends what it puts in the [`Outbox`]. Nothing here touches a socket or a clock.
//!
//! Forwarding: an RTP packet from a publisher's track goes to every participant that
//! receives that track, wants it (subscription, quality) and is past negotiation, with
//! its numbers rewritten by that subscriber's [`Forwarder`]. Keyframe requests from a
//! subscriber go to the publisher's layer it receives, at most one per interval.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use str0m::change::{SdpAnswer, SdpOffer};
use str0m::media::{Direction, KeyframeRequestKind, MediaAdded, MediaKind, Mid, Rid};
use str0m::net::Transmit;
use str0m::rtp::RtpPacket;
use str0m::{Event, IceConnectionState, Input, Output};

use crate::config::Limits;
use crate::egress::{AudioLevel, OutRtp, OwnStream};
use crate::forward::{Forwarder, Verdict, VideoPayload};
use crate::packet_history::SentPacket;
use crate::participant::{Layer, OutState, Participant, ParticipantId, Published, Received, same_codec};
use crate::protocol::{ErrorCode, ParticipantStats, ParticipantUpdate, RoomStats, ServerMessage, Source, Wanted};
use crate::recording::session::{RoomRecording, StoreWrite};
use crate::rtcp_feedback;
use crate::speakers::Speakers;
use crate::vp9_svc::SpatialVerdict;

mod recording;

pub use recording::{RECORDING_LEASE, RecordingRefused};

/// What the room wants done after an input.
#[derive(Debug, Default)]
pub struct Outbox {
    pub transmits: Vec<Transmit>,
    pub messages: Vec<(ParticipantId, ServerMessage)>,
    /// Sessions the room ended; the worker forgets their addresses.
    pub removed: Vec<ParticipantId>,
    /// A participant's next timeout changed.
    pub timeouts: Vec<(ParticipantId, Instant)>,
    /// Packets forwarded to subscribers (for metrics).
    pub forwarded: u64,
    /// Packets sent again on subscribers' NACKs, and padding packets sent to find room.
    pub retransmitted: u64,
    pub padding: u64,
    pub keyframe_requests: u64,
    /// NACKs and PLIs received from subscribers, and incoming packets lost on the way
    /// from publishers (estimated from the loss fraction str0m reports).
    pub nacks: u64,
    pub plis: u64,
    pub lost_in: u64,
    /// Datagrams the worker read (and dropped as unknown) while filling this outbox:
    /// counted here so the shared metrics are touched once per batch, not per packet.
    pub datagrams_in: u64,
    pub bytes_in: u64,
    pub dropped_unknown: u64,
    /// Recording pieces for the object store, in order.
    pub store_writes: Vec<StoreWrite>,
    /// Buffers of datagrams already sent, emptied: the packets the SFU writes itself
    /// reuse them (crate::egress), so sending audio allocates nothing.
    pub spare_buffers: Vec<Vec<u8>>,
}

impl Outbox {
    /// Empties the outbox for its next use; its vectors keep their room.
    pub fn clear(&mut self) {
        let Outbox { transmits, messages, removed, timeouts, store_writes, spare_buffers, .. } = self;
        transmits.clear();
        messages.clear();
        removed.clear();
        timeouts.clear();
        store_writes.clear();
        let emptied = Outbox {
            transmits: std::mem::take(transmits),
            messages: std::mem::take(messages),
            removed: std::mem::take(removed),
            timeouts: std::mem::take(timeouts),
            store_writes: std::mem::take(store_writes),
            spare_buffers: std::mem::take(spare_buffers),
            ..Outbox::default()
        };
        *self = emptied;
    }
}

/// Whom a control request names: every session of a user (a moderator's kick), or one
/// avatar's (signaling, when that avatar's plan no longer includes the room).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Who {
    User(String),
    Avatar(crate::protocol::AvatarId),
}

/// Why a participant could not enter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdmitError {
    Full,
    AlreadyHere,
}

/// How long a lost connection may take to come back before its session ends.
const RECONNECT_GRACE: Duration = Duration::from_secs(15);

/// A packet is sent again at most once per this share of the subscriber's round trip
/// (a receiver asks again each round trip while it waits), and at least this far apart.
const NACK_GUARD_DEFAULT: Duration = Duration::from_millis(100);
const NACK_GUARD_MIN: Duration = Duration::from_millis(5);

/// The share of a subscriber's bandwidth estimate its videos may take; the rest is for
/// audio and overhead, so audio is never starved by video.
const VIDEO_SHARE_PERCENT: u64 = 85;

/// What one audio track is counted at in a subscriber's bandwidth goals (Opus speech
/// with headers).
const AUDIO_BPS: u64 = 50_000;

/// A broadcaster's session signaling has not renewed for this long ends (it renews every
/// 2 s).
const INGEST_LEASE: Duration = Duration::from_secs(20);

/// A broadcaster that has not connected this long after its offer goes.
const INGEST_CONNECT: Duration = Duration::from_secs(20);

/// A publisher far above the bitrate limit for this long is dropped.
const SECONDS_OVER_LIMIT: u32 = 3;

#[derive(Debug)]
pub struct Room {
    pub name: String,
    pub max_participants: u32,
    limits: Arc<Limits>,
    participants: BTreeMap<ParticipantId, Participant>,
    speakers: Speakers,
    /// Participants with output to drain (each once: `queued_to_drain`).
    dirty: Vec<ParticipantId>,
    /// The subscribers waiting for a keyframe of a packet's publisher: kept from packet
    /// to packet for its capacity (empty in between).
    forward_targets: Vec<ParticipantId>,
    /// The worker was told this room needs a drive.
    drive_reported: bool,
    /// NACKed packets read from a subscriber's RTCP, and a retransmission's payload:
    /// kept from datagram to datagram for their capacity.
    nacks: Vec<(u32, u16)>,
    resend_payload: Vec<u8>,
    last_second: Instant,
    /// The latest time the room was given (for what happens without one: a removal).
    latest: Instant,
    /// Its participants' tokens say it is end-to-end encrypted: the SFU never reads its
    /// frames (only RTP headers and payload descriptors) and never records it.
    pub e2ee: bool,
    /// The recording in progress (room/recording.rs), and when signaling last renewed it.
    recording: Option<RoomRecording>,
    recording_renewed: Instant,
}

impl Room {
    pub fn new(name: String, limits: Arc<Limits>, now: Instant) -> Room {
        Room {
            name,
            max_participants: limits.participants_per_room,
            limits,
            participants: BTreeMap::new(),
            speakers: Speakers::new(now),
            dirty: Vec::new(),
            forward_targets: Vec::new(),
            drive_reported: false,
            nacks: Vec::new(),
            resend_payload: Vec::new(),
            last_second: now,
            latest: now,
            e2ee: false,
            recording: None,
            recording_renewed: now,
        }
    }

    pub fn len(&self) -> usize {
        self.participants.len()
    }

    pub fn is_empty(&self) -> bool {
        self.participants.is_empty()
    }

    pub fn contains(&self, id: ParticipantId) -> bool {
        self.participants.contains_key(&id)
    }

    pub fn participant_ids(&self) -> Vec<ParticipantId> {
        self.participants.keys().copied().collect()
    }

    pub fn next_timeout(&self, id: ParticipantId) -> Option<Instant> {
        self.participants.get(&id).map(|p| p.next_timeout)
    }

    /// Whether the participant's session takes this datagram (str0m's own check).
    pub fn accepts(&self, id: ParticipantId, input: &Input) -> bool {
        self.participants.get(&id).is_some_and(|p| p.rtc.accepts(input))
    }

    /// Lets a participant in. A participant already here under the same user replaces
    /// nobody: the second session is refused so one person is never two avatars.
    pub fn admit(&mut self, participant: Participant, out: &mut Outbox) -> Result<(), AdmitError> {
        if self.participants.len() as u32 >= self.max_participants {
            return Err(AdmitError::Full);
        }
        if self.participants.values().any(|p| p.avatar == participant.avatar && p.sub == participant.sub) {
            return Err(AdmitError::AlreadyHere);
        }
        let id = participant.id;
        out.messages.push((
            id,
            ServerMessage::Joined {
                room: self.name.clone(),
                avatar: participant.avatar,
                publish: participant.permissions.publish_audio || participant.permissions.publish_video,
            },
        ));
        // The newcomer receives every track already published here.
        let mut newcomer = participant;
        for publisher in self.participants.values() {
            for track in &publisher.published {
                newcomer.received.push(received_track(publisher, track));
            }
        }
        self.participants.insert(id, newcomer);
        Ok(())
    }

    /// The client's offer: answer it, and offer our own changes after.
    pub fn handle_offer(
        &mut self,
        now: Instant,
        id: ParticipantId,
        offer_id: u32,
        sdp: &str,
        sources: BTreeMap<String, Source>,
        out: &mut Outbox,
    ) {
        let limit = self.limits.tracks_per_participant as usize;
        let Some(participant) = self.participants.get_mut(&id) else { return };
        let sending_mids = sending_sections(sdp);
        let sending = sending_mids.len();
        if sending > limit {
            out.messages
                .push((id, error(ErrorCode::TooManyTracks, format!("{sending} sending tracks; at most {limit}"))));
            return;
        }
        let offer = match SdpOffer::from_sdp_string(sdp) {
            Ok(offer) => offer,
            Err(e) => {
                out.messages.push((id, error(ErrorCode::BadSdp, format!("the offer does not parse: {e}"))));
                return;
            }
        };
        // Glare: the client's offer wins; ours is rolled back (by dropping it) and
        // made again after.
        if participant.pending_offer.take().is_some() {
            for received in &mut participant.received {
                match received.state {
                    OutState::Negotiating(_) => received.state = OutState::ToOpen,
                    OutState::NegotiatingStop(mid) => received.state = OutState::ToStop(mid),
                    _ => {}
                }
            }
        }
        participant.sources.extend(sources);
        let mut unpublished_from = Vec::new();
        match participant.rtc.sdp_api().accept_offer(offer) {
            Ok(answer) => {
                participant.negotiated = true;
                out.messages.push((id, ServerMessage::Answer { id: offer_id, sdp: answer.to_sdp_string() }));
                // A track the client no longer sends (it stopped sharing its screen, say)
                // is taken from everyone who receives it.
                let still: Vec<String> = sending_mids.into_iter().flatten().collect();
                unpublished_from = self.unpublish_stopped(id, &still);
            }
            Err(e) => {
                out.messages.push((id, error(ErrorCode::BadSdp, format!("the offer was refused: {e}"))));
            }
        }
        self.mark_dirty(id);
        self.drive(now, out);
        self.offer_if_needed(id, out);
        for other in unpublished_from {
            self.offer_if_needed(other, out);
        }
    }

    /// The client's answer to our offer `offer_id`; a stale answer (to an offer rolled
    /// back in glare) is ignored.
    pub fn handle_answer(&mut self, now: Instant, id: ParticipantId, offer_id: u32, sdp: &str, out: &mut Outbox) {
        let Some(participant) = self.participants.get_mut(&id) else { return };
        let Some((pending_id, _)) = &participant.pending_offer else { return };
        if *pending_id != offer_id {
            return;
        }
        let answer = match SdpAnswer::from_sdp_string(sdp) {
            Ok(answer) => answer,
            Err(e) => {
                out.messages.push((id, error(ErrorCode::BadSdp, format!("the answer does not parse: {e}"))));
                return;
            }
        };
        let Some((_, pending)) = participant.pending_offer.take() else { return };
        if let Err(e) = participant.rtc.sdp_api().accept_answer(pending, answer) {
            out.messages.push((id, error(ErrorCode::BadSdp, format!("the answer was refused: {e}"))));
            self.remove(id, "its answer broke the session", out);
            return;
        }
        for received in &mut participant.received {
            if let OutState::Negotiating(mid) = received.state {
                received.state = OutState::Open(mid);
                received.wants_keyframe = received.kind == MediaKind::Video;
            }
        }
        participant.received.retain(|r| !matches!(r.state, OutState::NegotiatingStop(_)));
        self.mark_dirty(id);
        self.request_wanted_keyframes(now, id, out);
        self.drive(now, out);
        self.offer_if_needed(id, out);
    }

    /// A new subscription: forwarding follows at once; video that starts needs a
    /// keyframe, which is asked for.
    pub fn handle_subscribe(&mut self, now: Instant, id: ParticipantId, wanted: Option<Vec<Wanted>>, out: &mut Outbox) {
        let Some(participant) = self.participants.get_mut(&id) else { return };
        participant.wanted = wanted;
        for received in &mut participant.received {
            if received.kind == MediaKind::Video {
                received.wants_keyframe = true;
            }
        }
        self.choose_layers(id);
        self.request_wanted_keyframes(now, id, out);
        self.drive(now, out);
    }

    /// A datagram for this participant's session. The SFU reads its RTCP for what it
    /// sent itself (NACKs, transport-wide feedback); str0m reads all of it.
    pub fn handle_input(
        &mut self,
        now: Instant,
        id: ParticipantId,
        input: Input<'_>,
        datagram: &[u8],
        out: &mut Outbox,
    ) {
        let Some(participant) = self.participants.get_mut(&id) else { return };
        participant.counters.packets_in += 1;
        participant.counters.bytes_in += datagram.len() as u64;
        participant.bits_this_second += datagram.len() as u64 * 8;
        if rtcp_feedback::is_rtcp(datagram) {
            let mut nacks = std::mem::take(&mut self.nacks);
            participant.egress.read_rtcp(now, datagram, &mut nacks);
            // Each packet a NACK asks for counts (str0m counts those of what it sent).
            participant.counters.nacks_received += nacks.len() as u64;
            out.nacks += nacks.len() as u64;
            self.answer_nacks(now, id, &nacks, out);
            nacks.clear();
            self.nacks = nacks;
        }
        let Some(participant) = self.participants.get_mut(&id) else { return };
        if let Err(e) = participant.rtc.handle_input(input) {
            // A bad packet from one peer is that peer's problem only.
            tracing::debug!(room = %self.name, participant = id, error = %e, "dropped a datagram the session refused");
        }
        // This session is drained now (str0m holds one received packet at a time); the
        // subscribers its packets went to are left for the worker's next drive, so each
        // is drained once per batch of datagrams, not once per packet.
        self.drain(now, id, out);
    }

    /// Sends again what a subscriber NACKed, from the publishers' histories, on each
    /// stream's RTX SSRC: a packet at most once per round trip, and within the
    /// retransmission budget (crate::egress).
    fn answer_nacks(&mut self, now: Instant, id: ParticipantId, nacks: &[(u32, u16)], out: &mut Outbox) {
        let mut payload = std::mem::take(&mut self.resend_payload);
        for &(ssrc, seq) in nacks {
            let Some(subscriber) = self.participants.get_mut(&id) else { break };
            let Some(received) =
                subscriber.received.iter_mut().find(|r| r.own_stream.is_some_and(|stream| stream.ssrc == ssrc))
            else {
                continue;
            };
            let guard = received.rtt.unwrap_or(NACK_GUARD_DEFAULT).mul_f32(0.75).max(NACK_GUARD_MIN);
            let Some(sent) = received.sent_log.find(seq) else { continue };
            if sent.resent.is_some_and(|at| now.saturating_duration_since(at) < guard) {
                continue;
            }
            sent.resent = Some(now);
            let sent = *sent;
            let (publisher, publisher_mid, stream) = (received.publisher, received.publisher_mid, received.own_stream);
            let Some(stream) = stream else { continue };
            let Some(rtx_pt) = sent.rtx_pt else { continue };
            let Some(source) = self
                .participants
                .get(&publisher)
                .and_then(|p| p.published.iter().find(|t| t.mid == publisher_mid))
                .and_then(|t| t.layers.get(usize::from(sent.layer)))
                .and_then(|layer| layer.history.payload(sent.source_seq))
            else {
                continue;
            };
            // Copied out of the publisher's history: the subscriber's session is borrowed next.
            payload.clear();
            payload.extend_from_slice(source);
            let Some(subscriber) = self.participants.get_mut(&id) else { break };
            let rtp = OutRtp {
                stream,
                pt: sent.pt,
                seq: sent.seq,
                timestamp: sent.timestamp,
                marker: sent.marker,
                audio_level: None,
                orientation: None,
                vp8: sent.vp8,
                payload: &payload,
            };
            let queued = out.transmits.len();
            if subscriber.egress.resend(&rtp, rtx_pt, now, &mut out.transmits, &mut out.spare_buffers)
                && let Some(sent) = out.transmits.get(queued)
            {
                subscriber.counters.packets_out += 1;
                subscriber.counters.bytes_out += sent.contents.len() as u64;
                out.retransmitted += 1;
            }
        }
        self.resend_payload = payload;
    }

    /// Time passed for one participant's session.
    pub fn handle_timeout(&mut self, now: Instant, id: ParticipantId, out: &mut Outbox) {
        let Some(participant) = self.participants.get_mut(&id) else { return };
        if participant.next_timeout > now {
            return;
        }
        if let Err(e) = participant.rtc.handle_input(Input::Timeout(now)) {
            tracing::debug!(room = %self.name, participant = id, error = %e, "session timeout failed");
        }
        self.mark_dirty(id);
        self.drive(now, out);
    }

    /// Once per tick of the worker: padding, meters, layer choices, speakers, limits.
    pub fn tick(&mut self, now: Instant, out: &mut Outbox) {
        self.latest = now;
        self.pad(now, out);
        self.tick_recording(now, out);
        if let Some(speakers) = self.speakers.poll(now) {
            for id in self.participants.keys() {
                out.messages.push((*id, ServerMessage::Speakers { avatars: speakers.clone() }));
            }
        }
        if self.silence_stopped_layers(now) {
            for id in self.participant_ids() {
                self.choose_layers(id);
                self.request_wanted_keyframes(now, id, out);
            }
            self.follow_recorded_layers(now, out);
            self.drive(now, out);
        }
        if now.saturating_duration_since(self.last_second) < Duration::from_secs(1) {
            return;
        }
        let elapsed = now.saturating_duration_since(self.last_second).as_secs_f64().max(1.0);
        self.last_second = now;
        let limit = self.limits.publisher_bitrate_bps;
        let mut abusers = Vec::new();
        for participant in self.participants.values_mut() {
            for track in &mut participant.published {
                track.measure_second(now, elapsed);
            }
            let rate = (participant.bits_this_second as f64 / elapsed) as u64;
            participant.bits_this_second = 0;
            // Twice the limit, a few seconds running: not a burst, a misbehaving peer.
            if rate > limit.saturating_mul(2) {
                participant.seconds_over_limit += 1;
                if participant.seconds_over_limit >= SECONDS_OVER_LIMIT {
                    abusers.push(participant.id);
                }
            } else {
                participant.seconds_over_limit = 0;
            }
        }
        let lost: Vec<ParticipantId> = self
            .participants
            .values()
            .filter(|p| {
                p.disconnected_since.is_some_and(|since| now.saturating_duration_since(since) >= RECONNECT_GRACE)
            })
            .map(|p| p.id)
            .collect();
        for id in lost {
            self.remove(id, "the connection was lost", out);
        }
        self.end_lapsed_ingests(now, out);
        for id in abusers {
            tracing::warn!(room = %self.name, participant = id, "dropped a publisher far above the bitrate limit");
            self.remove(id, "sent far more than the bitrate limit", out);
        }
        for id in self.participant_ids() {
            self.choose_layers(id);
            self.request_wanted_keyframes(now, id, out);
        }
        self.follow_recorded_layers(now, out);
        self.drive(now, out);
    }

    /// Marks as stopped the simulcast layers that went quiet, without waiting for the next
    /// second's measurement, so their subscribers (and the recording) move to a layer that
    /// still comes; whether any did.
    fn silence_stopped_layers(&mut self, now: Instant) -> bool {
        let mut stopped = false;
        for participant in self.participants.values_mut() {
            for track in &mut participant.published {
                stopped |= track.silence_stopped_layers(now);
            }
        }
        stopped
    }

    /// Takes away from everyone the tracks `id` published on sections it no longer sends
    /// on; returns who received them (they need a new offer).
    fn unpublish_stopped(&mut self, id: ParticipantId, sending: &[String]) -> Vec<ParticipantId> {
        let Some(participant) = self.participants.get_mut(&id) else { return Vec::new() };
        let stopped: Vec<Mid> = participant
            .published
            .iter()
            .map(|t| t.mid)
            .filter(|mid| !sending.iter().any(|s| *s == mid.to_string()))
            .collect();
        if stopped.is_empty() {
            return Vec::new();
        }
        participant.published.retain(|t| !stopped.contains(&t.mid));
        for mid in &stopped {
            self.end_recorded_tracks(id, Some(*mid));
        }
        let Some(participant) = self.participants.get_mut(&id) else { return Vec::new() };
        for mid in &stopped {
            participant.sources.remove(&mid.to_string());
        }
        let mut affected = Vec::new();
        for other in self.participants.values_mut() {
            let mut changed = false;
            for received in &mut other.received {
                if received.publisher != id || !stopped.contains(&received.publisher_mid) {
                    continue;
                }
                changed = true;
                received.state = match received.state {
                    OutState::Open(mid) | OutState::Negotiating(mid) => OutState::ToStop(mid),
                    state => state,
                };
            }
            other
                .received
                .retain(|r| !(r.publisher == id && stopped.contains(&r.publisher_mid) && r.state == OutState::ToOpen));
            if changed {
                queue_to_drain(&mut self.dirty, other);
                affected.push(other.id);
            }
        }
        affected
    }

    /// Ends a participant's session and takes its tracks away from everyone.
    pub fn remove(&mut self, id: ParticipantId, reason: &str, out: &mut Outbox) {
        let Some(mut participant) = self.participants.remove(&id) else { return };
        participant.rtc.disconnect();
        self.end_recorded_tracks(id, None);
        self.speakers.forget(participant.avatar);
        out.messages.push((id, ServerMessage::Removed { reason: reason.to_owned() }));
        out.removed.push(id);
        for other in self.participants.values_mut() {
            let mut changed = false;
            for received in &mut other.received {
                if received.publisher != id {
                    continue;
                }
                changed = true;
                received.state = match received.state {
                    OutState::Open(mid) | OutState::Negotiating(mid) => OutState::ToStop(mid),
                    state => state,
                };
            }
            other.received.retain(|r| !(r.publisher == id && r.state == OutState::ToOpen));
            if changed {
                queue_to_drain(&mut self.dirty, other);
            }
        }
        for other in self.participant_ids() {
            self.offer_if_needed(other, out);
        }
    }

    /// Signaling says the broadcaster `avatar`'s stream goes on: whether it is connected,
    /// or `None` when there is no such stream here (any more).
    pub fn renew_ingest(&mut self, now: Instant, avatar: crate::protocol::AvatarId) -> Option<bool> {
        let participant = self.participants.values_mut().find(|p| p.avatar == avatar && p.ingest.is_some())?;
        if let Some(lease) = &mut participant.ingest {
            lease.renewed = now;
        }
        Some(participant.connected)
    }

    /// Broadcasters signaling stopped renewing (it restarted, or lost the stream), and
    /// those that never connected, go.
    fn end_lapsed_ingests(&mut self, now: Instant, out: &mut Outbox) {
        let lapsed: Vec<(ParticipantId, &'static str)> = self
            .participants
            .values()
            .filter_map(|p| {
                let lease = p.ingest?;
                if now.saturating_duration_since(lease.renewed) > INGEST_LEASE {
                    Some((p.id, "the stream was not renewed"))
                } else if !p.connected && now.saturating_duration_since(lease.joined) > INGEST_CONNECT {
                    Some((p.id, "the broadcaster never connected"))
                } else {
                    None
                }
            })
            .collect();
        for (id, reason) in lapsed {
            tracing::info!(room = %self.name, participant = id, reason, "a broadcaster's session ends");
            self.remove(id, reason, out);
        }
    }

    /// Everyone out (the room closes).
    pub fn close(&mut self, reason: &str, out: &mut Outbox) {
        for id in self.participant_ids() {
            self.remove(id, reason, out);
        }
    }

    /// A moderator's change to a user's participants. Returns whether one was found.
    pub fn update(&mut self, now: Instant, sub: &str, update: &ParticipantUpdate, out: &mut Outbox) -> bool {
        let ids: Vec<ParticipantId> = self.participants.values().filter(|p| p.sub == sub).map(|p| p.id).collect();
        for id in &ids {
            let Some(participant) = self.participants.get_mut(id) else { continue };
            let permissions = &mut participant.permissions;
            let set = |field: &mut bool, value: Option<bool>| {
                if let Some(value) = value {
                    *field = value;
                }
            };
            set(&mut permissions.publish_audio, update.publish_audio);
            set(&mut permissions.publish_video, update.publish_video);
            set(&mut permissions.publish_screen, update.publish_screen);
            set(&mut permissions.subscribe, update.subscribe);
            set(&mut participant.audio_muted, update.audio_muted);
            set(&mut participant.video_muted, update.video_muted);
        }
        if !ids.is_empty() {
            // Everyone's track list shows the new mute state; unmuted video restarts
            // at a keyframe.
            for id in self.participant_ids() {
                if let Some(participant) = self.participants.get_mut(&id) {
                    for received in &mut participant.received {
                        if ids.contains(&received.publisher) && received.kind == MediaKind::Video {
                            received.wants_keyframe = true;
                        }
                    }
                }
                self.send_track_list(id, out);
                self.request_wanted_keyframes(now, id, out);
            }
            self.drive(now, out);
        }
        !ids.is_empty()
    }

    /// Removes the participants a control request names. Returns whether one was found.
    pub fn remove_matching(&mut self, who: &Who, reason: &str, out: &mut Outbox) -> bool {
        let ids: Vec<ParticipantId> = self
            .participants
            .values()
            .filter(|p| match who {
                Who::User(sub) => p.sub == *sub,
                Who::Avatar(avatar) => p.avatar == *avatar,
            })
            .map(|p| p.id)
            .collect();
        for id in &ids {
            self.remove(*id, reason, out);
        }
        !ids.is_empty()
    }

    pub fn stats(&self) -> RoomStats {
        RoomStats {
            room: self.name.clone(),
            max_participants: self.max_participants,
            participants: self
                .participants
                .values()
                .map(|p| ParticipantStats {
                    sub: p.sub.clone(),
                    avatar: p.avatar,
                    connected: p.connected,
                    permissions: p.permissions,
                    audio_muted: p.audio_muted,
                    video_muted: p.video_muted,
                    published_tracks: p.published.len() as u32,
                    received_tracks: p.received.iter().filter(|r| matches!(r.state, OutState::Open(_))).count() as u32,
                    packets_in: p.counters.packets_in,
                    packets_out: p.counters.packets_out,
                    bytes_in: p.counters.bytes_in,
                    bytes_out: p.counters.bytes_out,
                    nacks_received: p.counters.nacks_received,
                    plis_received: p.counters.plis_received,
                    loss: p.loss(),
                    estimate_bps: p.egress.estimate_bps(),
                })
                .collect(),
        }
    }

    fn mark_dirty(&mut self, id: ParticipantId) {
        if let Some(participant) = self.participants.get_mut(&id) {
            queue_to_drain(&mut self.dirty, participant);
        }
    }

    /// Drains every session with output: transmits, events (which may make more
    /// sessions dirty, e.g. by forwarding), and the next timeout.
    pub fn drive(&mut self, now: Instant, out: &mut Outbox) {
        // No limit on datagrams: it stops only once no session is left.
        self.drive_some(now, out, usize::MAX);
    }

    /// Drains sessions with output until `out` holds `transmits` datagrams or more, so
    /// a large room's first datagrams can leave while the rest are drained. Returns
    /// whether sessions are left to drain.
    pub fn drive_some(&mut self, now: Instant, out: &mut Outbox, transmits: usize) -> bool {
        self.drive_reported = false;
        while let Some(id) = self.dirty.pop() {
            if let Some(participant) = self.participants.get_mut(&id) {
                participant.queued_to_drain = false;
            }
            self.drain(now, id, out);
            if out.transmits.len() >= transmits {
                return !self.dirty.is_empty();
            }
        }
        false
    }

    /// Whether sessions wait to be drained by [`Self::drive`], said once until the next
    /// drive: the worker drives each such room once per batch of datagrams.
    pub fn report_drive_needed(&mut self) -> bool {
        if self.dirty.is_empty() || self.drive_reported {
            return false;
        }
        self.drive_reported = true;
        true
    }

    fn drain(&mut self, now: Instant, id: ParticipantId, out: &mut Outbox) {
        let mut due_timeouts = 0;
        loop {
            let Some(participant) = self.participants.get_mut(&id) else { return };
            match participant.rtc.poll_output() {
                // str0m's pacer lets one packet out per timeout and asks for the next a
                // microsecond later: handled here, a session's queued packets all go out
                // in this drain, not one per turn of the worker, and the timeout after
                // the last one is not left to the worker's timers.
                Ok(Output::Timeout(at)) if due_timeouts < MAX_DUE_TIMEOUTS_PER_DRAIN && is_due(at, now) => {
                    due_timeouts += 1;
                    if let Err(e) = participant.rtc.handle_input(Input::Timeout(now.max(at))) {
                        tracing::debug!(room = %self.name, participant = id, error = %e, "session timeout failed");
                    }
                }
                Ok(Output::Timeout(at)) => {
                    // A moved deadline needs a timer entry; an unmoved future one has one
                    // already (a due one was just taken off the worker's heap).
                    if at != participant.next_timeout || at <= now {
                        participant.next_timeout = at;
                        out.timeouts.push((id, at));
                    }
                    return;
                }
                Ok(Output::Transmit(mut transmit)) => {
                    participant.egress.observe(&transmit);
                    participant.egress.rewrite_reports(&mut transmit, now);
                    participant.counters.packets_out += 1;
                    participant.counters.bytes_out += transmit.contents.len() as u64;
                    out.transmits.push(transmit);
                }
                Ok(Output::Event(event)) => self.on_event(now, id, event, out),
                Err(e) => {
                    tracing::info!(room = %self.name, participant = id, error = %e, "session failed");
                    self.remove(id, "the WebRTC session failed", out);
                    return;
                }
            }
        }
    }

    fn on_event(&mut self, now: Instant, id: ParticipantId, event: Event, out: &mut Outbox) {
        match event {
            Event::RtpPacket(packet) => self.forward(now, id, packet, out),
            Event::MediaAdded(added) => self.on_media_added(id, added, out),
            Event::KeyframeRequest(request) => {
                let Some(participant) = self.participants.get_mut(&id) else { return };
                participant.counters.plis_received += 1;
                out.plis += 1;
                if let Some(received) = participant.received.iter_mut().find(|r| r.mid() == Some(request.mid)) {
                    received.wants_keyframe = true;
                }
                self.request_wanted_keyframes(now, id, out);
            }
            // str0m's stats are totals per stream: count what is new since the last.
            Event::MediaEgressStats(stats) => {
                if let Some(participant) = self.participants.get_mut(&id) {
                    let seen = participant.stat_marks.entry((stats.mid, stats.rid, true)).or_default();
                    let nacks = stats.nacks.saturating_sub(*seen);
                    *seen = stats.nacks;
                    participant.counters.nacks_received += nacks;
                    out.nacks += nacks;
                    if let Some(rtt) = stats.rtt {
                        note_round_trip(participant, stats.mid, rtt);
                    }
                }
            }
            Event::MediaIngressStats(stats) => {
                if let Some(participant) = self.participants.get_mut(&id) {
                    let seen = participant.stat_marks.entry((stats.mid, stats.rid, false)).or_default();
                    let packets = stats.packets.saturating_sub(*seen);
                    *seen = stats.packets;
                    // The loss fraction is that of the last report interval.
                    let lost = (stats.loss.unwrap_or(0.0).clamp(0.0, 1.0) * packets as f32) as u64;
                    participant.counters.expected_in += packets;
                    participant.counters.lost_in += lost;
                    out.lost_in += lost;
                }
            }
            Event::PeerStats(stats) => {
                if let (Some(participant), Some(pair)) =
                    (self.participants.get_mut(&id), stats.selected_candidate_pair.as_ref())
                {
                    participant.egress.follow(pair);
                }
            }
            Event::Connected => {
                if let Some(participant) = self.participants.get_mut(&id) {
                    participant.connected = true;
                }
            }
            // A connection that comes back within the grace period keeps its session.
            Event::IceConnectionStateChange(state) => {
                if let Some(participant) = self.participants.get_mut(&id) {
                    participant.disconnected_since = match state {
                        IceConnectionState::Disconnected => participant.disconnected_since.or(Some(now)),
                        _ => None,
                    };
                }
            }
            Event::ChannelOpen(channel, _) => {
                if let Some(participant) = self.participants.get_mut(&id) {
                    participant.channel = Some(channel);
                }
            }
            Event::ChannelData(data) => self.relay_data(now, id, data.binary, &data.data),
            Event::Closed => self.remove(id, "the session closed", out),
            _ => {}
        }
    }

    /// A track the client sends appeared: everyone else will receive it.
    fn on_media_added(&mut self, id: ParticipantId, added: MediaAdded, out: &mut Outbox) {
        let Some(participant) = self.participants.get_mut(&id) else { return };
        let client_sends = matches!(added.direction, Direction::RecvOnly | Direction::SendRecv);
        let ours = participant.received.iter().any(|r| r.mid() == Some(added.mid));
        if !client_sends || ours || participant.published.iter().any(|t| t.mid == added.mid) {
            return;
        }
        let default = if added.kind == MediaKind::Audio { Source::Microphone } else { Source::Camera };
        let source = participant.sources.get(&added.mid.to_string()).copied().unwrap_or(default);
        if source.is_audio() != (added.kind == MediaKind::Audio) {
            out.messages
                .push((id, error(ErrorCode::BadMessage, format!("mid {} is not a {:?} track", added.mid, source))));
            return;
        }
        // The client's sending layers, lowest first by convention.
        let rids: Vec<Rid> = added
            .simulcast
            .as_ref()
            .map(|simulcast| if simulcast.recv.is_empty() { &simulcast.send } else { &simulcast.recv })
            .map(|layers| layers.iter().map(|layer| layer.rid).collect())
            .unwrap_or_default();
        let layers: Vec<Layer> = if rids.is_empty() {
            vec![Layer::new(None)]
        } else {
            rids.into_iter().map(|rid| Layer::new(Some(rid))).collect()
        };
        participant.published.push(Published {
            mid: added.mid,
            kind: added.kind,
            source,
            layers,
            codecs: Default::default(),
            spatial_bits: Default::default(),
            spatial_bps: Default::default(),
        });
        let others: Vec<ParticipantId> = self.participants.keys().copied().filter(|other| *other != id).collect();
        let Some(participant) = self.participants.get(&id) else { return };
        let Some(track) = participant.published.last() else { return };
        let tracks: Vec<(ParticipantId, Received)> =
            others.into_iter().map(|other| (other, received_track(participant, track))).collect();
        for (other, received) in tracks {
            if let Some(subscriber) = self.participants.get_mut(&other) {
                subscriber.received.push(received);
            }
            self.offer_if_needed(other, out);
        }
    }

    fn forward(&mut self, now: Instant, from: ParticipantId, packet: RtpPacket, out: &mut Outbox) {
        let Some(publisher) = self.participants.get_mut(&from) else { return };
        let ssrc = packet.header.ssrc;
        let (mid, rid) = match publisher.ssrc_tracks.get(&ssrc) {
            Some(found) => *found,
            None => {
                let mut api = publisher.rtc.direct_api();
                let Some(stream) = api.stream_rx(&ssrc) else { return };
                let found = (stream.mid(), stream.rid());
                publisher.ssrc_tracks.insert(ssrc, found);
                found
            }
        };
        let avatar = publisher.avatar;
        let pt = *packet.header.payload_type;
        let Some(track) = publisher.published.iter_mut().find(|t| t.mid == mid) else { return };
        let source = track.source;
        let kind = track.kind;
        let simulcast = track.is_simulcast();
        let layer_index = track.layers.iter().position(|layer| layer.rid == rid).unwrap_or(0) as u8;
        if let Some(layer) = track.layer_mut(rid) {
            layer.bits_this_second += packet.payload.len() as u64 * 8;
            layer.last_packet = Some(now);
        }
        let spec = *track
            .codecs
            .entry(pt)
            .or_insert_with(|| publisher.rtc.codec_config().params().iter().find(|p| *p.pt() == pt).map(|p| p.spec()));
        let Some(spec) = spec else { return };
        // Read once for every subscriber: VP9 spatial layers (each subscriber gets the
        // layers up to its own), the VP8 descriptor (each one's munger rewrites its
        // picture numbers), whether it starts a keyframe.
        let video = if kind == MediaKind::Video && self.e2ee {
            VideoPayload::read_opaque(spec.codec, &packet.payload)
        } else if kind == MediaKind::Video {
            VideoPayload::read(spec.codec, &packet.payload)
        } else {
            VideoPayload::default()
        };
        let (keyframe, vp8, vp9) = (video.keyframe, video.vp8, video.vp9);
        if let Some(layers) = &vp9 {
            track.spatial_bits[usize::from(layers.spatial)] += packet.payload.len() as u64 * 8;
        }
        if kind == MediaKind::Audio
            && let Some(level) = packet.header.ext_vals.audio_level
        {
            self.speakers.observe(avatar, level, packet.header.ext_vals.voice_activity);
        }
        let Some(publisher) = self.participants.get(&from) else { return };
        if !publisher.forwards(source) {
            return;
        }
        // Muted media is neither forwarded nor recorded.
        self.record(now, from, (mid, rid), (spec.codec, keyframe), &packet, out);
        let seq_no = *packet.seq_no;
        // In an encrypted room a subscriber's stream starts at any picture: the publisher
        // is asked for a keyframe, which the SFU cannot see coming.
        let mut opaque_start = false;
        for (other, subscriber) in self.participants.iter_mut() {
            if *other == from {
                continue;
            }
            let Some(_quality) = subscriber.wants(avatar, source) else { continue };
            let Some(received) = subscriber.received.iter_mut().find(|r| r.publisher == from && r.publisher_mid == mid)
            else {
                continue;
            };
            let OutState::Open(out_mid) = received.state else { continue };
            let mut marker = packet.header.marker;
            if let Some(layers) = &vp9 {
                match received.spatial.decide(layers, seq_no) {
                    SpatialVerdict::Forward { ends_picture } => marker |= ends_picture,
                    SpatialVerdict::Drop => {
                        received.forwarder.skip(seq_no);
                        received.wants_keyframe |= received.spatial.awaiting_keyframe();
                        continue;
                    }
                }
            }
            let verdict = received.forwarder.decide(
                rid,
                seq_no,
                packet.header.timestamp,
                keyframe,
                kind == MediaKind::Video,
                now,
            );
            let Verdict::Send { seq_no: out_seq, timestamp, starts_layer } = verdict else {
                if simulcast || kind == MediaKind::Video {
                    received.wants_keyframe |= received.forwarder.awaiting_keyframe();
                }
                continue;
            };
            if keyframe {
                received.wants_keyframe = false;
            }
            opaque_start |= starts_layer && self.e2ee && kind == MediaKind::Video;
            let out_pts = *received.payload_types.entry(pt).or_insert_with(|| {
                let remote = subscriber.rtc.media(out_mid).map(|m| m.remote_pts().to_vec()).unwrap_or_default();
                subscriber
                    .rtc
                    .codec_config()
                    .params()
                    .iter()
                    .find(|p| remote.contains(&p.pt()) && same_codec(&p.spec(), &spec))
                    .map(|p| (p.pt(), p.resend()))
            });
            let Some((out_pt, rtx_pt)) = out_pts else { continue };
            let vp8_numbers = vp8.as_ref().map(|d| received.vp8.numbers_for(&packet.payload, d, starts_layer));
            // The SFU sends every packet itself (crate::egress). Before the session's
            // handshake has given it keys there is nothing to send with, for str0m either.
            if received.own_stream.is_none() {
                received.own_stream = OwnStream::of(&mut subscriber.rtc, out_mid);
            }
            let Some(stream) = received.own_stream else { continue };
            let rtp = OutRtp {
                stream,
                pt: *out_pt,
                seq: out_seq,
                timestamp,
                marker,
                audio_level: packet
                    .header
                    .ext_vals
                    .audio_level
                    .map(|level| AudioLevel { level, voice: packet.header.ext_vals.voice_activity.unwrap_or(false) }),
                orientation: packet.header.ext_vals.video_orientation.map(|o| o as u8),
                vp8: vp8_numbers,
                payload: &packet.payload,
            };
            let queued = out.transmits.len();
            if !subscriber.egress.send(&rtp, now, &mut out.transmits, &mut out.spare_buffers) {
                continue;
            }
            if let Some(sent) = out.transmits.get(queued) {
                subscriber.counters.packets_out += 1;
                subscriber.counters.bytes_out += sent.contents.len() as u64;
                out.forwarded += 1;
            }
            if kind == MediaKind::Video {
                received.sent_log.record(SentPacket {
                    seq: out_seq,
                    layer: layer_index,
                    source_seq: seq_no,
                    pt: *out_pt,
                    rtx_pt: rtx_pt.map(|pt| *pt),
                    timestamp,
                    marker,
                    vp8: vp8_numbers,
                    resent: None,
                });
            }
        }
        // Kept once, for every subscriber's NACKs.
        if kind == MediaKind::Video
            && let Some(layer) = self
                .participants
                .get_mut(&from)
                .and_then(|p| p.published.iter_mut().find(|t| t.mid == mid))
                .and_then(|t| t.layers.get_mut(usize::from(layer_index)))
        {
            layer.history.keep(seq_no, now, packet.payload);
        }
        if opaque_start {
            self.request_keyframe(now, from, mid, rid, out);
        }
        if kind == MediaKind::Video {
            let mut waiting = std::mem::take(&mut self.forward_targets);
            waiting.extend(
                self.participants
                    .iter()
                    .filter(|(_, p)| p.received.iter().any(|r| r.publisher == from && r.wants_keyframe))
                    .map(|(id, _)| *id),
            );
            for id in waiting.drain(..) {
                self.request_wanted_keyframes(now, id, out);
            }
            self.forward_targets = waiting;
        }
    }

    /// Picks the layer of each video track this participant receives, and tells its
    /// bandwidth estimator what to look for: it probes towards what every video would
    /// cost at the quality asked for, and padding keeps the session sending at least
    /// what the next layer up costs, so after congestion the estimate (and the layers)
    /// can grow back.
    fn choose_layers(&mut self, id: ParticipantId) {
        let Some(subscriber) = self.participants.get(&id) else { return };
        let video_tracks = subscriber
            .received
            .iter()
            .filter(|r| r.kind == MediaKind::Video && subscriber.wants(r.avatar, r.source).is_some())
            .count()
            .max(1) as u64;
        // Leave room for audio and overhead; split the rest evenly between videos.
        let share =
            subscriber.egress.estimate_bps().map(|estimate| estimate * VIDEO_SHARE_PERCENT / 100 / video_tracks);
        let mut choices = Vec::new();
        // Bits per second: what is sent now, with the next layers up where a video gets
        // less than asked for, and with the best layers asked for.
        let (mut now_bps, mut next_bps, mut desired_bps) = (0, 0, 0);
        for (index, received) in subscriber.received.iter().enumerate() {
            let Some(quality) = subscriber.wants(received.avatar, received.source) else { continue };
            if received.kind != MediaKind::Video {
                now_bps += AUDIO_BPS;
                next_bps += AUDIO_BPS;
                desired_bps += AUDIO_BPS;
                continue;
            }
            let Some(publisher) = self.participants.get(&received.publisher) else { continue };
            let Some(track) = publisher.published.iter().find(|t| t.mid == received.publisher_mid) else { continue };
            if let Some((now, next, best)) = track.bitrate_goals(quality, share) {
                now_bps += now * 100 / VIDEO_SHARE_PERCENT;
                next_bps += next * 100 / VIDEO_SHARE_PERCENT;
                desired_bps += best * 100 / VIDEO_SHARE_PERCENT;
            }
            // Until the publisher's layers are measured, the first layer stays the target.
            if track.is_simulcast()
                && let Some(rid) = track.choose_layer(quality, share)
            {
                choices.push((index, Choice::Simulcast(Some(rid))));
            } else if let Some(spatial) = track.choose_spatial(quality, share) {
                choices.push((index, Choice::Spatial(spatial)));
            }
        }
        let Some(subscriber) = self.participants.get_mut(&id) else { return };
        for (index, choice) in choices {
            let received = &mut subscriber.received[index];
            let needs_keyframe = match choice {
                Choice::Simulcast(rid) => received.forwarder.target() != rid && received.forwarder.set_target(rid),
                Choice::Spatial(top) => received.spatial.target() != top && received.spatial.set_target(top),
            };
            if needs_keyframe {
                received.wants_keyframe = true;
            }
        }
        // Padding only while a video is held below what was asked for: it keeps the
        // session sending what the next layers would, so the estimate can find the room.
        let minimum_bps = if next_bps > now_bps { next_bps } else { 0 };
        // Nothing wanted: (0, 0) stops the padding asked for before.
        subscriber.bandwidth_goals = (minimum_bps, desired_bps);
    }

    /// Pads each subscriber held below what it asked for up to what the next layers
    /// would cost, within its estimate: the estimate grows only with what the path is
    /// seen to carry, so without it a subscriber sent a low layer would stay there.
    fn pad(&mut self, now: Instant, out: &mut Outbox) {
        for subscriber in self.participants.values_mut() {
            let (minimum_bps, _) = subscriber.bandwidth_goals;
            // Without feedback, padding would measure nothing.
            let Some(estimate_bps) = subscriber.egress.estimate_bps() else { continue };
            let target_bps = minimum_bps.min(estimate_bps);
            // On the first video with an RTX stream: padding goes there (RFC 4588 section 8.2).
            let Some((stream, rtx_pt)) = subscriber.received.iter().find_map(|r| {
                let rtx_pt = r.payload_types.values().flatten().find_map(|(_, rtx)| *rtx)?;
                Some((r.own_stream.filter(|s| s.rtx_ssrc.is_some())?, *rtx_pt))
            }) else {
                continue;
            };
            let padded =
                subscriber.egress.pad(stream, rtx_pt, target_bps, now, &mut out.transmits, &mut out.spare_buffers);
            out.padding += padded as u64;
            subscriber.counters.packets_out += padded as u64;
        }
    }

    /// Asks publishers for the keyframes this participant waits for, at most once per
    /// interval per publisher layer.
    fn request_wanted_keyframes(&mut self, now: Instant, id: ParticipantId, out: &mut Outbox) {
        let Some(subscriber) = self.participants.get(&id) else { return };
        let requests: Vec<(ParticipantId, Mid, Option<Rid>)> = subscriber
            .received
            .iter()
            .filter(|r| r.wants_keyframe && matches!(r.state, OutState::Open(_)))
            .filter(|r| subscriber.wants(r.avatar, r.source).is_some())
            .map(|r| (r.publisher, r.publisher_mid, r.forwarder.target()))
            .collect();
        for (publisher_id, mid, rid) in requests {
            self.request_keyframe(now, publisher_id, mid, rid, out);
        }
    }

    /// Asks a publisher for a keyframe of one layer, unless one was asked for within the
    /// interval.
    fn request_keyframe(
        &mut self,
        now: Instant,
        publisher_id: ParticipantId,
        mid: Mid,
        rid: Option<Rid>,
        out: &mut Outbox,
    ) {
        let interval = Duration::from_millis(self.limits.keyframe_request_interval_ms);
        let Some(publisher) = self.participants.get_mut(&publisher_id) else { return };
        let Some(track) = publisher.published.iter_mut().find(|t| t.mid == mid) else { return };
        let Some(layer) = track.layer_mut(rid) else { return };
        if layer.last_keyframe_request.is_some_and(|at| now.saturating_duration_since(at) < interval) {
            return;
        }
        layer.last_keyframe_request = Some(now);
        let mut api = publisher.rtc.direct_api();
        if let Some(stream) = api.stream_rx_by_mid(mid, rid) {
            stream.request_keyframe(KeyframeRequestKind::Pli);
            out.keyframe_requests += 1;
            queue_to_drain(&mut self.dirty, publisher);
        }
    }

    /// Relays a data channel message to everyone else in the room, tagged with the
    /// sender's avatar: binary messages get a 4-byte big-endian prefix, text messages are
    /// wrapped as `{"from": avatar, "data": text}`.
    fn relay_data(&mut self, now: Instant, from: ParticipantId, binary: bool, data: &[u8]) {
        let max_bytes = self.limits.data_message_bytes;
        let per_second = self.limits.data_messages_per_sec;
        let Some(sender) = self.participants.get_mut(&from) else { return };
        if data.len() > max_bytes || !sender.take_data_budget(now, per_second) {
            return;
        }
        let avatar = sender.avatar;
        let message = if binary {
            let mut tagged = avatar.to_be_bytes().to_vec();
            tagged.extend_from_slice(data);
            tagged
        } else {
            let Ok(text) = std::str::from_utf8(data) else { return };
            serde_json::json!({"from": avatar, "data": text}).to_string().into_bytes()
        };
        let mut touched = Vec::new();
        for (id, participant) in self.participants.iter_mut() {
            if *id == from || !participant.permissions.subscribe {
                continue;
            }
            let Some(channel_id) = participant.channel else { continue };
            if let Some(mut channel) = participant.rtc.channel(channel_id) {
                // A full buffer drops the message for that receiver only.
                let _ = channel.write(binary, &message);
                touched.push(*id);
            }
        }
        for id in touched {
            self.mark_dirty(id);
        }
    }

    /// Sends our offer if this participant has tracks to open or stop and nothing is
    /// being negotiated.
    fn offer_if_needed(&mut self, id: ParticipantId, out: &mut Outbox) {
        let Some(participant) = self.participants.get_mut(&id) else { return };
        // A broadcaster has no channel to answer on: it is offered nothing.
        if !participant.needs_offer() || participant.ingest.is_some() {
            return;
        }
        let mut change = participant.rtc.sdp_api();
        for received in &mut participant.received {
            match received.state {
                OutState::ToOpen => {
                    let stream_id = format!("a{}", received.avatar);
                    let track_id = format!("{:?}-{}", received.source, received.publisher_mid).to_lowercase();
                    let mid =
                        change.add_media(received.kind, Direction::SendOnly, Some(stream_id), Some(track_id), None);
                    received.state = OutState::Negotiating(mid);
                }
                OutState::ToStop(mid) => {
                    change.stop_media(mid);
                    received.state = OutState::NegotiatingStop(mid);
                }
                _ => {}
            }
        }
        let Some((offer, pending)) = change.apply() else { return };
        let offer_id = participant.next_offer_id;
        participant.next_offer_id += 1;
        participant.pending_offer = Some((offer_id, pending));
        let tracks = self.track_list(id);
        out.messages.push((id, ServerMessage::Offer { id: offer_id, sdp: offer.to_sdp_string(), tracks }));
        self.mark_dirty(id);
    }

    fn track_list(&self, id: ParticipantId) -> Vec<crate::protocol::TrackInfo> {
        let Some(participant) = self.participants.get(&id) else { return Vec::new() };
        participant
            .track_list(|publisher, source| self.participants.get(&publisher).is_none_or(|p| !p.forwards(source)))
    }

    fn send_track_list(&self, id: ParticipantId, out: &mut Outbox) {
        if self.participants.get(&id).is_some_and(|p| p.negotiated) {
            out.messages.push((id, ServerMessage::Tracks { tracks: self.track_list(id) }));
        }
    }
}

/// Timeouts already due that one drain of a session handles itself (a packet each, with
/// str0m's pacer); past that, the worker's timers take over, so one busy session cannot
/// hold up the others.
const MAX_DUE_TIMEOUTS_PER_DRAIN: usize = 256;

/// Whether a session's timeout is due: at `now` (the turn's time), or by the clock when
/// it falls within a millisecond after (str0m's pacer asks for its next turn a microsecond
/// after its last).
fn is_due(at: Instant, now: Instant) -> bool {
    at <= now || (at <= now + Duration::from_millis(1) && at <= Instant::now())
}

/// Puts a participant on the list of sessions to drain, once.
fn queue_to_drain(dirty: &mut Vec<ParticipantId>, participant: &mut Participant) {
    if !participant.queued_to_drain {
        participant.queued_to_drain = true;
        dirty.push(participant.id);
    }
}

/// A subscriber's layer of a video track: a simulcast layer, or the highest VP9 spatial
/// layer.
enum Choice {
    Simulcast(Option<Rid>),
    Spatial(u8),
}

/// The track a subscriber receives for a publisher's track, before negotiation.
fn received_track(publisher: &Participant, track: &Published) -> Received {
    let clock_rate = if track.kind == MediaKind::Audio { 48_000 } else { 90_000 };
    let first_layer = track.layers.first().and_then(|layer| layer.rid);
    Received {
        publisher: publisher.id,
        publisher_mid: track.mid,
        avatar: publisher.avatar,
        kind: track.kind,
        source: track.source,
        state: OutState::ToOpen,
        forwarder: Forwarder::new(clock_rate, first_layer),
        vp8: Default::default(),
        spatial: Default::default(),
        payload_types: Default::default(),
        wants_keyframe: track.kind == MediaKind::Video,
        own_stream: None,
        sent_log: Default::default(),
        rtt: None,
    }
}

/// Notes a received stream's round trip, as the subscriber's last report measured it: a
/// NACKed packet is sent again at most once per round trip.
fn note_round_trip(participant: &mut Participant, mid: Mid, rtt: Duration) {
    if let Some(received) = participant.received.iter_mut().find(|r| r.state == OutState::Open(mid)) {
        received.rtt = Some(rtt);
    }
}

fn error(code: ErrorCode, message: String) -> ServerMessage {
    ServerMessage::Error { code, message, fatal: false }
}

/// The audio and video sections of an SDP offer that send media (are not rejected, and
/// are `sendrecv` or `sendonly`, the default being `sendrecv`), by their `a=mid` (None if
/// a section has none).
fn sending_sections(sdp: &str) -> Vec<Option<String>> {
    let mut sending = Vec::new();
    // The section being read: whether it is audio or video and not rejected, whether it
    // sends, and its mid.
    let mut section: Option<(bool, Option<String>)> = None;
    let mut finish = |section: Option<(bool, Option<String>)>| {
        if let Some((true, mid)) = section {
            sending.push(mid);
        }
    };
    for line in sdp.lines().map(str::trim) {
        if let Some(media) = line.strip_prefix("m=") {
            finish(section.take());
            let mut fields = media.split(' ');
            let kind = fields.next().unwrap_or("");
            let port = fields.next().unwrap_or("0");
            let in_media = (kind == "audio" || kind == "video") && port != "0";
            section = in_media.then_some((true, None));
        } else if let Some((sends, mid)) = section.as_mut() {
            if line == "a=recvonly" || line == "a=inactive" {
                *sends = false;
            } else if let Some(value) = line.strip_prefix("a=mid:") {
                *mid = Some(value.to_owned());
            }
        }
    }
    finish(section);
    sending
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_timeout_is_due_at_the_turn_or_once_the_clock_passed_it() {
        let now = Instant::now();
        assert!(is_due(now, now));
        assert!(is_due(now - Duration::from_millis(5), now), "late");
        // The pacer's next turn, a microsecond on: due as soon as the clock got there.
        let next = now + Duration::from_micros(1);
        while Instant::now() <= next {}
        assert!(is_due(next, now));
        assert!(!is_due(Instant::now() + Duration::from_micros(500), now), "not yet by the clock");
        assert!(!is_due(now + Duration::from_millis(40), now), "the pacer's regular turn, later");
    }

    #[test]
    fn sending_sections_are_counted() {
        let sdp = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=sendrecv\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=recvonly\r\n\
                   m=video 0 UDP/TLS/RTP/SAVPF 96\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\nm=video 9 X 96\r\n";
        assert_eq!(sending_sections(sdp).len(), 2, "audio sendrecv and the last video; not recvonly, rejected or data");
        let sdp = "v=0\r\nm=audio 9 X 111\r\na=mid:0\r\na=sendonly\r\nm=video 9 X 96\r\na=mid:1\r\na=inactive\r\n\
                   m=video 9 X 96\r\na=mid:2\r\nm=video 0 X 96\r\na=mid:3\r\n";
        assert_eq!(
            sending_sections(sdp),
            [Some("0".to_owned()), Some("2".to_owned())],
            "by mid: not inactive (1), not rejected (3)"
        );
    }
}
