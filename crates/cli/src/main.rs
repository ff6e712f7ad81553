//! `sluice`: the one binary. It parses the command line and hands each command to its
//! module in [`commands`]; everything of substance lives in the library crates.

mod cli;
mod commands;
mod context;
mod output;

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = cli::Cli::parse();
    commands::run(cli)
}
