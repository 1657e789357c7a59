//! The engine with a virtual clock: presence by zone, corrections, occupancy, zone
//! changes, media policy with hysteresis, signaling relay and resume, without sockets
//! (people.rs beside this file: the list of everyone, follows and knocks).

use super::*;
use crate::protocol::binary::{Frame, decode};
use crate::protocol::{ChatScope, Topology};

/// ```text
///    x: 0 1 2 3 4 5 | 6 7 8 9 10 11
/// y 0:  . . . . . . | m m m m m  m     room: meeting_room, SFU above 2 (x 6-11, y 0-3)
/// y 1:  . . . S . . | m m m m m  m     S: seat at (3, 1)
/// y 2:  . . . . . . | m m m m m  m     | thin wall x=6 from y=0 to y=2 (room's west side
/// y 3:  . . . . . . . m m m m m  m       is open at y 2-3)
/// y 4:  . . . . # . . . . . . .        # blocked (4, 4)
/// y 5:  b b b . . . . q q q q q        b: booth, private, capacity 1 (x 0-2, y 5-7)
/// y 6:  b b b . . . . q q q q q        q: quiet, silent (x 7-11, y 5-7)
/// y 7:  b b b . . . . q q q q q
/// ```
fn test_world() -> Arc<World> {
    Arc::new(World::from_json(&test_world_json().to_string()).unwrap())
}

/// The test world's file, for tests that change it.
fn test_world_json() -> serde_json::Value {
    serde_json::json!({
        "format": "isoplane.world", "version": 1, "name": "engine test",
        "grid": {"orientation": "orthogonal", "width": 12, "height": 8, "tile_width": 32, "tile_height": 32},
        "movement": {"max_speed": 4.0, "slack": 0.5},
        "collision": {
            "rows": ["............", "............", "............", "............",
                     "....#.......", "............", "............", "............"],
            "walls": [{"from": [6, 0], "to": [6, 2]}],
        },
        "spawns": [{"id": "main", "x": 3, "y": 3}, {"id": "far", "x": 5, "y": 6}],
        "default_zone": {"id": "lobby", "name": "Lobby", "type": "open", "talk_radius": 3},
        "zones": [
            {"id": "room", "name": "Room", "type": "meeting_room", "sfu_threshold": 2, "area": [{"x": 6, "y": 0, "w": 6, "h": 4}]},
            {"id": "booth", "name": "Booth", "type": "private", "capacity": 1, "area": [{"x": 0, "y": 5, "w": 3, "h": 3}]},
            {"id": "quiet", "name": "Quiet", "type": "silent", "area": [{"x": 7, "y": 5, "w": 5, "h": 3}]},
        ],
        "objects": [{"id": "seat", "kind": "seat", "area": [{"x": 3, "y": 1}]}],
    })
}

const UNIX: u64 = 1_800_000_000;
/// The one origin whose pages the test workspace embeds.
const BOARD_ORIGIN: &str = "https://board.example.com";
const CONTROL_A: &str = "http://sfu-a.internal:7880";

/// An SFU node `id` serving `participants` of `capacity`.
fn sfu_node(id: &str, participants: u64, capacity: u64) -> SfuNode {
    SfuNode {
        id: id.into(),
        url: format!("wss://sfu-{id}.example/v1/sfu"),
        control_url: format!("http://sfu-{id}.internal:7880"),
        participants,
        capacity,
    }
}

struct Harness {
    engine: WorldEngine,
    now: Instant,
    seq: u32,
}

fn config(with_sfu: bool) -> EngineConfig {
    let mut config = EngineConfig::default();
    config.media.stun_urls = vec!["stun:turn.example:3478".into()];
    config.embed_origins = vec![BOARD_ORIGIN.into()];
    config.media.turn = Some(TurnAccess {
        urls: vec!["turn:turn.example:3478?transport=udp".into()],
        secret: b"turn-secret".to_vec(),
        ttl: Duration::from_secs(600),
    });
    if with_sfu {
        config.media.sfu = Some(SfuConfig {
            key: TokenKey::new("sfu-secret"),
            token_ttl: Duration::from_secs(300),
            nodes: vec![sfu_node("a", 0, 1000)],
        });
    }
    config
}

impl Harness {
    fn new(with_sfu: bool) -> Harness {
        Harness::with_world(test_world(), with_sfu)
    }

    fn with_world(world: Arc<World>, with_sfu: bool) -> Harness {
        let now = Instant::now();
        let world_ref = WorldRef { name: "test".into(), version: "sha256-x".into(), url: "/v1/worlds/test".into() };
        let engine = WorldEngine::new("test", world, world_ref, config(with_sfu), now, UNIX);
        Harness { engine, now, seq: 0 }
    }

    fn join(&mut self, conn: ConnId, user: &str) -> AvatarId {
        self.join_at(conn, user, 0)
    }

    /// Joins with the wall-clock time `joined_at` (unix ms) the shell would stamp.
    fn join_at(&mut self, conn: ConnId, user: &str, joined_at: i64) -> AvatarId {
        let (id, name) = (user.into(), user.to_uppercase());
        let user = JoinUser { id, name, role: Role::Member, mute: Default::default(), chat_muted: false, joined_at };
        self.engine.join(self.now, conn, user, None).unwrap()
    }

    /// Joins `user` (shown as `name`) as an admin of the workspace.
    fn join_admin(&mut self, conn: ConnId, user: &str, name: &str) -> AvatarId {
        let (id, name) = (user.into(), name.into());
        let user = JoinUser { id, name, role: Role::Admin, mute: Default::default(), chat_muted: false, joined_at: 0 };
        self.engine.join(self.now, conn, user, None).unwrap()
    }

    /// Advances time by `ms` and runs whatever timeouts fell due.
    fn advance(&mut self, ms: u64) {
        let end = self.now + Duration::from_millis(ms);
        while let Some(due) = self.engine.poll_timeout().filter(|&t| t <= end) {
            self.now = due.max(self.now);
            self.engine.handle_timeout(self.now);
        }
        self.now = end;
    }

    fn outputs(&mut self) -> Vec<Output> {
        // A message to many is read here as one to each: what each connection receives.
        std::iter::from_fn(|| self.engine.poll_output())
            .flat_map(|output| match output {
                Output::SendMany { recipients, message } => recipients
                    .into_iter()
                    .map(|conn| Output::Send { conn, message: message.clone() })
                    .collect::<Vec<_>>(),
                // Read back as the client would.
                Output::SendJson { conn, json } => {
                    vec![Output::Send { conn, message: serde_json::from_slice(&json).unwrap() }]
                }
                output => vec![output],
            })
            .collect()
    }

    /// Moves `conn` to tile coordinates (x, y) after `ms` of walking.
    fn walk(&mut self, conn: ConnId, x: f64, y: f64, ms: u64) {
        self.advance(ms);
        self.seq += 1;
        let p = Position::from_tiles(x, y);
        let intent = MoveIntent {
            seq: self.seq,
            position: Point { x: p.x, y: p.y },
            pose: Pose { facing: Facing::East, state: AvatarState::Walking },
        };
        self.engine.handle_move(self.now, conn, intent);
    }

    /// Walks in steps of at most half a tile per 200 ms, which the speed limit allows.
    fn walk_to(&mut self, conn: ConnId, from: (f64, f64), to: (f64, f64)) {
        let steps = ((to.0 - from.0).hypot(to.1 - from.1) / 0.5).ceil().max(1.0) as u32;
        for i in 1..=steps {
            let t = f64::from(i) / f64::from(steps);
            self.walk(conn, from.0 + (to.0 - from.0) * t, from.1 + (to.1 - from.1) * t, 200);
        }
    }
}

/// Walks `conn` from the spawn point through the gap in the wall into the room, to
/// `(x, 2.5)`.
fn into_the_room(h: &mut Harness, conn: ConnId, x: f64) {
    h.walk_to(conn, (3.5, 3.5), (5.5, 2.5));
    h.walk_to(conn, (5.5, 2.5), (x, 2.5));
}

fn messages_to(outputs: &[Output], conn: ConnId) -> Vec<&ServerMessage> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::Send { conn: c, message } if *c == conn => Some(message),
            _ => None,
        })
        .collect()
}

fn presence_to(outputs: &[Output], conn: ConnId) -> Vec<Frame> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::Presence { recipients, frame } if recipients.contains(&conn) => decode(frame).ok(),
            _ => None,
        })
        .collect()
}

fn corrections(outputs: &[Output], conn: ConnId) -> Vec<CorrectionReason> {
    messages_to(outputs, conn)
        .into_iter()
        .filter_map(|m| match m {
            ServerMessage::Correction { reason, .. } => Some(*reason),
            _ => None,
        })
        .collect()
}

fn last_plan(outputs: &[Output], conn: ConnId) -> Option<MediaPlan> {
    messages_to(outputs, conn).into_iter().rev().find_map(|m| match m {
        ServerMessage::Media { plan } => Some(plan.clone()),
        _ => None,
    })
}

#[test]
fn joining_sends_welcome_and_a_snapshot_of_the_zone() {
    let mut h = Harness::new(false);
    let a = h.join(1, "ada");
    let out = h.outputs();
    let to_a = messages_to(&out, 1);
    assert!(matches!(to_a[0], ServerMessage::Welcome { avatar, resumed: false, protocol: 1, .. } if *avatar == a));
    assert!(
        matches!(to_a[1], ServerMessage::Snapshot { zone, avatars, you } if zone.id == "lobby" && avatars.is_empty() && you.avatar == a)
    );

    let b = h.join(2, "bob");
    let out = h.outputs();
    assert!(
        messages_to(&out, 1).iter().any(|m| matches!(m, ServerMessage::AvatarEntered { avatar } if avatar.avatar == b))
    );
    let snapshot = messages_to(&out, 2).into_iter().find(|m| matches!(m, ServerMessage::Snapshot { .. })).unwrap();
    assert!(
        matches!(snapshot, ServerMessage::Snapshot { avatars, .. } if avatars.len() == 1 && avatars[0].avatar == a)
    );
}

#[test]
fn moves_are_batched_into_one_presence_frame_per_zone_per_tick() {
    let mut h = Harness::new(false);
    let a = h.join(1, "ada");
    let b = h.join(2, "bob");
    h.advance(200);
    h.outputs();
    // Two moves by A and one by B within one tick.
    h.walk(1, 3.6, 3.5, 0);
    let tick = h.engine.poll_timeout().unwrap();
    let between = (tick - h.now) / 3;
    h.walk(1, 3.7, 3.5, between.as_millis() as u64);
    h.walk(2, 3.4, 3.4, between.as_millis() as u64);
    assert!(presence_to(&h.outputs(), 1).is_empty(), "nothing before the tick");
    h.advance(70);
    let out = h.outputs();
    for conn in [1, 2] {
        let frames = presence_to(&out, conn);
        assert_eq!(frames.len(), 1, "one frame per recipient per tick");
        let Frame::Presence { entries, .. } = &frames[0] else { panic!() };
        assert_eq!(entries.iter().map(|e| e.avatar).collect::<Vec<_>>(), vec![a, b]);
        // The latest position of A, quantised to 1/64 tile.
        assert_eq!(entries[0].position.x, Position::from_tiles(3.7, 3.5).x / 4 * 4);
    }
    // A quiet tick sends nothing.
    h.advance(200);
    assert!(presence_to(&h.outputs(), 1).is_empty());
}

#[test]
fn presence_ticks_keep_their_grid_when_one_runs_late() {
    let mut h = Harness::new(false);
    h.join(1, "ada");
    h.join(2, "bob");
    h.advance(1000);
    h.outputs();
    let tick = h.engine.config.tick_interval;
    h.walk(1, 3.6, 3.5, 0);
    let first = h.engine.poll_timeout().unwrap();
    // The shell runs that tick 30 ms late (its thread was busy).
    h.now = first + Duration::from_millis(30);
    h.engine.handle_timeout(h.now);
    assert_eq!(presence_to(&h.outputs(), 2).len(), 1);
    assert_eq!(h.engine.stats().presence_ticks_missed, 0, "late, but within its interval");
    // The next move's tick is one interval after the late tick was due, not after it ran.
    h.walk(1, 3.7, 3.5, 5);
    assert_eq!(h.engine.poll_timeout(), Some(first + tick));
    // A tick that runs over two intervals late counts the two the zone missed.
    h.now = first + tick * 3 + Duration::from_millis(10);
    h.engine.handle_timeout(h.now);
    assert_eq!(presence_to(&h.outputs(), 2).len(), 1);
    assert_eq!(h.engine.stats().presence_ticks_missed, 2);
    // A move after a quiet spell waits for the next tick on the same grid.
    h.advance(1000);
    h.outputs();
    h.walk(1, 3.8, 3.5, 0);
    let due = h.engine.poll_timeout().unwrap();
    let periods = (due - first).as_nanos() / tick.as_nanos();
    assert_eq!(first + tick * u32::try_from(periods).unwrap(), due, "on the grid");
    assert!(due > h.now && due <= h.now + tick);
}

#[test]
fn a_move_through_a_wall_or_too_fast_is_corrected_and_not_broadcast() {
    let mut h = Harness::new(false);
    h.join(1, "ada");
    h.join(2, "bob");
    h.walk_to(1, (3.5, 3.5), (5.5, 1.5));
    h.advance(100);
    h.outputs();
    // Through the thin wall at x = 6 into the room.
    h.walk(1, 6.3, 1.5, 300);
    // Farther than a full second's walk plus the slack (4.5 tiles) at once.
    h.walk(1, 0.5, 1.5, 100);
    h.advance(100);
    let out = h.outputs();
    assert_eq!(corrections(&out, 1), vec![CorrectionReason::Wall, CorrectionReason::TooFast]);
    let correction = messages_to(&out, 1)[0];
    let expected = Position::from_tiles(5.5, 1.5);
    assert!(
        matches!(correction, ServerMessage::Correction { position, .. } if position.x == expected.x && position.y == expected.y)
    );
    assert!(presence_to(&out, 2).is_empty());
    assert!(corrections(&out, 2).is_empty());
}

#[test]
fn two_avatars_cannot_hold_one_seat() {
    let mut h = Harness::new(false);
    let a = h.join(1, "ada");
    h.join(2, "bob");
    h.walk(1, 3.5, 2.5, 300);
    h.walk(1, 3.5, 1.5, 300);
    let seat = h.engine.world().object_by_id("seat").unwrap();
    assert_eq!(h.engine.holders_of(seat), &[a]);
    h.walk(2, 3.5, 2.5, 300);
    h.walk(2, 3.5, 1.5, 300);
    let out = h.outputs();
    assert_eq!(corrections(&out, 2), vec![CorrectionReason::Occupied]);
    // A gets up: the seat is free, and B may take it.
    h.walk(1, 2.5, 1.5, 300);
    assert!(h.engine.holders_of(seat).is_empty());
    h.walk(2, 3.5, 1.5, 300);
    assert!(corrections(&h.outputs(), 2).is_empty());
}

#[test]
fn a_zone_change_sends_leave_enter_and_a_snapshot_and_presence_stays_in_zone() {
    let mut h = Harness::new(false);
    let a = h.join(1, "ada"); // lobby, walks into the room
    let b = h.join(2, "bob"); // stays in the lobby
    let c = h.join(3, "cy"); // goes into the room first
    h.walk_to(3, (3.5, 3.5), (7.5, 2.5));
    h.advance(100);
    h.outputs();

    h.walk_to(1, (3.5, 3.5), (5.5, 2.5));
    h.walk(1, 6.4, 2.5, 200);
    let out = h.outputs();
    assert!(messages_to(&out, 2).iter().any(|m| matches!(m, ServerMessage::AvatarLeft { avatar } if *avatar == a)));
    assert!(
        messages_to(&out, 3).iter().any(|m| matches!(m, ServerMessage::AvatarEntered { avatar } if avatar.avatar == a))
    );
    let snapshot =
        messages_to(&out, 1).into_iter().rev().find(|m| matches!(m, ServerMessage::Snapshot { .. })).unwrap();
    assert!(
        matches!(snapshot, ServerMessage::Snapshot { zone, avatars, .. } if zone.id == "room" && avatars.iter().map(|x| x.avatar).collect::<Vec<_>>() == vec![c])
    );

    // A moves inside the room: C sees it, B (lobby) does not; B's moves do not reach A.
    h.advance(100);
    h.outputs();
    h.walk(1, 6.8, 2.5, 200);
    h.walk(2, 3.0, 3.5, 10);
    h.advance(100);
    let out = h.outputs();
    let entries = |conn| -> Vec<AvatarId> {
        presence_to(&out, conn)
            .into_iter()
            .flat_map(|f| match f {
                Frame::Presence { entries, .. } => entries.into_iter().map(|e| e.avatar).collect::<Vec<_>>(),
                Frame::MoveIntent(_) => Vec::new(),
            })
            .collect()
    };
    assert_eq!(entries(3), vec![a]);
    assert_eq!(entries(1), vec![a]);
    assert_eq!(entries(2), vec![b]);
}

#[test]
fn a_full_private_zone_corrects_the_next_one_in() {
    let mut h = Harness::new(false);
    h.join(1, "ada");
    h.join(2, "bob");
    h.walk_to(1, (3.5, 3.5), (3.5, 5.5));
    h.walk(1, 2.5, 5.5, 300);
    h.walk_to(2, (3.5, 3.5), (3.5, 6.5));
    h.walk(2, 2.5, 6.5, 300);
    assert_eq!(corrections(&h.outputs(), 2), vec![CorrectionReason::ZoneFull]);
}

/// Connections 1, 2 and 3 (users a, b, c) join and walk into the room, one tile apart.
fn three_in_the_room(h: &mut Harness) -> Vec<AvatarId> {
    let mut avatars = Vec::new();
    for (conn, user) in [(1, "a"), (2, "b"), (3, "c")] {
        avatars.push(h.join(conn, user));
        h.walk_to(conn, (3.5, 3.5), (5.5, 2.5));
        h.walk_to(conn, (5.5, 2.5), (6.5 + conn as f64, 2.5));
    }
    avatars
}

#[test]
fn the_room_escalates_to_the_sfu_and_comes_back_with_hysteresis() {
    let mut h = Harness::new(true);
    let avatars = three_in_the_room(&mut h);
    let revoked = |out: &[Output]| -> Vec<(String, AvatarId)> {
        out.iter()
            .filter_map(|o| match o {
                Output::SfuRevoke { room, avatar, .. } => Some((room.clone(), *avatar)),
                _ => None,
            })
            .collect()
    };
    h.advance(100);
    let out = h.outputs();
    let plan = last_plan(&out, 1).unwrap();
    assert_eq!(plan.topology, Topology::Sfu, "3 people is above the room's threshold of 2");
    let sfu = plan.sfu.unwrap();
    assert_eq!(sfu.room, "test/room");
    let claims: SfuClaims = TokenKey::new("sfu-secret").verify(&sfu.token, UNIX).unwrap();
    assert_eq!((claims.room.as_str(), claims.sub.as_str(), claims.publish), ("test/room", "a", true));

    // One leaves: 2 people, at the threshold, inside the hysteresis band: stays on the SFU.
    // The one who left is taken out of the SFU room by signaling, not left to its client.
    h.walk_to(3, (9.5, 2.5), (9.5, 4.5));
    h.advance(100);
    let out = h.outputs();
    assert_eq!(revoked(&out), vec![("test/room".to_owned(), avatars[2])]);
    assert_eq!(last_plan(&out, 1), None, "no change while in the band");
    // Another leaves: 1 person, below the band, but the plan holds for 10 s.
    h.walk_to(2, (8.5, 2.5), (8.5, 4.5));
    h.advance(5_000);
    assert_eq!(last_plan(&h.outputs(), 1), None);
    h.advance(6_000);
    let out = h.outputs();
    let plan = last_plan(&out, 1).unwrap();
    assert_eq!(plan.topology, Topology::P2p);
    assert!(plan.sfu.is_none());
    assert!(revoked(&out).contains(&("test/room".to_owned(), avatars[0])), "the room left the SFU: {out:?}");
}

#[test]
fn leaving_the_world_while_on_the_sfu_ends_the_sfu_session() {
    let mut h = Harness::new(true);
    let avatars = three_in_the_room(&mut h);
    h.advance(100);
    assert_eq!(last_plan(&h.outputs(), 3).map(|p| p.topology), Some(Topology::Sfu));
    h.engine.leave(h.now, 3);
    let revoked: Vec<Output> = h.outputs().into_iter().filter(|o| matches!(o, Output::SfuRevoke { .. })).collect();
    assert_eq!(
        revoked,
        vec![Output::SfuRevoke { room: "test/room".into(), avatar: avatars[2], control_url: CONTROL_A.into() }]
    );
}

#[test]
fn silent_zones_get_no_media_and_open_zones_pair_by_proximity() {
    let mut h = Harness::new(false);
    let a = h.join(1, "ada");
    let b = h.join(2, "bob");
    h.advance(100);
    let out = h.outputs();
    let plan = last_plan(&out, 1).unwrap();
    assert_eq!(plan.topology, Topology::P2p);
    let link = media::plain_link;
    assert_eq!(plan.peers, vec![link(b, true)]);
    assert_eq!(last_plan(&out, 2).unwrap().peers, vec![link(a, false)]);
    // TURN credentials follow the REST scheme and expire after the TTL.
    let turn = &plan.ice_servers[1];
    assert_eq!(turn.username.as_deref(), Some(format!("{}:ada", UNIX + 600).as_str()));

    h.walk_to(1, (3.5, 3.5), (5.5, 3.5));
    h.walk_to(1, (5.5, 3.5), (5.5, 5.5));
    h.walk_to(1, (5.5, 5.5), (8.5, 5.5));
    h.advance(100);
    let out = h.outputs();
    assert_eq!(last_plan(&out, 1).unwrap().topology, Topology::None);
    assert!(last_plan(&out, 2).unwrap().peers.is_empty());
}

#[test]
fn signals_are_relayed_only_between_paired_peers() {
    let mut h = Harness::new(false);
    let a = h.join(1, "ada");
    let b = h.join(2, "bob");
    h.advance(100);
    h.outputs();
    h.engine.handle_signal(1, b, SignalKind::Offer, serde_json::json!({"sdp": "v=0"}));
    let out = h.outputs();
    assert!(
        matches!(messages_to(&out, 2)[0], ServerMessage::Signal { from, kind: SignalKind::Offer, .. } if *from == a)
    );

    // Bob walks out of talking range into the booth: no longer paired.
    h.walk_to(2, (3.5, 3.5), (2.5, 6.5));
    h.advance(100);
    h.outputs();
    h.engine.handle_signal(1, b, SignalKind::Candidate, serde_json::json!({}));
    let out = h.outputs();
    assert!(messages_to(&out, 2).is_empty());
    assert!(matches!(messages_to(&out, 1)[0], ServerMessage::Error { code: ErrorCode::NotPaired, .. }));
}

#[test]
fn an_ice_failure_gets_relayed_links() {
    let mut h = Harness::new(false);
    h.join(1, "ada");
    h.join(2, "bob");
    h.advance(100);
    h.outputs();
    h.engine.handle_media_report(h.now, 2, IceOutcome::Failed);
    h.advance(100);
    let out = h.outputs();
    for conn in [1, 2] {
        let plan = last_plan(&out, conn).unwrap();
        assert_eq!(plan.topology, Topology::Turn);
        assert!(plan.peers.iter().all(|p| p.relay));
    }
}

#[test]
fn a_resumed_session_keeps_its_avatar_and_others_see_no_flap() {
    let mut h = Harness::new(false);
    let a = h.join(1, "ada");
    h.join(2, "bob");
    h.walk(1, 3.8, 3.5, 300);
    h.advance(100);
    h.outputs();
    h.engine.disconnect(h.now, 1);
    h.advance(5_000);
    assert_eq!(h.join(7, "ada"), a);
    let out = h.outputs();
    assert!(
        messages_to(&out, 2)
            .iter()
            .all(|m| !matches!(m, ServerMessage::AvatarLeft { .. } | ServerMessage::AvatarEntered { .. }))
    );
    assert!(matches!(messages_to(&out, 7)[0], ServerMessage::Welcome { resumed: true, avatar, .. } if *avatar == a));
    let snapshot = messages_to(&out, 7)[1];
    let kept = Position::from_tiles(3.8, 3.5);
    assert!(matches!(snapshot, ServerMessage::Snapshot { you, .. } if you.position.x == kept.x));
    // The new connection moves on from the kept position.
    h.walk(7, 4.0, 3.5, 200);
    assert!(corrections(&h.outputs(), 7).is_empty());
}

#[test]
fn an_abandoned_session_expires_after_the_grace_period_and_frees_its_seat() {
    let mut h = Harness::new(false);
    let a = h.join(1, "ada");
    h.join(2, "bob");
    h.walk(1, 3.5, 2.5, 300);
    h.walk(1, 3.5, 1.5, 300);
    h.engine.disconnect(h.now, 1);
    h.advance(19_000);
    assert!(messages_to(&h.outputs(), 2).iter().all(|m| !matches!(m, ServerMessage::AvatarLeft { .. })));
    h.advance(2_000);
    assert!(
        messages_to(&h.outputs(), 2).iter().any(|m| matches!(m, ServerMessage::AvatarLeft { avatar } if *avatar == a))
    );
    assert!(h.engine.holders_of(h.engine.world().object_by_id("seat").unwrap()).is_empty());
    assert_eq!(h.engine.population(), 1);
}

#[test]
fn a_second_connection_of_the_same_user_replaces_the_first() {
    let mut h = Harness::new(false);
    let a = h.join(1, "ada");
    h.outputs();
    assert_eq!(h.join(2, "ada"), a);
    let out = h.outputs();
    assert!(out.contains(&Output::Close { conn: 1, code: ErrorCode::Replaced }));
    // The old connection's late messages are ignored.
    h.walk(1, 3.8, 3.5, 300);
    let out = h.outputs();
    assert!(out.iter().all(|o| !matches!(o, Output::Presence { .. } | Output::Send { conn: 1, .. })), "{out:?}");
}

mod invariants {
    //! Random sequences of joins, moves, drops, leaves and time: the engine's invariants
    //! hold after every step, whatever clients send.

    use proptest::prelude::*;

    use super::*;

    #[derive(Debug, Clone)]
    enum Op {
        Join {
            conn: ConnId,
            user: u8,
        },
        Step {
            conn: ConnId,
            dx: i32,
            dy: i32,
            sit: bool,
        },
        Jump {
            conn: ConnId,
            x: i32,
            y: i32,
        },
        Disconnect {
            conn: ConnId,
        },
        Leave {
            conn: ConnId,
        },
        Signal {
            conn: ConnId,
            to: AvatarId,
        },
        Fail {
            conn: ConnId,
        },
        Wait {
            ms: u64,
        },
        Follow {
            conn: ConnId,
            avatar: AvatarId,
        },
        Unfollow {
            conn: ConnId,
        },
        Lock {
            locked: bool,
        },
        /// Walks at a walking pace through the gap in the wall into the room (or as far as
        /// the rules let it), so knocks meet people inside.
        WalkIn {
            conn: ConnId,
            x: u8,
        },
        Knock {
            conn: ConnId,
        },
        Answer {
            conn: ConnId,
            knock: u32,
            admit: bool,
        },
        Chat {
            conn: ConnId,
            scope: u8,
            to: u8,
        },
        /// 0: close, 1: an allowed page, 2: a page of another origin.
        SharePage {
            conn: ConnId,
            page: u8,
        },
        /// A new version of the world file (see `reloaded_world`).
        Reload {
            variant: u8,
        },
        /// Start or stop recording the sender's zone.
        Record {
            conn: ConnId,
            on: bool,
        },
    }

    /// The test world as a builder might change it: 0 as it is; 1 a wall of blocked tiles
    /// down the lobby (column 4, rows 0-3), the seat moved to (2, 1), recording allowed in
    /// the room; 2 without the room, the booth for two, end-to-end encrypted; 3 the zones
    /// in another order, the room a private one for two, end-to-end encrypted, and the
    /// seat twice as wide.
    fn reloaded_world(variant: u8) -> Arc<World> {
        let mut file = test_world_json();
        match variant {
            1 => {
                for row in file["collision"]["rows"].as_array_mut().unwrap().iter_mut().take(4) {
                    let mut text = row.as_str().unwrap().to_owned();
                    text.replace_range(4..5, "#");
                    *row = text.into();
                }
                file["objects"][0]["area"] = serde_json::json!([{"x": 2, "y": 1}]);
                file["zones"][0]["recording"] = true.into();
            }
            2 => {
                file["zones"].as_array_mut().unwrap().retain(|zone| zone["id"] != "room");
                file["zones"][0]["capacity"] = 2.into();
                file["zones"][0]["e2ee"] = true.into();
            }
            3 => {
                let room = file["zones"][0].as_object_mut().unwrap();
                room.remove("sfu_threshold");
                room.insert("type".into(), "private".into());
                room.insert("capacity".into(), 2.into());
                room.insert("e2ee".into(), true.into());
                file["zones"].as_array_mut().unwrap().reverse();
                file["objects"][0]["area"] = serde_json::json!([{"x": 2, "y": 1, "w": 2, "h": 1}]);
            }
            _ => {}
        }
        Arc::new(World::from_json(&file.to_string()).unwrap_or_else(|e| panic!("{e}")))
    }

    fn op() -> impl Strategy<Value = Op> {
        let conn = 1..8u64;
        prop_oneof![
            1 => (conn.clone(), 0..5u8).prop_map(|(conn, user)| Op::Join { conn, user }),
            1 => (conn.clone(), -200..200i32, -200..200i32, any::<bool>()).prop_map(|(conn, dx, dy, sit)| Op::Step {
                conn,
                dx,
                dy,
                sit
            }),
            1 => (conn.clone(), -300..3500i32, -300..2500i32).prop_map(|(conn, x, y)| Op::Jump { conn, x, y }),
            1 => conn.clone().prop_map(|conn| Op::Disconnect { conn }),
            1 => conn.clone().prop_map(|conn| Op::Leave { conn }),
            1 => (conn.clone(), 0..8u32).prop_map(|(conn, to)| Op::Signal { conn, to }),
            1 => conn.clone().prop_map(|conn| Op::Fail { conn }),
            1 => (0..3000u64).prop_map(|ms| Op::Wait { ms }),
            1 => (conn.clone(), 0..8u32).prop_map(|(conn, avatar)| Op::Follow { conn, avatar }),
            1 => conn.clone().prop_map(|conn| Op::Unfollow { conn }),
            // Knocks need someone inside a locked room and someone outside: more often.
            3 => any::<bool>().prop_map(|locked| Op::Lock { locked }),
            3 => (conn.clone(), 6..12u8).prop_map(|(conn, x)| Op::WalkIn { conn, x }),
            3 => conn.clone().prop_map(|conn| Op::Knock { conn }),
            3 => (conn.clone(), 1..4u32, any::<bool>()).prop_map(|(conn, knock, admit)| Op::Answer { conn, knock, admit }),
            2 => (conn.clone(), 0..3u8, 0..6u8).prop_map(|(conn, scope, to)| Op::Chat { conn, scope, to }),
            2 => (conn, 0..3u8).prop_map(|(conn, page)| Op::SharePage { conn, page }),
            1 => (0..4u8).prop_map(|variant| Op::Reload { variant }),
            2 => (1..8u64, any::<bool>()).prop_map(|(conn, on)| Op::Record { conn, on }),
        ]
    }

    fn check(engine: &WorldEngine, outputs: &[Output]) -> Result<(), TestCaseError> {
        let world = &engine.world;
        for avatar in engine.avatars.values() {
            let zone = world.zone_of(avatar.position).unwrap_or(ZoneIndex::DEFAULT);
            prop_assert_eq!(avatar.zone, zone, "avatar {} is filed under the wrong zone", avatar.id);
            let members: Vec<usize> = engine
                .zones
                .iter()
                .enumerate()
                .filter(|(_, z)| z.members.contains(&avatar.id))
                .map(|(i, _)| i)
                .collect();
            prop_assert_eq!(members, vec![usize::from(zone.0)], "avatar {} must be in exactly its zone", avatar.id);
            let (tx, ty) = avatar.position.tile();
            prop_assert_eq!(avatar.held, world.object_at(i64::from(tx), i64::from(ty)), "holds what it stands on");
            prop_assert!(world.can_stand(avatar.position), "avatar {} stands where it may not", avatar.id);
            if let Some(conn) = avatar.conn {
                prop_assert_eq!(engine.by_conn.get(&conn), Some(&avatar.id));
            }
            prop_assert_eq!(engine.by_user.get(&avatar.user), Some(&avatar.id));
            for peer in &avatar.peers {
                if let Some(other) = engine.avatars.get(peer) {
                    prop_assert!(other.zone == avatar.zone, "peers share a zone");
                }
            }
        }
        for (object, holders) in &engine.holders {
            prop_assert!(holders.len() <= world.object(*object).capacity as usize, "object over capacity");
            for holder in holders {
                prop_assert_eq!(engine.avatars.get(holder).and_then(|a| a.held), Some(*object));
            }
        }
        engine.people_invariants().map_err(TestCaseError::fail)?;
        engine.chat_invariants().map_err(TestCaseError::fail)?;
        engine.pages_invariants().map_err(TestCaseError::fail)?;
        engine.zone_media_invariants().map_err(TestCaseError::fail)?;
        // Chat reaches only its audience: its zone, or its two parties.
        for output in outputs {
            let Output::Send { conn, message: ServerMessage::Chat { message } } = output else { continue };
            let Some(recipient) = engine.by_conn.get(conn).and_then(|id| engine.avatars.get(id)) else { continue };
            match message.scope {
                ChatScope::Zone => prop_assert_eq!(
                    message.zone.as_deref(),
                    Some(world.zone(recipient.zone).id),
                    "zone chat crossed zones"
                ),
                ChatScope::World => {}
                ChatScope::Direct => prop_assert!(
                    recipient.user == message.from.user
                        || message.to.as_ref().is_some_and(|to| to.user == recipient.user),
                    "a direct message reached a third party"
                ),
            }
        }
        for (index, zone) in engine.zones.iter().enumerate() {
            if let Some(capacity) = world.zone(ZoneIndex(index as u16)).kind.capacity() {
                prop_assert!(zone.members.len() <= capacity as usize, "zone over capacity");
            }
        }
        // Presence never crosses zones: every avatar in a frame shares a zone with every recipient.
        for output in outputs {
            if let Output::Presence { recipients, frame } = output {
                let Ok(Frame::Presence { entries, .. }) = decode(frame) else {
                    return Err(TestCaseError::fail("bad frame"));
                };
                for entry in entries {
                    let Some(subject) = engine.avatars.get(&entry.avatar) else { continue };
                    for conn in recipients {
                        let recipient = engine.by_conn.get(conn).and_then(|id| engine.avatars.get(id));
                        if let Some(recipient) = recipient {
                            prop_assert_eq!(recipient.zone, subject.zone, "presence crossed zones");
                        }
                    }
                }
            }
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

        #[test]
        fn invariants_hold_under_any_sequence_of_inputs(ops in prop::collection::vec(op(), 1..120)) {
            let mut h = Harness::new(true);
            for op in ops {
                match op {
                    Op::Join { conn, user } => {
                        let user = JoinUser { id: format!("u{user}"), name: "x".into(), role: Role::Member, mute: Default::default(), chat_muted: false, joined_at: 0 };
                        let _ = h.engine.join(h.now, conn, user, None);
                    }
                    Op::Step { conn, dx, dy, sit } => {
                        let Some(avatar) = h.engine.by_conn.get(&conn).and_then(|id| h.engine.avatars.get(id)) else { continue };
                        let state = if sit { AvatarState::Sitting } else { AvatarState::Walking };
                        let intent = MoveIntent {
                            seq: 1,
                            position: Point { x: avatar.position.x + dx, y: avatar.position.y + dy },
                            pose: Pose { facing: Facing::East, state },
                        };
                        h.engine.handle_move(h.now, conn, intent);
                    }
                    Op::Jump { conn, x, y } => {
                        let intent = MoveIntent { seq: 2, position: Point { x, y }, pose: Pose { facing: Facing::West, state: AvatarState::Idle } };
                        h.engine.handle_move(h.now, conn, intent);
                    }
                    Op::Disconnect { conn } => h.engine.disconnect(h.now, conn),
                    Op::Leave { conn } => h.engine.leave(h.now, conn),
                    Op::Signal { conn, to } => h.engine.handle_signal(conn, to, SignalKind::Offer, serde_json::json!({})),
                    Op::Fail { conn } => h.engine.handle_media_report(h.now, conn, IceOutcome::Failed),
                    Op::Wait { ms } => {
                        h.advance(ms);
                        // Nothing due is left undone (a timer in the past would spin the world task).
                        prop_assert!(h.engine.poll_timeout().is_none_or(|t| t > h.now), "a due timer was left");
                    }
                    Op::Follow { conn, avatar } => h.engine.follow(h.now, conn, avatar),
                    Op::Unfollow { conn } => h.engine.unfollow(conn),
                    Op::Lock { locked } => {
                        let lock = Moderation::SetZone { zone: "room".into(), locked, capacity: None };
                        // A world without the room (a reload) refuses it.
                        let _ = h.engine.moderate(h.now, lock);
                    }
                    Op::WalkIn { conn, x } => {
                        let Some(avatar) = h.engine.by_conn.get(&conn).and_then(|id| h.engine.avatars.get(id)) else { continue };
                        let subtile = f64::from(isoplane_world_format::SUBTILE);
                        let from = (f64::from(avatar.position.x) / subtile, f64::from(avatar.position.y) / subtile);
                        for (a, b) in [(from, (5.5, 2.5)), ((5.5, 2.5), (f64::from(x) + 0.5, 2.5))] {
                            let steps = ((b.0 - a.0).hypot(b.1 - a.1) / 0.5).ceil().max(1.0) as u32;
                            for i in 1..=steps {
                                // Time and the move apart, each checked, as separate ops would be.
                                h.advance(200);
                                let outputs = h.outputs();
                                check(&h.engine, &outputs)?;
                                let t = f64::from(i) / f64::from(steps);
                                h.walk(conn, a.0 + (b.0 - a.0) * t, a.1 + (b.1 - a.1) * t, 0);
                                let outputs = h.outputs();
                                check(&h.engine, &outputs)?;
                            }
                        }
                    }
                    Op::Knock { conn } => h.engine.knock(h.now, conn, "room"),
                    Op::Answer { conn, knock, admit } => h.engine.answer_knock(h.now, conn, knock, admit),
                    Op::Chat { conn, scope, to } => {
                        let scope = [ChatScope::Zone, ChatScope::World, ChatScope::Direct][usize::from(scope)];
                        let to = (scope == ChatScope::Direct).then(|| format!("u{to}"));
                        h.engine.send_chat(conn, (UNIX as i64) * 1000, scope, to, "hi".into());
                    }
                    Op::SharePage { conn, page } => {
                        let url = [None, Some(format!("{BOARD_ORIGIN}/r/1")), Some("https://elsewhere.example/".into())];
                        h.engine.share_page(conn, url[usize::from(page)].clone());
                    }
                    Op::Reload { variant } => {
                        let world_ref = WorldRef { name: "test".into(), version: format!("v{variant}"), url: "/v1/worlds/test".into() };
                        h.engine.replace_world(h.now, reloaded_world(variant), world_ref);
                    }
                    Op::Record { conn, on } => h.engine.set_recording(h.now, conn, on),
                }
                let outputs = h.outputs();
                check(&h.engine, &outputs)?;
            }
        }
    }
}

// ---- moderation ----

fn moderated(outputs: &[Output], conn: ConnId) -> Vec<crate::protocol::ModeratedAction> {
    messages_to(outputs, conn)
        .into_iter()
        .filter_map(|m| match m {
            ServerMessage::Moderated { action, .. } => Some(*action),
            _ => None,
        })
        .collect()
}

fn by_admin(user: &str) -> (String, String, String) {
    (user.to_owned(), "Admin".to_owned(), "because".to_owned())
}

#[test]
fn a_kicked_avatar_is_gone_for_everyone_its_client_is_told_and_closed_and_it_may_come_back() {
    use crate::protocol::ModeratedAction;
    let mut h = Harness::new(true);
    let avatars = three_in_the_room(&mut h);
    h.advance(100);
    h.outputs();
    let (user, by, reason) = by_admin("c");
    assert_eq!(h.engine.moderate(h.now, Moderation::Remove { user, banned: false, by, reason }), Ok(1));
    let out = h.outputs();
    assert_eq!(moderated(&out, 3), vec![ModeratedAction::Kicked]);
    assert!(out.contains(&Output::Close { conn: 3, code: ErrorCode::Kicked }));
    assert!(out.contains(&Output::SfuRevoke {
        room: "test/room".into(),
        avatar: avatars[2],
        control_url: CONTROL_A.into()
    }));
    for bystander in [1, 2] {
        let left = messages_to(&out, bystander)
            .into_iter()
            .any(|m| matches!(m, ServerMessage::AvatarLeft { avatar } if *avatar == avatars[2]));
        assert!(left, "bystander {bystander} saw c leave");
    }
    assert_eq!(h.engine.population(), 2);
    // Nobody by that name now; a ban of someone absent reaches nobody.
    let (user, by, reason) = by_admin("c");
    assert_eq!(h.engine.moderate(h.now, Moderation::Remove { user, banned: true, by, reason }), Ok(0));
    // A kick is not a ban: the same user joins again as a new avatar.
    let again = h.join(4, "c");
    assert_ne!(again, avatars[2]);
}

#[test]
fn a_recorded_kick_removes_sessions_that_joined_before_it_and_spares_later_ones() {
    use crate::protocol::ModeratedAction;
    let mut h = Harness::new(false);
    h.join_at(1, "bob", 1_000);
    h.join_at(2, "carol", 1_500);
    h.join_at(3, "dave", 5_000);
    // Dave's connection dropped; his avatar waits for a resume.
    h.engine.disconnect(h.now, 3);
    h.outputs();
    assert_eq!(h.engine.oldest_join(), Some(1_000));
    let kick = |at: i64| LateKick { at, reason: "spam".into() };
    // Carol joined after her kick; Bob and the detached Dave before theirs.
    let kicks: HashMap<String, LateKick> =
        [("bob".to_owned(), kick(2_000)), ("carol".to_owned(), kick(1_000)), ("dave".to_owned(), kick(6_000))].into();
    assert_eq!(h.engine.enforce_kicks(&kicks), 2);
    let out = h.outputs();
    assert_eq!(moderated(&out, 1), vec![ModeratedAction::Kicked]);
    assert!(out.contains(&Output::Close { conn: 1, code: ErrorCode::Kicked }));
    assert!(moderated(&out, 2).is_empty());
    assert_eq!(h.engine.population(), 1);
    assert_eq!(h.engine.oldest_join(), Some(1_500));
    // Enforced again, nothing more goes; a session taken over after its kick stays too.
    assert_eq!(h.engine.enforce_kicks(&kicks), 0);
    h.join_at(4, "carol", 3_000);
    assert_eq!(h.engine.enforce_kicks(&kicks), 0);
    assert_eq!(h.engine.oldest_join(), Some(3_000));
}

#[test]
fn a_ban_tells_the_target_banned() {
    use crate::protocol::ModeratedAction;
    let mut h = Harness::new(false);
    h.join(1, "ada");
    h.outputs();
    let (user, by, reason) = by_admin("ada");
    h.engine.moderate(h.now, Moderation::Remove { user, banned: true, by, reason }).unwrap();
    let out = h.outputs();
    assert_eq!(moderated(&out, 1), vec![ModeratedAction::Banned]);
    assert!(out.contains(&Output::Close { conn: 1, code: ErrorCode::Banned }));
}

#[test]
fn a_mute_in_p2p_tells_every_peer_to_drop_that_media_and_unmute_restores_it() {
    use crate::protocol::ModeratedAction;
    let mut h = Harness::new(false);
    h.join(1, "ada");
    h.join(2, "bob");
    h.advance(100);
    let out = h.outputs();
    assert_eq!(last_plan(&out, 2).unwrap().peers.len(), 1, "side by side in the lobby: paired");
    let (user, by, reason) = by_admin("ada");
    let mute = Mute { audio: true, video: false };
    assert_eq!(h.engine.moderate(h.now, Moderation::SetMute { user, mute, by, reason }), Ok(1));
    h.advance(100);
    let out = h.outputs();
    assert_eq!(moderated(&out, 1), vec![ModeratedAction::Muted]);
    let bob = last_plan(&out, 2).unwrap();
    assert!(bob.peers[0].audio_muted && !bob.peers[0].video_muted, "{bob:?}");
    let ada = last_plan(&out, 1).unwrap();
    assert!(ada.audio_muted && !ada.video_muted);
    assert!(!ada.peers[0].audio_muted, "bob is not muted");
    assert!(!out.iter().any(|o| matches!(o, Output::SfuMute { .. })), "no SFU room, nothing to tell the SFU");

    let (user, by, reason) = by_admin("ada");
    h.engine.moderate(h.now, Moderation::SetMute { user, mute: Mute::default(), by, reason }).unwrap();
    h.advance(100);
    let out = h.outputs();
    assert_eq!(moderated(&out, 1), vec![ModeratedAction::Unmuted]);
    assert!(!last_plan(&out, 2).unwrap().peers[0].audio_muted);
}

#[test]
fn a_mute_on_the_sfu_reaches_the_sfu_now_and_rides_in_every_later_room_token() {
    let mut h = Harness::new(true);
    three_in_the_room(&mut h);
    h.advance(100);
    h.outputs();
    let (user, by, reason) = by_admin("b");
    let mute = Mute { audio: false, video: true };
    h.engine.moderate(h.now, Moderation::SetMute { user, mute, by, reason }).unwrap();
    h.advance(100);
    let out = h.outputs();
    assert!(
        out.contains(&Output::SfuMute {
            room: "test/room".into(),
            user: "b".into(),
            mute,
            control_url: CONTROL_A.into()
        }),
        "{out:?}"
    );
    let plan = last_plan(&out, 2).unwrap();
    let claims: SfuClaims = TokenKey::new("sfu-secret").verify(&plan.sfu.unwrap().token, UNIX).unwrap();
    assert!(claims.video_muted && !claims.audio_muted);
    // Someone recorded as muted joins: muted from their first token on.
    let user = JoinUser {
        id: "d".into(),
        name: "D".into(),
        role: Role::Member,
        mute: Mute { audio: true, video: true },
        chat_muted: false,
        joined_at: 0,
    };
    h.engine.join(h.now, 4, user, None).unwrap();
    h.walk_to(4, (3.5, 3.5), (5.5, 2.5));
    h.walk_to(4, (5.5, 2.5), (10.5, 1.5));
    h.advance(100);
    let plan = last_plan(&h.outputs(), 4).unwrap();
    let claims: SfuClaims = TokenKey::new("sfu-secret").verify(&plan.sfu.unwrap().token, UNIX).unwrap();
    assert!(claims.audio_muted && claims.video_muted);
}

#[test]
fn a_locked_zone_keeps_members_out_lets_admins_in_and_those_inside_stay() {
    let mut h = Harness::new(false);
    h.join(1, "ada");
    h.walk_to(1, (3.5, 3.5), (5.5, 2.5));
    h.walk_to(1, (5.5, 2.5), (7.5, 2.5));
    let lock = Moderation::SetZone { zone: "room".into(), locked: true, capacity: None };
    assert_eq!(h.engine.moderate(h.now, lock), Ok(1), "one person inside");
    h.join(2, "bob");
    h.join_admin(3, "zoe", "Zoe");
    h.outputs();
    for conn in [2, 3] {
        h.walk_to(conn, (3.5, 3.5), (5.5, 2.5));
        h.walk(conn, 6.0, 2.5, 200);
        h.walk(conn, 6.5, 2.5, 200);
    }
    let out = h.outputs();
    assert_eq!(corrections(&out, 2), vec![CorrectionReason::ZoneLocked, CorrectionReason::ZoneLocked]);
    assert!(corrections(&out, 3).is_empty(), "admins walk in");
    assert_eq!(h.engine.people().iter().filter(|p| p.zone == "room").count(), 2, "ada stayed, zoe came in");
    // Unlocked, with a capacity of 2 instead: the room is full for bob.
    let limit = Moderation::SetZone { zone: "room".into(), locked: false, capacity: Some(2) };
    h.engine.moderate(h.now, limit).unwrap();
    h.walk(2, 6.5, 2.5, 200);
    assert_eq!(corrections(&h.outputs(), 2), vec![CorrectionReason::ZoneFull]);
    assert_eq!(h.engine.zone_lock("room"), Some((false, Some(2))));
    let unknown = Moderation::SetZone { zone: "nowhere".into(), locked: true, capacity: None };
    assert_eq!(h.engine.moderate(h.now, unknown), Err(ModerationError::UnknownZone));
}

#[test]
fn a_moved_avatar_lets_go_of_its_seat_lands_on_the_spawn_point_and_is_checked_from_there() {
    use crate::protocol::ModeratedAction;
    let mut h = Harness::new(false);
    h.join(1, "ada");
    h.join(2, "bob");
    h.walk_to(1, (3.5, 3.5), (3.5, 1.5));
    let seat = h.engine.world().object_by_id("seat").unwrap();
    assert_eq!(h.engine.holders_of(seat).len(), 1);
    h.advance(100);
    h.outputs();
    let (user, by, reason) = by_admin("ada");
    let action = Moderation::MoveToSpawn { user, spawn: Some("far".into()), by, reason };
    assert_eq!(h.engine.moderate(h.now, action), Ok(1));
    h.advance(100);
    let out = h.outputs();
    assert_eq!(moderated(&out, 1), vec![ModeratedAction::Moved]);
    let far = Position::from_tiles(5.5, 6.5);
    let corrected = messages_to(&out, 1).into_iter().any(|m| {
        matches!(m, ServerMessage::Correction { reason: CorrectionReason::Moved, position, .. } if position.x == far.x && position.y == far.y)
    });
    assert!(corrected, "{out:?}");
    assert!(h.engine.holders_of(seat).is_empty(), "the seat is free again");
    let seen = presence_to(&out, 2).into_iter().any(|frame| match frame {
        Frame::Presence { entries, .. } => entries.iter().any(|e| e.position.x == far.x && e.position.y == far.y),
        _ => false,
    });
    assert!(seen, "bob sees ada at the spawn point");
    // Its next moves are checked from the spawn point with nothing banked: a step the
    // client sent before it heard of the move, 2.5 tiles away, is refused, not walked back.
    h.walk(1, 5.5, 4.0, 200);
    assert_eq!(corrections(&h.outputs(), 1), vec![CorrectionReason::TooFast]);
    // Walking on from the spawn point at a walking pace is fine.
    h.walk(1, 5.5, 6.0, 300);
    assert!(corrections(&h.outputs(), 1).is_empty());
    let (user, by, reason) = by_admin("ada");
    let nowhere = Moderation::MoveToSpawn { user, spawn: Some("nowhere".into()), by, reason };
    assert_eq!(h.engine.moderate(h.now, nowhere), Err(ModerationError::UnknownSpawn));
}

#[test]
fn notices_reach_the_world_or_only_the_zone() {
    let mut h = Harness::new(false);
    let avatars = three_in_the_room(&mut h);
    h.join(4, "d");
    h.outputs();
    let notice = |zone: Option<&str>| Moderation::Notice {
        zone: zone.map(str::to_owned),
        text: "Fire drill at 3".into(),
        by: "Admin".into(),
    };
    assert_eq!(h.engine.moderate(h.now, notice(None)), Ok(4));
    let out = h.outputs();
    for conn in 1..=4 {
        assert!(
            messages_to(&out, conn)
                .iter()
                .any(|m| matches!(m, ServerMessage::Notice { text, .. } if text == "Fire drill at 3"))
        );
    }
    assert_eq!(h.engine.moderate(h.now, notice(Some("room"))), Ok(avatars.len()));
    let out = h.outputs();
    assert!(messages_to(&out, 4).is_empty(), "d is in the lobby");
    assert_eq!(messages_to(&out, 1).len(), 1);
}

#[test]
fn ending_a_meeting_sends_everyone_but_the_admin_out_and_ends_their_sfu_sessions() {
    use crate::protocol::ModeratedAction;
    let mut h = Harness::new(true);
    let avatars = three_in_the_room(&mut h);
    h.advance(100);
    h.outputs();
    let end = |spawn: Option<&str>| Moderation::EndMeeting {
        zone: "room".into(),
        spawn: spawn.map(str::to_owned),
        except: Some("a".into()),
        by: "A".into(),
        reason: "time is up".into(),
    };
    assert_eq!(h.engine.moderate(h.now, end(None)), Ok(2));
    h.advance(100);
    let out = h.outputs();
    for conn in [2, 3] {
        assert_eq!(moderated(&out, conn), vec![ModeratedAction::MeetingEnded]);
    }
    assert!(moderated(&out, 1).is_empty(), "the admin who ended it stays");
    for avatar in &avatars[1..] {
        assert!(
            out.contains(&Output::SfuRevoke {
                room: "test/room".into(),
                avatar: *avatar,
                control_url: CONTROL_A.into()
            }),
            "{out:?}"
        );
    }
    let in_room: Vec<String> = h.engine.people().into_iter().filter(|p| p.zone == "room").map(|p| p.user).collect();
    assert_eq!(in_room, vec!["a".to_owned()]);
    assert_eq!(h.engine.moderate(h.now, end(Some("nowhere"))), Err(ModerationError::UnknownSpawn));
}

// ---- SFU nodes ----

fn sfu_url(plan: &MediaPlan) -> Option<&str> {
    plan.sfu.as_ref().map(|access| access.url.as_str())
}

#[test]
fn a_room_goes_to_the_least_loaded_sfu_node_and_moves_when_its_node_is_gone() {
    let mut h = Harness::new(true);
    h.engine.set_sfu_nodes(h.now, vec![sfu_node("a", 500, 1000), sfu_node("b", 100, 1000)]);
    three_in_the_room(&mut h);
    h.advance(100);
    let out = h.outputs();
    let plan = last_plan(&out, 1).unwrap();
    assert_eq!((plan.topology, sfu_url(&plan)), (Topology::Sfu, Some("wss://sfu-b.example/v1/sfu")));

    // Node b is gone: the room moves to a, and everyone in it is told.
    h.engine.set_sfu_nodes(h.now, vec![sfu_node("a", 500, 1000)]);
    h.advance(100);
    let out = h.outputs();
    for conn in 1..=3 {
        assert_eq!(last_plan(&out, conn).as_ref().and_then(sfu_url), Some("wss://sfu-a.example/v1/sfu"), "{conn}");
    }
    assert!(!out.iter().any(|o| matches!(o, Output::SfuRevoke { .. })), "nothing to revoke on a node that is gone");
    // Then the room's plans stay on a while reports come in.
    h.engine.set_sfu_nodes(h.now, vec![sfu_node("a", 503, 1000), sfu_node("b", 0, 1000)]);
    h.advance(100);
    assert_eq!(last_plan(&h.outputs(), 1), None, "a placed room stays where it is");

    // No node at all: back to peer to peer at once.
    h.engine.set_sfu_nodes(h.now, Vec::new());
    h.advance(100);
    let plan = last_plan(&h.outputs(), 1).unwrap();
    assert_eq!((plan.topology, plan.sfu.is_none()), (Topology::P2p, true));
}

#[test]
fn a_full_sfu_node_gets_no_new_rooms_and_with_every_node_full_rooms_stay_peer_to_peer() {
    let mut h = Harness::new(true);
    h.engine.set_sfu_nodes(h.now, vec![sfu_node("a", 1000, 1000), sfu_node("b", 900, 1000)]);
    three_in_the_room(&mut h);
    h.advance(100);
    assert_eq!(last_plan(&h.outputs(), 2).as_ref().and_then(sfu_url), Some("wss://sfu-b.example/v1/sfu"));

    let mut h = Harness::new(true);
    h.engine.set_sfu_nodes(h.now, vec![sfu_node("a", 1000, 1000)]);
    three_in_the_room(&mut h);
    h.advance(100);
    let plan = last_plan(&h.outputs(), 2).unwrap();
    assert_eq!(plan.topology, Topology::P2p, "no node has room: {plan:?}");
    // A node with room appears: the crowded room escalates.
    h.engine.set_sfu_nodes(h.now, vec![sfu_node("a", 1000, 1000), sfu_node("c", 0, 1000)]);
    h.advance(100);
    assert_eq!(last_plan(&h.outputs(), 2).as_ref().and_then(sfu_url), Some("wss://sfu-c.example/v1/sfu"));
}

mod chat;
mod connectivity;
mod ingest;
mod pages;
mod people;
mod reload;
mod zone_media;
