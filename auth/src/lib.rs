//! Isoplane's tokens: compact JWTs signed with HMAC-SHA256, and nothing else.
//!
//! Three kinds, each with its own claims type so one can never pass for another:
//! [`JoinClaims`] (the identity provider → signaling and the asset server),
//! [`SfuClaims`] (signaling → a client, to enter one SFU room) and [`SfuControlClaims`]
//! (signaling → the SFU's control API).
//!
//! The algorithm is pinned: a token whose header names any other algorithm (`none`,
//! `RS256`, `HS512`…) is refused before its signature is looked at, so no
//! algorithm-confusion trick applies. `exp` is required and checked against the time the
//! caller passes in (seconds since the Unix epoch), with a small leeway for clock skew.
//! The same signer mints the SFU's scoped tokens.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// Tokens longer than this are refused unread.
pub const MAX_TOKEN_BYTES: usize = 4096;
/// Accepted clock skew between the issuer and this server.
pub const LEEWAY_SECONDS: u64 = 30;

const HEADER: &str = r#"{"alg":"HS256","typ":"JWT"}"#;

/// A member of a workspace, one who may also change its worlds (build mode), or one of
/// its admins (who may do both, and moderate).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Member,
    Admin,
    /// Edits and publishes worlds (uploads, versions, rollbacks on the asset server);
    /// otherwise a member.
    Builder,
}

/// What a join token says about its bearer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinClaims {
    /// Stable user ID.
    pub sub: String,
    /// Display name.
    pub name: String,
    /// Workspace the token is for.
    pub workspace: String,
    pub role: Role,
    /// Expiry, seconds since the Unix epoch.
    pub exp: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
}

impl JoinClaims {
    /// Claims for `sub` (shown as `name`) in `workspace`, expiring at `exp` (seconds since
    /// the Unix epoch), with no `iat`/`nbf`: what development issuers, tools and tests mint.
    pub fn new(sub: &str, name: &str, workspace: &str, role: Role, exp: u64) -> JoinClaims {
        JoinClaims { sub: sub.into(), name: name.into(), workspace: workspace.into(), role, exp, iat: None, nbf: None }
    }
}

/// The SFU token's claims: which room, who, and what they may do there. Signaling mints
/// one per media plan; the SFU admits its bearer to exactly that room.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SfuClaims {
    /// `world/zone`.
    pub room: String,
    /// Stable user ID.
    pub sub: String,
    /// The avatar's ID in its world; subscribers ask for tracks by avatar.
    pub avatar: u32,
    /// Whether the bearer may send audio and video (stage listeners may not).
    pub publish: bool,
    /// An admin muted the bearer's audio: the SFU forwards none of it until unmuted.
    #[serde(default)]
    pub audio_muted: bool,
    /// An admin muted the bearer's video.
    #[serde(default)]
    pub video_muted: bool,
    /// The room is end-to-end encrypted: the SFU forwards frames it cannot read, so it
    /// never looks into them (and refuses to record them).
    #[serde(default)]
    pub e2ee: bool,
    /// Expiry, seconds since the Unix epoch. Only checked when the bearer enters.
    pub exp: u64,
}

impl TimedClaims for SfuClaims {
    fn expires_at(&self) -> u64 {
        self.exp
    }
}

/// Claims of a token for the SFU's control API: short-lived, signed with the secret the
/// SFU and signaling share. `scope` must be `"control"`, so an SFU room token (signed
/// with the same secret) can never drive the control API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SfuControlClaims {
    pub scope: String,
    pub exp: u64,
}

impl SfuControlClaims {
    pub const SCOPE: &'static str = "control";

    pub fn new(exp: u64) -> SfuControlClaims {
        SfuControlClaims { scope: Self::SCOPE.to_owned(), exp }
    }
}

impl TimedClaims for SfuControlClaims {
    fn expires_at(&self) -> u64 {
        self.exp
    }
}

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the token is longer than {MAX_TOKEN_BYTES} bytes")]
    TooLong,
    #[error("the token is not three base64url parts separated by dots")]
    Malformed,
    #[error("the token's algorithm is not HS256")]
    WrongAlgorithm,
    #[error("the token's signature does not match")]
    BadSignature,
    #[error("the token's claims are missing or malformed: {0}")]
    BadClaims(String),
    #[error("the token expired")]
    Expired,
    #[error("the token is not valid yet")]
    NotYetValid,
}

/// Claims with the time fields every verified token carries.
pub trait TimedClaims {
    fn expires_at(&self) -> u64;
    fn not_before(&self) -> Option<u64> {
        None
    }
}

impl TimedClaims for JoinClaims {
    fn expires_at(&self) -> u64 {
        self.exp
    }
    fn not_before(&self) -> Option<u64> {
        self.nbf
    }
}

/// Signs and verifies HS256 tokens with one secret.
#[derive(Clone)]
pub struct TokenKey {
    secret: Vec<u8>,
}

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the secret.
        f.write_str("TokenKey(…)")
    }
}

#[derive(Deserialize)]
struct Header {
    alg: String,
}

impl TokenKey {
    pub fn new(secret: impl Into<Vec<u8>>) -> TokenKey {
        TokenKey { secret: secret.into() }
    }

    fn mac(&self) -> Hmac<Sha256> {
        // HMAC takes keys of any length.
        Hmac::<Sha256>::new_from_slice(&self.secret).unwrap_or_else(|_| unreachable!("HMAC accepts any key length"))
    }

    /// Signs claims into a compact JWT.
    pub fn sign<C: Serialize>(&self, claims: &C) -> String {
        // Claims are plain data; serialising them cannot fail.
        let payload = serde_json::to_vec(claims).unwrap_or_default();
        let signing_input = format!("{}.{}", URL_SAFE_NO_PAD.encode(HEADER), URL_SAFE_NO_PAD.encode(payload));
        let mut mac = self.mac();
        mac.update(signing_input.as_bytes());
        let signature = mac.finalize().into_bytes();
        format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature))
    }

    /// Verifies a token and returns its claims, if it is HS256, signed with this key,
    /// current at `now_unix`, and its claims have the expected shape.
    pub fn verify<C: DeserializeOwned + TimedClaims>(&self, token: &str, now_unix: u64) -> Result<C, TokenError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(TokenError::TooLong);
        }
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed);
        };
        let header: Header = URL_SAFE_NO_PAD
            .decode(header)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .ok_or(TokenError::Malformed)?;
        if header.alg != "HS256" {
            return Err(TokenError::WrongAlgorithm);
        }
        let signature = URL_SAFE_NO_PAD.decode(signature).map_err(|_| TokenError::Malformed)?;
        let signing_input = token.rfind('.').map(|dot| &token[..dot]).ok_or(TokenError::Malformed)?;
        let mut mac = self.mac();
        mac.update(signing_input.as_bytes());
        // Constant-time comparison.
        mac.verify_slice(&signature).map_err(|_| TokenError::BadSignature)?;
        let payload = URL_SAFE_NO_PAD.decode(payload).map_err(|_| TokenError::Malformed)?;
        let claims: C = serde_json::from_slice(&payload).map_err(|e| TokenError::BadClaims(e.to_string()))?;
        if claims.expires_at().saturating_add(LEEWAY_SECONDS) <= now_unix {
            return Err(TokenError::Expired);
        }
        if claims.not_before().is_some_and(|nbf| nbf > now_unix.saturating_add(LEEWAY_SECONDS)) {
            return Err(TokenError::NotYetValid);
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_800_000_000;

    fn claims(exp: u64) -> JoinClaims {
        JoinClaims {
            sub: "u1".into(),
            name: "Ada".into(),
            workspace: "acme".into(),
            role: Role::Member,
            exp,
            iat: Some(NOW),
            nbf: None,
        }
    }

    #[test]
    fn a_signed_token_verifies_and_yields_its_claims() {
        let key = TokenKey::new("secret");
        let token = key.sign(&claims(NOW + 60));
        assert_eq!(key.verify::<JoinClaims>(&token, NOW), Ok(claims(NOW + 60)));
    }

    #[test]
    fn forged_expired_and_confused_tokens_are_refused() {
        let key = TokenKey::new("secret");
        let token = key.sign(&claims(NOW + 60));
        assert_eq!(TokenKey::new("other").verify::<JoinClaims>(&token, NOW), Err(TokenError::BadSignature));
        assert_eq!(key.verify::<JoinClaims>(&key.sign(&claims(NOW - 31)), NOW), Err(TokenError::Expired));
        // Within the leeway, still fine.
        assert!(key.verify::<JoinClaims>(&key.sign(&claims(NOW - 5)), NOW).is_ok());

        // Tampered payload: role upgraded to admin, signature kept.
        let parts: Vec<&str> = token.split('.').collect();
        let mut admin = claims(NOW + 60);
        admin.role = Role::Admin;
        let forged_payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&admin).unwrap());
        let forged = format!("{}.{}.{}", parts[0], forged_payload, parts[2]);
        assert_eq!(key.verify::<JoinClaims>(&forged, NOW), Err(TokenError::BadSignature));

        // alg=none with an empty signature.
        let none_header = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#);
        let none = format!("{none_header}.{}.", parts[1]);
        assert_eq!(key.verify::<JoinClaims>(&none, NOW), Err(TokenError::WrongAlgorithm));
        let hs512 = format!("{}.{}.{}", URL_SAFE_NO_PAD.encode(r#"{"alg":"HS512"}"#), parts[1], parts[2]);
        assert_eq!(key.verify::<JoinClaims>(&hs512, NOW), Err(TokenError::WrongAlgorithm));

        assert_eq!(key.verify::<JoinClaims>("a.b", NOW), Err(TokenError::Malformed));
        assert_eq!(key.verify::<JoinClaims>("a.b.c.d", NOW), Err(TokenError::Malformed));
        assert_eq!(key.verify::<JoinClaims>(&"x".repeat(5000), NOW), Err(TokenError::TooLong));
    }

    #[test]
    fn claims_of_the_wrong_shape_are_refused() {
        let key = TokenKey::new("secret");
        let token = key.sign(&serde_json::json!({"sub": "u1", "exp": NOW + 60}));
        assert!(matches!(key.verify::<JoinClaims>(&token, NOW), Err(TokenError::BadClaims(_))));
    }
}
