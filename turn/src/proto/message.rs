//! The STUN header and a zero-copy, validated view of a message's attributes.
//!
//! Invariants of a [`Message`] that parsed: the buffer is exactly one message (header
//! length + 20 bytes), every attribute lies inside it, at most [`MAX_ATTRIBUTES`]
//! attributes, and nothing but FINGERPRINT follows MESSAGE-INTEGRITY (RFC 8489 §14.5:
//! attributes after it are ignored, so we simply stop reading them).

use super::attr;
use super::{HEADER_LEN, MAGIC_COOKIE};
use thiserror::Error;

/// A bound on attributes per message, so a message costs at most this much to scan.
pub const MAX_ATTRIBUTES: usize = 32;

/// Why bytes are not a STUN message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum ParseError {
    #[error("shorter than the 20-byte STUN header")]
    TooShort,
    #[error("the two top bits are not zero, so this is not STUN")]
    NotStun,
    #[error("magic cookie missing (a pre-RFC 5389 client?)")]
    BadCookie,
    #[error("length field {declared} does not match the {actual} bytes received")]
    LengthMismatch { declared: usize, actual: usize },
    #[error("length is not a multiple of 4")]
    Unaligned,
    #[error("attribute runs past the end of the message")]
    TruncatedAttribute,
    #[error("more than {MAX_ATTRIBUTES} attributes")]
    TooManyAttributes,
}

/// The 96-bit transaction ID.
pub type TransactionId = [u8; 12];

/// The class bits of the message type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    Request,
    Indication,
    Success,
    Error,
}

/// The methods this server knows; others are kept as their number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Binding,
    Allocate,
    Refresh,
    Send,
    Data,
    CreatePermission,
    ChannelBind,
    /// RFC 6062: a TCP connection to a peer from a TCP allocation.
    Connect,
    /// RFC 6062: joins a new client connection to a peer connection.
    ConnectionBind,
    /// RFC 6062: a peer connected to a TCP allocation's relayed address.
    ConnectionAttempt,
    Other(u16),
}

impl Method {
    pub fn from_number(n: u16) -> Method {
        match n {
            0x001 => Method::Binding,
            0x003 => Method::Allocate,
            0x004 => Method::Refresh,
            0x006 => Method::Send,
            0x007 => Method::Data,
            0x008 => Method::CreatePermission,
            0x009 => Method::ChannelBind,
            0x00A => Method::Connect,
            0x00B => Method::ConnectionBind,
            0x00C => Method::ConnectionAttempt,
            other => Method::Other(other),
        }
    }

    pub fn number(self) -> u16 {
        match self {
            Method::Binding => 0x001,
            Method::Allocate => 0x003,
            Method::Refresh => 0x004,
            Method::Send => 0x006,
            Method::Data => 0x007,
            Method::CreatePermission => 0x008,
            Method::ChannelBind => 0x009,
            Method::Connect => 0x00A,
            Method::ConnectionBind => 0x00B,
            Method::ConnectionAttempt => 0x00C,
            Method::Other(n) => n & 0x0FFF,
        }
    }
}

/// Packs method and class into the 14-bit message type (RFC 8489 §5).
pub fn message_type(method: Method, class: Class) -> u16 {
    let m = method.number();
    let c: u16 = match class {
        Class::Request => 0b00,
        Class::Indication => 0b01,
        Class::Success => 0b10,
        Class::Error => 0b11,
    };
    (m & 0x000F) | ((m & 0x0070) << 1) | ((m & 0x0F80) << 2) | ((c & 0b01) << 4) | ((c & 0b10) << 7)
}

fn split_type(t: u16) -> (Method, Class) {
    let m = (t & 0x000F) | ((t >> 1) & 0x0070) | ((t >> 2) & 0x0F80);
    let class = match ((t >> 4) & 0b01) | ((t >> 7) & 0b10) {
        0b00 => Class::Request,
        0b01 => Class::Indication,
        0b10 => Class::Success,
        _ => Class::Error,
    };
    (Method::from_number(m), class)
}

/// One attribute as found on the wire.
#[derive(Debug, Clone, Copy)]
pub struct RawAttribute<'a> {
    pub kind: u16,
    pub value: &'a [u8],
    /// Offset of the attribute's 4-byte header in the message.
    pub offset: usize,
}

/// A parsed STUN message borrowing its buffer.
#[derive(Debug, Clone)]
pub struct Message<'a> {
    bytes: &'a [u8],
    pub method: Method,
    pub class: Class,
    pub transaction_id: TransactionId,
    attrs: [Option<RawAttribute<'a>>; MAX_ATTRIBUTES],
    attr_count: usize,
    /// Offset of MESSAGE-INTEGRITY's header, when present.
    integrity_offset: Option<usize>,
    /// Offset of FINGERPRINT's header, when present.
    fingerprint_offset: Option<usize>,
}

/// True when the first byte says STUN (top two bits zero) rather than ChannelData.
pub fn looks_like_stun(bytes: &[u8]) -> bool {
    bytes.first().is_some_and(|b| b & 0xC0 == 0) && bytes.len() >= HEADER_LEN
}

impl<'a> Message<'a> {
    /// Parses one whole message; `bytes` must be exactly the message.
    pub fn parse(bytes: &'a [u8]) -> Result<Message<'a>, ParseError> {
        if bytes.len() < HEADER_LEN {
            return Err(ParseError::TooShort);
        }
        if bytes[0] & 0xC0 != 0 {
            return Err(ParseError::NotStun);
        }
        let declared = usize::from(u16::from_be_bytes([bytes[2], bytes[3]]));
        if u32::from_be_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]) != MAGIC_COOKIE {
            return Err(ParseError::BadCookie);
        }
        if declared % 4 != 0 {
            return Err(ParseError::Unaligned);
        }
        if declared + HEADER_LEN != bytes.len() {
            return Err(ParseError::LengthMismatch { declared, actual: bytes.len() - HEADER_LEN });
        }
        let (method, class) = split_type(u16::from_be_bytes([bytes[0], bytes[1]]));
        let mut transaction_id = [0u8; 12];
        transaction_id.copy_from_slice(&bytes[8..20]);
        let mut message = Message {
            bytes,
            method,
            class,
            transaction_id,
            attrs: [None; MAX_ATTRIBUTES],
            attr_count: 0,
            integrity_offset: None,
            fingerprint_offset: None,
        };
        let mut offset = HEADER_LEN;
        while offset < bytes.len() {
            let header = bytes.get(offset..offset + 4).ok_or(ParseError::TruncatedAttribute)?;
            let kind = u16::from_be_bytes([header[0], header[1]]);
            let len = usize::from(u16::from_be_bytes([header[2], header[3]]));
            let value = bytes.get(offset + 4..offset + 4 + len).ok_or(ParseError::TruncatedAttribute)?;
            let padded = (len + 3) & !3;
            if offset + 4 + padded > bytes.len() {
                return Err(ParseError::TruncatedAttribute);
            }
            if message.fingerprint_offset.is_some() {
                // Nothing may follow FINGERPRINT; ignore whatever does.
                break;
            }
            if kind == attr::FINGERPRINT {
                message.fingerprint_offset = Some(offset);
            } else if message.integrity_offset.is_some() {
                // Only FINGERPRINT counts after MESSAGE-INTEGRITY.
            } else {
                if kind == attr::MESSAGE_INTEGRITY {
                    message.integrity_offset = Some(offset);
                }
                if message.attr_count == MAX_ATTRIBUTES {
                    return Err(ParseError::TooManyAttributes);
                }
                message.attrs[message.attr_count] = Some(RawAttribute { kind, value, offset });
                message.attr_count += 1;
            }
            offset += 4 + padded;
        }
        Ok(message)
    }

    /// The whole message.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// Attributes in wire order (those after MESSAGE-INTEGRITY are left out).
    pub fn attributes(&self) -> impl Iterator<Item = RawAttribute<'a>> + '_ {
        self.attrs[..self.attr_count].iter().flatten().copied()
    }

    /// The first attribute of this type.
    pub fn get(&self, kind: u16) -> Option<&'a [u8]> {
        self.attributes().find(|a| a.kind == kind).map(|a| a.value)
    }

    pub fn has(&self, kind: u16) -> bool {
        self.get(kind).is_some()
    }

    pub fn integrity_offset(&self) -> Option<usize> {
        self.integrity_offset
    }

    pub fn fingerprint_offset(&self) -> Option<usize> {
        self.fingerprint_offset
    }

    /// Comprehension-required attributes (0x0000–0x7FFF) this server does not know.
    pub fn unknown_required(&self) -> impl Iterator<Item = u16> + '_ {
        self.attributes().map(|a| a.kind).filter(|k| *k < 0x8000 && !attr::is_known_required(*k))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_type_round_trips() {
        for method in [Method::Binding, Method::Allocate, Method::ChannelBind, Method::Data] {
            for class in [Class::Request, Class::Indication, Class::Success, Class::Error] {
                assert_eq!(split_type(message_type(method, class)), (method, class));
            }
        }
        assert_eq!(message_type(Method::Binding, Class::Request), 0x0001);
        assert_eq!(message_type(Method::Binding, Class::Success), 0x0101);
        assert_eq!(message_type(Method::Allocate, Class::Error), 0x0113);
        assert_eq!(message_type(Method::Data, Class::Indication), 0x0017);
    }

    #[test]
    fn rejects_bad_headers() {
        assert_eq!(Message::parse(&[0u8; 10]).unwrap_err(), ParseError::TooShort);
        let mut m = [0u8; 20];
        m[1] = 1;
        assert_eq!(Message::parse(&m).unwrap_err(), ParseError::BadCookie);
        m[4..8].copy_from_slice(&MAGIC_COOKIE.to_be_bytes());
        assert!(Message::parse(&m).is_ok());
        m[3] = 4;
        assert!(matches!(Message::parse(&m).unwrap_err(), ParseError::LengthMismatch { .. }));
        m[0] = 0x40;
        assert_eq!(Message::parse(&m).unwrap_err(), ParseError::NotStun);
    }

    #[test]
    fn rejects_attribute_past_end() {
        let mut m = vec![0u8, 1, 0, 8];
        m.extend_from_slice(&MAGIC_COOKIE.to_be_bytes());
        m.extend_from_slice(&[0; 12]);
        m.extend_from_slice(&[0x00, 0x06, 0x00, 0x08, b'a', b'b', b'c', b'd']);
        assert_eq!(Message::parse(&m).unwrap_err(), ParseError::TruncatedAttribute);
    }
}
