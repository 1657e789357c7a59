//! `isoplane-signaling`: the signaling server on its own, as deployed in production.
//!
//! Usage: `isoplane-signaling [CONFIG.toml]`; `ISOPLANE_SIGNALING_*` variables override
//! the file (see docs/deployment.md).

use std::path::PathBuf;

use anyhow::Context;
use isoplane_signaling::server;
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::from_default_env()).init();
    let path = std::env::args_os().nth(1).map(PathBuf::from);
    let config = server::load_config(path.as_deref())?;
    let bound = server::bind(config).await?;
    let address = bound.local_addr().context("reading the bound address")?;
    tracing::info!(
        "signaling listening on http://{address} (WebSocket ws://{address}/v1/ws, /healthz, /readyz, /metrics)"
    );
    let shutdown = CancellationToken::new();
    let signal = shutdown.clone();
    tokio::spawn(async move {
        server::shutdown_signal().await;
        tracing::info!("shutting down: telling clients to reconnect");
        signal.cancel();
    });
    bound.run(shutdown).await.context("serving")?;
    Ok(())
}
