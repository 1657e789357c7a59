//! `isoplane world watch MAP.tmj` (or `.tmx`): the edit loop with Tiled. The map is re-imported on
//! every save (the file's modification time and size are polled; no file-watching
//! dependency), checked, and with `--publish URL` published to the asset server as the
//! world's next version, so signaling's live reload shows it to everyone in the world.
//!
//! One line per save on stdout: `published version N` (or `valid` without `--publish`).
//! A map that cannot be imported is reported on stderr with the importer's notes, which
//! name the layer and object (name and ID) each one is about, and publishes nothing.
//! Notes are printed again only when they change, so a quiet save stays one line.
//!
//! Publishing follows docs/assets.md: tileset images are uploaded first (already stored
//! bytes are a no-op), then the world is posted with the version this loop last
//! published as its base. When someone else published meanwhile (409), the loop says so,
//! takes the current version as its base and retries once.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result, bail};
use clap::Args;
use isoplane_world_format::tiled::{Imported, ImportedAsset};
use serde_json::{Value, json};

#[derive(Debug, Args)]
pub struct WatchArgs {
    /// The Tiled map: XML (.tmx) or JSON (.tmj or .json).
    map: PathBuf,
    /// Publish each good import to the asset server at this base URL.
    #[arg(long, value_name = "URL")]
    publish: Option<String>,
    /// The world's name on the asset server (default: the map's file name, as a slug).
    #[arg(long)]
    world: Option<String>,
    /// The asset server's workspace.
    #[arg(long, default_value = "default", env = "ISOPLANE_WORKSPACE")]
    workspace: String,
    /// An admin's join token (see deploy/bin/isoplane-token); needed with --publish.
    #[arg(long, env = "ISOPLANE_ADMIN_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Also write each good import's world file here.
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// The world's display name (default: from the map).
    #[arg(long)]
    name: Option<String>,
    /// How often to look at the map file, in milliseconds.
    #[arg(long, default_value_t = 300)]
    interval_ms: u64,
}

/// What identifies one save of the map: Tiled replaces the file, so its time or size moves.
type Stamp = (SystemTime, u64);

pub fn run(args: WatchArgs) -> Result<ExitCode> {
    crate::world_cli::check_map_kind(&args.map)?;
    let mut publisher = match &args.publish {
        Some(url) => Some(Publisher::new(url, &args)?),
        None => None,
    };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().context("starting the runtime")?;
    let target = publisher.as_ref().map_or_else(String::new, |p| format!(", publishing to {}", p.versions_url));
    println!("watching {}{target} (ctrl-c to stop)", args.map.display());
    let mut last_stamp: Option<Stamp> = None;
    let mut last_notes: Vec<String> = Vec::new();
    loop {
        let stamp = stamp_of(&args.map);
        if stamp.is_some() && stamp != last_stamp {
            last_stamp = stamp;
            match import_once(&args, &mut last_notes) {
                Some(imported) => {
                    let line = match &mut publisher {
                        Some(publisher) => match runtime.block_on(publisher.publish(&imported)) {
                            Ok(line) => line,
                            Err(error) => format!("error: {error:#}; nothing was published"),
                        },
                        None => format!("valid: {}", crate::world_cli::summary(&imported.world)),
                    };
                    println!("{}: {line}", args.map.display());
                }
                None => println!("{}: not published: the map has errors", args.map.display()),
            }
        }
        std::thread::sleep(Duration::from_millis(args.interval_ms.max(50)));
    }
}

fn stamp_of(map: &Path) -> Option<Stamp> {
    let metadata = std::fs::metadata(map).ok()?;
    Some((metadata.modified().ok()?, metadata.len()))
}

/// Imports the map once; prints its errors, or its notes when they changed, on stderr.
fn import_once(args: &WatchArgs, last_notes: &mut Vec<String>) -> Option<Imported> {
    let map = args.map.display();
    let imported = match crate::world_cli::import_map(&args.map, args.name.clone()) {
        Ok(Ok(imported)) => imported,
        Ok(Err(error)) => {
            eprintln!("{map}: error: {error}");
            last_notes.clear();
            return None;
        }
        Err(error) => {
            eprintln!("{map}: error: {error:#}");
            return None;
        }
    };
    if imported.report.notes != *last_notes {
        for note in &imported.report.notes {
            eprintln!("{map}: note: {note}");
        }
        last_notes.clone_from(&imported.report.notes);
    }
    if let Some(output) = &args.output
        && let Err(error) = std::fs::write(output, imported.world.to_json_pretty())
    {
        eprintln!("{map}: error: cannot write {}: {error}", output.display());
        return None;
    }
    Some(imported)
}

/// Publishes imports of one map as versions of one world.
struct Publisher {
    client: reqwest::Client,
    assets_url: String,
    versions_url: String,
    token: String,
    /// The version this loop last published (or found current at its first publish).
    base: Option<u64>,
    /// The world file this loop last published: a save that changes nothing in it (say,
    /// the same map saved again) publishes no new version.
    last_published: Option<String>,
}

impl Publisher {
    fn new(url: &str, args: &WatchArgs) -> Result<Publisher> {
        let Some(token) = args.token.clone() else {
            bail!("--publish needs an admin token: --token or ISOPLANE_ADMIN_TOKEN");
        };
        let world = match &args.world {
            Some(world) => world.clone(),
            None => world_name_of(&args.map)?,
        };
        let url = url.trim_end_matches('/');
        let client =
            reqwest::Client::builder().timeout(Duration::from_secs(30)).build().context("making the HTTP client")?;
        Ok(Publisher {
            client,
            assets_url: format!("{url}/v1/assets"),
            versions_url: format!("{url}/v1/workspaces/{}/worlds/{world}/versions", args.workspace),
            token,
            base: None,
            last_published: None,
        })
    }

    /// Uploads the images and publishes the world; the line to print.
    async fn publish(&mut self, imported: &Imported) -> Result<String> {
        let text = imported.world.to_json_pretty();
        if let (Some(version), Some(last)) = (self.base, &self.last_published)
            && *last == text
        {
            return Ok(format!("unchanged: version {version} is already this world; nothing published"));
        }
        for asset in &imported.assets {
            self.upload(asset).await?;
        }
        let base = match self.base {
            Some(base) => base,
            None => self.current_version().await?,
        };
        let world: Value = serde_json::from_str(&text).context("encoding the world")?;
        let (status, answer) = self.post_version(base, &world).await?;
        let (status, answer, note) = match (status, current_version_in(&answer)) {
            (409, Some(current)) => {
                let (status, answer) = self.post_version(current, &world).await?;
                let note =
                    format!(" (version {current} was published meanwhile by someone else; this one replaces it)");
                (status, answer, note)
            }
            _ => (status, answer, String::new()),
        };
        match status {
            201 => {
                let version = answer.get("version").and_then(Value::as_u64).context("the answer names no version")?;
                self.base = Some(version);
                self.last_published = Some(text);
                Ok(format!("published version {version}{note}"))
            }
            _ => bail!("{}: HTTP {status}: {}", self.versions_url, refusal(&answer)),
        }
    }

    async fn upload(&self, asset: &ImportedAsset) -> Result<()> {
        let extension = Path::new(&asset.source).extension().and_then(|e| e.to_str()).unwrap_or("");
        let Some(media_type) = media_type(extension) else {
            bail!("{}: the asset server takes no .{extension} images", asset.source);
        };
        let response = self
            .client
            .post(&self.assets_url)
            .bearer_auth(&self.token)
            .header("content-type", media_type)
            .body(asset.bytes.clone())
            .send()
            .await
            .with_context(|| format!("cannot reach {}", self.assets_url))?;
        let status = response.status().as_u16();
        let answer = json_of(response).await;
        match status {
            200 | 201 => Ok(()),
            _ => bail!("uploading {}: HTTP {status}: {}", asset.source, refusal(&answer)),
        }
    }

    /// The world's current version on the server, 0 when it has none yet.
    async fn current_version(&self) -> Result<u64> {
        let response = self
            .client
            .get(&self.versions_url)
            .bearer_auth(&self.token)
            .send()
            .await
            .with_context(|| format!("cannot reach {}", self.versions_url))?;
        let status = response.status().as_u16();
        let answer = json_of(response).await;
        match (status, current_version_in(&answer)) {
            (200, Some(version)) => Ok(version),
            (404, _) => Ok(0),
            _ => bail!("{}: HTTP {status}: {}", self.versions_url, refusal(&answer)),
        }
    }

    async fn post_version(&self, base: u64, world: &Value) -> Result<(u16, Value)> {
        let body = json!({"base_version": base, "reason": "isoplane world watch", "world": world});
        let response = self
            .client
            .post(&self.versions_url)
            .bearer_auth(&self.token)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .with_context(|| format!("cannot reach {}", self.versions_url))?;
        let status = response.status().as_u16();
        Ok((status, json_of(response).await))
    }
}

/// The default world name: the map's file name as the asset server accepts names.
fn world_name_of(map: &Path) -> Result<String> {
    let stem = map.file_stem().and_then(|s| s.to_str()).unwrap_or("");
    let name: String = stem
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') { c.to_ascii_lowercase() } else { '-' })
        .take(64)
        .collect();
    if name.trim_matches('-').is_empty() {
        bail!("{}: name the world with --world", map.display());
    }
    Ok(name)
}

/// The answer's JSON body; `null` when it has none (the status then says enough).
async fn json_of(response: reqwest::Response) -> Value {
    let text = response.text().await.unwrap_or_default();
    serde_json::from_str(&text).unwrap_or_default()
}

fn current_version_in(answer: &Value) -> Option<u64> {
    answer.get("current_version").and_then(Value::as_u64).or_else(|| answer["error"]["current_version"].as_u64())
}

/// The asset server's refusal in one line: its code, message and, for an invalid world,
/// every error with its path.
fn refusal(answer: &Value) -> String {
    let error = &answer["error"];
    let mut text = format!("{} {}", error["code"].as_str().unwrap_or("?"), error["message"].as_str().unwrap_or(""));
    for problem in error["errors"].as_array().into_iter().flatten() {
        text.push_str(&format!(
            "; {}: {}",
            problem["path"].as_str().unwrap_or("$"),
            problem["message"].as_str().unwrap_or("")
        ));
    }
    if let Some(missing) = error["missing"].as_array() {
        text.push_str(&format!(
            "; missing assets: {}",
            missing.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(", ")
        ));
    }
    text
}

/// The media types the asset server accepts by default, by file extension.
fn media_type(extension: &str) -> Option<&'static str> {
    Some(match extension.to_ascii_lowercase().as_str() {
        "png" => "image/png",
        "svg" => "image/svg+xml",
        "jpg" | "jpeg" => "image/jpeg",
        "webp" => "image/webp",
        "gif" => "image/gif",
        "avif" => "image/avif",
        _ => return None,
    })
}
