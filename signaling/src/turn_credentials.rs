//! TURN credentials in the TURN REST API scheme, as coturn's `use-auth-secret` expects.
//!
//! The username is `EXPIRY:USER` (expiry in seconds since the Unix epoch) and the password
//! is base64(HMAC-SHA1(secret, username)). The TURN server recomputes the password from
//! the shared secret, so signaling hands out credentials without telling TURN anything,
//! and they stop working at the expiry on their own.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha1::Sha1;

/// A username and password for one TURN user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TurnCredentials {
    pub username: String,
    pub password: String,
    /// Seconds since the Unix epoch.
    pub expires_at: u64,
}

/// Mints credentials for `user`, valid for `ttl_seconds` from `now_unix`.
pub fn mint(secret: &[u8], user: &str, now_unix: u64, ttl_seconds: u64) -> TurnCredentials {
    let expires_at = now_unix.saturating_add(ttl_seconds);
    let username = format!("{expires_at}:{user}");
    let mut mac = Hmac::<Sha1>::new_from_slice(secret).unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
    mac.update(username.as_bytes());
    let password = STANDARD.encode(mac.finalize().into_bytes());
    TurnCredentials { username, password, expires_at }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_follow_the_turn_rest_scheme() {
        // Known answer computed independently:
        // printf '%s' '1700000600:alice' | openssl dgst -sha1 -hmac 'north' -binary | base64
        let creds = mint(b"north", "alice", 1_700_000_000, 600);
        assert_eq!(creds.username, "1700000600:alice");
        assert_eq!(creds.expires_at, 1_700_000_600);
        assert_eq!(creds.password, "gthUwOpcRoLI0MMCziCEBOWYnpo=");
    }
}
