//! `isoplane-sfu`: the SFU on its own. Usage: `isoplane-sfu [--config CONFIG.toml]`;
//! `ISOPLANE_SFU_*` variables override the file (docs/sfu.md). Logs and stop signals as
//! every Isoplane service (`isoplane-service`).

use anyhow::Context;
use isoplane_sfu::Config;
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    isoplane_service::init_logging();
    let mut config = match isoplane_service::config_path_from_process()? {
        Some(path) => {
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("cannot read config file {}", path.display()))?;
            Config::from_toml(&text, &path.display().to_string())?
        }
        None => Config::default(),
    };
    config.apply_env(std::env::vars())?;
    let sfu = isoplane_sfu::bind(config).await?;
    let shutdown = CancellationToken::new();
    let stop = shutdown.clone();
    tokio::spawn(async move {
        isoplane_service::shutdown_signal().await;
        stop.cancel();
    });
    sfu.run(shutdown).await?;
    Ok(())
}
