//! `isoplane serve` (and `isoplane` with no subcommand): everything in one process on
//! embedded defaults.
//!
//! Today that is the signaling server (with the built-in demo world, the development
//! token issuer and the browser client) and the asset server (SQLite and files under
//! `isoplane-data/`); the SFU and TURN join as they are built. A config file (the
//! signaling server's TOML) and `ISOPLANE_SIGNALING_*` / `ISOPLANE_ASSETS_*` variables
//! override the defaults. Both services share the token secret and the workspace, and
//! signaling serves the current version of every world published to the asset server
//! (read at start), beside the demo.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};
use isoplane_signaling::server;
use tokio_util::sync::CancellationToken;

pub fn run(config_path: Option<&Path>) -> Result<ExitCode> {
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(serve(config_path))
}

async fn serve(config_path: Option<&Path>) -> Result<ExitCode> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let mut config = server::load_config(config_path)?;
    if config_path.is_none() {
        // Embedded defaults: the demo world, tokens for anyone, a secret for this run only.
        config.worlds.demo = true;
        config.dev_issuer = true;
        config.serve_web = true;
        if config.token_secret.is_empty() {
            config.token_secret = format!("{:032x}", rand::random::<u128>());
        }
    }
    let mut assets_config = isoplane_assets::Config::load(None, std::env::vars())?;
    assets_config.token_secret.clone_from(&config.token_secret);
    assets_config.workspace.clone_from(&config.workspace);
    let stored = stored_worlds(&assets_config).await?;
    let assets = isoplane_assets::server::bind(assets_config).await?;
    let assets_address = assets.local_addr().context("reading the asset server's address")?;
    let bound = server::bind_with_worlds(config, stored).await?;
    let address = bound.local_addr().context("reading the bound address")?;
    // A closed stdout (`isoplane | head`) must not stop the server: ignore write errors.
    let _ = writeln!(
        std::io::stdout().lock(),
        "Isoplane {} is running: open http://{address}/\n  signaling: ws://{address}/v1/ws  (world files at http://{address}/v1/worlds/demo)\n  \
         dev tokens: http://{address}/v1/dev/token?name=YourName\n  \
         health: http://{address}/healthz  metrics: http://{address}/metrics\n  \
         assets: http://{assets_address}/ (uploads and world versions, docs/assets.md)\nPress Ctrl-C to stop.",
        env!("CARGO_PKG_VERSION")
    );
    let shutdown = CancellationToken::new();
    let signal = shutdown.clone();
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        signal.cancel();
    });
    let (signaling, assets) = tokio::join!(bound.run(shutdown.clone()), assets.run(shutdown));
    signaling.context("serving signaling")?;
    assets.context("serving assets")?;
    Ok(ExitCode::SUCCESS)
}

/// The current version of every world published to the asset server, to serve them.
async fn stored_worlds(config: &isoplane_assets::Config) -> Result<Vec<(String, String)>> {
    let (metadata, store) = isoplane_assets::server::open_storage(config).await?;
    let mut worlds = Vec::new();
    for summary in metadata.worlds(&config.workspace).await? {
        if let Some((_, bytes)) =
            isoplane_assets::load_current_world(&metadata, &store, &config.workspace, &summary.name).await?
        {
            let text = String::from_utf8(bytes.to_vec()).context("a stored world file is not UTF-8")?;
            worlds.push((summary.name, text));
        }
    }
    Ok(worlds)
}
