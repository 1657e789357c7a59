//! `isoplane`: the all-in-one binary and its admin subcommands.
//!
//! Subcommands live in their own modules (`world_cli` for world files, `world_watch` for
//! the edit loop with Tiled, `admin_cli` for
//! moderation through a running server); `main` only
//! parses arguments and maps results to an exit code.

mod admin_cli;
mod serve;
mod world_cli;
mod world_watch;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "isoplane", version, about = "Self-hosted 2.5D isometric virtual workspaces")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run Isoplane (what `isoplane` alone does): the demo world and a development token
    /// issuer unless a config file says otherwise.
    Serve {
        /// The signaling server's TOML configuration (see docs/protocol.md).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Describe the built-in demo world and exit.
    Demo,
    /// Work with world files: validate, format, import Tiled maps.
    #[command(subcommand)]
    World(world_cli::WorldCommand),
    /// Moderate a running server: kick, mute, ban, lock zones, notices, the audit log
    /// (docs/moderation.md).
    Admin(admin_cli::AdminArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::World(command)) => world_cli::run(command),
        Some(Command::Admin(args)) => admin_cli::run(args),
        Some(Command::Demo) => world_cli::describe_demo(),
        Some(Command::Serve { config }) => serve::run(config.as_deref()),
        None => serve::run(None),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
