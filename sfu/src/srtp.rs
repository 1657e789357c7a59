//! SRTP and SRTCP (RFC 3711, with AES-GCM from RFC 7714) for the three profiles a
//! session negotiates over DTLS-SRTP (RFC 5764): AES-128 counter mode with a truncated
//! HMAC-SHA1 tag, AEAD AES-128-GCM and AEAD AES-256-GCM.
//!
//! str0m protects what it sends and keeps its contexts to itself; these contexts are for
//! packets the SFU protects or reads on its own, from the same master keys
//! ([`crate::srtp_keys`]). Packets are protected and unprotected in place: a buffer with
//! room for the tag does not allocate.

use std::fmt;

use aws_lc_rs::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};
use aws_lc_rs::cipher::{self, EncryptingKey, EncryptionContext, UnboundCipherKey};
use aws_lc_rs::{constant_time, hmac};

/// A DTLS-SRTP protection profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    Aes128CmSha1_80,
    AeadAes128Gcm,
    AeadAes256Gcm,
}

impl Profile {
    pub fn master_key_len(self) -> usize {
        match self {
            Profile::Aes128CmSha1_80 | Profile::AeadAes128Gcm => 16,
            Profile::AeadAes256Gcm => 32,
        }
    }

    pub fn master_salt_len(self) -> usize {
        match self {
            Profile::Aes128CmSha1_80 => 14,
            Profile::AeadAes128Gcm | Profile::AeadAes256Gcm => 12,
        }
    }

    /// Bytes a protected RTP packet has beyond the plain one (its tag).
    pub fn rtp_overhead(self) -> usize {
        self.tag_len()
    }

    /// Bytes a protected RTCP packet has beyond the plain one (its tag and index).
    pub fn rtcp_overhead(self) -> usize {
        self.tag_len() + RTCP_INDEX_LEN
    }

    fn tag_len(self) -> usize {
        match self {
            Profile::Aes128CmSha1_80 => 10,
            Profile::AeadAes128Gcm | Profile::AeadAes256Gcm => 16,
        }
    }
}

/// Why a packet could not be protected or unprotected. Nothing is changed then, except
/// that an unprotected packet's bytes are left scrambled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SrtpError {
    #[error("the master key or salt has the wrong length for {0:?}")]
    KeyLength(Profile),
    #[error("the packet is too short or its header is malformed")]
    Malformed,
    #[error("the packet failed authentication")]
    Authentication,
    #[error("the packet was seen before, or is older than the replay window")]
    Replayed,
    #[error("SRTCP without encryption (E flag clear) is not accepted")]
    Unencrypted,
    #[error("the SRTCP index is used up: the session needs new keys")]
    IndexExhausted,
    #[error("the cipher failed")]
    Cipher,
}

const RTP_HEADER_LEN: usize = 12;
const RTCP_HEADER_LEN: usize = 8;
/// The E flag and 31-bit SRTCP index after an SRTCP packet's payload.
const RTCP_INDEX_LEN: usize = 4;
const ENCRYPTED_FLAG: u32 = 1 << 31;
const MAX_RTCP_INDEX: u32 = ENCRYPTED_FLAG - 1;
/// RFC 3711's key derivation labels.
const LABEL_RTP_KEY: u8 = 0;
const LABEL_RTP_AUTH: u8 = 1;
const LABEL_RTP_SALT: u8 = 2;
const LABEL_RTCP_KEY: u8 = 3;
const LABEL_RTCP_AUTH: u8 = 4;
const LABEL_RTCP_SALT: u8 = 5;
const CM_AUTH_KEY_LEN: usize = 20;
const CM_SALT_LEN: usize = 14;
const GCM_SALT_LEN: usize = 12;

/// One direction of a session: the session keys for its RTP and its RTCP, the next
/// SRTCP index it sends and the SRTCP indexes it has read.
pub struct Context {
    profile: Profile,
    rtp: SessionKeys,
    rtcp: SessionKeys,
    next_rtcp_index: u32,
    rtcp_replay: ReplayWindow,
}

impl fmt::Debug for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("profile", &self.profile)
            .field("next_rtcp_index", &self.next_rtcp_index)
            .finish_non_exhaustive()
    }
}

enum SessionKeys {
    // Counter mode's AES schedule and HMAC state are over 2 KiB: boxed, to keep GCM's small.
    Cm(Box<CmKeys>),
    Gcm { key: LessSafeKey, salt: [u8; GCM_SALT_LEN] },
}

struct CmKeys {
    cipher: EncryptingKey,
    auth: hmac::Key,
    salt: [u8; CM_SALT_LEN],
}

impl CmKeys {
    /// Encrypts (or decrypts) `data` of the packet with `ssrc` and `index` (RFC 3711
    /// section 4.1.1: the IV is the session salt with the SSRC and the index added by XOR).
    fn apply_key_stream(&self, ssrc: u32, index: u64, data: &mut [u8]) -> Result<(), SrtpError> {
        if data.is_empty() {
            return Ok(());
        }
        let mut iv = [0; 16];
        iv[..CM_SALT_LEN].copy_from_slice(&self.salt);
        for (byte, value) in iv[4..8].iter_mut().zip(ssrc.to_be_bytes()) {
            *byte ^= value;
        }
        // The index is 48 bits, at bytes 8 to 13.
        for (byte, value) in iv[8..14].iter_mut().zip(&index.to_be_bytes()[2..]) {
            *byte ^= value;
        }
        self.cipher.less_safe_encrypt(data, EncryptionContext::Iv128(iv.into())).map_err(|_| SrtpError::Cipher)?;
        Ok(())
    }

    /// The full HMAC-SHA1 of `parts`; the profile truncates it.
    fn tag(&self, parts: &[&[u8]]) -> hmac::Tag {
        let mut context = hmac::Context::with_key(&self.auth);
        for part in parts {
            context.update(part);
        }
        context.sign()
    }
}

impl Context {
    /// Derives the session keys (RFC 3711 section 4.3, key derivation rate 0) from one
    /// direction's master key and salt.
    pub fn new(profile: Profile, master_key: &[u8], master_salt: &[u8]) -> Result<Context, SrtpError> {
        if master_key.len() != profile.master_key_len() || master_salt.len() != profile.master_salt_len() {
            return Err(SrtpError::KeyLength(profile));
        }
        let keys = |key_label, auth_label, salt_label| -> Result<SessionKeys, SrtpError> {
            let mut key = [0; 32];
            let key = &mut key[..profile.master_key_len()];
            derive(master_key, master_salt, key_label, key)?;
            match profile {
                Profile::Aes128CmSha1_80 => {
                    let mut auth = [0; CM_AUTH_KEY_LEN];
                    derive(master_key, master_salt, auth_label, &mut auth)?;
                    let mut salt = [0; CM_SALT_LEN];
                    derive(master_key, master_salt, salt_label, &mut salt)?;
                    let cipher = UnboundCipherKey::new(&cipher::AES_128, key)
                        .and_then(EncryptingKey::ctr)
                        .map_err(|_| SrtpError::Cipher)?;
                    Ok(SessionKeys::Cm(Box::new(CmKeys {
                        cipher,
                        auth: hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, &auth),
                        salt,
                    })))
                }
                Profile::AeadAes128Gcm | Profile::AeadAes256Gcm => {
                    let mut salt = [0; GCM_SALT_LEN];
                    derive(master_key, master_salt, salt_label, &mut salt)?;
                    let algorithm =
                        if profile == Profile::AeadAes128Gcm { &aead::AES_128_GCM } else { &aead::AES_256_GCM };
                    let key = UnboundKey::new(algorithm, key).map_err(|_| SrtpError::Cipher)?;
                    Ok(SessionKeys::Gcm { key: LessSafeKey::new(key), salt })
                }
            }
        };
        Ok(Context {
            profile,
            rtp: keys(LABEL_RTP_KEY, LABEL_RTP_AUTH, LABEL_RTP_SALT)?,
            rtcp: keys(LABEL_RTCP_KEY, LABEL_RTCP_AUTH, LABEL_RTCP_SALT)?,
            next_rtcp_index: 0,
            rtcp_replay: ReplayWindow::default(),
        })
    }

    pub fn profile(&self) -> Profile {
        self.profile
    }

    /// Protects the RTP packet in `packet` in place and appends its tag. `roc` is the
    /// rollover counter of the packet's sequence number (its extended sequence number
    /// shifted right by 16): the sender keeps it.
    pub fn protect_rtp(&self, packet: &mut Vec<u8>, roc: u32) -> Result<(), SrtpError> {
        let header_len = rtp_header_len(packet)?;
        let ssrc = be_u32(&packet[8..12]);
        let seq = u16::from_be_bytes([packet[2], packet[3]]);
        match &self.rtp {
            SessionKeys::Cm(keys) => {
                let index = (u64::from(roc) << 16) | u64::from(seq);
                keys.apply_key_stream(ssrc, index, &mut packet[header_len..])?;
                let tag = keys.tag(&[packet, &roc.to_be_bytes()]);
                packet.extend_from_slice(&tag.as_ref()[..self.profile.tag_len()]);
            }
            SessionKeys::Gcm { key, salt } => {
                let mut iv = [0; GCM_SALT_LEN];
                iv[2..6].copy_from_slice(&ssrc.to_be_bytes());
                iv[6..10].copy_from_slice(&roc.to_be_bytes());
                iv[10..12].copy_from_slice(&seq.to_be_bytes());
                let (header, payload) = packet.split_at_mut(header_len);
                let tag = key
                    .seal_in_place_separate_tag(gcm_nonce(salt, iv), Aad::from(&*header), payload)
                    .map_err(|_| SrtpError::Cipher)?;
                packet.extend_from_slice(tag.as_ref());
            }
        }
        Ok(())
    }

    /// Protects the compound RTCP packet in `packet` in place, appending the next SRTCP
    /// index and the tag.
    pub fn protect_rtcp(&mut self, packet: &mut Vec<u8>) -> Result<(), SrtpError> {
        if self.next_rtcp_index > MAX_RTCP_INDEX {
            return Err(SrtpError::IndexExhausted);
        }
        self.seal_rtcp(packet, self.next_rtcp_index)?;
        self.next_rtcp_index += 1;
        Ok(())
    }

    /// Changes an SRTCP packet protected with these keys (by str0m, which shares them):
    /// `change` gets the plain compound packet to edit in place, and the result is
    /// protected again under the packet's own index. Send it instead of the original,
    /// never both: each nonce then goes on the wire once.
    pub fn rewrite_rtcp(&mut self, packet: &mut Vec<u8>, change: impl FnOnce(&mut [u8])) -> Result<(), SrtpError> {
        let index = self.rtcp_index_at(packet).map(|at| be_u32(&packet[at..at + RTCP_INDEX_LEN]) & MAX_RTCP_INDEX);
        let len = self.unprotect_rtcp(packet)?;
        packet.truncate(len);
        change(packet);
        self.seal_rtcp(packet, index.ok_or(SrtpError::Malformed)?)
    }

    fn seal_rtcp(&self, packet: &mut Vec<u8>, index: u32) -> Result<(), SrtpError> {
        if packet.len() < RTCP_HEADER_LEN {
            return Err(SrtpError::Malformed);
        }
        let flagged_index = (ENCRYPTED_FLAG | index).to_be_bytes();
        let ssrc = be_u32(&packet[4..8]);
        match &self.rtcp {
            SessionKeys::Cm(keys) => {
                keys.apply_key_stream(ssrc, u64::from(index), &mut packet[RTCP_HEADER_LEN..])?;
                packet.extend_from_slice(&flagged_index);
                let tag = keys.tag(&[packet]);
                packet.extend_from_slice(&tag.as_ref()[..self.profile.tag_len()]);
            }
            SessionKeys::Gcm { key, salt } => {
                let aad = rtcp_gcm_aad(&packet[..RTCP_HEADER_LEN], flagged_index);
                let (_, payload) = packet.split_at_mut(RTCP_HEADER_LEN);
                let tag = key
                    .seal_in_place_separate_tag(rtcp_gcm_nonce(salt, ssrc, index), Aad::from(aad), payload)
                    .map_err(|_| SrtpError::Cipher)?;
                packet.extend_from_slice(tag.as_ref());
                packet.extend_from_slice(&flagged_index);
            }
        }
        Ok(())
    }

    /// Where an SRTCP packet of this profile holds its flagged index: after the payload
    /// (counter mode) or after the tag (GCM). `None` if it is too short to hold both.
    fn rtcp_index_at(&self, packet: &[u8]) -> Option<usize> {
        let tag_len = self.profile.tag_len();
        if packet.len() < RTCP_HEADER_LEN + RTCP_INDEX_LEN + tag_len {
            return None;
        }
        Some(match self.profile {
            Profile::Aes128CmSha1_80 => packet.len() - tag_len - RTCP_INDEX_LEN,
            Profile::AeadAes128Gcm | Profile::AeadAes256Gcm => packet.len() - RTCP_INDEX_LEN,
        })
    }

    /// Authenticates and decrypts the SRTCP packet in `packet` in place; returns the
    /// length of the plain compound RTCP packet now at its start. A packet whose index
    /// was read before, or is 64 or more behind the highest read, is refused.
    pub fn unprotect_rtcp(&mut self, packet: &mut [u8]) -> Result<usize, SrtpError> {
        let tag_len = self.profile.tag_len();
        let index_at = self.rtcp_index_at(packet).ok_or(SrtpError::Malformed)?;
        let ssrc = be_u32(&packet[4..8]);
        let flagged_index = be_u32(&packet[index_at..index_at + RTCP_INDEX_LEN]);
        if flagged_index & ENCRYPTED_FLAG == 0 {
            return Err(SrtpError::Unencrypted);
        }
        let index = flagged_index & MAX_RTCP_INDEX;
        self.rtcp_replay.check(index)?;
        let plain_len = match &self.rtcp {
            SessionKeys::Cm(keys) => {
                let (authenticated, tag) = packet.split_at_mut(index_at + RTCP_INDEX_LEN);
                let expected = keys.tag(&[authenticated]);
                constant_time::verify_slices_are_equal(&expected.as_ref()[..tag_len], tag)
                    .map_err(|_| SrtpError::Authentication)?;
                keys.apply_key_stream(ssrc, u64::from(index), &mut authenticated[RTCP_HEADER_LEN..index_at])?;
                index_at
            }
            SessionKeys::Gcm { key, salt } => {
                let aad = rtcp_gcm_aad(&packet[..RTCP_HEADER_LEN], flagged_index.to_be_bytes());
                let sealed = &mut packet[RTCP_HEADER_LEN..index_at];
                let plain = key
                    .open_in_place(rtcp_gcm_nonce(salt, ssrc, index), Aad::from(aad), sealed)
                    .map_err(|_| SrtpError::Authentication)?;
                RTCP_HEADER_LEN + plain.len()
            }
        };
        self.rtcp_replay.mark(index);
        Ok(plain_len)
    }
}

/// RFC 3711's AES-CM pseudo-random function with a key derivation rate of 0: the key
/// stream of AES in counter mode keyed with the master key, from the block holding the
/// master salt with the label at byte 7 (the salt is left-aligned in 14 bytes, as every
/// implementation pads GCM's 12-byte salt).
fn derive(master_key: &[u8], master_salt: &[u8], label: u8, out: &mut [u8]) -> Result<(), SrtpError> {
    let algorithm = if master_key.len() == 32 { &cipher::AES_256 } else { &cipher::AES_128 };
    let prf =
        UnboundCipherKey::new(algorithm, master_key).and_then(EncryptingKey::ctr).map_err(|_| SrtpError::Cipher)?;
    let mut block = [0; 16];
    block[..master_salt.len()].copy_from_slice(master_salt);
    block[7] ^= label;
    out.fill(0);
    prf.less_safe_encrypt(out, EncryptionContext::Iv128(block.into())).map_err(|_| SrtpError::Cipher)?;
    Ok(())
}

fn gcm_nonce(salt: &[u8; GCM_SALT_LEN], mut iv: [u8; GCM_SALT_LEN]) -> Nonce {
    for (byte, value) in iv.iter_mut().zip(salt) {
        *byte ^= value;
    }
    Nonce::assume_unique_for_key(iv)
}

/// RFC 7714 section 9.1: 0x0000, the SSRC, 0x0000 and the 31-bit SRTCP index.
fn rtcp_gcm_nonce(salt: &[u8; GCM_SALT_LEN], ssrc: u32, index: u32) -> Nonce {
    let mut iv = [0; GCM_SALT_LEN];
    iv[2..6].copy_from_slice(&ssrc.to_be_bytes());
    iv[8..12].copy_from_slice(&index.to_be_bytes());
    gcm_nonce(salt, iv)
}

/// RFC 7714 section 9.2: the first 8 bytes of the RTCP packet and the flagged index.
fn rtcp_gcm_aad(header: &[u8], flagged_index: [u8; RTCP_INDEX_LEN]) -> [u8; RTCP_HEADER_LEN + RTCP_INDEX_LEN] {
    let mut aad = [0; RTCP_HEADER_LEN + RTCP_INDEX_LEN];
    aad[..RTCP_HEADER_LEN].copy_from_slice(header);
    aad[RTCP_HEADER_LEN..].copy_from_slice(&flagged_index);
    aad
}

/// The length of the RTP header at the start of `packet`: the fixed part, the CSRCs
/// and the header extension.
fn rtp_header_len(packet: &[u8]) -> Result<usize, SrtpError> {
    if packet.len() < RTP_HEADER_LEN || packet[0] >> 6 != 2 {
        return Err(SrtpError::Malformed);
    }
    let mut len = RTP_HEADER_LEN + 4 * usize::from(packet[0] & 0x0f);
    if packet[0] & 0x10 != 0 {
        let words = packet.get(len + 2..len + 4).ok_or(SrtpError::Malformed)?;
        len += 4 + 4 * usize::from(u16::from_be_bytes([words[0], words[1]]));
    }
    if len > packet.len() {
        return Err(SrtpError::Malformed);
    }
    Ok(len)
}

fn be_u32(bytes: &[u8]) -> u32 {
    u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])
}

/// The SRTCP indexes read (RFC 3711 section 3.3.2): the highest, and which of the 63
/// below it were seen.
#[derive(Debug, Default)]
struct ReplayWindow {
    highest: Option<u32>,
    seen: u64,
}

impl ReplayWindow {
    const SIZE: u32 = 64;

    fn check(&self, index: u32) -> Result<(), SrtpError> {
        let Some(highest) = self.highest else { return Ok(()) };
        if index > highest {
            return Ok(());
        }
        let behind = highest - index;
        if behind >= Self::SIZE || self.seen & (1 << behind) != 0 {
            return Err(SrtpError::Replayed);
        }
        Ok(())
    }

    fn mark(&mut self, index: u32) {
        match self.highest {
            Some(highest) if index <= highest => self.seen |= 1 << (highest - index),
            Some(highest) => {
                let ahead = index - highest;
                self.seen = if ahead >= Self::SIZE { 1 } else { (self.seen << ahead) | 1 };
                self.highest = Some(index);
            }
            None => {
                self.seen = 1;
                self.highest = Some(index);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use webrtc_srtp::context::Context as PeerContext;
    use webrtc_srtp::protection_profile::ProtectionProfile;

    const PROFILES: [Profile; 3] = [Profile::Aes128CmSha1_80, Profile::AeadAes128Gcm, Profile::AeadAes256Gcm];

    fn master(profile: Profile, seed: u8) -> (Vec<u8>, Vec<u8>) {
        let key = (0..profile.master_key_len()).map(|i| seed.wrapping_mul(31).wrapping_add(i as u8)).collect();
        let salt = (0..profile.master_salt_len()).map(|i| seed.wrapping_add(0x5a).wrapping_add(3 * i as u8)).collect();
        (key, salt)
    }

    fn peer(profile: Profile, seed: u8) -> PeerContext {
        let (key, salt) = master(profile, seed);
        let profile = match profile {
            Profile::Aes128CmSha1_80 => ProtectionProfile::Aes128CmHmacSha1_80,
            Profile::AeadAes128Gcm => ProtectionProfile::AeadAes128Gcm,
            Profile::AeadAes256Gcm => ProtectionProfile::AeadAes256Gcm,
        };
        PeerContext::new(&key, &salt, profile, None, None).unwrap()
    }

    fn ours(profile: Profile, seed: u8) -> Context {
        let (key, salt) = master(profile, seed);
        Context::new(profile, &key, &salt).unwrap()
    }

    /// A video-like RTP packet with a CSRC and a one-byte header extension.
    fn rtp(seq: u16, payload_len: usize) -> Vec<u8> {
        let mut packet = vec![0x91, 96, 0, 0, 0, 0, 0x10, 0x00, 0xca, 0xfe, 0xba, 0xbe, 0, 0, 0, 7];
        packet[2..4].copy_from_slice(&seq.to_be_bytes());
        packet.extend_from_slice(&[0xbe, 0xde, 0, 1, 0x10, 0x2a, 0, 0]);
        packet.extend((0..payload_len).map(|i| i as u8));
        packet
    }

    /// A receiver report and a generic NACK from SSRC 0x01020304.
    fn rtcp() -> Vec<u8> {
        let mut packet = vec![0x80, 201, 0, 1, 1, 2, 3, 4];
        packet.extend_from_slice(&[0x81, 205, 0, 3, 1, 2, 3, 4, 0xca, 0xfe, 0xba, 0xbe, 0x12, 0x34, 0, 5]);
        packet
    }

    /// RFC 3711 appendix B.3: the session keys from its master key and salt.
    #[test]
    fn key_derivation_matches_rfc_3711() {
        let master_key = hex("E1F97A0D3E018BE0D64FA32C06DE4139");
        let master_salt = hex("0EC675AD498AFEEBB6960B3AABE6");
        let mut key = [0; 16];
        derive(&master_key, &master_salt, LABEL_RTP_KEY, &mut key).unwrap();
        assert_eq!(key.to_vec(), hex("C61E7A93744F39EE10734AFE3FF7A087"));
        let mut salt = [0; 14];
        derive(&master_key, &master_salt, LABEL_RTP_SALT, &mut salt).unwrap();
        assert_eq!(salt.to_vec(), hex("30CBBC08863D8C85D49DB34A9AE1"));
        let mut auth = [0; 20];
        derive(&master_key, &master_salt, LABEL_RTP_AUTH, &mut auth).unwrap();
        assert_eq!(auth.to_vec(), hex("CEBE321F6FF7716B6FD4AB49AF256A156D38BAA4"));
    }

    fn hex(text: &str) -> Vec<u8> {
        (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap()).collect()
    }

    #[test]
    fn protected_rtp_is_read_by_another_implementation() {
        for profile in PROFILES {
            let context = ours(profile, 1);
            let mut peer = peer(profile, 1);
            // Across a rollover: the receiver follows the sequence into the next ROC.
            for (roc, seq) in [(0, 65_534), (0, 65_535), (1, 0), (1, 1)] {
                let plain = rtp(seq, 900);
                let mut packet = plain.clone();
                packet.reserve(profile.rtp_overhead());
                let capacity = packet.capacity();
                context.protect_rtp(&mut packet, roc).unwrap();
                assert_eq!(packet.capacity(), capacity, "{profile:?}: no allocation with room for the tag");
                assert_eq!(packet.len(), plain.len() + profile.rtp_overhead());
                assert_ne!(packet[24..plain.len()], plain[24..], "{profile:?}: the payload is encrypted");
                let read = peer.decrypt_rtp(&packet).unwrap_or_else(|e| panic!("{profile:?} {roc}/{seq}: {e}"));
                assert_eq!(read.as_ref(), &plain[..], "{profile:?} {roc}/{seq}");
            }
        }
    }

    #[test]
    fn rtcp_goes_both_ways_with_another_implementation() {
        for profile in PROFILES {
            let mut context = ours(profile, 2);
            let mut peer = peer(profile, 2);
            for _ in 0..3 {
                let mut packet = rtcp();
                context.protect_rtcp(&mut packet).unwrap();
                assert_eq!(packet.len(), rtcp().len() + profile.rtcp_overhead());
                assert_eq!(peer.decrypt_rtcp(&packet).unwrap().as_ref(), &rtcp()[..], "{profile:?}");

                let mut packet = peer.encrypt_rtcp(&rtcp()).unwrap().to_vec();
                let len = context.unprotect_rtcp(&mut packet).unwrap_or_else(|e| panic!("{profile:?}: {e}"));
                assert_eq!(&packet[..len], &rtcp()[..], "{profile:?}");
            }
        }
    }

    #[test]
    fn rewritten_rtcp_keeps_its_index_and_reads_as_changed() {
        for profile in PROFILES {
            // str0m's side: protects with the session's keys; the SFU rewrites with the same.
            let (mut sender, mut rewriter) = (ours(profile, 7), ours(profile, 7));
            let mut peer = peer(profile, 7);
            for round in 0..3u8 {
                let mut packet = rtcp();
                sender.protect_rtcp(&mut packet).unwrap();
                let original = packet.clone();
                rewriter.rewrite_rtcp(&mut packet, |plain| plain[7] = 0x40 + round).unwrap();
                assert_eq!(packet.len(), original.len(), "{profile:?}");
                let index_at = rewriter.rtcp_index_at(&packet).unwrap();
                assert_eq!(packet[index_at..index_at + 4], original[index_at..index_at + 4], "{profile:?}: same index");
                let mut expected = rtcp();
                expected[7] = 0x40 + round;
                assert_eq!(peer.decrypt_rtcp(&packet).unwrap().as_ref(), &expected[..], "{profile:?}");
            }
            // What does not authenticate is not rewritten.
            let mut forger = ours(profile, 8);
            for _ in 0..3 {
                forger.protect_rtcp(&mut rtcp()).unwrap();
            }
            let mut forged = rtcp();
            forger.protect_rtcp(&mut forged).unwrap();
            assert_eq!(rewriter.rewrite_rtcp(&mut forged, |_| {}), Err(SrtpError::Authentication));
        }
    }

    #[test]
    fn forged_replayed_or_stale_rtcp_is_refused() {
        for profile in PROFILES {
            let mut context = ours(profile, 3);
            let mut peer = peer(profile, 3);
            let sealed: Vec<Vec<u8>> = (0..70).map(|_| peer.encrypt_rtcp(&rtcp()).unwrap().to_vec()).collect();

            // Another session's keys: not authentic.
            let mut other = ours(profile, 4);
            assert_eq!(other.unprotect_rtcp(&mut sealed[0].clone()), Err(SrtpError::Authentication));
            // One bit flipped in the payload.
            let mut flipped = sealed[0].clone();
            flipped[10] ^= 1;
            assert_eq!(context.unprotect_rtcp(&mut flipped), Err(SrtpError::Authentication));
            // Too short to hold an index and a tag.
            assert_eq!(context.unprotect_rtcp(&mut sealed[0][..12].to_vec()), Err(SrtpError::Malformed));

            // Read out of order within the window, each once.
            for i in [1, 0, 2] {
                context.unprotect_rtcp(&mut sealed[i].clone()).unwrap();
            }
            assert_eq!(context.unprotect_rtcp(&mut sealed[1].clone()), Err(SrtpError::Replayed));
            context.unprotect_rtcp(&mut sealed[69].clone()).unwrap();
            // 69 - 3 = 66 behind the highest: outside the window.
            assert_eq!(context.unprotect_rtcp(&mut sealed[3].clone()), Err(SrtpError::Replayed));
            context.unprotect_rtcp(&mut sealed[10].clone()).unwrap();
        }
    }

    #[test]
    fn unencrypted_srtcp_is_refused() {
        let mut context = ours(Profile::AeadAes128Gcm, 5);
        let mut packet = peer(Profile::AeadAes128Gcm, 5).encrypt_rtcp(&rtcp()).unwrap().to_vec();
        let at = packet.len() - RTCP_INDEX_LEN;
        packet[at] &= 0x7f;
        assert_eq!(context.unprotect_rtcp(&mut packet), Err(SrtpError::Unencrypted));
    }

    #[test]
    fn malformed_rtp_and_wrong_key_lengths_are_refused() {
        let context = ours(Profile::AeadAes128Gcm, 6);
        // Version 1.
        assert_eq!(context.protect_rtp(&mut vec![0x40; 20], 0), Err(SrtpError::Malformed));
        // An extension longer than the packet.
        let mut packet = rtp(1, 0);
        packet[18] = 0xff;
        packet.truncate(20);
        assert_eq!(context.protect_rtp(&mut packet, 0), Err(SrtpError::Malformed));
        assert_eq!(
            Context::new(Profile::AeadAes256Gcm, &[0; 16], &[0; 12]).err(),
            Some(SrtpError::KeyLength(Profile::AeadAes256Gcm))
        );
    }
}
