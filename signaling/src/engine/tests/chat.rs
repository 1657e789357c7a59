//! Chat on the virtual clock: who each scope reaches, the text rules, a muted chat,
//! history after snapshots and its bounds, deletions, and the stored history coming back.

use super::*;
use crate::protocol::{ChatMessage, ChatParty, ChatScope, ModeratedAction};

/// The shell's clock for these tests, in Unix milliseconds.
const T0: i64 = (UNIX as i64) * 1000;
const DAY_MS: i64 = 24 * 60 * 60 * 1000;

/// Walks `conn` from the spawn point through the gap in the wall into the room.
fn into_the_room(h: &mut Harness, conn: ConnId) {
    h.walk_to(conn, (3.5, 3.5), (5.5, 2.5));
    h.walk_to(conn, (5.5, 2.5), (8.5, 2.5));
}

/// Ada (1) and bob (2) in the lobby, cy (3) in the room; outputs drained.
fn ada_bob_lobby_cy_room(h: &mut Harness) {
    h.join(1, "ada");
    h.join(2, "bob");
    h.join(3, "cy");
    into_the_room(h, 3);
    h.advance(100);
    h.outputs();
}

fn say(h: &mut Harness, conn: ConnId, at: i64, scope: ChatScope, to: Option<&str>, text: &str) {
    h.engine.send_chat(conn, at, scope, to.map(Into::into), text.into());
}

fn chats_to(outputs: &[Output], conn: ConnId) -> Vec<ChatMessage> {
    messages_to(outputs, conn)
        .into_iter()
        .filter_map(|m| match m {
            ServerMessage::Chat { message } => Some(message.clone()),
            _ => None,
        })
        .collect()
}

fn errors_to(outputs: &[Output], conn: ConnId) -> Vec<(ErrorCode, String)> {
    messages_to(outputs, conn)
        .into_iter()
        .filter_map(|m| match m {
            ServerMessage::Error { code, message } => Some((*code, message.clone())),
            _ => None,
        })
        .collect()
}

fn stored(outputs: &[Output]) -> Vec<ChatMessage> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::StoreChat { message } => Some(message.clone()),
            _ => None,
        })
        .collect()
}

/// The texts of each `chat_history` sent to `conn`: (scope, zone, texts).
fn histories_to(outputs: &[Output], conn: ConnId) -> Vec<(ChatScope, Option<String>, Vec<String>)> {
    messages_to(outputs, conn)
        .into_iter()
        .filter_map(|m| match m {
            ServerMessage::ChatHistory { scope, zone, messages } => {
                Some((*scope, zone.clone(), messages.iter().map(|m| m.text.clone()).collect()))
            }
            _ => None,
        })
        .collect()
}

fn party(user: &str) -> ChatParty {
    ChatParty { user: user.into(), name: user.to_uppercase() }
}

#[test]
fn zone_chat_reaches_everyone_in_the_zone_the_sender_included_and_no_one_else() {
    let mut h = Harness::new(false);
    ada_bob_lobby_cy_room(&mut h);
    say(&mut h, 1, T0 + 123, ChatScope::Zone, None, "hello <b>lobby</b>");
    let out = h.outputs();
    let to_ada = chats_to(&out, 1);
    assert_eq!(to_ada.len(), 1);
    let message = &to_ada[0];
    assert_eq!(
        (message.scope, message.zone.as_deref(), &message.from, message.to.as_ref()),
        (ChatScope::Zone, Some("lobby"), &party("ada"), None)
    );
    assert_eq!((message.text.as_str(), message.at), ("hello <b>lobby</b>", T0 + 123), "verbatim, at the shell's time");
    assert!(message.id.starts_with(&format!("c-{}-", T0 + 123)), "the ID starts with the time: {}", message.id);
    assert_eq!(chats_to(&out, 2), to_ada, "bob, in the lobby too");
    assert!(chats_to(&out, 3).is_empty(), "cy is in the room");
    assert_eq!(stored(&out), to_ada, "and it goes to the stored history");
}

#[test]
fn world_chat_reaches_everyone_connected_in_the_world() {
    let mut h = Harness::new(false);
    ada_bob_lobby_cy_room(&mut h);
    say(&mut h, 3, T0, ChatScope::World, None, "lunch?");
    let out = h.outputs();
    for conn in [1, 2, 3] {
        let chats = chats_to(&out, conn);
        assert_eq!(chats.len(), 1, "conn {conn}");
        assert_eq!((chats[0].scope, chats[0].zone.as_deref()), (ChatScope::World, None));
    }
}

#[test]
fn a_direct_message_reaches_both_parties_wherever_they_are_and_no_one_else() {
    let mut h = Harness::new(false);
    ada_bob_lobby_cy_room(&mut h);
    say(&mut h, 2, T0, ChatScope::Direct, Some("cy"), "psst");
    let out = h.outputs();
    let to_cy = chats_to(&out, 3);
    assert_eq!(to_cy.len(), 1, "cy, in another zone");
    assert_eq!(
        (to_cy[0].scope, &to_cy[0].from, to_cy[0].to.as_ref()),
        (ChatScope::Direct, &party("bob"), Some(&party("cy")))
    );
    assert_eq!(chats_to(&out, 2), to_cy, "bob sees his own, with its ID and time");
    assert!(chats_to(&out, 1).is_empty(), "ada, beside bob, does not");
}

#[test]
fn a_direct_message_to_someone_not_in_the_world_is_refused_but_one_waiting_for_a_resume_gets_it() {
    let mut h = Harness::new(false);
    ada_bob_lobby_cy_room(&mut h);
    say(&mut h, 1, T0, ChatScope::Direct, Some("zed"), "anyone?");
    let out = h.outputs();
    assert_eq!(errors_to(&out, 1).iter().map(|e| e.0).collect::<Vec<_>>(), [ErrorCode::UnknownUser]);
    assert!(chats_to(&out, 1).is_empty() && stored(&out).is_empty(), "nothing was sent");

    h.engine.disconnect(h.now, 2);
    say(&mut h, 1, T0 + 1, ChatScope::Direct, Some("bob"), "are you back?");
    let out = h.outputs();
    assert!(errors_to(&out, 1).is_empty(), "bob's avatar waits for him: he is in the world");
    assert_eq!(chats_to(&out, 1).len(), 1);
    h.join(4, "bob");
    let out = h.outputs();
    let direct = histories_to(&out, 4).into_iter().find(|(scope, ..)| *scope == ChatScope::Direct).unwrap();
    assert_eq!(direct.2, ["are you back?"], "the resumed session reads it in its direct history");
}

#[test]
fn empty_overlong_and_misaddressed_messages_are_refused_with_chat_invalid() {
    let mut h = Harness::new(false);
    ada_bob_lobby_cy_room(&mut h);
    let too_long = "é".repeat(2001);
    let cases: [(ChatScope, Option<&str>, &str, &str); 5] = [
        (ChatScope::Zone, None, "", "needs some text"),
        (ChatScope::Zone, None, " \n\t ", "needs some text"),
        (ChatScope::World, None, &too_long, "this one has 2001"),
        (ChatScope::Direct, None, "hi", "needs `to`"),
        (ChatScope::Zone, Some("bob"), "hi", "only for direct"),
    ];
    for (scope, to, text, says) in cases {
        say(&mut h, 1, T0, scope, to, text);
        let out = h.outputs();
        let errors = errors_to(&out, 1);
        assert_eq!(errors.len(), 1, "{scope:?} {to:?}");
        assert_eq!(errors[0].0, ErrorCode::ChatInvalid);
        assert!(errors[0].1.contains(says), "{:?} should say {says:?}", errors[0].1);
        assert!(!ErrorCode::ChatInvalid.closes_connection());
        assert!(chats_to(&out, 2).is_empty() && stored(&out).is_empty());
    }
    // 2,000 characters are fine, however many bytes they take.
    say(&mut h, 1, T0, ChatScope::Zone, None, &"é".repeat(2000));
    assert_eq!(chats_to(&h.outputs(), 2).len(), 1);
}

#[test]
fn a_muted_chat_sends_nothing_and_is_told_so_until_unmuted() {
    let mut h = Harness::new(false);
    ada_bob_lobby_cy_room(&mut h);
    let mute = |muted| Moderation::SetChatMute { user: "ada".into(), muted, by: "Zoe".into(), reason: "spam".into() };
    assert_eq!(h.engine.moderate(h.now, mute(true)), Ok(1));
    let out = h.outputs();
    assert!(matches!(messages_to(&out, 1)[..], [ServerMessage::Moderated { action: ModeratedAction::ChatMuted, .. }]));
    assert!(h.engine.people().iter().any(|p| p.user == "ada" && p.chat_muted));
    say(&mut h, 1, T0, ChatScope::World, None, "buy now");
    let out = h.outputs();
    assert_eq!(errors_to(&out, 1).iter().map(|e| e.0).collect::<Vec<_>>(), [ErrorCode::ChatMuted]);
    assert!(chats_to(&out, 2).is_empty() && stored(&out).is_empty());

    h.engine.moderate(h.now, mute(false)).unwrap();
    let out = h.outputs();
    assert!(matches!(
        messages_to(&out, 1)[..],
        [ServerMessage::Moderated { action: ModeratedAction::ChatUnmuted, .. }]
    ));
    say(&mut h, 1, T0, ChatScope::World, None, "sorry");
    assert_eq!(chats_to(&h.outputs(), 2).len(), 1);

    // Recorded as muted when joining: muted from the start.
    let user = JoinUser {
        id: "dan".into(),
        name: "Dan".into(),
        role: Role::Member,
        mute: Mute::default(),
        chat_muted: true,
        joined_at: T0,
    };
    h.engine.join(h.now, 5, user, None).unwrap();
    h.outputs();
    say(&mut h, 5, T0, ChatScope::Zone, None, "hi");
    assert_eq!(errors_to(&h.outputs(), 5).iter().map(|e| e.0).collect::<Vec<_>>(), [ErrorCode::ChatMuted]);
}

#[test]
fn a_zone_history_follows_every_snapshot_and_the_world_and_direct_ones_follow_the_join() {
    let mut h = Harness::new(false);
    ada_bob_lobby_cy_room(&mut h);
    say(&mut h, 1, T0, ChatScope::Zone, None, "in the lobby");
    say(&mut h, 3, T0 + 1, ChatScope::Zone, None, "in the room");
    say(&mut h, 3, T0 + 2, ChatScope::World, None, "to all");
    say(&mut h, 3, T0 + 3, ChatScope::Direct, Some("dan"), "for dan");
    assert_eq!(errors_to(&h.outputs(), 3).len(), 1, "dan is not here yet");
    say(&mut h, 2, T0 + 4, ChatScope::Direct, Some("ada"), "for ada");
    h.outputs();

    h.join(4, "dan");
    let out = h.outputs();
    let to_dan = messages_to(&out, 4);
    let snapshot = to_dan.iter().position(|m| matches!(m, ServerMessage::Snapshot { .. })).unwrap();
    assert!(
        matches!(to_dan[snapshot + 1], ServerMessage::ChatHistory { scope: ChatScope::Zone, .. }),
        "right after the snapshot"
    );
    assert_eq!(
        histories_to(&out, 4),
        [
            (ChatScope::Zone, Some("lobby".to_owned()), vec!["in the lobby".to_owned()]),
            (ChatScope::World, None, vec!["to all".to_owned()]),
            (ChatScope::Direct, None, vec![]),
        ]
    );

    // Walking into the room: its snapshot, then its history; nothing else again.
    into_the_room(&mut h, 4);
    let out = h.outputs();
    let to_dan = messages_to(&out, 4);
    let snapshot = to_dan.iter().position(|m| matches!(m, ServerMessage::Snapshot { .. })).unwrap();
    assert!(matches!(&to_dan[snapshot + 1], ServerMessage::ChatHistory { zone: Some(zone), .. } if zone == "room"));
    assert_eq!(histories_to(&out, 4), [(ChatScope::Zone, Some("room".to_owned()), vec!["in the room".to_owned()])]);

    // Ada comes back on a new connection: her direct history has what bob sent her.
    h.join(6, "ada");
    let out = h.outputs();
    let direct = histories_to(&out, 6).into_iter().find(|(scope, ..)| *scope == ChatScope::Direct).unwrap();
    assert_eq!(direct.2, ["for ada"]);
}

#[test]
fn histories_keep_the_last_200_messages_of_the_last_day() {
    let mut h = Harness::new(false);
    ada_bob_lobby_cy_room(&mut h);
    for n in 0..205 {
        say(&mut h, 1, T0 + n, ChatScope::Zone, None, &format!("line {n}"));
        say(&mut h, 2, T0 + n, ChatScope::Direct, Some("ada"), &format!("dm {n}"));
    }
    h.outputs();
    h.join(4, "dan");
    let zone = histories_to(&h.outputs(), 4).remove(0).2;
    assert_eq!(zone.len(), CHAT_HISTORY_LEN);
    assert_eq!((zone[0].as_str(), zone[199].as_str()), ("line 5", "line 204"), "the last 200, oldest first");
    h.join(5, "ada");
    let direct = histories_to(&h.outputs(), 5).remove(2).2;
    assert_eq!((direct.len(), direct[0].as_str()), (200, "dm 5"));

    // A day later, nothing of it is left.
    let a_day_later = T0 + 204 + DAY_MS + 1;
    let user = JoinUser {
        id: "eve".into(),
        name: "Eve".into(),
        role: Role::Member,
        mute: Mute::default(),
        chat_muted: false,
        joined_at: a_day_later,
    };
    h.engine.join(h.now, 7, user, None).unwrap();
    let histories = histories_to(&h.outputs(), 7);
    assert!(histories.iter().all(|(_, _, texts)| texts.is_empty()), "{histories:?}");
    h.engine.chat_invariants().unwrap();
}

#[test]
fn a_deleted_message_leaves_history_and_those_who_could_read_it_are_told() {
    let mut h = Harness::new(false);
    ada_bob_lobby_cy_room(&mut h);
    say(&mut h, 1, T0, ChatScope::Zone, None, "oops");
    say(&mut h, 1, T0 + 1, ChatScope::Direct, Some("cy"), "secret");
    let out = h.outputs();
    let (zone_id, direct_id) = (chats_to(&out, 2)[0].id.clone(), chats_to(&out, 3)[0].id.clone());

    assert_eq!(h.engine.moderate(h.now, Moderation::DeleteChat { id: zone_id.clone() }), Ok(2));
    let out = h.outputs();
    let deleted = ServerMessage::ChatDeleted { id: zone_id.clone() };
    assert_eq!(messages_to(&out, 1), [&deleted]);
    assert_eq!(messages_to(&out, 2), [&deleted]);
    assert!(messages_to(&out, 3).is_empty(), "cy, in the room, never had it");
    assert!(out.contains(&Output::EraseChat { id: zone_id.clone() }), "and the stored history loses it");

    assert_eq!(h.engine.moderate(h.now, Moderation::DeleteChat { id: direct_id.clone() }), Ok(2));
    let out = h.outputs();
    let deleted = ServerMessage::ChatDeleted { id: direct_id.clone() };
    assert_eq!((messages_to(&out, 1), messages_to(&out, 3)), (vec![&deleted], vec![&deleted]));
    assert!(messages_to(&out, 2).is_empty(), "bob never had it");

    assert_eq!(h.engine.moderate(h.now, Moderation::DeleteChat { id: zone_id }), Err(ModerationError::UnknownMessage));
    h.join(4, "dan");
    assert!(histories_to(&h.outputs(), 4).iter().all(|(_, _, texts)| texts.is_empty()));
    h.join(5, "cy");
    let direct = histories_to(&h.outputs(), 5).remove(2).2;
    assert!(direct.is_empty(), "cy's direct history lost it too");
}

#[test]
fn a_kicked_user_cannot_write_even_what_was_queued_before() {
    let mut h = Harness::new(false);
    ada_bob_lobby_cy_room(&mut h);
    let kick = Moderation::Remove { user: "ada".into(), banned: false, by: "Zoe".into(), reason: "".into() };
    h.engine.moderate(h.now, kick).unwrap();
    h.outputs();
    say(&mut h, 1, T0, ChatScope::World, None, "you can't kick me");
    assert!(h.outputs().is_empty(), "nothing from a connection no longer in the world");
}

#[test]
fn the_stored_history_comes_back_into_every_history() {
    let mut h = Harness::new(false);
    let message = |id: &str, scope, zone: Option<&str>, to: Option<&str>, text: &str| ChatMessage {
        id: id.into(),
        scope,
        zone: zone.map(Into::into),
        from: party("ada"),
        to: to.map(party),
        text: text.into(),
        at: T0,
    };
    let stored = vec![
        message("c-1", ChatScope::Zone, Some("room"), None, "room talk"),
        message("c-2", ChatScope::Zone, Some("gone"), None, "a zone the world no longer has"),
        message("c-3", ChatScope::World, None, None, "hello all"),
        message("c-4", ChatScope::Direct, None, Some("bob"), "hi bob"),
    ];
    h.engine.load_chat(stored, T0);
    h.join(1, "bob");
    let out = h.outputs();
    assert_eq!(
        histories_to(&out, 1),
        [
            (ChatScope::Zone, Some("lobby".to_owned()), vec![]),
            (ChatScope::World, None, vec!["hello all".to_owned()]),
            (ChatScope::Direct, None, vec!["hi bob".to_owned()]),
        ]
    );
    into_the_room(&mut h, 1);
    assert_eq!(histories_to(&h.outputs(), 1)[0].2, ["room talk"]);
}

#[test]
fn ids_are_unique_within_a_millisecond_and_sort_by_time() {
    let mut h = Harness::new(false);
    h.engine.tag_chat_ids(0xabcd);
    h.join(1, "ada");
    for at in [T0, T0, T0 + 1] {
        say(&mut h, 1, at, ChatScope::World, None, "tick");
    }
    let ids: Vec<String> = chats_to(&h.outputs(), 1).into_iter().map(|m| m.id).collect();
    assert_eq!(ids.len(), 3);
    assert!(ids[0] != ids[1], "{ids:?}");
    assert!(ids[1] < ids[2], "{ids:?}");
    assert!(ids[0].contains("0000abcd"), "{ids:?}");
}

/// Walks `conn` from the room back to the lobby and returns the lobby history it reads.
fn back_in_the_lobby(h: &mut Harness, conn: ConnId) -> Vec<String> {
    into_the_room(h, conn);
    h.walk_to(conn, (8.5, 2.5), (5.5, 2.5));
    h.walk_to(conn, (5.5, 2.5), (3.5, 3.5));
    let histories = histories_to(&h.outputs(), conn);
    let lobby = histories.into_iter().rev().find(|(_, zone, _)| zone.as_deref() == Some("lobby"));
    lobby.expect("the lobby's history after its snapshot").2
}

#[test]
fn a_zone_history_read_again_is_the_current_one_after_messages_deletions_and_a_day() {
    let mut h = Harness::new(false);
    h.join(1, "ada");
    h.join(2, "bob");
    say(&mut h, 1, T0, ChatScope::Zone, None, "one");
    let one = chats_to(&h.outputs(), 1)[0].id.clone();
    assert_eq!(back_in_the_lobby(&mut h, 2), ["one"]);
    assert_eq!(back_in_the_lobby(&mut h, 2), ["one"], "unchanged: the same history");
    say(&mut h, 1, T0 + 1, ChatScope::Zone, None, "two");
    h.outputs();
    assert_eq!(back_in_the_lobby(&mut h, 2), ["one", "two"], "a new message");
    h.engine.moderate(h.now, Moderation::DeleteChat { id: one }).unwrap();
    h.outputs();
    assert_eq!(back_in_the_lobby(&mut h, 2), ["two"], "a deletion");
    // A day after "two": the shell's clock reaches the engine with a message elsewhere.
    say(&mut h, 1, T0 + 1 + DAY_MS + 1, ChatScope::Direct, Some("ada"), "note to self");
    h.outputs();
    assert!(back_in_the_lobby(&mut h, 2).is_empty(), "too old");
}
