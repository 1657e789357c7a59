//! Attribute numbers (RFC 8489 §18.3, RFC 8656 §18) and typed codecs for the values.
//!
//! Decoders take the attribute's value (without its 4-byte header) and return `None`
//! for anything malformed; they never panic.

use super::MAGIC_COOKIE;
use super::message::TransactionId;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

pub const MAPPED_ADDRESS: u16 = 0x0001;
pub const USERNAME: u16 = 0x0006;
pub const MESSAGE_INTEGRITY: u16 = 0x0008;
pub const ERROR_CODE: u16 = 0x0009;
pub const UNKNOWN_ATTRIBUTES: u16 = 0x000A;
pub const CHANNEL_NUMBER: u16 = 0x000C;
pub const LIFETIME: u16 = 0x000D;
pub const XOR_PEER_ADDRESS: u16 = 0x0012;
pub const DATA: u16 = 0x0013;
pub const REALM: u16 = 0x0014;
pub const NONCE: u16 = 0x0015;
pub const XOR_RELAYED_ADDRESS: u16 = 0x0016;
pub const REQUESTED_ADDRESS_FAMILY: u16 = 0x0017;
pub const EVEN_PORT: u16 = 0x0018;
pub const REQUESTED_TRANSPORT: u16 = 0x0019;
pub const DONT_FRAGMENT: u16 = 0x001A;
pub const MESSAGE_INTEGRITY_SHA256: u16 = 0x001C;
pub const PASSWORD_ALGORITHM: u16 = 0x001D;
pub const USERHASH: u16 = 0x001E;
pub const XOR_MAPPED_ADDRESS: u16 = 0x0020;
pub const RESERVATION_TOKEN: u16 = 0x0022;
pub const CONNECTION_ID: u16 = 0x002A;
pub const PRIORITY: u16 = 0x0024;
pub const USE_CANDIDATE: u16 = 0x0025;
pub const ADDITIONAL_ADDRESS_FAMILY: u16 = 0x8000;
pub const ADDRESS_ERROR_CODE: u16 = 0x8001;
/// The numbers these two had in the drafts before RFC 8656, which coturn still uses.
pub const ADDITIONAL_ADDRESS_FAMILY_DRAFT: u16 = 0x8032;
pub const ADDRESS_ERROR_CODE_DRAFT: u16 = 0x8033;
pub const SOFTWARE: u16 = 0x8022;
pub const FINGERPRINT: u16 = 0x8028;

/// Comprehension-required attributes we understand (or safely accept); any other one in
/// a request gets 420 Unknown Attribute.
pub fn is_known_required(kind: u16) -> bool {
    matches!(
        kind,
        MAPPED_ADDRESS
            | USERNAME
            | MESSAGE_INTEGRITY
            | ERROR_CODE
            | UNKNOWN_ATTRIBUTES
            | CHANNEL_NUMBER
            | LIFETIME
            | XOR_PEER_ADDRESS
            | DATA
            | REALM
            | NONCE
            | XOR_RELAYED_ADDRESS
            | REQUESTED_ADDRESS_FAMILY
            | EVEN_PORT
            | REQUESTED_TRANSPORT
            | DONT_FRAGMENT
            | XOR_MAPPED_ADDRESS
            | RESERVATION_TOKEN
            | CONNECTION_ID
            | PRIORITY
            | USE_CANDIDATE
    )
}

/// Address family numbers on the wire.
pub const FAMILY_V4: u8 = 0x01;
pub const FAMILY_V6: u8 = 0x02;

/// Decodes an XOR-*-ADDRESS value.
pub fn decode_xor_address(value: &[u8], transaction_id: &TransactionId) -> Option<SocketAddr> {
    if value.len() < 4 {
        return None;
    }
    let port = u16::from_be_bytes([value[2], value[3]]) ^ (MAGIC_COOKIE >> 16) as u16;
    let cookie = MAGIC_COOKIE.to_be_bytes();
    match value[1] {
        FAMILY_V4 if value.len() == 8 => {
            let mut ip = [0u8; 4];
            for (i, b) in ip.iter_mut().enumerate() {
                *b = value[4 + i] ^ cookie[i];
            }
            Some(SocketAddr::new(IpAddr::V4(Ipv4Addr::from(ip)), port))
        }
        FAMILY_V6 if value.len() == 20 => {
            let mut key = [0u8; 16];
            key[..4].copy_from_slice(&cookie);
            key[4..].copy_from_slice(transaction_id);
            let mut ip = [0u8; 16];
            for (i, b) in ip.iter_mut().enumerate() {
                *b = value[4 + i] ^ key[i];
            }
            Some(SocketAddr::new(IpAddr::V6(Ipv6Addr::from(ip)), port))
        }
        _ => None,
    }
}

/// Encodes an XOR-*-ADDRESS value into `out`.
pub fn encode_xor_address(addr: SocketAddr, transaction_id: &TransactionId, out: &mut Vec<u8>) {
    let port = addr.port() ^ (MAGIC_COOKIE >> 16) as u16;
    let cookie = MAGIC_COOKIE.to_be_bytes();
    match addr.ip() {
        IpAddr::V4(ip) => {
            out.extend_from_slice(&[0, FAMILY_V4]);
            out.extend_from_slice(&port.to_be_bytes());
            for (i, b) in ip.octets().iter().enumerate() {
                out.push(b ^ cookie[i]);
            }
        }
        IpAddr::V6(ip) => {
            out.extend_from_slice(&[0, FAMILY_V6]);
            out.extend_from_slice(&port.to_be_bytes());
            let mut key = [0u8; 16];
            key[..4].copy_from_slice(&cookie);
            key[4..].copy_from_slice(transaction_id);
            for (i, b) in ip.octets().iter().enumerate() {
                out.push(b ^ key[i]);
            }
        }
    }
}

/// Decodes a 32-bit value (LIFETIME).
pub fn decode_u32(value: &[u8]) -> Option<u32> {
    let bytes: [u8; 4] = value.try_into().ok()?;
    Some(u32::from_be_bytes(bytes))
}

/// CHANNEL-NUMBER: the number in the first two bytes (the rest is RFFU).
pub fn decode_channel_number(value: &[u8]) -> Option<u16> {
    if value.len() != 4 {
        return None;
    }
    Some(u16::from_be_bytes([value[0], value[1]]))
}

/// REQUESTED-TRANSPORT: the IANA protocol number (17 = UDP).
pub fn decode_requested_transport(value: &[u8]) -> Option<u8> {
    if value.len() != 4 {
        return None;
    }
    Some(value[0])
}

/// REQUESTED-ADDRESS-FAMILY and ADDITIONAL-ADDRESS-FAMILY: 0x01 IPv4, 0x02 IPv6.
pub fn decode_address_family(value: &[u8]) -> Option<u8> {
    if value.len() != 4 {
        return None;
    }
    Some(value[0])
}

/// A decoded ERROR-CODE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorCode {
    pub code: u16,
    pub reason: String,
}

pub fn decode_error_code(value: &[u8]) -> Option<ErrorCode> {
    if value.len() < 4 {
        return None;
    }
    let class = u16::from(value[2] & 0x07);
    let number = u16::from(value[3]);
    if number > 99 {
        return None;
    }
    let reason = String::from_utf8_lossy(&value[4..]).into_owned();
    Some(ErrorCode { code: class * 100 + number, reason })
}

pub fn encode_error_code(code: u16, reason: &str, out: &mut Vec<u8>) {
    out.extend_from_slice(&[0, 0, (code / 100) as u8, (code % 100) as u8]);
    out.extend_from_slice(reason.as_bytes());
}

/// ADDRESS-ERROR-CODE (RFC 8656 §18.12): the family an Allocate did not get, and why.
pub fn encode_address_error_code(family: u8, code: u16, reason: &str, out: &mut Vec<u8>) {
    out.extend_from_slice(&[family, 0, (code / 100) as u8, (code % 100) as u8]);
    out.extend_from_slice(reason.as_bytes());
}

/// Decodes ADDRESS-ERROR-CODE into the family byte and the error.
pub fn decode_address_error_code(value: &[u8]) -> Option<(u8, ErrorCode)> {
    let family = *value.first()?;
    let mut plain = value.to_vec();
    plain[0] = 0;
    decode_error_code(&plain).map(|error| (family, error))
}

/// A UTF-8 text attribute (USERNAME, REALM, NONCE, SOFTWARE) with the RFC's length limit.
pub fn decode_text(value: &[u8], max_len: usize) -> Option<&str> {
    if value.len() > max_len {
        return None;
    }
    std::str::from_utf8(value).ok()
}

/// The standard reason phrase for an error code we send.
pub fn reason_phrase(code: u16) -> &'static str {
    match code {
        300 => "Try Alternate",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        420 => "Unknown Attribute",
        437 => "Allocation Mismatch",
        438 => "Stale Nonce",
        440 => "Address Family not Supported",
        441 => "Wrong Credentials",
        442 => "Unsupported Transport Protocol",
        443 => "Peer Address Family Mismatch",
        446 => "Connection Already Exists",
        447 => "Connection Timeout or Failure",
        486 => "Allocation Quota Reached",
        500 => "Server Error",
        508 => "Insufficient Capacity",
        _ => "Error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xor_address_round_trips() {
        let tid = [7u8; 12];
        for addr in ["192.0.2.1:32853", "[2001:db8:1234:5678:11:2233:4455:6677]:32853"] {
            let addr: SocketAddr = addr.parse().unwrap();
            let mut out = Vec::new();
            encode_xor_address(addr, &tid, &mut out);
            assert_eq!(decode_xor_address(&out, &tid), Some(addr));
        }
        assert_eq!(decode_xor_address(&[0, 1, 0], &tid), None);
        assert_eq!(decode_xor_address(&[0, 3, 0, 0, 1, 2, 3, 4], &tid), None);
    }

    #[test]
    fn address_error_code_round_trips() {
        let mut out = Vec::new();
        encode_address_error_code(FAMILY_V6, 440, "Address Family not Supported", &mut out);
        assert_eq!(out[..4], [2, 0, 4, 40]);
        let (family, error) = decode_address_error_code(&out).unwrap();
        assert_eq!((family, error.code, error.reason.as_str()), (FAMILY_V6, 440, "Address Family not Supported"));
    }

    #[test]
    fn error_code_round_trips() {
        let mut out = Vec::new();
        encode_error_code(438, "Stale Nonce", &mut out);
        assert_eq!(decode_error_code(&out), Some(ErrorCode { code: 438, reason: "Stale Nonce".into() }));
    }
}
