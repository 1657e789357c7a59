//! Writes STUN messages: header, attributes with padding, then optional
//! MESSAGE-INTEGRITY and FINGERPRINT, with the length field kept right at every step.

use super::attr;
use super::integrity::{fingerprint, hmac_sha1_patched};
use super::message::{Class, Method, TransactionId, message_type};
use super::{HEADER_LEN, MAGIC_COOKIE};
use std::net::SocketAddr;

/// Builds one message into an owned buffer.
#[derive(Debug)]
pub struct MessageBuilder {
    buf: Vec<u8>,
    transaction_id: TransactionId,
}

impl MessageBuilder {
    pub fn new(method: Method, class: Class, transaction_id: TransactionId) -> MessageBuilder {
        let mut buf = Vec::with_capacity(128);
        buf.extend_from_slice(&message_type(method, class).to_be_bytes());
        buf.extend_from_slice(&[0, 0]);
        buf.extend_from_slice(&MAGIC_COOKIE.to_be_bytes());
        buf.extend_from_slice(&transaction_id);
        MessageBuilder { buf, transaction_id }
    }

    /// Current size in bytes.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buf.len() == HEADER_LEN
    }

    fn set_length(&mut self) {
        let len = (self.buf.len() - HEADER_LEN) as u16;
        self.buf[2..4].copy_from_slice(&len.to_be_bytes());
    }

    /// Appends an attribute; values longer than 65535 bytes are cut (never sent by us).
    pub fn attr(&mut self, kind: u16, value: &[u8]) -> &mut Self {
        let len = value.len().min(usize::from(u16::MAX));
        self.buf.extend_from_slice(&kind.to_be_bytes());
        self.buf.extend_from_slice(&(len as u16).to_be_bytes());
        self.buf.extend_from_slice(&value[..len]);
        let pad = (4 - len % 4) % 4;
        self.buf.extend_from_slice(&[0u8; 3][..pad]);
        self.set_length();
        self
    }

    /// Appends an attribute whose value is written by `write`.
    pub fn attr_with(&mut self, kind: u16, write: impl FnOnce(&mut Vec<u8>)) -> &mut Self {
        let start = self.buf.len();
        self.buf.extend_from_slice(&kind.to_be_bytes());
        self.buf.extend_from_slice(&[0, 0]);
        write(&mut self.buf);
        let len = self.buf.len() - start - 4;
        self.buf[start + 2..start + 4].copy_from_slice(&(len as u16).to_be_bytes());
        let pad = (4 - len % 4) % 4;
        self.buf.extend_from_slice(&[0u8; 3][..pad]);
        self.set_length();
        self
    }

    pub fn xor_address(&mut self, kind: u16, addr: SocketAddr) -> &mut Self {
        let tid = self.transaction_id;
        self.attr_with(kind, |out| attr::encode_xor_address(addr, &tid, out))
    }

    pub fn error_code(&mut self, code: u16, reason: &str) -> &mut Self {
        self.attr_with(attr::ERROR_CODE, |out| attr::encode_error_code(code, reason, out))
    }

    pub fn u32(&mut self, kind: u16, value: u32) -> &mut Self {
        self.attr(kind, &value.to_be_bytes())
    }

    /// Appends MESSAGE-INTEGRITY computed with `key`.
    pub fn integrity(&mut self, key: &[u8]) -> &mut Self {
        let length = (self.buf.len() + 24 - HEADER_LEN) as u16;
        let mac = hmac_sha1_patched(key, &self.buf, length);
        self.attr(attr::MESSAGE_INTEGRITY, &mac)
    }

    /// Appends FINGERPRINT.
    pub fn fingerprint(&mut self) -> &mut Self {
        let length = (self.buf.len() + 8 - HEADER_LEN) as u16;
        let value = fingerprint(&self.buf, length);
        self.attr(attr::FINGERPRINT, &value.to_be_bytes())
    }

    pub fn finish(self) -> Vec<u8> {
        self.buf
    }
}
