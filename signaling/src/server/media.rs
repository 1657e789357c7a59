//! How the media settings reach the world engines: STUN/TURN access and the SFU nodes,
//! either the one configured SFU or the live nodes of an SFU pool's directory, which a
//! background task reads every second.

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
