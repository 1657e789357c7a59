//! Long-term credentials (RFC 8489 §9.2): static users and TURN REST API usernames
//! (`expiry[:user]`, password = base64(HMAC-SHA1(secret, username)), as coturn's
//! `use-auth-secret`), plus stateless NONCEs.
//!
//! Invariants: nothing here keeps per-source state. A NONCE is 8 characters: the base64url
//! of a 16-bit minute counter and 32 bits of HMAC over (counter, client transport and IP)
//! with a per-process key, so it is checked by recomputation, is bound to the source,
//! and fits in a 401 no larger than the smallest Allocate request we must answer.

use crate::core::ClientAddr;
use crate::proto::Message;
use crate::proto::integrity::{LongTermKey, hmac_sha1, long_term_key, verify_integrity};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use std::collections::HashMap;
use std::net::IpAddr;

/// One NONCE tick in seconds: freshness is judged to the minute.
pub const NONCE_TICK_SECS: u64 = 60;

/// Who a request authenticated as.
#[derive(Debug, Clone)]
pub struct Authenticated {
    pub key: LongTermKey,
    /// The name quotas count against: a static username, or the REST user part.
    pub quota_user: String,
    /// REST credentials stop working at this Unix time.
    pub expires_unix: Option<u64>,
}

/// Why credentials were refused (a metrics label; never sent to the client).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFailure {
    UnknownUser,
    Expired,
    BadIntegrity,
}

impl AuthFailure {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthFailure::UnknownUser => "unknown_user",
            AuthFailure::Expired => "expired",
            AuthFailure::BadIntegrity => "bad_integrity",
        }
    }
}

/// A NONCE's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonceCheck {
    Fresh,
    /// Too old, forged, or issued to another source: answer 438 with a new one.
    Stale,
}

/// Credentials and nonce keys.
#[derive(Debug)]
pub struct Auth {
    realm: String,
    secrets: Vec<Vec<u8>>,
    static_keys: HashMap<String, LongTermKey>,
    nonce_key: [u8; 32],
    nonce_lifetime_ticks: u16,
}

impl Auth {
    pub fn new(
        realm: &str,
        secrets: &[String],
        static_users: impl Iterator<Item = (String, String)>,
        nonce_key: [u8; 32],
        nonce_lifetime_secs: u64,
    ) -> Auth {
        let static_keys = static_users.map(|(u, p)| (u.clone(), long_term_key(&u, realm, &p))).collect();
        let ticks = nonce_lifetime_secs.div_ceil(NONCE_TICK_SECS).clamp(1, u64::from(u16::MAX / 2));
        Auth {
            realm: realm.into(),
            secrets: secrets.iter().map(|s| s.as_bytes().to_vec()).collect(),
            static_keys,
            nonce_key,
            nonce_lifetime_ticks: ticks as u16,
        }
    }

    pub fn realm(&self) -> &str {
        &self.realm
    }

    fn nonce_mac(&self, tick: u16, client: &ClientAddr) -> [u8; 4] {
        let mut input = [0u8; 19];
        input[..2].copy_from_slice(&tick.to_be_bytes());
        input[2] = client.transport as u8;
        match client.remote.ip() {
            IpAddr::V4(ip) => input[3..7].copy_from_slice(&ip.octets()),
            IpAddr::V6(ip) => input[3..19].copy_from_slice(&ip.octets()),
        }
        let mac = hmac_sha1(&self.nonce_key, &input);
        [mac[0], mac[1], mac[2], mac[3]]
    }

    /// A fresh NONCE for `client` at `elapsed_secs` since the core started.
    pub fn nonce(&self, elapsed_secs: u64, client: &ClientAddr) -> String {
        let tick = (elapsed_secs / NONCE_TICK_SECS) as u16;
        let mut raw = [0u8; 6];
        raw[..2].copy_from_slice(&tick.to_be_bytes());
        raw[2..].copy_from_slice(&self.nonce_mac(tick, client));
        URL_SAFE_NO_PAD.encode(raw)
    }

    pub fn check_nonce(&self, nonce: &[u8], elapsed_secs: u64, client: &ClientAddr) -> NonceCheck {
        let mut raw = [0u8; 6];
        match URL_SAFE_NO_PAD.decode_slice(nonce, &mut raw) {
            Ok(6) => {}
            _ => return NonceCheck::Stale,
        }
        let tick = u16::from_be_bytes([raw[0], raw[1]]);
        if raw[2..] != self.nonce_mac(tick, client) {
            return NonceCheck::Stale;
        }
        let now_tick = (elapsed_secs / NONCE_TICK_SECS) as u16;
        if now_tick.wrapping_sub(tick) >= self.nonce_lifetime_ticks { NonceCheck::Stale } else { NonceCheck::Fresh }
    }

    /// An unguessable RESERVATION-TOKEN for allocation number `id`.
    pub fn token(&self, id: u64) -> [u8; 8] {
        let mut input = b"reservation".to_vec();
        input.extend_from_slice(&id.to_be_bytes());
        let mac = hmac_sha1(&self.nonce_key, &input);
        let mut token = [0u8; 8];
        token.copy_from_slice(&mac[..8]);
        token
    }

    /// Finds the key for `username` and checks the message's MESSAGE-INTEGRITY with it.
    pub fn authenticate(
        &self,
        message: &Message<'_>,
        username: &str,
        unix_now: u64,
    ) -> Result<Authenticated, AuthFailure> {
        if let Some(key) = self.static_keys.get(username) {
            return if verify_integrity(message, key) {
                Ok(Authenticated { key: *key, quota_user: username.into(), expires_unix: None })
            } else {
                Err(AuthFailure::BadIntegrity)
            };
        }
        let (expiry, user) = match username.split_once(':') {
            Some((expiry, user)) => (expiry, user),
            None => (username, username),
        };
        let Ok(expiry) = expiry.parse::<u64>() else { return Err(AuthFailure::UnknownUser) };
        if self.secrets.is_empty() {
            return Err(AuthFailure::UnknownUser);
        }
        if expiry < unix_now {
            return Err(AuthFailure::Expired);
        }
        for secret in &self.secrets {
            let password = STANDARD.encode(hmac_sha1(secret, username.as_bytes()));
            let key = long_term_key(username, &self.realm, &password);
            if verify_integrity(message, &key) {
                return Ok(Authenticated { key, quota_user: user.into(), expires_unix: Some(expiry) });
            }
        }
        Err(AuthFailure::BadIntegrity)
    }
}

/// The TURN REST API password for `username` under `secret` (what signaling mints).
pub fn rest_password(secret: &str, username: &str) -> String {
    STANDARD.encode(hmac_sha1(secret.as_bytes(), username.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::Transport;

    fn auth() -> Auth {
        Auth::new("isoplane", &["old".into(), "new".into()], std::iter::empty(), [1; 32], 600)
    }

    #[test]
    fn nonce_is_fresh_then_stale_and_bound_to_source() {
        let a = auth();
        let client = ClientAddr { transport: Transport::Udp, remote: "127.0.0.1:5000".parse().unwrap() };
        let other = ClientAddr { transport: Transport::Udp, remote: "127.0.0.2:5000".parse().unwrap() };
        let n = a.nonce(100, &client);
        assert_eq!(n.len(), 8);
        assert_eq!(a.check_nonce(n.as_bytes(), 100, &client), NonceCheck::Fresh);
        assert_eq!(a.check_nonce(n.as_bytes(), 100 + 540, &client), NonceCheck::Fresh);
        assert_eq!(a.check_nonce(n.as_bytes(), 100 + 661, &client), NonceCheck::Stale);
        assert_eq!(a.check_nonce(n.as_bytes(), 100, &other), NonceCheck::Stale);
        assert_eq!(a.check_nonce(b"AAAAAAAA", 100, &client), NonceCheck::Stale);
        assert_eq!(a.check_nonce(b"\xff", 100, &client), NonceCheck::Stale);
    }

    #[test]
    fn rest_password_matches_coturn_scheme() {
        // base64(HMAC-SHA1("secret", "1700000000:alice")), computed with openssl:
        // printf 1700000000:alice | openssl dgst -sha1 -hmac secret -binary | base64
        assert_eq!(rest_password("secret", "1700000000:alice"), "d8soP47RbdIKLDUOpnJPVQyq5Ts=");
    }
}
