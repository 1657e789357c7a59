//! `Config`: everything an operator sets, read from TOML with `ISOPLANE_SFU_*`
//! environment overrides, and checked by [`Config::validate`] before any socket is bound.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// The SFU's configuration. Every field but the secret has a default.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// HTTP: the clients' WebSocket (`/v1/sfu`), the control API (`/v1/rooms`), health
    /// and metrics.
    pub listen_http: SocketAddr,
    /// The one UDP port every peer's media uses.
    pub listen_udp: SocketAddr,
    /// ICE-TCP (RFC 6544, passive) for networks that block UDP; `None` disables it.
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
        }
    }
}

/// A configuration that cannot run.
#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("config file {path}: {source}")]
    Toml { path: String, source: Box<toml::de::Error> },
    #[error("environment variable {name}: {message}")]
    Env { name: String, message: String },
    #[error("config field {field}: {message}")]
    Invalid { field: &'static str, message: String },
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
        }
    }

    /// Same as [`Config::for_loopback`].
    pub fn for_tests(secret: &str) -> Config {
        Config::for_loopback(secret)
    }

    /// Parses TOML text (`path` only names the file in errors).
    pub fn from_toml(text: &str, path: &str) -> Result<Config, ConfigError> {
        toml::from_str(text).map_err(|source| ConfigError::Toml { path: path.into(), source: Box::new(source) })
    }

    /// Applies `ISOPLANE_SFU_*` overrides from `vars` (pass `std::env::vars()`).
    pub fn apply_env(&mut self, vars: impl IntoIterator<Item = (String, String)>) -> Result<(), ConfigError> {
        fn parse<T: FromStr>(name: &str, value: &str) -> Result<T, ConfigError>
        where
            T::Err: fmt::Display,
        {
            value.parse().map_err(|e: T::Err| ConfigError::Env { name: name.into(), message: e.to_string() })
        }
        for (name, value) in vars {
            let Some(key) = name.strip_prefix("ISOPLANE_SFU_") else { continue };
            match key {
                "LISTEN_HTTP" => self.listen_http = parse(&name, &value)?,
                "LISTEN_UDP" => self.listen_udp = parse(&name, &value)?,
                "LISTEN_TCP" => {
                    self.listen_tcp =
                        if value.is_empty() || value == "off" { None } else { Some(parse(&name, &value)?) }
                }
                "PUBLIC_IP" => self.public_ip = Some(parse(&name, &value)?),
                "SECRET" => self.secret = value,
                "WORKERS" => self.workers = parse(&name, &value)?,
                "PARTICIPANTS_PER_ROOM" => self.limits.participants_per_room = parse(&name, &value)?,
                "TRACKS_PER_PARTICIPANT" => self.limits.tracks_per_participant = parse(&name, &value)?,
                "PUBLISHER_BITRATE_BPS" => self.limits.publisher_bitrate_bps = parse(&name, &value)?,
                "DIRECTORY_REDIS_URL" => self.directory.get_or_insert_with(Default::default).redis_url = value,
                "DIRECTORY_POOL" => self.directory.get_or_insert_with(Default::default).pool = value,
                "NODE_ID" => self.directory.get_or_insert_with(Default::default).node_id = Some(value),
                "PUBLIC_URL" => self.directory.get_or_insert_with(Default::default).public_url = Some(value),
                "CONTROL_URL" => self.directory.get_or_insert_with(Default::default).control_url = Some(value),
                "CAPACITY" => self.directory.get_or_insert_with(Default::default).capacity = parse(&name, &value)?,
                _ => return Err(ConfigError::Env { name, message: "unknown setting".into() }),
            }
        }
        Ok(())
    }

    /// Checks the rules between fields; call before binding anything.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |field, message: &str| Err(ConfigError::Invalid { field, message: message.into() });
        if self.secret.len() < 16 {
            return invalid("secret", "set a shared secret of at least 16 bytes (the one signaling's sfu_secret has)");
        }
        if self.candidate_ip().is_unspecified() {
            return invalid("public_ip", "listen_udp is a wildcard address: set the IP clients reach this server at");
        }
        if self.limits.participants_per_room == 0 || self.limits.tracks_per_participant == 0 {
            return invalid("limits", "participants_per_room and tracks_per_participant must be at least 1");
        }
        if let Some(directory) = &self.directory
            && self.listen_http.ip().is_unspecified()
            && (directory.public_url.is_none() || directory.control_url.is_none())
        {
            return invalid(
                "directory",
                "listen_http is a wildcard address: set public_url and control_url, the addresses clients and signaling reach this node at",
            );
        }
        if self.limits.data_message_bytes == 0 || self.limits.signal_bytes < 4096 {
            return invalid("limits", "data_message_bytes must be at least 1 and signal_bytes at least 4096");
        }
        Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_overrides_and_validation() {
        let mut config = Config::default();
        assert!(config.validate().is_err(), "no secret");
        config
            .apply_env([
                ("ISOPLANE_SFU_SECRET".to_string(), "0123456789abcdef".to_string()),
                ("ISOPLANE_SFU_LISTEN_TCP".to_string(), "off".to_string()),
                ("ISOPLANE_SFU_WORKERS".to_string(), "3".to_string()),
                ("OTHER".to_string(), "x".to_string()),
            ])
            .expect("valid overrides");
        assert_eq!(config.listen_tcp, None);
        assert_eq!(config.worker_count(), 3);
        let error = config.validate().expect_err("wildcard UDP address without a public IP");
        assert!(error.to_string().contains("public_ip"), "{error}");
        config.apply_env([("ISOPLANE_SFU_PUBLIC_IP".to_string(), "127.0.0.1".to_string())]).expect("an IP");
        config.validate().expect("now valid");
        assert!(config.apply_env([("ISOPLANE_SFU_NOPE".to_string(), "1".to_string())]).is_err());
        assert!(config.apply_env([("ISOPLANE_SFU_WORKERS".to_string(), "many".to_string())]).is_err());
    }

    #[test]
    fn toml_refuses_unknown_fields() {
        let error = Config::from_toml("secret = 'x'\nlisten_udpp = '0.0.0.0:1'", "sfu.toml").expect_err("typo");
        assert!(error.to_string().contains("listen_udpp"), "{error}");
    }
}
