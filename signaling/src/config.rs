//! The signaling server's configuration: a TOML file, every field with a default that
//! suits a laptop, checked as a whole before any socket is bound. The binaries read it
//! with [`Config::load`]: the file, then `ISOPLANE_SIGNALING_*` environment overrides.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use isoplane_service::config::{EnvKind, EnvSetting, ServiceConfig};
use serde::Deserialize;

pub use isoplane_service::config::ConfigError;

use crate::policy::PolicyConfig;

/// Everything the signaling server needs to start.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address to listen on for HTTP and WebSocket.
    pub listen: SocketAddr,
    /// The workspace this server serves; join tokens must name it.
    pub workspace: String,
    /// Secret of the HS256 join tokens. Required.
    pub token_secret: String,
    /// Serve `/v1/dev/token`, which hands anyone a member token. Development only.
    pub dev_issuer: bool,
    /// Serve the browser client at `/`.
    pub serve_web: bool,
    /// Browser origins allowed to open `/v1/ws` (e.g. `https://office.example`). Empty:
    /// any origin. Clients that send no Origin header (non-browsers) are always allowed.
    pub allowed_origins: Vec<String>,
    /// Origins (`https://board.example.com`) whose pages the browser client may embed
    /// beside the map: a world's websites and pages people open for their meeting room.
    /// Empty: none. Also sent as the client page's `Content-Security-Policy: frame-src`.
    pub embed_origins: Vec<String>,
    /// The workspace's database (`sqlite://…` or `postgres://…`, shared with the asset
    /// server): bans, mutes, admins, zone locks and the audit log. In memory when absent.
    pub database_url: Option<String>,
    /// Where worlds come from.
    pub worlds: WorldsConfig,
    pub limits: Limits,
    pub presence: PresenceConfig,
    pub moderation: ModerationConfig,
    pub policy: PolicyConfig,
    pub media: MediaSettings,
    /// Several nodes serving one workspace through Redis; a single node when absent.
    pub cluster: Option<ClusterConfig>,
}

/// How this node finds the others (docs/scaling.md).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterConfig {
    /// `redis://host:6379`.
    pub redis_url: String,
    /// This node's name among the others; random when absent.
    pub node_id: Option<String>,
    /// Where the other nodes reach this one (`http://10.0.0.5:8080`): clients connected
    /// to another node are forwarded here for the worlds this node serves. By default
    /// the listening address, when that is a concrete one.
    pub advertise_url: String,
    /// A world's lease: how long after its owner dies another node may take it over.
    pub lease_ms: u64,
    /// How often this node renews its membership and leases.
    pub heartbeat_ms: u64,
}

impl Default for ClusterConfig {
    fn default() -> ClusterConfig {
        ClusterConfig {
            redis_url: "redis://127.0.0.1:6379".into(),
            node_id: None,
            advertise_url: String::new(),
            lease_ms: 4000,
            heartbeat_ms: 1000,
        }
    }
}

/// Worlds served, by name.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WorldsConfig {
    /// A folder of `NAME.world.json` files, each served as world `NAME`.
    pub directory: Option<PathBuf>,
    /// Serve the built-in demo world as `demo`.
    pub demo: bool,
    /// Base URL of the asset server (e.g. `http://assets:8090`): serve the current version
    /// of every world of the workspace published there, read at start.
    pub asset_server: Option<String>,
    /// Where `/assets/{id}` requests that reach signaling are fetched from (the asset
    /// server's base URL), for setups with no proxy in front that sends `/assets/*` to the
    /// asset server (the all-in-one `isoplane`). By default `asset_server`.
    pub images_from: Option<String>,
    /// How often to ask the asset server whether a world's current version moved (a
    /// publish or a rollback), in milliseconds; a new version is served at once, to
    /// everyone in the world, without a restart. Default 1000; 0: never (the versions
    /// read at start are served until a restart).
    pub reload_interval_ms: Option<u64>,
}

impl WorldsConfig {
    /// How often the asset server is asked for new world versions; `None`: never.
    pub fn reload_interval(&self) -> Option<std::time::Duration> {
        match self.reload_interval_ms {
            Some(0) => None,
            ms => Some(std::time::Duration::from_millis(ms.unwrap_or(1000))),
        }
    }

    /// The asset server that `/assets/{id}` is fetched from, if any.
    pub fn images_from(&self) -> Option<&str> {
        self.images_from.as_deref().or(self.asset_server.as_deref())
    }
}

/// Limits on what clients may do; everything from outside has one.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Largest WebSocket message accepted from a client, in bytes.
    pub max_frame_bytes: usize,
    /// Sustained messages per second per connection (moves at 15 Hz plus signaling).
    pub messages_per_second: u32,
    /// Messages a connection may send in a burst above the sustained rate.
    pub message_burst: u32,
    /// Messages queued for one client before it counts as lagging.
    pub outbound_queue: usize,
    /// A client lagging this long is disconnected (`too_slow`).
    pub slow_client_seconds: u64,
    /// Seconds a new connection has to send `join`.
    pub join_timeout_seconds: u64,
    pub connections_per_user: usize,
    pub connections_per_ip: usize,
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_frame_bytes: crate::protocol::MAX_CLIENT_FRAME_BYTES,
            messages_per_second: 40,
            message_burst: 80,
            outbound_queue: 256,
            slow_client_seconds: 10,
            join_timeout_seconds: 10,
            connections_per_user: 4,
            connections_per_ip: 64,
            max_connections: 20_000,
        }
    }
}

/// Presence timing.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PresenceConfig {
    /// Presence ticks per second (at most 15).
    pub tick_hz: u32,
    /// Seconds a dropped client's avatar waits for it to resume.
    pub resume_grace_seconds: u64,
}

impl Default for PresenceConfig {
    fn default() -> PresenceConfig {
        PresenceConfig { tick_hz: 15, resume_grace_seconds: 20 }
    }
}

/// How moderation records reach users already connected.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModerationConfig {
    /// Seconds between two passes that remove, from this node's worlds, every user an
    /// active ban names. A ban normally takes effect at once (the command reaches every
    /// node); this pass bounds how late it can be when a node missed that message (the
    /// cluster's messages are at-most-once) or the ban was written by another process.
    pub recheck_seconds: u64,
}

impl Default for ModerationConfig {
    fn default() -> ModerationConfig {
        ModerationConfig { recheck_seconds: 30 }
    }
}

impl ModerationConfig {
    pub fn recheck_interval(&self) -> Duration {
        Duration::from_secs(self.recheck_seconds)
    }
}

/// STUN, TURN and SFU as handed to clients.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MediaSettings {
    pub stun_urls: Vec<String>,
    pub turn_urls: Vec<String>,
    /// Shared with the TURN server (coturn's `static-auth-secret`).
    pub turn_secret: Option<String>,
    pub turn_credential_ttl_seconds: Option<u64>,
    /// Where clients reach the SFU; no SFU when absent (zones stay peer-to-peer).
    pub sfu_url: Option<String>,
    /// Shared with the SFU, which verifies the scoped tokens.
    pub sfu_secret: Option<String>,
    /// Where signaling reaches the SFU's control API (`http://sfu:7880`); by default the
    /// host of `sfu_url`.
    pub sfu_control_url: Option<String>,
    /// Several SFU nodes, found in the SFU directory (instead of one `sfu_url`): each
    /// zone's room goes to a node with room, and moves when its node is gone.
    pub sfu_pool: Option<SfuPoolSettings>,
}

/// Where the SFU nodes of a pool report.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SfuPoolSettings {
    pub redis_url: String,
    /// The pool's name, as the SFU nodes' `directory.pool`.
    pub pool: String,
}

impl Default for SfuPoolSettings {
    fn default() -> SfuPoolSettings {
        SfuPoolSettings { redis_url: "redis://127.0.0.1:6379".into(), pool: "default".into() }
    }
}

impl Default for Config {
    fn default() -> Config {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            workspace: "default".into(),
            token_secret: String::new(),
            dev_issuer: false,
            serve_web: false,
            allowed_origins: Vec::new(),
            embed_origins: Vec::new(),
            database_url: None,
            worlds: WorldsConfig::default(),
            limits: Limits::default(),
            presence: PresenceConfig::default(),
            moderation: ModerationConfig::default(),
            policy: PolicyConfig::default(),
            media: MediaSettings::default(),
            cluster: None,
        }
    }
}

impl Config {
    /// Reads a TOML configuration (without the checks across fields).
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        isoplane_service::config::from_toml_unchecked(text, "the configuration")
    }

    /// Checks the settings that cannot be checked field by field, all at once.
    pub fn validate(&self) -> Result<(), ConfigError> {
        isoplane_service::config::validate(self)
    }

    pub fn tick_interval(&self) -> Duration {
        Duration::from_secs(1) / self.presence.tick_hz.max(1)
    }

    /// Reads a configuration file for the binaries: TOML (the defaults without a file),
    /// then the `ISOPLANE_SIGNALING_*` environment overrides; [`Config::validate`] checks
    /// the result when the server binds.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        isoplane_service::config::load_unchecked(path, std::env::vars())
    }
}

impl ServiceConfig for Config {
    const SERVICE: &'static str = "SIGNALING";
    const NAME: &'static str = "signaling";
    /// The settings operators change most.
    const ENVIRONMENT: &'static [EnvSetting] = &[
        EnvSetting::new("LISTEN", "listen", EnvKind::Text),
        EnvSetting::new("WORKSPACE", "workspace", EnvKind::Text),
        EnvSetting::new("TOKEN_SECRET", "token_secret", EnvKind::Text),
        EnvSetting::new("EMBED_ORIGINS", "embed_origins", EnvKind::List),
        EnvSetting::new("WORLDS_DIRECTORY", "worlds.directory", EnvKind::Text),
        EnvSetting::new("ASSET_SERVER", "worlds.asset_server", EnvKind::Text),
        EnvSetting::new("IMAGES_FROM", "worlds.images_from", EnvKind::Text),
        EnvSetting::new("WORLDS_RELOAD_INTERVAL_MS", "worlds.reload_interval_ms", EnvKind::Number),
        EnvSetting::new("TURN_SECRET", "media.turn_secret", EnvKind::Text),
        EnvSetting::new("TURN_URLS", "media.turn_urls", EnvKind::List),
        EnvSetting::new("STUN_URLS", "media.stun_urls", EnvKind::List),
        EnvSetting::new("SFU_SECRET", "media.sfu_secret", EnvKind::Text),
        EnvSetting::new("SFU_URL", "media.sfu_url", EnvKind::Text),
        EnvSetting::new("SFU_CONTROL_URL", "media.sfu_control_url", EnvKind::Text),
        EnvSetting::new("SFU_POOL", "media.sfu_pool.pool", EnvKind::Text),
        EnvSetting::new("SFU_POOL_REDIS_URL", "media.sfu_pool.redis_url", EnvKind::Text),
        EnvSetting::new("DATABASE_URL", "database_url", EnvKind::Text),
        EnvSetting::new("CLUSTER_REDIS_URL", "cluster.redis_url", EnvKind::Text),
        EnvSetting::new("CLUSTER_ADVERTISE_URL", "cluster.advertise_url", EnvKind::Text),
        EnvSetting::new("CLUSTER_NODE_ID", "cluster.node_id", EnvKind::Text),
        EnvSetting::new("OPEN_SFU_THRESHOLD", "policy.open_sfu_threshold", EnvKind::Number),
    ];

    fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.token_secret.len() < 16 {
            problems.push("token_secret: set a secret of at least 16 characters".to_owned());
        }
        if self.worlds.directory.is_none() && !self.worlds.demo && self.worlds.asset_server.is_none() {
            problems.push("worlds: set worlds.directory, worlds.asset_server, or worlds.demo = true".to_owned());
        }
        for origin in &self.embed_origins {
            if !isoplane_world_format::is_web_origin(origin) {
                let hint = isoplane_world_format::web_origin(origin)
                    .map_or_else(|why| why.to_owned(), |exact| format!("write it as `{exact}`"));
                problems.push(format!("embed_origins: `{origin}` is not an origin ({hint})"));
            }
        }
        if let Some(url) = &self.worlds.images_from
            && !url.starts_with("http://")
            && !url.starts_with("https://")
        {
            problems.push(format!("worlds.images_from: `{url}` is not an http:// or https:// URL"));
        }
        if let Some(url) = &self.worlds.asset_server
            && !url.starts_with("http://")
            && !url.starts_with("https://")
        {
            problems.push(format!("worlds.asset_server: `{url}` is not an http:// or https:// URL"));
        }
        if let Some(url) = &self.database_url
            && !url.starts_with("sqlite:")
            && !url.starts_with("postgres://")
            && !url.starts_with("postgresql://")
        {
            problems.push("database_url: use sqlite://PATH or postgres://…".to_owned());
        }
        if let Some(cluster) = &self.cluster {
            if self.database_url.is_none() {
                problems.push(
                    "cluster: set database_url: the nodes share bans, mutes, roles and zone locks through it"
                        .to_owned(),
                );
            }
            if !cluster.redis_url.starts_with("redis://") && !cluster.redis_url.starts_with("rediss://") {
                problems.push("cluster.redis_url: use redis://host:port".to_owned());
            }
            if cluster.advertise_url.is_empty() && self.listen.ip().is_unspecified() {
                problems.push("cluster.advertise_url: set the http:// URL other nodes reach this one at".to_owned());
            }
            if !cluster.advertise_url.is_empty()
                && !cluster.advertise_url.starts_with("http://")
                && !cluster.advertise_url.starts_with("https://")
            {
                problems.push("cluster.advertise_url: an http:// URL".to_owned());
            }
            if cluster.heartbeat_ms == 0 || cluster.lease_ms < cluster.heartbeat_ms * 2 {
                problems.push("cluster: lease_ms must be at least twice heartbeat_ms (above 0)".to_owned());
            }
        }
        if self.moderation.recheck_seconds == 0 {
            problems.push("moderation.recheck_seconds: at least 1".to_owned());
        }
        if !(1..=15).contains(&self.presence.tick_hz) {
            problems.push("presence.tick_hz: from 1 to 15".to_owned());
        }
        if self.media.turn_urls.is_empty() != self.media.turn_secret.is_none() {
            problems.push("media: turn_urls and turn_secret go together".to_owned());
        }
        let has_sfu = self.media.sfu_url.is_some() || self.media.sfu_pool.is_some();
        if has_sfu != self.media.sfu_secret.is_some() {
            problems.push("media: sfu_url (or sfu_pool) and sfu_secret go together".to_owned());
        }
        if self.media.sfu_url.is_some() && self.media.sfu_pool.is_some() {
            problems.push("media: set sfu_url for one SFU or sfu_pool for several, not both".to_owned());
        }
        if self.limits.outbound_queue == 0 || self.limits.messages_per_second == 0 {
            problems.push("limits: outbound_queue and messages_per_second must be above 0".to_owned());
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_need_only_a_secret_and_worlds() {
        let config = Config::from_toml("token_secret = \"0123456789abcdef\"\n[worlds]\ndemo = true\n").unwrap();
        assert_eq!(config.validate(), Ok(()));
        assert_eq!(config.tick_interval(), Duration::from_nanos(66_666_666));
    }

    #[test]
    fn every_problem_is_reported() {
        let config = Config::from_toml("[media]\nturn_urls = [\"turn:x\"]\n[presence]\ntick_hz = 60\n").unwrap();
        let Err(ConfigError { problems, .. }) = config.validate() else { panic!("expected errors") };
        assert_eq!(problems.len(), 4, "{problems:?}");
        assert!(Config::from_toml("typo = 1").is_err());
    }

    #[test]
    fn a_cluster_needs_a_shared_database_and_a_reachable_address() {
        let text = "token_secret = \"0123456789abcdef\"\nlisten = \"0.0.0.0:8080\"\n[worlds]\ndemo = true\n[cluster]\n";
        let Err(ConfigError { problems, .. }) = Config::from_toml(text).unwrap().validate() else {
            panic!("expected errors")
        };
        assert!(problems.iter().any(|p| p.starts_with("cluster: set database_url")), "{problems:?}");
        assert!(problems.iter().any(|p| p.starts_with("cluster.advertise_url")), "{problems:?}");
        let fine = format!("{text}advertise_url = \"http://10.0.0.5:8080\"\n");
        let fine = fine.replacen("[worlds]", "database_url = \"sqlite://x.db\"\n[worlds]", 1);
        assert_eq!(Config::from_toml(&fine).unwrap().validate(), Ok(()));
    }

    #[test]
    fn embed_origins_are_plain_origins() {
        let text = "token_secret = \"0123456789abcdef\"\nembed_origins = [\"https://Board.example.com/r\", \"ftp://files.example\", \"https://docs.example.org\"]\n[worlds]\ndemo = true\n";
        let Err(ConfigError { problems, .. }) = Config::from_toml(text).unwrap().validate() else {
            panic!("expected errors")
        };
        assert_eq!(
            problems,
            vec![
                "embed_origins: `https://Board.example.com/r` is not an origin (write it as `https://board.example.com`)",
                "embed_origins: `ftp://files.example` is not an origin (only http:// and https:// pages can be embedded)",
            ]
        );
    }
}
