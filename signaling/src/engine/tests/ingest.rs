//! Broadcasters' streams on a stage, on the virtual clock.

use super::*;
use crate::protocol::IngestInfo;

/// The test world with its meeting room turned into a stage.
fn with_stage() -> Arc<World> {
    let mut json = test_world_json();
    let room = json["zones"][0].as_object_mut().unwrap();
    room.insert("type".into(), "stage".into());
    room.remove("sfu_threshold");
    room.insert("podium".into(), serde_json::json!([{"x": 10, "y": 0, "w": 2, "h": 1}]));
    Arc::new(World::from_json(&json.to_string()).unwrap())
}

fn ingest_messages(outputs: &[Output], conn: ConnId) -> Vec<Option<IngestInfo>> {
    messages_to(outputs, conn)
        .into_iter()
        .filter_map(|m| match m {
            ServerMessage::IngestChanged { ingest } => Some(ingest.clone()),
            _ => None,
        })
        .collect()
}

fn revoked(outputs: &[Output]) -> Vec<AvatarId> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::SfuRevoke { avatar, room, .. } if room == "test/room" => Some(*avatar),
            _ => None,
        })
        .collect()
}

#[test]
fn a_stream_on_a_stage_puts_it_on_the_sfu_until_it_ends() {
    let mut h = Harness::with_world(with_stage(), true);
    h.join(1, "ada");
    into_the_room(&mut h, 1, 7.5);
    h.advance(100);
    let out = h.outputs();
    assert_ne!(
        messages_to(&out, 1).iter().rev().find_map(|m| match m {
            ServerMessage::Media { plan } => Some(plan.topology),
            _ => None,
        }),
        Some(Topology::Sfu),
        "one listener alone: no SFU"
    );

    // Keys are for stages; another zone refuses.
    assert!(h.engine.start_ingest(h.now, "k1", "lobby", "Keynote").is_err());
    let slot = h.engine.start_ingest(h.now, "k1", "room", "Keynote").unwrap();
    assert_eq!(slot.room, "test/room");
    assert_ne!(slot.avatar & (1 << 31), 0, "a stream's avatar ID is out of people's range");
    let out = h.outputs();
    assert_eq!(ingest_messages(&out, 1), [Some(IngestInfo { avatar: slot.avatar, name: "Keynote".into() })]);
    h.advance(100);
    let plan = messages_to(&h.outputs(), 1).iter().rev().find_map(|m| match m {
        ServerMessage::Media { plan } => Some(plan.clone()),
        _ => None,
    });
    assert_eq!(plan.map(|p| p.topology), Some(Topology::Sfu), "the audience receives the stream on the SFU");
    assert!(h.engine.ingest_is_live("k1", slot.avatar));

    // Another key's stream is refused while this one is live; the same key replaces it.
    assert!(h.engine.start_ingest(h.now, "k2", "room", "Other").is_err());
    let again = h.engine.start_ingest(h.now, "k1", "room", "Keynote").unwrap();
    assert_ne!(again.avatar, slot.avatar);
    let out = h.outputs();
    assert_eq!(revoked(&out), [slot.avatar], "the replaced stream's SFU session ends");
    assert!(!h.engine.ingest_is_live("k1", slot.avatar));
    // Ending the old one by its avatar changes nothing for the new one.
    assert!(!h.engine.stop_ingest(h.now, "k1", Some(slot.avatar)));
    assert!(h.engine.ingest_is_live("k1", again.avatar));

    assert!(h.engine.stop_ingest(h.now, "k1", None));
    let out = h.outputs();
    assert_eq!(revoked(&out), [again.avatar]);
    assert_eq!(ingest_messages(&out, 1), [None]);
    assert!(h.engine.stop_ingest(h.now, "k1", None).then_some(()).is_none(), "ended once");
}
