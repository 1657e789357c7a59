//! Media policy: how each zone's media flows, decided by the server alone.
//!
//! A zone is silent (no media), a mesh (peer-to-peer links, each relayed through TURN
//! when either side cannot connect directly) or on the SFU. The zone goes to the SFU as
//! soon as it holds more people than its threshold (if an SFU is configured), and comes
//! back to the mesh only once it has stayed at or below `threshold - hysteresis_people`
//! for `hysteresis_hold`: a room hovering around its threshold does not flap.
//!
//! Pure logic with time passed in; the engine keeps one [`ZonePolicy`] per zone.

use std::time::{Duration, Instant};

use isoplane_world_format::ZoneKind;
use serde::Deserialize;

/// Thresholds the server operator may tune.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PolicyConfig {
    /// Open zones (proximity talk) go to the SFU above this many people.
    pub open_sfu_threshold: u32,
    /// Private zones go to the SFU above this many people.
    pub private_sfu_threshold: u32,
    /// Stages go to the SFU above this many people.
    pub stage_sfu_threshold: u32,
    /// How far below the threshold a zone must fall before leaving the SFU.
    pub hysteresis_people: u32,
    /// How long it must stay there.
    #[serde(with = "seconds")]
    pub hysteresis_hold: Duration,
    /// The most peer links anyone gets in a mesh (a crowd the SFU does not take, when
    /// none is configured or none has room): the nearest, keeping the links that exist.
    pub mesh_max_peers: u32,
}

impl Default for PolicyConfig {
    fn default() -> PolicyConfig {
        PolicyConfig {
            open_sfu_threshold: 12,
            private_sfu_threshold: 6,
            stage_sfu_threshold: 4,
            hysteresis_people: 1,
            hysteresis_hold: Duration::from_secs(10),
            mesh_max_peers: 16,
        }
    }
}

/// Durations in config files are whole seconds.
mod seconds {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        u64::deserialize(deserializer).map(Duration::from_secs)
    }
}

/// How a zone's media flows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ZoneMode {
    Silent,
    Mesh,
    Sfu,
}

/// The policy state of one zone.
#[derive(Debug, Clone)]
pub struct ZonePolicy {
    mode: ZoneMode,
    /// Since when the zone has been low enough to leave the SFU.
    low_since: Option<Instant>,
}

impl Default for ZonePolicy {
    fn default() -> ZonePolicy {
        ZonePolicy { mode: ZoneMode::Mesh, low_since: None }
    }
}

impl ZonePolicy {
    pub fn mode(&self) -> ZoneMode {
        self.mode
    }

    /// The people count above which this kind of zone goes to the SFU.
    pub fn threshold(kind: &ZoneKind, config: &PolicyConfig) -> u32 {
        match kind {
            ZoneKind::Open { .. } => config.open_sfu_threshold,
            ZoneKind::MeetingRoom { sfu_threshold, .. } => *sfu_threshold,
            ZoneKind::Stage { .. } => config.stage_sfu_threshold,
            ZoneKind::Private { .. } => config.private_sfu_threshold,
            ZoneKind::Silent => u32::MAX,
        }
    }

    /// Updates the decision for `people` in the zone at `now`; returns the mode. A zone
    /// that `needs_sfu` (recorded, or a broadcaster's stream) is on it whatever its head
    /// count.
    pub fn update(
        &mut self,
        kind: &ZoneKind,
        people: usize,
        needs_sfu: bool,
        sfu_available: bool,
        config: &PolicyConfig,
        now: Instant,
    ) -> ZoneMode {
        if matches!(kind, ZoneKind::Silent) {
            self.mode = ZoneMode::Silent;
            return self.mode;
        }
        let people = u32::try_from(people).unwrap_or(u32::MAX);
        let threshold = ZonePolicy::threshold(kind, config);
        self.mode = match self.mode {
            _ if !sfu_available => ZoneMode::Mesh,
            _ if needs_sfu => {
                self.low_since = None;
                ZoneMode::Sfu
            }
            ZoneMode::Sfu => {
                if people <= threshold.saturating_sub(config.hysteresis_people) {
                    let since = *self.low_since.get_or_insert(now);
                    if now.duration_since(since) >= config.hysteresis_hold { ZoneMode::Mesh } else { ZoneMode::Sfu }
                } else {
                    self.low_since = None;
                    ZoneMode::Sfu
                }
            }
            ZoneMode::Mesh | ZoneMode::Silent if people > threshold => ZoneMode::Sfu,
            ZoneMode::Mesh | ZoneMode::Silent => ZoneMode::Mesh,
        };
        if self.mode != ZoneMode::Sfu {
            self.low_since = None;
        }
        self.mode
    }

    /// When a zone on its way down should be looked at again (the end of its hold).
    pub fn next_check(&self, config: &PolicyConfig) -> Option<Instant> {
        self.low_since.map(|since| since + config.hysteresis_hold)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn room() -> ZoneKind {
        ZoneKind::MeetingRoom { sfu_threshold: 4, capacity: None }
    }

    #[test]
    fn a_meeting_room_goes_to_the_sfu_above_its_threshold() {
        let (config, t0) = (PolicyConfig::default(), Instant::now());
        let mut policy = ZonePolicy::default();
        for people in 0..=4 {
            assert_eq!(policy.update(&room(), people, false, true, &config, t0), ZoneMode::Mesh);
        }
        assert_eq!(policy.update(&room(), 5, false, true, &config, t0), ZoneMode::Sfu);
    }

    #[test]
    fn it_comes_back_only_after_staying_low_for_the_hold() {
        let (config, t0) = (PolicyConfig::default(), Instant::now());
        let mut policy = ZonePolicy::default();
        policy.update(&room(), 5, false, true, &config, t0);
        // At the threshold itself (inside the hysteresis band): stays on the SFU.
        assert_eq!(policy.update(&room(), 4, false, true, &config, t0 + Duration::from_secs(60)), ZoneMode::Sfu);
        // Below the band, but not for long enough.
        let low = t0 + Duration::from_secs(61);
        assert_eq!(policy.update(&room(), 3, false, true, &config, low), ZoneMode::Sfu);
        assert_eq!(policy.next_check(&config), Some(low + config.hysteresis_hold));
        assert_eq!(policy.update(&room(), 3, false, true, &config, low + Duration::from_secs(9)), ZoneMode::Sfu);
        // Someone came back up in between: the hold starts over.
        assert_eq!(policy.update(&room(), 5, false, true, &config, low + Duration::from_secs(9)), ZoneMode::Sfu);
        assert_eq!(policy.update(&room(), 3, false, true, &config, low + Duration::from_secs(10)), ZoneMode::Sfu);
        assert_eq!(policy.update(&room(), 3, false, true, &config, low + Duration::from_secs(19)), ZoneMode::Sfu);
        assert_eq!(policy.update(&room(), 3, false, true, &config, low + Duration::from_secs(20)), ZoneMode::Mesh);
    }

    #[test]
    fn silent_zones_have_no_media_and_no_sfu_means_mesh() {
        let (config, t0) = (PolicyConfig::default(), Instant::now());
        let mut policy = ZonePolicy::default();
        assert_eq!(policy.update(&ZoneKind::Silent, 50, false, true, &config, t0), ZoneMode::Silent);
        let mut policy = ZonePolicy::default();
        assert_eq!(policy.update(&room(), 50, false, false, &config, t0), ZoneMode::Mesh);
    }
}
