//! `isoplane-assets`: the asset server on its own.
//!
//! Usage: `isoplane-assets [--config CONFIG.toml]`; `ISOPLANE_ASSETS_*` variables override the
//! file (see docs/assets.md). Stops on ctrl-c or SIGTERM after finishing the requests and
//! uploads in flight.

use anyhow::Context;
use isoplane_assets::{Config, server};
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    isoplane_service::init_logging();
    let path = isoplane_service::config_path_from_process()?;
    let config = Config::load(path.as_deref(), std::env::vars())?;
    let bound = server::bind(config).await?;
    let address = bound.local_addr().context("reading the bound address")?;
    tracing::info!(
        "assets listening on http://{address} (GET /assets/{{id}}, POST /v1/assets, /healthz, /readyz, /metrics)"
    );
    let shutdown = CancellationToken::new();
    let signal = shutdown.clone();
    tokio::spawn(async move {
        isoplane_service::shutdown_signal().await;
        tracing::info!("shutting down: finishing requests and uploads in flight");
        signal.cancel();
    });
    bound.run(shutdown).await.context("serving")?;
    Ok(())
}
