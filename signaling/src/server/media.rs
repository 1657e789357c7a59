//! How the media settings reach the world engines: STUN/TURN access and the SFU nodes,
//! either the one configured SFU while it answers its health check, or the live nodes of
//! an SFU pool's directory. A background task follows either every second; zones on a
//! node that is gone fall back to peer-to-peer (relayed through TURN where needed).

use std::sync::Arc;
use std::time::Duration;

use super::world_task::WorldCommand;
use isoplane_service::redis_retry;
use isoplane_service::tasks::Tasks;

use super::{AppState, sfu_control};
use crate::auth::TokenKey;
use crate::config::Config;
use crate::engine::{MediaConfig, SfuConfig, SfuNode, TurnAccess};

pub(super) fn media_config(config: &Config) -> MediaConfig {
    let media = &config.media;
    MediaConfig {
        stun_urls: media.stun_urls.clone(),
        turn: media.turn_secret.as_ref().map(|secret| TurnAccess {
            urls: media.turn_urls.clone(),
            secret: secret.as_bytes().to_vec(),
            ttl: Duration::from_secs(media.turn_credential_ttl_seconds.unwrap_or(600)),
        }),
        sfu: media.sfu_secret.as_ref().map(|secret| SfuConfig {
            key: TokenKey::new(secret.as_bytes()),
            token_ttl: Duration::from_secs(300),
            // One configured SFU; with an SFU pool, the directory reports the nodes.
            nodes: media.sfu_url.iter().map(|url| static_sfu_node(url, media.sfu_control_url.as_deref())).collect(),
        }),
    }
}

/// The one configured SFU (no pool), if any.
pub(super) fn static_sfu(config: &Config) -> Option<SfuNode> {
    let media = &config.media;
    media.sfu_secret.as_ref()?;
    media.sfu_url.as_deref().map(|url| static_sfu_node(url, media.sfu_control_url.as_deref()))
}

/// The one SFU of a configuration without a pool.
fn static_sfu_node(url: &str, control_url: Option<&str>) -> SfuNode {
    let control_url =
        control_url.map(str::to_owned).or_else(|| sfu_control::control_base_from(url)).unwrap_or_default();
    SfuNode { id: "sfu".into(), url: url.to_owned(), control_url, participants: 0, capacity: u64::MAX }
}

/// How signaling reaches SFU control APIs, when SFUs are configured.
pub(super) fn sfu_control(config: &Config, tasks: &Tasks) -> Option<sfu_control::SfuControl> {
    let secret = config.media.sfu_secret.as_ref()?;
    Some(sfu_control::SfuControl::new(TokenKey::new(secret.as_bytes()), tasks.clone()))
}

/// Reads the SFU pool's directory every second and hands the live nodes to every world.
pub(super) async fn follow_sfu_directory(state: Arc<AppState>, pool: crate::config::SfuPoolSettings) {
    let reach = "reach the SFU directory's Redis";
    let connected =
        redis_retry::connection_manager(&pool.redis_url, reach, SFU_DIRECTORY_INTERVAL, &state.shutdown).await;
    let Some(mut redis) = connected else { return };
    let mut ticker = tokio::time::interval(SFU_DIRECTORY_INTERVAL);
    let mut known: Vec<String> = Vec::new();
    loop {
        tokio::select! {
            () = state.shutdown.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let nodes = match isoplane_service::sfu_directory::read(&mut redis, &pool.pool).await {
            Ok(nodes) => nodes,
            Err(error) => {
                // Keep the last list: rooms stay where they are until the directory answers.
                tracing::warn!(%error, "cannot read the SFU directory");
                continue;
            }
        };
        let ids: Vec<String> = nodes.iter().map(|n| n.id.clone()).collect();
        state.metrics.sfu_nodes_up.set(i64::try_from(ids.len()).unwrap_or(i64::MAX));
        if ids != known {
            tracing::info!(nodes = ?ids, "SFU nodes changed");
            known = ids;
        }
        for entry in state.worlds.values() {
            let _ = entry.commands.send(WorldCommand::SfuNodes(nodes.clone())).await;
        }
    }
}

/// How often signaling reads the SFU directory.
const SFU_DIRECTORY_INTERVAL: Duration = Duration::from_secs(1);

/// Probes the one configured SFU's `/readyz` every second and tells every world when it
/// goes down (its zones fall back to peer-to-peer at once) and when it is back (crowded
/// zones return to it). Worlds start with the node, as if it were up.
pub(super) async fn watch_static_sfu(state: Arc<AppState>, node: SfuNode) {
    state.metrics.sfu_nodes_up.set(1);
    let Some(url) = readiness_url(&node.control_url) else {
        tracing::warn!(sfu = %node.url, "no control URL to check the SFU's health: it is assumed up");
        return;
    };
    let client = reqwest::Client::builder().timeout(SFU_PROBE_TIMEOUT).build().unwrap_or_default();
    let mut health = SfuHealth::default();
    let mut ticker = tokio::time::interval(SFU_PROBE_INTERVAL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = state.shutdown.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let answer = client.get(&url).send().await;
        let ready = matches!(&answer, Ok(response) if response.status().is_success());
        let Some(up) = health.record(ready) else { continue };
        if up {
            tracing::info!(sfu = %node.url, "the SFU answers again: crowded zones go back to it");
        } else {
            let why = match answer {
                Ok(response) => format!("status {}", response.status()),
                Err(error) => error.to_string(),
            };
            tracing::warn!(sfu = %node.url, %why, "the SFU is down: its zones fall back to peer-to-peer");
        }
        state.metrics.sfu_nodes_up.set(i64::from(up));
        let nodes = if up { vec![node.clone()] } else { Vec::new() };
        for entry in state.worlds.values() {
            let _ = entry.commands.send(WorldCommand::SfuNodes(nodes.clone())).await;
        }
    }
}

/// How often signaling probes the configured SFU, and how long an answer may take.
const SFU_PROBE_INTERVAL: Duration = Duration::from_secs(1);
const SFU_PROBE_TIMEOUT: Duration = Duration::from_millis(800);
/// Failed probes in a row that make the SFU down: one lost answer moves no room.
const SFU_FAILURES_TO_DOWN: u32 = 2;

/// `<control_url>/readyz`, when there is a control URL.
fn readiness_url(control_url: &str) -> Option<String> {
    let base = control_url.trim_end_matches('/');
    (!base.is_empty()).then(|| format!("{base}/readyz"))
}

/// Whether the configured SFU is up, from its probes: down after
/// [`SFU_FAILURES_TO_DOWN`] failures in a row, up again after one success.
#[derive(Debug)]
struct SfuHealth {
    up: bool,
    failures: u32,
}

impl Default for SfuHealth {
    fn default() -> SfuHealth {
        SfuHealth { up: true, failures: 0 }
    }
}

impl SfuHealth {
    /// Records one probe; returns the new state when it changed.
    fn record(&mut self, ready: bool) -> Option<bool> {
        self.failures = if ready { 0 } else { self.failures.saturating_add(1) };
        let up = if ready {
            true
        } else if self.failures >= SFU_FAILURES_TO_DOWN {
            false
        } else {
            self.up
        };
        (up != self.up).then(|| {
            self.up = up;
            up
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sfu_is_down_after_two_failures_in_a_row_and_up_after_one_success() {
        let mut health = SfuHealth::default();
        assert_eq!(health.record(false), None, "one lost answer changes nothing");
        assert_eq!(health.record(true), None);
        assert_eq!(health.record(false), None);
        assert_eq!(health.record(false), Some(false));
        assert_eq!(health.record(false), None, "down already");
        assert_eq!(health.record(true), Some(true));
        assert_eq!(health.record(true), None);
    }

    #[test]
    fn the_readiness_url_is_under_the_control_url() {
        assert_eq!(readiness_url("http://10.0.0.7:7880/").as_deref(), Some("http://10.0.0.7:7880/readyz"));
        assert_eq!(readiness_url(""), None);
    }
}
