//! Address families of relayed addresses (RFC 8656 §7.2): which ones this server relays,
//! where their sockets bind, what it tells clients, and which an Allocate asks for.
//!
//! An Allocate without REQUESTED-ADDRESS-FAMILY gets the family of `relay_ip` (IPv4 on any
//! server that has it, as the RFC's default); with it, that family; with
//! ADDITIONAL-ADDRESS-FAMILY (IPv6), a dual allocation: IPv4 and IPv6 at once.

use crate::config::Config;
use crate::proto::attr;
use std::net::{IpAddr, SocketAddr};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    pub fn of(ip: IpAddr) -> Family {
        if ip.is_ipv4() { Family::V4 } else { Family::V6 }
    }

    /// From the value of REQUESTED- or ADDITIONAL-ADDRESS-FAMILY.
    pub fn from_wire(byte: u8) -> Option<Family> {
        match byte {
            attr::FAMILY_V4 => Some(Family::V4),
            attr::FAMILY_V6 => Some(Family::V6),
            _ => None,
        }
    }

    pub fn wire(self) -> u8 {
        match self {
            Family::V4 => attr::FAMILY_V4,
            Family::V6 => attr::FAMILY_V6,
        }
    }
}

/// One family's relay address: where sockets bind, and what clients are told.
#[derive(Debug, Clone, Copy)]
struct RelayIp {
    bind: IpAddr,
    external: Option<IpAddr>,
}

/// The families this server relays.
#[derive(Debug, Clone)]
pub struct RelayIps {
    v4: Option<RelayIp>,
    v6: Option<RelayIp>,
    default: Family,
}

impl RelayIps {
    pub fn from_config(config: &Config) -> RelayIps {
        let main = RelayIp { bind: config.relay_ip, external: config.external_ip };
        let v6 = config.relay_ip_v6.map(|bind| RelayIp { bind, external: config.external_ip_v6 });
        match Family::of(config.relay_ip) {
            Family::V4 => RelayIps { v4: Some(main), v6, default: Family::V4 },
            Family::V6 => RelayIps { v4: None, v6: Some(main), default: Family::V6 },
        }
    }

    fn get(&self, family: Family) -> Option<RelayIp> {
        match family {
            Family::V4 => self.v4,
            Family::V6 => self.v6,
        }
    }

    /// Where a relay socket of `family` binds, if this server relays that family.
    pub fn bind_ip(&self, family: Family) -> Option<IpAddr> {
        self.get(family).map(|r| r.bind)
    }

    /// The relayed address clients are told for a socket bound at `local`.
    pub fn advertised(&self, local: SocketAddr) -> SocketAddr {
        let external = self.get(Family::of(local.ip())).and_then(|r| r.external);
        SocketAddr::new(external.unwrap_or(local.ip()), local.port())
    }

    /// The family of an Allocate that names none.
    pub fn default_family(&self) -> Family {
        self.default
    }
}
