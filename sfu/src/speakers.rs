//! Active speakers from the audio-level header extension (RFC 6464), with time passed in.
//!
//! Each publisher's packets report a level in -dBov (0 loudest, 127 silence). Over a
//! window, a publisher speaks when enough of its packets were voice (loud enough, or
//! flagged by the sender's voice activity detection); speakers are ranked by their mean
//! loudness. The list is reported only when it changes, at most once per window.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::protocol::AvatarId;

/// Quieter than this (in -dBov) is not speech.
const VOICE_LEVEL: u8 = 50;
/// The share of a window's packets that must be voice.
const VOICE_SHARE: f32 = 0.3;
pub const WINDOW: Duration = Duration::from_millis(300);
/// At most this many speakers are reported.
const MAX_SPEAKERS: usize = 3;

#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    packets: u32,
    voiced: u32,
    loudness: u32,
}

#[derive(Debug)]
pub struct Speakers {
    tallies: HashMap<AvatarId, Tally>,
    window_start: Instant,
    reported: Vec<AvatarId>,
}

impl Speakers {
    pub fn new(now: Instant) -> Speakers {
        Speakers { tallies: HashMap::new(), window_start: now, reported: Vec::new() }
    }

    /// One audio packet's level (-dBov) and voice-activity flag.
    pub fn observe(&mut self, avatar: AvatarId, level: i8, voice_activity: Option<bool>) {
        let attenuation = level.unsigned_abs().min(127);
        let tally = self.tallies.entry(avatar).or_default();
        tally.packets += 1;
        tally.loudness += u32::from(127 - attenuation);
        if voice_activity.unwrap_or(attenuation <= VOICE_LEVEL) && attenuation <= VOICE_LEVEL {
            tally.voiced += 1;
        }
    }

    /// A publisher left: it stops speaking at the next window.
    pub fn forget(&mut self, avatar: AvatarId) {
        self.tallies.remove(&avatar);
    }

    /// At the end of each window: the new speaker list, if it changed.
    pub fn poll(&mut self, now: Instant) -> Option<Vec<AvatarId>> {
        if now.saturating_duration_since(self.window_start) < WINDOW {
            return None;
        }
        self.window_start = now;
        let mut speaking: Vec<(AvatarId, u32)> = self
            .tallies
            .iter()
            .filter(|(_, tally)| tally.packets > 0 && tally.voiced as f32 >= VOICE_SHARE * tally.packets as f32)
            .map(|(avatar, tally)| (*avatar, tally.loudness / tally.packets))
            .collect();
        speaking.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        speaking.truncate(MAX_SPEAKERS);
        self.tallies.clear();
        let speakers: Vec<AvatarId> = speaking.into_iter().map(|(avatar, _)| avatar).collect();
        if speakers == self.reported {
            return None;
        }
        self.reported = speakers.clone();
        Some(speakers)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_loudest_voiced_publishers_are_reported_when_the_list_changes() {
        let start = Instant::now();
        let mut speakers = Speakers::new(start);
        for _ in 0..15 {
            speakers.observe(1, -30, None);
            speakers.observe(2, -10, Some(true));
            speakers.observe(3, -100, None);
        }
        assert_eq!(speakers.poll(start + Duration::from_millis(100)), None, "the window is not over");
        assert_eq!(speakers.poll(start + WINDOW), Some(vec![2, 1]), "3 is silent");
        for _ in 0..15 {
            speakers.observe(1, -30, None);
            speakers.observe(2, -10, None);
        }
        assert_eq!(speakers.poll(start + WINDOW * 2), None, "unchanged");
        for _ in 0..15 {
            speakers.observe(1, -30, Some(false));
        }
        assert_eq!(speakers.poll(start + WINDOW * 3), Some(vec![]), "VAD says no, and 2 went quiet");
    }
}
