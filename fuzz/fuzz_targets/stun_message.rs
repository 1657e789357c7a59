//! Fuzzes the STUN/TURN parser and the server core with arbitrary client bytes.
//!
//! Invariant checked: no input panics — not the message parser, the typed attribute
//! decoders, the integrity and fingerprint checks, the stream framer, nor the core
//! handling the bytes as a datagram from a client (with and without an allocation).

#![no_main]

use isoplane_turn::Config;
use isoplane_turn::core::{ClientAddr, Transport, TurnCore};
use isoplane_turn::proto::{ChannelData, Message, attr, frame_length, integrity};
use libfuzzer_sys::fuzz_target;
use std::time::Instant;

fuzz_target!(|data: &[u8]| {
    let _ = frame_length(data);
    let _ = ChannelData::parse(data);
    if let Ok(message) = Message::parse(data) {
        let tid = message.transaction_id;
        for a in message.attributes() {
            let _ = attr::decode_xor_address(a.value, &tid);
            let _ = attr::decode_u32(a.value);
            let _ = attr::decode_channel_number(a.value);
            let _ = attr::decode_error_code(a.value);
            let _ = attr::decode_text(a.value, 763);
        }
        let _ = message.unknown_required().count();
        let _ = integrity::verify_integrity(&message, b"fuzz key");
        let _ = integrity::verify_fingerprint(&message);
    }

    let config = Config {
        auth_secrets: vec!["fuzz".into()],
        static_users: vec!["dev:devpass".into()],
        // Dual-stack, so dual allocations and family refreshes are reached too.
        relay_ip_v6: Some(std::net::Ipv6Addr::LOCALHOST.into()),
        ..Config::default()
    };
    let now = Instant::now();
    let mut core = TurnCore::new(&config, [0; 32], now, 1_800_000_000);
    for transport in [Transport::Udp, Transport::Tcp] {
        let client = ClientAddr { transport, remote: std::net::SocketAddr::from(([127, 0, 0, 1], 5000)) };
        core.handle_client(now, client, data);
        while let Some(output) = core.poll_output() {
            if let isoplane_turn::core::Output::OpenRelay(request) = output {
                let primary = std::net::SocketAddr::new(request.ip, 40000);
                let additional = request.additional_ip.map(|ip| std::net::SocketAddr::new(ip, 40002));
                let bound: Vec<_> = std::iter::once(primary).chain(additional).collect();
                core.complete_allocation(now, request.allocation, &bound);
            }
        }
        core.handle_client(now, client, data);
        core.handle_timeout(now);
        while core.poll_output().is_some() {}
    }
});
