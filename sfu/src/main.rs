//! `isoplane-sfu`: the SFU on its own. Config from an optional TOML file (first
//! argument or `ISOPLANE_SFU_CONFIG`) plus `ISOPLANE_SFU_*` environment overrides.

use anyhow::Context;
use isoplane_sfu::Config;
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let filter = std::env::var("ISOPLANE_SFU_LOG").unwrap_or_else(|_| "info".into());
    tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::new(filter)).init();
    let path = std::env::args().nth(1).or_else(|| std::env::var("ISOPLANE_SFU_CONFIG").ok());
    let mut config = match &path {
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("cannot read config file {path}"))?;
            Config::from_toml(&text, path)?
        }
        None => Config::default(),
    };
    config.apply_env(std::env::vars())?;
    let sfu = isoplane_sfu::bind(config).await?;
    let shutdown = CancellationToken::new();
    let stop = shutdown.clone();
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        stop.cancel();
    });
    sfu.run(shutdown).await?;
    Ok(())
}
