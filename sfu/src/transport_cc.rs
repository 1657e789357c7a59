//! Transport-wide sequence numbers for the packets the SFU sends a subscriber itself
//! (draft-holmer-rmcat-transport-wide-cc-extensions-01), and what the subscriber's
//! feedback says of them: when each one left and when (or whether) it arrived, for the
//! bandwidth estimate ([`crate::bandwidth`]).
//!
//! The numbers are one series per session, shared by all its streams: media,
//! retransmissions and padding.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::rtcp_feedback::TransportWide;

/// Packets remembered until their feedback comes: feedback is sent every 50–100 ms, so
/// two seconds is plenty; past this count the oldest go.
const MAX_REMEMBERED: usize = 4096;
const REMEMBER_FOR: Duration = Duration::from_secs(2);

/// A sent packet as its feedback tells it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PacketResult {
    pub seq: u64,
    pub sent: Instant,
    /// Bytes on the wire (the SRTP packet).
    pub size: usize,
    /// On the receiver's clock, in µs; `None`: reported lost.
    pub arrival_us: Option<i64>,
    /// Sent as padding to find room (crate::bandwidth counts it as sent, like media).
    pub padding: bool,
}

#[derive(Debug, Default)]
pub struct TransportSequence {
    /// The next number to give, extended.
    pub(crate) next: u64,
    /// Sent packets waiting for feedback, in number order.
    sent: VecDeque<(u64, Instant, u16, bool)>,
}

impl TransportSequence {
    /// The number for a packet about to go out (its 16 low bits go in the header
    /// extension); `size` is what it takes on the wire once protected.
    pub fn number(&mut self, now: Instant, size: usize, padding: bool) -> u16 {
        let seq = self.next;
        self.next += 1;
        while let Some((_, at, _, _)) = self.sent.front()
            && (self.sent.len() >= MAX_REMEMBERED || now.saturating_duration_since(*at) > REMEMBER_FOR)
        {
            self.sent.pop_front();
        }
        self.sent.push_back((seq, now, size.min(usize::from(u16::MAX)) as u16, padding));
        seq as u16
    }

    /// What a feedback packet says of the packets sent here, in number order; numbers it
    /// names that were never sent (or are long forgotten) are left out.
    pub fn read_feedback(&self, feedback: &TransportWide, results: &mut Vec<PacketResult>) {
        let Some(&(first, ..)) = self.sent.front() else { return };
        // The 16-bit base, extended to the number nearest the newest sent.
        let newest = self.next.saturating_sub(1);
        let behind = (newest as u16).wrapping_sub(feedback.base_seq);
        let Some(base) = newest.checked_sub(u64::from(behind)) else { return };
        for (offset, status) in feedback.packets().enumerate() {
            let seq = base + offset as u64;
            let Some(index) = seq.checked_sub(first).and_then(|i| usize::try_from(i).ok()) else { continue };
            let Some(&(known, sent, size, padding)) = self.sent.get(index) else { break };
            debug_assert_eq!(known, seq, "the remembered packets are consecutive");
            results.push(PacketResult { seq, sent, size: usize::from(size), arrival_us: status.arrival_us, padding });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtcp_feedback::{self, Feedback};

    /// A transport-wide feedback packet: `base`, then for each packet its arrival delta
    /// in 250 µs units (one byte), or `None` for lost; as one status vector chunk each 7.
    fn feedback(base: u16, deltas: &[Option<u8>]) -> Vec<u8> {
        let mut fci = Vec::new();
        fci.extend_from_slice(&base.to_be_bytes());
        fci.extend_from_slice(&(deltas.len() as u16).to_be_bytes());
        fci.extend_from_slice(&[0, 0, 1, 7]);
        for chunk in deltas.chunks(7) {
            // Two-bit symbols: 1 received (small delta), 0 lost.
            let mut bits: u16 = 0b11 << 14;
            for (i, delta) in chunk.iter().enumerate() {
                bits |= u16::from(delta.is_some()) << (12 - 2 * i);
            }
            fci.extend_from_slice(&bits.to_be_bytes());
        }
        fci.extend(deltas.iter().flatten());
        while fci.len() % 4 != 0 {
            fci.push(0);
        }
        let mut packet = vec![0x80 | 15, 205];
        packet.extend_from_slice(&((2 + fci.len() / 4) as u16).to_be_bytes());
        packet.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0]);
        packet.extend(fci);
        packet
    }

    fn results(sequence: &TransportSequence, packet: &[u8]) -> Vec<PacketResult> {
        let mut results = Vec::new();
        for read in rtcp_feedback::read(packet) {
            if let Ok(Feedback::TransportWide(twcc)) = read {
                sequence.read_feedback(&twcc, &mut results);
            }
        }
        results
    }

    #[test]
    fn feedback_is_matched_to_what_was_sent_across_the_16_bit_wrap() {
        let start = Instant::now();
        let mut sequence = TransportSequence { next: 65_534, ..Default::default() };
        let numbers: Vec<u16> =
            (0..4).map(|i| sequence.number(start + Duration::from_millis(i), 1000 + i as usize, i == 3)).collect();
        assert_eq!(numbers, [65_534, 65_535, 0, 1]);
        let got = results(&sequence, &feedback(65_535, &[Some(4), None, Some(8)]));
        assert_eq!(got.len(), 3);
        assert_eq!((got[0].seq, got[0].size, got[0].sent), (65_535, 1001, start + Duration::from_millis(1)));
        // The reference time is 64 ms; deltas add up.
        assert_eq!(got[0].arrival_us, Some(64_000 + 1000));
        assert_eq!(got[1].arrival_us, None, "lost");
        assert_eq!((got[2].seq, got[2].arrival_us, got[2].padding), (65_537, Some(64_000 + 3000), true));
    }

    #[test]
    fn numbers_never_sent_or_forgotten_are_left_out() {
        let start = Instant::now();
        let mut sequence = TransportSequence::default();
        assert!(results(&sequence, &feedback(0, &[Some(1)])).is_empty(), "nothing sent");
        sequence.number(start, 100, false);
        sequence.number(start, 100, false);
        // Feedback on 0..=4: only 0 and 1 were sent.
        let got = results(&sequence, &feedback(0, &[Some(1); 5]));
        assert_eq!(got.iter().map(|r| r.seq).collect::<Vec<_>>(), [0, 1]);
        // Two seconds on, both are forgotten.
        sequence.number(start + Duration::from_millis(2001), 100, false);
        let got = results(&sequence, &feedback(0, &[Some(1); 3]));
        assert_eq!(got.iter().map(|r| r.seq).collect::<Vec<_>>(), [2]);
    }
}
