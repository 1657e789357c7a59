//! Test harness: the two storage backends the suite runs on, a server started on
//! 127.0.0.1:0, tokens, and small HTTP helpers (reqwest, plus raw TCP for requests a
//! well-behaved client cannot send).
//!
//! Backends:
//! - `SqliteLocal`: a SQLite file and a local object directory in a fresh temp dir.
//! - `PostgresS3`: this machine's PostgreSQL (`ISOPLANE_TEST_POSTGRES_URL`, by default
//!   the local server; the test fails if it cannot reach it) in a schema of its own, dropped at the end, and a real S3
//!   server (s3s-fs) run in-process on 127.0.0.1:0 with access keys.

#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use isoplane_metadata::testing::TestSchema;
use std::net::SocketAddr;
use std::time::Duration;

use isoplane_assets::config::StoreKind;
use isoplane_assets::{AssetStore, Config, Metadata};
use isoplane_auth::{JoinClaims, Role, TokenKey};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub const SECRET: &str = "test-secret-0123456789";
pub const WORKSPACE: &str = "acme";
/// Upload limit of the test servers.
pub const MAX_UPLOAD: u64 = 256 * 1024;
const S3_KEY: &str = "isoplane-test-key";
const S3_SECRET: &str = "isoplane-test-secret";
const S3_BUCKET: &str = "isoplane-assets";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    SqliteLocal,
    PostgresS3,
}

/// A storage backend prepared for one test, and its configuration.
pub struct TestEnv {
    pub backend: Backend,
    pub config: Config,
    dir: tempfile::TempDir,
    views: tokio::sync::OnceCell<(Metadata, AssetStore)>,
    s3: Option<S3Server>,
    schema: Option<TestSchema>,
}

/// A running asset server.
pub struct Running {
    pub address: SocketAddr,
    shutdown: CancellationToken,
    task: JoinHandle<std::io::Result<()>>,
}

impl Running {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    /// Stops the server and waits until it has finished.
    pub async fn stop(self) {
        self.shutdown.cancel();
        self.task.await.unwrap().unwrap();
    }
}

impl TestEnv {
    pub async fn new(backend: Backend) -> TestEnv {
        TestEnv::new_with(backend, |_| {}).await
    }

    /// A backend whose server configuration is adjusted by `adjust`.
    pub async fn new_with(backend: Backend, adjust: impl FnOnce(&mut Config)) -> TestEnv {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config {
            listen: "127.0.0.1:0".parse().unwrap(),
            workspace: WORKSPACE.into(),
            token_secret: SECRET.into(),
            data_dir: dir.path().join("data"),
            database_connections: 4,
            ..Config::default()
        };
        config.limits.max_upload_bytes = MAX_UPLOAD;
        let (mut s3, mut schema) = (None, None);
        match backend {
            Backend::SqliteLocal => {}
            Backend::PostgresS3 => {
                let created = TestSchema::create("isoplane_assets_test").await;
                config.database_url = Some(created.url.clone());
                schema = Some(created);
                let server = S3Server::start(dir.path().join("s3")).await;
                config.store.kind = StoreKind::S3;
                config.store.s3.endpoint = Some(format!("http://{}", server.address));
                config.store.s3.bucket = S3_BUCKET.into();
                config.store.s3.region = "us-east-1".into();
                config.store.s3.access_key_id = Some(S3_KEY.into());
                config.store.s3.secret_access_key = Some(S3_SECRET.into());
                s3 = Some(server);
            }
        }
        adjust(&mut config);
        TestEnv { backend, config, dir, views: tokio::sync::OnceCell::new(), s3, schema }
    }

    /// Starts an asset server on this backend.
    pub async fn start(&self) -> Running {
        let bound = isoplane_assets::server::bind(self.config.clone()).await.unwrap();
        let address = bound.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(bound.run(shutdown.clone()));
        Running { address, shutdown, task }
    }

    /// A second view of the server's object store, to look at what it holds.
    pub async fn store_view(&self) -> AssetStore {
        self.views().await.1.clone()
    }

    /// A second connection to the server's database.
    pub async fn metadata_view(&self) -> Metadata {
        self.views().await.0.clone()
    }

    async fn views(&self) -> &(Metadata, AssetStore) {
        self.views.get_or_init(|| async { isoplane_assets::server::open_storage(&self.config).await.unwrap() }).await
    }
}

// ---- S3: s3s-fs served in-process ----

struct S3Server {
    address: SocketAddr,
    stop: CancellationToken,
}

impl S3Server {
    async fn start(root: std::path::PathBuf) -> S3Server {
        let stop = CancellationToken::new();
        let address = isoplane_assets::testing::serve_s3(&root, S3_BUCKET, S3_KEY, S3_SECRET, stop.clone()).await;
        S3Server { address, stop }
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

// ---- tokens and HTTP ----

pub fn token(user: &str, workspace: &str, role: Role) -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let claims = JoinClaims {
        sub: user.into(),
        name: user.into(),
        workspace: workspace.into(),
        role,
        exp: now + 600,
        iat: Some(now),
        nbf: None,
    };
    TokenKey::new(SECRET).sign(&claims)
}

pub fn admin_token() -> String {
    token("ada", WORKSPACE, Role::Admin)
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(30)).build().unwrap()
}

/// Uploads bytes as an admin; returns the status and the JSON answer.
pub async fn upload(server: &Running, bytes: Vec<u8>, media_type: &str) -> (u16, serde_json::Value) {
    let response = client()
        .post(server.url("/v1/assets"))
        .bearer_auth(admin_token())
        .header("content-type", media_type)
        .body(bytes)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(serde_json::Value::Null))
}

/// Sends raw bytes on a fresh connection, half-closes nothing, and reads whatever comes
/// back until the server closes or `wait` passes.
pub async fn raw_exchange(address: SocketAddr, request: &[u8], wait: Duration) -> String {
    let mut socket = TcpStream::connect(address).await.unwrap();
    socket.write_all(request).await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(wait, socket.read_to_end(&mut answer)).await;
    String::from_utf8_lossy(&answer).into_owned()
}

/// The demo world's tileset image, as shipped in the repository.
pub fn demo_image() -> Vec<u8> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../worlds/demo/assets/sha256-ad1738962a05c7ccad2a02b5dc71a95c2fc4cbdbc4a117490ad4343330f546c3.svg"
    );
    std::fs::read(path).unwrap()
}

/// The demo world as a JSON value, renamed so each call can make a distinct version.
pub fn demo_world(name: &str) -> serde_json::Value {
    let mut world: serde_json::Value = serde_json::from_str(isoplane_world_format::DEMO_WORLD).unwrap();
    world["name"] = name.into();
    world
}

/// Polls `condition` until it holds or 10 s pass; returns whether it held. For effects
/// that happen after a response (cleanup of an interrupted upload), never for timing.
pub async fn eventually<F, Fut>(mut condition: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..100 {
        if condition().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// The value of one unlabelled counter in `/metrics`.
pub async fn metric(server: &Running, name: &str) -> u64 {
    let text = client().get(server.url("/metrics")).send().await.unwrap().text().await.unwrap();
    text.lines()
        .find_map(|line| line.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or_else(|| panic!("metric {name} missing from:\n{text}"))
}

impl TestEnv {
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// Every file on disk under the object store (the local directory, or the S3
    /// server's root), relative paths, sorted: what a crash would leave behind.
    pub fn files_on_disk(&self) -> Vec<String> {
        let root = match self.backend {
            Backend::SqliteLocal => self.config.store_directory(),
            Backend::PostgresS3 => self.dir.path().join("s3"),
        };
        let mut files = Vec::new();
        let mut pending = vec![root.clone()];
        while let Some(folder) = pending.pop() {
            let Ok(entries) = std::fs::read_dir(&folder) else { continue };
            for entry in entries.flatten() {
                let path = entry.path();
                if path.is_dir() {
                    pending.push(path);
                } else {
                    files.push(path.strip_prefix(&root).unwrap().display().to_string());
                }
            }
        }
        files.sort();
        files
    }
}
