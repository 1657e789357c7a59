//! docker-compose.yml, run natively: the Isoplane services start with exactly the
//! commands, environment and config files the compose file gives them (values from
//! .env.example), except for the overrides listed in `overrides()` with their reasons.
//! PostgreSQL is this machine's (`ISOPLANE_TEST_POSTGRES_URL`, a schema of its own) and
//! S3 an in-process s3s-fs server with the .env.example keys, standing in for the
//! `postgres` and `seaweedfs` services; `s3-init`'s job (the bucket) is done here.
//!
//! Then, as a client: the `tools` one-shot has published the demo world; two people join
//! it and are told their media topology; above the SFU threshold the plan names the SFU,
//! whose session accepts the plan's token; TURN answers a STUN binding request; every
//! service answers /healthz.
//!
//! The services are the real binaries from the target directory (`cargo build
//! --workspace --bins`, which `cargo test --workspace` does first).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed expectation is a failed test

use isoplane_metadata::testing::TestSchema;
use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use isoplane_auth::{JoinClaims, Role, TokenKey};
use isoplane_signaling::client::{Client, Event};
use isoplane_signaling::protocol::{MediaPlan, ServerMessage, Topology};
use isoplane_signaling::server::unix_now;
use serde_yaml_ng::Value;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

/// The services started, in the compose file's dependency order.
const SERVICES: [&str; 5] = ["assets", "tools", "signaling", "sfu", "turn"];

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

// ---- the compose file --------------------------------------------------------------------

/// `KEY=VALUE` lines of an env file (comments and blank lines skipped).
fn read_env_file(path: &Path) -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut vars = BTreeMap::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
        let (key, value) = line.split_once('=').unwrap_or_else(|| panic!("{}: `{line}`", path.display()));
        vars.insert(key.trim().to_owned(), value.trim().trim_matches('"').to_owned());
    }
    vars
}

/// Compose's interpolation: `$$`, `$VAR`, `${VAR}`, `${VAR:-default}`, `${VAR-default}`,
/// `${VAR:?error}`, `${VAR?error}`.
fn interpolate(text: &str, vars: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        rest = &rest[at + 1..];
        if let Some(after) = rest.strip_prefix('$') {
            out.push('$');
            rest = after;
        } else if let Some(after) = rest.strip_prefix('{') {
            let end = after.find('}').unwrap_or_else(|| panic!("unclosed ${{ in `{text}`"));
            let expression = &after[..end];
            rest = &after[end + 1..];
            let name_end = expression.find([':', '-', '?']).unwrap_or(expression.len());
            let (name, modifier) = expression.split_at(name_end);
            let value = vars.get(name).filter(|v| !v.is_empty() || !modifier.starts_with(':'));
            let value = match (value, modifier.trim_start_matches(':').chars().next()) {
                (Some(value), _) => value.clone(),
                (None, Some('-')) => modifier.trim_start_matches(':')[1..].to_owned(),
                (None, Some('?')) => panic!("compose would refuse to start: {name}: {}", &modifier[2..]),
                (None, _) => String::new(),
            };
            out.push_str(&value);
        } else {
            let end = rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(rest.len());
            out.push_str(vars.get(&rest[..end]).map_or("", String::as_str));
            rest = &rest[end..];
        }
    }
    out.push_str(rest);
    out
}

/// What the compose file gives one service.
#[derive(Debug, Clone)]
struct ServiceSpec {
    command: Vec<String>,
    environment: BTreeMap<String, String>,
    /// Config files: (path in the container, content).
    configs: Vec<(String, String)>,
}

fn service_spec(compose: &Value, name: &str, vars: &BTreeMap<String, String>) -> ServiceSpec {
    let service = &compose["services"][name];
    assert!(service.is_mapping(), "docker-compose.yml has no service `{name}`");
    let text = |value: &Value| interpolate(value.as_str().unwrap_or_else(|| panic!("{name}: {value:?}")), vars);
    let command = service["command"]
        .as_sequence()
        .unwrap_or_else(|| panic!("{name}: command must be a list"))
        .iter()
        .map(text)
        .collect();
    let environment = service["environment"]
        .as_mapping()
        .unwrap_or_else(|| panic!("{name}: environment must be a map"))
        .iter()
        .map(|(key, value)| {
            let value = match value {
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                other => text(other),
            };
            (key.as_str().unwrap().to_owned(), value)
        })
        .collect();
    let configs = service["configs"]
        .as_sequence()
        .into_iter()
        .flatten()
        .map(|entry| {
            let source = entry["source"].as_str().unwrap();
            let content = compose["configs"][source]["content"].as_str().expect("configs with inline content");
            (entry["target"].as_str().unwrap().to_owned(), interpolate(content, vars))
        })
        .collect();
    ServiceSpec { command, environment, configs }
}

/// One place where the test departs from the compose file, and why.
#[derive(Debug)]
struct Override {
    service: &'static str,
    variable: &'static str,
    value: String,
    why: &'static str,
}

/// Addresses the test gives the services instead of the compose file's.
#[derive(Debug, Clone)]
struct Addresses {
    assets: SocketAddr,
    signaling: SocketAddr,
    sfu_http: SocketAddr,
    sfu_udp: SocketAddr,
    sfu_tcp: SocketAddr,
    turn: SocketAddr,
    turn_http: SocketAddr,
}

/// Every departure from the compose file's environment. Anything not listed here runs
/// as written (secrets, workspace, TURN/STUN URLs handed to clients, realm, relay port
/// range, log filters, signaling.toml and turn.toml).
fn overrides(a: &Addresses, database_url: &str, s3: SocketAddr) -> Vec<Override> {
    const LOOPBACK: &str = "tests send traffic to loopback only, on ephemeral ports (not the container's fixed ones)";
    const DNS: &str = "compose service names do not resolve outside Docker";
    let o = |service, variable, value: String, why| Override { service, variable, value, why };
    vec![
        o("assets", "ISOPLANE_ASSETS_LISTEN", a.assets.to_string(), LOOPBACK),
        o(
            "assets",
            "ISOPLANE_ASSETS_DATABASE_URL",
            database_url.to_owned(),
            "this machine's PostgreSQL, in a schema of this run, stands in for the `postgres` service",
        ),
        o(
            "assets",
            "ISOPLANE_ASSETS_S3_ENDPOINT",
            format!("http://{s3}"),
            "an in-process S3 server (s3s-fs, same bucket and keys) stands in for the `seaweedfs` service",
        ),
        o("tools", "ISOPLANE_ASSETS_URL", format!("http://{}", a.assets), DNS),
        o("signaling", "ISOPLANE_SIGNALING_LISTEN", a.signaling.to_string(), LOOPBACK),
        o("signaling", "ISOPLANE_SIGNALING_ASSET_SERVER", format!("http://{}", a.assets), DNS),
        o(
            "signaling",
            "ISOPLANE_SIGNALING_DATABASE_URL",
            database_url.to_owned(),
            "this machine's PostgreSQL, in the schema the asset server uses in this run",
        ),
        o(
            "signaling",
            "ISOPLANE_SIGNALING_SFU_URL",
            format!("ws://{}/v1/sfu", a.sfu_http),
            "no reverse proxy (Caddy, TLS) in the test: clients reach the SFU's HTTP port directly",
        ),
        o("signaling", "ISOPLANE_SIGNALING_SFU_CONTROL_URL", format!("http://{}", a.sfu_http), DNS),
        o("sfu", "ISOPLANE_SFU_LISTEN_HTTP", a.sfu_http.to_string(), LOOPBACK),
        o("sfu", "ISOPLANE_SFU_LISTEN_UDP", a.sfu_udp.to_string(), LOOPBACK),
        o("sfu", "ISOPLANE_SFU_LISTEN_TCP", a.sfu_tcp.to_string(), LOOPBACK),
        o("sfu", "ISOPLANE_SFU_PUBLIC_IP", "127.0.0.1".into(), "the .env.example address is not this machine's"),
        o("turn", "ISOPLANE_TURN_LISTEN_UDP", a.turn.to_string(), LOOPBACK),
        o("turn", "ISOPLANE_TURN_LISTEN_TCP", a.turn.to_string(), LOOPBACK),
        o("turn", "ISOPLANE_TURN_LISTEN_HTTP", a.turn_http.to_string(), LOOPBACK),
        o(
            "turn",
            "ISOPLANE_TURN_RELAY_IP",
            "127.0.0.1".into(),
            "the container's fixed address on the compose network does not exist here",
        ),
    ]
}

/// Variables of .env.example the test changes, and why.
const ENV_FILE_OVERRIDES: [(&str, &str, &str); 1] = [(
    "ISOPLANE_OPEN_SFU_THRESHOLD",
    "1",
    "two people in the lobby put it on the SFU (with the default, 12, it would take 13)",
)];

/// Paths in the image (Dockerfile's COPY lines) and where they are in this checkout.
const IMAGE_PATHS: [(&str, &str); 1] = [("/usr/local/share/isoplane/worlds/demo", "worlds/demo")];

// ---- processes ---------------------------------------------------------------------------

/// A service running as a child process; killed when dropped.
struct Service {
    name: &'static str,
    child: Child,
    log: PathBuf,
}

impl Service {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Panics with the service's log if it has exited.
    fn check_running(&mut self) {
        if let Some(status) = self.child.try_wait().unwrap() {
            panic!("{} exited ({status}):\n{}", self.name, self.log());
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Where a program of a compose `command` is here: a service binary in the target
/// directory next to this test's executable, or an admin script in deploy/bin/.
fn program(name: &str) -> PathBuf {
    let target = std::env::current_exe().unwrap().parent().unwrap().parent().unwrap().to_owned();
    let built = target.join(name);
    if built.exists() {
        return built;
    }
    let script = repo().join("deploy/bin").join(name);
    if script.exists() {
        return script;
    }
    panic!(
        "{name} not found in {}: run `cargo build --workspace --bins` first (`cargo test --workspace` builds it)",
        target.display()
    );
}

/// Starts `name` as the compose file says, with `overrides` applied and its config files
/// written under `dir`.
fn start(name: &'static str, spec: &ServiceSpec, overrides: &[Override], dir: &Path) -> Service {
    let mut environment = spec.environment.clone();
    for o in overrides.iter().filter(|o| o.service == name) {
        let old = environment.insert(o.variable.to_owned(), o.value.clone());
        assert!(old.is_some(), "{name}: the compose file no longer sets {}: update the overrides", o.variable);
    }
    let mut args: Vec<String> = spec.command[1..].to_vec();
    for (target, content) in &spec.configs {
        let file = dir.join(format!("{name}-{}", Path::new(target).file_name().unwrap().to_str().unwrap()));
        std::fs::write(&file, content).unwrap();
        for arg in args.iter_mut().filter(|a| *a == target) {
            *arg = file.to_str().unwrap().to_owned();
        }
    }
    for arg in &mut args {
        for (image, here) in IMAGE_PATHS {
            if let Some(rest) = arg.strip_prefix(image) {
                *arg = format!("{}{rest}", repo().join(here).display());
            }
        }
    }
    let log = dir.join(format!("{name}.log"));
    let out = std::fs::File::create(&log).unwrap();
    // Only the compose environment, as in the container; PATH reaches the admin scripts
    // (in the image they are in /usr/local/bin) and curl/openssl.
    let path = format!("{}:{}", repo().join("deploy/bin").display(), std::env::var("PATH").unwrap_or_default());
    let child = Command::new(program(&spec.command[0]))
        .args(&args)
        .env_clear()
        .envs(&environment)
        .env("PATH", path)
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap_or_else(|e| panic!("starting {name}: {e}"));
    Service { name, child, log }
}

/// Waits until `url` answers 200, or panics with the service's log.
async fn wait_ready(service: &mut Service, url: &str) {
    let http = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(2)).build().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        service.check_running();
        if let Ok(response) = http.get(url).send().await
            && response.status() == 200
        {
            return;
        }
        assert!(Instant::now() < deadline, "{} not ready at {url} after 30 s:\n{}", service.name, service.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits for a one-shot service to exit successfully; returns its log.
async fn run_to_end(mut service: Service) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = service.child.try_wait().unwrap() {
            assert!(status.success(), "{} failed ({status}):\n{}", service.name, service.log());
            return service.log();
        }
        assert!(Instant::now() < deadline, "{} still running after 60 s:\n{}", service.name, service.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn free_tcp() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
}

fn free_udp() -> SocketAddr {
    UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
}

/// A port free for both UDP and TCP (TURN listens on both, like 3478).
fn free_both() -> SocketAddr {
    loop {
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let address = udp.local_addr().unwrap();
        if TcpListener::bind(address).is_ok() {
            return address;
        }
    }
}

// ---- PostgreSQL and S3 -------------------------------------------------------------------

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
    let compose_text = std::fs::read_to_string(repo().join("docker-compose.yml")).unwrap();
    let mut compose: Value = serde_yaml_ng::from_str(&compose_text).unwrap();
    compose.apply_merge().unwrap(); // the `<<: *isoplane` anchors
    let mut vars = read_env_file(&repo().join(".env.example"));
    for (key, value, why) in ENV_FILE_OVERRIDES {
        assert!(vars.insert(key.to_owned(), value.to_owned()).is_some(), ".env.example no longer has {key}");
        println!("override .env {key}={value}: {why}");
    }
    let specs: BTreeMap<&str, ServiceSpec> =
        SERVICES.iter().map(|name| (*name, service_spec(&compose, name, &vars))).collect();

    // What the compose stack's storage services would provide.
    let dir = tempfile::tempdir().unwrap();
    let schema = TestSchema::create("isoplane_compose_test").await;
    let assets_env = &specs["assets"].environment;
    let stop_s3 = CancellationToken::new();
    let s3 = isoplane_assets::testing::serve_s3(
        &dir.path().join("s3"),
        &assets_env["ISOPLANE_ASSETS_S3_BUCKET"],
        &assets_env["ISOPLANE_ASSETS_S3_ACCESS_KEY_ID"],
        &assets_env["ISOPLANE_ASSETS_S3_SECRET_ACCESS_KEY"],
        stop_s3.clone(),
    )
    .await;

    let a = Addresses {
        assets: free_tcp(),
        signaling: free_tcp(),
        sfu_http: free_tcp(),
        sfu_udp: free_udp(),
        sfu_tcp: free_tcp(),
        turn: free_both(),
        turn_http: free_tcp(),
    };
    let overrides = overrides(&a, &schema.url, s3);
    for o in &overrides {
        println!("override {} {}={}: {}", o.service, o.variable, o.value, o.why);
    }

    // In the compose file's order: assets (healthy) → tools (done) → signaling; SFU and
    // TURN depend on nothing.
    let mut assets = start("assets", &specs["assets"], &overrides, dir.path());
    wait_ready(&mut assets, &format!("http://{}/readyz", a.assets)).await;
    // `tools` runs at every `docker compose up`: the first run publishes the demo world,
    // later ones leave what is published alone.
    let first = run_to_end(start("tools", &specs["tools"], &overrides, dir.path())).await;
    assert!(first.contains("world demo published"), "{first}");
    let again = run_to_end(start("tools", &specs["tools"], &overrides, dir.path())).await;
    assert!(again.contains("already published (version 1): nothing to do"), "{again}");
    let mut signaling = start("signaling", &specs["signaling"], &overrides, dir.path());
    let mut sfu = start("sfu", &specs["sfu"], &overrides, dir.path());
    let mut turn = start("turn", &specs["turn"], &overrides, dir.path());
    wait_ready(&mut signaling, &format!("http://{}/readyz", a.signaling)).await;
    wait_ready(&mut sfu, &format!("http://{}/readyz", a.sfu_http)).await;
    wait_ready(&mut turn, &format!("http://{}/readyz", a.turn_http)).await;
    for url in [a.assets, a.signaling, a.sfu_http, a.turn_http].map(|address| format!("http://{address}/healthz")) {
        let response = reqwest::Client::builder().no_proxy().build().unwrap().get(&url).send().await.unwrap();
        assert_eq!(response.status(), 200, "{url}");
    }

    // The first person: a token signed with the .env secret, as an identity provider would.
    let signaling_env = &specs["signaling"].environment;
    let secret = &signaling_env["ISOPLANE_SIGNALING_TOKEN_SECRET"];
    let workspace = &signaling_env["ISOPLANE_SIGNALING_WORKSPACE"];
    let claims = JoinClaims {
        sub: "ada".into(),
        name: "Ada".into(),
        workspace: workspace.clone(),
        role: Role::Member,
        exp: unix_now() + 600,
        iat: Some(unix_now()),
        nbf: None,
    };
    let ws = format!("ws://{}/v1/ws", a.signaling);
    let mut ada = Client::join(&ws, &TokenKey::new(secret.as_bytes()).sign(&claims), "demo").await.unwrap();
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
        reqwest::Client::builder()
            .no_proxy()
            .build()
            .unwrap()
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

    for service in [&mut assets, &mut signaling, &mut sfu, &mut turn] {
        service.check_running();
    }
    stop_s3.cancel();
}
