//! The connection test's SFU probe, on the virtual clock.

use super::*;
use crate::protocol::SfuAccess;

fn probe_answer(outputs: &[Output], conn: ConnId) -> Option<Option<SfuAccess>> {
    messages_to(outputs, conn).into_iter().find_map(|m| match m {
        ServerMessage::SfuProbe { sfu } => Some(sfu.clone()),
        _ => None,
    })
}

#[test]
fn a_probe_gets_a_listen_only_token_for_a_room_of_its_own_and_places_nothing() {
    let mut h = Harness::new(true);
    let ada = h.join(1, "ada");
    h.outputs();
    h.engine.probe_sfu(h.now, 1);
    let out = h.outputs();
    let access = probe_answer(&out, 1).flatten().expect("a token, with an SFU configured");
    assert_eq!(access.room, format!("test/probe/{ada}"));
    assert_eq!(access.url, "wss://sfu-a.example/v1/sfu");
    let claims: SfuClaims = TokenKey::new("sfu-secret").verify(&access.token, UNIX).unwrap();
    assert_eq!((claims.room.as_str(), claims.avatar, claims.publish), (access.room.as_str(), ada, false));
    assert!(claims.exp <= UNIX + PROBE_TOKEN_SECONDS);
    assert!(h.engine.placements.is_empty(), "testing a node does not put the zone on it");
}

#[test]
fn without_an_sfu_the_probe_says_so() {
    let mut h = Harness::new(false);
    h.join(1, "ada");
    h.outputs();
    h.engine.probe_sfu(h.now, 1);
    assert_eq!(probe_answer(&h.outputs(), 1), Some(None));
}
