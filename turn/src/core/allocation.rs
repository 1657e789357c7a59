//! One allocation: its relayed address, permissions (5 min), channel bindings (10 min),
//! and bandwidth buckets. Pure data with time passed in.
//!
//! Invariants: `channels` and `peer_channels` mirror each other exactly (one channel per
//! peer, one peer per channel); an expired channel stays reserved for
//! [`CHANNEL_COOLDOWN`] so neither its number nor its peer can be rebound to another
//! (RFC 8656 §12), but it carries no data during that time.
//!
//! [`Allocation::admit`] is the one admission rule for relayed data, whichever way it goes:
//! the allocation itself still live (the sweep that removes it runs on a timer, so it may
//! lag), a live permission for the peer's IP, then room in that direction's bandwidth
//! bucket.

use super::ClientAddr;
use super::FastMap;
use super::family::Family;
use super::metrics::Refusal;
use crate::proto::TransactionId;
use crate::proto::integrity::LongTermKey;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

pub const PERMISSION_LIFETIME: Duration = Duration::from_secs(300);
pub const CHANNEL_LIFETIME: Duration = Duration::from_secs(600);
pub const CHANNEL_COOLDOWN: Duration = Duration::from_secs(300);

/// A handle the shell uses for an allocation's relay socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AllocationId(pub u64);

#[derive(Debug, Clone, Copy)]
pub struct Channel {
    pub peer: SocketAddr,
    pub expires: Instant,
}

/// A refusal of ChannelBind by the rebinding rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BindConflict {
    ChannelTakenByOtherPeer,
    PeerHasOtherChannel,
}

/// Bytes per second with a one-second burst. `rate == 0` means unlimited.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate: u64,
    tokens: u64,
    last: Instant,
}

impl TokenBucket {
    pub fn new(rate: u64, now: Instant) -> TokenBucket {
        TokenBucket { rate, tokens: rate, last: now }
    }

    /// Takes `bytes` if there is room; false means drop the packet.
    pub fn take(&mut self, bytes: usize, now: Instant) -> bool {
        if self.rate == 0 {
            return true;
        }
        let elapsed = now.saturating_duration_since(self.last);
        if elapsed > Duration::ZERO {
            let refill = (u128::from(self.rate) * elapsed.as_nanos() / 1_000_000_000) as u64;
            if refill > 0 {
                self.tokens = self.tokens.saturating_add(refill).min(self.rate);
                self.last = now;
            }
        }
        let bytes = bytes as u64;
        if self.tokens >= bytes {
            self.tokens -= bytes;
            true
        } else {
            false
        }
    }
}

/// Which way relayed data travels, which decides the bandwidth bucket it is charged to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// From the client (a Send indication or ChannelData) out through the relay socket.
    ToPeer,
    /// From a peer on the relay socket back to the client.
    ToClient,
}

/// Whether one relayed packet may pass, and if not, why it is dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "a refused packet must be dropped and counted"]
pub enum Admission {
    Admitted,
    Refused(Refusal),
}

#[derive(Debug)]
pub struct Allocation {
    pub id: AllocationId,
    pub client: ClientAddr,
    pub username: String,
    pub quota_user: String,
    pub key: LongTermKey,
    pub expires_unix: Option<u64>,
    /// The addresses in XOR-RELAYED-ADDRESS: one, or an IPv4 and an IPv6 one (dual).
    pub relayed: Vec<SocketAddr>,
    pub expires: Instant,
    /// The Allocate transaction and our answer, for retransmissions.
    pub allocate_transaction: TransactionId,
    pub allocate_response: Vec<u8>,
    pub permissions: HashMap<IpAddr, Instant>,
    pub channels: FastMap<u16, Channel>,
    pub peer_channels: HashMap<SocketAddr, u16>,
    pub to_peer: TokenBucket,
    pub to_client: TokenBucket,
    /// An RFC 6062 TCP allocation: peers reach it over TCP connections, not datagrams.
    pub tcp: bool,
}

impl Allocation {
    /// The address families this allocation relays.
    pub fn families(&self) -> Vec<Family> {
        self.relayed.iter().map(|address| Family::of(address.ip())).collect()
    }

    /// Ends one family of a dual allocation: its relayed address, and its peers'
    /// permissions and channels (a channel's number stays reserved for its cool-down).
    pub fn drop_family(&mut self, family: Family, now: Instant) {
        self.relayed.retain(|address| Family::of(address.ip()) != family);
        self.permissions.retain(|ip, _| Family::of(*ip) != family);
        for channel in self.channels.values_mut().filter(|c| Family::of(c.peer.ip()) == family) {
            channel.expires = channel.expires.min(now);
        }
    }

    pub fn has_permission(&self, ip: IpAddr, now: Instant) -> bool {
        self.permissions.get(&ip).is_some_and(|expires| *expires > now)
    }

    /// Whether the allocation's lifetime has run out (whether or not it was removed yet).
    pub fn is_expired(&self, now: Instant) -> bool {
        self.expires <= now
    }

    /// Admits `bytes` of data exchanged with `peer` in `direction`: the allocation must not
    /// have expired, the peer's IP needs a live permission, then the direction's bucket
    /// must have room. Only an admitted packet is charged to the bucket, so refused traffic
    /// costs the client nothing.
    pub fn admit(&mut self, direction: Direction, peer: IpAddr, bytes: usize, now: Instant) -> Admission {
        if self.is_expired(now) {
            // Gone as far as the client is concerned, even before the sweep removes it.
            return Admission::Refused(Refusal::NoAllocationOrChannel);
        }
        if !self.has_permission(peer, now) {
            return Admission::Refused(Refusal::NoPermission);
        }
        let bucket = match direction {
            Direction::ToPeer => &mut self.to_peer,
            Direction::ToClient => &mut self.to_client,
        };
        if bucket.take(bytes, now) { Admission::Admitted } else { Admission::Refused(Refusal::Bandwidth) }
    }

    pub fn install_permission(&mut self, ip: IpAddr, now: Instant) {
        self.permissions.insert(ip, now + PERMISSION_LIFETIME);
    }

    /// The peer of an active (not expired) channel.
    pub fn channel_peer(&self, channel: u16, now: Instant) -> Option<SocketAddr> {
        self.channels.get(&channel).filter(|c| c.expires > now).map(|c| c.peer)
    }

    /// The active channel bound to `peer`.
    pub fn peer_channel(&self, peer: SocketAddr, now: Instant) -> Option<u16> {
        let channel = *self.peer_channels.get(&peer)?;
        self.channel_peer(channel, now).map(|_| channel)
    }

    /// Binds or refreshes `channel` ↔ `peer` under the rebinding rules.
    pub fn bind_channel(&mut self, channel: u16, peer: SocketAddr, now: Instant) -> Result<(), BindConflict> {
        if let Some(existing) = self.channels.get(&channel)
            && existing.peer != peer
        {
            return Err(BindConflict::ChannelTakenByOtherPeer);
        }
        if let Some(existing) = self.peer_channels.get(&peer)
            && *existing != channel
        {
            return Err(BindConflict::PeerHasOtherChannel);
        }
        self.channels.insert(channel, Channel { peer, expires: now + CHANNEL_LIFETIME });
        self.peer_channels.insert(peer, channel);
        self.install_permission(peer.ip(), now);
        Ok(())
    }

    /// Drops expired permissions and channels past their cool-down; returns the next
    /// instant something here changes.
    pub fn expire(&mut self, now: Instant) -> Instant {
        self.permissions.retain(|_, expires| *expires > now);
        let peer_channels = &mut self.peer_channels;
        self.channels.retain(|_, c| {
            let keep = c.expires + CHANNEL_COOLDOWN > now;
            if !keep {
                peer_channels.remove(&c.peer);
            }
            keep
        });
        let mut next = self.expires;
        for expires in self.permissions.values() {
            next = next.min(*expires);
        }
        for c in self.channels.values() {
            next = next.min(if c.expires > now { c.expires } else { c.expires + CHANNEL_COOLDOWN });
        }
        next
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_caps_and_refills() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(1000, t0);
        assert!(b.take(600, t0));
        assert!(!b.take(600, t0));
        assert!(b.take(600, t0 + Duration::from_millis(900)));
        let mut unlimited = TokenBucket::new(0, t0);
        assert!(unlimited.take(1 << 30, t0));
    }

    fn allocation(rate: u64, now: Instant) -> Allocation {
        let client = ClientAddr { transport: crate::core::Transport::Udp, remote: "192.0.2.1:5000".parse().unwrap() };
        Allocation {
            id: AllocationId(1),
            client,
            username: "alice".into(),
            quota_user: "alice".into(),
            key: [0; 16],
            expires_unix: None,
            relayed: vec!["192.0.2.2:50000".parse().unwrap()],
            expires: now + Duration::from_secs(600),
            allocate_transaction: [0; 12],
            allocate_response: Vec::new(),
            permissions: HashMap::new(),
            channels: FastMap::default(),
            peer_channels: HashMap::new(),
            to_peer: TokenBucket::new(rate, now),
            to_client: TokenBucket::new(rate, now),
            tcp: false,
        }
    }

    #[test]
    fn data_without_a_live_permission_is_refused_and_costs_nothing() {
        let t0 = Instant::now();
        let mut a = allocation(1000, t0);
        let peer: IpAddr = "198.51.100.7".parse().unwrap();
        assert_eq!(a.admit(Direction::ToPeer, peer, 1000, t0), Admission::Refused(Refusal::NoPermission));
        a.install_permission(peer, t0);
        // The refusal above took nothing from the bucket: a full second's worth still fits.
        assert_eq!(a.admit(Direction::ToPeer, peer, 1000, t0), Admission::Admitted);
        let later = t0 + PERMISSION_LIFETIME;
        assert_eq!(a.admit(Direction::ToClient, peer, 1, later), Admission::Refused(Refusal::NoPermission));
    }

    #[test]
    fn an_expired_allocation_admits_nothing_even_with_live_permissions() {
        let t0 = Instant::now();
        let mut a = allocation(0, t0);
        let peer: IpAddr = "198.51.100.7".parse().unwrap();
        a.expires = t0 + Duration::from_secs(60);
        a.install_permission(peer, t0);
        let just_before = a.expires - Duration::from_millis(1);
        assert_eq!(a.admit(Direction::ToPeer, peer, 1, just_before), Admission::Admitted);
        for direction in [Direction::ToPeer, Direction::ToClient] {
            assert_eq!(a.admit(direction, peer, 1, a.expires), Admission::Refused(Refusal::NoAllocationOrChannel));
        }
    }

    #[test]
    fn each_direction_is_charged_to_its_own_bucket() {
        let t0 = Instant::now();
        let mut a = allocation(1000, t0);
        let peer: IpAddr = "198.51.100.7".parse().unwrap();
        a.install_permission(peer, t0);
        assert_eq!(a.admit(Direction::ToPeer, peer, 800, t0), Admission::Admitted);
        assert_eq!(a.admit(Direction::ToPeer, peer, 800, t0), Admission::Refused(Refusal::Bandwidth));
        assert_eq!(a.admit(Direction::ToClient, peer, 800, t0), Admission::Admitted);
        assert_eq!(a.admit(Direction::ToClient, peer, 800, t0), Admission::Refused(Refusal::Bandwidth));
    }
}
