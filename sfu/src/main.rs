//! `isoplane-sfu`: the SFU on its own. Usage: `isoplane-sfu [--config CONFIG.toml]`;
//! `ISOPLANE_SFU_*` variables override the file (docs/sfu.md). Logs and stop signals as
//! every Isoplane service (`isoplane-service`).

use isoplane_sfu::Config;

/// str0m allocates as it receives and sends each packet (events, serialised datagrams):
/// mimalloc's thread-local free lists make that cheaper than glibc's malloc.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    isoplane_service::init_logging();
    let path = isoplane_service::config_path_from_process()?;
    let config: Config = isoplane_service::config::load(path.as_deref(), std::env::vars())?;
    let sfu = isoplane_sfu::bind(config).await?;
    sfu.run(isoplane_service::stop_on_signal(|| {})).await?;
    Ok(())
}
