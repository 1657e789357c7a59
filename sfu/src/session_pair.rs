//! Two str0m sessions that talk through memory, for tests of what the SFU protects,
//! sends and reads on a session beside str0m: no socket, nothing sent anywhere. A sends
//! video to B; each side keeps the keys its handshake exported.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use str0m::media::{Direction, MediaKind, Mid};
use str0m::net::{Protocol, Receive};
use str0m::rtp::rtcp::SenderInfo;
use str0m::{Candidate, Event, Input, Output, Rtc};

use crate::rtcp_feedback;
use crate::srtp_keys::{SessionKeys, build_rtc};

pub type RtcpRewrite = Box<dyn FnMut(&mut Vec<u8>)>;

pub struct Side {
    pub rtc: Rtc,
    pub keys: SessionKeys,
    pub address: SocketAddr,
    /// Payloads of the RTP packets this side received.
    pub received_rtp: Vec<Vec<u8>>,
    /// The SRTCP datagrams this side sent.
    pub sent_rtcp: Vec<Vec<u8>>,
    /// Changes each SRTCP datagram this side sends before it goes.
    pub rewrite_rtcp: Option<RtcpRewrite>,
    /// The sender report the last RTP packet received came with.
    pub last_sender_info: Option<SenderInfo>,
    /// The audio level the last RTP packet received carried.
    pub last_audio_level: Option<i8>,
}

impl Side {
    fn new(port: u16, now: Instant) -> Side {
        let address = SocketAddr::from(([127, 0, 0, 1], port));
        let (mut rtc, keys) = build_rtc(Rtc::builder().set_rtp_mode(true), now);
        rtc.add_local_candidate(Candidate::host(address, "udp").unwrap());
        Side {
            rtc,
            keys,
            address,
            received_rtp: Vec::new(),
            sent_rtcp: Vec::new(),
            rewrite_rtcp: None,
            last_sender_info: None,
            last_audio_level: None,
        }
    }

    /// Runs this side until it waits for a later time, handing what it transmits to `to`.
    pub fn run(&mut self, to: &mut Side, now: Instant) {
        self.rtc.handle_input(Input::Timeout(now)).unwrap();
        loop {
            match self.rtc.poll_output().unwrap() {
                Output::Timeout(_) => return,
                Output::Transmit(transmit) => {
                    let mut datagram = transmit.contents.to_vec();
                    if rtcp_feedback::is_rtcp(&datagram) {
                        if let Some(rewrite) = &mut self.rewrite_rtcp {
                            rewrite(&mut datagram);
                        }
                        self.sent_rtcp.push(datagram.clone());
                    }
                    to.deliver(self.address, &datagram, now);
                }
                Output::Event(Event::RtpPacket(packet)) => {
                    self.last_sender_info = packet.last_sender_info;
                    self.last_audio_level = packet.header.ext_vals.audio_level;
                    self.received_rtp.push(packet.payload.to_vec());
                }
                Output::Event(_) => {}
            }
        }
    }

    /// `datagram` from `source`, as this side's input.
    pub fn receive<'a>(&self, source: SocketAddr, datagram: &'a [u8]) -> Receive<'a> {
        Receive { proto: Protocol::Udp, source, destination: self.address, contents: datagram.try_into().unwrap() }
    }

    pub fn deliver(&mut self, source: SocketAddr, datagram: &[u8], now: Instant) {
        let input = Input::Receive(now, self.receive(source, datagram));
        self.rtc.handle_input(input).unwrap();
    }
}

pub struct SessionPair {
    pub a: Side,
    pub b: Side,
    /// A's video, which B receives.
    pub mid: Mid,
    /// A's audio, which B receives.
    pub audio_mid: Mid,
    pub now: Instant,
}

impl SessionPair {
    /// A offers a video it sends, B answers; both run until connected, with keys.
    pub fn connected() -> SessionPair {
        let mut now = Instant::now();
        let (mut a, mut b) = (Side::new(10_001, now), Side::new(10_002, now));
        let mut change = a.rtc.sdp_api();
        let mid = change.add_media(MediaKind::Video, Direction::SendOnly, None, None, None);
        let audio_mid = change.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None);
        let (offer, pending) = change.apply().unwrap();
        let answer = b.rtc.sdp_api().accept_offer(offer).unwrap();
        a.rtc.sdp_api().accept_answer(pending, answer).unwrap();
        for _ in 0..500 {
            if a.rtc.is_connected() && b.rtc.is_connected() && a.keys.profile().is_some() && b.keys.profile().is_some()
            {
                return SessionPair { a, b, mid, audio_mid, now };
            }
            now = Self::run_both(&mut a, &mut b, now, 1);
        }
        panic!("the sessions did not connect");
    }

    /// Runs both sides `steps` times, 5 ms apart; returns the time after the last.
    pub fn run_both(a: &mut Side, b: &mut Side, mut now: Instant, steps: usize) -> Instant {
        for _ in 0..steps {
            a.run(b, now);
            b.run(a, now);
            now += Duration::from_millis(5);
        }
        now
    }
}

/// A plain RTP packet: version 2, no CSRC, `extensions` (one-byte form, RFC 8285) as
/// (id, value) pairs, then `payload`.
pub fn rtp_packet(pt: u8, seq: u16, ssrc: u32, extensions: &[(u8, &[u8])], payload: &[u8]) -> Vec<u8> {
    let mut packet = vec![if extensions.is_empty() { 0x80 } else { 0x90 }, pt];
    packet.extend_from_slice(&seq.to_be_bytes());
    packet.extend_from_slice(&(u32::from(seq) * 3000).to_be_bytes());
    packet.extend_from_slice(&ssrc.to_be_bytes());
    if !extensions.is_empty() {
        let mut block: Vec<u8> = Vec::new();
        for (id, value) in extensions {
            block.push((id << 4) | (value.len() as u8 - 1));
            block.extend_from_slice(value);
        }
        while !block.len().is_multiple_of(4) {
            block.push(0);
        }
        packet.extend_from_slice(&[0xbe, 0xde]);
        packet.extend_from_slice(&((block.len() / 4) as u16).to_be_bytes());
        packet.extend_from_slice(&block);
    }
    packet.extend_from_slice(payload);
    packet
}
