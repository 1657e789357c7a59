//! Sender reports (RFC 3550 section 6.4.1) for streams the SFU sends itself, written
//! over the ones str0m puts in its outgoing RTCP: str0m declares those streams, so it
//! reports them, but with its own counts (nothing sent) and RTP time. A receiver pairs
//! each report's NTP and RTP times to synchronise audio and video, so a report must say
//! what was sent. The NTP time str0m wrote stays: it is the report's moment on the clock
//! str0m's own reports (the video's) use, so audio and video keep one clock.

const SENDER_REPORT: u8 = 200;
/// Header, SSRC and the sender information: NTP time, RTP time, packets, octets.
const SENDER_REPORT_LEN: usize = 28;

/// What a sender report says of one stream, besides its NTP time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SenderInfo {
    /// The stream's RTP time at the report's moment.
    pub rtp_time: u32,
    pub packets: u32,
    pub octets: u32,
}

/// Overwrites, in a plain compound RTCP packet, the RTP time and counts of each sender
/// report whose SSRC `info` knows; returns how many. From a malformed header on, the
/// packet is left as it is.
pub fn rewrite(compound: &mut [u8], mut info: impl FnMut(u32) -> Option<SenderInfo>) -> usize {
    let (mut at, mut rewritten) = (0, 0);
    while let Some(header) = compound.get(at..at + 4) {
        let len = 4 + 4 * usize::from(u16::from_be_bytes([header[2], header[3]]));
        if header[0] >> 6 != 2 || at + len > compound.len() {
            break;
        }
        if header[1] == SENDER_REPORT && len >= SENDER_REPORT_LEN {
            let report = &mut compound[at..at + SENDER_REPORT_LEN];
            let ssrc = u32::from_be_bytes([report[4], report[5], report[6], report[7]]);
            if let Some(info) = info(ssrc) {
                report[16..20].copy_from_slice(&info.rtp_time.to_be_bytes());
                report[20..24].copy_from_slice(&info.packets.to_be_bytes());
                report[24..28].copy_from_slice(&info.octets.to_be_bytes());
                rewritten += 1;
            }
        }
        at += len;
    }
    rewritten
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session_pair::{SessionPair, Side, rtp_packet};

    /// A sender report with a reception report block, then an SDES chunk header.
    fn compound(ssrc: u32) -> Vec<u8> {
        let mut packet = vec![0x81, 200, 0, 12];
        packet.extend_from_slice(&ssrc.to_be_bytes());
        packet.extend_from_slice(&[0xaa; 20]);
        packet.extend_from_slice(&[0xbb; 24]);
        packet.extend_from_slice(&[0x81, 202, 0, 1, 0, 0, 0, 1]);
        packet
    }

    #[test]
    fn rewrites_only_the_sender_information_of_known_streams() {
        let info = SenderInfo { rtp_time: 9, packets: 10, octets: 11 };
        let mut packet = compound(5);
        packet.extend_from_slice(&compound(6));
        let original = packet.clone();
        assert_eq!(rewrite(&mut packet, |ssrc| (ssrc == 6).then_some(info)), 1);
        assert_eq!(packet[..76], original[..76], "the other stream's report and the NTP time are untouched");
        assert_eq!(packet[76..88], [0, 0, 0, 9, 0, 0, 0, 10, 0, 0, 0, 11]);
        assert_eq!(packet[88..], original[88..], "its reception report and what follows are untouched");
        // A length past the end: nothing after it is read.
        let mut bad = vec![0x80, 200, 0, 40];
        bad.extend_from_slice(&compound(6));
        assert_eq!(rewrite(&mut bad, |_| Some(info)), 0);
    }

    /// A str0m receiver takes the report the SFU wrote over str0m's, under str0m's index.
    #[test]
    fn a_str0m_receiver_reads_the_rewritten_report() {
        let SessionPair { mut a, mut b, mid, now, .. } = SessionPair::connected();
        // Both from A's own keys: one protects what the SFU sends, one rewrites str0m's RTCP.
        let (a_sends, _) = a.keys.contexts().unwrap().unwrap();
        let (mut rewriter, _) = a.keys.contexts().unwrap().unwrap();
        let ssrc = *a.rtc.direct_api().stream_tx_by_mid(mid, None).unwrap().ssrc();
        let pt = **a.rtc.media(mid).unwrap().remote_pts().first().unwrap();
        let info = SenderInfo { rtp_time: 123_456, packets: 3, octets: 24 };
        a.rewrite_rtcp = Some(Box::new(move |datagram: &mut Vec<u8>| {
            rewriter
                .rewrite_rtcp(datagram, |plain| {
                    rewrite(plain, |reported| (reported == ssrc).then_some(info));
                })
                .unwrap();
        }));
        let a_address = a.address;
        let send = move |b: &mut Side, seq: u16, now| {
            let mut packet = rtp_packet(pt, seq, ssrc, &[], &[0x10, 0, 0x9d, 1, 0x2a, 7, 7, 7]);
            a_sends.protect_rtp(&mut packet, 0).unwrap();
            b.deliver(a_address, &packet, now);
        };
        for seq in 1..=3 {
            send(&mut b, seq, now);
        }
        let now = SessionPair::run_both(&mut a, &mut b, now, 600);
        assert!(!a.sent_rtcp.is_empty(), "A reported");
        send(&mut b, 4, now);
        SessionPair::run_both(&mut a, &mut b, now, 1);
        let reported = b.last_sender_info.expect("B read a sender report");
        assert_eq!(
            (reported.rtp_time.numer(), reported.sender_packet_count, reported.sender_octet_count),
            (123_456, 3, 24)
        );
    }
}
