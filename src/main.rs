//! `isoplane`: the all-in-one binary and its admin subcommands.
//!
//! Subcommands live in their own modules (`world_cli` for world files); `main` only
//! parses arguments and maps results to an exit code.

mod world_cli;

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
    /// Work with world files: validate, format, import Tiled maps.
    #[command(subcommand)]
    World(world_cli::WorldCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::World(command)) => world_cli::run(command),
        None => world_cli::describe_demo(),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
