//! People across the whole world, beyond one's zone: the list of everyone, following
//! someone wherever they go, and knocking on a locked or full zone.
//!
//! Presence stays per zone; these are the few things a person may know of the rest of the
//! world. Like the rest of the engine, nothing here reads a clock: every input carries
//! `now`, and the timers (follow updates held back, knocks expiring, passes running out)
//! come out of [`WorldEngine::poll_timeout`].
//!
//! Invariants:
//! - A follower follows at most one avatar, never itself, and both are in the world:
//!   when either leaves, the follow ends at once (a resume is not leaving).
//! - A follower hears where its followee is at most once per [`FOLLOW_UPDATE_INTERVAL`],
//!   and the last place always arrives (an update held back goes out when it may).
//! - A person has at most one pending knock, a zone at most
//!   [`MAX_PENDING_KNOCKS_PER_ZONE`]; every pending knock ends (answered, expired,
//!   withdrawn) and both sides hear how.
//! - A pass lets one avatar into one zone once, before it expires, past the zone's lock
//!   and capacity only: every other rule of the move check still applies.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use isoplane_world_format::{Position, ZoneIndex};

use super::{ConnId, WorldEngine};
use crate::protocol::{
    AvatarId, ErrorCode, FollowEndReason, Follower, KnockId, KnockOutcome, KnockState, Person, Point, ServerMessage,
};

/// A follower needs to know where to go, not every step: four updates a second keep a
/// map marker or a "follow" walk close enough, and a crowd following one speaker costs
/// the world task a fraction of what relaying every move would.
pub const FOLLOW_UPDATE_INTERVAL: Duration = Duration::from_millis(250);

/// How long a knock waits for an answer: long enough to finish a sentence inside, short
/// enough that the knocker is not left standing at the door.
pub const KNOCK_TIMEOUT: Duration = Duration::from_secs(60);

/// How soon a person may knock on the same zone again after their previous knock there
/// was sent: a declined or unanswered knock may be repeated, but not drummed.
pub const KNOCK_AGAIN_AFTER: Duration = Duration::from_secs(15);

/// Knocks a zone may have pending at once: beyond this those inside would see a wall of
/// prompts, so further knockers hear `too_soon` until one is settled.
pub const MAX_PENDING_KNOCKS_PER_ZONE: usize = 5;

/// How long an admitted knocker has to walk in: time to cross a large map, not enough
/// to keep a standing right of entry.
pub const PASS_TTL: Duration = Duration::from_secs(60);

/// One avatar following another.
#[derive(Debug)]
pub(super) struct Follow {
    followee: AvatarId,
    /// Where the follower was last told the followee is, and when.
    told_zone: ZoneIndex,
    told_position: Position,
    told_at: Instant,
}

#[derive(Debug)]
struct PendingKnock {
    knocker: AvatarId,
    zone: ZoneIndex,
    sent_at: Instant,
}

/// Leave to enter one zone once, from an admitted knock.
#[derive(Debug)]
struct Pass {
    zone: ZoneIndex,
    until: Instant,
}

/// The knocks of one world and what they led to.
#[derive(Debug)]
pub(super) struct Knocks {
    pending: BTreeMap<KnockId, PendingKnock>,
    /// When each user last knocked on each zone, while that still limits them. By user,
    /// not avatar, so leaving and joining again does not reset it.
    last_sent: HashMap<(String, ZoneIndex), Instant>,
    passes: HashMap<AvatarId, Pass>,
    next_id: KnockId,
}

impl Default for Knocks {
    fn default() -> Knocks {
        Knocks { pending: BTreeMap::new(), last_sent: HashMap::new(), passes: HashMap::new(), next_id: 1 }
    }
}

impl Knocks {
    /// Whether `avatar` holds a pass into `zone` that is still good at `now`.
    pub(super) fn pass_admits(&self, avatar: AvatarId, zone: ZoneIndex, now: Instant) -> bool {
        self.passes.get(&avatar).is_some_and(|pass| pass.zone == zone && now < pass.until)
    }

    /// `avatar` entered `zone`: a pass into it is spent.
    pub(super) fn entered(&mut self, avatar: AvatarId, zone: ZoneIndex) {
        if self.passes.get(&avatar).is_some_and(|pass| pass.zone == zone) {
            self.passes.remove(&avatar);
        }
    }
}

/// The parts of a `knock_status` message, most of them optional.
struct KnockStatus {
    zone: String,
    state: KnockState,
    knock: Option<KnockId>,
    retry_after_ms: Option<u32>,
    by: Option<String>,
}

impl KnockStatus {
    fn new(zone: &str, state: KnockState) -> KnockStatus {
        KnockStatus { zone: zone.to_owned(), state, knock: None, retry_after_ms: None, by: None }
    }
}

impl From<KnockStatus> for ServerMessage {
    fn from(status: KnockStatus) -> ServerMessage {
        let KnockStatus { zone, state, knock, retry_after_ms, by } = status;
        ServerMessage::KnockStatus { zone, state, knock, retry_after_ms, by }
    }
}

/// Milliseconds, rounded up, so a client waiting that long is never early.
fn millis_ceil(duration: Duration) -> u32 {
    u32::try_from(duration.as_micros().div_ceil(1000)).unwrap_or(u32::MAX).max(1)
}

impl WorldEngine {
    pub(super) fn zone_id(&self, zone: ZoneIndex) -> String {
        self.world.zone(zone).id.to_owned()
    }

    /// `list_people`: everyone in the world, the asker included, answered to `conn`.
    pub fn list_people(&mut self, conn: ConnId, id: u32) {
        if !self.by_conn.contains_key(&conn) {
            return;
        }
        let mut people: Vec<Person> = self
            .avatars
            .values()
            .map(|a| Person {
                avatar: a.id,
                user: a.user.clone(),
                name: a.name.clone(),
                zone: self.zone_id(a.zone),
                status: a.status,
                position: Point { x: a.position.x, y: a.position.y },
                connected: a.conn.is_some(),
            })
            .collect();
        people.sort_by(|a, b| a.name.cmp(&b.name).then_with(|| a.user.cmp(&b.user)));
        self.send(conn, ServerMessage::People { id, people });
    }

    pub(super) fn error(&mut self, conn: ConnId, code: ErrorCode) {
        self.send(conn, ServerMessage::Error { code, message: code.text().to_owned() });
    }

    /// `follow`: from now on the sender hears where `followee` goes, instead of whoever
    /// it followed before.
    pub fn follow(&mut self, now: Instant, conn: ConnId, followee: AvatarId) {
        let Some(&id) = self.by_conn.get(&conn) else { return };
        let Some(target) = self.avatars.get(&followee).filter(|_| followee != id) else {
            return self.error(conn, ErrorCode::UnknownAvatar);
        };
        let (zone, position) = (target.zone, target.position);
        let following = ServerMessage::Following {
            avatar: followee,
            name: target.name.clone(),
            zone: self.zone_id(zone),
            position: Point { x: position.x, y: position.y },
        };
        let follow = Follow { followee, told_zone: zone, told_position: position, told_at: now };
        let before = self.follows.insert(id, follow).map(|f| f.followee);
        self.send(conn, following);
        if before != Some(followee) {
            if let Some(before) = before {
                self.tell_followers(before);
            }
            self.tell_followers(followee);
        }
    }

    /// `unfollow`: the follow ends (nothing happens if there is none).
    pub fn unfollow(&mut self, conn: ConnId) {
        let Some(&id) = self.by_conn.get(&conn) else { return };
        let Some(follow) = self.follows.remove(&id) else { return };
        self.send(conn, ServerMessage::FollowEnded { avatar: follow.followee, reason: FollowEndReason::Cancelled });
        self.tell_followers(follow.followee);
    }

    /// Sends `avatar` (if connected) the whole list of its followers.
    fn tell_followers(&mut self, avatar: AvatarId) {
        let Some(conn) = self.avatars.get(&avatar).and_then(|a| a.conn) else { return };
        let mut followers: Vec<Follower> = self
            .follows
            .iter()
            .filter(|(_, follow)| follow.followee == avatar)
            .filter_map(|(id, _)| self.avatars.get(id))
            .map(|a| Follower { avatar: a.id, name: a.name.clone() })
            .collect();
        followers.sort_by(|a, b| a.name.cmp(&b.name).then(a.avatar.cmp(&b.avatar)));
        self.send(conn, ServerMessage::Followers { followers });
    }

    /// Tells each connected follower whose followee is somewhere new, unless it was told
    /// less than [`FOLLOW_UPDATE_INTERVAL`] ago (then it is told when that has passed).
    fn update_followers(&mut self, now: Instant) {
        for (follower, follow) in &mut self.follows {
            let (Some(conn), Some(followee)) =
                (self.avatars.get(follower).and_then(|a| a.conn), self.avatars.get(&follow.followee))
            else {
                continue;
            };
            let moved = followee.zone != follow.told_zone || followee.position != follow.told_position;
            if !moved || now < follow.told_at + FOLLOW_UPDATE_INTERVAL {
                continue;
            }
            follow.told_zone = followee.zone;
            follow.told_position = followee.position;
            follow.told_at = now;
            let message = ServerMessage::FolloweeMoved {
                avatar: followee.id,
                zone: self.world.zone(followee.zone).id.to_owned(),
                position: Point { x: followee.position.x, y: followee.position.y },
            };
            self.outputs.push_back(super::Output::Send { conn, message });
        }
    }

    /// `knock`: asks those inside `zone` to let the sender in; the sender always gets one
    /// `knock_status` (or an `unknown_zone` error).
    pub fn knock(&mut self, now: Instant, conn: ConnId, zone_id: &str) {
        let Some(&id) = self.by_conn.get(&conn) else { return };
        let Some(zone) = self.world.zone_by_id(zone_id) else {
            return self.error(conn, ErrorCode::UnknownZone);
        };
        let Some(avatar) = self.avatars.get(&id) else { return };
        let not_needed =
            avatar.zone == zone || self.entry_refusal(avatar, zone).is_none() || self.knocks.pass_admits(id, zone, now);
        let (user, name) = (avatar.user.clone(), avatar.name.clone());
        let status = |state| KnockStatus::new(zone_id, state);
        if not_needed {
            return self.send(conn, status(KnockState::NotNeeded).into());
        }
        if let Some(wait) = self.knock_wait(now, &user, id, zone) {
            let retry_after_ms = Some(millis_ceil(wait));
            return self.send(conn, KnockStatus { retry_after_ms, ..status(KnockState::TooSoon) }.into());
        }
        let inside = self.zones[usize::from(zone.0)]
            .members
            .iter()
            .any(|m| self.avatars.get(m).is_some_and(|a| a.conn.is_some()));
        if !inside {
            return self.send(conn, status(KnockState::NobodyInside).into());
        }
        let knock = self.knocks.next_id;
        self.knocks.next_id = self.knocks.next_id.wrapping_add(1).max(1);
        self.knocks.pending.insert(knock, PendingKnock { knocker: id, zone, sent_at: now });
        self.knocks.last_sent.insert((user, zone), now);
        self.send(conn, KnockStatus { knock: Some(knock), ..status(KnockState::Waiting) }.into());
        let prompt = ServerMessage::Knock { knock, avatar: id, name, zone: zone_id.to_owned() };
        self.send_zone(zone, None, &prompt);
    }

    /// How long `user` (as avatar `id`) must wait before knocking on `zone`, if at all:
    /// the longest of the limits that apply.
    fn knock_wait(&mut self, now: Instant, user: &str, id: AvatarId, zone: ZoneIndex) -> Option<Duration> {
        self.knocks.last_sent.retain(|_, sent| now < *sent + KNOCK_AGAIN_AFTER);
        let expiry = |knock: &PendingKnock| (knock.sent_at + KNOCK_TIMEOUT).saturating_duration_since(now);
        let own = self.knocks.pending.values().find(|k| k.knocker == id).map(expiry);
        let again = self
            .knocks
            .last_sent
            .get(&(user.to_owned(), zone))
            .map(|sent| (*sent + KNOCK_AGAIN_AFTER).saturating_duration_since(now));
        let in_zone: Vec<&PendingKnock> = self.knocks.pending.values().filter(|k| k.zone == zone).collect();
        let crowded =
            (in_zone.len() >= MAX_PENDING_KNOCKS_PER_ZONE).then(|| in_zone.into_iter().map(expiry).min()).flatten();
        [own, again, crowded].into_iter().flatten().max()
    }

    /// `answer_knock`: the first answer from someone inside the zone settles the knock;
    /// any other is ignored (answers race, and the losers hear `knock_closed` anyway).
    pub fn answer_knock(&mut self, now: Instant, conn: ConnId, knock: KnockId, admit: bool) {
        let Some(&id) = self.by_conn.get(&conn) else { return };
        let (Some(pending), Some(answerer)) = (self.knocks.pending.get(&knock), self.avatars.get(&id)) else { return };
        if answerer.zone != pending.zone || pending.knocker == id {
            return;
        }
        let by = answerer.name.clone();
        let Some(pending) = self.knocks.pending.remove(&knock) else { return };
        let (state, outcome) = if admit {
            (KnockState::Admitted, KnockOutcome::Admitted)
        } else {
            (KnockState::Declined, KnockOutcome::Declined)
        };
        if admit {
            self.knocks.passes.insert(pending.knocker, Pass { zone: pending.zone, until: now + PASS_TTL });
        }
        self.settle(knock, pending, Some(state), outcome, Some(by));
    }

    /// Tells the knocker (`state`, if it is still here) and those inside (`outcome`) how a
    /// knock ended.
    fn settle(
        &mut self,
        knock: KnockId,
        pending: PendingKnock,
        state: Option<KnockState>,
        outcome: KnockOutcome,
        by: Option<String>,
    ) {
        let zone = self.zone_id(pending.zone);
        if let (Some(state), Some(conn)) = (state, self.avatars.get(&pending.knocker).and_then(|a| a.conn)) {
            self.send(conn, KnockStatus { by: by.clone(), ..KnockStatus::new(&zone, state) }.into());
        }
        self.send_zone(pending.zone, None, &ServerMessage::KnockClosed { knock, outcome, by });
    }

    /// Ends what is due at `now`: held-back follow updates go out, unanswered knocks
    /// expire, passes run out.
    pub(super) fn people_timeout(&mut self, now: Instant) {
        if !self.follows.is_empty() {
            self.update_followers(now);
        }
        let expired: Vec<KnockId> =
            self.knocks.pending.iter().filter(|(_, k)| now >= k.sent_at + KNOCK_TIMEOUT).map(|(&id, _)| id).collect();
        for knock in expired {
            if let Some(pending) = self.knocks.pending.remove(&knock) {
                self.settle(knock, pending, Some(KnockState::Expired), KnockOutcome::Expired, None);
            }
        }
        self.knocks.passes.retain(|_, pass| now < pass.until);
    }

    /// When [`WorldEngine::people_timeout`] next has something to do.
    pub(super) fn people_deadline(&self) -> Option<Instant> {
        let follows = self.follows.iter().filter_map(|(follower, follow)| {
            self.avatars.get(follower)?.conn?;
            let followee = self.avatars.get(&follow.followee)?;
            let moved = followee.zone != follow.told_zone || followee.position != follow.told_position;
            moved.then_some(follow.told_at + FOLLOW_UPDATE_INTERVAL)
        });
        let knocks = self.knocks.pending.values().map(|k| k.sent_at + KNOCK_TIMEOUT);
        let passes = self.knocks.passes.values().map(|p| p.until);
        follows.chain(knocks).chain(passes).min()
    }

    /// `id` left the world (it is already out of the avatar map): its follows and knocks
    /// end, and those they concern are told.
    pub(super) fn people_left(&mut self, id: AvatarId) {
        if let Some(follow) = self.follows.remove(&id) {
            self.tell_followers(follow.followee);
        }
        let followers: Vec<AvatarId> =
            self.follows.iter().filter(|(_, f)| f.followee == id).map(|(&follower, _)| follower).collect();
        for follower in followers {
            self.follows.remove(&follower);
            if let Some(conn) = self.avatars.get(&follower).and_then(|a| a.conn) {
                self.send(conn, ServerMessage::FollowEnded { avatar: id, reason: FollowEndReason::Left });
            }
        }
        let withdrawn: Vec<KnockId> =
            self.knocks.pending.iter().filter(|(_, k)| k.knocker == id).map(|(&knock, _)| knock).collect();
        for knock in withdrawn {
            if let Some(pending) = self.knocks.pending.remove(&knock) {
                self.settle(knock, pending, None, KnockOutcome::Withdrawn, None);
            }
        }
        self.knocks.passes.remove(&id);
    }

    /// The world file changed (reload.rs): knocks and passes on zones it no longer has
    /// end (knockers told their knock expired), the rest follow their zones' new indices.
    /// Runs while the old world is still in place, so the ended ones are named.
    pub(super) fn people_world_changed(&mut self, zones: &[Option<ZoneIndex>]) {
        let new_index = |zone: ZoneIndex| zones.get(usize::from(zone.0)).copied().flatten();
        let orphaned: Vec<KnockId> =
            self.knocks.pending.iter().filter(|(_, k)| new_index(k.zone).is_none()).map(|(&id, _)| id).collect();
        for knock in orphaned {
            if let Some(pending) = self.knocks.pending.remove(&knock) {
                self.settle(knock, pending, Some(KnockState::Expired), KnockOutcome::Expired, None);
            }
        }
        for pending in self.knocks.pending.values_mut() {
            pending.zone = new_index(pending.zone).unwrap_or(ZoneIndex::DEFAULT);
        }
        let last_sent = std::mem::take(&mut self.knocks.last_sent);
        self.knocks.last_sent =
            last_sent.into_iter().filter_map(|((user, zone), at)| Some(((user, new_index(zone)?), at))).collect();
        self.knocks.passes.retain(|_, pass| new_index(pass.zone).is_some());
        for pass in self.knocks.passes.values_mut() {
            pass.zone = new_index(pass.zone).unwrap_or(ZoneIndex::DEFAULT);
        }
        for follow in self.follows.values_mut() {
            // A zone that is gone reads as a move: the follower is told the place anew.
            follow.told_zone = new_index(follow.told_zone).unwrap_or(ZoneIndex::DEFAULT);
        }
    }

    /// A new connection took `id`'s session over: it is told again what it follows, who
    /// follows it, its pending knock and the knocks on its zone.
    pub(super) fn people_resumed(&mut self, now: Instant, id: AvatarId) {
        let Some(conn) = self.avatars.get(&id).and_then(|a| a.conn) else { return };
        if let Some(followee) = self.follows.get(&id).map(|f| f.followee) {
            // Exactly as if it followed now: the place is current, the throttle restarts.
            self.follow(now, conn, followee);
        }
        if self.follows.values().any(|f| f.followee == id) {
            self.tell_followers(id);
        }
        let own: Vec<(KnockId, ZoneIndex)> =
            self.knocks.pending.iter().filter(|(_, k)| k.knocker == id).map(|(&knock, k)| (knock, k.zone)).collect();
        for (knock, zone) in own {
            let status =
                KnockStatus { knock: Some(knock), ..KnockStatus::new(&self.zone_id(zone), KnockState::Waiting) };
            self.send(conn, status.into());
        }
        self.prompt_knocks(id);
    }

    /// Sends `id` the knocks pending on its zone (it came in, or came back), so it may
    /// answer them.
    pub(super) fn prompt_knocks(&mut self, id: AvatarId) {
        let Some((conn, zone)) = self.avatars.get(&id).and_then(|a| Some((a.conn?, a.zone))) else { return };
        let prompts: Vec<ServerMessage> = self
            .knocks
            .pending
            .iter()
            .filter(|(_, k)| k.zone == zone && k.knocker != id)
            .filter_map(|(&knock, k)| {
                let knocker = self.avatars.get(&k.knocker)?;
                Some(ServerMessage::Knock {
                    knock,
                    avatar: k.knocker,
                    name: knocker.name.clone(),
                    zone: self.zone_id(zone),
                })
            })
            .collect();
        for prompt in prompts {
            self.send(conn, prompt);
        }
    }

    /// Checks this module's invariants (for the engine's property tests).
    #[cfg(test)]
    pub(super) fn people_invariants(&self) -> Result<(), String> {
        for (follower, follow) in &self.follows {
            if follow.followee == *follower
                || !self.avatars.contains_key(follower)
                || !self.avatars.contains_key(&follow.followee)
            {
                return Err(format!("{follower} follows {}, not another avatar in the world", follow.followee));
            }
        }
        for (knock, pending) in &self.knocks.pending {
            if !self.avatars.contains_key(&pending.knocker) {
                return Err(format!("knock {knock} outlived its knocker"));
            }
            if self.knocks.pending.values().filter(|k| k.knocker == pending.knocker).count() > 1 {
                return Err(format!("avatar {} has two knocks pending", pending.knocker));
            }
            if self.knocks.pending.values().filter(|k| k.zone == pending.zone).count() > MAX_PENDING_KNOCKS_PER_ZONE {
                return Err(format!("zone {} has too many knocks pending", pending.zone.0));
            }
        }
        if let Some(avatar) = self.knocks.passes.keys().find(|a| !self.avatars.contains_key(a)) {
            return Err(format!("a pass outlived avatar {avatar}"));
        }
        Ok(())
    }
}
