//! `eventwire`: one binary for the whole loop (DESIGN §5).

use std::process::ExitCode;

// mimalloc rather than the system allocator: the collector allocates per event from several
// threads, and glibc's malloc was a quarter of its profile (docs/benchmarks.md, issue 17).
#[cfg(feature = "native")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::{Parser, Subcommand};

/// Types generated from `schemas/` by `build.rs`.
#[cfg(feature = "native")]
#[allow(missing_docs)]
mod events {
    include!(concat!(env!("OUT_DIR"), "/eventwire_events.rs"));
}

// Without the `native` feature (the WASI build of the npm CLI): codegen, lint, validate.
mod codegen;
#[cfg(feature = "native")]
mod collect;
#[cfg(feature = "native")]
mod demo;
#[cfg(feature = "native")]
mod kafka_args;
mod lint;
#[cfg(feature = "native")]
mod pii;
#[cfg(feature = "native")]
mod process;
#[cfg(feature = "native")]
mod replay;
#[cfg(feature = "native")]
mod send;
#[cfg(feature = "native")]
mod signals;
mod validate;

/// eventwire: typed analytics events, delivered without loss.
#[derive(Debug, Parser)]
#[command(name = "eventwire", version, about, long_about = None)]
#[cfg_attr(
    not(feature = "native"),
    command(
        about = "eventwire for web developers: codegen, lint and validate (the npm build; collect, send, process, pii and demo are in the native binary: cargo install eventwire-cli)"
    )
)]
struct Cli {
    /// Log filter for diagnostics on stderr, e.g. `info` or `eventwire=debug` (default:
    /// `warn`; `error` for `demo`, whose rejections are on purpose).
    #[arg(long, global = true, env = "EVENTWIRE_LOG")]
    log: Option<String>,
    /// Log format on stderr: `text` (the default), or `json` (one object per line, for log
    /// pipelines).
    #[arg(long, global = true, value_enum, env = "EVENTWIRE_LOG_FORMAT")]
    log_format: Option<LogFormat>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the whole loop on embedded defaults: collector, tracker, good and bad events.
    #[cfg(feature = "native")]
    Demo(demo::DemoArgs),
    /// Generate typed event code from schemas.
    Codegen(codegen::CodegenArgs),
    /// Run the collector.
    #[cfg(feature = "native")]
    Collect(collect::CollectArgs),
    /// Check schemas: layout, draft 4, SchemaVer discipline between versions.
    Lint(lint::LintArgs),
    /// Run a worker of the consumer group after the collectors: exact dedup per Kafka
    /// partition, first occurrences to an output, unique users by any dimension.
    #[cfg(feature = "native")]
    Process(process::ProcessArgs),
    /// Personal data: make the key pair marked fields are sealed to, open sealed events.
    #[cfg(feature = "native")]
    Pii(pii::PiiArgs),
    /// Send self-describing events (`{"schema":…,"data":…}` per line) to a collector.
    #[cfg(feature = "native")]
    Send(send::SendArgs),
    /// Send dead letters to a collector again, with their original ids, once their schema
    /// is fixed (`--dry-run`: which would now pass).
    #[cfg(feature = "native")]
    Replay(replay::ReplayArgs),
    /// Check self-describing events against schemas, without a server.
    Validate(validate::ValidateArgs),
}

fn main() -> ExitCode {
    // Under node's WASI (the npm CLI) the host's root is preopened at `/`: start in the
    // shell's directory, so relative paths mean what they mean to the native binary.
    #[cfg(target_os = "wasi")]
    if let Some(dir) = std::env::var_os("EVENTWIRE_WASI_CWD") {
        if let Err(e) = std::env::set_current_dir(&dir) {
            eprintln!(
                "error: cannot enter {}: {e}",
                std::path::Path::new(&dir).display()
            );
            return ExitCode::from(2);
        }
    }
    let cli = Cli::parse();
    // `collect --config FILE` may set the logging too: read it first.
    #[cfg(feature = "native")]
    let file = match &cli.command {
        Command::Collect(args) => match args.file() {
            Ok(file) => file,
            Err(e) => return fail(&e),
        },
        _ => collect::FileSettings::default(),
    };
    #[cfg(feature = "native")]
    let (file_log, file_log_format) = (file.log.clone(), file.log_format.clone());
    #[cfg(not(feature = "native"))]
    let (file_log, file_log_format): (Option<String>, Option<String>) = (None, None);
    let default_log = match cli.command {
        #[cfg(feature = "native")]
        Command::Demo(_) => "error",
        _ => "warn",
    };
    let filter = tracing_subscriber::EnvFilter::new(
        cli.log
            .as_deref()
            .or(file_log.as_deref())
            .unwrap_or(default_log),
    );
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let json = match cli.log_format {
        Some(format) => matches!(format, LogFormat::Json),
        None => file_log_format.as_deref() == Some("json"),
    };
    if json {
        logs.json().init();
    } else {
        logs.init();
    }
    let result = match cli.command {
        #[cfg(feature = "native")]
        Command::Demo(args) => demo::run(args),
        Command::Codegen(args) => codegen::run(args),
        #[cfg(feature = "native")]
        Command::Collect(args) => collect::run(args, file),
        Command::Lint(args) => lint::run(args),
        #[cfg(feature = "native")]
        Command::Process(args) => process::run(args),
        #[cfg(feature = "native")]
        Command::Pii(args) => pii::run(args),
        #[cfg(feature = "native")]
        Command::Send(args) => send::run(args),
        #[cfg(feature = "native")]
        Command::Replay(args) => replay::run(args),
        Command::Validate(args) => validate::run(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => fail(&e),
    }
}

/// Prints `error` and its causes on one line, and gives the status of a failed command.
fn fail(error: &anyhow::Error) -> ExitCode {
    eprintln!("error: {}", without_os_error_numbers(&format!("{error:#}")));
    ExitCode::from(2)
}

/// `text` without the `(os error N)` that `std::io::Error` appends: the number is the
/// platform's (WASI's ENOENT is 44, Linux's 2), the words before it say the same, and the
/// npm build's messages are the native binary's.
pub(crate) fn without_os_error_numbers(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(" (os error ") {
        let after = &rest[at + " (os error ".len()..];
        let digits = after.bytes().take_while(u8::is_ascii_digit).count();
        if digits > 0 && after[digits..].starts_with(')') {
            out.push_str(&rest[..at]);
            rest = &after[digits + 1..];
        } else {
            out.push_str(&rest[..at + 1]);
            rest = &rest[at + 1..];
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::without_os_error_numbers as plain;

    #[test]
    fn os_error_numbers_are_left_out_and_nothing_else() {
        for (text, want) in [
            (
                "cannot open x: No such file or directory (os error 2)",
                "cannot open x: No such file or directory",
            ),
            ("a (os error 44): b (os error 13)", "a: b"),
            (
                "kept (os error) and (os error x) and (os error 1",
                "kept (os error) and (os error x) and (os error 1",
            ),
            ("", ""),
        ] {
            assert_eq!(plain(text), want, "{text}");
        }
    }
}
