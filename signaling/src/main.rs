//! `isoplane-signaling`: the signaling server on its own, as deployed in production.
//!
//! Usage: `isoplane-signaling [--config CONFIG.toml]`; `ISOPLANE_SIGNALING_*` variables
//! override the file (see docs/deployment.md). Logs and stop signals as every Isoplane
//! service (`isoplane-service`).

use anyhow::Context;
use isoplane_signaling::server;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    isoplane_service::init_logging();
    let path = isoplane_service::config_path_from_process()?;
    let config = isoplane_signaling::config::Config::load(path.as_deref())?;
    let bound = server::bind(config).await?;
    let address = bound.local_addr().context("reading the bound address")?;
    tracing::info!(
        "signaling listening on http://{address} (WebSocket ws://{address}/v1/ws, /healthz, /readyz, /metrics)"
    );
    let shutdown = isoplane_service::stop_on_signal(|| tracing::info!("shutting down: telling clients to reconnect"));
    bound.run(shutdown).await.context("serving")?;
    Ok(())
}
