//! The configured SFU is probed: when it stops answering, the zones on it fall back to
//! peer-to-peer within seconds, and go back to it once it answers again. A real SFU and
//! a real signaling server over loopback.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{TestServer, expect_event, walk_into_the_room};
use isoplane_signaling::client::{Client, Event};
use isoplane_signaling::protocol::{ServerMessage, Topology};

/// Waits for `client`'s next plan with a topology `wanted` accepts; returns its SFU URL.
async fn expect_plan(client: &mut Client, what: &str, wanted: impl Fn(Topology) -> bool) -> Option<String> {
    let event = expect_event(
        client,
        what,
        |e| matches!(e, Event::Message(ServerMessage::Media { plan }) if wanted(plan.topology)),
    )
    .await;
    let Event::Message(ServerMessage::Media { plan }) = event else { unreachable!() };
    plan.sfu.map(|access| access.url)
}

fn is_mesh(topology: Topology) -> bool {
    matches!(topology, Topology::P2p | Topology::Turn)
}

async fn sfu_nodes_up(server: &TestServer) -> String {
    let (status, response) = server.get("/metrics").await;
    assert_eq!(status, 200);
    let line = response.lines().find(|line| line.starts_with("isoplane_signaling_sfu_nodes_up "));
    line.unwrap_or_else(|| panic!("no SFU gauge in {response}")).to_owned()
}

#[tokio::test]
async fn a_room_falls_back_to_peer_to_peer_when_its_sfu_dies_and_returns_when_it_is_back() {
    let mut server = TestServer::start(|_| {}).await;
    let sfu_url = format!("ws://{}/v1/sfu", server.sfu.http);
    // Three people in the room (SFU above 2).
    let mut clients = Vec::new();
    for user in ["a", "b", "c"] {
        let mut client = server.join(user).await;
        let mut seq = 0;
        walk_into_the_room(&mut client, &mut seq, 7.5).await;
        clients.push(client);
    }
    for client in &mut clients {
        let url = expect_plan(client, "the SFU plan", |t| t == Topology::Sfu).await;
        assert_eq!(url.as_deref(), Some(sfu_url.as_str()));
    }
    assert_eq!(sfu_nodes_up(&server).await, "isoplane_signaling_sfu_nodes_up 1");

    // The SFU dies: everyone still in the crowded room gets a mesh plan within seconds.
    server.sfu.stop().await;
    for client in &mut clients {
        assert_eq!(expect_plan(client, "a mesh plan once the SFU is down", is_mesh).await, None);
    }
    assert_eq!(sfu_nodes_up(&server).await, "isoplane_signaling_sfu_nodes_up 0");

    // An SFU answers on the same address again: the room goes back to it.
    server.sfu.restart().await;
    for client in &mut clients {
        let url = expect_plan(client, "the SFU plan once the SFU is back", |t| t == Topology::Sfu).await;
        assert_eq!(url.as_deref(), Some(sfu_url.as_str()));
    }
    assert_eq!(sfu_nodes_up(&server).await, "isoplane_signaling_sfu_nodes_up 1");
}
