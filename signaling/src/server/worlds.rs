//! The world files a node serves, read once at start: the built-in demo, a folder of
//! `NAME.world.json` files, and the current versions published on the asset server.
//! Only the text is gathered here; `bind` parses and validates each one.

use std::time::Duration;

use isoplane_world_format::{DEMO_WORLD, is_valid_id};

use super::{StartError, unix_now};
use crate::auth::{JoinClaims, Role, TokenKey};
use crate::config::Config;

/// Every world `config` names, then those `given` by the caller, as (name, file text)
/// pairs. A later source replaces an earlier world of the same name: a world given by
/// the caller replaces a file or the demo.
pub(super) async fn gather(config: &Config, given: Vec<(String, String)>) -> Result<Vec<(String, String)>, StartError> {
    let stored = match &config.worlds.asset_server {
        Some(base) => fetch_worlds(config, base).await?,
        None => Vec::new(),
    };
    let mut named: Vec<(String, String)> = Vec::new();
    for (name, text) in read_worlds(config)?.into_iter().chain(stored).chain(given) {
        named.retain(|(existing, _)| *existing != name);
        named.push((name, text));
    }
    Ok(named)
}

/// The current version of every world the asset server holds for our workspace. Asks
/// with a member token signed with the shared secret, as any client would.
async fn fetch_worlds(config: &Config, base: &str) -> Result<Vec<(String, String)>, StartError> {
    let error = |message: String| StartError::World { path: base.to_owned(), message };
    let claims = JoinClaims {
        sub: "isoplane-signaling".into(),
        name: "signaling".into(),
        workspace: config.workspace.clone(),
        role: Role::Member,
        exp: unix_now() + 300,
        iat: Some(unix_now()),
        nbf: None,
    };
    let bearer = format!("Bearer {}", TokenKey::new(config.token_secret.as_bytes()).sign(&claims));
    let client =
        reqwest::Client::builder().timeout(Duration::from_secs(10)).build().map_err(|e| error(e.to_string()))?;
    let get = |path: String| {
        let request = client.get(format!("{}{path}", base.trim_end_matches('/'))).header("Authorization", &bearer);
        async move {
            let response = request.send().await.map_err(|e| format!("cannot reach the asset server: {e}"))?;
            let status = response.status();
            let text = response.text().await.map_err(|e| e.to_string())?;
            if status.is_success() { Ok(text) } else { Err(format!("{path}: HTTP {status}: {text}")) }
        }
    };
    let workspace = &config.workspace;
    let list: serde_json::Value =
        serde_json::from_str(&get(format!("/v1/workspaces/{workspace}/worlds")).await.map_err(error)?)
            .map_err(|e| error(format!("the world list is not JSON: {e}")))?;
    let mut worlds = Vec::new();
    for entry in list["worlds"].as_array().into_iter().flatten() {
        let (Some(name), Some(current)) = (entry["name"].as_str(), entry["current_version"].as_i64()) else { continue };
        if current > 0 {
            worlds.push((
                name.to_owned(),
                get(format!("/v1/workspaces/{workspace}/worlds/{name}")).await.map_err(error)?,
            ));
        }
    }
    Ok(worlds)
}

/// The worlds a configuration names, as (name, file text) pairs.
fn read_worlds(config: &Config) -> Result<Vec<(String, String)>, StartError> {
    let mut worlds = Vec::new();
    if config.worlds.demo {
        worlds.push(("demo".to_owned(), DEMO_WORLD.to_owned()));
    }
    if let Some(directory) = &config.worlds.directory {
        let error = |message: String| StartError::World { path: directory.display().to_string(), message };
        let entries = std::fs::read_dir(directory).map_err(|e| error(e.to_string()))?;
        for entry in entries {
            let path = entry.map_err(|e| error(e.to_string()))?.path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()).and_then(|n| n.strip_suffix(".world.json"))
            else {
                continue;
            };
            if !is_valid_id(name) {
                return Err(StartError::World {
                    path: path.display().to_string(),
                    message: "world names are 1 to 64 ASCII letters, digits, `-`, `_` or `.`".into(),
                });
            }
            let text = std::fs::read_to_string(&path)
                .map_err(|e| StartError::World { path: path.display().to_string(), message: e.to_string() })?;
            worlds.push((name.to_owned(), text));
        }
    }
    Ok(worlds)
}
