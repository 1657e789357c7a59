//! `isoplane-turn`: the STUN/TURN relay as its own process.
//!
//! Reads an optional TOML config file, applies `ISOPLANE_TURN_*` environment overrides,
//! checks the result before binding anything, and serves until SIGTERM or ctrl-c.
//! Logging follows `ISOPLANE_TURN_LOG` (a tracing filter, default `info`).

use anyhow::Context;
use clap::Parser;
use isoplane_turn::{BoundServer, Config};
use std::path::PathBuf;
use tokio_util::sync::CancellationToken;

/// Isoplane's STUN/TURN relay.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// TOML config file (see docs/turn.md); without it, defaults plus environment.
    #[arg(short, long)]
    config: Option<PathBuf>,
    /// Runtime threads. The core is one state machine behind one lock, so one thread
    /// relays with the least CPU per packet; more threads only help TLS/HTTP-heavy loads.
    #[arg(long, env = "ISOPLANE_TURN_THREADS", default_value_t = 1)]
    threads: usize,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let filter = std::env::var("ISOPLANE_TURN_LOG").unwrap_or_else(|_| "info".into());
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();

    let mut config = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
            Config::from_toml(&text, &path.display().to_string())?
        }
        None => Config::default(),
    };
    config.apply_env(std::env::vars())?;
    config.validate()?;

    let runtime = if args.threads <= 1 {
        tokio::runtime::Builder::new_current_thread().enable_all().build()
    } else {
        tokio::runtime::Builder::new_multi_thread().worker_threads(args.threads).enable_all().build()
    }
    .context("tokio runtime")?;
    runtime.block_on(async {
        let server = BoundServer::bind(config).await?;
        let shutdown = CancellationToken::new();
        let signal_token = shutdown.clone();
        tokio::spawn(async move {
            wait_for_signal().await;
            signal_token.cancel();
        });
        server.run(shutdown).await?;
        Ok(())
    })
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
