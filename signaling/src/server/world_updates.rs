//! Live reload: the worlds this node serves follow their current version on the asset
//! server, so a publish or a rollback reaches everyone in the world without a restart.
//!
//! Every `worlds.reload_interval_ms` the asset server's world list is read (one small
//! request); a world whose current version number moved is fetched, and if its content
//! differs from what is served (a rollback to the file already served changes nothing),
//! parsed and checked like a world at start. Then the served file is swapped (new
//! `GET /v1/worlds/{name}` requests get the new file) and its world task is handed the
//! world: the engine moves people and tells clients (engine/reload.rs). A version that
//! cannot be read or parsed is logged and counted, the old one stays served, and it is
//! not fetched again until the current version moves on.
//!
//! With a PostgreSQL database shared with the asset server (the compose stack, a
//! cluster), a publish or rollback is also announced there (`pg_notify`, on commit), and
//! a round runs at once: every node hears it within milliseconds. Polling stays, as the
//! safety net for notifications lost while a connection was down.
//!
//! In a cluster every node runs this, so a world moves on on every node, whichever one
//! serves it now or takes it over later. Worlds published after the start (new names)
//! are served after a restart.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use isoplane_metadata::WorldVersionListener;
use isoplane_world_format::{ContentId, World};
use tokio::sync::Notify;

use super::worlds::AssetServer;
use super::{AppState, ServedFile, WorldCommand};
use crate::protocol::WorldRef;

/// Follows the asset server at `base` until the server stops.
pub(super) async fn follow(state: Arc<AppState>, base: String, interval: Duration) {
    let assets = match AssetServer::new(&state.config, &base) {
        Ok(assets) => assets,
        Err(error) => {
            tracing::error!(%error, "cannot ask the asset server for new world versions: worlds are not reloaded");
            return;
        }
    };
    // The version number last looked at per world; filled by the first round, which
    // takes any version published between the start and now.
    let mut seen: HashMap<String, i64> = HashMap::new();
    let mut unreachable = false;
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let announced = Arc::new(Notify::new());
    if let Some(url) = state.config.database_url.clone() {
        let workspace = state.config.workspace.clone();
        state.tasks.spawn_until_shutdown(hear_announcements(url, workspace, announced.clone()));
    }
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            () = announced.notified() => {}
        }
        match check(&state, &assets, &mut seen).await {
            Ok(()) if unreachable => {
                unreachable = false;
                tracing::info!("the asset server answers again: following world versions");
            }
            Ok(()) => {}
            // Said once per outage, not every second.
            Err(error) if !unreachable => {
                unreachable = true;
                tracing::warn!(%error, "cannot read the world versions on the asset server; the served versions stay");
            }
            Err(_) => {}
        }
    }
}

/// One round: every served world whose current version moved is taken.
async fn check(state: &AppState, assets: &AssetServer, seen: &mut HashMap<String, i64>) -> Result<(), String> {
    for (name, current) in assets.current_versions().await? {
        if seen.get(&name) == Some(&current) || !state.worlds.contains_key(&name) {
            continue;
        }
        let text = assets.world_file(&name).await?;
        seen.insert(name.clone(), current);
        take(state, &name, current, text).await;
    }
    Ok(())
}

/// Serves `text` as world `name` from now on, if it is another file than the one
/// served and a valid world.
async fn take(state: &AppState, name: &str, number: i64, text: String) {
    let Some(entry) = state.worlds.get(name) else { return };
    let version = ContentId::of_bytes(text.as_bytes()).to_string();
    if entry.served().version == version {
        return;
    }
    let started = Instant::now();
    // Parsing and indexing a large world is CPU work: off the async workers.
    let parsed = tokio::task::spawn_blocking(move || World::from_json(&text).map(|world| (world, text))).await;
    let (world, text) = match parsed {
        Ok(Ok(parsed)) => parsed,
        Ok(Err(errors)) => {
            state.metrics.world_reload_failures.inc();
            tracing::error!(world = %name, number, %errors, "the new world version is not valid: the old one stays");
            return;
        }
        Err(error) => {
            state.metrics.world_reload_failures.inc();
            tracing::error!(world = %name, number, %error, "reading the new world version failed");
            return;
        }
    };
    let world_ref = WorldRef { name: name.to_owned(), version: version.clone(), url: format!("/v1/worlds/{name}") };
    // The file first: a client told of the new version fetches it and must get it.
    *entry.file.write().unwrap_or_else(std::sync::PoisonError::into_inner) =
        ServedFile { json: bytes::Bytes::from(text), version: version.clone() };
    let command = WorldCommand::Replace { world: Arc::new(world), world_ref };
    if entry.commands.send(command).await.is_err() {
        return; // the world task is gone: the server is stopping
    }
    tracing::info!(world = %name, number, %version, took_ms = started.elapsed().as_millis() as u64, "serving a new version of the world");
}

/// How long to wait before listening again after the database refused or dropped us.
const LISTEN_RETRY: Duration = Duration::from_secs(5);

/// Wakes `announced` whenever the database announces that a world of `workspace` moved
/// to another version (only PostgreSQL does; for others this returns at once).
async fn hear_announcements(url: String, workspace: String, announced: Arc<Notify>) {
    loop {
        let mut listener = match WorldVersionListener::connect(&url).await {
            Ok(Some(listener)) => listener,
            Ok(None) => return,
            Err(error) => {
                tracing::warn!(%error, "cannot listen for new world versions in the database; polling only");
                tokio::time::sleep(LISTEN_RETRY).await;
                continue;
            }
        };
        loop {
            match listener.next().await {
                Ok((from, _)) if from == workspace => announced.notify_one(),
                Ok(_) => {}
                Err(error) => {
                    tracing::warn!(%error, "lost the database's announcements of new world versions; polling only");
                    tokio::time::sleep(LISTEN_RETRY).await;
                    break;
                }
            }
        }
    }
}
