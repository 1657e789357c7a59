//! A broadcaster's stream on a stage (WHIP ingest): the shell checked its key and asks
//! for a slot; the engine gives the stream an avatar ID no one in the world has, puts the
//! stage on the SFU (its audience receives it there, however few they are), tells
//! everyone inside (`ingest_changed`, and the snapshot's `ingest`), and ends it when asked,
//! when its key is revoked, or when the stage's SFU goes.
//!
//! Invariants:
//! - At most one stream per stage; it is on the SFU node that serves the stage.
//! - A stream's avatar ID has the high bit set: no person's ever does, so a stream that
//!   outlives this engine at the SFU (until its lease there runs out) never shares an ID
//!   with someone who joins meanwhile.

use std::time::Instant;

use isoplane_world_format::{ZoneIndex, ZoneKind};

use super::{Output, WorldEngine};
use crate::protocol::{AvatarId, IngestInfo, ServerMessage};

/// The stream live on a stage.
#[derive(Debug, Clone)]
pub(super) struct Ingest {
    pub info: IngestInfo,
    /// The ingest key's ID.
    key: String,
    control_url: String,
}

/// Streams' avatar IDs: this bit and a counter.
const INGEST_AVATARS: AvatarId = 1 << 31;

/// Where a broadcaster's stream goes: the shell hands its offer to this SFU room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestSlot {
    pub room: String,
    pub avatar: AvatarId,
    pub control_url: String,
}

impl WorldEngine {
    /// A stream with ingest key `key` starts on stage `zone` as `name`. A stream already
    /// live with the same key is replaced (the broadcaster reconnected); another key's
    /// is not.
    pub fn start_ingest(&mut self, now: Instant, key: &str, zone: &str, name: &str) -> Result<IngestSlot, String> {
        let Some(index) = self.world.zone_by_id(zone) else {
            return Err(format!("this world has no zone \"{zone}\" any more"));
        };
        if !matches!(self.world.zone(index).kind, ZoneKind::Stage { .. }) {
            return Err(format!("zone \"{zone}\" is not a stage any more"));
        }
        if self.config.media.sfu.is_none() {
            return Err("no SFU is configured to take the stream".to_owned());
        }
        match &self.zones[usize::from(index.0)].ingest {
            Some(live) if live.key == key => {
                self.stop_ingest(now, key, None);
            }
            Some(_) => return Err("another stream is live on this stage".to_owned()),
            None => {}
        }
        let Some(node) = self.sfu_node_for(index) else {
            return Err("no SFU has room for the stream".to_owned());
        };
        let control_url = node.control_url.clone();
        self.next_ingest = self.next_ingest.wrapping_add(1) & !INGEST_AVATARS;
        let avatar = INGEST_AVATARS | self.next_ingest;
        let info = IngestInfo { avatar, name: name.to_owned() };
        let state = &mut self.zones[usize::from(index.0)];
        state.ingest = Some(Ingest { info, key: key.to_owned(), control_url: control_url.clone() });
        state.replan = true;
        self.ingest_changed(index);
        self.schedule_tick(now);
        Ok(IngestSlot { room: format!("{}/{zone}", self.name), avatar, control_url })
    }

    /// Ends the stream live with ingest key `key` (under `avatar`, when given), if one is;
    /// whether one was.
    pub fn stop_ingest(&mut self, now: Instant, key: &str, avatar: Option<AvatarId>) -> bool {
        let Some(zone) = self.ingest_zone(key, avatar) else { return false };
        self.end_ingest(now, zone);
        true
    }

    /// Whether the stream of ingest key `key` under `avatar` is still on its stage (the
    /// shell asks once the SFU took the stream, and while it watches it).
    pub fn ingest_is_live(&self, key: &str, avatar: AvatarId) -> bool {
        self.ingest_zone(key, Some(avatar)).is_some()
    }

    fn ingest_zone(&self, key: &str, avatar: Option<AvatarId>) -> Option<ZoneIndex> {
        let live = |i: &Ingest| i.key == key && avatar.is_none_or(|a| a == i.info.avatar);
        let index = self.zones.iter().position(|z| z.ingest.as_ref().is_some_and(live))?;
        Some(ZoneIndex(index as u16))
    }

    /// Every stream ends (another node serves this world now).
    pub(super) fn end_all_ingests(&mut self, now: Instant) {
        for index in 0..self.zones.len() {
            self.end_ingest(now, ZoneIndex(index as u16));
        }
    }

    fn end_ingest(&mut self, now: Instant, zone: ZoneIndex) {
        let state = &mut self.zones[usize::from(zone.0)];
        let Some(ingest) = state.ingest.take() else { return };
        state.replan = true;
        self.schedule_tick(now);
        let room = format!("{}/{}", self.name, self.world.zone(zone).id);
        let control_url = ingest.control_url;
        self.outputs.push_back(Output::SfuRevoke { room, avatar: ingest.info.avatar, control_url });
        self.ingest_changed(zone);
    }

    fn ingest_changed(&mut self, zone: ZoneIndex) {
        let ingest = self.zones[usize::from(zone.0)].ingest.as_ref().map(|i| i.info.clone());
        self.send_zone(zone, None, &ServerMessage::IngestChanged { ingest });
    }

    /// A stage the new world file does not have any more: its stream's SFU session ends.
    pub(super) fn ingest_removed(&mut self, old_zone_id: &str, ingest: Ingest) {
        let room = format!("{}/{old_zone_id}", self.name);
        let control_url = ingest.control_url;
        self.outputs.push_back(Output::SfuRevoke { room, avatar: ingest.info.avatar, control_url });
    }

    /// After a world reload: a stream on a zone that is no longer a stage ends.
    pub(super) fn ingest_after_reload(&mut self, now: Instant) {
        for index in 0..self.zones.len() {
            let zone = ZoneIndex(index as u16);
            if self.zones[index].ingest.is_some() && !matches!(self.world.zone(zone).kind, ZoneKind::Stage { .. }) {
                self.end_ingest(now, zone);
            }
        }
    }

    /// After the stage's plans: a stream whose SFU node no longer serves the stage ends
    /// (the broadcaster reconnects, to the node that does).
    pub(super) fn keep_ingest_on(&mut self, now: Instant, zone: ZoneIndex, control_url: Option<&str>) {
        let on = self.zones[usize::from(zone.0)].ingest.as_ref().map(|i| i.control_url.as_str());
        if on.is_some() && on != control_url {
            self.end_ingest(now, zone);
        }
    }
}
