//! Forwarded packets the SFU protects and sends to a subscriber itself, beside the
//! session's str0m (docs/sfu.md, "Inside"): for now its audio, which is neither paced,
//! retransmitted nor counted in the bandwidth estimate, so it needs none of str0m's
//! per-packet send path.
//!
//! The streams keep the SSRCs str0m declared for them (the SDP names those); str0m never
//! sends on them, so no AES-GCM nonce is used twice. str0m still writes their sender
//! reports, with its own (empty) counts: those are rewritten here with what was sent.

use std::net::SocketAddr;
use std::time::Instant;

use str0m::Rtc;
use str0m::media::Mid;
use str0m::net::{Protocol, Transmit};
use str0m::rtp::Extension;
use str0m::stats::CandidatePairStats;

use crate::rtcp_feedback;
use crate::sender_report::{self, SenderInfo};
use crate::srtp::Context;
use crate::srtp_keys::SessionKeys;

const RTP_HEADER_LEN: usize = 12;
/// A one-byte header extension block holding one element: 4 bytes of header, 4 of data.
const EXTENSION_LEN: usize = 8;

/// One subscriber session's own sending.
#[derive(Debug)]
pub struct Egress {
    keys: SessionKeys,
    /// Once the handshake has exported keys: what the SFU protects with, and a second
    /// context over the same keys that rewrites str0m's outgoing RTCP.
    contexts: Option<(Context, Context)>,
    /// Where str0m last sent this session's datagrams: its nominated pair.
    path: Option<(Protocol, SocketAddr, SocketAddr)>,
    streams: Vec<SentStream>,
}

/// What a stream sent, for its sender reports.
#[derive(Debug)]
struct SentStream {
    ssrc: u32,
    clock_rate: u32,
    packets: u32,
    /// Payload bytes (RFC 3550 counts no header).
    octets: u32,
    /// The last packet's RTP time and when it was sent.
    last: (u32, Instant),
}

/// A forwarded RTP packet, rewritten for the subscriber.
#[derive(Debug, Clone, Copy)]
pub struct OutRtp<'a> {
    pub ssrc: u32,
    pub pt: u8,
    /// The extended sequence number: its rollover count keys the encryption.
    pub seq: u64,
    pub timestamp: u32,
    pub marker: bool,
    pub clock_rate: u32,
    /// The subscriber's extension id for the audio level (RFC 6464), and the level.
    pub audio_level: Option<(u8, AudioLevel)>,
    pub payload: &'a [u8],
}

/// What the SFU's own sending needs of a subscriber's stream, read from its session once:
/// the SSRC str0m declared and the id of the audio-level extension, if negotiated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OwnStream {
    pub ssrc: u32,
    pub audio_level_id: Option<u8>,
}

impl OwnStream {
    pub fn of(rtc: &mut Rtc, mid: Mid) -> Option<OwnStream> {
        let audio_level_id = rtc
            .media(mid)?
            .remote_extmap()
            .id_of(Extension::AudioLevel)
            // The one-byte form (the one written here) takes ids 1 to 14.
            .filter(|id| (1..=14).contains(id));
        let ssrc = *rtc.direct_api().stream_tx_by_mid(mid, None)?.ssrc();
        Some(OwnStream { ssrc, audio_level_id })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AudioLevel {
    /// dBov, -127 to 0.
    pub level: i8,
    pub voice: bool,
}

impl Egress {
    pub fn new(keys: SessionKeys) -> Egress {
        Egress { keys, contexts: None, path: None, streams: Vec::new() }
    }

    /// Notes where str0m sends this session's media; called with each of its datagrams.
    /// RTP, RTCP and DTLS go on the nominated pair; STUN answers go wherever a check
    /// came from (RFC 7983: STUN starts with 0 to 3), so they are not followed.
    pub fn observe(&mut self, transmit: &Transmit) {
        if transmit.contents.first().is_some_and(|&first| first > 3) {
            self.path = Some((transmit.proto, transmit.source, transmit.destination));
        }
    }

    /// Follows the pair ICE selected, as str0m reports it every second: after an ICE
    /// restart, the path moves even if str0m has sent nothing on it yet.
    pub fn follow(&mut self, pair: &CandidatePairStats) {
        self.path = Some((pair.protocol, pair.local.addr, pair.remote.addr));
    }

    /// Protects `rtp` and adds it to `transmits`, in one of the `spare` buffers if there
    /// is one. Returns false, sending nothing, until the session has keys and a path:
    /// str0m sends the packet then.
    pub fn send(&mut self, rtp: OutRtp, now: Instant, transmits: &mut Vec<Transmit>, spare: &mut Vec<Vec<u8>>) -> bool {
        let (Some((proto, source, destination)), Some((context, _))) = (self.path, self.ready_contexts()) else {
            return false;
        };
        let extension_len = if rtp.audio_level.is_some() { EXTENSION_LEN } else { 0 };
        let mut packet = spare.pop().unwrap_or_default();
        packet.clear();
        packet.reserve(RTP_HEADER_LEN + extension_len + rtp.payload.len() + context.profile().rtp_overhead());
        let extension_bit = if extension_len > 0 { 0x10 } else { 0 };
        packet.extend_from_slice(&[0x80 | extension_bit, (u8::from(rtp.marker) << 7) | (rtp.pt & 0x7f)]);
        packet.extend_from_slice(&(rtp.seq as u16).to_be_bytes());
        packet.extend_from_slice(&rtp.timestamp.to_be_bytes());
        packet.extend_from_slice(&rtp.ssrc.to_be_bytes());
        if let Some((id, AudioLevel { level, voice })) = rtp.audio_level {
            // RFC 8285's one-byte form: one element of one byte, padded to a word.
            let magnitude = level.unsigned_abs().min(127);
            packet.extend_from_slice(&[0xbe, 0xde, 0, 1, id << 4, (u8::from(voice) << 7) | magnitude, 0, 0]);
        }
        packet.extend_from_slice(rtp.payload);
        if let Err(e) = context.protect_rtp(&mut packet, (rtp.seq >> 16) as u32) {
            tracing::debug!(error = %e, "a forwarded packet could not be protected");
            return true;
        }
        transmits.push(Transmit { proto, source, destination, contents: packet.into() });
        let octets = rtp.payload.len() as u32;
        match self.streams.iter_mut().find(|s| s.ssrc == rtp.ssrc) {
            Some(stream) => {
                stream.packets = stream.packets.wrapping_add(1);
                stream.octets = stream.octets.wrapping_add(octets);
                stream.last = (rtp.timestamp, now);
                stream.clock_rate = rtp.clock_rate;
            }
            None => self.streams.push(SentStream {
                ssrc: rtp.ssrc,
                clock_rate: rtp.clock_rate,
                packets: 1,
                octets,
                last: (rtp.timestamp, now),
            }),
        }
        true
    }

    /// Rewrites the sender reports of the streams sent here in one of str0m's outgoing
    /// datagrams, if it is RTCP; anything else is left as it is. `now` is the moment
    /// str0m wrote the report for (the drain's), within a millisecond.
    pub fn rewrite_reports(&mut self, transmit: &mut Transmit, now: Instant) {
        if self.streams.is_empty() || !rtcp_feedback::is_rtcp(&transmit.contents) {
            return;
        }
        let Some((_, rewriter)) = self.contexts.as_mut() else { return };
        let streams = &self.streams;
        let mut datagram = Vec::from(std::mem::replace(&mut transmit.contents, Vec::new().into()));
        // Kept to send as it was if it cannot be rewritten (a failed decryption may leave
        // the bytes scrambled). RTCP is a few packets a second.
        let original = datagram.clone();
        let rewritten = rewriter.rewrite_rtcp(&mut datagram, |plain| {
            sender_report::rewrite(plain, |ssrc| {
                let stream = streams.iter().find(|s| s.ssrc == ssrc)?;
                let (timestamp, at) = stream.last;
                let elapsed = now.saturating_duration_since(at);
                let ticks = (elapsed.as_nanos() * u128::from(stream.clock_rate) / 1_000_000_000) as u32;
                Some(SenderInfo {
                    rtp_time: timestamp.wrapping_add(ticks),
                    packets: stream.packets,
                    octets: stream.octets,
                })
            });
        });
        transmit.contents = match rewritten {
            Ok(()) => datagram.into(),
            Err(e) => {
                tracing::debug!(error = %e, "an outgoing RTCP packet could not be rewritten: it goes as str0m wrote it");
                original.into()
            }
        };
    }

    fn ready_contexts(&mut self) -> Option<&mut (Context, Context)> {
        if self.contexts.is_none() {
            let both = self.keys.outbound()?.and_then(|sent| Ok((sent, self.keys.outbound().transpose()?)));
            match both {
                Ok((sent, Some(rewriter))) => self.contexts = Some((sent, rewriter)),
                Ok((_, None)) => return None,
                Err(e) => {
                    tracing::warn!(error = %e, "a session's SRTP keys are unusable: str0m sends its audio");
                    return None;
                }
            }
        }
        self.contexts.as_mut()
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::rc::Rc;

    use super::*;
    use crate::session_pair::SessionPair;

    /// A str0m receiver plays what the SFU sent on a session's audio stream, level
    /// included, and the sender report str0m wrote for that stream says what was sent.
    #[test]
    fn a_receiver_reads_the_audio_and_the_reports_the_sfu_sent() {
        let SessionPair { mut a, mut b, audio_mid, now, .. } = SessionPair::connected();
        let egress = Rc::new(RefCell::new(Egress::new(a.keys.clone())));
        let OwnStream { ssrc, audio_level_id } = OwnStream::of(&mut a.rtc, audio_mid).unwrap();
        let level_id = audio_level_id.expect("the audio-level extension is negotiated");
        let pt = **a.rtc.media(audio_mid).unwrap().remote_pts().first().unwrap();
        let payload = [0xf8, 1, 2, 3, 4, 5, 6, 7, 8, 9];
        let rtp = |n: u64| OutRtp {
            ssrc,
            pt,
            seq: 1000 + n,
            timestamp: 960 * n as u32,
            marker: false,
            clock_rate: 48_000,
            audio_level: Some((level_id, AudioLevel { level: -30, voice: true })),
            payload: &payload,
        };
        let mut transmits = Vec::new();
        assert!(!egress.borrow_mut().send(rtp(1), now, &mut transmits, &mut Vec::new()), "no path yet: str0m sends");
        // A STUN answer goes where a check came from: not a path to follow.
        let stun = Transmit {
            proto: Protocol::Udp,
            source: a.address,
            destination: b.address,
            contents: vec![1, 1, 0, 0].into(),
        };
        egress.borrow_mut().observe(&stun);
        assert!(!egress.borrow_mut().send(rtp(1), now, &mut transmits, &mut Vec::new()), "STUN is no path");
        // The path comes from what str0m sends; its RTCP goes through the rewrite.
        let hook = egress.clone();
        let (source, destination) = (a.address, b.address);
        a.rewrite_rtcp = Some(Box::new(move |datagram: &mut Vec<u8>| {
            let contents = std::mem::take(datagram).into();
            let mut transmit = Transmit { proto: Protocol::Udp, source, destination, contents };
            let mut egress = hook.borrow_mut();
            egress.observe(&transmit);
            egress.rewrite_reports(&mut transmit, Instant::now());
            *datagram = transmit.contents.into();
        }));
        let now = SessionPair::run_both(&mut a, &mut b, now, 300);

        for seq in 1..=3 {
            assert!(egress.borrow_mut().send(rtp(seq), now, &mut transmits, &mut Vec::new()));
        }
        for transmit in transmits.drain(..) {
            assert_eq!((transmit.source, transmit.destination), (a.address, b.address));
            b.deliver(transmit.source, &transmit.contents, now);
        }
        // str0m reports audio every 5 s.
        let now = SessionPair::run_both(&mut a, &mut b, now, 1200);
        assert!(egress.borrow_mut().send(rtp(4), now, &mut transmits, &mut vec![vec![0xff; 2000]]));
        b.deliver(a.address, &transmits[0].contents, now);
        SessionPair::run_both(&mut a, &mut b, now, 1);

        // Of the first three, which arrive at one moment, a str0m receiver passes on the
        // last (as it does when str0m sends them); then the fourth.
        assert_eq!(b.received_rtp, vec![payload.to_vec(); 2]);
        assert_eq!(b.last_audio_level.map(i8::unsigned_abs), Some(30));
        let report = b.last_sender_info.expect("B read a sender report");
        assert_eq!((report.sender_packet_count, report.sender_octet_count), (3, 30));
        // Sent before the report: its RTP time is the last packet's or later, at 48 kHz.
        assert!(report.rtp_time.numer() >= 960 * 3, "{:?}", report.rtp_time);
    }
}
