//! The signaling server's I/O shell: HTTP routes, WebSocket connections, world tasks.
//!
//! [`bind`] checks the configuration and loads every world before it binds a socket, so
//! a bad config or a broken world file stops the start with a clear message.
//! [`BoundServer::run`] serves until the shutdown token is cancelled, then tells every
//! client to reconnect, and returns once every task has finished.
//!
//! # Layout
//! - this file: start (`bind`), run and drain, and the tasks that serve the cluster.
//! - `worlds.rs`: the world files read at start (demo, folder, asset server);
//!   `world_updates.rs`: new versions published on the asset server, taken live.
//! - `routes.rs`: the HTTP routes (WebSocket upgrade, world files, admin commands, dev
//!   tokens, health and metrics); `web.rs`: the embedded browser client.
//! - `media.rs`: the engines' media settings and the SFU pool's directory.
//! - `chat.rs`: the chat history's queue to the database, and reading it back.
//! - `connection.rs`, `world_task.rs`, `moderation.rs`, `cluster.rs`, `proxy.rs`,
//!   `sfu_control.rs`, `limits.rs`, `metrics.rs`: see docs/architecture.md.

mod asset_proxy;
mod chat;
pub mod cluster;
mod connection;
mod limits;
mod media;
mod metrics;
mod moderation;
mod proxy;
mod routes;
pub mod sfu_control;
mod web;
pub mod whip;
mod world_task;
mod world_updates;
mod worlds;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use bytes::Bytes;
use isoplane_service::tasks::Tasks;
use isoplane_world_format::{ContentId, World};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::auth::TokenKey;
use crate::config::{Config, ConfigError};
use crate::engine::{EngineConfig, Moderation, WorldEngine};
use crate::protocol::WorldRef;
use limits::{ConnectionLimits, Counter};
pub use metrics::Metrics;
use world_task::WorldCommand;
use world_task::unix_ms;
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
    /// Replaced when a new version is published (world_updates.rs).
    file: std::sync::RwLock<ServedFile>,
    commands: mpsc::Sender<WorldCommand>,
}

/// One version of a world file, as `GET /v1/worlds/{name}` serves it.
#[derive(Clone)]
struct ServedFile {
    json: Bytes,
    /// Its content ID, the ETag and the `version` in `welcome` and `world_changed`.
    version: String,
}

impl WorldEntry {
    fn served(&self) -> ServedFile {
        // A panic elsewhere cannot leave the pair half-written: it is replaced whole.
        self.file.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }
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
    /// Every background task; stops with `shutdown`, which it carries.
    tasks: Tasks,
    moderator: moderation::Moderator,
    /// The workspace's database (moderation records, chat history).
    metadata: isoplane_metadata::Metadata,
    /// The other signaling nodes, when this one is part of a cluster.
    cluster: Option<Arc<cluster::Cluster>>,
    /// Broadcasters' streams published here (whip.rs).
    sessions: whip::Sessions,
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

/// Connections to the moderation database: every join reads the user's records (twice,
/// one query each), and after a restart everyone joins at once.
const DATABASE_CONNECTIONS: u32 = 16;

/// The moderation database: the configured one, or one in memory (bans and the audit
/// log then last only as long as the process, which the log says).
async fn open_database(config: &Config) -> Result<isoplane_metadata::Metadata, StartError> {
    match &config.database_url {
        Some(url) => Ok(isoplane_metadata::Metadata::connect(url, DATABASE_CONNECTIONS).await?),
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
        media: media::media_config(&config),
        embed_origins: config.embed_origins.clone(),
    };
    let (now, unix) = (Instant::now(), unix_now());
    let mut worlds = HashMap::new();
    let mut engines = Vec::new();
    let named = worlds::gather(&config, given).await?;
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
        // Chat IDs made here differ from those of any other engine this world had.
        engine.tag_chat_ids(rand::random());
        // What was said is read back (within the history's bounds). Chat history is not a
        // record that must hold, like a ban: a world whose history cannot be read starts
        // without it.
        match chat::load(&metadata, &config.workspace, &name, unix_ms()).await {
            Ok(history) => engine.load_chat(history, unix_ms()),
            Err(error) => tracing::error!(%error, world = %name, "cannot read the chat history: starting without it"),
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
        let file = std::sync::RwLock::new(ServedFile { json: Bytes::from(text), version });
        worlds.insert(name, WorldEntry { file, commands });
    }
    let limits = ConnectionLimits {
        total: Counter::new(config.limits.max_connections),
        per_ip: Counter::new(config.limits.connections_per_ip),
        per_user: Counter::new(config.limits.connections_per_user),
    };
    let senders = worlds.iter().map(|(name, entry)| (name.clone(), entry.commands.clone())).collect();
    let moderator = moderation::Moderator::new(metadata.clone(), config.workspace.clone(), senders, cluster.clone());
    let shutdown = CancellationToken::new();
    let state = Arc::new(AppState {
        moderator,
        metadata,
        cluster,
        token_key: TokenKey::new(config.token_secret.as_bytes()),
        config,
        worlds,
        metrics: Arc::new(Metrics::default()),
        limits,
        shutdown: shutdown.clone(),
        next_conn: AtomicU64::new(1),
        tasks: Tasks::new(shutdown),
        sessions: whip::Sessions::default(),
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
        let sfu = media::sfu_control(&state.config, &state.tasks);
        // The chat writer drains its queue until the last world task (its last sender)
        // has stopped, so what was said before a shutdown is stored.
        let (chat_writes, chat_queue) = mpsc::channel(chat::CHAT_WRITE_QUEUE);
        state.tasks.spawn(chat::run_writer(state.metadata.clone(), chat_queue, state.metrics.clone()));
        for (engine, receiver) in engines {
            let (metrics, stop) = (state.metrics.clone(), state.shutdown.clone());
            let chat =
                chat::ChatWriter::new(chat_writes.clone(), &state.config.workspace, engine.name(), metrics.clone());
            state.tasks.spawn(world_task::run(engine, receiver, metrics, slow_client, sfu.clone(), chat, stop));
        }
        drop(chat_writes);
        state.tasks.spawn_until_shutdown(recheck_moderation(state.clone()));
        if let Some(pool) = state.config.media.sfu_pool.clone() {
            state.tasks.spawn(media::follow_sfu_directory(state.clone(), pool));
        } else if let Some(node) = media::static_sfu(&state.config) {
            state.tasks.spawn(media::watch_static_sfu(state.clone(), node));
        }
        if let Some(asset_server) = state.config.worlds.asset_server.clone()
            && let Some(interval) = state.config.worlds.reload_interval()
        {
            state.tasks.spawn_until_shutdown(world_updates::follow(state.clone(), asset_server, interval));
        }
        if let Some(cluster) = state.cluster.clone() {
            let (incoming, requests) = mpsc::channel(256);
            let (lost, lost_worlds) = mpsc::channel(64);
            state.tasks.spawn(cluster.run(incoming, lost, state.tasks.clone()));
            state.tasks.spawn(answer_nodes(state.clone(), requests));
            state.tasks.spawn(evacuate_lost(state.clone(), lost_worlds));
        }
        let tasks = state.tasks.clone();
        let app = routes::router(state);
        let serving = axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
            .with_graceful_shutdown(async move { shutdown.cancelled().await });
        let result = serving.await;
        // Connections and worlds follow the same signal, then the server waits for them.
        tasks.stop(Duration::from_secs(5)).await;
        result
    }
}

/// Every `moderation.recheck_seconds`, re-applies to this node's worlds the moderation
/// records its commands may have missed (cluster messages are at-most-once): banned
/// users and users kicked since they joined are removed, recorded mutes applied. Each
/// takes effect within that bound even when its command never reached this node.
async fn recheck_moderation(state: Arc<AppState>) {
    let mut ticker = tokio::time::interval(state.config.moderation.recheck_interval());
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first tick is immediate; every join was just checked against the bans anyway.
    ticker.tick().await;
    loop {
        ticker.tick().await;
        match state.moderator.enforce_bans().await {
            Ok(0) => {}
            Ok(removed) => {
                state.metrics.bans_enforced_late.inc_by(removed as u64);
                tracing::warn!(removed, "removed banned users the ban command had not reached on this node");
            }
            Err(error) => tracing::error!(%error, "cannot re-check connected users against the bans"),
        }
        match state.moderator.enforce_kicks().await {
            Ok(0) => {}
            Ok(removed) => {
                state.metrics.kicks_enforced_late.inc_by(removed as u64);
                tracing::warn!(removed, "removed kicked users the kick command had not reached on this node");
            }
            Err(error) => tracing::error!(%error, "cannot re-check connected users against the kicks"),
        }
        match state.moderator.enforce_mutes().await {
            Ok(0) => {}
            Ok(changed) => {
                state.metrics.mutes_enforced_late.inc_by(changed as u64);
                tracing::warn!(changed, "applied mutes their command had not reached on this node");
            }
            Err(error) => tracing::error!(%error, "cannot re-check connected users against the mutes"),
        }
    }
}

/// Carries out other nodes' requests in this node's worlds.
async fn answer_nodes(state: Arc<AppState>, mut requests: mpsc::Receiver<cluster::Incoming>) {
    while let Some((request, reply)) = requests.recv().await {
        let tasks = state.tasks.clone();
        let state = state.clone();
        tasks.spawn(async move {
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

/// Reads the configuration for the binaries; see [`Config::load`].
pub fn load_config(path: Option<&Path>) -> Result<Config, ConfigError> {
    Config::load(path)
}
