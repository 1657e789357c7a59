//! A new version of the world file, taken while people are in it (a publish or a
//! rollback on the asset server): nobody is dropped and nobody is left where the new
//! world says they cannot be.
//!
//! Zones are matched by ID, objects by position: what an admin set on a zone (lock,
//! capacity), its shared page, its chat history and its SFU room stay with the zone as
//! long as the new file has a zone of that ID. Everyone keeps their place unless the new
//! world forbids it (a blocked tile, a wall, off the grid, an exclusive object already
//! held to capacity, a zone they may not enter): then they go to the nearest tile where
//! they may stand, told with a `correction` of reason `world_changed`. Each connected
//! client gets `world_changed` (to load the new file) and a fresh snapshot of its zone;
//! media plans are recomputed at the next tick.

use std::sync::Arc;
use std::time::Instant;

use isoplane_world_format::{Position, World, ZoneIndex, ZoneKind};

use super::{AvatarId, AvatarState, CorrectionReason, Output, ServerMessage, WorldEngine, ZoneState};
use crate::auth::Role;
use crate::protocol::WorldRef;

/// What happened to one avatar in the new world.
#[derive(Debug, Default, Clone, Copy)]
struct Placed {
    /// It could not stay where it stood.
    moved: bool,
    /// Its zone (by ID) is another one now.
    zone_changed: bool,
}

impl WorldEngine {
    /// Serves `world` (described to clients by `world_ref`) from now on, in place of
    /// the world file this engine was serving.
    pub fn replace_world(&mut self, now: Instant, world: Arc<World>, world_ref: WorldRef) {
        let zone_map: Vec<Option<ZoneIndex>> = self.world.zones().map(|zone| world.zone_by_id(zone.id)).collect();
        // Knocks on zones that are gone end while their zones can still be named.
        self.people_world_changed(&zone_map);
        self.chat.remap_zones(&zone_map);
        let mut zones: Vec<ZoneState> = (0..world.zones().len()).map(|_| ZoneState::default()).collect();
        let old_ids: Vec<String> = self.world.zones().map(|zone| zone.id.to_owned()).collect();
        for (old, state) in std::mem::take(&mut self.zones).into_iter().enumerate() {
            let Some(new) = zone_map[old] else {
                // Its people are placed anew below; what the SFU does for it ends.
                self.zone_media_removed(&old_ids[old], state.recording);
                if let Some(ingest) = state.ingest {
                    self.ingest_removed(&old_ids[old], ingest);
                }
                continue;
            };
            let kept = &mut zones[usize::from(new.0)];
            kept.locked = state.locked;
            kept.capacity = state.capacity;
            kept.policy = state.policy;
            // Kept for now; zone_media_after_reload decides with the new file.
            kept.recording = state.recording;
            kept.e2ee_key = state.e2ee_key;
            kept.ingest = state.ingest;
            // A room that became an open zone has no shared page (pages.rs).
            if !matches!(world.zone(new).kind, ZoneKind::Open { .. }) {
                kept.page = state.page;
            }
        }
        for zone in &mut zones {
            zone.replan = true;
        }
        let placements = std::mem::take(&mut self.placements);
        self.placements = placements
            .into_iter()
            .filter_map(|(zone, node)| Some((zone_map.get(usize::from(zone.0)).copied().flatten()?, node)))
            .collect();
        let old_zone_ids: Vec<(AvatarId, String)> =
            self.avatars.values().map(|a| (a.id, self.world.zone(a.zone).id.to_owned())).collect();
        self.world = world;
        self.world_ref = world_ref;
        self.zones = zones;
        self.holders.clear();
        let placed: Vec<(AvatarId, Placed)> =
            old_zone_ids.into_iter().map(|(id, zone_before)| (id, self.place_in_new_world(id, &zone_before))).collect();
        // A page stays only while its opener is still in its zone.
        for state in &mut self.zones {
            if state.page.as_ref().is_some_and(|page| !state.members.contains(&page.by)) {
                state.page = None;
            }
        }
        for (id, placed) in placed {
            self.tell_world_changed(id, placed);
        }
        self.zone_media_after_reload();
        self.ingest_after_reload(now);
        self.schedule_tick(now);
    }

    /// Tells a connected avatar's client: the new file to load, where it was moved (if it
    /// was), its zone as it is now, and that zone's chat and knocks if the zone is another.
    fn tell_world_changed(&mut self, id: AvatarId, placed: Placed) {
        let Some(avatar) = self.avatars.get(&id) else { return };
        let Some(conn) = avatar.conn else { return };
        let (seq, zone) = (avatar.last_seq, avatar.zone);
        self.send(conn, ServerMessage::WorldChanged { world: self.world_ref.clone() });
        if placed.moved {
            self.correct(conn, seq, id, CorrectionReason::WorldChanged);
        }
        if let Some(snapshot) = self.snapshot_for(conn) {
            self.send(conn, snapshot);
        }
        if placed.zone_changed {
            let json = self.zone_chat_history(zone);
            self.outputs.push_back(Output::SendJson { conn, json });
            self.prompt_knocks(id);
        }
    }

    /// Puts avatar `id` where the new world allows, and into that place's zone and object.
    fn place_in_new_world(&mut self, id: AvatarId, old_zone_id: &str) -> Placed {
        let Some(avatar) = self.avatars.get(&id) else { return Placed::default() };
        let here = avatar.position;
        let admin = avatar.role == Role::Admin;
        let stays = self.world.can_stand(here) && self.may_take_place(here, admin, old_zone_id);
        let place = if stays {
            here
        } else {
            let nearest = self
                .world
                .nearest_place(here, |x, y| self.may_take_place(Position::tile_center(x, y), admin, old_zone_id));
            nearest.unwrap_or_else(|| World::spawn_position(self.world.default_spawn()))
        };
        let zone = self.world.zone_of(place).unwrap_or(ZoneIndex::DEFAULT);
        let (x, y) = place.tile();
        let object = self.world.object_at(i64::from(x), i64::from(y));
        let zone_changed = self.world.zone(zone).id != old_zone_id;
        let Some(avatar) = self.avatars.get_mut(&id) else { return Placed::default() };
        avatar.position = place;
        avatar.zone = zone;
        avatar.held = object;
        avatar.previous_object = None;
        if !stays {
            avatar.state = AvatarState::Idle;
        }
        if let Some(object) = object {
            self.holders.entry(object).or_default().push(id);
        }
        self.zones[usize::from(zone.0)].members.insert(id);
        if zone_changed {
            self.unpair_all(id);
        }
        Placed { moved: !stays, zone_changed }
    }

    /// Whether an avatar may be put at `place` of the new world: the exclusive object
    /// there has room, and its zone lets it in. The zone it was in before keeps it
    /// whatever an admin set (a lock, a lower capacity keep people out, not in), but not
    /// beyond the capacity the new file gives the zone.
    fn may_take_place(&self, place: Position, admin: bool, zone_before: &str) -> bool {
        let (x, y) = place.tile();
        let object = self.world.object_at(i64::from(x), i64::from(y));
        if object.is_some_and(|o| self.holders_of(o).len() >= self.world.object(o).capacity as usize) {
            return false;
        }
        let zone = self.world.zone_of(place).unwrap_or(ZoneIndex::DEFAULT);
        let state = &self.zones[usize::from(zone.0)];
        let file_capacity = self.world.zone(zone).kind.capacity();
        let capacity = if self.world.zone(zone).id == zone_before {
            file_capacity
        } else if state.locked && !admin {
            return false;
        } else {
            state.capacity.or(file_capacity)
        };
        capacity.is_none_or(|capacity| state.members.len() < capacity as usize)
    }

    /// Forgets every media pairing of `id`, both ways (it is in another zone now).
    fn unpair_all(&mut self, id: AvatarId) {
        if let Some(avatar) = self.avatars.get_mut(&id) {
            avatar.peers.clear();
        }
        for avatar in self.avatars.values_mut() {
            avatar.peers.remove(&id);
        }
    }
}
