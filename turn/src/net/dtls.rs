//! TURN over DTLS (RFC 7350): one DTLS session per client address on the DTLS port,
//! through dimpl (str0m's sans-IO DTLS 1.2 and 1.3; ECDSA certificates only, no RSA).
//! Each application record carries one STUN message or ChannelData, as a UDP datagram
//! would; the core sees the client as `Transport::Dtls`.
//!
//! Bounded: a session starts only from a handshake record, with the cookie exchange first
//! (so a forged source gets one small HelloVerifyRequest, never a certificate flight, and
//! holds an instance only until [`HANDSHAKE_TIMEOUT`]); at most [`MAX_SESSIONS`] at once,
//! [`MAX_HANDSHAKES`] of them unfinished; a session
//! quiet for [`IDLE_TIMEOUT`] (longer than any allocation lifetime without a Refresh)
//! ends, and with it the client's allocation.

use super::ServeError;
use dimpl::{Config as DtlsConfig, Dtls, DtlsCertificate, Output};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

const MAX_SESSIONS: usize = 10_000;
/// Of those, at most this many still shaking hands (a flood of ClientHellos from forged
/// addresses holds these, not the whole table, and each for the handshake time only).
const MAX_HANDSHAKES: usize = 1_000;
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
const IDLE_TIMEOUT: Duration = Duration::from_secs(3600 + 60);
/// How long a session with no allocation may stay quiet (one that only shook hands, or
/// whose allocation ended, holds a place in the table for this long at most).
const IDLE_WITHOUT_ALLOCATION: Duration = Duration::from_secs(60);
/// The DTLS record content type of a handshake.
const HANDSHAKE_RECORD: u8 = 22;

struct Session {
    dtls: Dtls,
    connected: bool,
    /// Encrypting for it failed: ended at the next timeout check (which tells the core).
    failed: bool,
    started: Instant,
    last_heard: Instant,
    timeout: Option<Instant>,
}

/// Every DTLS client of the server.
pub(super) struct DtlsSessions {
    config: Arc<DtlsConfig>,
    certificate: DtlsCertificate,
    sessions: HashMap<SocketAddr, Session>,
    /// How many sessions have not finished their handshake.
    handshakes: usize,
    /// Records to send, taken by the shell after each step.
    outgoing: Vec<(SocketAddr, Vec<u8>)>,
    buf: Vec<u8>,
}

impl std::fmt::Debug for DtlsSessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DtlsSessions").field("sessions", &self.sessions.len()).finish_non_exhaustive()
    }
}

/// What one datagram did to its session.
#[derive(Debug, Default)]
pub(super) struct Received {
    /// Decrypted records, each one message for the core.
    pub records: Vec<Vec<u8>>,
    /// The session ended (an error, or the client's close_notify).
    pub ended: bool,
}

impl DtlsSessions {
    /// Loads the certificate and key and proves them with a handshake in memory, so a key
    /// DTLS cannot use (RSA) is reported at start, naming the file.
    pub(super) fn load(cert: &Path, key: &Path) -> Result<DtlsSessions, ServeError> {
        let err = |path: &Path, message: String| ServeError::Tls { path: path.display().to_string(), message };
        let certificate = CertificateDer::from_pem_file(cert).map_err(|e| err(cert, e.to_string()))?;
        let private_key = PrivateKeyDer::from_pem_file(key).map_err(|e| err(key, e.to_string()))?;
        if !is_ecdsa_p256_or_p384(&private_key) {
            return Err(err(key, "not an ECDSA P-256 or P-384 key, which DTLS needs (RSA is not offered)".into()));
        }
        let certificate = DtlsCertificate {
            certificate: certificate.as_ref().to_vec(),
            private_key: private_key.secret_der().to_vec(),
        };
        // Any message the relay carries fits in one record (the shell reads datagrams of
        // up to 4 KiB); handshake flights are cut at this size too.
        let config = DtlsConfig::builder()
            .mtu(super::MAX_DATAGRAM + 256)
            .require_client_certificate(false)
            .handshake_timeout(HANDSHAKE_TIMEOUT)
            .build()
            .map_err(|e| err(cert, e.to_string()))?;
        let sessions = DtlsSessions {
            config: Arc::new(config),
            certificate,
            sessions: HashMap::new(),
            handshakes: 0,
            outgoing: Vec::new(),
            buf: vec![0u8; 2048],
        };
        // dimpl panics on a key it cannot use; the check above should keep that from
        // happening, and this keeps it from taking the server down if it does.
        let tested = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| sessions.self_test()));
        tested.unwrap_or_else(|_| Err("the key does not work for DTLS".into())).map_err(|message| err(key, message))?;
        Ok(sessions)
    }

    /// A client and a server in memory shake hands with our certificate.
    fn self_test(&self) -> Result<(), String> {
        let now = Instant::now();
        let client_certificate = dimpl::certificate::generate_self_signed_certificate().map_err(|e| e.to_string())?;
        let mut client = Dtls::new_12(self.config.clone(), client_certificate, now);
        client.set_active(true);
        let mut server = Dtls::new_12(self.config.clone(), self.certificate.clone(), now);
        // A new instance is started by its first timeout (the server draws its random there).
        client.handle_timeout(now).map_err(|e| e.to_string())?;
        server.handle_timeout(now).map_err(|e| e.to_string())?;
        let mut buf = vec![0u8; 4096];
        for _ in 0..16 {
            let (to_server, client_done) = drain(&mut client, &mut buf)?;
            for packet in &to_server {
                server
                    .handle_packet(packet)
                    .map_err(|e| format!("the certificate or key does not work for DTLS: {e}"))?;
            }
            let (to_client, _) = drain(&mut server, &mut buf)?;
            if client_done {
                return Ok(());
            }
            for packet in &to_client {
                client
                    .handle_packet(packet)
                    .map_err(|e| format!("the certificate or key does not work for DTLS: {e}"))?;
            }
        }
        Err("the certificate or key does not work for DTLS: no handshake".into())
    }

    /// A datagram from `from`.
    pub(super) fn receive(&mut self, now: Instant, from: SocketAddr, data: &[u8]) -> Received {
        if !self.sessions.contains_key(&from) {
            let full = self.sessions.len() >= MAX_SESSIONS || self.handshakes >= MAX_HANDSHAKES;
            if data.first() != Some(&HANDSHAKE_RECORD) || full {
                return Received::default();
            }
            let mut dtls = Dtls::new_auto(self.config.clone(), self.certificate.clone(), now);
            // Started by its first timeout, before any packet (it draws its random there).
            if dtls.handle_timeout(now).is_err() {
                return Received::default();
            }
            tracing::debug!(%from, "DTLS session starts");
            self.handshakes += 1;
            self.sessions.insert(
                from,
                Session { dtls, connected: false, failed: false, started: now, last_heard: now, timeout: None },
            );
        }
        let Some(session) = self.sessions.get_mut(&from) else { return Received::default() };
        session.last_heard = now;
        // Whatever a datagram does to one session (even a panic in the DTLS library) ends
        // at most that session.
        let handled = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| session.dtls.handle_packet(data)));
        match handled {
            Ok(Ok(())) => self.pump(from),
            Ok(Err(error)) => {
                tracing::debug!(%from, %error, "DTLS session failed");
                self.end(from);
                Received { records: Vec::new(), ended: true }
            }
            Err(_) => {
                tracing::warn!(%from, "the DTLS library panicked on a datagram; session dropped");
                self.end(from);
                Received { records: Vec::new(), ended: true }
            }
        }
    }

    /// Encrypts one message to `to`; a client without a session gets nothing.
    pub(super) fn send(&mut self, to: SocketAddr, data: &[u8]) {
        let Some(session) = self.sessions.get_mut(&to) else { return };
        if session.dtls.send_application_data(data).is_err() {
            session.failed = true;
            return;
        }
        self.pump(to);
    }

    /// Runs retransmissions and ends sessions that failed or timed out; returns the
    /// clients whose sessions ended. `has_allocation` tells which clients hold one.
    pub(super) fn handle_timeouts(
        &mut self,
        now: Instant,
        has_allocation: impl Fn(SocketAddr) -> bool,
    ) -> Vec<SocketAddr> {
        let mut ended: Vec<SocketAddr> = self
            .sessions
            .iter()
            .filter(|(from, s)| {
                let quiet = now.saturating_duration_since(s.last_heard);
                s.failed
                    || (!s.connected && now >= s.started + HANDSHAKE_TIMEOUT)
                    || quiet >= IDLE_TIMEOUT
                    || (quiet >= IDLE_WITHOUT_ALLOCATION && !has_allocation(**from))
            })
            .map(|(from, _)| *from)
            .collect();
        for from in &ended {
            self.end(*from);
        }
        let due: Vec<SocketAddr> =
            self.sessions.iter().filter(|(_, s)| s.timeout.is_some_and(|t| t <= now)).map(|(a, _)| *a).collect();
        for from in due {
            let failed = self.sessions.get_mut(&from).is_some_and(|s| s.dtls.handle_timeout(now).is_err());
            if failed {
                self.end(from);
                ended.push(from);
            } else if self.pump(from).ended {
                ended.push(from);
            }
        }
        ended
    }

    /// Forgets a session.
    fn end(&mut self, from: SocketAddr) {
        if self.sessions.remove(&from).is_some_and(|s| !s.connected) {
            self.handshakes -= 1;
        }
    }

    pub(super) fn take_outgoing(&mut self) -> Vec<(SocketAddr, Vec<u8>)> {
        std::mem::take(&mut self.outgoing)
    }

    /// Drains a session's outputs: records to send, plaintext for the core, its timer.
    fn pump(&mut self, from: SocketAddr) -> Received {
        let mut received = Received::default();
        let Some(session) = self.sessions.get_mut(&from) else { return received };
        loop {
            match session.dtls.poll_output(&mut self.buf) {
                Output::Packet(packet) => self.outgoing.push((from, packet.to_vec())),
                Output::BufferTooSmall { needed } => self.buf.resize(needed, 0),
                Output::Timeout(at) => {
                    session.timeout = Some(at);
                    break;
                }
                Output::Connected if !session.connected => {
                    session.connected = true;
                    self.handshakes -= 1;
                }
                Output::ApplicationData(record) => received.records.push(record.to_vec()),
                Output::CloseNotify => received.ended = true,
                // Peer certificates (clients need none) and SRTP keys (not used here).
                _ => {}
            }
        }
        if received.ended {
            self.end(from);
        }
        received
    }
}

/// Whether a private key is ECDSA on P-256 or P-384 (the curves dimpl signs with): its
/// DER names the EC algorithm (PKCS#8) or is an EC key (SEC1), and names one of the curves.
fn is_ecdsa_p256_or_p384(key: &PrivateKeyDer<'_>) -> bool {
    const EC_PUBLIC_KEY: &[u8] = &[0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x02, 0x01];
    const P256: &[u8] = &[0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07];
    const P384: &[u8] = &[0x2B, 0x81, 0x04, 0x00, 0x22];
    let der = key.secret_der();
    let names = |oid: &[u8]| der.windows(oid.len()).any(|w| w == oid);
    let ec = match key {
        PrivateKeyDer::Sec1(_) => true,
        PrivateKeyDer::Pkcs8(_) => names(EC_PUBLIC_KEY),
        _ => false,
    };
    ec && (names(P256) || names(P384))
}

/// Drains an in-memory endpoint of the self-test: its packets, and whether it connected.
fn drain(dtls: &mut Dtls, buf: &mut Vec<u8>) -> Result<(Vec<Vec<u8>>, bool), String> {
    let (mut packets, mut connected) = (Vec::new(), false);
    loop {
        match dtls.poll_output(buf) {
            Output::Packet(packet) => packets.push(packet.to_vec()),
            Output::BufferTooSmall { needed } => buf.resize(needed, 0),
            Output::Timeout(_) => return Ok((packets, connected)),
            Output::Connected => connected = true,
            _ => {}
        }
    }
}
