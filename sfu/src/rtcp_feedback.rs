//! What a receiver tells the SFU in RTCP, read from a compound packet once decrypted
//! ([`crate::srtp::Context::unprotect_rtcp`]): reception reports (RFC 3550), lost
//! packets (generic NACK, RFC 4585), keyframe requests (PLI, RFC 4585; FIR, RFC 5104)
//! and transport-wide congestion control feedback
//! (draft-holmer-rmcat-transport-wide-cc-extensions-01). Read in place: nothing is
//! copied or allocated.

const HEADER_LEN: usize = 4;
const SENDER_REPORT: u8 = 200;
const RECEIVER_REPORT: u8 = 201;
const TRANSPORT_FEEDBACK: u8 = 205;
const PAYLOAD_FEEDBACK: u8 = 206;
const FORMAT_NACK: u8 = 1;
const FORMAT_TWCC: u8 = 15;
const FORMAT_PLI: u8 = 1;
const FORMAT_FIR: u8 = 4;
const SENDER_INFO_LEN: usize = 20;
const REPORT_BLOCK_LEN: usize = 24;
/// TWCC: arrival deltas count in 250 µs, the reference time in 64 ms.
const DELTA_US: i64 = 250;
const REFERENCE_TIME_US: i64 = 64_000;

/// Why reading stopped: the rest of the compound packet is not read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RtcpError {
    #[error("an RTCP header is malformed or its length runs past the packet")]
    Header,
    #[error("an RTCP packet of type {0} is too short for what it says it holds")]
    Truncated(u8),
}

/// One packet of a compound RTCP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feedback<'a> {
    /// A sender or receiver report's reception report blocks.
    Reports {
        sender_ssrc: u32,
        blocks: ReportBlocks<'a>,
    },
    Nack(Nack<'a>),
    PictureLoss {
        media_ssrc: u32,
    },
    FullIntraRequest(FirEntries<'a>),
    TransportWide(TransportWide<'a>),
    /// Anything else (SDES, BYE, REMB, XR...), skipped.
    Other {
        packet_type: u8,
        format: u8,
    },
}

/// Whether a datagram is RTCP rather than RTP, STUN or DTLS: version 2 and a packet
/// type from 192 to 223 (RFC 5761 section 4; RFC 7983).
pub fn is_rtcp(datagram: &[u8]) -> bool {
    datagram.len() >= 2 && datagram[0] >> 6 == 2 && (192..=223).contains(&datagram[1])
}

/// The packets of a compound RTCP packet, in order; stops after the first error.
pub fn read(compound: &[u8]) -> Packets<'_> {
    Packets { rest: compound }
}

#[derive(Debug, Clone)]
pub struct Packets<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Packets<'a> {
    type Item = Result<Feedback<'a>, RtcpError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let result = self.next_packet();
        if result.is_err() {
            self.rest = &[];
        }
        Some(result)
    }
}

impl<'a> Packets<'a> {
    fn next_packet(&mut self) -> Result<Feedback<'a>, RtcpError> {
        let rest = self.rest;
        if rest.len() < HEADER_LEN || rest[0] >> 6 != 2 {
            return Err(RtcpError::Header);
        }
        let len = HEADER_LEN + 4 * usize::from(u16::from_be_bytes([rest[2], rest[3]]));
        if len > rest.len() {
            return Err(RtcpError::Header);
        }
        let (packet, after) = rest.split_at(len);
        self.rest = after;
        let (count, packet_type) = (packet[0] & 0x1f, packet[1]);
        let mut body = &packet[HEADER_LEN..];
        if packet[0] & 0x20 != 0 {
            // Padding: its last byte counts the padding bytes.
            let padding = usize::from(*body.last().ok_or(RtcpError::Header)?);
            body = body.get(..body.len().checked_sub(padding).ok_or(RtcpError::Header)?).ok_or(RtcpError::Header)?;
        }
        let truncated = RtcpError::Truncated(packet_type);
        match (packet_type, count) {
            (SENDER_REPORT | RECEIVER_REPORT, _) => {
                let skip = 4 + if packet_type == SENDER_REPORT { SENDER_INFO_LEN } else { 0 };
                let blocks = body.get(skip..skip + REPORT_BLOCK_LEN * usize::from(count)).ok_or(truncated)?;
                Ok(Feedback::Reports { sender_ssrc: be_u32(body), blocks: ReportBlocks { blocks } })
            }
            (TRANSPORT_FEEDBACK, FORMAT_NACK) => {
                let (media_ssrc, fci) = feedback_fci(body).ok_or(truncated)?;
                Ok(Feedback::Nack(Nack { media_ssrc, pairs: whole_entries(fci, 4) }))
            }
            (TRANSPORT_FEEDBACK, FORMAT_TWCC) => {
                let (_, fci) = feedback_fci(body).ok_or(truncated)?;
                TransportWide::read(fci).map(Feedback::TransportWide).ok_or(truncated)
            }
            (PAYLOAD_FEEDBACK, FORMAT_PLI) => {
                let (media_ssrc, _) = feedback_fci(body).ok_or(truncated)?;
                Ok(Feedback::PictureLoss { media_ssrc })
            }
            (PAYLOAD_FEEDBACK, FORMAT_FIR) => {
                let (_, fci) = feedback_fci(body).ok_or(truncated)?;
                Ok(Feedback::FullIntraRequest(FirEntries { entries: whole_entries(fci, 8) }))
            }
            _ => Ok(Feedback::Other { packet_type, format: count }),
        }
    }
}

/// A feedback message's media SSRC and its feedback control information (RFC 4585
/// section 6.1; the sender SSRC comes first).
fn feedback_fci(body: &[u8]) -> Option<(u32, &[u8])> {
    let media_ssrc = body.get(4..8)?;
    Some((be_u32(media_ssrc), &body[8..]))
}

fn whole_entries(fci: &[u8], size: usize) -> &[u8] {
    &fci[..fci.len() - fci.len() % size]
}

fn be_u32(bytes: &[u8]) -> u32 {
    u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])
}

/// How one receiver receives one of our streams (RFC 3550 section 6.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReceptionReport {
    pub ssrc: u32,
    /// Lost since the last report, in 256ths.
    pub fraction_lost: u8,
    pub cumulative_lost: i32,
    pub highest_seq: u32,
    pub jitter: u32,
    /// The middle 32 bits of the NTP time of the last sender report received, 0 if none.
    pub last_sender_report: u32,
    /// Since then, in 65536ths of a second.
    pub delay_since_last_sender_report: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportBlocks<'a> {
    blocks: &'a [u8],
}

impl<'a> IntoIterator for ReportBlocks<'a> {
    type Item = ReceptionReport;
    type IntoIter = std::iter::Map<std::slice::ChunksExact<'a, u8>, fn(&[u8]) -> ReceptionReport>;

    fn into_iter(self) -> Self::IntoIter {
        self.blocks.chunks_exact(REPORT_BLOCK_LEN).map(|block| {
            // Cumulative loss is a signed 24-bit number.
            let cumulative_lost = i32::from_be_bytes([block[5], block[6], block[7], 0]) >> 8;
            ReceptionReport {
                ssrc: be_u32(&block[0..4]),
                fraction_lost: block[4],
                cumulative_lost,
                highest_seq: be_u32(&block[8..12]),
                jitter: be_u32(&block[12..16]),
                last_sender_report: be_u32(&block[16..20]),
                delay_since_last_sender_report: be_u32(&block[20..24]),
            }
        })
    }
}

/// A generic NACK: sequence numbers of `media_ssrc` the receiver did not get.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Nack<'a> {
    pub media_ssrc: u32,
    pairs: &'a [u8],
}

impl Nack<'_> {
    /// Each entry's packet ID, then the ones its bitmask of the 16 following marks.
    pub fn lost(&self) -> impl Iterator<Item = u16> + '_ {
        self.pairs.chunks_exact(4).flat_map(|pair| {
            let id = u16::from_be_bytes([pair[0], pair[1]]);
            let mask = u16::from_be_bytes([pair[2], pair[3]]);
            std::iter::once(id)
                .chain((0..16).filter(move |bit| mask & (1 << bit) != 0).map(move |bit| id.wrapping_add(bit + 1)))
        })
    }
}

/// A full intra request's entries: the SSRCs asked for a keyframe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FirEntries<'a> {
    entries: &'a [u8],
}

impl FirEntries<'_> {
    pub fn ssrcs(&self) -> impl Iterator<Item = u32> + '_ {
        self.entries.chunks_exact(8).map(be_u32)
    }
}

/// Transport-wide feedback: for each transport-wide sequence number from `base_seq`,
/// whether it arrived and when, on the receiver's clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransportWide<'a> {
    pub base_seq: u16,
    pub status_count: u16,
    /// On the receiver's clock, in µs (a multiple of 64 ms).
    pub reference_time_us: i64,
    /// Counts the receiver's feedback packets, to tell a lost one.
    pub feedback_count: u8,
    chunks: &'a [u8],
    deltas: &'a [u8],
}

/// One packet's fate in transport-wide feedback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PacketStatus {
    pub seq: u16,
    /// When it arrived, in µs on the receiver's clock; `None`: not received.
    pub arrival_us: Option<i64>,
}

/// A packet status symbol: not received, received with a one-byte delta, with a two-byte one.
const NOT_RECEIVED: u8 = 0;
const SMALL_DELTA: u8 = 1;
const LARGE_DELTA: u8 = 2;

impl<'a> TransportWide<'a> {
    /// Checks that the chunks cover `status_count` packets and the deltas they call for
    /// are there.
    fn read(fci: &'a [u8]) -> Option<TransportWide<'a>> {
        let header = fci.get(..8)?;
        let base_seq = u16::from_be_bytes([header[0], header[1]]);
        let status_count = u16::from_be_bytes([header[2], header[3]]);
        // A signed 24-bit count of 64 ms.
        let reference = i32::from_be_bytes([header[4], header[5], header[6], 0]) >> 8;
        let mut feedback = TransportWide {
            base_seq,
            status_count,
            reference_time_us: i64::from(reference) * REFERENCE_TIME_US,
            feedback_count: header[7],
            chunks: &fci[8..],
            deltas: &[],
        };
        let (mut covered, mut delta_bytes, mut chunk_bytes) = (0usize, 0usize, 0usize);
        while covered < usize::from(status_count) {
            let chunk = feedback.chunks.get(chunk_bytes..chunk_bytes + 2)?;
            chunk_bytes += 2;
            for symbol in
                chunk_symbols(u16::from_be_bytes([chunk[0], chunk[1]])).take(usize::from(status_count) - covered)
            {
                covered += 1;
                delta_bytes += match symbol {
                    NOT_RECEIVED => 0,
                    SMALL_DELTA => 1,
                    LARGE_DELTA => 2,
                    _ => return None,
                };
            }
        }
        let rest = &fci[8..];
        feedback.chunks = &rest[..chunk_bytes];
        feedback.deltas = rest.get(chunk_bytes..chunk_bytes + delta_bytes)?;
        Some(feedback)
    }

    /// Each packet from `base_seq`, in order.
    pub fn packets(&self) -> impl Iterator<Item = PacketStatus> + '_ {
        let symbols = self
            .chunks
            .chunks_exact(2)
            .flat_map(|chunk| chunk_symbols(u16::from_be_bytes([chunk[0], chunk[1]])))
            .take(usize::from(self.status_count));
        let (mut deltas, mut arrival_us) = (self.deltas, self.reference_time_us);
        symbols.enumerate().map(move |(i, symbol)| {
            let delta = match symbol {
                SMALL_DELTA => {
                    let delta = i64::from(deltas[0]);
                    deltas = &deltas[1..];
                    Some(delta)
                }
                LARGE_DELTA => {
                    let delta = i64::from(i16::from_be_bytes([deltas[0], deltas[1]]));
                    deltas = &deltas[2..];
                    Some(delta)
                }
                _ => None,
            };
            let arrival = delta.map(|delta| {
                arrival_us += delta * DELTA_US;
                arrival_us
            });
            PacketStatus { seq: self.base_seq.wrapping_add(i as u16), arrival_us: arrival }
        })
    }
}

/// A packet status chunk's symbols: a run of one symbol, or a vector of 14 one-bit or
/// 7 two-bit ones.
fn chunk_symbols(chunk: u16) -> impl Iterator<Item = u8> {
    // How many symbols, and the bits of each listed one (0: a run).
    let (count, bits) = if chunk & 0x8000 == 0 {
        (usize::from(chunk & 0x1fff), 0)
    } else if chunk & 0x4000 == 0 {
        (14, 1)
    } else {
        (7, 2)
    };
    (0..count).map(move |i| match bits {
        0 => ((chunk >> 13) & 0x3) as u8,
        _ => ((chunk >> (14 - bits * (i + 1))) & ((1 << bits) - 1)) as u8,
    })
}

#[cfg(test)]
mod tests {
    use str0m::media::KeyframeRequestKind;
    use str0m::rtp::Extension;

    use super::*;
    use crate::session_pair::{SessionPair, rtp_packet};

    /// What str0m, as a receiver, sends about packets the SFU protected and numbered
    /// itself: reports, NACKs for a gap, a PLI, and transport-wide feedback with the
    /// times the packets arrived.
    #[test]
    fn reads_what_a_str0m_receiver_reports_about_packets_the_sfu_sent() {
        let SessionPair { mut a, mut b, mid, mut now, .. } = SessionPair::connected();
        let (a_sends, mut a_receives) = a.keys.contexts().unwrap().unwrap();
        let ssrc = *a.rtc.direct_api().stream_tx_by_mid(mid, None).unwrap().ssrc();
        let media = a.rtc.media(mid).unwrap();
        let pt = **media.remote_pts().first().unwrap();
        let twcc_id = media.remote_extmap().id_of(Extension::TransportSequenceNumber).unwrap();
        let first_rtcp = b.sent_rtcp.len();

        // Sequence numbers 1 to 12 (transport-wide 101 to 112), 5 and 6 lost on the way,
        // one every 5 ms.
        let mut arrivals = Vec::new();
        for seq in 1..=12u16 {
            let twcc = (100 + seq).to_be_bytes();
            let mut packet = rtp_packet(pt, seq, ssrc, &[(twcc_id, &twcc)], &[0x10, 0, 0x9d, 1, 0x2a, 7, 7, 7]);
            a_sends.protect_rtp(&mut packet, 0).unwrap();
            if seq != 5 && seq != 6 {
                b.deliver(a.address, &packet, now);
                arrivals.push((100 + seq, now));
            }
            now = SessionPair::run_both(&mut a, &mut b, now, 1);
        }
        b.rtc.direct_api().stream_rx(&ssrc.into()).unwrap().request_keyframe(KeyframeRequestKind::Pli);
        SessionPair::run_both(&mut a, &mut b, now, 300);

        let (mut lost, mut plis, mut highest, mut statuses) = (Vec::new(), 0, 0, Vec::new());
        for datagram in &b.sent_rtcp[first_rtcp..] {
            let mut datagram = datagram.clone();
            let len = a_receives.unprotect_rtcp(&mut datagram).unwrap();
            for feedback in read(&datagram[..len]) {
                match feedback.unwrap() {
                    Feedback::Nack(nack) if nack.media_ssrc == ssrc => lost.extend(nack.lost()),
                    Feedback::PictureLoss { media_ssrc } if media_ssrc == ssrc => plis += 1,
                    Feedback::Reports { blocks, .. } => {
                        for report in blocks.into_iter().filter(|r| r.ssrc == ssrc) {
                            highest = highest.max(report.highest_seq);
                        }
                    }
                    Feedback::TransportWide(feedback) => statuses.extend(feedback.packets()),
                    _ => {}
                }
            }
        }
        lost.sort_unstable();
        lost.dedup();
        assert_eq!(lost, vec![5, 6], "NACKed: the gap");
        assert!(plis >= 1, "the keyframe request");
        assert_eq!(highest, 12, "the highest sequence number received");

        // Every transport-wide number from the first to the last, 105 and 106 missing,
        // the others 5 ms apart (arrival times are on B's clock: compare differences).
        let received: Vec<(u16, i64)> = statuses.iter().filter_map(|s| s.arrival_us.map(|at| (s.seq, at))).collect();
        let missing: Vec<u16> = statuses.iter().filter(|s| s.arrival_us.is_none()).map(|s| s.seq).collect();
        assert_eq!(received.iter().map(|r| r.0).collect::<Vec<_>>(), arrivals.iter().map(|a| a.0).collect::<Vec<_>>());
        assert_eq!(missing, vec![105, 106]);
        for (pair, sent) in received.windows(2).zip(arrivals.windows(2)) {
            let expected = sent[1].1.duration_since(sent[0].1).as_micros() as i64;
            assert_eq!(pair[1].1 - pair[0].1, expected, "{} to {}", pair[0].0, pair[1].0);
        }
    }

    #[test]
    fn reads_nack_masks_fir_entries_and_both_twcc_chunk_kinds() {
        let mut compound = vec![0x81, 205, 0, 3, 0, 0, 0, 1, 0, 0, 0, 9];
        // Lost: 65535 and, by the mask, 0 and 15 (bits 0 and 15 → +1 and +16).
        compound.extend_from_slice(&[0xff, 0xff, 0x80, 0x01]);
        compound.extend_from_slice(&[0x84, 206, 0, 6, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 7, 3, 0, 0, 0]);
        compound.extend_from_slice(&[0, 0, 0, 8, 4, 0, 0, 0]);
        // TWCC from 65534, 5 packets, reference time -64 ms, feedback 9; one two-bit
        // vector chunk [1, 2, 0, 1, 2, 0, 0]; deltas +1 ms, -2 ms, +0, +64 ms; padded.
        compound.extend_from_slice(&[0x8f, 205, 0, 7, 0, 0, 0, 1, 0, 0, 0, 9]);
        compound.extend_from_slice(&[0xff, 0xfe, 0, 5, 0xff, 0xff, 0xff, 9, 0xd8, 0x60]);
        compound.extend_from_slice(&[4, 0xff, 0xf8, 0, 0x01, 0x00, 0, 0, 0, 0]);
        // A run-length chunk: 3 packets with small deltas, from 10.
        compound.extend_from_slice(&[0x8f, 205, 0, 6, 0, 0, 0, 1, 0, 0, 0, 9]);
        compound.extend_from_slice(&[0, 10, 0, 3, 0, 0, 1, 0, 0x20, 3, 4, 4, 4, 0, 0, 0]);
        // REMB: skipped.
        compound.extend_from_slice(&[0x8f, 206, 0, 2, 0, 0, 0, 1, 0, 0, 0, 0]);

        let packets: Vec<Feedback> = read(&compound).map(Result::unwrap).collect();
        assert_eq!(packets.len(), 5);
        let Feedback::Nack(nack) = packets[0] else { panic!("{:?}", packets[0]) };
        assert_eq!((nack.media_ssrc, nack.lost().collect::<Vec<_>>()), (9, vec![65535, 0, 15]));
        let Feedback::FullIntraRequest(fir) = packets[1] else { panic!("{:?}", packets[1]) };
        assert_eq!(fir.ssrcs().collect::<Vec<_>>(), vec![7, 8]);
        let Feedback::TransportWide(twcc) = packets[2] else { panic!("{:?}", packets[2]) };
        assert_eq!((twcc.reference_time_us, twcc.feedback_count), (-64_000, 9));
        let statuses: Vec<(u16, Option<i64>)> = twcc.packets().map(|s| (s.seq, s.arrival_us)).collect();
        assert_eq!(
            statuses,
            vec![(65534, Some(-63_000)), (65535, Some(-65_000)), (0, None), (1, Some(-65_000)), (2, Some(-1_000))]
        );
        let Feedback::TransportWide(run) = packets[3] else { panic!("{:?}", packets[3]) };
        let times: Vec<Option<i64>> = run.packets().map(|s| s.arrival_us).collect();
        assert_eq!((run.base_seq, times), (10, vec![Some(65_000), Some(66_000), Some(67_000)]));
        assert_eq!(packets[4], Feedback::Other { packet_type: 206, format: 15 });
    }

    #[test]
    fn a_malformed_packet_ends_the_reading_with_an_error() {
        // A receiver report that says it holds a block but is cut short.
        let short_report = [0x81, 201, 0, 1, 0, 0, 0, 1];
        assert_eq!(read(&short_report).collect::<Vec<_>>(), vec![Err(RtcpError::Truncated(201))]);
        // A length past the end, after a good PLI.
        let mut compound = vec![0x81, 206, 0, 2, 0, 0, 0, 1, 0, 0, 0, 5];
        compound.extend_from_slice(&[0x81, 201, 0, 9, 0, 0, 0, 1]);
        let read_back: Vec<_> = read(&compound).collect();
        assert_eq!(read_back, vec![Ok(Feedback::PictureLoss { media_ssrc: 5 }), Err(RtcpError::Header)]);
        // TWCC whose chunks promise more deltas than there are.
        let twcc = [0x8f, 205, 0, 5, 0, 0, 0, 1, 0, 0, 0, 9, 0, 0, 0, 4, 0, 0, 0, 0, 0x40, 4, 1, 0];
        assert_eq!(read(&twcc).collect::<Vec<_>>(), vec![Err(RtcpError::Truncated(205))]);
        // Padding longer than the packet; a version that is not 2.
        assert_eq!(read(&[0xa0, 201, 0, 1, 0, 0, 0, 9]).next(), Some(Err(RtcpError::Header)));
        assert_eq!(read(&[0x40, 201, 0, 1, 0, 0, 0, 0]).next(), Some(Err(RtcpError::Header)));
    }
}
