//! `eventwire`: one binary for the whole loop (DESIGN §5).

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod send;

/// eventwire: typed analytics events, delivered without loss.
#[derive(Debug, Parser)]
#[command(name = "eventwire", version, about, long_about = None)]
struct Cli {
    /// Log level filter for diagnostics on stderr (e.g. `warn`, `eventwire=debug`).
    #[arg(long, global = true, env = "EVENTWIRE_LOG", default_value = "warn")]
    log: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Send self-describing events (`{"schema":…,"data":…}` per line) to a collector.
    Send(send::SendArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(&cli.log))
        .with_writer(std::io::stderr)
        .init();
    let result = match cli.command {
        Command::Send(args) => send::run(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
