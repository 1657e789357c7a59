//! `isoplane-turn`: the STUN/TURN relay as its own process.
//!
//! Reads an optional TOML config file, applies `ISOPLANE_TURN_*` environment overrides,
//! checks the result before binding anything, and serves until SIGTERM or ctrl-c.
//! Logs and stop signals as every Isoplane service (`isoplane-service`): `ISOPLANE_LOG`.

use anyhow::Context;
use clap::Parser;
use isoplane_turn::{BoundServer, Config};
use std::path::PathBuf;

/// Isoplane's STUN/TURN relay.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// TOML config file (see docs/turn.md); without it, `ISOPLANE_CONFIG`, else defaults
    /// plus environment.
    #[arg(short, long, env = "ISOPLANE_CONFIG")]
    config: Option<PathBuf>,
    /// Runtime threads for TCP, TLS, DTLS and HTTP (UDP clients have threads of their
    /// own, `udp_threads`). Their core is one state machine behind one lock, so one
    /// thread costs the least CPU per packet; more only help TLS-heavy loads.
    #[arg(long, env = "ISOPLANE_TURN_THREADS", default_value_t = 1)]
    threads: usize,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    isoplane_service::init_logging();

    let config: Config = isoplane_service::config::load(args.config.as_deref(), std::env::vars())?;

    let runtime = if args.threads <= 1 {
        tokio::runtime::Builder::new_current_thread().enable_all().build()
    } else {
        tokio::runtime::Builder::new_multi_thread().worker_threads(args.threads).enable_all().build()
    }
    .context("tokio runtime")?;
    runtime.block_on(async {
        let server = BoundServer::bind(config).await?;
        server.run(isoplane_service::stop_on_signal(|| {})).await?;
        Ok(())
    })
}
