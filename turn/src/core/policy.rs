//! Which peer addresses a relay may reach: the special-purpose address registries (IANA
//! IPv4 and IPv6) are refused by default, including IPv4 addresses hidden inside IPv6
//! (IPv4-mapped, IPv4-compatible, NAT64, 6to4, Teredo), so a client cannot use the relay
//! to reach the server's own network, a cloud metadata service or loopback.
//!
//! Invariant: `is_refused` is total and conservative: anything outside IPv6 global
//! unicast (2000::/3) is refused unless the development allow-list names it.

use crate::config::Cidr;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Refused IPv4 ranges (IANA IPv4 Special-Purpose Address Registry plus multicast,
/// reserved and broadcast), as (network, prefix length).
const REFUSED_V4: &[([u8; 4], u8)] = &[
    ([0, 0, 0, 0], 8),       // "this network"
    ([10, 0, 0, 0], 8),      // private
    ([100, 64, 0, 0], 10),   // CGNAT shared space
    ([127, 0, 0, 0], 8),     // loopback
    ([169, 254, 0, 0], 16),  // link-local, cloud metadata (169.254.169.254)
    ([172, 16, 0, 0], 12),   // private
    ([192, 0, 0, 0], 24),    // IETF protocol assignments
    ([192, 0, 2, 0], 24),    // documentation TEST-NET-1
    ([192, 31, 196, 0], 24), // AS112
    ([192, 52, 193, 0], 24), // AMT
    ([192, 88, 99, 0], 24),  // deprecated 6to4 relay anycast
    ([192, 168, 0, 0], 16),  // private
    ([192, 175, 48, 0], 24), // direct delegation AS112
    ([198, 18, 0, 0], 15),   // benchmarking
    ([198, 51, 100, 0], 24), // documentation TEST-NET-2
    ([203, 0, 113, 0], 24),  // documentation TEST-NET-3
    ([224, 0, 0, 0], 4),     // multicast
    ([240, 0, 0, 0], 4),     // reserved, includes broadcast 255.255.255.255
];

/// Refused ranges inside 2000::/3 (the rest of the IPv6 space is refused outright).
const REFUSED_V6_IN_GLOBAL: &[([u16; 8], u8)] = &[
    ([0x2001, 0, 0, 0, 0, 0, 0, 0], 23), // IETF protocol assignments (Teredo handled apart)
    ([0x2001, 0x0db8, 0, 0, 0, 0, 0, 0], 32), // documentation
    ([0x2620, 0x004f, 0x8000, 0, 0, 0, 0, 0], 48), // AS112
    ([0x3fff, 0, 0, 0, 0, 0, 0, 0], 20), // documentation (RFC 9637)
];

/// Why a peer was refused (also a metrics label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerVerdict {
    Allowed,
    Refused,
}

fn in_v4(ip: Ipv4Addr, net: [u8; 4], prefix: u8) -> bool {
    let mask = if prefix == 0 { 0 } else { u32::MAX << (32 - u32::from(prefix)) };
    u32::from(ip) & mask == u32::from(Ipv4Addr::from(net)) & mask
}

fn in_v6(ip: Ipv6Addr, net: [u16; 8], prefix: u8) -> bool {
    let mask = if prefix == 0 { 0 } else { u128::MAX << (128 - u32::from(prefix)) };
    u128::from(ip) & mask == u128::from(Ipv6Addr::from(net)) & mask
}

fn v4_refused(ip: Ipv4Addr) -> bool {
    REFUSED_V4.iter().any(|(net, prefix)| in_v4(ip, *net, *prefix))
}

fn embedded_v4(bits: u128, shift: u32) -> Ipv4Addr {
    Ipv4Addr::from((bits >> shift) as u32)
}

fn v6_refused(ip: Ipv6Addr) -> bool {
    let bits = u128::from(ip);
    // IPv4-mapped ::ffff:a.b.c.d and IPv4-compatible ::a.b.c.d: judge the IPv4 inside,
    // and refuse them anyway because our relay sockets would send to that IPv4.
    if in_v6(ip, [0, 0, 0, 0, 0, 0xffff, 0, 0], 96) || in_v6(ip, [0; 8], 96) {
        return true;
    }
    // NAT64 well-known prefix: refused when the embedded IPv4 is.
    if in_v6(ip, [0x64, 0xff9b, 0, 0, 0, 0, 0, 0], 96) {
        return v4_refused(embedded_v4(bits, 0));
    }
    // Local-use NAT64 (RFC 8215): translates to networks we cannot judge.
    if in_v6(ip, [0x64, 0xff9b, 1, 0, 0, 0, 0, 0], 48) {
        return true;
    }
    // 6to4: 2002:AABB:CCDD::/48 carries IPv4 AA.BB.CC.DD.
    if in_v6(ip, [0x2002, 0, 0, 0, 0, 0, 0, 0], 16) {
        return v4_refused(embedded_v4(bits, 80));
    }
    // Teredo 2001:0000::/32: server IPv4 in bits 32..64, client IPv4 inverted in the
    // last 32 bits.
    if in_v6(ip, [0x2001, 0, 0, 0, 0, 0, 0, 0], 32) {
        let server = embedded_v4(bits, 64);
        let client = Ipv4Addr::from(!(bits as u32));
        return v4_refused(server) || v4_refused(client);
    }
    // Only global unicast is relayed; that excludes ::, ::1, fc00::/7, fe80::/10,
    // fec0::/10, ff00::/8, 100::/64 and every other special block outside 2000::/3.
    if !in_v6(ip, [0x2000, 0, 0, 0, 0, 0, 0, 0], 3) {
        return true;
    }
    REFUSED_V6_IN_GLOBAL.iter().any(|(net, prefix)| in_v6(ip, *net, *prefix))
}

/// The verdict for a peer IP: the allow-list first, then the refused ranges.
pub fn check_peer(ip: IpAddr, allowed: &[Cidr]) -> PeerVerdict {
    if allowed.iter().any(|c| c.contains(ip)) {
        return PeerVerdict::Allowed;
    }
    let refused = match ip {
        IpAddr::V4(v4) => v4_refused(v4),
        IpAddr::V6(v6) => v6_refused(v6),
    };
    if refused { PeerVerdict::Refused } else { PeerVerdict::Allowed }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(s: &str) -> bool {
        check_peer(s.parse().unwrap(), &[]) == PeerVerdict::Refused
    }

    #[test]
    fn refuses_special_purpose_ranges() {
        for ip in [
            "127.0.0.1",
            "10.0.0.1",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "100.64.0.1",
            "169.254.169.254",
            "0.0.0.0",
            "0.1.2.3",
            "224.0.0.1",
            "239.255.255.250",
            "240.0.0.1",
            "255.255.255.255",
            "192.0.2.1",
            "198.51.100.7",
            "203.0.113.9",
            "198.18.0.1",
            "192.0.0.8",
            "::1",
            "::",
            "fc00::1",
            "fd12::1",
            "fe80::1",
            "ff02::1",
            "2001:db8::1",
            "3fff::1",
            "::ffff:127.0.0.1",
            "::ffff:8.8.8.8",
            "::127.0.0.1",
            "64:ff9b::7f00:1",
            "64:ff9b::a00:1",
            "64:ff9b:1::808:808",
            "2002:7f00:1::1",
            "2002:a9fe:a9fe::1",
            "2001:0:4136:e378:8000:63bf:80ff:fffe",
            "100::1",
        ] {
            assert!(refused(ip), "{ip} must be refused");
        }
    }

    #[test]
    fn allows_public_addresses() {
        for ip in
            ["8.8.8.8", "1.1.1.1", "172.32.0.1", "100.128.0.1", "2a00:1450::1", "64:ff9b::808:808", "2002:808:808::1"]
        {
            assert!(!refused(ip), "{ip} must be allowed");
        }
    }

    #[test]
    fn allow_list_overrides_exactly() {
        let allowed = ["127.0.0.1/32".parse().unwrap()];
        assert_eq!(check_peer("127.0.0.1".parse().unwrap(), &allowed), PeerVerdict::Allowed);
        assert_eq!(check_peer("127.0.0.2".parse().unwrap(), &allowed), PeerVerdict::Refused);
        assert_eq!(check_peer("::ffff:127.0.0.1".parse().unwrap(), &allowed), PeerVerdict::Refused);
    }
}
