//! Content IDs: the stable names of immutable assets.
//!
//! An asset's ID is `sha256-` followed by the 64 lowercase hex digits of the SHA-256 of
//! its bytes, so the same bytes always have the same ID and an ID never names two
//! different contents. World files reference assets only by these IDs.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};

const PREFIX: &str = "sha256-";
const HEX_DIGITS: usize = 64;

/// A validated content ID such as `sha256-9f86d0…`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ContentId {
    digest: [u8; 32],
}

/// Why a string is not a content ID.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContentIdError {
    #[error("a content ID starts with `sha256-`")]
    MissingPrefix,
    #[error("a content ID has exactly 64 hex digits after `sha256-`, this one has {0}")]
    WrongLength(usize),
    #[error("a content ID uses lowercase hex digits (0-9, a-f) only")]
    NotLowercaseHex,
}

impl ContentId {
    /// The ID of these bytes.
    pub fn of_bytes(bytes: &[u8]) -> ContentId {
        ContentId { digest: Sha256::digest(bytes).into() }
    }

    /// The ID of a content whose SHA-256 was computed elsewhere (for example while
    /// streaming an upload).
    pub fn from_digest(digest: [u8; 32]) -> ContentId {
        ContentId { digest }
    }

    pub fn digest(&self) -> &[u8; 32] {
        &self.digest
    }

    /// Whether these bytes are the content this ID names.
    pub fn matches(&self, bytes: &[u8]) -> bool {
        ContentId::of_bytes(bytes) == *self
    }
}

impl FromStr for ContentId {
    type Err = ContentIdError;

    fn from_str(text: &str) -> Result<ContentId, ContentIdError> {
        let hex = text.strip_prefix(PREFIX).ok_or(ContentIdError::MissingPrefix)?;
        if hex.len() != HEX_DIGITS {
            return Err(ContentIdError::WrongLength(hex.chars().count()));
        }
        let mut digest = [0u8; 32];
        for (byte, pair) in digest.iter_mut().zip(hex.as_bytes().chunks_exact(2)) {
            *byte = (lower_hex_value(pair[0])? << 4) | lower_hex_value(pair[1])?;
        }
        Ok(ContentId { digest })
    }
}

fn lower_hex_value(digit: u8) -> Result<u8, ContentIdError> {
    match digit {
        b'0'..=b'9' => Ok(digit - b'0'),
        b'a'..=b'f' => Ok(digit - b'a' + 10),
        _ => Err(ContentIdError::NotLowercaseHex),
    }
}

impl fmt::Display for ContentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(PREFIX)?;
        for byte in self.digest {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for ContentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ContentId({self})")
    }
}

impl Serialize for ContentId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ContentId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<ContentId, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_of_known_bytes_is_their_sha256() {
        let id = ContentId::of_bytes(b"abc");
        assert_eq!(id.to_string(), "sha256-ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert!(id.matches(b"abc"));
        assert!(!id.matches(b"abd"));
    }

    #[test]
    fn display_and_parse_round_trip() {
        let id = ContentId::of_bytes(b"tileset");
        assert_eq!(id.to_string().parse::<ContentId>(), Ok(id));
    }

    #[test]
    fn malformed_ids_are_refused_with_the_reason() {
        let good = ContentId::of_bytes(b"x").to_string();
        assert_eq!("md5-abc".parse::<ContentId>(), Err(ContentIdError::MissingPrefix));
        assert_eq!("sha256-abc".parse::<ContentId>(), Err(ContentIdError::WrongLength(3)));
        assert_eq!(
            good.to_uppercase().replace("SHA256", "sha256").parse::<ContentId>(),
            Err(ContentIdError::NotLowercaseHex)
        );
        assert_eq!("../../etc/passwd".parse::<ContentId>(), Err(ContentIdError::MissingPrefix));
        let traversal = format!("sha256-../{}", &good[10..]);
        assert!(traversal.parse::<ContentId>().is_err());
        // Multi-byte characters must not panic the length check or the digit loop.
        let wide = format!("sha256-{}", "é".repeat(32));
        assert!(wide.parse::<ContentId>().is_err());
    }
}
