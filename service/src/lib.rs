//! What every Isoplane server binary shares, so they all run the same way:
//!
//! - the config file: `--config FILE` (or `-c FILE`, or the file as the only argument),
//!   else `ISOPLANE_CONFIG`; without one, defaults plus the service's `ISOPLANE_<SERVICE>_*`
//!   environment overrides;
//! - logs on stdout (where tools and tests read the "listening on" line), filtered by
//!   `ISOPLANE_LOG` (else `RUST_LOG`, else `info`), one line per event, colours only on a
//!   terminal;
//! - a graceful stop on SIGTERM (what `docker stop` and systemd send) or ctrl-c;
//! - the SFU directory ([`sfu_directory`]), where SFU nodes report their load and
//!   signaling finds them;
//! - layered configuration ([`config`]): defaults, a TOML file, `ISOPLANE_<SERVICE>_*`
//!   variables, then the checks across fields, with every problem reported at once;
//! - metrics ([`metrics`]): one registry per service, rendered for `/metrics`;
//! - the HTTP error every handler answers with ([`http::HttpError`]);
//! - background tasks that stop with the service ([`tasks::Tasks`]);
//! - reaching Redis with retries ([`redis_retry`]);
//! - batched UDP I/O for the media relays ([`udp_batch`]);
//! - the object store's settings, shared by assets and recordings ([`object_storage`]).

pub mod config;
pub mod http;
pub mod metrics;
pub mod object_storage;
pub mod redis_retry;
pub mod sfu_directory;
pub mod tasks;
pub mod testing;
pub mod udp_batch;

use std::ffi::OsString;
use std::io::IsTerminal;
use std::path::PathBuf;

/// Why the command line cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}; usage: [--config FILE.toml] (or ISOPLANE_CONFIG=FILE.toml)", self.0)
    }
}

impl std::error::Error for UsageError {}

/// The config file named on the command line (`args` without the program name) or in
/// `ISOPLANE_CONFIG` (`env_config`).
pub fn config_path(
    args: impl IntoIterator<Item = OsString>,
    env_config: Option<OsString>,
) -> Result<Option<PathBuf>, UsageError> {
    let args: Vec<OsString> = args.into_iter().collect();
    let path = match args.as_slice() {
        [] => env_config,
        [flag, file] if flag == "--config" || flag == "-c" => Some(file.clone()),
        [single] if !single.to_string_lossy().starts_with('-') => Some(single.clone()),
        _ => {
            let given: Vec<String> = args.iter().map(|a| a.to_string_lossy().into_owned()).collect();
            return Err(UsageError(format!("unexpected arguments: {}", given.join(" "))));
        }
    };
    Ok(path.filter(|p| !p.is_empty()).map(PathBuf::from))
}

/// [`config_path`] of this process; `--help` (or `-h`) prints the usage and exits.
pub fn config_path_from_process() -> Result<Option<PathBuf>, UsageError> {
    let mut args = std::env::args_os();
    let program = args.next().map(|p| PathBuf::from(p).file_name().map(|n| n.to_string_lossy().into_owned()));
    let args: Vec<OsString> = args.collect();
    if args.iter().any(|a| a == "--help" || a == "-h") {
        let program = program.flatten().unwrap_or_else(|| "isoplane-SERVICE".into());
        println!("{}", usage(&program));
        std::process::exit(0);
    }
    config_path(args, std::env::var_os("ISOPLANE_CONFIG"))
}

/// What `--help` prints for a service binary.
fn usage(program: &str) -> String {
    let service = program.strip_prefix("isoplane-").unwrap_or(program).to_uppercase();
    format!(
        "usage: {program} [--config FILE.toml]\n\n\
         Runs the service with the TOML file given (or named by ISOPLANE_CONFIG), else its defaults;\n\
         ISOPLANE_{service}_* variables override the file (see docs/operations.md). Logs go to stdout,\n\
         filtered by ISOPLANE_LOG; SIGTERM or ctrl-c stops it gracefully."
    )
}

/// Starts logging to stdout with the filter of `ISOPLANE_LOG` (else `RUST_LOG`, else
/// `info`).
pub fn init_logging() {
    let filter = std::env::var("ISOPLANE_LOG").or_else(|_| std::env::var("RUST_LOG")).unwrap_or_else(|_| "info".into());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stdout)
        .with_ansi(std::io::stdout().is_terminal())
        .try_init();
}

/// A token cancelled on SIGTERM or ctrl-c: what a service's `run` is given. Call it inside
/// the runtime; `on_stop` runs first (e.g. to log what the stop will wait for).
pub fn stop_on_signal(on_stop: impl FnOnce() + Send + 'static) -> tokio_util::sync::CancellationToken {
    let shutdown = tokio_util::sync::CancellationToken::new();
    let stop = shutdown.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        on_stop();
        stop.cancel();
    });
    shutdown
}

/// Resolves on SIGTERM or ctrl-c.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let Ok(mut term) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) else {
            let _ = ctrl_c.await;
            return;
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<OsString> {
        list.iter().map(OsString::from).collect()
    }

    #[test]
    fn the_config_file_comes_from_the_flag_the_single_argument_or_the_environment() {
        let env = Some(OsString::from("/etc/env.toml"));
        assert_eq!(config_path(args(&["--config", "a.toml"]), env.clone()), Ok(Some("a.toml".into())));
        assert_eq!(config_path(args(&["-c", "a.toml"]), None), Ok(Some("a.toml".into())));
        assert_eq!(config_path(args(&["a.toml"]), env.clone()), Ok(Some("a.toml".into())));
        assert_eq!(config_path(args(&[]), env), Ok(Some("/etc/env.toml".into())));
        assert_eq!(config_path(args(&[]), Some(OsString::new())), Ok(None));
        assert_eq!(config_path(args(&[]), None), Ok(None));
        assert!(config_path(args(&["--verbose"]), None).is_err());
        assert!(config_path(args(&["a.toml", "b.toml"]), None).is_err());
    }
}
