//! Recording and end-to-end encrypted zones, on the virtual clock.

use super::*;
use crate::engine::{RECORDING_RENEWAL, RecordingChange};
use crate::protocol::{MediaPlan, RecordingInfo};
use base64::Engine as _;

/// The test world with its meeting room changed by `change`.
fn world_with_room(change: impl FnOnce(&mut serde_json::Map<String, serde_json::Value>)) -> Arc<World> {
    let mut json = test_world_json();
    let room = json["zones"][0].as_object_mut().unwrap();
    change(room);
    Arc::new(World::from_json(&json.to_string()).unwrap())
}

fn recordable() -> Arc<World> {
    world_with_room(|room| {
        room.insert("recording".into(), true.into());
        room.insert("sfu_threshold".into(), 8.into());
    })
}

fn encrypted() -> Arc<World> {
    world_with_room(|room| {
        room.insert("e2ee".into(), true.into());
    })
}

/// The `e2ee_key` messages `conn` received: (key ID, key).
fn keys_to(outputs: &[Output], conn: ConnId) -> Vec<(u8, String)> {
    messages_to(outputs, conn)
        .into_iter()
        .filter_map(|m| match m {
            ServerMessage::E2eeKey { zone, key_id, key } if zone == "room" => Some((*key_id, key.clone())),
            _ => None,
        })
        .collect()
}

fn recording_changes(outputs: &[Output], conn: ConnId) -> Vec<(bool, Option<String>)> {
    messages_to(outputs, conn)
        .into_iter()
        .filter_map(|m| match m {
            ServerMessage::RecordingChanged { allowed, recording } => {
                Some((*allowed, recording.as_ref().map(|r| r.by.clone())))
            }
            _ => None,
        })
        .collect()
}

fn refusals(outputs: &[Output], conn: ConnId) -> Vec<String> {
    messages_to(outputs, conn)
        .into_iter()
        .filter_map(|m| match m {
            ServerMessage::Error { code: ErrorCode::RecordingRefused, message } => Some(message.clone()),
            _ => None,
        })
        .collect()
}

/// What the SFU was told: (room, who started it) to record, (room, None) to stop.
fn sfu_recordings(outputs: &[Output]) -> Vec<(String, Option<String>)> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::SfuRecording { room, by, change, .. } => {
                Some((room.clone(), (*change != RecordingChange::Stop).then(|| by.clone())))
            }
            _ => None,
        })
        .collect()
}

fn recording_ids(outputs: &[Output]) -> Vec<String> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::SfuRecording { id, .. } => Some(id.clone()),
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
fn members_of_an_encrypted_zone_get_its_key_and_a_new_one_when_someone_leaves() {
    let mut h = Harness::with_world(encrypted(), true);
    h.join(1, "ada");
    h.join(2, "bob");
    h.join(3, "cy");
    h.outputs();
    into_the_room(&mut h, 1, 7.5);
    let out = h.outputs();
    let first = keys_to(&out, 1);
    assert_eq!(first.len(), 1, "the key comes on entering");
    assert_eq!(first[0].0, 0);
    let key = base64::engine::general_purpose::STANDARD.decode(&first[0].1).unwrap();
    assert_eq!(key.len(), 32);
    // The key comes after the snapshot that says the zone is encrypted.
    let to_ada = messages_to(&out, 1);
    let snapshot = to_ada.iter().position(|m| matches!(m, ServerMessage::Snapshot { zone, .. } if zone.e2ee)).unwrap();
    let key_at = to_ada.iter().position(|m| matches!(m, ServerMessage::E2eeKey { .. })).unwrap();
    assert!(snapshot < key_at);

    into_the_room(&mut h, 2, 9.5);
    into_the_room(&mut h, 3, 10.5);
    h.advance(100);
    let out = h.outputs();
    // The plans say the zone is encrypted, and so do the SFU tokens (3 people: SFU).
    let plan = last_plan(&out, 1).unwrap();
    assert!(plan.e2ee);
    let token = plan.sfu.unwrap().token;
    let claims: crate::auth::SfuClaims = TokenKey::new("sfu-secret").verify(&token, UNIX).unwrap();
    assert!(claims.e2ee);
    assert_eq!(keys_to(&out, 2), first, "a newcomer gets the current key");
    assert_eq!(keys_to(&out, 3), first);
    assert!(keys_to(&out, 1).is_empty(), "nobody left: no new key");

    // Cy walks out: Ada and Bob get key 1, Cy does not.
    h.walk_to(3, (10.5, 2.5), (5.5, 2.5));
    h.walk_to(3, (5.5, 2.5), (3.5, 3.5));
    let out = h.outputs();
    let next = keys_to(&out, 1);
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].0, 1);
    assert_ne!(next[0].1, first[0].1);
    assert_eq!(keys_to(&out, 2), next);
    assert!(keys_to(&out, 3).is_empty(), "whoever left never learns the next key");

    // Everyone out: no key is kept; the next one in starts a new key.
    h.engine.leave(h.now, 1);
    h.engine.leave(h.now, 2);
    h.outputs();
    into_the_room(&mut h, 3, 7.5);
    assert_eq!(keys_to(&h.outputs(), 3).len(), 1);
}

#[test]
fn recording_is_refused_where_it_is_not_allowed_and_in_encrypted_zones() {
    let mut h = Harness::with_world(encrypted(), true);
    h.join_admin(1, "ada", "Ada");
    into_the_room(&mut h, 1, 7.5);
    h.outputs();
    h.engine.set_recording(h.now, 1, true);
    let out = h.outputs();
    assert!(refusals(&out, 1)[0].contains("end-to-end encrypted"), "{:?}", refusals(&out, 1));
    assert!(sfu_recordings(&out).is_empty());

    let mut h = Harness::new(true);
    h.join(1, "ada");
    into_the_room(&mut h, 1, 7.5);
    h.outputs();
    h.engine.set_recording(h.now, 1, true);
    assert!(refusals(&h.outputs(), 1)[0].contains("not allowed"));

    // Without an SFU there is nothing to record on.
    let mut h = Harness::with_world(recordable(), false);
    h.join(1, "ada");
    into_the_room(&mut h, 1, 7.5);
    h.outputs();
    h.engine.set_recording(h.now, 1, true);
    assert!(refusals(&h.outputs(), 1)[0].contains("no SFU"));
}

#[test]
fn a_recording_puts_the_zone_on_the_sfu_tells_everyone_and_ends_when_the_last_one_leaves() {
    let mut h = Harness::with_world(recordable(), true);
    h.join(1, "ada");
    h.join(2, "bob");
    into_the_room(&mut h, 1, 7.5);
    into_the_room(&mut h, 2, 9.5);
    h.advance(100);
    let out = h.outputs();
    assert_eq!(last_plan(&out, 1).unwrap().topology, Topology::P2p, "two people: peer to peer");

    h.engine.set_recording(h.now, 1, true);
    let out = h.outputs();
    assert_eq!(recording_changes(&out, 1), [(true, Some("ADA".to_owned()))]);
    assert_eq!(recording_changes(&out, 2), [(true, Some("ADA".to_owned()))]);
    h.advance(100);
    let out = h.outputs();
    assert_eq!(last_plan(&out, 1).unwrap().topology, Topology::Sfu, "a recording needs the SFU");
    assert_eq!(sfu_recordings(&out), [("test/room".to_owned(), Some("ADA".to_owned()))]);
    let id = recording_ids(&out);

    // The SFU is told again every renewal while it goes on, under the same ID.
    h.advance(RECORDING_RENEWAL.as_millis() as u64 + 100);
    let out = h.outputs();
    assert_eq!(sfu_recordings(&out), [("test/room".to_owned(), Some("ADA".to_owned()))]);
    assert_eq!(recording_ids(&out), id);
    assert!(matches!(
        out.iter().find(|o| matches!(o, Output::SfuRecording { .. })),
        Some(Output::SfuRecording { change: RecordingChange::Renew, .. })
    ));

    // The SFU lost it (it restarted): it goes on as a new recording, started anew.
    h.engine.recording_lost(h.now, &id[0]);
    h.advance(100);
    let out = h.outputs();
    let restarted = recording_ids(&out);
    assert_eq!(restarted.len(), 1);
    assert_ne!(restarted, id);
    assert!(matches!(
        out.iter().find(|o| matches!(o, Output::SfuRecording { .. })),
        Some(Output::SfuRecording { change: RecordingChange::Start, .. })
    ));
    let id = restarted;

    // Someone walking in is told in the snapshot, before its media plan.
    h.join(3, "cy");
    h.outputs();
    into_the_room(&mut h, 3, 10.5);
    h.advance(100);
    let out = h.outputs();
    let to_cy = messages_to(&out, 3);
    let told = to_cy
        .iter()
        .position(|m| matches!(m, ServerMessage::Snapshot { zone, .. } if zone.recording.as_ref().is_some_and(|r: &RecordingInfo| r.by == "ADA")))
        .expect("the snapshot says it is recorded");
    let plan = to_cy
        .iter()
        .position(|m| matches!(m, ServerMessage::Media { plan } if plan.sfu.is_some()))
        .expect("a plan for the room");
    assert!(told < plan);

    // Everyone leaves: the SFU is told to stop that recording.
    for conn in [1, 2, 3] {
        h.engine.leave(h.now, conn);
    }
    let out = h.outputs();
    assert_eq!(sfu_recordings(&out), [("test/room".to_owned(), None)]);
    assert_eq!(recording_ids(&out), id);
    h.advance(RECORDING_RENEWAL.as_millis() as u64 * 3);
    assert!(sfu_recordings(&h.outputs()).is_empty(), "nothing renews a stopped recording");
}

#[test]
fn a_reload_that_removes_or_empties_a_recorded_zone_stops_its_recording() {
    let mut h = Harness::with_world(recordable(), true);
    h.join(1, "ada");
    into_the_room(&mut h, 1, 7.5);
    h.engine.set_recording(h.now, 1, true);
    h.advance(100);
    assert_eq!(sfu_recordings(&h.outputs()).len(), 1);
    // The new file has no meeting room: Ada is placed in the lobby, the SFU stops.
    let mut json = test_world_json();
    json["zones"].as_array_mut().unwrap().remove(0);
    let world_ref = WorldRef { name: "test".into(), version: "sha256-y".into(), url: "/v1/worlds/test".into() };
    h.engine.replace_world(h.now, Arc::new(World::from_json(&json.to_string()).unwrap()), world_ref);
    assert_eq!(sfu_recordings(&h.outputs()), [("test/room".to_owned(), None)]);
}

#[test]
fn an_admin_may_allow_recording_and_forbidding_it_stops_it() {
    let mut h = Harness::new(true);
    h.join_admin(1, "ada", "Ada");
    h.join(2, "bob");
    into_the_room(&mut h, 1, 7.5);
    into_the_room(&mut h, 2, 9.5);
    h.advance(100);
    h.outputs();
    let room = h.engine.world().zone_by_id("room").unwrap();
    h.engine.allow_recording(room, true, "Ada");
    assert_eq!(recording_changes(&h.outputs(), 2), [(true, None)]);
    h.engine.set_recording(h.now, 2, true);
    h.advance(100);
    let out = h.outputs();
    assert_eq!(recording_changes(&out, 1), [(true, Some("BOB".to_owned()))]);
    assert_eq!(sfu_recordings(&out).len(), 1);

    h.engine.allow_recording(room, false, "Ada");
    let out = h.outputs();
    assert_eq!(recording_changes(&out, 2), [(false, None)]);
    assert_eq!(sfu_recordings(&out), [("test/room".to_owned(), None)]);
}

#[test]
fn on_a_stage_only_speakers_and_admins_may_record() {
    let mut h = Harness::with_world(
        world_with_room(|room| {
            room.insert("type".into(), "stage".into());
            room.remove("sfu_threshold");
            room.insert("podium".into(), serde_json::json!([{"x": 10, "y": 0, "w": 2, "h": 1}]));
            room.insert("recording".into(), true.into());
        }),
        true,
    );
    h.join(1, "ada");
    into_the_room(&mut h, 1, 7.5);
    h.advance(100);
    h.outputs();
    h.engine.set_recording(h.now, 1, true);
    assert!(refusals(&h.outputs(), 1)[0].contains("speakers"));
}
