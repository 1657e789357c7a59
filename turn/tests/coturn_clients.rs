//! Conformance with coturn's own clients: `turnutils_stunclient`, `turnutils_uclient`
//! (UDP, TCP and TLS with a self-signed certificate made by `openssl`, channels and Send indications, client-to-peer against
//! `turnutils_peer` and client-to-client with -y, REST secret and static user, IPv6 and dual
//! allocations, RFC 6062 TCP allocations) against
//! our server on 127.0.0.1 ephemeral ports. Every run must report 0 lost packets and
//! every message sent received.
//!
//! The tools come from Debian's `coturn` and `openssl` packages (`./test.sh` installs
//! them). If one is missing, each test fails at once with one line naming what to install:
//! none passes without having run. All traffic stays on 127.0.0.1, which is why these servers use
//! the development allow-list for 127.0.0.1/32 (the last test shows the default refuses).

// Test harness code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{SECRET, TestServer, http_get, loopback_config, metric, self_signed_cert, start, with_tls};
use isoplane_turn::Config;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const MESSAGES: u32 = 40;
const CLIENTS: u32 = 4;

/// The programs these tests run.
const TOOLS: [&str; 4] = ["turnutils_stunclient", "turnutils_uclient", "turnutils_peer", "openssl"];

/// `name` on the PATH, if it is there.
fn find(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

fn missing_tools() -> Vec<&'static str> {
    TOOLS.into_iter().filter(|name| find(name).is_none()).collect()
}

/// Fails the test in one line when a tool is missing.
fn require_tools() {
    let missing = missing_tools();
    assert!(
        missing.is_empty(),
        "{} not installed: install Debian's coturn and openssl packages (`./test.sh` installs them)",
        missing.join(", ")
    );
}

/// Starts our server for a conformance test, once the tools are known to be here.
async fn start_with_tools(config: Config) -> TestServer {
    require_tools();
    start(config).await
}

/// The same with a TURNS listener on a self-signed certificate made in `dir`.
async fn start_tls_with_tools(dir: &std::path::Path) -> TestServer {
    require_tools();
    let (cert, key) = self_signed_cert(dir);
    start(with_tls(loopback_config(true), cert, key)).await
}

fn tool(name: &str) -> PathBuf {
    find(name).unwrap_or_else(|| panic!("`{name}` is not installed: install Debian's coturn (`./test.sh` installs it)"))
}

/// A free UDP port on `ip` for turnutils_peer (bound then released).
fn free_udp_port(ip: &str) -> u16 {
    let socket = std::net::UdpSocket::bind((ip, 0)).unwrap();
    socket.local_addr().unwrap().port()
}

/// `turnutils_peer` echoing on 127.0.0.1 (or `ip`); killed on drop.
struct Peer {
    child: Child,
    ip: &'static str,
    port: u16,
}

impl Peer {
    fn start() -> Peer {
        Peer::start_on("127.0.0.1")
    }

    fn start_on(ip: &'static str) -> Peer {
        let port = free_udp_port(ip);
        let child = Command::new(tool("turnutils_peer"))
            .args(["-L", ip, "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start turnutils_peer");
        std::thread::sleep(Duration::from_millis(300));
        Peer { child, ip, port }
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What `turnutils_uclient` reported.
#[derive(Debug)]
struct UclientReport {
    sent: u64,
    received: u64,
    lost: u64,
    output: String,
}

fn number_after(line: &str, key: &str) -> Option<u64> {
    let rest = &line[line.find(key)? + key.len()..];
    rest.chars().take_while(char::is_ascii_digit).collect::<String>().parse().ok()
}

/// Runs uclient to completion (blocking; call from spawn_blocking) and parses its summary.
fn run_uclient(args: &[String]) -> UclientReport {
    let mut child = Command::new(tool("turnutils_uclient"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start turnutils_uclient");
    // A hung client must fail the test, not hang CI.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while child.try_wait().expect("wait").is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().expect("uclient output");
    let output = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let totals = output.lines().rev().find(|l| l.contains("tot_send_msgs=") && !l.contains("msz="));
    let lost = output.lines().rev().find(|l| l.contains("Total lost packets"));
    UclientReport {
        sent: totals.and_then(|l| number_after(l, "tot_send_msgs=")).unwrap_or(0),
        received: totals.and_then(|l| number_after(l, "tot_recv_msgs=")).unwrap_or(0),
        lost: lost.and_then(|l| number_after(l, "Total lost packets ")).unwrap_or(u64::MAX),
        output,
    }
}

fn uclient_args(server_port: u16, flags: &str, peer: Option<&Peer>) -> Vec<String> {
    let mut args: Vec<String> = flags.split_whitespace().map(String::from).collect();
    args.extend(["-n", &MESSAGES.to_string(), "-m", &CLIENTS.to_string(), "-z", "5"].map(String::from));
    // An IPv4 relay unless the flags ask for IPv6 (-x) or both (-Z).
    if !args.iter().any(|a| a == "-x" || a == "-Z") {
        args.push("-X".into());
    }
    args.extend(["-p".to_string(), server_port.to_string()]);
    if let Some(peer) = peer {
        args.extend(["-e".to_string(), peer.ip.to_string(), "-r".to_string(), peer.port.to_string()]);
    }
    args.push("127.0.0.1".into());
    args
}

/// Which of our listeners a scenario uses.
#[derive(Debug, Clone, Copy)]
enum Via {
    Udp,
    Tcp,
    Tls,
}

/// Runs one uclient scenario and checks it relayed everything with no loss.
async fn relay_scenario(server: &TestServer, via: Via, flags: &str, to_peer: bool) {
    relay_scenario_to(server, via, flags, to_peer.then(Peer::start)).await;
}

/// The same with a peer of the test's choosing (or none: client to client).
async fn relay_scenario_to(server: &TestServer, via: Via, flags: &str, peer: Option<Peer>) {
    let port = match via {
        Via::Udp => server.udp.port(),
        Via::Tcp => server.tcp.port(),
        Via::Tls => server.tls.expect("a TLS listener").port(),
    };
    let args = uclient_args(port, flags, peer.as_ref());
    let shown = args.join(" ");
    let report = tokio::task::spawn_blocking(move || run_uclient(&args)).await.unwrap();
    drop(peer);
    let expected = u64::from(MESSAGES * CLIENTS);
    assert_eq!(report.lost, 0, "turnutils_uclient {shown} lost packets:\n{}", report.output);
    assert_eq!(report.sent, expected, "turnutils_uclient {shown} sent:\n{}", report.output);
    assert_eq!(report.received, expected, "turnutils_uclient {shown} received:\n{}", report.output);
    let (_, metrics) = http_get(server.http, "/metrics").await;
    if shown.contains("-T") {
        // RFC 6062: bytes over piped TCP connections (uclient's messages are 100 bytes).
        assert!(metric(&metrics, "turn_tcp_relayed_bytes_to_peers_total") >= expected * 100);
        assert!(metric(&metrics, "turn_tcp_relayed_bytes_to_clients_total") >= expected * 100);
        assert!(metric(&metrics, "turn_tcp_peer_connections_total") >= u64::from(2 * CLIENTS));
    } else {
        assert!(metric(&metrics, "turn_relayed_packets_to_peers_total") >= expected);
        assert!(metric(&metrics, "turn_relayed_packets_to_clients_total") >= expected);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stunclient_learns_its_reflexive_address() {
    let server = start_with_tools(loopback_config(true)).await;
    let port = server.udp.port().to_string();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(tool("turnutils_stunclient")).args(["-p", &port, "127.0.0.1"]).output().expect("stunclient")
    })
    .await
    .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("UDP reflexive addr: 127.0.0.1:"), "stunclient output:\n{text}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_channels_to_peer_with_rest_secret() {
    let server = start_with_tools(loopback_config(true)).await;
    relay_scenario(&server, Via::Udp, &format!("-c -W {SECRET} -u alice"), true).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_send_indications_to_peer_with_static_user() {
    let server = start_with_tools(loopback_config(true)).await;
    relay_scenario(&server, Via::Udp, "-c -s -u dev -w devpass", true).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_client_to_client_channels_with_static_user() {
    let server = start_with_tools(loopback_config(true)).await;
    relay_scenario(&server, Via::Udp, "-c -y -u dev -w devpass", false).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_client_to_client_send_indications_with_rest_secret() {
    let server = start_with_tools(loopback_config(true)).await;
    relay_scenario(&server, Via::Udp, &format!("-c -y -s -W {SECRET} -u bob"), false).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_channels_to_peer_with_rest_secret() {
    let server = start_with_tools(loopback_config(true)).await;
    relay_scenario(&server, Via::Tcp, &format!("-t -c -W {SECRET} -u carol"), true).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_send_indications_to_peer_with_static_user() {
    let server = start_with_tools(loopback_config(true)).await;
    relay_scenario(&server, Via::Tcp, "-t -c -s -u dev -w devpass", true).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_client_to_client_channels_with_rest_secret() {
    let server = start_with_tools(loopback_config(true)).await;
    relay_scenario(&server, Via::Tcp, &format!("-t -c -y -W {SECRET} -u dave"), false).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_rtp_and_rtcp_pairs_with_even_port_reservations() {
    // Without -c, uclient allocates an RTP relay with EVEN-PORT (R bit) and an RTCP one
    // with the RESERVATION-TOKEN it got back.
    let server = start_with_tools(loopback_config(true)).await;
    // (Before reservations existed, the RTCP Allocate got 508 and nothing was relayed.)
    relay_scenario(&server, Via::Udp, &format!("-W {SECRET} -u grace"), true).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_client_to_client_channels_with_static_user() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_tls_with_tools(dir.path()).await;
    relay_scenario(&server, Via::Tls, "-t -S -c -y -u dev -w devpass", false).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_send_indications_to_peer_with_rest_secret() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_tls_with_tools(dir.path()).await;
    relay_scenario(&server, Via::Tls, &format!("-t -S -c -s -W {SECRET} -u frank"), true).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_on_a_port_shared_with_https_relays_coturns_client() {
    // coturn's client offers no ALPN, as browsers' `turns:` do: it must reach TURN, not
    // the HTTPS backend (here a port nothing listens on, so a wrong turn would show).
    let dir = tempfile::tempdir().unwrap();
    require_tools();
    let (cert, key) = self_signed_cert(dir.path());
    let config = Config { tls_https_backend: Some("127.0.0.1:9".into()), ..with_tls(loopback_config(true), cert, key) };
    let server = start(config).await;
    relay_scenario(&server, Via::Tls, &format!("-t -S -c -W {SECRET} -u grace"), true).await;
    server.stop().await;
}

/// A server that relays IPv6 too, on ::1, to peers on both loopbacks.
fn dual_stack_config() -> Config {
    let mut config = loopback_config(true);
    config.relay_ip_v6 = Some("::1".parse().unwrap());
    config.allowed_peers.push("::1/128".parse().unwrap());
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipv6_relay_addresses_relay_to_an_ipv6_peer() {
    let server = start_with_tools(dual_stack_config()).await;
    let flags = format!("-x -W {SECRET} -u ivy");
    relay_scenario_to(&server, Via::Udp, &flags, Some(Peer::start_on("::1"))).await;
    relay_scenario_to(&server, Via::Tcp, &format!("-t {flags}"), Some(Peer::start_on("::1"))).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dual_allocations_relay_to_peers_of_either_family() {
    // coturn's client asks with the drafts' attribute number (0x8032), and refreshes its
    // allocations naming one family or the other at random.
    let server = start_with_tools(dual_stack_config()).await;
    let flags = format!("-Z -W {SECRET} -u dora");
    relay_scenario_to(&server, Via::Udp, &flags, Some(Peer::start_on("::1"))).await;
    relay_scenario_to(&server, Via::Udp, &flags, Some(Peer::start_on("127.0.0.1"))).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc6062_tcp_allocations_connect_client_to_client() {
    // -T: TCP allocations; -y: each client Connects to the other's relayed address, which
    // gets a ConnectionAttempt, and both bind data connections (over TCP, then TLS).
    let dir = tempfile::tempdir().unwrap();
    let server = start_tls_with_tools(dir.path()).await;
    relay_scenario(&server, Via::Tcp, &format!("-t -T -y -W {SECRET} -u tess"), false).await;
    relay_scenario(&server, Via::Tls, "-t -S -T -y -u dev -w devpass", false).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_policy_refuses_loopback_peer_for_uclient() {
    // Without the development allow-list, relaying to 127.0.0.1 is refused with 403, so
    // uclient gets nothing through (and nothing is sent by the relay).
    let server = start_with_tools(loopback_config(false)).await;
    let peer = Peer::start();
    let args = uclient_args(server.udp.port(), &format!("-c -W {SECRET} -u eve"), Some(&peer));
    let report = tokio::task::spawn_blocking(move || run_uclient(&args)).await.unwrap();
    drop(peer);
    assert!(report.output.contains("403"), "expected a 403 in:\n{}", report.output);
    assert_eq!(report.received, 0);
    let (_, metrics) = http_get(server.http, "/metrics").await;
    assert_eq!(metric(&metrics, "turn_relayed_packets_to_peers_total"), 0);
    assert!(metric(&metrics, "turn_refusals_total{reason=\"forbidden_peer\"}") > 0);
    server.stop().await;
}
