//! Several signaling nodes serving one workspace, coordinated through Redis.
//!
//! - Membership: every node keeps `node:{id}` (its internal URL) alive with a short TTL,
//!   refreshed each heartbeat. A node that stops refreshing is gone within three beats.
//! - One owner per world: a lease `world:{name}` = owner's node ID, taken with `SET NX PX`
//!   by the first node a client of that world reaches, and renewed by its owner each
//!   heartbeat with a compare-and-extend script. A lease that is not renewed (the owner
//!   died) expires, and the next node a client reaches takes the world over. A node that
//!   finds it lost a lease stops serving that world at once (its clients reconnect).
//! - Messages between nodes: requests on the `rpc` channel (to everyone, or to one node),
//!   answers on each node's `reply:{id}` channel. Admin commands use them to reach users
//!   wherever their world is served. They travel as versioned wire types of their own
//!   (`cluster/wire.rs`), so nodes of two releases can share a cluster; a message of a
//!   version this node does not speak is logged and ignored (its sender counts this node
//!   as not answering).
//!
//! Every key lives under `isoplane:{workspace}:`, so workspaces (and test runs) never see
//! each other's. Nothing here is needed without a configured Redis: a single node owns
//! every world it loads.

use isoplane_service::redis_retry;
use isoplane_service::tasks::Tasks;
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use redis::aio::ConnectionManager;
use tokio::sync::{mpsc, oneshot};

use crate::config::ClusterConfig;
use crate::engine::{Moderation, ModerationError};
use crate::protocol::PersonInfo;
use wire::{ClusterMessage, WireError};

mod wire;

/// How long a node waits for the others' answers.
const REPLY_TIMEOUT: Duration = Duration::from_secs(2);

/// Extends a lease only if this node still holds it.
const RENEW: &str =
    r"if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) else return 0 end";
/// Gives a lease up only if this node holds it.
const RELEASE: &str =
    r"if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end";

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("Redis: {0}")]
    Redis(#[from] redis::RedisError),
}

/// Where a world is served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// Here. `acquired`: this node has just taken the world over.
    Local { acquired: bool },
    /// At another node, reachable at this internal URL (`http://host:port`).
    Remote { node: String, url: String },
    /// Its owner stopped answering and its lease has not expired yet: try again shortly.
    Unavailable,
}

/// What one node asks of others (sent as a [`wire::WireRequest`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClusterRequest {
    /// Carry out a moderation action in one world (if served there) or in every world.
    Moderate { world: Option<String>, action: Moderation },
    /// Everyone in the worlds served there.
    People,
}

/// What a node answers (sent as a [`wire::WireReply`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClusterReply {
    /// For one world: avatars reached. For every world: worlds where someone was reached.
    Moderated(Result<usize, ModerationError>),
    People(Vec<PersonInfo>),
}

/// What the other nodes answered.
#[derive(Debug)]
pub struct Answers {
    pub replies: Vec<ClusterReply>,
    /// Nodes that heard the request but did not answer in time (it may still be carried
    /// out there).
    pub unanswered: usize,
}

/// A request from another node, for the server to carry out here.
pub type Incoming = (ClusterRequest, oneshot::Sender<ClusterReply>);

/// This node's membership in the cluster.
pub struct Cluster {
    node: String,
    advertise_url: String,
    prefix: String,
    lease: Duration,
    heartbeat: Duration,
    client: redis::Client,
    redis: ConnectionManager,
    owned: Mutex<HashSet<String>>,
    /// When each owned world's lease was last confirmed in Redis.
    renewed: Mutex<HashMap<String, std::time::Instant>>,
    waiting: Mutex<HashMap<u64, mpsc::Sender<ClusterReply>>>,
    next_request: AtomicU64,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster").field("node", &self.node).field("prefix", &self.prefix).finish()
    }
}

impl Cluster {
    /// Connects to Redis and announces this node.
    pub async fn join(config: &ClusterConfig, workspace: &str) -> Result<Cluster, ClusterError> {
        let client = redis::Client::open(config.redis_url.as_str())?;
        let redis = client.get_connection_manager().await?;
        let node = config.node_id.clone().unwrap_or_else(|| format!("{:016x}", rand::random::<u64>()));
        let cluster = Cluster {
            node,
            advertise_url: config.advertise_url.trim_end_matches('/').to_owned(),
            prefix: format!("isoplane:{workspace}:"),
            lease: Duration::from_millis(config.lease_ms),
            heartbeat: Duration::from_millis(config.heartbeat_ms),
            client,
            redis,
            owned: Mutex::new(HashSet::new()),
            renewed: Mutex::new(HashMap::new()),
            waiting: Mutex::new(HashMap::new()),
            next_request: AtomicU64::new(1),
        };
        cluster.beat().await?;
        Ok(cluster)
    }

    pub fn node(&self) -> &str {
        &self.node
    }

    fn key(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    /// Whether this node serves `world` now.
    pub fn owns(&self, world: &str) -> bool {
        self.owned.lock().is_ok_and(|owned| owned.contains(world))
    }

    /// Refreshes this node's membership key.
    async fn beat(&self) -> Result<(), ClusterError> {
        let mut redis = self.redis.clone();
        let ttl = (self.heartbeat * 3).as_millis() as u64;
        let () = redis::cmd("SET")
            .arg(self.key(&format!("node:{}", self.node)))
            .arg(&self.advertise_url)
            .arg("PX")
            .arg(ttl)
            .query_async(&mut redis)
            .await?;
        Ok(())
    }

    /// Where `world` is served, taking it over if nobody serves it. While Redis does not
    /// answer, the worlds this node holds stay served here.
    pub async fn route(&self, world: &str) -> Result<Route, ClusterError> {
        match self.look_up(world).await {
            Err(_) if self.owns(world) => Ok(Route::Local { acquired: false }),
            other => other,
        }
    }

    async fn look_up(&self, world: &str) -> Result<Route, ClusterError> {
        let mut redis = self.redis.clone();
        let key = self.key(&format!("world:{world}"));
        for _ in 0..3 {
            let owner: Option<String> = redis::cmd("GET").arg(&key).query_async(&mut redis).await?;
            match owner {
                Some(owner) if owner == self.node => {
                    let acquired = self.owned.lock().map(|mut owned| owned.insert(world.to_owned())).unwrap_or(false);
                    if acquired {
                        self.confirm(world);
                    }
                    return Ok(Route::Local { acquired });
                }
                Some(owner) => {
                    let url: Option<String> =
                        redis::cmd("GET").arg(self.key(&format!("node:{owner}"))).query_async(&mut redis).await?;
                    return Ok(url.map_or(Route::Unavailable, |url| Route::Remote { node: owner, url }));
                }
                None => {
                    let taken: Option<String> = redis::cmd("SET")
                        .arg(&key)
                        .arg(&self.node)
                        .arg("NX")
                        .arg("PX")
                        .arg(self.lease.as_millis() as u64)
                        .query_async(&mut redis)
                        .await?;
                    if taken.is_some() {
                        if let Ok(mut owned) = self.owned.lock() {
                            owned.insert(world.to_owned());
                        }
                        self.confirm(world);
                        tracing::info!(world, node = %self.node, "took the world over");
                        return Ok(Route::Local { acquired: true });
                    }
                    // Another node took it between GET and SET: look again.
                }
            }
        }
        Ok(Route::Unavailable)
    }

    /// The node serving `world`, if another live one does.
    pub async fn remote_owner(&self, world: &str) -> Result<Option<String>, ClusterError> {
        let mut redis = self.redis.clone();
        let owner: Option<String> =
            redis::cmd("GET").arg(self.key(&format!("world:{world}"))).query_async(&mut redis).await?;
        Ok(owner.filter(|owner| *owner != self.node))
    }

    /// Sends a request to one node (`to`) or to every other node, and gathers the
    /// answers that arrive within a couple of seconds, with how many did not.
    pub async fn ask(&self, to: Option<&str>, request: ClusterRequest) -> Result<Answers, ClusterError> {
        let id = self.next_request.fetch_add(1, Ordering::Relaxed);
        let (replies, mut answers) = mpsc::channel(64);
        if let Ok(mut waiting) = self.waiting.lock() {
            waiting.insert(id, replies);
        }
        let message =
            ClusterMessage::Request { id, from: self.node.clone(), to: to.map(str::to_owned), request: request.into() };
        let text = wire::encode(&message);
        let mut redis = self.redis.clone();
        let receivers: usize = match redis::cmd("PUBLISH").arg(self.key("rpc")).arg(text).query_async(&mut redis).await
        {
            Ok(receivers) => receivers,
            Err(error) => {
                self.forget(id);
                return Err(error.into());
            }
        };
        // Every node hears the channel, this one included; only the addressed answer.
        let expected = if to.is_some() { 1 } else { receivers.saturating_sub(1) };
        let mut gathered = Vec::new();
        let deadline = tokio::time::Instant::now() + REPLY_TIMEOUT;
        while gathered.len() < expected {
            match tokio::time::timeout_at(deadline, answers.recv()).await {
                Ok(Some(reply)) => gathered.push(reply),
                _ => {
                    tracing::warn!(answered = gathered.len(), expected, "not every node answered in time");
                    break;
                }
            }
        }
        self.forget(id);
        Ok(Answers { unanswered: expected.saturating_sub(gathered.len()), replies: gathered })
    }

    fn forget(&self, id: u64) {
        if let Ok(mut waiting) = self.waiting.lock() {
            waiting.remove(&id);
        }
    }

    /// Keeps this node's membership and leases alive, answers other nodes' requests
    /// (through `incoming`) and reports lost worlds (through `lost`), until shutdown; then
    /// gives every lease up so other nodes take the worlds over at once. Its own tasks
    /// (hearing the channels, sending answers) go through `tasks`.
    pub async fn run(
        self: std::sync::Arc<Self>,
        incoming: mpsc::Sender<Incoming>,
        lost: mpsc::Sender<String>,
        tasks: Tasks,
    ) {
        let shutdown = tasks.shutdown().clone();
        tasks.spawn_until_shutdown(self.clone().listen(incoming, tasks.clone()));
        let mut ticker = tokio::time::interval(self.heartbeat);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                _ = ticker.tick() => {}
            }
            if let Err(error) = self.beat().await {
                tracing::warn!(%error, "cannot refresh this node's membership");
            }
            for world in self.renew_leases().await {
                tracing::warn!(world, "lost the world's lease: another node serves it now");
                let _ = lost.send(world).await;
            }
        }
        self.release_all().await;
    }

    fn confirm(&self, world: &str) {
        if let Ok(mut renewed) = self.renewed.lock() {
            renewed.insert(world.to_owned(), std::time::Instant::now());
        }
    }

    /// Extends every lease this node holds; returns the worlds it must stop serving: a
    /// lease another node holds now, or one not confirmed for a whole lease (Redis out of
    /// reach: another node may have taken the world over meanwhile).
    async fn renew_leases(&self) -> Vec<String> {
        let worlds: Vec<String> = self.owned.lock().map(|owned| owned.iter().cloned().collect()).unwrap_or_default();
        let script = redis::Script::new(RENEW);
        let mut redis = self.redis.clone();
        let mut lost = Vec::new();
        for world in worlds {
            let key = self.key(&format!("world:{world}"));
            let lease = self.lease.as_millis() as u64;
            let renewed: Result<i64, _> = script.key(&key).arg(&self.node).arg(lease).invoke_async(&mut redis).await;
            let reachable = renewed.is_ok();
            let held = match renewed {
                Ok(1) => true,
                // The key is gone (Redis restarted empty, or failed over): take it back
                // unless another node already has.
                Ok(_) => {
                    let taken: Result<Option<String>, _> = redis::cmd("SET")
                        .arg(&key)
                        .arg(&self.node)
                        .arg("NX")
                        .arg("PX")
                        .arg(lease)
                        .query_async(&mut redis)
                        .await;
                    matches!(taken, Ok(Some(_)))
                }
                Err(error) => {
                    tracing::warn!(%error, world, "cannot renew a world's lease");
                    let confirmed = self.renewed.lock().ok().and_then(|r| r.get(&world).copied());
                    // Still within the lease it last confirmed: nobody else can have it yet.
                    confirmed.is_some_and(|at| at.elapsed() < self.lease)
                }
            };
            if held {
                if reachable {
                    self.confirm(&world);
                }
                continue;
            }
            if let Ok(mut owned) = self.owned.lock() {
                owned.remove(&world);
            }
            if let Ok(mut renewed) = self.renewed.lock() {
                renewed.remove(&world);
            }
            lost.push(world);
        }
        lost
    }

    async fn release_all(&self) {
        let worlds: Vec<String> = self.owned.lock().map(|mut owned| owned.drain().collect()).unwrap_or_default();
        let script = redis::Script::new(RELEASE);
        let mut redis = self.redis.clone();
        for world in worlds {
            let _: Result<i64, _> =
                script.key(self.key(&format!("world:{world}"))).arg(&self.node).invoke_async(&mut redis).await;
        }
        let _: Result<i64, _> =
            redis::cmd("DEL").arg(self.key(&format!("node:{}", self.node))).query_async(&mut redis).await;
    }

    /// Hears the `rpc` channel and this node's `reply:` channel.
    async fn listen(self: std::sync::Arc<Self>, incoming: mpsc::Sender<Incoming>, tasks: Tasks) {
        let shutdown = tasks.shutdown();
        let (rpc, replies) = (self.key("rpc"), self.key(&format!("reply:{}", self.node)));
        loop {
            let subscribe = || async {
                let mut pubsub = self.client.get_async_pubsub().await?;
                pubsub.subscribe(&rpc).await?;
                pubsub.subscribe(&replies).await?;
                Ok::<_, redis::RedisError>(pubsub)
            };
            let what = "subscribe to the cluster's channels";
            let Some(pubsub) = redis_retry::until_ready(what, self.heartbeat, shutdown, subscribe).await else {
                return;
            };
            let mut messages = pubsub.into_on_message();
            while let Some(message) = messages.next().await {
                let Ok(payload) = message.get_payload::<String>() else { continue };
                match (wire::decode(&payload), message.get_channel_name() == replies) {
                    (Ok(ClusterMessage::Reply { id, reply }), true) => self.deliver_reply(id, reply.into()),
                    (Ok(ClusterMessage::Request { id, from, to, request }), false) => {
                        self.answer(id, from, to, request.into(), &incoming, &tasks);
                    }
                    (Ok(_), _) => tracing::warn!("a cluster message on the wrong channel; ignored"),
                    // Another version: a node of a newer or older release during an upgrade.
                    (Err(error @ WireError::UnknownVersion(_)), _) => {
                        tracing::warn!(%error, "a cluster message this node cannot read; ignored");
                    }
                    (Err(error), _) => tracing::warn!(%error, "an unreadable message on the cluster's channels"),
                }
            }
            tracing::warn!("the cluster's channels closed; subscribing again");
        }
    }

    fn deliver_reply(&self, id: u64, reply: ClusterReply) {
        let waiting = self.waiting.lock().ok().and_then(|waiting| waiting.get(&id).cloned());
        if let Some(waiting) = waiting {
            let _ = waiting.try_send(reply);
        }
    }

    /// Runs another node's request here (through the server) and sends the answer back.
    fn answer(
        &self,
        id: u64,
        from: String,
        to: Option<String>,
        request: ClusterRequest,
        incoming: &mpsc::Sender<Incoming>,
        tasks: &Tasks,
    ) {
        if from == self.node || to.as_ref().is_some_and(|to| *to != self.node) {
            return;
        }
        let (reply, answer) = oneshot::channel();
        if incoming.try_send((request, reply)).is_err() {
            tracing::warn!("too many cluster requests at once; one was dropped");
            return;
        }
        let mut redis = self.redis.clone();
        let channel = self.key(&format!("reply:{from}"));
        tasks.spawn_until_shutdown(async move {
            let Ok(reply) = answer.await else { return };
            let text = wire::encode(&ClusterMessage::Reply { id, reply: reply.into() });
            let _: Result<i64, _> = redis::cmd("PUBLISH").arg(channel).arg(text).query_async(&mut redis).await;
        });
    }
}
