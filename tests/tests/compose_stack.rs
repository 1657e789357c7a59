//! docker-compose.yml, run natively (isoplane_tests::stack: the services start with the
//! compose file's commands, environment and config files, departures listed with their
//! reasons; PostgreSQL and S3 stand in for the `postgres` and `seaweedfs` services).
//!
//! Then, as a client: the `tools` one-shot has published the demo world; two people join
//! it and are told their media topology; above the SFU threshold the plan names the SFU,
//! whose session accepts the plan's token; TURN answers a STUN binding request; every
//! service answers /healthz.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed expectation is a failed test

use std::net::{SocketAddr, UdpSocket};
use std::process::Command;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use isoplane_auth::Role;
use isoplane_signaling::client::{Client, Event};
use isoplane_signaling::protocol::{MediaPlan, ServerMessage, Topology};
use isoplane_tests::stack::{Addresses, Stack, StackOptions, http_client, program};
use tokio_tungstenite::tungstenite::Message;

// ---- clients -----------------------------------------------------------------------------

/// The next media plan `client` receives (other events skipped).
async fn next_plan(client: &mut Client) -> MediaPlan {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match client.next_event_within(left).await.expect("a media plan within 10 s") {
            Event::Message(ServerMessage::Media { plan }) => return plan,
            Event::Closed(code) => panic!("signaling closed the connection ({code:?})"),
            _ => {}
        }
    }
}

/// Sends a STUN binding request over UDP; checks the answer's XOR-MAPPED-ADDRESS is
/// the request's source port.
fn check_stun_binding(server: SocketAddr) {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = socket.local_addr().unwrap().port();
    socket.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let transaction: [u8; 12] = *b"isoplane-cmp";
    let mut request = vec![0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42];
    request.extend_from_slice(&transaction);
    socket.send_to(&request, server).unwrap();
    let mut answer = [0u8; 512];
    let (length, _) = socket.recv_from(&mut answer).expect("a STUN answer within 5 s");
    let answer = &answer[..length];
    assert_eq!(&answer[..2], &[0x01, 0x01], "a Binding success response");
    assert_eq!(&answer[8..20], &transaction);
    let mut attributes = &answer[20..];
    while attributes.len() >= 4 {
        let kind = u16::from_be_bytes([attributes[0], attributes[1]]);
        let size = usize::from(u16::from_be_bytes([attributes[2], attributes[3]]));
        if kind == 0x0020 {
            assert_eq!(u16::from_be_bytes([attributes[6], attributes[7]]) ^ 0x2112, port);
            return;
        }
        attributes = &attributes[(4 + size.div_ceil(4) * 4).min(attributes.len())..];
    }
    panic!("no XOR-MAPPED-ADDRESS in {answer:?}");
}

// ---- the test ----------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_compose_stack_lets_a_client_join_get_its_media_plan_and_an_sfu_session() {
    let a = Addresses::free();
    let options = StackOptions {
        env: vec![(
            "ISOPLANE_OPEN_SFU_THRESHOLD",
            "1".into(),
            "two people in the lobby put it on the SFU (with the default, 12, it would take 13)",
        )],
        ..StackOptions::default()
    };
    // In the compose file's order: assets (healthy) → tools (done) → signaling; SFU and
    // TURN depend on nothing. `tools` runs at every `docker compose up`: the first run
    // published the demo world, later ones leave what is published alone.
    let mut stack = Stack::start(a.clone(), options).await;
    let again = stack.rerun_tools().await;
    assert!(again.contains("already published (version 1): nothing to do"), "{again}");
    for url in [a.assets, a.signaling, a.sfu_http, a.turn_http].map(|address| format!("http://{address}/healthz")) {
        let response = http_client().get(&url).send().await.unwrap();
        assert_eq!(response.status(), 200, "{url}");
    }

    // The first person: a token signed with the .env secret, as an identity provider would.
    let signaling_env = &stack.spec("signaling").environment;
    let secret = &signaling_env["ISOPLANE_SIGNALING_TOKEN_SECRET"];
    let workspace = &signaling_env["ISOPLANE_SIGNALING_WORKSPACE"];
    let ws = stack.ws_url();
    let mut ada = Client::join(&ws, &stack.token("ada", "Ada", Role::Member), "demo").await.unwrap();
    let plan = next_plan(&mut ada).await;
    println!("alone in the lobby: {:?}", plan.topology);
    assert_ne!(plan.topology, Topology::Sfu, "one person is below the threshold");
    let turn_servers: Vec<_> = plan.ice_servers.iter().filter(|s| s.credential.is_some()).collect();
    assert!(!turn_servers.is_empty(), "the plan hands out TURN credentials: {plan:?}");

    // The second person: an invitation token from the image's isoplane-token script.
    let output = Command::new(program("isoplane-token"))
        .args(["grace", "Grace"])
        .env("ISOPLANE_TOKEN_SECRET", secret)
        .env("ISOPLANE_WORKSPACE", workspace)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let invitation = String::from_utf8(output.stdout).unwrap();
    let mut grace = Client::join(&ws, invitation.trim(), "demo").await.unwrap();

    // Two people in the lobby, above the threshold: both are sent to the SFU.
    let mut plan = next_plan(&mut ada).await;
    while plan.topology != Topology::Sfu {
        plan = next_plan(&mut ada).await;
    }
    let access = plan.sfu.clone().expect("an SFU plan carries the SFU's URL and a token");
    assert_eq!(access.url, format!("ws://{}/v1/sfu", a.sfu_http));
    let (mut session, _) = tokio_tungstenite::connect_async(access.url.as_str()).await.unwrap();
    let join = isoplane_sfu::protocol::ClientMessage::Join { token: access.token.clone() };
    session.send(Message::text(serde_json::to_string(&join).unwrap())).await.unwrap();
    let answer = tokio::time::timeout(Duration::from_secs(10), session.next()).await.unwrap().unwrap().unwrap();
    let answer: isoplane_sfu::protocol::ServerMessage = serde_json::from_str(answer.to_text().unwrap()).unwrap();
    match answer {
        isoplane_sfu::protocol::ServerMessage::Joined { room, avatar, .. } => {
            assert_eq!(room, access.room);
            assert_eq!(avatar, ada.avatar());
        }
        other => panic!("the SFU refused the plan's token: {other:?}"),
    }
    println!("SFU session joined: room {}", access.room);
    while next_plan(&mut grace).await.topology != Topology::Sfu {}

    // Ada leaves the world: signaling ends her SFU session through the SFU's control API,
    // whatever her client would do.
    ada.send(&isoplane_signaling::protocol::ClientMessage::Leave).await.unwrap();
    let ended = loop {
        let message = tokio::time::timeout(Duration::from_secs(10), session.next()).await.unwrap();
        let Some(Ok(message)) = message else { break None };
        let Ok(text) = message.to_text() else { continue };
        if let Ok(message @ isoplane_sfu::protocol::ServerMessage::Removed { .. }) = serde_json::from_str(text) {
            break Some(message);
        }
    };
    assert!(ended.is_some(), "the SFU ended the session of an avatar that left the world");

    // Moderation on the stack's PostgreSQL: an admin token from the image's script kicks
    // Grace through the HTTP admin API, she is told, and the audit log has it.
    let output = Command::new(program("isoplane-token"))
        .args(["--admin", "root", "Root"])
        .env("ISOPLANE_TOKEN_SECRET", secret)
        .env("ISOPLANE_WORKSPACE", workspace)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let admin_token = String::from_utf8(output.stdout).unwrap();
    let admin = |body: &'static str| {
        http_client()
            .post(format!("http://{}/v1/admin/commands", a.signaling))
            .bearer_auth(admin_token.trim())
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let kicked = admin(r#"{"action": "kick", "user": "grace", "reason": "test"}"#).await.unwrap();
    assert_eq!(kicked.status(), 200, "{:?}", kicked.text().await);
    loop {
        match tokio::time::timeout(Duration::from_secs(10), grace.next_event()).await.unwrap().unwrap() {
            isoplane_signaling::client::Event::Message(isoplane_signaling::protocol::ServerMessage::Moderated {
                action,
                ..
            }) => {
                assert_eq!(action, isoplane_signaling::protocol::ModeratedAction::Kicked);
                break;
            }
            isoplane_signaling::client::Event::Closed(_) => panic!("closed before being told"),
            _ => continue,
        }
    }
    let audit: serde_json::Value =
        serde_json::from_str(&admin(r#"{"action": "list_audit"}"#).await.unwrap().text().await.unwrap()).unwrap();
    let newest = &audit["data"]["entries"][0];
    assert_eq!((newest["actor"].as_str(), newest["action"].as_str()), (Some("root"), Some("kick")), "{audit}");

    // TURN: a STUN binding request on its UDP port sees our own address.
    check_stun_binding(a.turn);

    stack.check_running();
}
