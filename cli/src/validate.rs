//! `eventwire validate`: check self-describing events against schemas, without a server.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use eventwire_collector::registry::{Registry, Source};
use eventwire_collector::validate::{resolve_all, schema_uris, Limits, Pipeline};
use serde_json::Value;

/// Arguments of `eventwire validate`.
#[derive(Debug, clap::Args)]
pub struct ValidateArgs {
    /// Schema registry: a directory in Iglu layout, or an http(s) base URL serving one.
    #[arg(long, default_value = "schemas")]
    schemas: String,
    /// A JSONL file, one `{"schema":…,"data":…,"entities":[…]}` per line (`-` for stdin).
    file: PathBuf,
}

/// Validates every line with the collector's own checks; exit status 1 when any is invalid.
pub fn run(args: ValidateArgs) -> anyhow::Result<ExitCode> {
    let input: Box<dyn std::io::Read> = if args.file.as_os_str() == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        Box::new(
            File::open(&args.file)
                .with_context(|| format!("cannot open {}", args.file.display()))?,
        )
    };
    let registry =
        Registry::new(Source::parse(&args.schemas)).context("cannot open the schema registry")?;
    let pipeline = Pipeline::new(Limits::default()).map_err(anyhow::Error::msg)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    let (mut valid, mut invalid) = (0u64, 0u64);
    for (n, line) in BufReader::new(input).lines().enumerate() {
        let n = n + 1;
        let line = match line {
            Ok(l) => l,
            Err(e) => {
                invalid += 1;
                println!("line {n}: cannot read: {e}");
                continue;
            }
        };
        if line.trim().is_empty() {
            continue;
        }
        let event: Value = match serde_json::from_str(&line) {
            Ok(v @ Value::Object(_)) => v,
            Ok(_) => {
                invalid += 1;
                println!("line {n}: malformed: not a JSON object");
                continue;
            }
            Err(e) => {
                invalid += 1;
                println!("line {n}: malformed: {e}");
                continue;
            }
        };
        let schema = event
            .get("schema")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let data = event.get("data").unwrap_or(&Value::Null);
        let lookups = runtime
            .block_on(resolve_all(&registry, schema_uris(&event)))
            .map_err(anyhow::Error::msg)?;
        match pipeline.check_data(schema, data, event.get("entities"), &lookups) {
            Ok(()) => valid += 1,
            Err((code, errors)) => {
                invalid += 1;
                println!("line {n}: {code}");
                for e in errors {
                    println!(
                        "  {} ({}): {}",
                        if e.path.is_empty() { "/" } else { &e.path },
                        e.keyword,
                        e.message
                    );
                }
            }
        }
    }
    println!("{valid} valid, {invalid} invalid");
    Ok(if invalid == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
