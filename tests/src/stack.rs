//! docker-compose.yml, run natively: the Isoplane services start as child processes with
//! exactly the commands, environment and config files the compose file gives them (values
//! from .env.example), except for the departures listed by [`overrides`] and the test's
//! own [`StackOptions`], each with its reason. PostgreSQL is this machine's (a schema of
//! its own) or a server of the stack's own, and S3 an in-process s3s-fs server with the
//! .env.example keys, standing in for the `postgres` and `seaweedfs` services.
//!
//! A test may SIGKILL any service, PostgreSQL (its own) or S3 and start it again on the
//! same address, and read each process's memory and open files.
//!
//! The services are the real binaries from the target directory (`cargo build
//! --workspace --bins`, which `cargo test --workspace` does first).

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use isoplane_auth::{JoinClaims, Role, TokenKey};
use isoplane_metadata::testing::TestSchema;
use tokio_util::sync::CancellationToken;

use crate::compose::{ServiceSpec, read_compose, read_env_file, service_spec};
use crate::postgres::OwnPostgres;

/// The long-running services, in the compose file's start order (`tools`, a one-shot,
/// runs between `assets` and `signaling`).
pub const SERVICES: [&str; 4] = ["assets", "signaling", "sfu", "turn"];

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Addresses the test gives the services instead of the compose file's.
#[derive(Debug, Clone)]
pub struct Addresses {
    pub assets: SocketAddr,
    pub signaling: SocketAddr,
    pub sfu_http: SocketAddr,
    pub sfu_udp: SocketAddr,
    pub sfu_tcp: SocketAddr,
    pub turn: SocketAddr,
    pub turn_http: SocketAddr,
    pub s3: SocketAddr,
}

impl Addresses {
    /// Free loopback ports for every service.
    pub fn free() -> Addresses {
        Addresses {
            assets: free_tcp(),
            signaling: free_tcp(),
            sfu_http: free_tcp(),
            // Port 0: each SFU worker takes an ephemeral port of its own (a fixed first
            // port would need the next ones free too).
            sfu_udp: SocketAddr::from(([127, 0, 0, 1], 0)),
            sfu_tcp: free_tcp(),
            turn: free_both(),
            turn_http: free_tcp(),
            s3: free_tcp(),
        }
    }
}

/// One place where a run departs from the compose file, and why.
#[derive(Debug, Clone)]
pub struct Override {
    pub service: &'static str,
    pub variable: &'static str,
    pub value: String,
    pub why: &'static str,
    /// A variable the compose file does not set (otherwise it must set it).
    pub adds: bool,
}

/// The line of a service's config file that starts with `starting` replaced, and why.
#[derive(Debug, Clone)]
pub struct ConfigEdit {
    pub service: &'static str,
    pub starting: &'static str,
    pub replacement: String,
    pub why: &'static str,
}

/// What a test changes beyond [`overrides`].
#[derive(Debug, Default)]
pub struct StackOptions {
    /// `.env.example` variables changed for this run: (name, value, why).
    pub env: Vec<(&'static str, String, &'static str)>,
    /// Further departures from the services' environments.
    pub overrides: Vec<Override>,
    pub config_edits: Vec<ConfigEdit>,
    /// A PostgreSQL server of the stack's own, which the test may kill, instead of a
    /// schema in the machine's.
    pub own_postgres: bool,
    /// Worlds published (name, world file) before signaling starts, besides the demo.
    pub worlds: Vec<(String, String)>,
}

/// Every departure from the compose file's environment that any run needs. Anything not
/// listed here runs as written (secrets, workspace, TURN/STUN URLs handed to clients,
/// realm, relay port range, log filters, signaling.toml and turn.toml).
pub fn overrides(a: &Addresses, database_url: &str) -> Vec<Override> {
    const LOOPBACK: &str = "tests send traffic to loopback only, on ephemeral ports (not the container's fixed ones)";
    const DNS: &str = "compose service names do not resolve outside Docker";
    let o = |service, variable, value: String, why| Override { service, variable, value, why, adds: false };
    vec![
        o("assets", "ISOPLANE_ASSETS_LISTEN", a.assets.to_string(), LOOPBACK),
        o(
            "assets",
            "ISOPLANE_ASSETS_DATABASE_URL",
            database_url.to_owned(),
            "the test's PostgreSQL (a schema of this run, or a server of its own) stands in for the `postgres` service",
        ),
        o(
            "assets",
            "ISOPLANE_ASSETS_S3_ENDPOINT",
            format!("http://{}", a.s3),
            "an in-process S3 server (s3s-fs, same bucket and keys) stands in for the `seaweedfs` service",
        ),
        o(
            "sfu",
            "ISOPLANE_SFU_RECORDING_S3_ENDPOINT",
            format!("http://{}", a.s3),
            "the same in-process S3 server: recordings go where the asset server reads them",
        ),
        o("tools", "ISOPLANE_ASSETS_URL", format!("http://{}", a.assets), DNS),
        o("signaling", "ISOPLANE_SIGNALING_LISTEN", a.signaling.to_string(), LOOPBACK),
        o("signaling", "ISOPLANE_SIGNALING_ASSET_SERVER", format!("http://{}", a.assets), DNS),
        o(
            "signaling",
            "ISOPLANE_SIGNALING_DATABASE_URL",
            database_url.to_owned(),
            "the test's PostgreSQL, the same the asset server uses in this run",
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
            "ISOPLANE_TURN_EXTERNAL_IP",
            "127.0.0.1".into(),
            "the .env.example address is not this machine's: relayed addresses must be reachable here",
        ),
        o(
            "turn",
            "ISOPLANE_TURN_RELAY_IP",
            "127.0.0.1".into(),
            "the container's fixed address on the compose network does not exist here",
        ),
    ]
}

/// Paths in the image (Dockerfile's COPY lines) and where they are in this checkout.
const IMAGE_PATHS: [(&str, &str); 1] = [("/usr/local/share/isoplane/worlds/demo", "worlds/demo")];

// ---- processes ---------------------------------------------------------------------------

/// A service running as a child process; killed when dropped.
#[derive(Debug)]
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
        if let Ok(Some(status)) = self.child.try_wait() {
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

/// Memory and open files of a running process, from /proc.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessStats {
    pub rss_kib: u64,
    pub open_files: u64,
}

fn process_stats(pid: u32) -> Option<ProcessStats> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss_kib =
        status.lines().find_map(|l| l.strip_prefix("VmRSS:"))?.trim().trim_end_matches("kB").trim().parse().ok()?;
    let open_files = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count() as u64;
    Some(ProcessStats { rss_kib, open_files })
}

/// Where a program of a compose `command` is here: a service binary in the target
/// directory next to this test's executable (or in `ISOPLANE_SERVICE_BINARIES`, to run
/// other builds), or an admin script in deploy/bin/.
pub fn program(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    let target = match std::env::var_os("ISOPLANE_SERVICE_BINARIES") {
        Some(folder) => PathBuf::from(folder),
        None => exe.parent().and_then(Path::parent).map(Path::to_path_buf).unwrap_or_default(),
    };
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

// ---- storage -------------------------------------------------------------------------------

#[derive(Debug)]
enum Database {
    Schema(TestSchema),
    Own(OwnPostgres),
}

impl Database {
    fn url(&self) -> String {
        match self {
            Database::Schema(schema) => schema.url.clone(),
            Database::Own(server) => server.url(),
        }
    }
}

/// The in-process S3 server, which can be stopped (connections and all) and started
/// again on its address with what it stored.
#[derive(Debug)]
struct S3 {
    root: PathBuf,
    bucket: String,
    key: String,
    secret: String,
    address: SocketAddr,
    stop: Option<CancellationToken>,
}

impl S3 {
    async fn start(&mut self) {
        let stop = CancellationToken::new();
        isoplane_assets::testing::serve_s3_on(
            self.address,
            &self.root,
            &self.bucket,
            &self.key,
            &self.secret,
            stop.clone(),
        )
        .await;
        self.stop = Some(stop);
    }

    fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            stop.cancel();
        }
    }
}

// ---- the stack -----------------------------------------------------------------------------

/// The running stack.
#[derive(Debug)]
pub struct Stack {
    pub addresses: Addresses,
    specs: BTreeMap<&'static str, ServiceSpec>,
    overrides: Vec<Override>,
    services: BTreeMap<&'static str, Service>,
    s3: S3,
    database: Database,
    /// Holds config files, logs, S3's files and the own PostgreSQL; last to go.
    dir: tempfile::TempDir,
}

impl Stack {
    /// Starts the stack in the compose file's order: assets (ready) → tools (the demo
    /// world and `options.worlds` published) → signaling, SFU and TURN (all ready).
    pub async fn start(addresses: Addresses, options: StackOptions) -> Stack {
        let compose = read_compose(&repo().join("docker-compose.yml"));
        let mut vars = read_env_file(&repo().join(".env.example"));
        for (key, value, why) in &options.env {
            assert!(vars.insert((*key).to_owned(), value.clone()).is_some(), ".env.example no longer has {key}");
            println!("override .env {key}={value}: {why}");
        }
        let mut specs: BTreeMap<&'static str, ServiceSpec> =
            ["tools"].iter().chain(SERVICES.iter()).map(|name| (*name, service_spec(&compose, name, &vars))).collect();
        for edit in &options.config_edits {
            let spec = specs.get_mut(edit.service).unwrap_or_else(|| panic!("no service {}", edit.service));
            let found = spec.configs.iter_mut().any(|(_, content)| {
                let chosen = |line: &str| line.trim_start().starts_with(edit.starting);
                let had = content.lines().any(chosen);
                *content = content
                    .lines()
                    .map(|l| if chosen(l) { &edit.replacement } else { l })
                    .collect::<Vec<_>>()
                    .join("\n");
                had
            });
            assert!(found, "{}'s config no longer has a line starting `{}`", edit.service, edit.starting);
            println!("edit {} config `{}…` → `{}`: {}", edit.service, edit.starting, edit.replacement, edit.why);
        }

        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("a temporary folder: {e}"));
        let database = if options.own_postgres {
            Database::Own(OwnPostgres::start(dir.path()).await)
        } else {
            Database::Schema(TestSchema::create("isoplane_stack").await)
        };
        let assets_env = &specs["assets"].environment;
        let mut s3 = S3 {
            root: dir.path().join("s3"),
            bucket: assets_env["ISOPLANE_ASSETS_S3_BUCKET"].clone(),
            key: assets_env["ISOPLANE_ASSETS_S3_ACCESS_KEY_ID"].clone(),
            secret: assets_env["ISOPLANE_ASSETS_S3_SECRET_ACCESS_KEY"].clone(),
            address: addresses.s3,
            stop: None,
        };
        s3.start().await;

        let mut all_overrides = overrides(&addresses, &database.url());
        all_overrides.extend(options.overrides);
        for o in &all_overrides {
            println!("override {} {}={}: {}", o.service, o.variable, o.value, o.why);
        }
        let mut stack =
            Stack { addresses, specs, overrides: all_overrides, services: BTreeMap::new(), s3, database, dir };
        stack.start_service("assets").await;
        let published = stack.run_tools(None).await;
        assert!(published.contains("world demo published"), "{published}");
        for (name, world) in &options.worlds {
            stack.publish_world(name, world).await;
        }
        for name in ["signaling", "sfu", "turn"] {
            stack.start_service(name).await;
        }
        stack
    }

    /// Starts `name` (again) as the compose file says, with the overrides, and waits until
    /// its /readyz answers 200.
    pub async fn start_service(&mut self, name: &'static str) {
        let service = self.spawn(name, &self.specs[name].command.clone());
        self.services.insert(name, service);
        let ready = format!("http://{}/readyz", self.http_address(name));
        self.wait_ready(name, &ready).await;
    }

    /// SIGKILLs `name` and reaps it.
    pub fn kill(&mut self, name: &str) {
        let mut service = self.services.remove(name).unwrap_or_else(|| panic!("{name} is not running"));
        let _ = service.child.kill();
        let _ = service.child.wait();
    }

    /// SIGKILLs the stack's own PostgreSQL.
    pub fn kill_postgres(&mut self) {
        match &mut self.database {
            Database::Own(server) => server.kill(),
            Database::Schema(_) => panic!("the stack was started without own_postgres"),
        }
    }

    /// Starts the stack's own PostgreSQL again and waits until it answers.
    pub async fn restart_postgres(&mut self) {
        match &mut self.database {
            Database::Own(server) => server.restart().await,
            Database::Schema(_) => panic!("the stack was started without own_postgres"),
        }
    }

    /// The URL of the stack's database.
    pub fn database_url(&self) -> String {
        self.database.url()
    }

    /// Stops the S3 server: new connections are refused and open ones closed.
    pub fn stop_s3(&mut self) {
        self.s3.stop();
    }

    /// Starts the S3 server again on its address, with what it had stored.
    pub async fn start_s3(&mut self) {
        self.s3.start().await;
    }

    /// Memory and open files of a running service.
    pub fn stats(&self, name: &str) -> Option<ProcessStats> {
        process_stats(self.services.get(name)?.child.id())
    }

    /// Panics with the log of any service that has exited.
    pub fn check_running(&mut self) {
        for service in self.services.values_mut() {
            service.check_running();
        }
    }

    /// A service's log so far.
    pub fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.log_path(name)).unwrap_or_default()
    }

    /// Publishes `world` (a world file's JSON) as the next version of world `name`, with
    /// the image's `isoplane-publish-world` as the `tools` service runs it.
    pub async fn publish_world(&mut self, name: &str, world: &str) {
        let file = self.dir.path().join(format!("{name}.world.json"));
        std::fs::write(&file, world).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let command = vec!["isoplane-publish-world".to_owned(), name.to_owned(), file.display().to_string()];
        let log = self.run_tools(Some(command)).await;
        assert!(log.contains(&format!("world {name} published")), "{log}");
    }

    /// A join token signed with the stack's secret, as an identity provider would.
    pub fn token(&self, user: &str, name: &str, role: Role) -> String {
        let env = &self.specs["signaling"].environment;
        let claims = JoinClaims::new(user, name, &env["ISOPLANE_SIGNALING_WORKSPACE"], role, unix_now() + 3600);
        TokenKey::new(env["ISOPLANE_SIGNALING_TOKEN_SECRET"].as_bytes()).sign(&claims)
    }

    /// Signaling's WebSocket URL.
    pub fn ws_url(&self) -> String {
        format!("ws://{}/v1/ws", self.addresses.signaling)
    }

    /// What the compose file gives `service` (after .env interpolation).
    pub fn spec(&self, service: &str) -> &ServiceSpec {
        &self.specs[service]
    }

    /// Posts an admin command (docs/moderation.md) with an admin token; returns the status
    /// and the JSON answer (or the text, if it is not JSON).
    pub async fn admin(&self, body: &serde_json::Value) -> (u16, serde_json::Value) {
        let response = http_client()
            .post(format!("http://{}/v1/admin/commands", self.addresses.signaling))
            .bearer_auth(self.token("stack-admin", "Stack Admin", Role::Admin))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap_or_else(|e| panic!("posting {body}: {e:?}"));
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)))
    }

    fn http_address(&self, name: &str) -> SocketAddr {
        match name {
            "assets" => self.addresses.assets,
            "signaling" => self.addresses.signaling,
            "sfu" => self.addresses.sfu_http,
            "turn" => self.addresses.turn_http,
            other => panic!("no HTTP address for {other}"),
        }
    }

    fn log_path(&self, name: &str) -> PathBuf {
        self.dir.path().join(format!("{name}.log"))
    }

    /// Starts `name` with `command` (the compose file's, or another program of the image
    /// for `tools`), the overrides applied and its config files written to the stack's
    /// folder. Its output is appended to `<name>.log`.
    fn spawn(&self, name: &'static str, command: &[String]) -> Service {
        let spec = &self.specs[name];
        let mut environment = spec.environment.clone();
        for o in self.overrides.iter().filter(|o| o.service == name) {
            let old = environment.insert(o.variable.to_owned(), o.value.clone());
            assert!(
                old.is_some() != o.adds,
                "{name}: the compose file {} {}: update the overrides",
                if o.adds { "now sets" } else { "no longer sets" },
                o.variable
            );
        }
        let mut args: Vec<String> = command[1..].to_vec();
        for (target, content) in &spec.configs {
            let file_name = Path::new(target).file_name().and_then(|n| n.to_str()).unwrap_or("config");
            let file = self.dir.path().join(format!("{name}-{file_name}"));
            std::fs::write(&file, content).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            for arg in args.iter_mut().filter(|a| *a == target) {
                *arg = file.display().to_string();
            }
        }
        for arg in &mut args {
            for (image, here) in IMAGE_PATHS {
                if let Some(rest) = arg.strip_prefix(image) {
                    *arg = format!("{}{rest}", repo().join(here).display());
                }
            }
        }
        let log = self.log_path(name);
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap_or_else(|e| panic!("{}: {e}", log.display()));
        let err = out.try_clone().unwrap_or_else(|e| panic!("{e}"));
        // Only the compose environment, as in the container; PATH reaches the admin scripts
        // (in the image they are in /usr/local/bin) and curl/openssl.
        let path = format!("{}:{}", repo().join("deploy/bin").display(), std::env::var("PATH").unwrap_or_default());
        let child = Command::new(program(&command[0]))
            .args(&args)
            .env_clear()
            .envs(&environment)
            .env("PATH", path)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {name}: {e}"));
        Service { name, child, log }
    }

    /// Runs the `tools` one-shot (its compose command, or `command`) to its end; returns
    /// what it printed this time.
    async fn run_tools(&self, command: Option<Vec<String>>) -> String {
        let before = self.log("tools").len();
        let command = command.unwrap_or_else(|| self.specs["tools"].command.clone());
        let mut service = self.spawn("tools", &command);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(status)) = service.child.try_wait() {
                let log = self.log("tools");
                let this_run = log.get(before..).unwrap_or(&log).to_owned();
                assert!(status.success(), "tools failed ({status}):\n{this_run}");
                return this_run;
            }
            assert!(Instant::now() < deadline, "tools still running after 60 s:\n{}", service.log());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until `url` answers 200, or panics with the service's log.
    async fn wait_ready(&mut self, name: &str, url: &str) {
        let http = http_client();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(service) = self.services.get_mut(name) {
                service.check_running();
            }
            if let Ok(response) = http.get(url).send().await
                && response.status() == 200
            {
                return;
            }
            assert!(Instant::now() < deadline, "{name} not ready at {url} after 30 s:\n{}", self.log(name));
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Runs the compose file's `tools` command again (as every `docker compose up` does).
    pub async fn rerun_tools(&self) -> String {
        self.run_tools(None).await
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        // Services before their storage.
        self.services.clear();
        if std::thread::panicking() {
            // What each service said last, for the failed test's output.
            for name in ["assets", "tools"].iter().chain(&SERVICES[1..]) {
                let log = self.log(name);
                let tail: Vec<&str> = log.lines().rev().take(40).collect();
                eprintln!("---- {name}'s log, last lines ----");
                tail.iter().rev().for_each(|line| eprintln!("{line}"));
            }
        }
        self.s3.stop();
    }
}

pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap_or_else(|e| panic!("an HTTP client: {e}"))
}

pub fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn free_tcp() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).unwrap_or_else(|e| panic!("a free port: {e}"))
}

fn free_udp() -> SocketAddr {
    UdpSocket::bind("127.0.0.1:0").and_then(|s| s.local_addr()).unwrap_or_else(|e| panic!("a free port: {e}"))
}

/// A port free for both UDP and TCP (TURN listens on both, like 3478).
fn free_both() -> SocketAddr {
    loop {
        let address = free_udp();
        if TcpListener::bind(address).is_ok() {
            return address;
        }
    }
}
