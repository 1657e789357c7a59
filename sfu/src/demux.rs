//! Which worker owns an incoming datagram, before any worker looks at it.
//!
//! Every peer's media arrives on one port. A peer's first packets are STUN binding
//! requests whose USERNAME starts with the SFU's ICE ufrag for that peer, and the ufrag
//! names the worker that owns the peer (`w{worker}x{random}`). Workers remember the
//! source address of each such request, so later DTLS/SRTP packets from that address
//! reach the same owner.

use rand::Rng;
use rand::distr::Alphanumeric;

const STUN_HEADER: usize = 20;
const STUN_MAGIC_COOKIE: u32 = 0x2112_A442;
const ATTRIBUTE_USERNAME: u16 = 0x0006;

/// A fresh ICE ufrag owned by `worker`.
pub fn new_ufrag(worker: usize) -> String {
    let random: String = rand::rng().sample_iter(&Alphanumeric).take(12).map(char::from).collect();
    format!("w{worker}x{random}")
}

/// The worker a ufrag names.
pub fn worker_of_ufrag(ufrag: &str) -> Option<usize> {
    let rest = ufrag.strip_prefix('w')?;
    let (digits, _) = rest.split_once('x')?;
    digits.parse().ok()
}

/// Whether a datagram is STUN (RFC 7983 demultiplexing: first byte 0..=3, and the magic
/// cookie).
pub fn is_stun(datagram: &[u8]) -> bool {
    datagram.len() >= STUN_HEADER
        && datagram[0] < 4
        && u32::from_be_bytes([datagram[4], datagram[5], datagram[6], datagram[7]]) == STUN_MAGIC_COOKIE
}

/// The local (SFU's) ufrag of a STUN request: USERNAME is `local:remote`.
pub fn stun_local_ufrag(datagram: &[u8]) -> Option<&str> {
    if !is_stun(datagram) {
        return None;
    }
    let length = usize::from(u16::from_be_bytes([datagram[2], datagram[3]]));
    let mut attributes = datagram.get(STUN_HEADER..STUN_HEADER + length)?;
    while attributes.len() >= 4 {
        let kind = u16::from_be_bytes([attributes[0], attributes[1]]);
        let size = usize::from(u16::from_be_bytes([attributes[2], attributes[3]]));
        let value = attributes.get(4..4 + size)?;
        if kind == ATTRIBUTE_USERNAME {
            let username = std::str::from_utf8(value).ok()?;
            return username.split_once(':').map(|(local, _)| local);
        }
        // Attribute values are padded to four bytes.
        let padded = (size + 3) & !3;
        attributes = attributes.get(4 + padded..)?;
    }
    None
}

/// The worker a STUN request is for.
pub fn stun_worker(datagram: &[u8]) -> Option<usize> {
    stun_local_ufrag(datagram).and_then(worker_of_ufrag)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding_request(username: &str) -> Vec<u8> {
        let mut attribute = Vec::new();
        attribute.extend_from_slice(&ATTRIBUTE_USERNAME.to_be_bytes());
        attribute.extend_from_slice(&(username.len() as u16).to_be_bytes());
        attribute.extend_from_slice(username.as_bytes());
        while attribute.len() % 4 != 0 {
            attribute.push(0);
        }
        // A PRIORITY attribute after it, to check the walk past padding.
        let mut other = vec![0x00, 0x24, 0x00, 0x04, 1, 2, 3, 4];
        let mut message = vec![0x00, 0x01];
        message.extend_from_slice(&((attribute.len() + other.len()) as u16).to_be_bytes());
        message.extend_from_slice(&STUN_MAGIC_COOKIE.to_be_bytes());
        message.extend_from_slice(&[7; 12]);
        message.extend_from_slice(&attribute);
        message.append(&mut other);
        message
    }

    #[test]
    fn the_owner_is_read_from_the_username_of_a_binding_request() {
        let ufrag = new_ufrag(3);
        assert_eq!(worker_of_ufrag(&ufrag), Some(3));
        let request = binding_request(&format!("{ufrag}:remote"));
        assert!(is_stun(&request));
        assert_eq!(stun_local_ufrag(&request), Some(ufrag.as_str()));
        assert_eq!(stun_worker(&request), Some(3));
        assert_eq!(stun_worker(&binding_request("odd:remote")), None);
    }

    #[test]
    fn other_packets_and_truncated_stun_name_no_owner() {
        assert_eq!(stun_worker(&[0x80; 40]), None, "RTP");
        assert_eq!(stun_worker(&[22; 40]), None, "DTLS");
        let mut truncated = binding_request("w1xabc:remote");
        truncated.truncate(26);
        assert_eq!(stun_worker(&truncated), None);
        assert_eq!(stun_worker(&[]), None);
    }
}
