//! Pages opened for a whole zone, on the virtual clock.

use super::*;
use crate::protocol::SharedPage;

/// The `page_shared` messages `conn` received, in order.
fn pages_seen(outputs: &[Output], conn: ConnId) -> Vec<Option<SharedPage>> {
    messages_to(outputs, conn)
        .into_iter()
        .filter_map(|m| match m {
            ServerMessage::PageShared { page } => Some(page.clone()),
            _ => None,
        })
        .collect()
}

fn errors(outputs: &[Output], conn: ConnId) -> Vec<ErrorCode> {
    messages_to(outputs, conn)
        .into_iter()
        .filter_map(|m| match m {
            ServerMessage::Error { code, .. } => Some(*code),
            _ => None,
        })
        .collect()
}

/// Ada (1) and Bob (2) in the meeting room, their outputs read.
fn ada_and_bob_in_the_room(h: &mut Harness) -> (AvatarId, AvatarId) {
    let ada = h.join(1, "ada");
    let bob = h.join(2, "bob");
    into_the_room(h, 1, 7.5);
    into_the_room(h, 2, 9.5);
    h.advance(100);
    h.outputs();
    (ada, bob)
}

#[test]
fn the_welcome_tells_the_embed_origins() {
    let mut h = Harness::new(false);
    h.join(1, "ada");
    let out = h.outputs();
    let origins = messages_to(&out, 1).into_iter().find_map(|m| match m {
        ServerMessage::Welcome { embed_origins, .. } => Some(embed_origins.clone()),
        _ => None,
    });
    assert_eq!(origins, Some(vec![BOARD_ORIGIN.to_owned()]));
}

#[test]
fn a_page_opened_in_a_meeting_room_reaches_everyone_inside_and_whoever_comes_in() {
    let mut h = Harness::new(false);
    let (ada, _) = ada_and_bob_in_the_room(&mut h);
    h.join(3, "carol");
    h.outputs();
    let url = format!("{BOARD_ORIGIN}/r/standup?view=1");
    h.engine.share_page(1, Some(url.clone()));
    let out = h.outputs();
    let page = SharedPage { url, by: ada, name: "ADA".into() };
    assert_eq!(pages_seen(&out, 1), vec![Some(page.clone())]);
    assert_eq!(pages_seen(&out, 2), vec![Some(page.clone())]);
    assert_eq!(pages_seen(&out, 3), vec![], "carol is outside the room");
    // The same page again from the same person tells nobody anything.
    h.engine.share_page(1, Some(page.url.clone()));
    assert!(h.outputs().is_empty());

    into_the_room(&mut h, 3, 10.5);
    let out = h.outputs();
    let snapshot_page = messages_to(&out, 3).into_iter().rev().find_map(|m| match m {
        ServerMessage::Snapshot { zone, .. } => Some(zone.page.clone()),
        _ => None,
    });
    assert_eq!(snapshot_page, Some(Some(page)), "a newcomer finds the page in the room's snapshot");
}

#[test]
fn the_page_closes_when_asked_or_when_its_opener_leaves_the_zone() {
    let mut h = Harness::new(false);
    ada_and_bob_in_the_room(&mut h);
    h.engine.share_page(1, Some(format!("{BOARD_ORIGIN}/a")));
    h.outputs();
    // Anyone in the room may close it; closing again changes nothing and sends nothing.
    h.engine.share_page(2, None);
    let out = h.outputs();
    assert_eq!((pages_seen(&out, 1), pages_seen(&out, 2)), (vec![None], vec![None]));
    h.engine.share_page(2, None);
    assert!(h.outputs().is_empty());

    // Bob opens another; when he walks out, it closes for Ada.
    h.engine.share_page(2, Some(format!("{BOARD_ORIGIN}/b")));
    h.outputs();
    h.walk_to(2, (9.5, 2.5), (5.5, 2.5));
    let out = h.outputs();
    assert_eq!(pages_seen(&out, 1), vec![None]);
    assert!(h.engine.zones.iter().all(|zone| zone.page.is_none()));

    // Leaving the world closes it too.
    h.engine.share_page(1, Some(format!("{BOARD_ORIGIN}/c")));
    h.walk_to(2, (5.5, 2.5), (9.5, 2.5));
    h.outputs();
    h.engine.leave(h.now, 1);
    let out = h.outputs();
    assert_eq!(pages_seen(&out, 2), vec![None]);
}

#[test]
fn pages_of_other_origins_and_pages_in_open_space_are_refused_and_change_nothing() {
    let mut h = Harness::new(false);
    ada_and_bob_in_the_room(&mut h);
    for url in [
        "https://elsewhere.example/board",
        "http://board.example.com/",
        "https://board.example.com.evil.example/",
        "https://user@board.example.com/",
        "javascript:alert(1)",
        "not a url",
    ] {
        h.engine.share_page(1, Some(url.into()));
        let out = h.outputs();
        assert_eq!(errors(&out, 1), vec![ErrorCode::PageRefused], "{url}");
        assert_eq!(pages_seen(&out, 2), vec![], "{url}");
    }
    assert!(h.engine.zones.iter().all(|zone| zone.page.is_none()));

    // Carol in the lobby (open space) may not open a page for everyone there.
    h.join(3, "carol");
    let dan = h.join(4, "dan");
    h.outputs();
    h.engine.share_page(3, Some(format!("{BOARD_ORIGIN}/x")));
    let out = h.outputs();
    assert_eq!(errors(&out, 3), vec![ErrorCode::PageNotHere]);
    assert_eq!(pages_seen(&out, 4), vec![], "dan ({dan}) heard nothing");
}
