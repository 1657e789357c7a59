//! What the SFU keeps to answer subscribers' NACKs: one history per published stream
//! (the publisher's packets, kept once however many subscribers receive them), and per
//! subscriber stream a log of what each sequence number it was sent stood for (which
//! packet of which layer, rewritten how), a few bytes a packet.
//!
//! A retransmission is the publisher's packet again, rewritten as it was the first time:
//! memory for the payloads grows with what is published, not with subscribers × video rate.
//!
//! The history keeps a second of packets: a NACK comes about a round trip after the loss,
//! and a retransmission older than a few round trips arrives after the receiver gave up
//! on the frame (and asked for a keyframe).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::vp8_munger::Vp8Numbers;

/// How long a published packet is kept.
const KEEP_FOR: Duration = Duration::from_secs(1);

/// At most this many packets per published stream, however fast it sends.
const MAX_KEPT: usize = 1024;

/// Entries in a subscriber stream's log (a power of two: indexed by sequence number).
const LOG_LEN: usize = 512;

/// A published stream's recent packets, oldest first.
#[derive(Debug, Default)]
pub struct PacketHistory {
    kept: VecDeque<Kept>,
}

#[derive(Debug)]
struct Kept {
    /// The publisher's extended sequence number.
    seq: u64,
    arrived: Instant,
    payload: Arc<[u8]>,
}

impl PacketHistory {
    /// Keeps a packet's payload (str0m's, shared: no copy). Packets that aged out make
    /// room.
    pub fn keep(&mut self, seq: u64, now: Instant, payload: Arc<[u8]>) {
        while let Some(oldest) = self.kept.front()
            && (self.kept.len() >= MAX_KEPT || now.saturating_duration_since(oldest.arrived) > KEEP_FOR)
        {
            self.kept.pop_front();
        }
        // Kept in sequence order: a late packet goes where it belongs.
        let at = match self.kept.back() {
            Some(newest) if newest.seq > seq => self.kept.partition_point(|k| k.seq < seq),
            _ => self.kept.len(),
        };
        if self.kept.get(at).is_some_and(|k| k.seq == seq) {
            // A duplicate (a retransmission the publisher sent twice): the first stays.
            return;
        }
        self.kept.insert(at, Kept { seq, arrived: now, payload });
    }

    /// The payload of the publisher's packet `seq`, if still kept.
    pub fn payload(&self, seq: u64) -> Option<&[u8]> {
        let first = self.kept.front()?.seq;
        // In order without gaps, the packet is at its distance from the first.
        let guess = usize::try_from(seq.checked_sub(first)?).ok()?;
        match self.kept.get(guess) {
            Some(kept) if kept.seq == seq => Some(&kept.payload),
            _ => {
                let at = self.kept.partition_point(|k| k.seq < seq);
                self.kept.get(at).filter(|k| k.seq == seq).map(|k| &*k.payload)
            }
        }
    }

    pub fn len(&self) -> usize {
        self.kept.len()
    }

    pub fn is_empty(&self) -> bool {
        self.kept.is_empty()
    }
}

/// What one packet sent to a subscriber was: enough to send it again from the
/// publisher's history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SentPacket {
    /// The sequence number the subscriber got (extended).
    pub seq: u64,
    /// The publisher's layer (its index in the track's layers) and sequence number.
    pub layer: u8,
    pub source_seq: u64,
    pub pt: u8,
    /// Its retransmissions' payload type, if the subscriber takes them.
    pub rtx_pt: Option<u8>,
    pub timestamp: u32,
    pub marker: bool,
    pub vp8: Option<Vp8Numbers>,
    /// When it was last sent again, so a NACK repeated within a round trip is not
    /// answered twice.
    pub resent: Option<Instant>,
}

/// A subscriber stream's recently sent packets, by sequence number.
#[derive(Debug, Default)]
pub struct SentLog {
    /// Allocated at the first packet (audio never needs one).
    entries: Vec<Option<SentPacket>>,
}

impl SentLog {
    pub fn record(&mut self, sent: SentPacket) {
        if self.entries.is_empty() {
            self.entries = vec![None; LOG_LEN];
        }
        self.entries[sent.seq as usize % LOG_LEN] = Some(sent);
    }

    /// The packet sent with the 16-bit sequence number a NACK names, if it is recent.
    pub fn find(&mut self, seq: u16) -> Option<&mut SentPacket> {
        let entry = self.entries.get_mut(usize::from(seq) % LOG_LEN)?.as_mut()?;
        (entry.seq as u16 == seq).then_some(entry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_history_finds_its_packets_in_and_out_of_order_and_forgets_after_a_second() {
        let start = Instant::now();
        let mut history = PacketHistory::default();
        for seq in [10, 11, 13, 14] {
            history.keep(seq, start, vec![seq as u8; 3].into());
        }
        // 12 comes late, and 13 twice.
        history.keep(12, start, vec![12; 3].into());
        history.keep(13, start, vec![99; 3].into());
        for seq in 10..=14 {
            assert_eq!(history.payload(seq), Some(&[seq as u8; 3][..]), "{seq}");
        }
        assert_eq!(history.payload(9), None);
        assert_eq!(history.len(), 5, "the duplicate is not kept twice");
        assert_eq!(history.payload(15), None);
        // A second and a bit later, the old ones have gone.
        let later = start + Duration::from_millis(1001);
        history.keep(15, later, vec![15; 3].into());
        assert_eq!(history.len(), 1);
        assert_eq!(history.payload(12), None);
        assert_eq!(history.payload(15), Some(&[15; 3][..]));
    }

    #[test]
    fn a_fast_stream_keeps_at_most_its_cap() {
        let now = Instant::now();
        let mut history = PacketHistory::default();
        for seq in 0..(MAX_KEPT as u64 + 100) {
            history.keep(seq, now, Arc::from(&[][..]));
        }
        assert_eq!(history.len(), MAX_KEPT);
        assert!(history.payload(99).is_none() && history.payload(100).is_some());
    }

    #[test]
    fn a_log_finds_what_a_nack_names_until_it_is_overwritten() {
        let mut log = SentLog::default();
        assert!(log.find(5).is_none(), "nothing sent");
        let sent = |seq: u64| SentPacket {
            seq,
            layer: 1,
            source_seq: seq + 7,
            pt: 96,
            rtx_pt: Some(97),
            timestamp: 3000,
            marker: false,
            vp8: None,
            resent: None,
        };
        // Around the 16-bit wrap.
        for seq in 65_530..65_540 {
            log.record(sent(seq));
        }
        assert_eq!(log.find(65_535).map(|s| s.source_seq), Some(65_542));
        assert_eq!(log.find(2).map(|s| s.seq), Some(65_538), "the NACK's 16 bits, extended");
        assert!(log.find(20).is_none());
        log.record(sent(65_538 + LOG_LEN as u64));
        assert!(log.find(2).is_none(), "overwritten by a packet a log length later");
    }
}
