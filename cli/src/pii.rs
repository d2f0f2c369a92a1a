//! `eventwire pii`: the key pair personal data is sealed to, and opening sealed events.

use std::fs::File;
use std::io::{BufRead, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use eventwire_collector::registry::{Registry, Source, View};
use eventwire_collector::validate::{resolve_all, schema_uris, Limits, Pipeline};
use eventwire_pii::{is_sealed, open, Keyring, PrivateKey};

use crate::validate::printable;
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
    anyhow::ensure!(
        public != private,
        "--public and --private are the same file"
    );
    let key = PrivateKey::generate();
    for path in [public, private] {
        anyhow::ensure!(
            !path.exists() && path.symlink_metadata().is_err(),
            "{} exists: not replacing a key (remove it first if that is what you want)",
            path.display()
        );
    }
    write_new(private, &format!("{}\n", key.to_text()), 0o600)
        .with_context(|| format!("cannot write the private key to {}", private.display()))?;
    if let Err(e) = write_new(public, &format!("{}\n", key.public_key().to_text()), 0o644) {
        // No private key without its public key: a re-run starts clean.
        let _ = std::fs::remove_file(private);
        return Err(e)
            .with_context(|| format!("cannot write the public key to {}", public.display()));
    }
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
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        if let Ok(meta) = std::fs::metadata(path) {
            if meta.permissions().mode() & 0o077 != 0 {
                eprintln!(
                    "warning: the private key {} can be read by others than its owner (chmod 600 it)",
                    path.display()
                );
            }
        }
    }
    PrivateKey::parse(text.trim_start_matches('\u{feff}'))
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
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
    // The opened events are checked against their schemas as written (not as a collector
    // sees them, sealed).
    let registry = Registry::new(Source::parse(schemas))
        .context("cannot open the schema registry")?
        .view(View::Opened);
    let pipeline = Pipeline::new(Limits::default()).map_err(anyhow::Error::msg)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    let mut stdout = std::io::BufWriter::new(std::io::stdout().lock());
    let (mut lines, mut opened, mut failed) = (0u64, 0u64, 0u64);
    let mut reader = BufReader::new(input);
    let mut raw = Vec::new();
    let mut n = 0usize;
    loop {
        raw.clear();
        if reader
            .read_until(b'\n', &mut raw)
            .with_context(|| format!("line {}: cannot read", n + 1))?
            == 0
        {
            break;
        }
        n += 1;
        let Ok(line) = std::str::from_utf8(&raw) else {
            lines += 1;
            failed += 1;
            eprintln!("line {n}: not UTF-8; skipped");
            continue;
        };
        let line = line.trim_end_matches(['\n', '\r']);
        if line.trim().is_empty() {
            continue;
        }
        lines += 1;
        let (event, errors) = match open_line(line, &ring, &registry, &pipeline, &runtime) {
            Ok(done) => done,
            Err(why) => {
                failed += 1;
                eprintln!("line {n}: {why}; skipped");
                continue;
            }
        };
        for e in &errors {
            eprintln!("line {n}: {e}");
        }
        opened += event.1;
        failed += u64::from(!errors.is_empty());
        serde_json::to_writer(&mut stdout, &event.0).context("cannot write to stdout")?;
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

/// One line: the event with what opened opened, how many fields opened, and the errors
/// (each naming its field, never quoting a value). `Err`: the line is not an event at all.
fn open_line(
    line: &str,
    ring: &Keyring,
    registry: &Registry,
    pipeline: &Pipeline,
    runtime: &tokio::runtime::Runtime,
) -> Result<((Value, u64), Vec<String>), String> {
    // A good line is the event plus the collector's members (times, sealed values as
    // received): bounded by a request body, not by an event.
    if line.len() > eventwire_schema::protocol::MAX_BODY_BYTES {
        return Err(format!(
            "too large ({} bytes, over {})",
            line.len(),
            eventwire_schema::protocol::MAX_BODY_BYTES
        ));
    }
    let mut event: Value = match serde_json::from_str(line) {
        Ok(v @ Value::Object(_)) => v,
        _ => return Err("not a JSON object".into()),
    };
    let event_id = match event.get("event_id").and_then(Value::as_str) {
        Some(id) if uuid::Uuid::parse_str(id).is_ok() => id.to_owned(),
        _ => return Err("its event_id is not a UUID".into()),
    };
    let mut errors = Vec::new();
    let mut opened = 0u64;
    for (pointer, schema, sealed) in sealed_fields(&event) {
        match open(ring, &event_id, &schema, &pointer, &sealed) {
            Ok(value) => {
                if let Some(slot) = event.pointer_mut(&pointer) {
                    *slot = value;
                    opened += 1;
                }
            }
            Err(e) => errors.push(format!("{}: {e}", printable(&pointer))),
        }
    }
    if errors.is_empty() {
        let schema = event
            .get("schema")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let data = event.get("data").unwrap_or(&Value::Null);
        match runtime.block_on(resolve_all(registry, schema_uris(&event))) {
            Err(e) => errors.push(format!(
                "not checked against its schema: {}",
                printable(&e.to_string())
            )),
            Ok(lookups) => {
                if let Err((code, details)) =
                    pipeline.check_data(schema, data, event.get("entities"), &lookups)
                {
                    // Path and keyword only: a validator's message quotes the value, which
                    // here is the plaintext.
                    for d in details {
                        errors.push(format!(
                            "{}: {} ({})",
                            code.as_str(),
                            printable(if d.path.is_empty() { "/" } else { &d.path }),
                            printable(&d.keyword)
                        ));
                    }
                }
            }
        }
    }
    Ok(((event, opened), errors))
}

/// The sealed values of an event's `data` and of each entity's `data`, with their pointers
/// into the event (`/data/email`, `/entities/0/data/phones/1`) and their schema (the
/// event's, or the entity's): what the tracker sealed them under.
fn sealed_fields(event: &Value) -> Vec<(String, String, String)> {
    let schema_of = |v: &Value| {
        v.get("schema")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let mut out = Vec::new();
    if let Some(data) = event.get("data") {
        let mut found = Vec::new();
        strings(data, "/data".to_owned(), &mut found);
        let schema = schema_of(event);
        out.extend(found.into_iter().map(|(p, s)| (p, schema.clone(), s)));
    }
    if let Some(Value::Array(entities)) = event.get("entities") {
        for (i, entity) in entities.iter().enumerate() {
            if let Some(data) = entity.get("data") {
                let mut found = Vec::new();
                strings(data, format!("/entities/{i}/data"), &mut found);
                let schema = schema_of(entity);
                out.extend(found.into_iter().map(|(p, s)| (p, schema.clone(), s)));
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
                    format!("{at}/{}", eventwire_schema::pointer::escape(k)),
                    out,
                );
            }
        }
        _ => {}
    }
}
