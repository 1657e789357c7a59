//! Moderation inside one world: what an admin's command does to avatars, zones and media.
//!
//! The shell has already checked that the actor is an admin and recorded the action; the
//! engine only carries it out, never trusting the target's client: a kicked avatar is
//! gone before its client hears of it, a mute changes the plans every peer receives (so
//! they drop that media) and the SFU's forwarding, and a moved avatar is simply put
//! somewhere else, its later moves checked from there.

use std::collections::HashMap;
use std::time::Instant;

use isoplane_world_format::{World, ZoneIndex, ZoneKind};

use super::{ConnId, Mute, Output, WorldEngine};
use crate::auth::Role;
use crate::protocol::{
    AvatarId, AvatarState, CorrectionReason, ErrorCode, ModeratedAction, PersonInfo, Point, ServerMessage,
};

/// One moderation action on this world, already authorized.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Moderation {
    /// Removes the user's avatar now; `banned` says which reason it is told.
    Remove { user: String, banned: bool, by: String, reason: String },
    /// The user's mute from now on, as recorded.
    SetMute { user: String, mute: Mute, by: String, reason: String },
    /// The user's role changed: admins walk into locked zones.
    SetRole { user: String, role: Role },
    /// Puts the user on a spawn point (the default one when `None`).
    MoveToSpawn { user: String, spawn: Option<String>, by: String, reason: String },
    /// Shows a notice to the whole world, or to one zone.
    Notice { zone: Option<String>, text: String, by: String },
    /// Sends everyone in the zone but `except` (the admin acting) to a spawn point.
    EndMeeting { zone: String, spawn: Option<String>, except: Option<String>, by: String, reason: String },
    /// A zone's lock and capacity, as recorded.
    SetZone { zone: String, locked: bool, capacity: Option<u32> },
    /// Recording allowed in the zone, or not, over the world file's word.
    AllowRecording { zone: String, allowed: bool, by: String },
    /// Ends the stream live with this ingest key (and, when given, this avatar ID: not a
    /// newer stream of the same key), if one is.
    EndIngest { key: String, avatar: Option<u32> },
    /// Reaches 1 when the zone is a stage (ingest keys are for stages), else 0.
    CheckStage { zone: String },
    /// Every zone back to the world file's settings (before the recorded ones are applied
    /// to a world this node takes over).
    ClearZones,
    /// The user's chat mute from now on, as recorded.
    SetChatMute { user: String, muted: bool, by: String, reason: String },
    /// Deletes a chat message from the world's history and tells those who could read it.
    DeleteChat { id: String },
}

/// A kick read back from the records, re-applied where its command did not reach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LateKick {
    /// When it was done (milliseconds since the Unix epoch).
    pub at: i64,
    pub reason: String,
}

/// Who late removals name as their author (the records say who, the user need not know).
const LATE_AUTHOR: &str = "an admin";

/// Why a moderation action could not be carried out in this world.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ModerationError {
    #[error("this world has no zone with this ID")]
    UnknownZone,
    #[error("this world has no spawn point with this ID")]
    UnknownSpawn,
    #[error("the spawn point is inside the zone being emptied")]
    SpawnInZone,
    #[error("this world's chat history has no message with this ID")]
    UnknownMessage,
}

impl WorldEngine {
    /// Carries out a moderation action; returns how many avatars it reached.
    pub fn moderate(&mut self, now: Instant, action: Moderation) -> Result<usize, ModerationError> {
        let reached = match action {
            Moderation::Remove { user, banned, by, reason } => self.remove_user(&user, banned, by, reason),
            Moderation::SetMute { user, mute, by, reason } => {
                let Some(avatar) = self.by_user.get(&user).and_then(|id| self.avatars.get_mut(id)) else {
                    return Ok(0);
                };
                let before = std::mem::replace(&mut avatar.mute, mute);
                if before == mute {
                    return Ok(1);
                }
                let (zone, conn) = (avatar.zone, avatar.conn);
                if let Some(plan) = &avatar.plan
                    && let (Some(room), Some(node)) = (&plan.sfu_room, &plan.sfu_node)
                {
                    let (room, control_url) = (room.clone(), node.control_url.clone());
                    self.outputs.push_back(Output::SfuMute { room, user: user.clone(), mute, control_url });
                }
                let newly_muted = (mute.audio && !before.audio) || (mute.video && !before.video);
                let told = if newly_muted { ModeratedAction::Muted } else { ModeratedAction::Unmuted };
                if let Some(conn) = conn {
                    self.send(conn, ServerMessage::Moderated { action: told, by, reason });
                }
                // Its own plan and every peer's link to it change.
                self.zones[usize::from(zone.0)].replan = true;
                self.schedule_tick(now);
                1
            }
            Moderation::SetRole { user, role } => {
                let Some(avatar) = self.by_user.get(&user).and_then(|id| self.avatars.get_mut(id)) else {
                    return Ok(0);
                };
                let changed = std::mem::replace(&mut avatar.role, role) != role;
                if let Some(conn) = avatar.conn.filter(|_| changed) {
                    self.send(conn, ServerMessage::RoleChanged { admin: role == Role::Admin });
                }
                1
            }
            Moderation::MoveToSpawn { user, spawn, by, reason } => {
                let position = self.spawn_point(spawn.as_deref())?;
                let Some(id) = self.by_user.get(&user).copied() else { return Ok(0) };
                self.place(now, id, position, ModeratedAction::Moved, by, reason);
                1
            }
            Moderation::Notice { zone, text, by } => {
                let conns: Vec<ConnId> = match &zone {
                    Some(zone_id) => {
                        let index = self.zone_index(zone_id)?;
                        self.zones[usize::from(index.0)]
                            .members
                            .iter()
                            .filter_map(|id| self.avatars.get(id).and_then(|a| a.conn))
                            .collect()
                    }
                    None => self.avatars.values().filter_map(|a| a.conn).collect(),
                };
                let message = ServerMessage::Notice { text, by, zone };
                for &conn in &conns {
                    self.send(conn, message.clone());
                }
                conns.len()
            }
            Moderation::EndMeeting { zone, spawn, except, by, reason } => {
                let index = self.zone_index(&zone)?;
                let position = self.spawn_point(spawn.as_deref())?;
                if self.world.zone_of(position.0) == Some(index) {
                    return Err(ModerationError::SpawnInZone);
                }
                let members: Vec<AvatarId> = self.zones[usize::from(index.0)]
                    .members
                    .iter()
                    .copied()
                    .filter(|id| self.avatars.get(id).is_some_and(|a| except.as_deref() != Some(a.user.as_str())))
                    .collect();
                for &id in &members {
                    self.place(now, id, position, ModeratedAction::MeetingEnded, by.clone(), reason.clone());
                }
                members.len()
            }
            Moderation::AllowRecording { zone, allowed, by } => {
                let index = self.zone_index(&zone)?;
                self.allow_recording(index, allowed, &by);
                self.zones[usize::from(index.0)].members.len()
            }
            Moderation::EndIngest { key, avatar } => usize::from(self.stop_ingest(now, &key, avatar)),
            Moderation::CheckStage { zone } => {
                let index = self.zone_index(&zone)?;
                usize::from(matches!(self.world.zone(index).kind, ZoneKind::Stage { .. }))
            }
            Moderation::ClearZones => {
                for state in &mut self.zones {
                    state.locked = false;
                    state.capacity = None;
                    state.recording_allowed = None;
                }
                0
            }
            Moderation::SetChatMute { user, muted, by, reason } => self.set_chat_mute(&user, muted, by, reason),
            Moderation::DeleteChat { id } => self.delete_chat(&id).ok_or(ModerationError::UnknownMessage)?,
            Moderation::SetZone { zone, locked, capacity } => {
                let index = self.zone_index(&zone)?;
                let state = &mut self.zones[usize::from(index.0)];
                state.locked = locked;
                state.capacity = capacity;
                state.members.len()
            }
        };
        Ok(reached)
    }

    /// When the earliest session still here joined (unix ms), if anyone is here: kicks
    /// older than that cannot concern anyone in this world.
    pub fn oldest_join(&self) -> Option<i64> {
        self.avatars.values().map(|a| a.joined_at).min()
    }

    /// Removes, as a kick does, each avatar whose user `kicks` names (by user ID) with a
    /// kick done after its current session joined; those who joined after the kick stay.
    /// Detached avatars go too, so a resume cannot bring one back. Returns how many went.
    pub fn enforce_kicks(&mut self, kicks: &HashMap<String, LateKick>) -> usize {
        let due: Vec<(String, String)> = self
            .avatars
            .values()
            .filter_map(|a| kicks.get(&a.user).filter(|kick| a.joined_at < kick.at).map(|kick| (a, kick)))
            .map(|(a, kick)| (a.user.clone(), kick.reason.clone()))
            .collect();
        due.into_iter().map(|(user, reason)| self.remove_user(&user, false, LATE_AUTHOR.to_owned(), reason)).sum()
    }

    /// Removes the user's avatar, telling its client why (`banned` or kicked) before the
    /// connection closes with that code; returns how many avatars went (0 or 1).
    fn remove_user(&mut self, user: &str, banned: bool, by: String, reason: String) -> usize {
        let Some(id) = self.by_user.get(user).copied() else { return 0 };
        let (told, code) = if banned {
            (ModeratedAction::Banned, ErrorCode::Banned)
        } else {
            (ModeratedAction::Kicked, ErrorCode::Kicked)
        };
        if let Some(conn) = self.avatars.get(&id).and_then(|a| a.conn) {
            self.send(conn, ServerMessage::Moderated { action: told, by, reason });
            self.outputs.push_back(Output::Close { conn, code });
        }
        self.remove_avatar(id);
        1
    }

    /// Everyone in this world, for the admin panel.
    pub fn people(&self) -> Vec<PersonInfo> {
        self.avatars
            .values()
            .map(|a| PersonInfo {
                world: self.name.clone(),
                avatar: a.id,
                user: a.user.clone(),
                name: a.name.clone(),
                zone: self.world.zone(a.zone).id.to_owned(),
                audio_muted: a.mute.audio,
                video_muted: a.mute.video,
                chat_muted: a.chat_muted,
                connected: a.conn.is_some(),
                status: a.status,
            })
            .collect()
    }

    /// Whether an admin locked the zone, and its capacity override.
    pub fn zone_lock(&self, zone: &str) -> Option<(bool, Option<u32>)> {
        let index = self.world.zone_by_id(zone)?;
        let state = &self.zones[usize::from(index.0)];
        Some((state.locked, state.capacity))
    }

    fn zone_index(&self, zone: &str) -> Result<ZoneIndex, ModerationError> {
        self.world.zone_by_id(zone).ok_or(ModerationError::UnknownZone)
    }

    /// A spawn point's position and facing.
    fn spawn_point(
        &self,
        spawn: Option<&str>,
    ) -> Result<(isoplane_world_format::Position, isoplane_world_format::Facing), ModerationError> {
        let spawn = match spawn {
            Some(id) => self.world.spawn(id).ok_or(ModerationError::UnknownSpawn)?,
            None => self.world.default_spawn(),
        };
        Ok((World::spawn_position(spawn), spawn.facing))
    }

    /// Puts an avatar at `to`, whatever holds or locks are on the way: it lets go of what
    /// it held, changes zone if need be, and its client is told and corrected.
    fn place(
        &mut self,
        now: Instant,
        id: AvatarId,
        to: (isoplane_world_format::Position, isoplane_world_format::Facing),
        told: ModeratedAction,
        by: String,
        reason: String,
    ) {
        let (position, facing) = to;
        let zone = self.world.zone_of(position).unwrap_or(ZoneIndex::DEFAULT);
        let Some(avatar) = self.avatars.get_mut(&id) else { return };
        let held = avatar.held.take();
        avatar.previous_object = None;
        avatar.position = position;
        avatar.facing = facing;
        avatar.state = AvatarState::Idle;
        // No banked distance: a step the client sent before it heard of the move is
        // measured from here and refused (too fast), instead of walking it back.
        avatar.move_budget = 0.0;
        avatar.budget_at = now;
        let (old_zone, conn, seq) = (avatar.zone, avatar.conn, avatar.last_seq);
        if let Some(object) = held {
            self.release(object, id);
        }
        if let Some(conn) = conn {
            self.send(conn, ServerMessage::Moderated { action: told, by, reason });
            let correction = ServerMessage::Correction {
                seq,
                position: Point { x: position.x, y: position.y },
                facing,
                state: AvatarState::Idle,
                reason: CorrectionReason::Moved,
            };
            self.send(conn, correction);
        }
        if zone != old_zone {
            self.change_zone(id, old_zone, zone);
        } else {
            let state = &mut self.zones[usize::from(zone.0)];
            state.changed.insert(id);
            if matches!(self.world.zone(zone).kind, ZoneKind::Open { .. } | ZoneKind::Stage { .. }) {
                state.replan = true;
            }
        }
        self.schedule_tick(now);
    }
}
