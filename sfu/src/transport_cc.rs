//! Transport-wide sequence numbers for the packets the SFU sends a subscriber itself
//! (draft-holmer-rmcat-transport-wide-cc-extensions-01), and what the subscriber's
//! feedback says of them: when each one left and when (or whether) it arrived, for the
//! bandwidth estimate ([`crate::bandwidth`]).
//!
//! The numbers are one series per session, shared by all its streams: media,
//! retransmissions and padding.

use std::time::{Duration, Instant};

use crate::rtcp_feedback::TransportWide;

/// Packets remembered until their feedback comes, by number (a power of two): feedback
/// is sent every 50–100 ms, so this covers a second or more at 2,000 packets a second.
const REMEMBERED: usize = 2048;
/// Feedback on a packet older than this is not believed (a number from a wrap ago).
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
    /// Where send times count from.
    epoch: Option<Instant>,
    /// By number modulo its length, written once per packet and never searched: a
    /// session's packets touch one entry each (the SFU sends to hundreds of sessions in
    /// turn, so what it reads per packet is a cache miss).
    sent: Vec<Sent>,
}

/// 12 bytes a packet.
#[derive(Debug, Clone, Copy, Default)]
struct Sent {
    /// The number's low 32 bits, to tell an entry from one a wrap of the ring older.
    seq: u32,
    /// µs since the epoch, wrapping (after 71 minutes; only differences are used).
    at_us: u32,
    size: u16,
    padding: bool,
}

impl TransportSequence {
    /// The number for a packet about to go out (its 16 low bits go in the header
    /// extension); `size` is what it takes on the wire once protected.
    pub fn number(&mut self, now: Instant, size: usize, padding: bool) -> u16 {
        let seq = self.next;
        self.next += 1;
        let epoch = *self.epoch.get_or_insert(now);
        if self.sent.is_empty() {
            self.sent = vec![Sent::default(); REMEMBERED];
        }
        self.sent[seq as usize % REMEMBERED] = Sent {
            seq: seq as u32,
            at_us: now.saturating_duration_since(epoch).as_micros() as u32,
            size: size.min(usize::from(u16::MAX)) as u16,
            padding,
        };
        seq as u16
    }

    /// What a feedback packet says of the packets sent here, in number order; numbers it
    /// names that were never sent (or are long forgotten) are left out.
    pub fn read_feedback(&self, now: Instant, feedback: &TransportWide, results: &mut Vec<PacketResult>) {
        let Some(epoch) = self.epoch else { return };
        let now_us = now.saturating_duration_since(epoch).as_micros() as u32;
        // The 16-bit base, extended to the number nearest the newest sent.
        let newest = self.next.saturating_sub(1);
        let behind = (newest as u16).wrapping_sub(feedback.base_seq);
        let Some(base) = newest.checked_sub(u64::from(behind)) else { return };
        for (offset, status) in feedback.packets().enumerate() {
            let seq = base + offset as u64;
            if seq > newest {
                break;
            }
            let sent = self.sent[seq as usize % REMEMBERED];
            let age = Duration::from_micros(u64::from(now_us.wrapping_sub(sent.at_us)));
            if sent.seq != seq as u32 || newest - seq >= REMEMBERED as u64 || age > REMEMBER_FOR {
                continue;
            }
            results.push(PacketResult {
                seq,
                sent: now.checked_sub(age).unwrap_or(epoch),
                size: usize::from(sent.size),
                arrival_us: status.arrival_us,
                padding: sent.padding,
            });
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

    fn results(sequence: &TransportSequence, now: Instant, packet: &[u8]) -> Vec<PacketResult> {
        let mut results = Vec::new();
        for read in rtcp_feedback::read(packet) {
            if let Ok(Feedback::TransportWide(twcc)) = read {
                sequence.read_feedback(now, &twcc, &mut results);
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
        let got = results(&sequence, start + Duration::from_millis(50), &feedback(65_535, &[Some(4), None, Some(8)]));
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
        assert!(results(&sequence, start, &feedback(0, &[Some(1)])).is_empty(), "nothing sent");
        sequence.number(start, 100, false);
        sequence.number(start, 100, false);
        // Feedback on 0..=4: only 0 and 1 were sent.
        let got = results(&sequence, start, &feedback(0, &[Some(1); 5]));
        assert_eq!(got.iter().map(|r| r.seq).collect::<Vec<_>>(), [0, 1]);
        // Two seconds on, both are forgotten.
        let later = start + Duration::from_millis(2001);
        sequence.number(later, 100, false);
        let got = results(&sequence, later, &feedback(0, &[Some(1); 3]));
        assert_eq!(got.iter().map(|r| r.seq).collect::<Vec<_>>(), [2]);
        // A ring's length on, the first entries hold newer packets: feedback on an old
        // number finds nothing.
        for _ in 0..REMEMBERED {
            sequence.number(later, 100, false);
        }
        let got = results(&sequence, later, &feedback(2, &[Some(1); 2]));
        assert_eq!(got.iter().map(|r| r.seq).collect::<Vec<_>>(), [3], "2 is a ring ago; 3 is the oldest kept");
    }
}
