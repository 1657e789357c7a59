//! The signaling server's I/O shell: HTTP routes, WebSocket connections, world tasks.
//!
//! [`bind`] checks the configuration and loads every world before it binds a socket, so
//! a bad config or a broken world file stops the start with a clear message.
//! [`BoundServer::run`] serves until the shutdown token is cancelled, then tells every
//! client to reconnect, and returns once every task has finished.
//!
//! Routes: `GET /v1/ws` (the protocol), `GET /v1/worlds/{name}` (a world file),
//! `POST /v1/admin/commands` (moderation, docs/moderation.md),
//! `GET /v1/dev/token` (development tokens, when enabled), `/healthz`, `/readyz`,
//! `/metrics`; with `serve_web`, the browser client at `/` and `/web/…`; with the demo
//! world, its images at `/assets/{id}`.

pub mod cluster;
mod connection;
mod limits;
mod metrics;
mod moderation;
mod proxy;
pub mod sfu_control;
mod web;
mod world_task;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{ConnectInfo, Path as UrlPath, Query, State, WebSocketUpgrade};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use isoplane_world_format::{ContentId, DEMO_WORLD, World, is_valid_id};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::{JoinClaims, Role, TokenKey};
use crate::config::{Config, ConfigError};
use crate::engine::{EngineConfig, MediaConfig, Moderation, SfuConfig, SfuNode, TurnAccess, WorldEngine};
use crate::protocol::{AdminCommand, AdminError, AdminErrorCode, WorldRef};
use limits::{ConnectionLimits, Counter};
pub use metrics::Metrics;
use world_task::WorldCommand;
pub use world_task::unix_now;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("world file {path}: {message}")]
    World { path: String, message: String },
    #[error("cannot listen on {address}: {source}")]
    Bind { address: SocketAddr, source: std::io::Error },
    #[error("the moderation database: {0}")]
    Database(#[from] isoplane_metadata::MetadataError),
    #[error("cannot join the cluster: {0}")]
    Cluster(#[from] cluster::ClusterError),
}

/// A loaded world: its file as served, and the queue of the task that owns it.
struct WorldEntry {
    json: Bytes,
    version: String,
    commands: mpsc::Sender<WorldCommand>,
}

/// What every handler shares.
pub(crate) struct AppState {
    config: Config,
    token_key: TokenKey,
    worlds: HashMap<String, WorldEntry>,
    metrics: Arc<Metrics>,
    limits: ConnectionLimits,
    shutdown: CancellationToken,
    next_conn: AtomicU64,
    tasks: TaskTracker,
    moderator: moderation::Moderator,
    /// The other signaling nodes, when this one is part of a cluster.
    cluster: Option<Arc<cluster::Cluster>>,
}

/// A server whose socket is bound, ready to run.
pub struct BoundServer {
    listener: TcpListener,
    state: Arc<AppState>,
    /// World engines waiting for their tasks, started by `run`.
    engines: Vec<(WorldEngine, mpsc::Receiver<WorldCommand>)>,
}

impl std::fmt::Debug for BoundServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BoundServer").field("address", &self.listener.local_addr().ok()).finish()
    }
}

/// The current version of every world the asset server holds for our workspace. Asks
/// with a member token signed with the shared secret, as any client would.
async fn fetch_worlds(config: &Config, base: &str) -> Result<Vec<(String, String)>, StartError> {
    let error = |message: String| StartError::World { path: base.to_owned(), message };
    let claims = JoinClaims {
        sub: "isoplane-signaling".into(),
        name: "signaling".into(),
        workspace: config.workspace.clone(),
        role: Role::Member,
        exp: unix_now() + 300,
        iat: Some(unix_now()),
        nbf: None,
    };
    let bearer = format!("Bearer {}", TokenKey::new(config.token_secret.as_bytes()).sign(&claims));
    let client =
        reqwest::Client::builder().timeout(Duration::from_secs(10)).build().map_err(|e| error(e.to_string()))?;
    let get = |path: String| {
        let request = client.get(format!("{}{path}", base.trim_end_matches('/'))).header("Authorization", &bearer);
        async move {
            let response = request.send().await.map_err(|e| format!("cannot reach the asset server: {e}"))?;
            let status = response.status();
            let text = response.text().await.map_err(|e| e.to_string())?;
            if status.is_success() { Ok(text) } else { Err(format!("{path}: HTTP {status}: {text}")) }
        }
    };
    let workspace = &config.workspace;
    let list: serde_json::Value =
        serde_json::from_str(&get(format!("/v1/workspaces/{workspace}/worlds")).await.map_err(error)?)
            .map_err(|e| error(format!("the world list is not JSON: {e}")))?;
    let mut worlds = Vec::new();
    for entry in list["worlds"].as_array().into_iter().flatten() {
        let (Some(name), Some(current)) = (entry["name"].as_str(), entry["current_version"].as_i64()) else { continue };
        if current > 0 {
            worlds.push((
                name.to_owned(),
                get(format!("/v1/workspaces/{workspace}/worlds/{name}")).await.map_err(error)?,
            ));
        }
    }
    Ok(worlds)
}

/// The worlds a configuration names, as (name, file text) pairs.
fn read_worlds(config: &Config) -> Result<Vec<(String, String)>, StartError> {
    let mut worlds = Vec::new();
    if config.worlds.demo {
        worlds.push(("demo".to_owned(), DEMO_WORLD.to_owned()));
    }
    if let Some(directory) = &config.worlds.directory {
        let error = |message: String| StartError::World { path: directory.display().to_string(), message };
        let entries = std::fs::read_dir(directory).map_err(|e| error(e.to_string()))?;
        for entry in entries {
            let path = entry.map_err(|e| error(e.to_string()))?.path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()).and_then(|n| n.strip_suffix(".world.json"))
            else {
                continue;
            };
            if !is_valid_id(name) {
                return Err(StartError::World {
                    path: path.display().to_string(),
                    message: "world names are 1 to 64 ASCII letters, digits, `-`, `_` or `.`".into(),
                });
            }
            let text = std::fs::read_to_string(&path)
                .map_err(|e| StartError::World { path: path.display().to_string(), message: e.to_string() })?;
            worlds.push((name.to_owned(), text));
        }
    }
    Ok(worlds)
}

fn media_config(config: &Config) -> MediaConfig {
    let media = &config.media;
    MediaConfig {
        stun_urls: media.stun_urls.clone(),
        turn: media.turn_secret.as_ref().map(|secret| TurnAccess {
            urls: media.turn_urls.clone(),
            secret: secret.as_bytes().to_vec(),
            ttl: Duration::from_secs(media.turn_credential_ttl_seconds.unwrap_or(600)),
        }),
        sfu: media.sfu_secret.as_ref().map(|secret| SfuConfig {
            key: TokenKey::new(secret.as_bytes()),
            token_ttl: Duration::from_secs(300),
            // One configured SFU; with an SFU pool, the directory reports the nodes.
            nodes: media.sfu_url.iter().map(|url| static_sfu_node(url, media.sfu_control_url.as_deref())).collect(),
        }),
    }
}

/// The one SFU of a configuration without a pool.
fn static_sfu_node(url: &str, control_url: Option<&str>) -> SfuNode {
    let control_url =
        control_url.map(str::to_owned).or_else(|| sfu_control::control_base_from(url)).unwrap_or_default();
    SfuNode { id: "sfu".into(), url: url.to_owned(), control_url, participants: 0, capacity: u64::MAX }
}

/// How signaling reaches SFU control APIs, when SFUs are configured.
fn sfu_control(config: &Config) -> Option<sfu_control::SfuControl> {
    let secret = config.media.sfu_secret.as_ref()?;
    Some(sfu_control::SfuControl::new(TokenKey::new(secret.as_bytes())))
}

/// Reads the SFU pool's directory every second and hands the live nodes to every world.
async fn follow_sfu_directory(state: Arc<AppState>, pool: crate::config::SfuPoolSettings) {
    let mut redis = loop {
        let connected = async { redis::Client::open(pool.redis_url.as_str())?.get_connection_manager().await };
        match connected.await {
            Ok(redis) => break redis,
            Err(error) => {
                tracing::warn!(%error, "cannot reach the SFU directory's Redis; retrying");
                tokio::select! {
                    () = state.shutdown.cancelled() => return,
                    () = tokio::time::sleep(SFU_DIRECTORY_INTERVAL) => {}
                }
            }
        }
    };
    let mut ticker = tokio::time::interval(SFU_DIRECTORY_INTERVAL);
    let mut known: Vec<String> = Vec::new();
    loop {
        tokio::select! {
            () = state.shutdown.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let nodes = match isoplane_service::sfu_directory::read(&mut redis, &pool.pool).await {
            Ok(nodes) => nodes,
            Err(error) => {
                // Keep the last list: rooms stay where they are until the directory answers.
                tracing::warn!(%error, "cannot read the SFU directory");
                continue;
            }
        };
        let ids: Vec<String> = nodes.iter().map(|n| n.id.clone()).collect();
        if ids != known {
            tracing::info!(nodes = ?ids, "SFU nodes changed");
            known = ids;
        }
        for entry in state.worlds.values() {
            let _ = entry.commands.send(WorldCommand::SfuNodes(nodes.clone())).await;
        }
    }
}

/// How often signaling reads the SFU directory.
const SFU_DIRECTORY_INTERVAL: Duration = Duration::from_secs(1);

/// The moderation database: the configured one, or one in memory (bans and the audit
/// log then last only as long as the process, which the log says).
async fn open_database(config: &Config) -> Result<isoplane_metadata::Metadata, StartError> {
    match &config.database_url {
        Some(url) => Ok(isoplane_metadata::Metadata::connect(url, 4).await?),
        None => {
            tracing::warn!(
                "no database_url: bans, mutes, admins and the audit log are kept in memory and lost on restart"
            );
            Ok(isoplane_metadata::Metadata::connect_in_memory().await?)
        }
    }
}

/// Checks the configuration, loads every world and binds the listening socket.
pub async fn bind(config: Config) -> Result<BoundServer, StartError> {
    bind_with_worlds(config, Vec::new()).await
}

/// Like [`bind`], serving also `worlds` (name, world file JSON) that the caller loaded
/// from elsewhere, such as the asset server's store.
pub async fn bind_with_worlds(config: Config, given: Vec<(String, String)>) -> Result<BoundServer, StartError> {
    config.validate()?;
    let engine_config = EngineConfig {
        tick_interval: config.tick_interval(),
        resume_grace: Duration::from_secs(config.presence.resume_grace_seconds),
        policy: config.policy.clone(),
        media: media_config(&config),
    };
    let (now, unix) = (Instant::now(), unix_now());
    let mut worlds = HashMap::new();
    let mut engines = Vec::new();
    // A world given by the caller replaces a file or the demo of the same name.
    let stored = match &config.worlds.asset_server {
        Some(base) => fetch_worlds(&config, base).await?,
        None => Vec::new(),
    };
    let mut named: Vec<(String, String)> = Vec::new();
    for (name, text) in read_worlds(&config)?.into_iter().chain(stored).chain(given) {
        named.retain(|(existing, _)| *existing != name);
        named.push((name, text));
    }
    let metadata = open_database(&config).await?;
    let listener =
        TcpListener::bind(config.listen).await.map_err(|source| StartError::Bind { address: config.listen, source })?;
    let cluster = match &config.cluster {
        Some(settings) => {
            let mut settings = settings.clone();
            if settings.advertise_url.is_empty() {
                // Only a concrete listening address can stand for this node.
                settings.advertise_url = format!(
                    "http://{}",
                    listener.local_addr().map_err(|source| StartError::Bind { address: config.listen, source })?
                );
            }
            Some(Arc::new(cluster::Cluster::join(&settings, &config.workspace).await?))
        }
        None => None,
    };
    for (name, text) in named {
        let world = World::from_json(&text)
            .map_err(|errors| StartError::World { path: format!("{name}.world.json"), message: errors.to_string() })?;
        let version = ContentId::of_bytes(text.as_bytes()).to_string();
        let world_ref = WorldRef { name: name.clone(), version: version.clone(), url: format!("/v1/worlds/{name}") };
        let mut engine = WorldEngine::new(&name, Arc::new(world), world_ref, engine_config.clone(), now, unix);
        if cluster.is_some() {
            // A world may move between nodes while the SFU still holds its avatars'
            // sessions: each node numbers avatars from its own random start.
            engine.number_avatars_from(rand::random_range(1..1 << 30));
        }
        // Locks and capacities admins set stay in force across restarts.
        for setting in metadata.zone_settings(&config.workspace, &name).await? {
            let zone = setting.zone.clone();
            let action = Moderation::SetZone { zone: setting.zone, locked: setting.locked, capacity: setting.capacity };
            if engine.moderate(now, action).is_err() {
                tracing::warn!(world = %name, %zone, "a recorded zone setting names a zone this world no longer has");
            }
        }
        let (commands, receiver) = mpsc::channel(4096);
        engines.push((engine, receiver));
        worlds.insert(name, WorldEntry { json: Bytes::from(text), version, commands });
    }
    let limits = ConnectionLimits {
        total: Counter::new(config.limits.max_connections),
        per_ip: Counter::new(config.limits.connections_per_ip),
        per_user: Counter::new(config.limits.connections_per_user),
    };
    let senders = worlds.iter().map(|(name, entry)| (name.clone(), entry.commands.clone())).collect();
    let moderator = moderation::Moderator::new(metadata, config.workspace.clone(), senders, cluster.clone());
    let state = Arc::new(AppState {
        moderator,
        cluster,
        token_key: TokenKey::new(config.token_secret.as_bytes()),
        config,
        worlds,
        metrics: Arc::new(Metrics::default()),
        limits,
        shutdown: CancellationToken::new(),
        next_conn: AtomicU64::new(1),
        tasks: TaskTracker::new(),
    });
    Ok(BoundServer { listener, state, engines })
}

impl BoundServer {
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` is cancelled; then drains and returns.
    pub async fn run(self, shutdown: CancellationToken) -> std::io::Result<()> {
        let BoundServer { listener, state, engines } = self;
        let slow_client = Duration::from_secs(state.config.limits.slow_client_seconds);
        let sfu = sfu_control(&state.config);
        for (engine, receiver) in engines {
            let (metrics, stop) = (state.metrics.clone(), state.shutdown.clone());
            state.tasks.spawn(world_task::run(engine, receiver, metrics, slow_client, sfu.clone(), stop));
        }
        if let Some(pool) = state.config.media.sfu_pool.clone() {
            state.tasks.spawn(follow_sfu_directory(state.clone(), pool));
        }
        if let Some(cluster) = state.cluster.clone() {
            let (incoming, requests) = mpsc::channel(256);
            let (lost, lost_worlds) = mpsc::channel(64);
            state.tasks.spawn(cluster.run(incoming, lost, state.shutdown.clone()));
            state.tasks.spawn(answer_nodes(state.clone(), requests));
            state.tasks.spawn(evacuate_lost(state.clone(), lost_worlds));
        }
        let inner = state.shutdown.clone();
        let tasks = state.tasks.clone();
        let app = router(state);
        let serving = axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
            .with_graceful_shutdown(async move { shutdown.cancelled().await });
        let result = serving.await;
        // Connections and worlds follow the same signal, then the server waits for them.
        inner.cancel();
        tasks.close();
        let _ = tokio::time::timeout(Duration::from_secs(5), tasks.wait()).await;
        result
    }
}

/// Carries out other nodes' requests in this node's worlds.
async fn answer_nodes(state: Arc<AppState>, mut requests: mpsc::Receiver<cluster::Incoming>) {
    while let Some((request, reply)) = requests.recv().await {
        let state = state.clone();
        tokio::spawn(async move {
            let answer = match request {
                cluster::ClusterRequest::Moderate { world: Some(world), action } => {
                    cluster::ClusterReply::Moderated(state.moderator.local_in_world(&world, action).await)
                }
                cluster::ClusterRequest::Moderate { world: None, action } => {
                    cluster::ClusterReply::Moderated(state.moderator.local_everywhere(action).await)
                }
                cluster::ClusterRequest::People => cluster::ClusterReply::People(state.moderator.local_people().await),
            };
            let _ = reply.send(answer);
        });
    }
}

/// Stops serving the worlds whose lease this node lost: their clients reconnect and
/// reach the new owner.
async fn evacuate_lost(state: Arc<AppState>, mut lost: mpsc::Receiver<String>) {
    while let Some(world) = lost.recv().await {
        if let Some(entry) = state.worlds.get(&world) {
            let _ = entry.commands.send(WorldCommand::Evacuate).await;
        }
    }
}

fn router(state: Arc<AppState>) -> Router {
    let mut router = Router::new();
    if state.config.serve_web {
        router = router.route("/", get(web::index)).route("/web/{*path}", get(web::web_file));
    }
    if state.config.worlds.demo {
        router = router.route("/assets/{id}", get(web::demo_asset));
    }
    router
        .route("/v1/ws", get(websocket))
        .route("/v1/worlds/{name}", get(world_file))
        .route("/v1/admin/commands", post(admin_command).layer(axum::extract::DefaultBodyLimit::max(ADMIN_BODY_LIMIT)))
        .route("/v1/dev/token", get(dev_token))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics_text))
        .with_state(state)
}

/// A JSON error body for HTTP refusals.
fn refusal(status: StatusCode, code: &str, message: &str) -> Response {
    let body = serde_json::json!({"error": {"code": code, "message": message}});
    (status, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

/// Read buffer of one WebSocket, in bytes.
const SOCKET_BUFFER: usize = 4096;

async fn websocket(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    if state.shutdown.is_cancelled() {
        return refusal(StatusCode::SERVICE_UNAVAILABLE, "shutting_down", "the server is shutting down");
    }
    // Another node forwarding a client vouches for the client's address.
    let forwarded = headers
        .get(proxy::FORWARDED_HEADER)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| proxy::forwarded_ip(&state.token_key, value, unix_now()));
    let origin = connection::Origin { ip: forwarded.unwrap_or(peer.ip()), forwarded: forwarded.is_some() };
    if let Some(origin) = headers.get(header::ORIGIN) {
        let allowed = &state.config.allowed_origins;
        if !allowed.is_empty() && !allowed.iter().any(|a| origin.as_bytes() == a.as_bytes()) {
            metrics::Metrics::inc(&state.metrics.refused_connections);
            return refusal(StatusCode::FORBIDDEN, "origin_not_allowed", "this origin may not connect");
        }
    }
    let Some(total) = state.limits.total.acquire(()) else {
        metrics::Metrics::inc(&state.metrics.refused_connections);
        return refusal(StatusCode::SERVICE_UNAVAILABLE, "too_many_connections", "the server is full");
    };
    let Some(ip_slot) = state.limits.per_ip.acquire(origin.ip) else {
        metrics::Metrics::inc(&state.metrics.refused_connections);
        return refusal(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_connections",
            "too many connections from this address",
        );
    };
    // The protocol limit is enforced on whole messages by the reader, which can then close
    // cleanly with `frame_too_large`; the transport limit only stops absurd sizes.
    let transport_limit = (state.config.limits.max_frame_bytes * 4).max(64 * 1024);
    // Small socket buffers: clients send small messages, and 128 KiB defaults would cost
    // a quarter of a megabyte per idle connection.
    let upgrade = upgrade
        .max_message_size(transport_limit)
        .max_frame_size(transport_limit)
        .read_buffer_size(SOCKET_BUFFER)
        .write_buffer_size(0);
    let tasks = state.tasks.clone();
    upgrade.on_upgrade(move |socket| {
        tasks.track_future(async move {
            connection::run(socket, state, ip_slot, origin).await;
            drop(total);
        })
    })
}

/// Largest admin command body, in bytes.
const ADMIN_BODY_LIMIT: usize = 16 * 1024;

/// `POST /v1/admin/commands`: one admin command (the JSON of a WebSocket `admin`
/// message's `command`), authorized by the bearer's join token.
async fn admin_command(State(state): State<Arc<AppState>>, headers: HeaderMap, body: Bytes) -> Response {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    let claims: JoinClaims = match state.token_key.verify(token, unix_now()) {
        Ok(claims) => claims,
        Err(error) => {
            metrics::Metrics::inc(&state.metrics.auth_failures);
            let message = format!("send `Authorization: Bearer <join token>`: {error}");
            return refusal(StatusCode::UNAUTHORIZED, "invalid_token", &message);
        }
    };
    if claims.workspace != state.config.workspace {
        return refusal(StatusCode::FORBIDDEN, "forbidden", "this token is for another workspace");
    }
    let command: AdminCommand = match serde_json::from_slice(&body) {
        Ok(command) => command,
        Err(error) => {
            return refusal(StatusCode::BAD_REQUEST, "invalid_command", &format!("not an admin command: {error}"));
        }
    };
    // Carried out to the end even if the caller hangs up: records and fan-out go together.
    let actor = moderation::Actor::from_claims(&claims);
    let running = state.clone();
    let outcome = tokio::spawn(async move { running.moderator.execute(&actor, command).await }).await;
    let outcome = outcome.unwrap_or_else(|_| {
        Err(AdminError::new(AdminErrorCode::Internal, "the server failed to carry this out; try again"))
    });
    match outcome {
        Ok(data) => {
            let body = serde_json::json!({"ok": true, "data": data});
            ([(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
        }
        Err(error) => {
            let status = StatusCode::from_u16(error.code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let body = serde_json::json!({"ok": false, "error": error});
            (status, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
        }
    }
}

async fn world_file(
    State(state): State<Arc<AppState>>,
    UrlPath(name): UrlPath<String>,
    headers: HeaderMap,
) -> Response {
    let Some(entry) = state.worlds.get(&name) else {
        return refusal(StatusCode::NOT_FOUND, "unknown_world", "there is no world with this name");
    };
    let etag = format!("\"{}\"", entry.version);
    if headers.get(header::IF_NONE_MATCH).is_some_and(|v| v.as_bytes() == etag.as_bytes()) {
        return (StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response();
    }
    let headers = [
        (header::CONTENT_TYPE, HeaderValue::from_static("application/json")),
        (header::ETAG, HeaderValue::from_str(&etag).unwrap_or(HeaderValue::from_static("\"\""))),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
    ];
    (headers, entry.json.clone()).into_response()
}

#[derive(serde::Deserialize)]
struct DevTokenQuery {
    name: Option<String>,
    admin: Option<bool>,
}

/// Hands out a member token for a fresh user (development only).
async fn dev_token(State(state): State<Arc<AppState>>, Query(query): Query<DevTokenQuery>) -> Response {
    if !state.config.dev_issuer {
        return refusal(StatusCode::NOT_FOUND, "not_found", "the development token issuer is disabled");
    }
    let user = format!("dev-{:016x}", rand::random::<u64>());
    let name: String = query.name.unwrap_or_else(|| "Guest".into()).chars().take(40).collect();
    let claims = JoinClaims {
        sub: user.clone(),
        name,
        workspace: state.config.workspace.clone(),
        role: if query.admin == Some(true) { Role::Admin } else { Role::Member },
        exp: unix_now() + 12 * 3600,
        iat: Some(unix_now()),
        nbf: None,
    };
    let body = serde_json::json!({"token": state.token_key.sign(&claims), "user": user, "workspace": claims.workspace});
    ([(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

async fn ready(State(state): State<Arc<AppState>>) -> Response {
    if state.shutdown.is_cancelled() {
        return refusal(StatusCode::SERVICE_UNAVAILABLE, "shutting_down", "the server is shutting down");
    }
    ([(header::CONTENT_TYPE, "application/json")], format!("{{\"ready\":true,\"worlds\":{}}}", state.worlds.len()))
        .into_response()
}

async fn metrics_text(State(state): State<Arc<AppState>>) -> Response {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], state.metrics.render()).into_response()
}

/// A comma-separated list from an environment variable.
fn split_list(value: &str) -> Vec<String> {
    value.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect()
}

/// Reads a configuration file for the binaries: TOML, then `ISOPLANE_SIGNALING_*`
/// environment overrides for the settings operators change most.
pub fn load_config(path: Option<&Path>) -> Result<Config, ConfigError> {
    let mut config = match path {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| ConfigError(vec![format!("cannot read {}: {e}", path.display())]))?;
            Config::from_toml(&text)?
        }
        None => Config::default(),
    };
    let mut problems = Vec::new();
    for (key, value) in std::env::vars() {
        let Some(name) = key.strip_prefix("ISOPLANE_SIGNALING_") else { continue };
        match name {
            "LISTEN" => match value.parse() {
                Ok(address) => config.listen = address,
                Err(_) => problems.push(format!("{key}: not an address such as 0.0.0.0:8080")),
            },
            "WORKSPACE" => config.workspace = value,
            "TOKEN_SECRET" => config.token_secret = value,
            "WORLDS_DIRECTORY" => config.worlds.directory = Some(value.into()),
            "ASSET_SERVER" => config.worlds.asset_server = Some(value),
            "TURN_SECRET" => config.media.turn_secret = Some(value),
            "TURN_URLS" => config.media.turn_urls = split_list(&value),
            "STUN_URLS" => config.media.stun_urls = split_list(&value),
            "SFU_SECRET" => config.media.sfu_secret = Some(value),
            "SFU_URL" => config.media.sfu_url = Some(value),
            "SFU_CONTROL_URL" => config.media.sfu_control_url = Some(value),
            "SFU_POOL" => config.media.sfu_pool.get_or_insert_with(Default::default).pool = value,
            "SFU_POOL_REDIS_URL" => config.media.sfu_pool.get_or_insert_with(Default::default).redis_url = value,
            "DATABASE_URL" => config.database_url = Some(value),
            "CLUSTER_REDIS_URL" => config.cluster.get_or_insert_with(Default::default).redis_url = value,
            "CLUSTER_ADVERTISE_URL" => config.cluster.get_or_insert_with(Default::default).advertise_url = value,
            "CLUSTER_NODE_ID" => config.cluster.get_or_insert_with(Default::default).node_id = Some(value),
            "OPEN_SFU_THRESHOLD" => match value.parse() {
                Ok(people) => config.policy.open_sfu_threshold = people,
                Err(_) => problems.push(format!("{key}: not a number of people")),
            },
            _ => problems.push(format!("{key}: unknown setting")),
        }
    }
    if problems.is_empty() { Ok(config) } else { Err(ConfigError(problems)) }
}
