//! Who connects to whom: each avatar's media plan from its zone's mode and people.
//!
//! Pure functions over the engine's view of a zone. Pairings are symmetric (if A is to
//! connect to B, B is to connect to A) and stable under small moves: in open zones a
//! pair forms within `talk_radius` tiles and breaks only beyond `talk_radius + 1`. In a
//! mesh nobody gets more than `max_peers` links (a browser cannot hold a call with a
//! crowd, and a crowd's plans would cost the server the square of its size): links that
//! exist are kept, then the nearest pairs take the places left.

use std::collections::{BTreeSet, HashMap};

use isoplane_world_format::{Position, SUBTILE, ZoneKind};

use crate::policy::ZoneMode;
use crate::protocol::{AvatarId, PeerLink, Topology};

/// An avatar as the planner needs it.
#[derive(Debug, Clone, Copy)]
pub struct Participant<'a> {
    pub avatar: AvatarId,
    pub position: Position,
    pub relay_needed: bool,
    /// Its current peers, for hysteresis.
    pub peers: &'a BTreeSet<AvatarId>,
    /// What an admin muted; its peers are told to drop that media.
    pub mute: Mute,
    /// In an open zone: no proximity talk, in either direction.
    pub do_not_disturb: bool,
}

/// What an admin muted of one avatar.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Mute {
    pub audio: bool,
    pub video: bool,
}

/// What decides a media plan; credentials are added when the plan is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanKey {
    pub topology: Topology,
    pub peers: Vec<PeerLink>,
    /// The SFU room to join, on the SFU topology.
    pub sfu_room: Option<String>,
    pub publish: bool,
    /// The avatar's own mute, which its client shows and the SFU enforces.
    pub mute: Mute,
    /// The SFU node serving the room (set by the engine, which places rooms).
    pub sfu_node: Option<SfuEndpoint>,
    /// The zone is end-to-end encrypted (set by the engine).
    pub e2ee: bool,
}

/// Where an SFU node is reached, by clients and by signaling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SfuEndpoint {
    pub url: String,
    pub control_url: String,
}

fn within(a: Position, b: Position, tiles: u32) -> bool {
    let reach = i64::from(tiles) * i64::from(SUBTILE);
    a.distance_squared(b) <= reach * reach
}

/// The avatars on a stage's podium that may speak: the first `max_speakers` of them in
/// the order given (the engine lists people by avatar ID).
fn speakers(kind: &ZoneKind, people: &[Participant<'_>]) -> BTreeSet<AvatarId> {
    let ZoneKind::Stage { podium, max_speakers } = kind else {
        return BTreeSet::new();
    };
    people
        .iter()
        .filter(|p| {
            let (x, y) = p.position.tile();
            u32::try_from(x).is_ok_and(|x| u32::try_from(y).is_ok_and(|y| podium.iter().any(|r| r.contains(x, y))))
        })
        .map(|p| p.avatar)
        .take(*max_speakers as usize)
        .collect()
}

/// The plan of every participant of one zone, in the order given; in a mesh, each has at
/// most `max_peers` links.
pub fn plan_zone(
    kind: &ZoneKind,
    mode: ZoneMode,
    sfu_room: &str,
    people: &[Participant<'_>],
    max_peers: usize,
) -> Vec<PlanKey> {
    let speakers = speakers(kind, people);
    let is_stage = matches!(kind, ZoneKind::Stage { .. });
    let may_publish = |avatar: AvatarId| !is_stage || speakers.contains(&avatar);
    let links = match mode {
        ZoneMode::Mesh => mesh_links(kind, &speakers, people, max_peers),
        ZoneMode::Silent | ZoneMode::Sfu => Vec::new(),
    };
    people
        .iter()
        .enumerate()
        .map(|(i, me)| match mode {
            ZoneMode::Silent => no_media(me),
            _ if left_out(kind, me) => no_media(me),
            ZoneMode::Sfu => PlanKey {
                topology: Topology::Sfu,
                peers: Vec::new(),
                sfu_room: Some(sfu_room.to_owned()),
                publish: may_publish(me.avatar),
                mute: me.mute,
                sfu_node: None,
                e2ee: false,
            },
            ZoneMode::Mesh => {
                let peers: Vec<PeerLink> = links[i]
                    .iter()
                    .map(|&j| {
                        let other = &people[j];
                        PeerLink {
                            avatar: other.avatar,
                            initiator: me.avatar < other.avatar,
                            relay: me.relay_needed || other.relay_needed,
                            audio_muted: other.mute.audio,
                            video_muted: other.mute.video,
                            listen_only: !may_publish(other.avatar),
                        }
                    })
                    .collect();
                let topology = if peers.iter().any(|p| p.relay) { Topology::Turn } else { Topology::P2p };
                PlanKey {
                    topology,
                    peers,
                    sfu_room: None,
                    publish: may_publish(me.avatar),
                    mute: me.mute,
                    sfu_node: None,
                    e2ee: false,
                }
            }
        })
        .collect()
}

/// Do-not-disturb in an open zone leaves the person out of its media, whether the zone
/// pairs neighbours or (when crowded) puts everyone in one SFU room.
fn left_out(kind: &ZoneKind, me: &Participant<'_>) -> bool {
    matches!(kind, ZoneKind::Open { .. }) && me.do_not_disturb
}

/// Who links with whom in a mesh zone, as indices into `people` (each list in order):
/// every pair the zone allows, at most `max_peers` links each. Pairs already linked keep
/// their link first (a call is not cut for a newcomer), nearest first should there be
/// too many; then new pairs, nearest first, take the places left. Rows already full are
/// skipped, so a crowd costs the server its size times `max_peers`, not its square.
fn mesh_links(
    kind: &ZoneKind,
    speakers: &BTreeSet<AvatarId>,
    people: &[Participant<'_>],
    max_peers: usize,
) -> Vec<Vec<usize>> {
    let may_link = |i: usize, j: usize, already: bool| {
        let (a, b) = (&people[i], &people[j]);
        !left_out(kind, a) && !left_out(kind, b) && allowed(kind, speakers, a, b, already)
    };
    let distance = |i: usize, j: usize| people[i].position.distance_squared(people[j].position);
    let mut links: Vec<Vec<usize>> = vec![Vec::new(); people.len()];
    let link_nearest_first = |mut pairs: Vec<(i64, usize, usize)>, links: &mut Vec<Vec<usize>>| {
        pairs.sort_unstable();
        for (_, i, j) in pairs {
            if links[i].len() < max_peers && links[j].len() < max_peers {
                links[i].push(j);
                links[j].push(i);
            }
        }
    };

    // The links that exist (as either side remembers them) and may stay.
    let index: HashMap<AvatarId, usize> = people.iter().enumerate().map(|(i, p)| (p.avatar, i)).collect();
    let mut existing: Vec<(usize, usize)> = people
        .iter()
        .enumerate()
        .flat_map(|(i, p)| p.peers.iter().filter_map(|peer| index.get(peer)).map(move |&j| (i.min(j), i.max(j))))
        .filter(|&(i, j)| i != j)
        .collect();
    existing.sort_unstable();
    existing.dedup();
    let kept = existing.iter().filter(|&&(i, j)| may_link(i, j, true)).map(|&(i, j)| (distance(i, j), i, j)).collect();
    link_nearest_first(kept, &mut links);

    // New pairs, between people with places left.
    let mut new = Vec::new();
    for i in 0..people.len() {
        if links[i].len() >= max_peers {
            continue;
        }
        for j in i + 1..people.len() {
            if links[j].len() < max_peers && !links[i].contains(&j) && may_link(i, j, false) {
                new.push((distance(i, j), i, j));
            }
        }
    }
    link_nearest_first(new, &mut links);
    for list in &mut links {
        list.sort_unstable();
    }
    links
}

/// The plan of someone who sends and receives nothing here.
fn no_media(me: &Participant<'_>) -> PlanKey {
    PlanKey {
        topology: Topology::None,
        peers: Vec::new(),
        sfu_room: None,
        publish: false,
        mute: me.mute,
        sfu_node: None,
        e2ee: false,
    }
}

/// Whether two people of a mesh zone may connect (`already`: they are connected now).
fn allowed(
    kind: &ZoneKind,
    speakers: &BTreeSet<AvatarId>,
    a: &Participant<'_>,
    b: &Participant<'_>,
    already: bool,
) -> bool {
    match kind {
        ZoneKind::Open { talk_radius } => {
            within(a.position, b.position, if already { talk_radius + 1 } else { *talk_radius })
        }
        // Speakers reach everyone; listeners only hear speakers.
        ZoneKind::Stage { .. } => speakers.contains(&a.avatar) || speakers.contains(&b.avatar),
        ZoneKind::MeetingRoom { .. } | ZoneKind::Private { .. } => true,
        ZoneKind::Silent => false,
    }
}

/// A direct link with nothing muted, as tests expect most links to be.
#[cfg(test)]
pub(super) fn plain_link(avatar: AvatarId, initiator: bool) -> PeerLink {
    PeerLink { avatar, initiator, relay: false, audio_muted: false, video_muted: false, listen_only: false }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The default `policy.mesh_max_peers`.
    const MAX: usize = 16;

    fn at(avatar: AvatarId, x: f64, peers: &BTreeSet<AvatarId>) -> Participant<'_> {
        Participant {
            avatar,
            position: Position::from_tiles(x, 0.5),
            relay_needed: false,
            peers,
            mute: Mute::default(),
            do_not_disturb: false,
        }
    }

    #[test]
    fn do_not_disturb_leaves_a_person_out_of_open_zones_only() {
        let open = ZoneKind::Open { talk_radius: 3 };
        let none = BTreeSet::new();
        let mut people = vec![at(1, 1.0, &none), at(2, 2.0, &none), at(3, 3.0, &none)];
        people[1].do_not_disturb = true;
        for mode in [ZoneMode::Mesh, ZoneMode::Sfu] {
            let plans = plan_zone(&open, mode, "w/open", &people, MAX);
            assert_eq!((plans[1].topology, plans[1].sfu_room.as_deref()), (Topology::None, None), "{mode:?}");
            assert!(plans[1].peers.is_empty() && !plans[1].publish, "{mode:?}");
            assert!(plans.iter().all(|p| p.peers.iter().all(|l| l.avatar != 2)), "{mode:?}: nobody links to 2");
        }
        let plans = plan_zone(&open, ZoneMode::Mesh, "w/open", &people, MAX);
        assert_eq!(plans[0].peers.iter().map(|l| l.avatar).collect::<Vec<_>>(), vec![3], "the others still talk");
        // A meeting room is entered on purpose: the status changes nothing there.
        let room = ZoneKind::MeetingRoom { sfu_threshold: 4, capacity: None };
        let plans = plan_zone(&room, ZoneMode::Mesh, "w/room", &people, MAX);
        assert_eq!(plans[1].peers.len(), 2);
        assert!(plans[0].peers.iter().any(|l| l.avatar == 2));
    }

    #[test]
    fn open_zones_pair_by_distance_with_hysteresis() {
        let open = ZoneKind::Open { talk_radius: 3 };
        let none = BTreeSet::new();
        let plans = plan_zone(&open, ZoneMode::Mesh, "r", &[at(1, 1.0, &none), at(2, 4.5, &none)], MAX);
        assert!(plans[0].peers.is_empty(), "3.5 tiles apart: not yet in range");
        let plans = plan_zone(&open, ZoneMode::Mesh, "r", &[at(1, 1.0, &none), at(2, 3.9, &none)], MAX);
        let link = plain_link;
        assert_eq!(plans[0].peers, vec![link(2, true)]);
        assert_eq!(plans[1].peers, vec![link(1, false)]);
        // Once paired, 3.5 tiles keeps the link (breaks only beyond 4).
        let (p1, p2) = (BTreeSet::from([2]), BTreeSet::from([1]));
        let plans = plan_zone(&open, ZoneMode::Mesh, "r", &[at(1, 1.0, &p1), at(2, 4.5, &p2)], MAX);
        assert_eq!(plans[0].peers.len(), 1);
        let plans = plan_zone(&open, ZoneMode::Mesh, "r", &[at(1, 1.0, &p1), at(2, 5.5, &p2)], MAX);
        assert!(plans[0].peers.is_empty());
    }

    fn linked_to(plan: &PlanKey) -> Vec<AvatarId> {
        plan.peers.iter().map(|l| l.avatar).collect()
    }

    #[test]
    fn a_crowd_in_a_mesh_gets_at_most_max_peers_each_nearest_first() {
        let open = ZoneKind::Open { talk_radius: 100 };
        let none = BTreeSet::new();
        // Forty people a tile apart on one row, all within talk range of each other.
        let people: Vec<Participant<'_>> = (0..40).map(|i| at(i, f64::from(i) + 0.5, &none)).collect();
        let plans = plan_zone(&open, ZoneMode::Mesh, "r", &people, 2);
        // Nearest first: each links with its neighbours on the row; the two ends, with a
        // place left each and within range, with each other too.
        assert_eq!(linked_to(&plans[5]), vec![4, 6]);
        assert_eq!((linked_to(&plans[0]), linked_to(&plans[39])), (vec![1, 39], vec![0, 38]));
        let plans = plan_zone(&open, ZoneMode::Mesh, "r", &people, MAX);
        for (i, plan) in plans.iter().enumerate() {
            assert!(plan.peers.len() <= MAX, "{i} has {} links", plan.peers.len());
            for link in &plan.peers {
                let back = &plans[link.avatar as usize];
                assert!(back.peers.iter().any(|l| l.avatar == i as AvatarId), "{i} → {} is one-sided", link.avatar);
            }
        }
        // No two people with places left are left apart.
        for (i, a) in plans.iter().enumerate() {
            for (j, b) in plans.iter().enumerate().skip(i + 1) {
                let apart = !linked_to(a).contains(&(j as AvatarId));
                assert!(!(apart && a.peers.len() < MAX && b.peers.len() < MAX), "{i} and {j} could link");
            }
        }
        // Under the cap nothing changes: a meeting room of 17 is a full mesh.
        let room = ZoneKind::MeetingRoom { sfu_threshold: 40, capacity: None };
        let plans = plan_zone(&room, ZoneMode::Mesh, "r", &people[..17], MAX);
        assert!(plans.iter().all(|p| p.peers.len() == 16));
    }

    #[test]
    fn a_link_in_use_is_not_cut_for_a_nearer_newcomer() {
        let open = ZoneKind::Open { talk_radius: 3 };
        let (ada, bob, none) = (BTreeSet::from([2]), BTreeSet::from([1]), BTreeSet::new());
        // Ada (1) and Bob (2) talk, two tiles apart; Cy (3) comes to stand next to Ada.
        let people = [at(1, 1.0, &ada), at(2, 3.0, &bob), at(3, 1.5, &none)];
        let plans = plan_zone(&open, ZoneMode::Mesh, "r", &people, 1);
        assert_eq!(linked_to(&plans[0]), vec![2]);
        assert!(plans[2].peers.is_empty(), "Ada has no place left");
        // Bob walks off (beyond talk_radius + 1): Ada's place goes to Cy.
        let people = [at(1, 1.0, &ada), at(2, 6.0, &bob), at(3, 1.5, &none)];
        let plans = plan_zone(&open, ZoneMode::Mesh, "r", &people, 1);
        assert_eq!((linked_to(&plans[0]), linked_to(&plans[2])), (vec![3], vec![1]));
        assert!(plans[1].peers.is_empty());
    }

    #[test]
    fn a_relay_need_on_either_side_makes_the_link_relayed() {
        let room = ZoneKind::MeetingRoom { sfu_threshold: 4, capacity: None };
        let none = BTreeSet::new();
        let mut people = vec![at(1, 1.0, &none), at(2, 9.0, &none), at(3, 15.0, &none)];
        people[2].relay_needed = true;
        let plans = plan_zone(&room, ZoneMode::Mesh, "r", &people, MAX);
        assert_eq!(plans[0].topology, Topology::Turn);
        assert_eq!(plans[0].peers.iter().map(|p| p.relay).collect::<Vec<_>>(), vec![false, true]);
        assert!(plans[2].peers.iter().all(|p| p.relay));
    }

    #[test]
    fn on_a_stage_listeners_hear_only_speakers_and_do_not_publish() {
        let stage =
            ZoneKind::Stage { podium: vec![isoplane_world_format::Rect { x: 0, y: 0, w: 2, h: 1 }], max_speakers: 1 };
        let none = BTreeSet::new();
        let people = [at(1, 0.5, &none), at(2, 1.5, &none), at(3, 8.0, &none)];
        let plans = plan_zone(&stage, ZoneMode::Mesh, "r", &people, MAX);
        // Avatar 1 is the one speaker allowed; 2 is on the podium but over the limit.
        assert!(plans[0].publish && !plans[1].publish && !plans[2].publish);
        assert_eq!(plans[0].peers.len(), 2);
        // The speaker plays nothing its listeners might send; listeners play the speaker.
        assert!(plans[0].peers.iter().all(|p| p.listen_only));
        assert_eq!(plans[1].peers.iter().map(|p| p.avatar).collect::<Vec<_>>(), vec![1]);
        assert!(plans[1].peers.iter().all(|p| !p.listen_only));
        let sfu = plan_zone(&stage, ZoneMode::Sfu, "w/stage", &people, MAX);
        assert_eq!(sfu[2].sfu_room.as_deref(), Some("w/stage"));
        assert!(!sfu[2].publish);
    }

    #[test]
    fn peers_are_told_what_an_admin_muted_and_the_muted_one_knows() {
        let room = ZoneKind::MeetingRoom { sfu_threshold: 4, capacity: None };
        let none = BTreeSet::new();
        let mut people = vec![at(1, 1.0, &none), at(2, 2.0, &none), at(3, 3.0, &none)];
        people[1].mute = Mute { audio: true, video: false };
        let plans = plan_zone(&room, ZoneMode::Mesh, "r", &people, MAX);
        for plan in [&plans[0], &plans[2]] {
            let link = plan.peers.iter().find(|p| p.avatar == 2).unwrap();
            assert!(link.audio_muted && !link.video_muted);
            assert!(plan.peers.iter().filter(|p| p.avatar != 2).all(|p| !p.audio_muted && !p.video_muted));
        }
        assert_eq!(plans[1].mute, Mute { audio: true, video: false });
        assert!(plans[1].peers.iter().all(|p| !p.audio_muted));
        let sfu = plan_zone(&room, ZoneMode::Sfu, "w/r", &people, MAX);
        assert!(sfu[1].mute.audio && !sfu[0].mute.audio);
    }
}
