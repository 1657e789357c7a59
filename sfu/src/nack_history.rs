//! How far back each subscriber's stream keeps sent packets to answer its NACKs: sized by
//! that subscriber's round-trip time, as Janus sizes its NACK queue.
//!
//! A NACK comes about one round trip after the loss, and the receiver asks again each
//! round trip while the frame waits; a retransmission older than a few round trips
//! arrives after the receiver has given up on the frame (and asked for a keyframe). A
//! longer history only costs memory: an entry per packet per subscriber's stream, which
//! at 200 video packets a second is most of what a subscriber costs the SFU. So a
//! subscriber near the SFU keeps a quarter of a second, a far one up to a second.
//!
//! The history is emptied when its length changes (str0m starts a new one), so lengths
//! come in three steps, a longer one is taken as soon as the round trip asks for it, and
//! a shorter one only once the round trip is well inside it.
//!
//! A stream starts with the shortest, before the subscriber's first receiver report
//! measures its round trip (a second or two): that covers the first NACKs of a round trip
//! up to 200 ms, and a history that started long would fill with a second of packets per
//! stream whose memory the allocator keeps after the history shrinks (at 200 video
//! packets a second, nearly a third of what a participant costs).

use std::time::Duration;

/// The history's possible lengths, shortest first.
const STEPS: [Duration; 3] = [Duration::from_millis(250), Duration::from_millis(500), Duration::from_secs(1)];

/// Round trips a history covers.
const ROUND_TRIPS: u32 = 4;

/// At most this many packets, however long the history.
pub const MAX_PACKETS: usize = 512;

/// No resends once they pass this share of what is sent.
pub const RESEND_RATIO_CAP: Option<f32> = Some(0.15);

/// The length a stream starts with, before its round trip is known: the shortest.
pub const INITIAL: Duration = STEPS[0];

/// The history length for a subscriber whose round trip is `rtt`, given the one it has.
pub fn length_for(current: Duration, rtt: Duration) -> Duration {
    let needed = rtt.saturating_mul(ROUND_TRIPS);
    let longest = STEPS[STEPS.len() - 1];
    if needed > current {
        return STEPS.into_iter().find(|step| *step >= needed).unwrap_or(longest);
    }
    // Shorter only with room to spare: twice what the round trip needs.
    let roomy = needed.saturating_mul(2);
    STEPS.into_iter().find(|step| *step >= roomy).map_or(current, |step| step.min(current))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: fn(u64) -> Duration = Duration::from_millis;

    #[test]
    fn a_near_subscriber_keeps_a_quarter_second_and_a_far_one_a_second() {
        assert_eq!(INITIAL, MS(250), "before the round trip is known: the shortest");
        assert_eq!(length_for(INITIAL, MS(1)), MS(250));
        assert_eq!(length_for(INITIAL, MS(25)), MS(250));
        assert_eq!(length_for(INITIAL, MS(60)), MS(250));
        assert_eq!(length_for(INITIAL, MS(100)), MS(500), "400 ms needed");
        assert_eq!(length_for(INITIAL, MS(150)), MS(1000), "600 ms needed");
        assert_eq!(length_for(MS(1000), MS(100)), MS(1000), "400 ms needed: shorter only with twice that");
        assert_eq!(length_for(INITIAL, MS(400)), MS(1000), "never more than a second");
    }

    #[test]
    fn it_grows_at_once_and_shrinks_only_with_room_to_spare() {
        // 250 ms covers 4 round trips of 62 ms; 63 needs more.
        assert_eq!(length_for(MS(250), MS(62)), MS(250));
        assert_eq!(length_for(MS(250), MS(63)), MS(500));
        // Back at 60 ms: 500 ms stays (250 would need 31 ms or less).
        assert_eq!(length_for(MS(500), MS(60)), MS(500));
        assert_eq!(length_for(MS(500), MS(31)), MS(250));
        assert_eq!(length_for(MS(500), MS(126)), MS(1000));
    }
}
