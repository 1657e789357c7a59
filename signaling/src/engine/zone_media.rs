//! Media a zone decides for everyone inside: recording, and end-to-end encryption.
//!
//! Recording is explicit. The world file (`recording: true`) or an admin allows it in a
//! zone; an admin, a stage's speaker or a member of any other such zone starts and stops
//! it. It needs the SFU, which does the writing, so a recorded zone goes to the SFU
//! whatever its head count. Everyone inside is told at once (`recording_changed`), and
//! whoever enters finds it in the snapshot, which comes before the media plan that lets
//! their media reach the SFU: nobody is recorded without having been told.
//!
//! End-to-end encrypted zones (`e2ee: true`, meeting rooms and private zones) get a
//! media key of 32 random bytes. Each member receives it on entering (`e2ee_key`, after
//! the snapshot); when someone leaves, the remaining members get a new one with the next
//! key ID, so whoever left cannot read what follows. The SFU never sees a key.
//!
//! Invariants:
//! - A recording is only in progress in a zone where it is allowed, that is not
//!   end-to-end encrypted, and that has people inside.
//! - A zone has a media key exactly when it is end-to-end encrypted and has people inside.

use std::time::Instant;

use base64::Engine as _;
use isoplane_world_format::{ZoneIndex, ZoneKind};

use super::{ConnId, Output, RECORDING_RENEWAL, RecordingChange, SfuEndpoint, WorldEngine};
use crate::auth::Role;
use crate::protocol::{AvatarId, ErrorCode, RecordingInfo, ServerMessage};

/// A recording in progress in one zone.
#[derive(Debug, Clone)]
pub(super) struct Recording {
    pub info: RecordingInfo,
    /// Names what the SFU writes: a new one for each SFU node it goes to.
    id: String,
    /// The control URL of the SFU node told to record, once one was.
    node: Option<String>,
    /// When that node was last told.
    told_at: Option<Instant>,
}

impl Recording {
    /// When the SFU must be told again that the recording goes on.
    pub fn renew_at(&self) -> Option<Instant> {
        self.told_at.map(|at| at + RECORDING_RENEWAL)
    }
}

/// An end-to-end encrypted zone's current media key.
#[derive(Debug, Clone)]
pub(super) struct ZoneKey {
    id: u8,
    key: [u8; 32],
}

impl ZoneKey {
    fn fresh(id: u8) -> ZoneKey {
        ZoneKey { id, key: rand::random() }
    }
}

fn recording_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

impl WorldEngine {
    /// Whether recording may be started in the zone now.
    pub(super) fn recording_allowed(&self, zone: ZoneIndex) -> bool {
        let info = self.world.zone(zone);
        // A silent zone has no media; an encrypted one's the SFU cannot read.
        let recordable = !info.e2ee && !matches!(info.kind, ZoneKind::Silent);
        recordable && self.zones[usize::from(zone.0)].recording_allowed.unwrap_or(info.recording)
    }

    /// `set_recording`: starts or stops recording the sender's zone.
    pub fn set_recording(&mut self, now: Instant, conn: ConnId, on: bool) {
        let Some(&id) = self.by_conn.get(&conn) else { return };
        let Some(avatar) = self.avatars.get(&id) else { return };
        let zone = avatar.zone;
        let may = match self.world.zone(zone).kind {
            _ if avatar.role == Role::Admin => true,
            ZoneKind::Stage { .. } => avatar.plan.as_ref().is_some_and(|plan| plan.publish),
            _ => true,
        };
        let by = avatar.name.clone();
        let refusal = if !may {
            Some("only admins and the speakers on the podium may start or stop recording on a stage")
        } else if !on {
            None
        } else if self.world.zone(zone).e2ee {
            Some("this zone is end-to-end encrypted: the SFU cannot read its media, so it cannot record it")
        } else if !self.recording_allowed(zone) {
            Some("recording is not allowed in this zone (the world file or an admin allows it)")
        } else if self.config.media.sfu.is_none() || !self.sfu_nodes.iter().any(|n| n.has_room()) {
            Some("no SFU is available to record on")
        } else {
            None
        };
        if let Some(why) = refusal {
            let message = ServerMessage::Error { code: ErrorCode::RecordingRefused, message: why.to_owned() };
            return self.send(conn, message);
        }
        let state = &mut self.zones[usize::from(zone.0)];
        match (on, state.recording.is_some()) {
            (true, false) => {
                let info = RecordingInfo { by, since: self.unix_ms(now) };
                let state = &mut self.zones[usize::from(zone.0)];
                state.recording = Some(Recording { info, id: recording_id(), node: None, told_at: None });
                // The zone goes to the SFU (if it is not there yet) at the tick, which
                // then tells the SFU to record.
                state.replan = true;
                self.recording_changed(zone);
                self.schedule_tick(now);
            }
            (false, true) => self.stop_recording(zone),
            _ => {}
        }
    }

    /// An admin allowed or forbade recording in the zone; forbidding stops a recording.
    pub(super) fn allow_recording(&mut self, zone: ZoneIndex, allowed: bool, by: &str) {
        self.zones[usize::from(zone.0)].recording_allowed = Some(allowed);
        if !self.recording_allowed(zone) && self.zones[usize::from(zone.0)].recording.is_some() {
            tracing::info!(zone = self.world.zone(zone).id, by, "recording forbidden by an admin: it stops");
            self.stop_recording(zone);
        } else {
            self.recording_changed(zone);
        }
    }

    fn stop_recording(&mut self, zone: ZoneIndex) {
        let Some(recording) = self.zones[usize::from(zone.0)].recording.take() else { return };
        let room = self.sfu_room_name(zone);
        self.tell_sfu_stop(room, recording);
        self.recording_changed(zone);
    }

    /// The SFU node that was told to record stops (nobody is told: the zone is gone, or
    /// they already were).
    fn tell_sfu_stop(&mut self, room: String, recording: Recording) {
        if let Some(control_url) = recording.node {
            let (id, by) = (recording.id, recording.info.by);
            let change = RecordingChange::Stop;
            self.outputs.push_back(Output::SfuRecording { room, id, by, change, control_url });
        }
    }

    fn recording_changed(&mut self, zone: ZoneIndex) {
        let message = ServerMessage::RecordingChanged {
            allowed: self.recording_allowed(zone),
            recording: self.zones[usize::from(zone.0)].recording.as_ref().map(|r| r.info.clone()),
        };
        self.send_zone(zone, None, &message);
    }

    fn sfu_room_name(&self, zone: ZoneIndex) -> String {
        format!("{}/{}", self.name, self.world.zone(zone).id)
    }

    /// After the zone's plans: the SFU node serving a recorded zone is told to record it,
    /// and told again every [`RECORDING_RENEWAL`]. A zone that lost its SFU (none is left)
    /// stops recording; one moved to another node records there under a new ID (the old
    /// node's files end where it stopped).
    pub(super) fn keep_recording_on(&mut self, now: Instant, zone: ZoneIndex, node: Option<&SfuEndpoint>) {
        let room = self.sfu_room_name(zone);
        let Some(recording) = self.zones[usize::from(zone.0)].recording.as_mut() else { return };
        let Some(node) = node else {
            tracing::warn!(room, "no SFU serves the recorded zone any more: the recording stops");
            return self.stop_recording(zone);
        };
        let same_node = recording.node.as_deref() == Some(node.control_url.as_str());
        if same_node && recording.renew_at().is_some_and(|at| now < at) {
            return;
        }
        if !same_node && let Some(old) = recording.node.take() {
            let (id, by) = (std::mem::replace(&mut recording.id, recording_id()), recording.info.by.clone());
            let change = RecordingChange::Stop;
            self.outputs.push_back(Output::SfuRecording { room: room.clone(), id, by, change, control_url: old });
        }
        let change = if same_node { RecordingChange::Renew } else { RecordingChange::Start };
        recording.node = Some(node.control_url.clone());
        recording.told_at = Some(now);
        let (id, by) = (recording.id.clone(), recording.info.by.clone());
        let control_url = node.control_url.clone();
        self.outputs.push_back(Output::SfuRecording { room, id, by, change, control_url });
    }

    /// The SFU no longer records `id` (it restarted, or the recording's lease ran out
    /// there): the zone's recording goes on as a new one (new files), from the next tick.
    pub fn recording_lost(&mut self, now: Instant, id: &str) {
        let Some(index) = self.zones.iter().position(|z| z.recording.as_ref().is_some_and(|r| r.id == id)) else {
            return;
        };
        if let Some(recording) = self.zones[index].recording.as_mut() {
            tracing::warn!(lost = id, "the SFU lost a recording: it goes on as a new one");
            recording.id = recording_id();
            recording.node = None;
            recording.told_at = None;
        }
        self.schedule_tick(now);
    }

    /// A zone the new world file does not have any more: the SFU stops recording its room.
    pub(super) fn zone_media_removed(&mut self, old_zone_id: &str, recording: Option<Recording>) {
        if let Some(recording) = recording {
            let room = format!("{}/{old_zone_id}", self.name);
            self.tell_sfu_stop(room, recording);
        }
    }

    /// Someone entered `zone` (and, when connected, just got its snapshot): in an
    /// end-to-end encrypted zone, it gets the key.
    pub(super) fn entered_zone_media(&mut self, zone: ZoneIndex, conn: Option<ConnId>) {
        if !self.world.zone(zone).e2ee {
            return;
        }
        let key = self.zones[usize::from(zone.0)].e2ee_key.get_or_insert_with(|| ZoneKey::fresh(0)).clone();
        if let Some(conn) = conn {
            let message = self.key_message(zone, &key);
            self.send(conn, message);
        }
    }

    /// After a world reload (everyone placed and sent a snapshot): recordings the new
    /// file no longer allows stop, and encrypted zones get a new key (who is inside may
    /// have changed); zones that are no longer encrypted drop theirs.
    pub(super) fn zone_media_after_reload(&mut self) {
        for index in 0..self.zones.len() {
            let zone = ZoneIndex(index as u16);
            let state = &self.zones[index];
            if state.recording.is_some() && (!self.recording_allowed(zone) || state.members.is_empty()) {
                self.stop_recording(zone);
            }
            let state = &mut self.zones[index];
            if !self.world.zone(zone).e2ee || state.members.is_empty() {
                state.e2ee_key = None;
                continue;
            }
            let key = ZoneKey::fresh(state.e2ee_key.as_ref().map_or(0, |old| old.id.wrapping_add(1)));
            state.e2ee_key = Some(key.clone());
            let message = self.key_message(zone, &key);
            self.send_zone(zone, None, &message);
        }
    }

    /// `id` left `zone`: the others get a new key; the last one out ends any recording.
    pub(super) fn left_zone_media(&mut self, zone: ZoneIndex, _id: AvatarId) {
        let state = &mut self.zones[usize::from(zone.0)];
        if state.members.is_empty() {
            state.e2ee_key = None;
            self.stop_recording(zone);
            return;
        }
        let Some(old) = &state.e2ee_key else { return };
        let key = ZoneKey::fresh(old.id.wrapping_add(1));
        state.e2ee_key = Some(key.clone());
        let message = self.key_message(zone, &key);
        self.send_zone(zone, None, &message);
    }

    fn key_message(&self, zone: ZoneIndex, key: &ZoneKey) -> ServerMessage {
        ServerMessage::E2eeKey {
            zone: self.world.zone(zone).id.to_owned(),
            key_id: key.id,
            key: base64::engine::general_purpose::STANDARD.encode(key.key),
        }
    }

    /// Checks this module's invariants (for the engine's property tests).
    #[cfg(test)]
    pub(super) fn zone_media_invariants(&self) -> Result<(), String> {
        for (index, zone) in self.zones.iter().enumerate() {
            let zone_index = ZoneIndex(index as u16);
            if zone.recording.is_some() && (!self.recording_allowed(zone_index) || zone.members.is_empty()) {
                return Err(format!("zone {index} is recorded but may not be, or is empty"));
            }
            let keyed = self.world.zone(zone_index).e2ee && !zone.members.is_empty();
            if zone.e2ee_key.is_some() != keyed {
                return Err(format!("zone {index} has a media key: {}, should: {keyed}", zone.e2ee_key.is_some()));
            }
        }
        Ok(())
    }
}
