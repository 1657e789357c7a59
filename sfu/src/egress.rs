//! Forwarded packets the SFU protects and sends to a subscriber itself, beside the
//! session's str0m (docs/sfu.md, "Inside"): the RTP header written for the subscriber's
//! stream, the packet protected with the session's own SRTP keys and sent on the ICE pair
//! str0m sends on; retransmissions on the stream's RTX SSRC; padding to find room; every
//! packet numbered for transport-wide feedback, whose reading feeds the session's
//! bandwidth estimate ([`crate::bandwidth`]).
//!
//! The streams keep the SSRCs str0m declared for them (the SDP names those); str0m sends
//! no RTP on them once the SFU can (its estimator is off, so it pads nothing), so no
//! AES-GCM nonce is used twice. str0m still writes their sender reports, with its own
//! (empty) counts: those are rewritten here with what was sent. str0m reads the
//! subscriber's RTCP too (reports, keyframe requests); the SFU reads a copy for its
//! NACKs and transport-wide feedback.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use str0m::Rtc;
use str0m::media::Mid;
use str0m::net::{Protocol, Transmit};
use str0m::rtp::Extension;
use str0m::stats::CandidatePairStats;

use crate::bandwidth::Estimator;
use crate::rtcp_feedback::{self, Feedback};
use crate::sender_report::{self, SenderInfo};
use crate::srtp::Context;
use crate::srtp_keys::SessionKeys;
use crate::transport_cc::{PacketResult, TransportSequence};
use crate::vp8_munger::{self, Vp8Numbers};

const RTP_HEADER_LEN: usize = 12;
/// The original sequence number that starts a retransmission's payload (RFC 4588).
const OSN_LEN: usize = 2;
/// Padding packets carry this many bytes of padding (at most 255: its count is a byte).
const PADDING_LEN: usize = 224;
/// At most this many padding packets per turn, however far behind the rate is.
const MAX_PADDING_PER_TURN: usize = 64;
/// Retransmissions may take this share of the media sent (RFC 4588's concern: they must
/// not add to a congestion), with a burst of at most `MAX_RESEND_BUDGET` bytes.
const RESEND_SHARE_PERCENT: usize = 15;
const MAX_RESEND_BUDGET: usize = 64 * 1024;
/// Padding makes up at most this long a gap: after a pause, it does not burst.
const MAX_PADDING_GAP: Duration = Duration::from_millis(100);

/// One subscriber session's own sending.
#[derive(Debug)]
pub struct Egress {
    keys: SessionKeys,
    /// Once the handshake has exported keys: what the SFU protects with, what it reads
    /// the subscriber's RTCP with, and a third context over the sending keys that
    /// rewrites str0m's outgoing RTCP.
    contexts: Option<Contexts>,
    /// Where str0m last sent this session's datagrams: its nominated pair.
    path: Option<(Protocol, SocketAddr, SocketAddr)>,
    streams: Vec<SentStream>,
    transport: TransportSequence,
    estimator: Estimator,
    /// Each RTX stream's next sequence number, by SSRC.
    rtx_seqs: Vec<(u32, u64)>,
    /// Bytes retransmissions may still take.
    resend_budget: usize,
    /// Bytes sent since padding last looked, and when that was.
    sent_bytes: usize,
    padded_at: Option<Instant>,
    /// Kept from call to call for their capacity.
    results: Vec<PacketResult>,
    rtcp: Vec<u8>,
}

#[derive(Debug)]
struct Contexts {
    send: Context,
    read: Context,
    rewrite: Context,
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

/// What the SFU's own sending needs of a subscriber's stream, read from its session once:
/// the SSRCs str0m declared (the stream's and its RTX's) and the ids of the header
/// extensions written, where negotiated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OwnStream {
    pub ssrc: u32,
    pub rtx_ssrc: Option<u32>,
    pub clock_rate: u32,
    pub audio_level_id: Option<u8>,
    pub transport_cc_id: Option<u8>,
    pub orientation_id: Option<u8>,
}

impl OwnStream {
    pub fn of(rtc: &mut Rtc, mid: Mid) -> Option<OwnStream> {
        let media = rtc.media(mid)?;
        let extmap = media.remote_extmap();
        // The one-byte form (the one written here) takes ids 1 to 14.
        let id_of = |extension| extmap.id_of(extension).filter(|id| (1..=14).contains(id));
        let (audio_level_id, transport_cc_id, orientation_id) = (
            id_of(Extension::AudioLevel),
            id_of(Extension::TransportSequenceNumber),
            id_of(Extension::VideoOrientation),
        );
        let clock_rate = if media.kind() == str0m::media::MediaKind::Audio { 48_000 } else { 90_000 };
        let mut api = rtc.direct_api();
        let stream = api.stream_tx_by_mid(mid, None)?;
        Some(OwnStream {
            ssrc: *stream.ssrc(),
            rtx_ssrc: stream.rtx().map(|ssrc| *ssrc),
            clock_rate,
            audio_level_id,
            transport_cc_id,
            orientation_id,
        })
    }
}

/// A forwarded RTP packet, rewritten for the subscriber.
#[derive(Debug, Clone, Copy)]
pub struct OutRtp<'a> {
    pub stream: OwnStream,
    pub pt: u8,
    /// The extended sequence number: its rollover count keys the encryption.
    pub seq: u64,
    pub timestamp: u32,
    pub marker: bool,
    pub audio_level: Option<AudioLevel>,
    /// The video orientation extension's byte (urn:3gpp:video-orientation).
    pub orientation: Option<u8>,
    /// The VP8 numbers to write into the payload's descriptor.
    pub vp8: Option<Vp8Numbers>,
    pub payload: &'a [u8],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AudioLevel {
    /// dBov, -127 to 0.
    pub level: i8,
    pub voice: bool,
}

/// The header fields of one packet on the wire.
struct Header {
    ssrc: u32,
    pt: u8,
    seq: u16,
    timestamp: u32,
    marker: bool,
}

/// Header extensions in RFC 8285's one-byte form: at most three elements of at most two
/// bytes each.
#[derive(Default)]
struct Extensions {
    elements: [(u8, [u8; 2], usize); 3],
    count: usize,
}

impl Extensions {
    fn push(&mut self, id: Option<u8>, value: &[u8]) {
        if let Some(id) = id
            && self.count < self.elements.len()
        {
            let mut data = [0; 2];
            data[..value.len()].copy_from_slice(value);
            self.elements[self.count] = (id, data, value.len());
            self.count += 1;
        }
    }

    /// The extension block's length: its 4-byte header and elements, padded to a word.
    fn len(&self) -> usize {
        if self.count == 0 {
            return 0;
        }
        let elements: usize = self.elements[..self.count].iter().map(|(_, _, len)| 1 + len).sum();
        4 + elements.next_multiple_of(4)
    }

    fn write(&self, packet: &mut Vec<u8>) {
        let len = self.len();
        if len == 0 {
            return;
        }
        packet.extend_from_slice(&[0xbe, 0xde]);
        packet.extend_from_slice(&(((len - 4) / 4) as u16).to_be_bytes());
        let start = packet.len();
        for (id, data, data_len) in &self.elements[..self.count] {
            packet.push((id << 4) | (*data_len as u8 - 1));
            packet.extend_from_slice(&data[..*data_len]);
        }
        packet.resize(start + len - 4, 0);
    }
}

impl Egress {
    pub fn new(keys: SessionKeys, now: Instant) -> Egress {
        Egress {
            keys,
            contexts: None,
            path: None,
            streams: Vec::new(),
            transport: TransportSequence::default(),
            estimator: Estimator::new(now),
            rtx_seqs: Vec::new(),
            resend_budget: MAX_RESEND_BUDGET / 4,
            sent_bytes: 0,
            padded_at: None,
            results: Vec::new(),
            rtcp: Vec::new(),
        }
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

    /// The bandwidth estimate towards the subscriber, once its transport-wide feedback
    /// has been read (a peer that sends none has no estimate).
    pub fn estimate_bps(&self) -> Option<u64> {
        self.estimator.has_feedback().then(|| self.estimator.estimate_bps())
    }

    /// Protects `rtp` and adds it to `transmits`, in one of the `spare` buffers if there
    /// is one. Returns false, sending nothing, until the session has keys and a path:
    /// str0m sends the packet then.
    pub fn send(
        &mut self,
        rtp: &OutRtp,
        now: Instant,
        transmits: &mut Vec<Transmit>,
        spare: &mut Vec<Vec<u8>>,
    ) -> bool {
        let header = Header {
            ssrc: rtp.stream.ssrc,
            pt: rtp.pt,
            seq: rtp.seq as u16,
            timestamp: rtp.timestamp,
            marker: rtp.marker,
        };
        let roc = (rtp.seq >> 16) as u32;
        if !self.write(header, roc, rtp, None, 0, now, transmits, spare) {
            return false;
        }
        let octets = rtp.payload.len() as u32;
        self.resend_budget =
            (self.resend_budget + rtp.payload.len() * RESEND_SHARE_PERCENT / 100).min(MAX_RESEND_BUDGET);
        match self.streams.iter_mut().find(|s| s.ssrc == rtp.stream.ssrc) {
            Some(stream) => {
                stream.packets = stream.packets.wrapping_add(1);
                stream.octets = stream.octets.wrapping_add(octets);
                stream.last = (rtp.timestamp, now);
            }
            None => self.streams.push(SentStream {
                ssrc: rtp.stream.ssrc,
                clock_rate: rtp.stream.clock_rate,
                packets: 1,
                octets,
                last: (rtp.timestamp, now),
            }),
        }
        true
    }

    /// Sends `rtp` again on its stream's RTX SSRC with payload type `rtx_pt`, its
    /// original sequence number before the payload (RFC 4588). False if it cannot, or
    /// retransmissions took their share already.
    pub fn resend(
        &mut self,
        rtp: &OutRtp,
        rtx_pt: u8,
        now: Instant,
        transmits: &mut Vec<Transmit>,
        spare: &mut Vec<Vec<u8>>,
    ) -> bool {
        let Some(rtx_ssrc) = rtp.stream.rtx_ssrc else { return false };
        let cost = OSN_LEN + rtp.payload.len();
        if cost > self.resend_budget {
            return false;
        }
        self.resend_budget -= cost;
        let (seq, roc) = self.next_rtx_seq(rtx_ssrc);
        let header = Header { ssrc: rtx_ssrc, pt: rtx_pt, seq, timestamp: rtp.timestamp, marker: rtp.marker };
        self.write(header, roc, rtp, Some(rtp.seq as u16), 0, now, transmits, spare)
    }

    /// Pads on `stream`'s RTX SSRC so the session sends at least `target_bps`: what media
    /// left since the last call counts first. Returns the padding packets sent.
    pub fn pad(
        &mut self,
        stream: OwnStream,
        rtx_pt: u8,
        target_bps: u64,
        now: Instant,
        transmits: &mut Vec<Transmit>,
        spare: &mut Vec<Vec<u8>>,
    ) -> usize {
        let Some(last) = self.padded_at.replace(now) else { return 0 };
        let sent = std::mem::take(&mut self.sent_bytes);
        let elapsed = now.saturating_duration_since(last).min(MAX_PADDING_GAP);
        let Some(rtx_ssrc) = stream.rtx_ssrc else { return 0 };
        let wanted = (u128::from(target_bps) * elapsed.as_micros() / 8_000_000) as usize;
        let mut missing = wanted.saturating_sub(sent);
        let mut packets = 0;
        let timestamp = self.streams.iter().find(|s| s.ssrc == stream.ssrc).map_or(0, |s| s.last.0);
        let rtp = OutRtp {
            stream,
            pt: rtx_pt,
            seq: 0,
            timestamp,
            marker: false,
            audio_level: None,
            orientation: None,
            vp8: None,
            payload: &[],
        };
        while missing > 0 && packets < MAX_PADDING_PER_TURN {
            let (seq, roc) = self.next_rtx_seq(rtx_ssrc);
            let header = Header { ssrc: rtx_ssrc, pt: rtx_pt, seq, timestamp, marker: false };
            if !self.write(header, roc, &rtp, None, PADDING_LEN, now, transmits, spare) {
                break;
            }
            missing = missing.saturating_sub(transmits.last().map_or(PADDING_LEN, |t| t.contents.len()));
            packets += 1;
        }
        // Padding is not media: it does not count against the next turn.
        self.sent_bytes = 0;
        packets
    }

    /// The next sequence number on an RTX stream, and its rollover count.
    fn next_rtx_seq(&mut self, ssrc: u32) -> (u16, u32) {
        let index = match self.rtx_seqs.iter().position(|(known, _)| *known == ssrc) {
            Some(index) => index,
            None => {
                // A random start, as RFC 3550 asks.
                self.rtx_seqs.push((ssrc, u64::from(rand::random::<u16>() & 0x7fff)));
                self.rtx_seqs.len() - 1
            }
        };
        let seq = self.rtx_seqs[index].1;
        self.rtx_seqs[index].1 += 1;
        (seq as u16, (seq >> 16) as u32)
    }

    /// Writes, protects and queues one packet. `osn`: a retransmission's original
    /// sequence number; `padding`: bytes of RTP padding after the payload.
    #[allow(clippy::too_many_arguments)]
    fn write(
        &mut self,
        header: Header,
        roc: u32,
        rtp: &OutRtp,
        osn: Option<u16>,
        padding: usize,
        now: Instant,
        transmits: &mut Vec<Transmit>,
        spare: &mut Vec<Vec<u8>>,
    ) -> bool {
        let Some((proto, source, destination)) = self.path else { return false };
        let Some(contexts) = self.ready_contexts() else { return false };
        let overhead = contexts.send.profile().rtp_overhead();
        let mut extensions = Extensions::default();
        if let Some(AudioLevel { level, voice }) = rtp.audio_level {
            extensions.push(rtp.stream.audio_level_id, &[(u8::from(voice) << 7) | level.unsigned_abs().min(127)]);
        }
        if let Some(orientation) = rtp.orientation {
            extensions.push(rtp.stream.orientation_id, &[orientation]);
        }
        // The transport-wide number is written once the packet's size is known.
        let transport_cc_at = extensions.count;
        extensions.push(rtp.stream.transport_cc_id, &[0, 0]);
        let payload_len = osn.map_or(0, |_| OSN_LEN) + rtp.payload.len() + padding;
        let size = RTP_HEADER_LEN + extensions.len() + payload_len + overhead;
        if rtp.stream.transport_cc_id.is_some() {
            let seq = self.transport.number(now, size, padding > 0);
            extensions.elements[transport_cc_at].1 = seq.to_be_bytes();
        }
        let Some(contexts) = self.contexts.as_ref() else { return false };
        let mut packet = spare.pop().unwrap_or_default();
        packet.clear();
        packet.reserve(size);
        let flags = 0x80 | if extensions.count > 0 { 0x10 } else { 0 } | if padding > 0 { 0x20 } else { 0 };
        packet.extend_from_slice(&[flags, (u8::from(header.marker) << 7) | (header.pt & 0x7f)]);
        packet.extend_from_slice(&header.seq.to_be_bytes());
        packet.extend_from_slice(&header.timestamp.to_be_bytes());
        packet.extend_from_slice(&header.ssrc.to_be_bytes());
        extensions.write(&mut packet);
        if let Some(osn) = osn {
            packet.extend_from_slice(&osn.to_be_bytes());
        }
        let payload_at = packet.len();
        packet.extend_from_slice(rtp.payload);
        if let Some(numbers) = rtp.vp8 {
            vp8_munger::write_numbers(&mut packet[payload_at..], numbers);
        }
        if padding > 0 {
            packet.resize(packet.len() + padding - 1, 0);
            packet.push(padding as u8);
        }
        if let Err(e) = contexts.send.protect_rtp(&mut packet, roc) {
            tracing::debug!(error = %e, "a forwarded packet could not be protected");
            spare.push(packet);
            return true;
        }
        self.sent_bytes += packet.len();
        transmits.push(Transmit { proto, source, destination, contents: packet.into() });
        true
    }

    /// Reads a datagram the subscriber sent, if it is SRTCP the session's keys open:
    /// transport-wide feedback goes to the bandwidth estimate, and the packets NACKs
    /// ask for are added to `nacks` as (media SSRC, sequence number). str0m reads the
    /// datagram too, with its own context, for the rest.
    pub fn read_rtcp(&mut self, now: Instant, datagram: &[u8], nacks: &mut Vec<(u32, u16)>) {
        if !rtcp_feedback::is_rtcp(datagram) {
            return;
        }
        let mut plain = std::mem::take(&mut self.rtcp);
        plain.clear();
        plain.extend_from_slice(datagram);
        let Some(contexts) = self.ready_contexts() else {
            self.rtcp = plain;
            return;
        };
        match contexts.read.unprotect_rtcp(&mut plain) {
            Ok(len) => {
                self.results.clear();
                for feedback in rtcp_feedback::read(&plain[..len]) {
                    match feedback {
                        Ok(Feedback::TransportWide(twcc)) => {
                            self.transport.read_feedback(now, &twcc, &mut self.results)
                        }
                        Ok(Feedback::Nack(nack)) => nacks.extend(nack.lost().map(|seq| (nack.media_ssrc, seq))),
                        Ok(_) => {}
                        Err(e) => {
                            tracing::debug!(error = %e, "a subscriber's RTCP is malformed past this point");
                            break;
                        }
                    }
                }
                if !self.results.is_empty() {
                    self.estimator.on_feedback(now, &self.results);
                }
            }
            Err(e) => tracing::debug!(error = %e, "a subscriber's RTCP could not be read"),
        }
        self.rtcp = plain;
    }

    /// Rewrites the sender reports of the streams sent here in one of str0m's outgoing
    /// datagrams, if it is RTCP; anything else is left as it is. `now` is the moment
    /// str0m wrote the report for (the drain's), within a millisecond.
    pub fn rewrite_reports(&mut self, transmit: &mut Transmit, now: Instant) {
        if self.streams.is_empty() || !rtcp_feedback::is_rtcp(&transmit.contents) {
            return;
        }
        let Some(contexts) = self.contexts.as_mut() else { return };
        let streams = &self.streams;
        let mut datagram = Vec::from(std::mem::replace(&mut transmit.contents, Vec::new().into()));
        // Kept to send as it was if it cannot be rewritten (a failed decryption may leave
        // the bytes scrambled). RTCP is a few packets a second.
        let original = datagram.clone();
        let rewritten = contexts.rewrite.rewrite_rtcp(&mut datagram, |plain| {
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

    fn ready_contexts(&mut self) -> Option<&mut Contexts> {
        if self.contexts.is_none() {
            let made = self.keys.contexts()?.and_then(|(send, read)| {
                let rewrite = self.keys.outbound().transpose()?;
                Ok(rewrite.map(|rewrite| Contexts { send, read, rewrite }))
            });
            match made {
                Ok(Some(contexts)) => self.contexts = Some(contexts),
                Ok(None) => return None,
                Err(e) => {
                    tracing::warn!(error = %e, "a session's SRTP keys are unusable: str0m sends its media");
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
        let egress = Rc::new(RefCell::new(Egress::new(a.keys.clone(), now)));
        let stream = OwnStream::of(&mut a.rtc, audio_mid).unwrap();
        assert!(stream.audio_level_id.is_some(), "the audio-level extension is negotiated");
        let pt = **a.rtc.media(audio_mid).unwrap().remote_pts().first().unwrap();
        let payload = [0xf8, 1, 2, 3, 4, 5, 6, 7, 8, 9];
        let rtp = |n: u64| OutRtp {
            stream,
            pt,
            seq: 1000 + n,
            timestamp: 960 * n as u32,
            marker: false,
            audio_level: Some(AudioLevel { level: -30, voice: true }),
            orientation: None,
            vp8: None,
            payload: &payload,
        };
        let mut transmits = Vec::new();
        assert!(!egress.borrow_mut().send(&rtp(1), now, &mut transmits, &mut Vec::new()), "no path yet: str0m sends");
        // A STUN answer goes where a check came from: not a path to follow.
        let stun = Transmit {
            proto: Protocol::Udp,
            source: a.address,
            destination: b.address,
            contents: vec![1, 1, 0, 0].into(),
        };
        egress.borrow_mut().observe(&stun);
        assert!(!egress.borrow_mut().send(&rtp(1), now, &mut transmits, &mut Vec::new()), "STUN is no path");
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
            assert!(egress.borrow_mut().send(&rtp(seq), now, &mut transmits, &mut Vec::new()));
        }
        for transmit in transmits.drain(..) {
            assert_eq!((transmit.source, transmit.destination), (a.address, b.address));
            b.deliver(transmit.source, &transmit.contents, now);
        }
        // str0m reports audio every 5 s.
        let now = SessionPair::run_both(&mut a, &mut b, now, 1200);
        assert!(egress.borrow_mut().send(&rtp(4), now, &mut transmits, &mut vec![vec![0xff; 2000]]));
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

    /// Video the SFU sends: a packet lost on the way is NACKed by the str0m receiver,
    /// read from its RTCP, sent again on the RTX stream and played; the VP8 numbers are
    /// written into the payload, the first time and again; the receiver's transport-wide
    /// feedback reaches the estimate.
    #[test]
    fn a_lost_video_packet_is_nacked_resent_on_rtx_and_played() {
        let SessionPair { mut a, mut b, mid, mut now, .. } = SessionPair::connected();
        let mut egress = Egress::new(a.keys.clone(), now);
        let stream = OwnStream::of(&mut a.rtc, mid).unwrap();
        assert!(stream.rtx_ssrc.is_some() && stream.transport_cc_id.is_some(), "{stream:?}");
        let media = a.rtc.media(mid).unwrap();
        let pt = *media.remote_pts()[0];
        let rtx_pt = a.rtc.codec_config().params().iter().find(|p| *p.pt() == pt).and_then(|p| p.resend());
        let rtx_pt = *rtx_pt.expect("VP8 has an RTX payload type");
        egress.observe(&Transmit {
            proto: Protocol::Udp,
            source: a.address,
            destination: b.address,
            contents: vec![0x80, 200].into(),
        });
        // VP8 with a 15-bit PictureID, rewritten to 500 + n; sequence numbers across the
        // 16-bit wrap, the last before it lost.
        let payload = |n: u16| vec![0x90, 0x80, 0x80, n as u8, 0x9d, 0x01, 0x2a, n as u8];
        let numbers = |n: u16| Some(Vp8Numbers { picture: Some(500 + n), tl0: None });
        let payloads: Vec<Vec<u8>> = (0..12).map(payload).collect();
        let rtp = |n: u16| OutRtp {
            stream,
            pt,
            seq: 65_530 + u64::from(n),
            timestamp: 3000 * u32::from(n),
            marker: true,
            audio_level: None,
            orientation: Some(1),
            vp8: numbers(n),
            payload: &payloads[usize::from(n)],
        };
        let first_rtcp = b.sent_rtcp.len();
        let mut transmits = Vec::new();
        for n in 0..12 {
            assert!(egress.send(&rtp(n), now, &mut transmits, &mut Vec::new()));
            let sent = transmits.pop().unwrap();
            if n != 5 {
                b.deliver(a.address, &sent.contents, now);
            }
            now = SessionPair::run_both(&mut a, &mut b, now, 4);
        }
        now = SessionPair::run_both(&mut a, &mut b, now, 100);
        let mut nacks = Vec::new();
        for datagram in &b.sent_rtcp[first_rtcp..] {
            egress.read_rtcp(now, datagram, &mut nacks);
        }
        assert!(nacks.contains(&(stream.ssrc, 65_535)), "{nacks:?}");
        assert!(egress.estimator.acked_bps().is_some(), "the transport-wide feedback was read");
        assert!(egress.resend(&rtp(5), rtx_pt, now, &mut transmits, &mut Vec::new()));
        let resent = transmits.pop().unwrap();
        b.deliver(a.address, &resent.contents, now);
        SessionPair::run_both(&mut a, &mut b, now, 2);

        let mut played = b.received_rtp.clone();
        played.sort_by_key(|p| p[3]);
        let expected: Vec<Vec<u8>> = (0..12)
            .map(|n| {
                let mut payload = payload(n);
                let picture = 500 + n;
                payload[2] = 0x80 | (picture >> 8) as u8;
                payload[3] = picture as u8;
                payload
            })
            .collect();
        let mut expected_sorted = expected.clone();
        expected_sorted.sort_by_key(|p| p[3]);
        assert_eq!(played, expected_sorted, "all twelve, the fifth from its retransmission");
    }

    /// Padding tops up what media sent to the rate asked for, on the RTX stream, in
    /// padding-only packets numbered for transport-wide feedback; a pause is not made up
    /// in one burst.
    #[test]
    fn padding_tops_up_media_to_the_rate_asked_for() {
        let SessionPair { mut a, b, mid, now, .. } = SessionPair::connected();
        let mut egress = Egress::new(a.keys.clone(), now);
        let stream = OwnStream::of(&mut a.rtc, mid).unwrap();
        let pt = *a.rtc.media(mid).unwrap().remote_pts()[0];
        let rtx_pt = *a.rtc.codec_config().params().iter().find(|p| *p.pt() == pt).and_then(|p| p.resend()).unwrap();
        egress.observe(&Transmit {
            proto: Protocol::Udp,
            source: a.address,
            destination: b.address,
            contents: vec![0x80, 200].into(),
        });
        let mut transmits = Vec::new();
        assert_eq!(
            egress.pad(stream, rtx_pt, 800_000, now, &mut transmits, &mut Vec::new()),
            0,
            "the first turn only starts the clock"
        );
        // 50 ms at 800 kbit/s is 5,000 bytes; a 1,000-byte media packet went meanwhile.
        let payload = [0x90, 0x80, 0x80, 1, 0x9d, 0x01, 0x2a, 0, 0, 0];
        let media = OutRtp {
            stream,
            pt,
            seq: 1,
            timestamp: 3000,
            marker: true,
            audio_level: None,
            orientation: None,
            vp8: None,
            payload: &[&payload[..], &[0; 990]].concat(),
        };
        assert!(egress.send(&media, now, &mut transmits, &mut Vec::new()));
        let later = now + Duration::from_millis(50);
        let padded = egress.pad(stream, rtx_pt, 800_000, later, &mut transmits, &mut Vec::new());
        let padding: usize = transmits[1..].iter().map(|t| t.contents.len()).sum();
        assert_eq!(padded, transmits.len() - 1);
        assert!((3_700..=4_300).contains(&padding), "{padded} packets, {padding} bytes");
        for transmit in &transmits[1..] {
            let header = &transmit.contents[..12];
            assert_eq!(header[0] & 0x30, 0x30, "padding and an extension");
            assert_eq!(header[1] & 0x7f, rtx_pt);
            assert_eq!(u32::from_be_bytes(header[8..12].try_into().unwrap()), stream.rtx_ssrc.unwrap());
        }
        assert_eq!(egress.transport.next, 1 + padded as u64, "each numbered for feedback");
        // After a second's pause, at most 100 ms are made up.
        transmits.clear();
        let paused = later + Duration::from_secs(1);
        egress.pad(stream, rtx_pt, 800_000, paused, &mut transmits, &mut Vec::new());
        let padding: usize = transmits.iter().map(|t| t.contents.len()).sum();
        assert!((9_000..=10_600).contains(&padding), "{padding} bytes");
    }
}
