//! `Config`: everything an operator sets, read from TOML with `ISOPLANE_TURN_*`
//! environment overrides (isoplane-service's layered configuration), and checked by [`Config::validate`] before any socket is bound.
//!
//! Invariant: a validated config has a realm, at least one way to authenticate (a REST
//! secret or a static user), a concrete relay IP, and a sane port range and lifetimes.

use isoplane_service::config::{EnvKind, EnvSetting, ServiceConfig};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::str::FromStr;
use thiserror::Error;

pub use isoplane_service::config::ConfigError;

/// The most UDP shards (each core's allocation IDs are numbered in a range of its own).
pub const MAX_UDP_THREADS: usize = 64;

/// The server's configuration. Every field has a default, so an empty TOML file plus
/// one secret is a working development server.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// UDP listening address for STUN/TURN.
    pub listen_udp: SocketAddr,
    /// Shards serving UDP clients, each with its own socket on `listen_udp`'s port and
    /// its own allocations, and so at most this many threads for them; 0 = one per CPU
    /// the process may use.
    pub udp_threads: usize,
    /// The shards start on one thread; when it is busy more than this share of a second
    /// (percent), it hands a shard to a thread of its own. 0 gives every shard its own
    /// thread from the start (the least latency under load, more CPU per packet when
    /// traffic is light: every thread that wakes costs a context switch).
    pub udp_spread_at_percent: u8,
    /// TCP listening address for STUN/TURN over TCP; `None` (`"off"`) disables TCP.
    #[serde(with = "isoplane_service::config::switchable")]
    pub listen_tcp: Option<SocketAddr>,
    /// TLS (TURNS) listening address; needs `tls_cert` and `tls_key`. `None` disables.
    pub listen_tls: Option<SocketAddr>,
    /// TURN over DTLS (RFC 7350) listening address (UDP); uses `tls_cert` and `tls_key`,
    /// which must then be ECDSA (P-256 or P-384). `None` disables.
    pub listen_dtls: Option<SocketAddr>,
    /// PEM certificate chain for TURNS (and DTLS).
    pub tls_cert: Option<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1) for TURNS.
    pub tls_key: Option<PathBuf>,
    /// Shares the TLS port with HTTPS: connections whose ClientHello offers ALPN and no
    /// STUN protocol (browsers' HTTPS) are passed through untouched to this `host:port`,
    /// an HTTPS server with its own certificate. `None`: the port is TURNS only.
    pub tls_https_backend: Option<String>,
    /// Sends a PROXY protocol v2 header before each connection passed to the HTTPS
    /// backend, so it sees the client's address (the backend must expect it).
    pub tls_https_proxy_protocol: bool,
    /// HTTP address for /healthz, /readyz and /metrics; `None` (`"off"`) disables it.
    #[serde(with = "isoplane_service::config::switchable")]
    pub listen_http: Option<SocketAddr>,
    /// The IP relay sockets bind to (must be a concrete address, not 0.0.0.0).
    pub relay_ip: IpAddr,
    /// The IP advertised in XOR-RELAYED-ADDRESS, when the server sits behind a 1:1 NAT.
    pub external_ip: Option<IpAddr>,
    /// An IPv6 address for IPv6 relay addresses (REQUESTED-ADDRESS-FAMILY IPv6, or a dual
    /// allocation's second address), beside an IPv4 `relay_ip`. `None`: IPv4 relays only.
    pub relay_ip_v6: Option<IpAddr>,
    /// What to advertise for `relay_ip_v6`, if not itself.
    pub external_ip_v6: Option<IpAddr>,
    /// Relay port range (inclusive); `None` lets the OS pick ephemeral ports.
    pub relay_port_range: Option<(u16, u16)>,
    /// The REALM sent to clients and used in the long-term key.
    pub realm: String,
    /// TURN REST API shared secrets; every one is accepted, so rotate by adding the new
    /// one first and removing the old one after the longest credential lifetime.
    pub auth_secrets: Vec<String>,
    /// Static users (`username:password`) for development.
    pub static_users: Vec<String>,
    /// Peer CIDRs allowed even though they are in a refused special-purpose range
    /// (development only: e.g. "127.0.0.1/32" to relay on one machine).
    pub allowed_peers: Vec<Cidr>,
    /// How long a NONCE stays valid, in seconds (438 Stale Nonce after).
    pub nonce_lifetime_secs: u64,
    /// Allocation lifetime when the client does not ask, in seconds (RFC: 600).
    pub default_lifetime_secs: u32,
    /// Longest allocation lifetime granted, in seconds (RFC: 3600).
    pub max_lifetime_secs: u32,
    /// Allocations one user may hold at once (REST: the part after `expiry:`).
    pub max_allocations_per_user: u32,
    /// Allocations the whole server holds at once.
    pub max_allocations_total: u32,
    /// Relayed bytes per second per allocation, each direction; 0 = no cap.
    pub bandwidth_bytes_per_sec: u64,
    /// SOFTWARE attribute in authenticated responses; `None` sends none.
    pub software: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen_udp: SocketAddr::from(([0, 0, 0, 0], 3478)),
            udp_threads: 0,
            udp_spread_at_percent: 50,
            listen_tcp: Some(SocketAddr::from(([0, 0, 0, 0], 3478))),
            listen_tls: None,
            listen_dtls: None,
            tls_cert: None,
            tls_key: None,
            tls_https_backend: None,
            tls_https_proxy_protocol: false,
            listen_http: Some(SocketAddr::from(([127, 0, 0, 1], 9478))),
            relay_ip: IpAddr::from([127, 0, 0, 1]),
            external_ip: None,
            relay_ip_v6: None,
            external_ip_v6: None,
            relay_port_range: None,
            realm: "isoplane".into(),
            auth_secrets: Vec::new(),
            static_users: Vec::new(),
            allowed_peers: Vec::new(),
            nonce_lifetime_secs: 600,
            default_lifetime_secs: 600,
            max_lifetime_secs: 3600,
            max_allocations_per_user: 10,
            max_allocations_total: 10_000,
            bandwidth_bytes_per_sec: 0,
            software: Some("isoplane-turn".into()),
        }
    }
}

impl Config {
    /// Checks the rules between fields; call before binding anything.
    pub fn validate(&self) -> Result<(), ConfigError> {
        isoplane_service::config::validate(self)
    }

    /// How many UDP shards serve: `udp_threads`, or one per CPU the process may use.
    pub fn udp_shards(&self) -> usize {
        match self.udp_threads {
            0 => std::thread::available_parallelism().map_or(1, usize::from).min(MAX_UDP_THREADS),
            threads => threads,
        }
    }

    /// The static users as (username, password) pairs.
    pub fn static_user_pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.static_users.iter().filter_map(|u| u.split_once(':'))
    }
}

impl ServiceConfig for Config {
    const SERVICE: &'static str = "TURN";
    const NAME: &'static str = "TURN server";
    const ENVIRONMENT: &'static [EnvSetting] = &[
        EnvSetting::new("LISTEN_UDP", "listen_udp", EnvKind::Text),
        EnvSetting::new("UDP_THREADS", "udp_threads", EnvKind::Number),
        EnvSetting::new("UDP_SPREAD_AT_PERCENT", "udp_spread_at_percent", EnvKind::Number),
        EnvSetting::new("LISTEN_TCP", "listen_tcp", EnvKind::Switchable),
        EnvSetting::new("LISTEN_HTTP", "listen_http", EnvKind::Switchable),
        EnvSetting::new("LISTEN_TLS", "listen_tls", EnvKind::OptionalText),
        EnvSetting::new("LISTEN_DTLS", "listen_dtls", EnvKind::OptionalText),
        EnvSetting::new("TLS_CERT", "tls_cert", EnvKind::OptionalText),
        EnvSetting::new("TLS_KEY", "tls_key", EnvKind::OptionalText),
        EnvSetting::new("TLS_HTTPS_BACKEND", "tls_https_backend", EnvKind::OptionalText),
        EnvSetting::new("TLS_HTTPS_PROXY_PROTOCOL", "tls_https_proxy_protocol", EnvKind::Flag),
        EnvSetting::new("RELAY_IP", "relay_ip", EnvKind::Text),
        EnvSetting::new("EXTERNAL_IP", "external_ip", EnvKind::OptionalText),
        EnvSetting::new("RELAY_IP_V6", "relay_ip_v6", EnvKind::OptionalText),
        EnvSetting::new("EXTERNAL_IP_V6", "external_ip_v6", EnvKind::OptionalText),
        EnvSetting::new("REALM", "realm", EnvKind::Text),
        EnvSetting::new("AUTH_SECRETS", "auth_secrets", EnvKind::List),
        EnvSetting::new("STATIC_USERS", "static_users", EnvKind::List),
        EnvSetting::new("ALLOWED_PEERS", "allowed_peers", EnvKind::List),
        EnvSetting::new("MAX_ALLOCATIONS_PER_USER", "max_allocations_per_user", EnvKind::Number),
        EnvSetting::new("MAX_ALLOCATIONS_TOTAL", "max_allocations_total", EnvKind::Number),
        EnvSetting::new("BANDWIDTH_BYTES_PER_SEC", "bandwidth_bytes_per_sec", EnvKind::Number),
        // Read by the binary (runtime threads); not a config field.
        EnvSetting::new("THREADS", "", EnvKind::Ignored),
    ];

    fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.realm.is_empty() || self.realm.len() > 127 {
            problems.push("realm: must be 1 to 127 bytes");
        }
        if self.auth_secrets.is_empty() && self.static_users.is_empty() {
            problems.push("auth_secrets: set at least one REST secret or one static user");
        }
        if self.auth_secrets.iter().any(String::is_empty) {
            problems.push("auth_secrets: a secret is empty");
        }
        if self.static_users.iter().any(|u| !u.contains(':') || u.starts_with(':')) {
            problems.push("static_users: each entry is `username:password`");
        }
        if self.listen_tls.is_some() && (self.tls_cert.is_none() || self.tls_key.is_none()) {
            problems.push("listen_tls: TURNS needs both tls_cert and tls_key");
        }
        if self.listen_dtls.is_some() && (self.tls_cert.is_none() || self.tls_key.is_none()) {
            problems.push("listen_dtls: TURN over DTLS needs both tls_cert and tls_key");
        }
        if self.tls_https_backend.is_some() && self.listen_tls.is_none() {
            problems.push("tls_https_backend: shares the TLS port, so it needs listen_tls");
        }
        let host_and_port = |b: &String| {
            b.rsplit_once(':').is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p != 0))
        };
        if self.tls_https_backend.as_ref().is_some_and(|b| !host_and_port(b)) {
            problems.push("tls_https_backend: must be host:port (e.g. caddy:8443 or 127.0.0.1:8443)");
        }
        if self.relay_ip.is_unspecified() {
            problems.push("relay_ip: must be a concrete address clients can reach, not 0.0.0.0 or ::");
        }
        if self.external_ip.is_some_and(|ip| ip.is_ipv4() != self.relay_ip.is_ipv4()) {
            problems.push("external_ip: must be of relay_ip's family (external_ip_v6 is the IPv6 one)");
        }
        if let Some(v6) = self.relay_ip_v6 {
            if self.relay_ip.is_ipv6() {
                problems.push("relay_ip_v6: relay_ip is IPv6 already; relay_ip_v6 adds IPv6 beside an IPv4 relay_ip");
            }
            if !v6.is_ipv6() || v6.is_unspecified() || v6.to_canonical().is_ipv4() {
                problems.push("relay_ip_v6: must be a concrete IPv6 address clients can reach, not :: or IPv4");
            }
        }
        if self.external_ip_v6.is_some_and(|ip| !ip.is_ipv6())
            || (self.external_ip_v6.is_some() && self.relay_ip_v6.is_none())
        {
            problems.push("external_ip_v6: an IPv6 address, advertised for relay_ip_v6 (which it needs)");
        }
        if let Some((low, high)) = self.relay_port_range
            && (low == 0 || low > high)
        {
            problems.push("relay_port_range: must be [low, high] with 0 < low <= high");
        }
        if self.default_lifetime_secs == 0 || self.default_lifetime_secs > self.max_lifetime_secs {
            problems.push("default_lifetime_secs: must be between 1 and max_lifetime_secs");
        }
        if self.udp_threads > MAX_UDP_THREADS {
            problems.push("udp_threads: at most 64 (0 picks one per CPU)");
        }
        if self.udp_spread_at_percent > 100 {
            problems.push("udp_spread_at_percent: a percentage, 0 to 100");
        }
        if self.nonce_lifetime_secs == 0 {
            problems.push("nonce_lifetime_secs: must be at least 1");
        }
        problems.into_iter().map(str::to_owned).collect()
    }
}

/// An IP network in CIDR notation ("10.0.0.0/8", "::1/128", or a bare address).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    pub fn new(addr: IpAddr, prefix: u8) -> Option<Cidr> {
        let max = if addr.is_ipv4() { 32 } else { 128 };
        (prefix <= max).then_some(Cidr { addr, prefix })
    }

    /// True when `ip` is inside (same family only: ::ffff:127.0.0.1 is not in 127.0.0.0/8).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                prefix_match(u128::from(u32::from(net)) << 96, u128::from(u32::from(ip)) << 96, self.prefix)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => prefix_match(u128::from(net), u128::from(ip), self.prefix),
            _ => false,
        }
    }
}

fn prefix_match(net: u128, ip: u128, prefix: u8) -> bool {
    if prefix == 0 {
        return true;
    }
    let mask = u128::MAX << (128 - u32::from(prefix));
    net & mask == ip & mask
}

/// Why a string is not a CIDR.
#[derive(Debug, Error)]
#[error("`{0}` is not a CIDR like 127.0.0.1/32 or ::1/128")]
pub struct CidrParseError(String);

impl FromStr for Cidr {
    type Err = CidrParseError;
    fn from_str(s: &str) -> Result<Cidr, CidrParseError> {
        let err = || CidrParseError(s.into());
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a.parse::<IpAddr>().map_err(|_| err())?, Some(p.parse::<u8>().map_err(|_| err())?)),
            None => (s.parse::<IpAddr>().map_err(|_| err())?, None),
        };
        let prefix = prefix.unwrap_or(if addr.is_ipv4() { 32 } else { 128 });
        Cidr::new(addr, prefix).ok_or_else(err)
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl Serialize for Cidr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Cidr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Cidr, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_contains_same_family_only() {
        let c: Cidr = "127.0.0.0/8".parse().unwrap();
        assert!(c.contains("127.1.2.3".parse().unwrap()));
        assert!(!c.contains("128.0.0.1".parse().unwrap()));
        assert!(!c.contains("::ffff:127.0.0.1".parse().unwrap()));
        let bare: Cidr = "::1".parse().unwrap();
        assert!(bare.contains("::1".parse().unwrap()));
        assert!("10.0.0.0/33".parse::<Cidr>().is_err());
        assert!("0.0.0.0/0".parse::<Cidr>().unwrap().contains("8.8.8.8".parse().unwrap()));
    }

    #[test]
    fn toml_and_env_overrides() {
        let file = "realm = \"x\"\nauth_secrets = [\"s\"]\nallowed_peers = [\"127.0.0.1/32\"]\n";
        let c: Config = isoplane_service::config::from_toml(file, "t.toml").unwrap();
        assert_eq!(c.realm, "x");
        let overlay = |c: &Config, vars: &[(&str, &str)]| {
            let vars = vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned()));
            isoplane_service::config::overlay_environment(c, vars)
        };
        let mut c = overlay(&c, &[("ISOPLANE_TURN_REALM", "y"), ("ISOPLANE_TURN_LISTEN_TCP", "off"), ("PATH", "/bin")])
            .unwrap();
        assert_eq!(c.realm, "y");
        assert_eq!(c.listen_tcp, None);
        assert_eq!(c.allowed_peers, ["127.0.0.1/32".parse::<Cidr>().unwrap()]);
        c.validate().unwrap();
        assert!(overlay(&c, &[("ISOPLANE_TURN_NOPE", "1")]).is_err());
        assert!(overlay(&c, &[("ISOPLANE_TURN_ALLOWED_PEERS", "10.0.0.0/33")]).is_err());
        assert!(isoplane_service::config::from_toml::<Config>("realm = 3", "t.toml").is_err());
        assert!(Config::default().validate().is_err(), "no credentials configured");
        let mut dtls = c.clone();
        dtls.listen_dtls = Some("127.0.0.1:5349".parse().unwrap());
        assert!(dtls.validate().is_err(), "DTLS without a certificate");
        c.listen_tls = Some("127.0.0.1:5349".parse().unwrap());
        assert!(c.validate().is_err(), "TURNS without a certificate");
        let c = overlay(
            &c,
            &[("ISOPLANE_TURN_TLS_CERT", "/etc/turn/cert.pem"), ("ISOPLANE_TURN_TLS_KEY", "/etc/turn/key.pem")],
        )
        .unwrap();
        c.validate().unwrap();
        let shared = overlay(
            &c,
            &[("ISOPLANE_TURN_TLS_HTTPS_BACKEND", "caddy:8443"), ("ISOPLANE_TURN_TLS_HTTPS_PROXY_PROTOCOL", "true")],
        )
        .unwrap();
        assert_eq!(shared.tls_https_backend.as_deref(), Some("caddy:8443"));
        assert!(shared.tls_https_proxy_protocol);
        shared.validate().unwrap();
        for bad in ["caddy", ":8443", "caddy:0", "caddy:https"] {
            let c = overlay(&c, &[("ISOPLANE_TURN_TLS_HTTPS_BACKEND", bad)]).unwrap();
            assert!(c.validate().is_err(), "backend {bad}");
        }
        let v6 = overlay(&c, &[("ISOPLANE_TURN_RELAY_IP_V6", "::1"), ("ISOPLANE_TURN_EXTERNAL_IP_V6", "2001:db8::7")])
            .unwrap();
        assert_eq!(v6.relay_ip_v6, Some("::1".parse().unwrap()));
        v6.validate().unwrap();
        for (name, value) in [("RELAY_IP_V6", "127.0.0.2"), ("RELAY_IP_V6", "::"), ("EXTERNAL_IP_V6", "192.0.2.1")] {
            let bad = overlay(&v6, &[(format!("ISOPLANE_TURN_{name}").as_str(), value)]).unwrap();
            assert!(bad.validate().is_err(), "{name} = {value}");
        }
        let v6_only = overlay(&c, &[("ISOPLANE_TURN_RELAY_IP", "::1"), ("ISOPLANE_TURN_RELAY_IP_V6", "::1")]).unwrap();
        assert!(v6_only.validate().is_err(), "relay_ip_v6 beside an IPv6 relay_ip");
        let mut no_tls = shared.clone();
        no_tls.listen_tls = None;
        assert!(no_tls.validate().is_err(), "a backend without the TLS port it shares");
    }
}
