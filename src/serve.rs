//! `isoplane serve` (and `isoplane` with no subcommand): everything in one process on
//! embedded defaults.
//!
//! Today that is the signaling server (with the built-in demo world, the development
//! token issuer and the browser client), the asset server (SQLite and files under
//! `isoplane-data/`), a TURN server and an SFU on loopback. A config file (the signaling
//! server's TOML) and `ISOPLANE_SIGNALING_*` / `ISOPLANE_ASSETS_*` / `ISOPLANE_TURN_*` /
//! `ISOPLANE_SFU_*` variables override the defaults. Both services share the token secret and the workspace, and
//! signaling serves the current version of every world published to the asset server
//! beside the demo, and follows it live (a publish or a rollback reaches everyone in the
//! world without a restart). Both keep their records in the asset server's
//! database (SQLite under `isoplane-data/` by default).

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};
use isoplane_signaling::server;

pub fn run(config_path: Option<&Path>) -> Result<ExitCode> {
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(serve(config_path))
}

async fn serve(config_path: Option<&Path>) -> Result<ExitCode> {
    isoplane_service::init_logging();
    let mut config = server::load_config(config_path)?;
    let mut turn = None;
    let mut sfu = None;
    let mut assets_config = isoplane_assets::Config::load(None, std::env::vars())?;
    if config_path.is_none() {
        // Embedded defaults: the demo world, tokens for anyone, a secret for this run only.
        config.worlds.demo = true;
        config.dev_issuer = true;
        config.serve_web = true;
        if config.token_secret.is_empty() {
            config.token_secret = format!("{:032x}", rand::random::<u128>());
        }
        if config.media.turn_urls.is_empty() {
            turn = embedded_turn(&mut config).await;
        }
        if config.media.sfu_url.is_none() {
            sfu = embedded_sfu(&mut config, &assets_config).await;
        }
    }
    assets_config.token_secret.clone_from(&config.token_secret);
    assets_config.workspace.clone_from(&config.workspace);
    // Moderation records (bans, mutes, admins, the audit log) live beside the assets'.
    if config.database_url.is_none() {
        config.database_url = Some(assets_config.database_url());
    }
    let assets = isoplane_assets::server::bind(assets_config).await?;
    let assets_address = assets.local_addr().context("reading the asset server's address")?;
    let sfu_line = match (&config.media.sfu_url, &sfu) {
        (Some(url), Some(_)) => format!("\n  sfu: {url}  (control API and metrics on the same host)"),
        _ => String::new(),
    };
    let shutdown = isoplane_service::stop_on_signal(|| {});
    // The asset server runs first: signaling reads the published worlds from it, at
    // start and whenever their current version moves (a publish or a rollback).
    let assets = tokio::spawn(assets.run(shutdown.clone()));
    let assets_url = format!("http://{assets_address}");
    config.worlds.asset_server.get_or_insert_with(|| assets_url.clone());
    // No proxy in front: signaling's origin serves the published worlds' images too.
    config.worlds.images_from = Some(assets_url);
    let bound = server::bind(config).await?;
    let address = bound.local_addr().context("reading the bound address")?;
    // A closed stdout (`isoplane | head`) must not stop the server: ignore write errors.
    let _ = writeln!(
        std::io::stdout().lock(),
        "Isoplane {} is running: open http://{address}/\n  signaling: ws://{address}/v1/ws  (world files at http://{address}/v1/worlds/demo)\n  \
         dev tokens: http://{address}/v1/dev/token?name=YourName\n  \
         health: http://{address}/healthz  metrics: http://{address}/metrics\n  \
         assets: http://{assets_address}/ (uploads and world versions, docs/assets.md){sfu_line}\nPress Ctrl-C to stop.",
        env!("CARGO_PKG_VERSION")
    );
    let turn_task = turn.map(|turn| tokio::spawn(turn.run(shutdown.clone())));
    let sfu_task = sfu.map(|sfu| tokio::spawn(sfu.run(shutdown.clone())));
    bound.run(shutdown).await.context("serving signaling")?;
    assets.await.context("the asset server's task")?.context("serving assets")?;
    if let Some(task) = turn_task {
        task.await.context("the TURN server's task")?.context("serving TURN")?;
    }
    if let Some(task) = sfu_task {
        task.await.context("the SFU's task")?.context("serving the SFU")?;
    }
    Ok(ExitCode::SUCCESS)
}

/// A TURN server on loopback for this run, sharing a fresh secret with signaling, which
/// hands its URLs to clients. Relay between loopback addresses is allowed: in embedded
/// mode everyone is on this machine. If it cannot start (say, port 3478 is taken), Isoplane
/// runs without it: media then only goes peer to peer.
async fn embedded_turn(config: &mut isoplane_signaling::config::Config) -> Option<isoplane_turn::BoundServer> {
    let secret = format!("{:032x}", rand::random::<u128>());
    let built_in = isoplane_turn::Config {
        listen_udp: std::net::SocketAddr::from(([127, 0, 0, 1], 3478)),
        listen_tcp: Some(std::net::SocketAddr::from(([127, 0, 0, 1], 3478))),
        listen_http: None,
        auth_secrets: vec![secret.clone()],
        allowed_peers: vec!["127.0.0.1/32".parse().ok()?],
        ..isoplane_turn::Config::default()
    };
    let turn = match isoplane_service::config::overlay_environment(&built_in, std::env::vars()) {
        Ok(turn) => turn,
        Err(error) => {
            eprintln!("warning: TURN not started: {error}");
            return None;
        }
    };
    match isoplane_turn::BoundServer::bind(turn).await {
        Ok(bound) => {
            let udp = bound.udp_addr();
            config.media.stun_urls = vec![format!("stun:{udp}")];
            config.media.turn_urls = std::iter::once(format!("turn:{udp}?transport=udp"))
                .chain(bound.tcp_addr().map(|tcp| format!("turn:{tcp}?transport=tcp")))
                .collect();
            config.media.turn_secret = Some(secret);
            Some(bound)
        }
        Err(error) => {
            eprintln!("warning: TURN not started ({error}); media will only go peer to peer");
            None
        }
    }
}

/// An SFU on loopback for this run, sharing a fresh secret with signaling, which sends
/// crowded zones to it, and recording into the asset server's store (which lists and
/// serves the recordings). If it cannot start, zones stay on peer-to-peer media.
async fn embedded_sfu(
    config: &mut isoplane_signaling::config::Config,
    assets: &isoplane_assets::Config,
) -> Option<isoplane_sfu::BoundSfu> {
    // `ISOPLANE_SFU_SECRET`, when set, is shared with signaling as well (an operator's tool
    // or a test may then call the SFU's control API); else a secret for this run only.
    let secret = std::env::var("ISOPLANE_SFU_SECRET")
        .ok()
        .filter(|secret| secret.len() >= 16)
        .unwrap_or_else(|| format!("{:032x}", rand::random::<u128>()));
    let mut store = assets.store.clone();
    store.directory = Some(assets.store_directory());
    let built_in = isoplane_sfu::Config {
        listen_http: std::net::SocketAddr::from(([127, 0, 0, 1], 7880)),
        listen_udp: std::net::SocketAddr::from(([127, 0, 0, 1], 7882)),
        listen_tcp: Some(std::net::SocketAddr::from(([127, 0, 0, 1], 7881))),
        recording: isoplane_sfu::config::RecordingConfig { enabled: true, store },
        ..isoplane_sfu::Config::for_loopback(&secret)
    };
    let sfu = match isoplane_service::config::overlay_environment(&built_in, std::env::vars()) {
        Ok(sfu) => sfu,
        Err(error) => {
            eprintln!("warning: SFU not started: {error}");
            return None;
        }
    };
    match isoplane_sfu::bind(sfu).await {
        Ok(bound) => {
            config.media.sfu_url = Some(format!("ws://{}/v1/sfu", bound.http_addr()));
            config.media.sfu_secret = Some(secret);
            Some(bound)
        }
        Err(error) => {
            eprintln!("warning: SFU not started ({error}); crowded zones stay peer to peer");
            None
        }
    }
}
