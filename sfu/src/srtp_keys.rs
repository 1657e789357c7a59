//! A session's SRTP master keys as its DTLS handshake exports them (RFC 5764), so the
//! SFU can protect and read that session's packets itself ([`crate::srtp`]).
//!
//! str0m keeps its SRTP contexts to itself, but its DTLS is pluggable: a session built
//! with [`build_rtc`] runs str0m's own DTLS behind a wrapper that passes everything
//! through and keeps a copy of the keying material when the handshake exports it.

use std::cell::RefCell;
use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use str0m::crypto::dtls::{
    DtlsCert, DtlsImplError, DtlsInstance, DtlsOutput, DtlsProvider, DtlsVersion, ProtocolVersion, SrtpProfile,
};
use str0m::crypto::{CryptoError, CryptoProvider};
use str0m::{Rtc, RtcConfig};

use crate::srtp::{Context, Profile, SrtpError};

// Where the keys of the session being built go: set around `RtcConfig::build`, which
// creates the session's DTLS instance.
thread_local! {
    static SESSION_BEING_BUILT: RefCell<Option<SessionKeys>> = const { RefCell::new(None) };
}

/// A session's SRTP keys, once its DTLS handshake has exported them.
#[derive(Clone, Default)]
pub struct SessionKeys(Arc<OnceLock<Exported>>);

struct Exported {
    profile: Profile,
    /// Client key, server key, client salt, server salt (RFC 5764 section 4.2).
    material: Vec<u8>,
    /// Whether this side is the DTLS client, whose keys are the first of each pair.
    local_is_client: bool,
}

impl fmt::Debug for SessionKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionKeys").field("profile", &self.profile()).finish_non_exhaustive()
    }
}

impl SessionKeys {
    /// The negotiated profile, once the handshake is done.
    pub fn profile(&self) -> Option<Profile> {
        self.0.get().map(|exported| exported.profile)
    }

    /// New contexts for what this side sends and what it receives, once the handshake
    /// is done.
    pub fn contexts(&self) -> Option<Result<(Context, Context), SrtpError>> {
        let exported = self.0.get()?;
        let profile = exported.profile;
        let (key_len, salt_len) = (profile.master_key_len(), profile.master_salt_len());
        if exported.material.len() != 2 * (key_len + salt_len) {
            return Some(Err(SrtpError::KeyLength(profile)));
        }
        let (keys, salts) = exported.material.split_at(2 * key_len);
        let client = (&keys[..key_len], &salts[..salt_len]);
        let server = (&keys[key_len..], &salts[salt_len..]);
        let (local, remote) = if exported.local_is_client { (client, server) } else { (server, client) };
        Some(
            Context::new(profile, local.0, local.1)
                .and_then(|sent| Ok((sent, Context::new(profile, remote.0, remote.1)?))),
        )
    }

    /// A new context for what this side sends, once the handshake is done.
    pub fn outbound(&self) -> Option<Result<Context, SrtpError>> {
        self.contexts().map(|contexts| contexts.map(|(sent, _)| sent))
    }

    fn keep(&self, material: &[u8], profile: SrtpProfile, local_is_client: bool) {
        let profile = match profile {
            SrtpProfile::AES128_CM_SHA1_80 => Profile::Aes128CmSha1_80,
            SrtpProfile::AEAD_AES_128_GCM => Profile::AeadAes128Gcm,
            SrtpProfile::AEAD_AES_256_GCM => Profile::AeadAes256Gcm,
            other => {
                tracing::warn!(?other, "a DTLS handshake exported keys for an SRTP profile the SFU cannot use");
                return;
            }
        };
        let _ = self.0.set(Exported { profile, material: material.to_vec(), local_is_client });
    }
}

/// Builds a session whose SRTP keys are kept in the returned [`SessionKeys`].
pub fn build_rtc(config: RtcConfig, now: Instant) -> (Rtc, SessionKeys) {
    let keys = SessionKeys::default();
    SESSION_BEING_BUILT.with(|slot| *slot.borrow_mut() = Some(keys.clone()));
    let rtc = config.set_crypto_provider(key_keeping_provider()).build(now);
    SESSION_BEING_BUILT.with(|slot| slot.borrow_mut().take());
    (rtc, keys)
}

/// str0m's crypto with [`KeyKeepingDtls`] in place of its DTLS provider.
fn key_keeping_provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| {
            Arc::new(CryptoProvider { dtls_provider: &KeyKeepingDtls, ..str0m::crypto::from_feature_flags() })
        })
        .clone()
}

fn str0m_dtls() -> &'static dyn DtlsProvider {
    str0m::crypto::from_feature_flags().dtls_provider
}

#[derive(Debug)]
struct KeyKeepingDtls;

impl DtlsProvider for KeyKeepingDtls {
    fn generate_certificate(&self) -> Option<DtlsCert> {
        str0m_dtls().generate_certificate()
    }

    fn new_dtls(
        &self,
        cert: &DtlsCert,
        now: Instant,
        dtls_version: DtlsVersion,
        mtu: Option<usize>,
    ) -> Result<Box<dyn DtlsInstance>, CryptoError> {
        let inner = str0m_dtls().new_dtls(cert, now, dtls_version, mtu)?;
        match SESSION_BEING_BUILT.with(|slot| slot.borrow_mut().take()) {
            Some(keys) => Ok(Box::new(KeyKeepingInstance { inner, keys })),
            None => Ok(inner),
        }
    }

    fn is_test(&self) -> bool {
        str0m_dtls().is_test()
    }
}

#[derive(Debug)]
struct KeyKeepingInstance {
    inner: Box<dyn DtlsInstance>,
    keys: SessionKeys,
}

impl DtlsInstance for KeyKeepingInstance {
    fn set_active(&mut self, active: bool) {
        self.inner.set_active(active);
    }

    fn handle_packet(&mut self, packet: &[u8]) -> Result<(), DtlsImplError> {
        self.inner.handle_packet(packet)
    }

    fn poll_output<'a>(&mut self, buf: &'a mut [u8]) -> DtlsOutput<'a> {
        let output = self.inner.poll_output(buf);
        if let DtlsOutput::KeyingMaterial(material, profile) = &output {
            self.keys.keep(material, *profile, self.inner.is_active());
        }
        output
    }

    fn handle_timeout(&mut self, now: Instant) -> Result<(), DtlsImplError> {
        self.inner.handle_timeout(now)
    }

    fn send_application_data(&mut self, data: &[u8]) -> Result<usize, DtlsImplError> {
        self.inner.send_application_data(data)
    }

    fn is_active(&self) -> bool {
        self.inner.is_active()
    }

    fn protocol_version(&self) -> Option<ProtocolVersion> {
        self.inner.protocol_version()
    }

    fn is_closing(&self) -> bool {
        self.inner.is_closing()
    }

    fn is_closed(&self) -> bool {
        self.inner.is_closed()
    }

    fn close(&mut self) -> Result<(), DtlsImplError> {
        self.inner.close()
    }
}

#[cfg(test)]
mod tests {
    use str0m::rtp::Ssrc;
    use str0m::{Input, Rtc};

    use super::*;
    use crate::session_pair::{SessionPair, rtp_packet};

    #[test]
    fn the_keys_a_handshake_exports_protect_and_read_what_str0m_does() {
        let SessionPair { mut a, mut b, mid, now, .. } = SessionPair::connected();
        assert_eq!(a.keys.profile(), b.keys.profile());
        let (a_sends, mut a_receives) = a.keys.contexts().unwrap().unwrap();

        // An RTP packet protected with A's keys, on A's video stream: B's str0m takes it.
        let ssrc: Ssrc = a.rtc.direct_api().stream_tx_by_mid(mid, None).unwrap().ssrc();
        let pt = *a.rtc.media(mid).unwrap().remote_pts().first().unwrap();
        let payload = b"\x10\x00\x9d\x01\x2a isoplane forwards this";
        let mut packet = rtp_packet(*pt, 1000, *ssrc, &[], payload);
        a_sends.protect_rtp(&mut packet, 0).unwrap();
        b.deliver(a.address, &packet, now);
        b.run(&mut a, now);
        assert_eq!(b.received_rtp, vec![payload.to_vec()], "str0m read the packet the SFU protected");

        // Tampered with, the same packet is dropped.
        let mut forged = packet.clone();
        forged[20] ^= 1;
        forged[2..4].copy_from_slice(&1001u16.to_be_bytes());
        let _ = b.rtc.handle_input(Input::Receive(now, b.receive(a.address, &forged)));
        b.run(&mut a, now);
        assert_eq!(b.received_rtp.len(), 1, "a forged packet is not read");

        // B's receiver reports, protected by B's str0m, read with A's keys.
        SessionPair::run_both(&mut a, &mut b, now, 400);
        assert!(!b.sent_rtcp.is_empty(), "B reported what it received");
        for datagram in &b.sent_rtcp {
            let mut datagram = datagram.clone();
            let len = a_receives.unprotect_rtcp(&mut datagram).unwrap();
            // A compound packet: first a sender or receiver report (RFC 3550 6.1).
            assert!(len >= 8 && (datagram[1] == 200 || datagram[1] == 201), "{:?}", &datagram[..len]);
            assert!(usize::from(u16::from_be_bytes([datagram[2], datagram[3]])) * 4 + 4 <= len);
        }
    }

    #[test]
    fn a_session_built_elsewhere_keeps_no_keys() {
        let now = std::time::Instant::now();
        let (_rtc, keys) = build_rtc(Rtc::builder(), now);
        // The next session, built without build_rtc, does not take these keys' place.
        let _other = Rtc::builder().set_crypto_provider(key_keeping_provider()).build(now);
        assert!(keys.profile().is_none() && keys.contexts().is_none());
        SESSION_BEING_BUILT.with(|slot| assert!(slot.borrow().is_none()));
    }
}
