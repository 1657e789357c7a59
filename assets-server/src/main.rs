//! `isoplane-assets`: the asset server on its own.
//!
//! Usage: `isoplane-assets [--config CONFIG.toml]`; `ISOPLANE_ASSETS_*` variables override the
//! file (see docs/assets.md). Stops on ctrl-c or SIGTERM after finishing the requests and
//! uploads in flight.

use anyhow::Context;
use isoplane_assets::{Config, server};

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
    let shutdown = isoplane_service::stop_on_signal(|| {
        tracing::info!("shutting down: finishing requests and uploads in flight");
    });
    bound.run(shutdown).await.context("serving")?;
    Ok(())
}
