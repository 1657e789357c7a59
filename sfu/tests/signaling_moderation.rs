//! Moderation end to end, seen in the media: an admin's commands go to a real signaling
//! server over its WebSocket, and webrtc-rs clients in the SFU room that signaling
//! planned notice. A mute stops the target's audio at the SFU while its client keeps
//! sending, follows the user into a fresh session, and a kick ends the SFU session.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed expectation is a failed test

mod common;

use std::time::Duration;

use common::{Kind, Publish, TestSfu, WebrtcRsParticipant, unix_now};
use isoplane_sfu::protocol::{ServerMessage as SfuMessage, Source};
use isoplane_signaling::auth::{JoinClaims, Role, TokenKey};
use isoplane_signaling::client::{Client, Event};
use isoplane_signaling::config::Config;
use isoplane_signaling::protocol::{AdminCommand, ClientMessage, MediaArgs, ServerMessage, Topology, UserArgs};
use tokio_util::sync::CancellationToken;

const TIMEOUT: Duration = Duration::from_secs(30);
const JOIN_SECRET: &str = "join-secret-0123456789";

fn join_token(user: &str, role: Role) -> String {
    let claims = JoinClaims::new(user, &user.to_uppercase(), "default", role, unix_now() + 600);
    TokenKey::new(JOIN_SECRET).sign(&claims)
}

/// Signaling on loopback, sending the demo lobby to this SFU as soon as two people meet.
async fn start_signaling(sfu: &TestSfu) -> (String, CancellationToken) {
    let mut config =
        Config { listen: "127.0.0.1:0".parse().unwrap(), token_secret: JOIN_SECRET.into(), ..Config::default() };
    config.worlds.demo = true;
    config.policy.open_sfu_threshold = 1;
    config.media.sfu_url = Some(format!("ws://{}/v1/sfu", sfu.http));
    config.media.sfu_secret = Some(TestSfu::SECRET.into());
    let bound = isoplane_signaling::server::bind(config).await.unwrap();
    let url = format!("ws://{}/v1/ws", bound.local_addr().unwrap());
    let shutdown = CancellationToken::new();
    tokio::spawn(bound.run(shutdown.clone()));
    (url, shutdown)
}

/// The SFU token of the client's next SFU plan.
async fn sfu_token(client: &mut Client) -> String {
    loop {
        match tokio::time::timeout(TIMEOUT, client.next_event()).await.unwrap().unwrap() {
            Event::Message(ServerMessage::Media { plan }) if plan.topology == Topology::Sfu => {
                return plan.sfu.expect("an SFU is configured").token;
            }
            Event::Closed(_) => panic!("signaling closed the connection"),
            _ => continue,
        }
    }
}

/// Sends an admin command and waits for it to be carried out.
async fn admin(client: &mut Client, id: u32, command: AdminCommand) {
    client.send(&ClientMessage::Admin { id, command }).await.unwrap();
    loop {
        match tokio::time::timeout(TIMEOUT, client.next_event()).await.unwrap().unwrap() {
            Event::Message(ServerMessage::AdminResult { id: answered, ok, error, .. }) if answered == id => {
                assert!(ok, "the command failed: {error:?}");
                return;
            }
            _ => continue,
        }
    }
}

async fn audio_over(listener: &WebrtcRsParticipant, avatar: u32, window: Duration) -> u64 {
    let before = listener.received(avatar, Kind::Audio).packets;
    tokio::time::sleep(window).await;
    listener.received(avatar, Kind::Audio).packets - before
}

#[tokio::test]
async fn an_admins_mute_and_kick_through_signaling_take_effect_at_the_sfu() {
    let sfu = TestSfu::start().await;
    let (url, _signaling) = start_signaling(&sfu).await;
    let mut ada = Client::join(&url, &join_token("ada", Role::Admin), "demo").await.unwrap();
    let mut bob = Client::join(&url, &join_token("bob", Role::Member), "demo").await.unwrap();
    let bob_avatar = bob.avatar();
    let ada_media = WebrtcRsParticipant::connect(sfu.http, &sfu_token(&mut ada).await, Publish::Nothing).await.unwrap();
    let bob_media =
        WebrtcRsParticipant::connect(sfu.http, &sfu_token(&mut bob).await, Publish::AudioAndVideo).await.unwrap();
    ada_media
        .wait_for("Bob's audio and video", TIMEOUT, |p| {
            p.has_media_from(bob_avatar, Kind::Audio) && p.has_media_from(bob_avatar, Kind::Video)
        })
        .await
        .expect("media flows through the SFU");

    // Muted by an admin: Bob's client keeps sending, the SFU forwards none of it.
    let mute = AdminCommand::Mute(MediaArgs { user: "bob".into(), audio: true, video: false, reason: "echo".into() });
    admin(&mut ada, 1, mute).await;
    ada_media
        .wait_for("Bob's microphone listed as muted", TIMEOUT, |p| {
            p.tracks().iter().any(|t| t.avatar == bob_avatar && t.source == Source::Microphone && t.muted)
        })
        .await
        .expect("the SFU applied the mute");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let sent_before = bob_media.sent(Kind::Audio).packets;
    assert_eq!(audio_over(&ada_media, bob_avatar, Duration::from_secs(2)).await, 0, "no audio from a muted user");
    assert!(bob_media.sent(Kind::Audio).packets > sent_before + 50, "Bob's client never stopped sending");
    let before = ada_media.received(bob_avatar, Kind::Video).packets;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(ada_media.received(bob_avatar, Kind::Video).packets > before + 10, "his video goes on");

    // Kicked: signaling ends Bob's SFU session; Ada's stream from him stops.
    admin(&mut ada, 2, AdminCommand::Kick(UserArgs::new("bob", "spam"))).await;
    bob_media
        .wait_for("the SFU removing Bob", TIMEOUT, |p| {
            p.problems().iter().any(|m| matches!(m, SfuMessage::Removed { .. }))
        })
        .await
        .expect("signaling ended Bob's SFU session");
    ada_media
        .wait_for("Bob's tracks gone", TIMEOUT, |p| p.tracks().iter().all(|t| t.avatar != bob_avatar))
        .await
        .expect("Bob's tracks leave Ada's list");
}
