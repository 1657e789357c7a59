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

/// The current version of every world the asset server holds for our workspace.
async fn fetch_worlds(config: &Config, base: &str) -> Result<Vec<(String, String)>, StartError> {
    let error = |message: String| StartError::World { path: base.to_owned(), message };
    let assets = AssetServer::new(config, base).map_err(error)?;
    let mut worlds = Vec::new();
    for (name, _) in assets.current_versions().await.map_err(error)? {
        worlds.push((name.clone(), assets.world_file(&name).await.map_err(error)?));
    }
    Ok(worlds)
}

/// The asset server's world API, asked as a member of our workspace would, with a
/// short-lived token signed with the shared secret (a fresh one per request, so a
/// client kept for the server's lifetime never holds an expired one).
pub(super) struct AssetServer {
    client: reqwest::Client,
    base: String,
    key: TokenKey,
    workspace: String,
}

impl AssetServer {
    pub(super) fn new(config: &Config, base: &str) -> Result<AssetServer, String> {
        let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().map_err(|e| e.to_string())?;
        Ok(AssetServer {
            client,
            base: base.trim_end_matches('/').to_owned(),
            key: TokenKey::new(config.token_secret.as_bytes()),
            workspace: config.workspace.clone(),
        })
    }

    async fn get(&self, path: &str) -> Result<String, String> {
        let claims = JoinClaims {
            sub: "isoplane-signaling".into(),
            name: "signaling".into(),
            workspace: self.workspace.clone(),
            role: Role::Member,
            exp: unix_now() + 300,
            iat: Some(unix_now()),
            nbf: None,
        };
        let bearer = format!("Bearer {}", self.key.sign(&claims));
        let request = self.client.get(format!("{}{path}", self.base)).header("Authorization", bearer);
        let response = request.send().await.map_err(|e| format!("cannot reach the asset server: {e}"))?;
        let status = response.status();
        let text = response.text().await.map_err(|e| e.to_string())?;
        if status.is_success() { Ok(text) } else { Err(format!("{path}: HTTP {status}: {text}")) }
    }

    /// Every world of the workspace that has a current version, with that version's number.
    pub(super) async fn current_versions(&self) -> Result<Vec<(String, i64)>, String> {
        let list: serde_json::Value =
            serde_json::from_str(&self.get(&format!("/v1/workspaces/{}/worlds", self.workspace)).await?)
                .map_err(|e| format!("the world list is not JSON: {e}"))?;
        Ok(list["worlds"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|entry| Some((entry["name"].as_str()?.to_owned(), entry["current_version"].as_i64()?)))
            .filter(|(_, current)| *current > 0)
            .collect())
    }

    /// The current version's world file of world `name`.
    pub(super) async fn world_file(&self, name: &str) -> Result<String, String> {
        self.get(&format!("/v1/workspaces/{}/worlds/{name}", self.workspace)).await
    }
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
