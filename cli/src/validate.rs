//! `eventwire validate`: check self-describing events against schemas, without a server.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use eventwire_validate::record::ErrorDetail;
use eventwire_validate::registry::{Registry, Source, View};
use eventwire_validate::validate::{resolve_all, schema_uris, shape_violation, Limits, Pipeline};
use serde_json::Value;

/// Arguments of `eventwire validate`.
#[derive(Debug, clap::Args)]
pub struct ValidateArgs {
    /// Schema registry: a directory in Iglu layout, or an http(s) base URL serving one.
    #[cfg_attr(
        not(feature = "native"),
        arg(
            help = "Schema registry: a directory in Iglu layout (registries over HTTP: the native binary)"
        )
    )]
    #[arg(long, default_value = "schemas")]
    schemas: String,
    /// A JSONL file, one `{"schema":…,"data":…,"entities":[…]}` per line (`-` for stdin).
    file: PathBuf,
}

/// Validates every line with the collector's own checks — its limits (size, depth, string
/// length: `too_large`) and its schemas — in its order; exit status 1 when any is invalid.
pub fn run(args: ValidateArgs) -> anyhow::Result<ExitCode> {
    if args.file.is_dir() {
        anyhow::bail!(
            "{} is a directory, not a file of events",
            args.file.display()
        );
    }
    let input: Box<dyn std::io::Read> = if args.file.as_os_str() == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        Box::new(
            File::open(&args.file)
                .with_context(|| format!("cannot open {}", args.file.display()))?,
        )
    };
    let registry = Registry::new(Source::parse(&args.schemas))
        .context("cannot open the schema registry")?
        // Lines as an app gives them to a tracker: personal data in clear, checked
        // against the schemas as written (a tracker seals it before sending).
        .view(View::Opened);
    let pipeline = Pipeline::new(Limits::default()).map_err(anyhow::Error::msg)?;
    let runtime = Runtime::new()?;
    let (mut valid, mut invalid) = (0u64, 0u64);
    let mut unreadable = None;
    for (n, line) in BufReader::new(input).lines().enumerate() {
        let n = n + 1;
        let line = match line {
            Ok(l) => l,
            // A line that is not UTF-8 was read past: that line is bad, the next is read.
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                invalid += 1;
                println!("line {n}: cannot read: {e}");
                continue;
            }
            // Anything else (a directory, a device error) would fail again: stop there.
            Err(e) => {
                unreadable = Some(e);
                break;
            }
        };
        if line.trim().is_empty() {
            continue;
        }
        if let Some(e) = pipeline.text_violation(line.as_bytes()) {
            invalid += 1;
            report(n, "too_large", &[e]);
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
                println!("line {n}: malformed: {}", printable(&e.to_string()));
                continue;
            }
        };
        if let Some(e) = shape_violation(&event, pipeline.limits()) {
            invalid += 1;
            report(n, "too_large", &[e]);
            continue;
        }
        let schema = event
            .get("schema")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let data = event.get("data").unwrap_or(&Value::Null);
        let lookups = runtime
            .block_on(resolve_all(&registry, schema_uris(&event)))?
            .map_err(anyhow::Error::msg)?;
        match pipeline.check_data(schema, data, event.get("entities"), &lookups) {
            Ok(()) => valid += 1,
            Err((code, errors)) => {
                invalid += 1;
                report(n, code.as_str(), &errors);
            }
        }
    }
    println!("{valid} valid, {invalid} invalid");
    if let Some(e) = unreadable {
        anyhow::bail!("cannot read {}: {e}", args.file.display());
    }
    Ok(if invalid == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Runs registry lookups to their end: on a tokio runtime natively (an HTTP registry awaits
/// the network); in the WASI build, whose registries are directories read without waiting,
/// by polling once.
struct Runtime {
    #[cfg(feature = "native")]
    tokio: tokio::runtime::Runtime,
}

impl Runtime {
    fn new() -> anyhow::Result<Runtime> {
        Ok(Runtime {
            #[cfg(feature = "native")]
            tokio: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("cannot start the runtime")?,
        })
    }

    #[cfg(feature = "native")]
    fn block_on<F: std::future::Future>(&self, future: F) -> anyhow::Result<F::Output> {
        Ok(self.tokio.block_on(future))
    }

    #[cfg(not(feature = "native"))]
    fn block_on<F: std::future::Future>(&self, future: F) -> anyhow::Result<F::Output> {
        let mut future = std::pin::pin!(future);
        let mut context = std::task::Context::from_waker(std::task::Waker::noop());
        match future.as_mut().poll(&mut context) {
            std::task::Poll::Ready(output) => Ok(output),
            std::task::Poll::Pending => {
                anyhow::bail!("a schema lookup waited on I/O, which this build does not do")
            }
        }
    }
}

/// One invalid line and its errors. Paths, keywords and messages come from the input (a
/// property name can hold a newline): every one is printed escaped, so a line of the report
/// is always one line, and no input can print a line of its own.
fn report(n: usize, code: &str, errors: &[ErrorDetail]) {
    println!("line {n}: {code}");
    for e in errors {
        let path = if e.path.is_empty() { "/" } else { &e.path };
        println!(
            "  {} ({}): {}",
            printable(path),
            printable(&e.keyword),
            printable(&e.message)
        );
    }
}

/// `text` with control characters (newlines, carriage returns, escapes, C1 controls), line
/// and paragraph separators (U+2028, U+2029) and bidirectional overrides written as
/// `\u{..}` escapes; a backslash is doubled, so an input that spells an escape cannot pass
/// for one.
pub(crate) fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    let unsafe_char = |c: char| {
        c.is_control()
            || matches!(
                c,
                '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
            )
    };
    if !text.chars().any(|c| c == '\\' || unsafe_char(c)) {
        return text.into();
    }
    let mut shown = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c == '\\' {
            shown.push_str("\\\\");
        } else if unsafe_char(c) {
            shown.extend(c.escape_unicode());
        } else {
            shown.push(c);
        }
    }
    shown.into()
}

#[cfg(test)]
mod tests {
    use super::printable;

    #[test]
    fn untrusted_text_prints_on_one_line() {
        let table = [
            ("/data/a", "/data/a"),
            ("/data/a\nb", "/data/a\\u{a}b"),
            ("x\r\n0 valid, 0 invalid", "x\\u{d}\\u{a}0 valid, 0 invalid"),
            ("\u{1b}[2J", "\\u{1b}[2J"),
            ("abc\u{202e}def", "abc\\u{202e}def"),
            ("ünïcödé ✓", "ünïcödé ✓"),
            ("a\u{2028}b\u{2029}c", "a\\u{2028}b\\u{2029}c"),
            ("spelled \\u{a} escape", "spelled \\\\u{a} escape"),
            ("C:\\x", "C:\\\\x"),
        ];
        for (input, shown) in table {
            assert_eq!(printable(input), shown, "{input:?}");
        }
    }
}
