//! `eventwire pii`: the key pair personal data is sealed to, and opening sealed events.

use std::fs::File;
use std::io::{BufRead, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use eventwire_collector::registry::{Registry, Source};
use eventwire_collector::validate::{resolve_all, schema_uris, Limits, Pipeline};
use eventwire_pii::{is_sealed, open, Keyring, PrivateKey};
use serde_json::Value;

/// Arguments of `eventwire pii`.
#[derive(Debug, clap::Args)]
pub struct PiiArgs {
    #[command(subcommand)]
    command: PiiCommand,
}

#[derive(Debug, clap::Subcommand)]
enum PiiCommand {
    /// Make a key pair: the public key (`ewpk1.…`) for trackers, the private key (`ewsk1.…`,
    /// written readable by its owner only) for `pii open`. Existing files are not replaced.
    Keygen {
        /// Where the public key goes.
        #[arg(long)]
        public: PathBuf,
        /// Where the private key goes (created with mode 0600).
        #[arg(long)]
        private: PathBuf,
    },
    /// Open the sealed fields of good lines (a file, or `-` for stdin) and write the lines
    /// with their plaintext to stdout, each checked against its schema; a field that does
    /// not open stays sealed and is reported on stderr with why (exit status 1).
    Open {
        /// The private key (`ewsk1.…`).
        #[arg(long = "private-key")]
        private_key: PathBuf,
        /// More private keys, e.g. keys rotated out (repeat).
        #[arg(long = "key")]
        keys: Vec<PathBuf>,
        /// Schema registry the opened events are checked against: a directory in Iglu
        /// layout, or an http(s) base URL serving one.
        #[arg(long, default_value = "schemas")]
        schemas: String,
        /// Good lines, one event per line (`-` for stdin).
        #[arg(default_value = "-")]
        file: PathBuf,
    },
}

/// Runs `eventwire pii …`.
pub fn run(args: PiiArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        PiiCommand::Keygen { public, private } => keygen(&public, &private),
        PiiCommand::Open {
            private_key,
            keys,
            schemas,
            file,
        } => open_lines(&private_key, &keys, &schemas, &file),
    }
}

fn keygen(public: &Path, private: &Path) -> anyhow::Result<ExitCode> {
    let key = PrivateKey::generate();
    for path in [public, private] {
        anyhow::ensure!(
            !path.exists(),
            "{} exists: not replacing a key (remove it first if that is what you want)",
            path.display()
        );
    }
    write_new(private, &format!("{}\n", key.to_text()), 0o600)
        .with_context(|| format!("cannot write the private key to {}", private.display()))?;
    write_new(public, &format!("{}\n", key.public_key().to_text()), 0o644)
        .with_context(|| format!("cannot write the public key to {}", public.display()))?;
    eprintln!(
        "key {}: public key in {}, private key in {} (readable by its owner only)",
        key.public_key().key_id(),
        public.display(),
        private.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// Creates `path` (never replacing a file) with `mode` on Unix, and writes `text`.
fn write_new(path: &Path, text: &str, mode: u32) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut file = options.open(path)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()
}

fn read_key(path: &Path) -> anyhow::Result<PrivateKey> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the private key {}", path.display()))?;
    PrivateKey::parse(&text).with_context(|| format!("{}", path.display()))
}

fn open_lines(
    private_key: &Path,
    more: &[PathBuf],
    schemas: &str,
    file: &Path,
) -> anyhow::Result<ExitCode> {
    let mut ring = Keyring::from(read_key(private_key)?);
    for path in more {
        ring.add(read_key(path)?);
    }
    let input: Box<dyn std::io::Read> = if file.as_os_str() == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        Box::new(File::open(file).with_context(|| format!("cannot open {}", file.display()))?)
    };
    let registry =
        Registry::new(Source::parse(schemas)).context("cannot open the schema registry")?;
    let pipeline = Pipeline::new(Limits::default()).map_err(anyhow::Error::msg)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    let mut stdout = std::io::BufWriter::new(std::io::stdout().lock());
    let (mut lines, mut opened, mut failed) = (0u64, 0u64, 0u64);
    for (n, line) in BufReader::new(input).lines().enumerate() {
        let n = n + 1;
        let line = line.with_context(|| format!("line {n}: cannot read"))?;
        if line.trim().is_empty() {
            continue;
        }
        lines += 1;
        let mut event: Value = match serde_json::from_str(&line) {
            Ok(v @ Value::Object(_)) => v,
            _ => {
                failed += 1;
                eprintln!("line {n}: not a JSON object; skipped");
                continue;
            }
        };
        let event_id = event
            .get("event_id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let mut errors = 0u64;
        for (pointer, sealed) in sealed_fields(&event) {
            match open(&ring, &event_id, &pointer, &sealed) {
                Ok(value) => {
                    if let Some(slot) = event.pointer_mut(&pointer) {
                        *slot = value;
                        opened += 1;
                    }
                }
                Err(e) => {
                    errors += 1;
                    eprintln!("line {n}: {pointer}: {e}");
                }
            }
        }
        if errors == 0 {
            let schema = event
                .get("schema")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let lookups = runtime
                .block_on(resolve_all(&registry, schema_uris(&event)))
                .map_err(anyhow::Error::msg)?;
            let data = event.get("data").unwrap_or(&Value::Null);
            if let Err((code, details)) =
                pipeline.check_data(schema, data, event.get("entities"), &lookups)
            {
                errors += 1;
                for d in details {
                    eprintln!(
                        "line {n}: opened, but {}: {} ({}): {}",
                        code.as_str(),
                        d.path,
                        d.keyword,
                        d.message
                    );
                }
            }
        }
        failed += u64::from(errors > 0);
        serde_json::to_writer(&mut stdout, &event).context("cannot write to stdout")?;
        stdout.write_all(b"\n").context("cannot write to stdout")?;
    }
    stdout.flush().context("cannot write to stdout")?;
    eprintln!("{lines} lines, {opened} fields opened, {failed} lines with errors");
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The sealed values of an event's `data` and of each entity's `data`, with their pointers
/// into the event (`/data/email`, `/entities/0/data/phones/1`): the pointers the tracker
/// sealed them under.
fn sealed_fields(event: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if let Some(data) = event.get("data") {
        strings(data, "/data".to_owned(), &mut out);
    }
    if let Some(Value::Array(entities)) = event.get("entities") {
        for (i, entity) in entities.iter().enumerate() {
            if let Some(data) = entity.get("data") {
                strings(data, format!("/entities/{i}/data"), &mut out);
            }
        }
    }
    out
}

fn strings(value: &Value, at: String, out: &mut Vec<(String, String)>) {
    match value {
        Value::String(s) if is_sealed(s) => out.push((at, s.clone())),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                strings(item, format!("{at}/{i}"), out);
            }
        }
        Value::Object(map) => {
            for (k, v) in map {
                strings(
                    v,
                    format!("{at}/{}", k.replace('~', "~0").replace('/', "~1")),
                    out,
                );
            }
        }
        _ => {}
    }
}
