//! `isoplane-sfu`: the SFU on its own. Usage: `isoplane-sfu [--config CONFIG.toml]`;
//! `ISOPLANE_SFU_*` variables override the file (docs/sfu.md). Logs and stop signals as
//! every Isoplane service (`isoplane-service`).

use isoplane_sfu::Config;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    isoplane_service::init_logging();
    let path = isoplane_service::config_path_from_process()?;
    let config: Config = isoplane_service::config::load(path.as_deref(), std::env::vars())?;
    let sfu = isoplane_sfu::bind(config).await?;
    sfu.run(isoplane_service::stop_on_signal(|| {})).await?;
    Ok(())
}
