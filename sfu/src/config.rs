//! `Config`: everything an operator sets, read from TOML with `ISOPLANE_SFU_*`
//! environment overrides (isoplane-service's layered configuration), and checked by
//! [`Config::validate`] before any socket is bound.

use std::net::{IpAddr, SocketAddr};

use isoplane_service::config::{EnvKind, EnvSetting, ServiceConfig};
use isoplane_service::object_storage::StoreConfig;
use serde::{Deserialize, Serialize};

pub use isoplane_service::config::ConfigError;

/// The SFU's configuration. Every field but the secret has a default.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// HTTP: the clients' WebSocket (`/v1/sfu`), the control API (`/v1/rooms`), health
    /// and metrics.
    pub listen_http: SocketAddr,
    /// The first worker's UDP media port; worker `n` listens on this port + `n` (all
    /// ephemeral when it is 0). Open `workers` ports from here.
    pub listen_udp: SocketAddr,
    /// ICE-TCP (RFC 6544, passive) for networks that block UDP; `None` (`"off"`)
    /// disables it.
    #[serde(with = "isoplane_service::config::switchable")]
    pub listen_tcp: Option<SocketAddr>,
    /// The address put in ICE candidates. Needed when `listen_udp` is a wildcard.
    pub public_ip: Option<IpAddr>,
    /// Shared with signaling: it signs room tokens and control tokens with it.
    pub secret: String,
    /// Worker threads, each owning a share of the rooms; 0 = one per core.
    pub workers: usize,
    pub limits: Limits,
    /// Report this node and its load in a Redis SFU directory, where signaling nodes
    /// find it (docs/scaling.md). Without it, signaling is configured with this SFU's URL.
    pub directory: Option<DirectoryConfig>,
    /// Where recordings are written (docs/recording.md).
    pub recording: RecordingConfig,
}

/// Recording rooms to the object store (the asset server's, which lists and serves them).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RecordingConfig {
    /// Off by default: the control API then refuses to record.
    pub enabled: bool,
    /// The store; a local one defaults to `isoplane-data/objects` (the asset server's
    /// default).
    pub store: StoreConfig,
}

impl RecordingConfig {
    /// The local store's directory when none is configured.
    pub const DEFAULT_DIRECTORY: &'static str = "isoplane-data/objects";
}

/// This node's entry in the SFU directory.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DirectoryConfig {
    /// `redis://host:6379`.
    pub redis_url: String,
    /// The pool of SFU nodes this one belongs to (signaling's `sfu_pool`).
    pub pool: String,
    /// This node's name; random when absent.
    pub node_id: Option<String>,
    /// Where clients reach this node (`wss://sfu-2.example/v1/sfu`); by default
    /// `ws://` + the HTTP listening address.
    pub public_url: Option<String>,
    /// Where signaling reaches the control API (`http://10.0.0.7:7880`); by default
    /// `http://` + the HTTP listening address.
    pub control_url: Option<String>,
    /// Participants this node takes at most before signaling sends new rooms elsewhere.
    pub capacity: u64,
}

impl Default for DirectoryConfig {
    fn default() -> Self {
        DirectoryConfig {
            redis_url: "redis://127.0.0.1:6379".into(),
            pool: "default".into(),
            node_id: None,
            public_url: None,
            control_url: None,
            capacity: 1000,
        }
    }
}

/// Limits on what one peer or room may take.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    pub participants_per_room: u32,
    /// Sending tracks (m-lines) per participant.
    pub tracks_per_participant: u32,
    /// Incoming bits per second per publisher; a peer far above it for a few seconds is
    /// dropped.
    pub publisher_bitrate_bps: u64,
    /// Keyframe requests forwarded to one publisher's layer, at most one per this many
    /// milliseconds.
    pub keyframe_request_interval_ms: u64,
    /// Data channel messages relayed per participant per second, and their size.
    pub data_messages_per_sec: u32,
    pub data_message_bytes: usize,
    /// A WebSocket frame from a client larger than this is refused.
    pub signal_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            participants_per_room: 100,
            tracks_per_participant: 4,
            publisher_bitrate_bps: 6_000_000,
            keyframe_request_interval_ms: 500,
            data_messages_per_sec: 50,
            data_message_bytes: 16 * 1024,
            signal_bytes: 256 * 1024,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen_http: SocketAddr::from(([127, 0, 0, 1], 7880)),
            listen_udp: SocketAddr::from(([0, 0, 0, 0], 7882)),
            listen_tcp: Some(SocketAddr::from(([0, 0, 0, 0], 7881))),
            public_ip: None,
            secret: String::new(),
            workers: 0,
            limits: Limits::default(),
            directory: None,
            recording: RecordingConfig::default(),
        }
    }
}

impl Config {
    /// Loopback only, ephemeral ports, two workers: what tests and the all-in-one
    /// binary's embedded SFU use.
    pub fn for_loopback(secret: &str) -> Config {
        Config {
            listen_http: SocketAddr::from(([127, 0, 0, 1], 0)),
            listen_udp: SocketAddr::from(([127, 0, 0, 1], 0)),
            listen_tcp: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
            public_ip: None,
            secret: secret.to_owned(),
            workers: 2,
            limits: Limits::default(),
            directory: None,
            recording: RecordingConfig::default(),
        }
    }

    /// Same as [`Config::for_loopback`].
    pub fn for_tests(secret: &str) -> Config {
        Config::for_loopback(secret)
    }

    /// Checks the rules between fields; call before binding anything.
    pub fn validate(&self) -> Result<(), ConfigError> {
        isoplane_service::config::validate(self)
    }

    /// The IP clients send media to.
    pub fn candidate_ip(&self) -> IpAddr {
        self.public_ip.unwrap_or(self.listen_udp.ip())
    }

    /// The number of worker threads to run.
    pub fn worker_count(&self) -> usize {
        if self.workers > 0 {
            return self.workers;
        }
        std::thread::available_parallelism().map(usize::from).unwrap_or(1)
    }
}

impl ServiceConfig for Config {
    const SERVICE: &'static str = "SFU";
    const NAME: &'static str = "SFU";
    const ENVIRONMENT: &'static [EnvSetting] = &[
        EnvSetting::new("LISTEN_HTTP", "listen_http", EnvKind::Text),
        EnvSetting::new("LISTEN_UDP", "listen_udp", EnvKind::Text),
        EnvSetting::new("LISTEN_TCP", "listen_tcp", EnvKind::Switchable),
        EnvSetting::new("PUBLIC_IP", "public_ip", EnvKind::Text),
        EnvSetting::new("SECRET", "secret", EnvKind::Text),
        EnvSetting::new("WORKERS", "workers", EnvKind::Number),
        EnvSetting::new("PARTICIPANTS_PER_ROOM", "limits.participants_per_room", EnvKind::Number),
        EnvSetting::new("TRACKS_PER_PARTICIPANT", "limits.tracks_per_participant", EnvKind::Number),
        EnvSetting::new("PUBLISHER_BITRATE_BPS", "limits.publisher_bitrate_bps", EnvKind::Number),
        EnvSetting::new("DIRECTORY_REDIS_URL", "directory.redis_url", EnvKind::Text),
        EnvSetting::new("DIRECTORY_POOL", "directory.pool", EnvKind::Text),
        EnvSetting::new("NODE_ID", "directory.node_id", EnvKind::Text),
        EnvSetting::new("PUBLIC_URL", "directory.public_url", EnvKind::Text),
        EnvSetting::new("CONTROL_URL", "directory.control_url", EnvKind::Text),
        EnvSetting::new("CAPACITY", "directory.capacity", EnvKind::Number),
        EnvSetting::new("RECORDING", "recording.enabled", EnvKind::Flag),
        EnvSetting::new("RECORDING_STORE", "recording.store.kind", EnvKind::Text),
        EnvSetting::new("RECORDING_DIRECTORY", "recording.store.directory", EnvKind::Text),
        EnvSetting::new("RECORDING_S3_ENDPOINT", "recording.store.s3.endpoint", EnvKind::Text),
        EnvSetting::new("RECORDING_S3_BUCKET", "recording.store.s3.bucket", EnvKind::Text),
        EnvSetting::new("RECORDING_S3_REGION", "recording.store.s3.region", EnvKind::Text),
        EnvSetting::new("RECORDING_S3_ACCESS_KEY_ID", "recording.store.s3.access_key_id", EnvKind::Text),
        EnvSetting::new("RECORDING_S3_SECRET_ACCESS_KEY", "recording.store.s3.secret_access_key", EnvKind::Text),
        EnvSetting::new("RECORDING_S3_VIRTUAL_HOSTED_STYLE", "recording.store.s3.virtual_hosted_style", EnvKind::Flag),
    ];

    fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.secret.len() < 16 {
            problems.push("secret: set a shared secret of at least 16 bytes (the one signaling's sfu_secret has)");
        }
        if self.candidate_ip().is_unspecified() {
            problems.push("public_ip: listen_udp is a wildcard address: set the IP clients reach this server at");
        }
        if self.limits.participants_per_room == 0 || self.limits.tracks_per_participant == 0 {
            problems.push("limits: participants_per_room and tracks_per_participant must be at least 1");
        }
        if let Some(directory) = &self.directory
            && self.listen_http.ip().is_unspecified()
            && (directory.public_url.is_none() || directory.control_url.is_none())
        {
            problems.push(
                "directory: listen_http is a wildcard address: set public_url and control_url, the addresses clients and signaling reach this node at",
            );
        }
        if self.limits.data_message_bytes == 0 || self.limits.signal_bytes < 4096 {
            problems.push("limits: data_message_bytes must be at least 1 and signal_bytes at least 4096");
        }
        let mut problems: Vec<String> = problems.into_iter().map(str::to_owned).collect();
        let last_port = usize::from(self.listen_udp.port()) + self.worker_count() - 1;
        if self.listen_udp.port() != 0 && last_port > usize::from(u16::MAX) {
            problems.push(format!(
                "listen_udp: {} workers listen on ports {} to {last_port}, past 65535: lower the port or the workers",
                self.worker_count(),
                self.listen_udp.port()
            ));
        }
        if self.recording.enabled {
            problems.extend(self.recording.store.problems("recording.store"));
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let vars = vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned()));
        isoplane_service::config::load_unchecked(None, vars)
    }

    #[test]
    fn env_overrides_and_validation() {
        assert!(Config::default().validate().is_err(), "no secret");
        let overrides = [
            ("ISOPLANE_SFU_SECRET", "0123456789abcdef"),
            ("ISOPLANE_SFU_LISTEN_TCP", "off"),
            ("ISOPLANE_SFU_WORKERS", "3"),
            ("OTHER", "x"),
        ];
        let config = load(&overrides).expect("valid overrides");
        assert_eq!(config.listen_tcp, None);
        assert_eq!(config.worker_count(), 3);
        let error = config.validate().expect_err("wildcard UDP address without a public IP");
        assert!(error.to_string().contains("public_ip"), "{error}");
        let config = load(&[overrides.as_slice(), &[("ISOPLANE_SFU_PUBLIC_IP", "127.0.0.1")]].concat()).expect("an IP");
        config.validate().expect("now valid");
        assert!(load(&[("ISOPLANE_SFU_NOPE", "1")]).is_err());
        assert!(load(&[("ISOPLANE_SFU_WORKERS", "many")]).is_err());
        let directory = load(&[("ISOPLANE_SFU_CAPACITY", "9")]).expect("a capacity");
        assert_eq!(directory.directory.map(|d| (d.capacity, d.pool)), Some((9, DirectoryConfig::default().pool)));
    }

    #[test]
    fn toml_refuses_unknown_fields() {
        let error =
            isoplane_service::config::from_toml::<Config>("secret = 'x'\nlisten_udpp = '0.0.0.0:1'", "sfu.toml")
                .expect_err("typo");
        assert!(error.to_string().contains("listen_udpp"), "{error}");
    }
}
