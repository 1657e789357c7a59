//! MESSAGE-INTEGRITY (HMAC-SHA1), FINGERPRINT (CRC-32 xor 0x5354554e) and the long-term
//! credential key MD5(username ":" realm ":" password) (RFC 8489 §9.2, §14.5, §14.7).
//!
//! Both checks hash the message as if its length field ended right after the checked
//! attribute, so we hash a patched copy of the header followed by the body prefix.

use super::message::Message;
use super::{HEADER_LEN, attr};
use hmac::{Hmac, Mac};
use md5::{Digest, Md5};
use sha1::Sha1;

type HmacSha1 = Hmac<Sha1>;

/// The XOR applied to the CRC-32 in FINGERPRINT.
pub const FINGERPRINT_XOR: u32 = 0x5354_554E;

/// The long-term credential key (16 bytes).
pub type LongTermKey = [u8; 16];

pub fn long_term_key(username: &str, realm: &str, password: &str) -> LongTermKey {
    let mut md5 = Md5::new();
    md5.update(username.as_bytes());
    md5.update(b":");
    md5.update(realm.as_bytes());
    md5.update(b":");
    md5.update(password.as_bytes());
    md5.finalize().into()
}

/// HMAC-SHA1 of `prefix` where the header's length field is replaced by `length`.
pub fn hmac_sha1_patched(key: &[u8], prefix: &[u8], length: u16) -> [u8; 20] {
    // HMAC accepts keys of any length, so new_from_slice cannot fail here.
    let Ok(mut mac) = HmacSha1::new_from_slice(key) else { return [0; 20] };
    mac.update(&prefix[..2]);
    mac.update(&length.to_be_bytes());
    mac.update(&prefix[4..]);
    mac.finalize().into_bytes().into()
}

/// Plain HMAC-SHA1 (TURN REST passwords and stateless nonces).
pub fn hmac_sha1(key: &[u8], data: &[u8]) -> [u8; 20] {
    let Ok(mut mac) = HmacSha1::new_from_slice(key) else { return [0; 20] };
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// Checks MESSAGE-INTEGRITY with `key`. False when absent or wrong.
pub fn verify_integrity(message: &Message<'_>, key: &[u8]) -> bool {
    let Some(offset) = message.integrity_offset() else { return false };
    let bytes = message.bytes();
    let Some(received) = bytes.get(offset + 4..offset + 24) else { return false };
    // Length as if the message ended right after MESSAGE-INTEGRITY.
    let length = (offset + 24 - HEADER_LEN) as u16;
    let computed = hmac_sha1_patched(key, &bytes[..offset], length);
    constant_time_eq(&computed, received)
}

/// Checks FINGERPRINT when present; true when absent.
pub fn verify_fingerprint(message: &Message<'_>) -> bool {
    let Some(offset) = message.fingerprint_offset() else { return true };
    let bytes = message.bytes();
    let Some(value) = bytes.get(offset + 4..offset + 8) else { return false };
    let received = u32::from_be_bytes([value[0], value[1], value[2], value[3]]);
    fingerprint(&bytes[..offset], (offset + 8 - HEADER_LEN) as u16) == received
}

/// The FINGERPRINT value of `prefix` whose length field is patched to `length`.
pub fn fingerprint(prefix: &[u8], length: u16) -> u32 {
    let mut crc = crc32fast::Hasher::new();
    crc.update(&prefix[..2]);
    crc.update(&length.to_be_bytes());
    crc.update(&prefix[4..]);
    crc.finalize() ^ FINGERPRINT_XOR
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// True when the message carries a MESSAGE-INTEGRITY attribute (credentials offered).
pub fn has_integrity(message: &Message<'_>) -> bool {
    message.has(attr::MESSAGE_INTEGRITY)
}
