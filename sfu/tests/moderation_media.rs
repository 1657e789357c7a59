//! What moderation and limits do to media, seen by the people in the room: a muted
//! publisher's audio stops at the SFU (whatever its client keeps sending) and comes back
//! when unmuted; a publisher far over the bitrate limit is dropped while everyone else
//! goes on. webrtc-rs clients on loopback, the control API over HTTP.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed expectation is a failed test

mod common;

use std::time::Duration;

use common::{Kind, Publish, TestSfu, WebrtcRsParticipant, unix_now};
use isoplane_auth::SfuControlClaims;
use isoplane_sfu::protocol::{AvatarId, ServerMessage, Source};

const TIMEOUT: Duration = Duration::from_secs(30);
const A: AvatarId = 201;
const C: AvatarId = 203;

async fn join(sfu: &TestSfu, avatar: AvatarId, publish: Publish) -> WebrtcRsParticipant {
    let token = sfu.token("w/room", avatar, publish == Publish::AudioAndVideo);
    WebrtcRsParticipant::connect(sfu.http, &token, publish)
        .await
        .unwrap_or_else(|e| panic!("avatar {avatar} joins: {e}"))
}

async fn patch(sfu: &TestSfu, user: &str, body: serde_json::Value) {
    let token = sfu.key.sign(&SfuControlClaims::new(unix_now() + 60));
    let response = reqwest::Client::new()
        .patch(format!("http://{}/v1/rooms/w%2Froom/participants/{user}", sfu.http))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .expect("the control API answers");
    assert_eq!(response.status(), reqwest::StatusCode::NO_CONTENT);
}

/// Packets of `kind` from A that C receives over `window`.
async fn received_over(listener: &WebrtcRsParticipant, kind: Kind, window: Duration) -> u64 {
    let before = listener.received(A, kind).packets;
    tokio::time::sleep(window).await;
    listener.received(A, kind).packets - before
}

#[tokio::test]
async fn a_muted_publisher_is_silent_for_everyone_until_unmuted() {
    let sfu = TestSfu::start().await;
    let ada = join(&sfu, A, Publish::AudioAndVideo).await;
    let cy = join(&sfu, C, Publish::Nothing).await;
    cy.wait_for("Ada's audio and video", TIMEOUT, |p| {
        p.has_media_from(A, Kind::Audio) && p.has_media_from(A, Kind::Video)
    })
    .await
    .expect("media flows");

    patch(&sfu, &format!("user-{A}"), serde_json::json!({"audio_muted": true})).await;
    cy.wait_for("Ada's microphone listed as muted", TIMEOUT, |p| {
        p.tracks().iter().any(|t| t.avatar == A && t.source == Source::Microphone && t.muted)
    })
    .await
    .expect("the track list says muted");
    // Ada's client never stopped sending: the SFU withholds it.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let window = Duration::from_secs(2);
    assert_eq!(received_over(&cy, Kind::Audio, window).await, 0, "no audio from a muted publisher");
    assert!(ada.sent(Kind::Audio).packets > 0);
    assert!(received_over(&cy, Kind::Video, window).await > 20, "video goes on");

    patch(&sfu, &format!("user-{A}"), serde_json::json!({"audio_muted": false})).await;
    cy.wait_for("Ada's audio again", TIMEOUT, |p| p.tracks().iter().all(|t| !t.muted)).await.expect("unmuted");
    assert!(received_over(&cy, Kind::Audio, window).await > 50, "audio is back (50 packets a second)");
}

#[tokio::test]
async fn a_publisher_far_over_the_bitrate_limit_is_dropped_and_nobody_else_notices() {
    let mut config = isoplane_sfu::Config::for_tests(TestSfu::SECRET);
    // Ada's synthetic audio and video are far above twice this.
    config.limits.publisher_bitrate_bps = 10_000;
    let sfu = TestSfu::start_with(config).await;
    let ada = join(&sfu, A, Publish::AudioAndVideo).await;
    let cy = join(&sfu, C, Publish::Nothing).await;
    // It takes a few seconds over the limit: Cy hears Ada meanwhile.
    cy.wait_for("Ada's audio", TIMEOUT, |p| p.has_media_from(A, Kind::Audio)).await.expect("media flows first");
    ada.wait_for("removal", TIMEOUT, |p| p.problems().iter().any(|m| matches!(m, ServerMessage::Removed { .. })))
        .await
        .expect("the SFU drops the flooding publisher");
    // Cy, who only listens, is still in and is offered the removal of Ada's tracks.
    cy.wait_for("Ada's tracks gone", TIMEOUT, |p| p.tracks().iter().all(|t| t.avatar != A))
        .await
        .expect("renegotiated");
    assert!(cy.problems().is_empty(), "nothing happened to Cy: {:?}", cy.problems());
    let late = join(&sfu, 204, Publish::Nothing).await;
    assert!(late.problems().is_empty(), "the room still admits people");
}
