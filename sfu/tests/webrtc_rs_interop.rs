//! Interop: webrtc-rs, a WebRTC stack independent of the SFU's str0m, publishes and
//! subscribes through the SFU on loopback, and the payloads arrive as they were sent.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failed expectation is a failed test

mod common;

use std::collections::{BTreeSet, HashSet};
use std::time::Duration;

use common::{
    ClientError, Kind, Publish, Received, ReceivedByTrack, SfuSocket, TestSfu, WebrtcRsParticipant, claims, unix_now,
};
use isoplane_auth::{SfuControlClaims, TokenKey};
use isoplane_sfu::protocol::{AvatarId, ErrorCode, Quality, ServerMessage, Source, Wanted};
use isoplane_sfu::worker::worker_for_room;

/// Every test's budget; far above what the steps need on a loaded machine.
const TEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How long packets are counted once media flows.
const WINDOW: Duration = Duration::from_secs(3);
/// The share of what a publisher sent in the window that a subscriber must receive.
const MIN_DELIVERED: f64 = 0.8;

const A: AvatarId = 101;
const B: AvatarId = 102;
const C: AvatarId = 103;
const D: AvatarId = 104;

async fn join(sfu: &TestSfu, room: &str, avatar: AvatarId, publish: Publish) -> WebrtcRsParticipant {
    let token = sfu.token(room, avatar, publish == Publish::AudioAndVideo);
    let participant = WebrtcRsParticipant::connect(sfu.http, &token, publish)
        .await
        .unwrap_or_else(|e| panic!("avatar {avatar} joins {room}: {e}"));
    assert_eq!(participant.joined.avatar, avatar);
    assert_eq!(participant.joined.room, room);
    assert_eq!(participant.joined.publish, publish == Publish::AudioAndVideo, "joined.publish follows the token");
    participant
}

/// Waits until `who` has intact media of every kind from every publisher in `from`.
async fn wait_for_media(who: &WebrtcRsParticipant, from: &[AvatarId], kinds: &[Kind]) {
    who.wait_for("media from every publisher", TEST_TIMEOUT, |p| {
        from.iter().all(|&a| kinds.iter().all(|&k| p.has_media_from(a, k)))
    })
    .await
    .unwrap_or_else(|e| {
        panic!(
            "avatar {} waiting for {from:?} {kinds:?}: {e}; received {:#?}; tracks {:?}; problems {:?}",
            who.avatar(),
            who.received_all(),
            who.tracks(),
            who.problems()
        )
    });
}

/// What `who` received per (publisher, kind), and what each publisher sent, now.
struct Snapshot {
    received: Vec<(AvatarId, ReceivedByTrack)>,
    sent: Vec<((AvatarId, Kind), u64)>,
}

fn snapshot(receivers: &[&WebrtcRsParticipant], publishers: &[&WebrtcRsParticipant]) -> Snapshot {
    Snapshot {
        received: receivers.iter().map(|p| (p.avatar(), p.received_all())).collect(),
        sent: publishers
            .iter()
            .flat_map(|p| [Kind::Audio, Kind::Video].map(|k| ((p.avatar(), k), p.sent(k).packets)))
            .collect(),
    }
}

impl Snapshot {
    fn received(&self, receiver: AvatarId, from: AvatarId, kind: Kind) -> Received {
        self.received
            .iter()
            .find(|(r, _)| *r == receiver)
            .and_then(|(_, m)| m.get(&(from, kind)).cloned())
            .unwrap_or_default()
    }

    fn sent(&self, from: AvatarId, kind: Kind) -> u64 {
        self.sent.iter().find(|(key, _)| *key == (from, kind)).map_or(0, |(_, n)| *n)
    }
}

/// Asserts `receiver` got at least [`MIN_DELIVERED`] of what `from` sent of `kind`
/// between the snapshots, all of it intact and attributed to `from`.
fn assert_delivered(before: &Snapshot, after: &Snapshot, receiver: AvatarId, from: AvatarId, kind: Kind) {
    let sent = after.sent(from, kind) - before.sent(from, kind);
    let (r0, r1) = (before.received(receiver, from, kind), after.received(receiver, from, kind));
    let intact = r1.intact - r0.intact;
    let what = format!("{receiver} receiving {from}'s {kind:?}");
    tracing::info!("{what}: {intact} intact of {sent} sent in the window; totals {r1:?}");
    assert!(sent > 0, "{what}: the publisher sent nothing in the window");
    assert!(
        intact as f64 >= MIN_DELIVERED * sent as f64,
        "{what}: {intact} intact packets of {sent} sent in {WINDOW:?}; totals {r1:?}"
    );
    assert_eq!(r1.corrupt, 0, "{what}: payloads changed on the way: {r1:?}");
    assert_eq!(r1.misattributed, 0, "{what}: payloads of another publisher or kind on this track: {r1:?}");
    assert_eq!(r1.inconsistent_tracks, 0, "{what}: mid, msid and source disagree: {r1:?}");
    assert!(r1.tracks >= 1, "{what}: no on_track");
    if kind == Kind::Video {
        assert!(r1.started_with_keyframe, "{what}: the first forwarded video packet was not a keyframe: {r1:?}");
    }
}

/// The SFU's `tracks` list for `who`: exactly a microphone and a camera of each of `from`.
fn assert_track_list(who: &WebrtcRsParticipant, from: &[AvatarId]) {
    let listed: HashSet<(AvatarId, Source)> = who.tracks().iter().map(|t| (t.avatar, t.source)).collect();
    let expected: HashSet<(AvatarId, Source)> =
        from.iter().flat_map(|&a| [Source::Microphone, Source::Camera].map(|s| (a, s))).collect();
    assert_eq!(who.tracks().len(), expected.len(), "avatar {}'s tracks list: {:?}", who.avatar(), who.tracks());
    assert_eq!(listed, expected, "avatar {}'s tracks list: {:?}", who.avatar(), who.tracks());
    assert!(who.tracks().iter().all(|t| !t.muted), "nothing is muted: {:?}", who.tracks());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webrtc_rs_publishers_reach_webrtc_rs_subscribers_through_the_sfu() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let sfu = TestSfu::start().await;
        let room = "interop/meeting";
        let a = join(&sfu, room, A, Publish::AudioAndVideo).await;
        let b = join(&sfu, room, B, Publish::AudioAndVideo).await;
        // C may only listen and watch.
        let c = join(&sfu, room, C, Publish::Nothing).await;
        // D publishes in another room: nobody here may see it, nor D anything of here.
        let d = join(&sfu, "interop/elsewhere", D, Publish::AudioAndVideo).await;
        for p in [&a, &b, &c, &d] {
            p.wait_connected().await.unwrap_or_else(|e| panic!("avatar {} connects: {e}", p.avatar()));
        }

        let both = [Kind::Audio, Kind::Video];
        wait_for_media(&c, &[A, B], &both).await;
        wait_for_media(&a, &[B], &both).await;
        wait_for_media(&b, &[A], &both).await;

        // Count over a window once everything flows.
        let before = snapshot(&[&a, &b, &c], &[&a, &b]);
        tokio::time::sleep(WINDOW).await;
        let after = snapshot(&[&a, &b, &c], &[&a, &b]);

        for kind in both {
            assert_delivered(&before, &after, C, A, kind);
            assert_delivered(&before, &after, C, B, kind);
            assert_delivered(&before, &after, A, B, kind);
            assert_delivered(&before, &after, B, A, kind);
        }
        // Counted as forwarded in /metrics.
        assert!(sfu.counter("forwarded_packets_total").await > 0);
        // Nobody hears or sees themselves; C sends nothing, so nobody gets anything of C's.
        for p in [&a, &b, &c] {
            let from: BTreeSet<AvatarId> = p.received_all().keys().map(|(avatar, _)| *avatar).collect();
            let expected: BTreeSet<AvatarId> = [A, B].into_iter().filter(|&x| x != p.avatar()).collect();
            assert_eq!(from, expected, "avatar {} received from {from:?}", p.avatar());
            assert_track_list(p, &expected.iter().copied().collect::<Vec<_>>());
            assert_eq!(p.problems(), Vec::<ServerMessage>::new(), "avatar {}: the SFU reported problems", p.avatar());
        }
        assert_eq!(c.sent(Kind::Audio).packets + c.sent(Kind::Video).packets, 0);
        assert!(d.sent(Kind::Video).packets > 0, "D published all along");
        assert_eq!(d.received_all(), Default::default(), "D, in another room, received something");
        assert_eq!(d.tracks(), vec![], "D, in another room, was offered tracks");
        for p in [&a, &b] {
            tracing::info!(
                "avatar {} sent audio {:?}, video {:?}",
                p.avatar(),
                p.sent(Kind::Audio),
                p.sent(Kind::Video)
            );
        }

        a.leave().await;
        b.leave().await;
        c.leave().await;
        d.leave().await;
    })
    .await
    .expect("the test finished in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_worker_serves_its_rooms_on_a_port_of_its_own() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let config = isoplane_sfu::Config { workers: 3, ..isoplane_sfu::Config::for_tests(TestSfu::SECRET) };
        let sfu = TestSfu::start_with(config).await;
        let ports: BTreeSet<u16> = sfu.udp.iter().map(|a| a.port()).collect();
        assert_eq!(ports.len(), 3, "a port per worker: {:?}", sfu.udp);
        // A room owned by each worker, with a publisher and a subscriber in each.
        let rooms: Vec<(usize, String)> = (0..3)
            .map(|worker| {
                let room = (0..).map(|n| format!("ports/{n}")).find(|r| worker_for_room(r, 3) == worker).unwrap();
                (worker, room)
            })
            .collect();
        let mut people = Vec::new();
        for (n, (worker, room)) in rooms.iter().enumerate() {
            let base = 200 + 10 * n as AvatarId;
            let publisher = join(&sfu, room, base, Publish::AudioAndVideo).await;
            let subscriber = join(&sfu, room, base + 1, Publish::Nothing).await;
            for p in [&publisher, &subscriber] {
                p.wait_connected().await.unwrap_or_else(|e| panic!("avatar {} connects: {e}", p.avatar()));
                let offered = p.sfu_udp_ports().await;
                assert_eq!(offered, vec![sfu.udp[*worker].port()], "{room}: only its worker's port is offered");
            }
            people.push((publisher, subscriber));
        }
        for (publisher, subscriber) in &people {
            wait_for_media(subscriber, &[publisher.avatar()], &[Kind::Audio, Kind::Video]).await;
        }
        for (publisher, subscriber) in people {
            publisher.leave().await;
            subscriber.leave().await;
        }
    })
    .await
    .expect("the test finished in time");
}

/// Joins with `token` and expects a fatal `bad_token` and the socket closed after it.
async fn assert_refused(sfu: &TestSfu, token: &str, what: &str) {
    let mut socket = SfuSocket::open(sfu.http).await.expect("open /v1/sfu");
    match socket.join(token).await {
        Err(ClientError::Refused { code, message, fatal }) => {
            assert_eq!(code, ErrorCode::BadToken, "{what}: {message}");
            assert!(fatal, "{what}: a refused join ends the session ({message})");
        }
        other => panic!("{what}: expected bad_token, got {other:?}"),
    }
    // No session: the SFU closes the socket rather than waiting for more.
    let next = tokio::time::timeout(common::STEP_TIMEOUT, socket.recv())
        .await
        .unwrap_or_else(|_| panic!("{what}: the SFU kept the socket open after refusing"));
    assert!(matches!(next, Ok(None)), "{what}: expected the socket closed, got {next:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tokens_are_refused_with_bad_token_and_no_session() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let sfu = TestSfu::start().await;
        let room = "interop/tokens";
        let hour_ago = unix_now() - 3600;
        let in_an_hour = unix_now() + 3600;

        assert_refused(&sfu, &sfu.key.sign(&claims(room, A, true, hour_ago)), "an expired token").await;
        assert_refused(
            &sfu,
            &TokenKey::new("another-secret").sign(&claims(room, A, true, in_an_hour)),
            "a token signed with another key",
        )
        .await;
        assert_refused(&sfu, &sfu.key.sign(&claims("", A, true, in_an_hour)), "a token for no room").await;
        assert_refused(&sfu, &sfu.key.sign(&SfuControlClaims::new(in_an_hour)), "a control token").await;
        // A token with its claims edited after signing.
        let good = sfu.key.sign(&claims(room, A, false, in_an_hour));
        let edited = sfu.key.sign(&claims(room, A, true, in_an_hour));
        let (good_head, good_sig) = good.rsplit_once('.').expect("a JWT has three parts");
        let (edited_head, _) = edited.rsplit_once('.').expect("a JWT has three parts");
        assert_ne!(good_head, edited_head);
        assert_refused(&sfu, &format!("{edited_head}.{good_sig}"), "a token with edited claims").await;

        // The SFU still serves good tokens after all that.
        let p = join(&sfu, room, A, Publish::Nothing).await;
        p.leave().await;
    })
    .await
    .expect("the test finished in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_receives_only_what_it_subscribed_to() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let sfu = TestSfu::start().await;
        let room = "interop/selective";
        let a = join(&sfu, room, A, Publish::AudioAndVideo).await;
        let b = join(&sfu, room, B, Publish::AudioAndVideo).await;
        let c = join(&sfu, room, C, Publish::Nothing).await;
        c.wait_connected().await.expect("C connects");
        // Everyone at first, so the subscription below demonstrably stops something.
        wait_for_media(&c, &[A, B], &[Kind::Audio, Kind::Video]).await;

        c.subscribe(Some(vec![Wanted { avatar: A, audio: true, video: Quality::Off, screen: Quality::Off }]))
            .expect("send subscribe");
        // The SFU acknowledges nothing (it may keep the m-lines and only stop forwarding):
        // let half a second of A's audio (25 packets) arrive as settle time, so the
        // subscription is in force and packets forwarded before it have landed.
        let settled = c.received(A, Kind::Audio).intact + 25;
        c.wait_for("A's audio after subscribing", TEST_TIMEOUT, move |c| c.received(A, Kind::Audio).intact >= settled)
            .await
            .expect("A's audio keeps coming after subscribing to it");

        let before = snapshot(&[&c], &[&a, &b]);
        tokio::time::sleep(WINDOW).await;
        let after = snapshot(&[&c], &[&a, &b]);

        assert_delivered(&before, &after, C, A, Kind::Audio);
        for (from, kind) in [(A, Kind::Video), (B, Kind::Audio), (B, Kind::Video)] {
            let (r0, r1) = (before.received(C, from, kind), after.received(C, from, kind));
            assert_eq!(
                r1.packets - r0.packets,
                0,
                "C unsubscribed from {from}'s {kind:?} but received {} packets in {WINDOW:?} (tracks {:?})",
                r1.packets - r0.packets,
                c.tracks()
            );
        }
        assert_eq!(c.problems(), Vec::<ServerMessage>::new(), "the SFU reported problems");

        // Back to everyone: B's audio and video come back.
        c.subscribe(None).expect("send subscribe");
        let b_audio = c.received(B, Kind::Audio).intact;
        let b_video = c.received(B, Kind::Video).intact;
        c.wait_for("B's media again", TEST_TIMEOUT, move |c| {
            c.received(B, Kind::Audio).intact > b_audio && c.received(B, Kind::Video).intact > b_video
        })
        .await
        .expect("B's audio and video resume after subscribing to everyone");

        a.leave().await;
        b.leave().await;
        c.leave().await;
    })
    .await
    .expect("the test finished in time");
}

/// The synthetic media is what the checks above take it for: str0m (as the SFU) sees the
/// keyframes as keyframes and the interframes as not, and any changed or missing byte
/// makes a payload not ours.
#[test]
fn synthetic_payloads_are_recognised_and_changes_are_detected() {
    use common::media::{Parsed, parse_payload, payload};
    let keyframe = payload(Kind::Video, A, 7, true);
    let interframe = payload(Kind::Video, A, 8, false);
    let audio = payload(Kind::Audio, B, 9, false);
    assert!(str0m::format::detect_vp8_keyframe(&keyframe));
    assert!(!str0m::format::detect_vp8_keyframe(&interframe));
    assert_eq!(
        parse_payload(Kind::Video, &keyframe),
        Some(Parsed { avatar: A, kind: Kind::Video, counter: 7, keyframe: true })
    );
    assert_eq!(
        parse_payload(Kind::Video, &interframe),
        Some(Parsed { avatar: A, kind: Kind::Video, counter: 8, keyframe: false })
    );
    assert_eq!(
        parse_payload(Kind::Audio, &audio),
        Some(Parsed { avatar: B, kind: Kind::Audio, counter: 9, keyframe: false })
    );
    for (kind, original) in [(Kind::Video, &keyframe), (Kind::Video, &interframe), (Kind::Audio, &audio)] {
        for i in 0..original.len() {
            let mut changed = original.to_vec();
            changed[i] ^= 0x01;
            assert_eq!(parse_payload(kind, &changed), None, "{kind:?}: byte {i} changed");
        }
        assert_eq!(parse_payload(kind, &original[..original.len() - 1]), None, "{kind:?}: truncated");
    }
}
