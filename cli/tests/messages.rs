//! Messages a person can act on: each cause printed once, and a tracker that cannot deliver
//! says why at the first failure.

#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{eventwire, repo};

/// The kind: an error whose message shows its cause (`{source}`, `{0}` of a `#[from]`) and
/// that also returns it from `source()` prints the cause twice under `{:#}` (anyhow, eyre,
/// our `main`). Every `#[error(…)]` of the workspace is read: a variant that interpolates
/// its source field fails this test, naming the file and line.
#[test]
fn no_error_shows_its_source_in_its_own_message() {
    let mut found = Vec::new();
    let mut files = Vec::new();
    for dir in [
        "schema",
        "pii",
        "sdk-core",
        "sdk-wasm",
        "codegen",
        "validate",
        "collector",
        "process",
        "cli",
        "testkit",
    ] {
        rust_files(&repo().join(dir).join("src"), &mut files);
    }
    assert!(files.len() > 50, "only {} files read", files.len());
    let mut variants = 0;
    let mut with_source = 0;
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let mut at = 0;
        while let Some(start) = text[at..].find("#[error(") {
            let start = at + start;
            at = start + 8;
            let Some((message, after)) = attribute(&text[start + 8..]) else {
                continue;
            };
            if message.trim() == "transparent" {
                continue;
            }
            variants += 1;
            let body = variant_body(&text[start + 8 + after..]);
            let tuple = body.starts_with('(');
            // The field that is the source: `#[from]`/`#[source]`, or one named `source`.
            let source_field: Option<String> = if tuple {
                body.find("#[from]")
                    .or_else(|| body.find("#[source]"))
                    .map(|i| body[..i].matches(',').count().to_string())
            } else {
                fields(&body)
                    .into_iter()
                    .find(|(attrs, name)| {
                        name == "source" || attrs.contains("#[from]") || attrs.contains("#[source]")
                    })
                    .map(|(_, name)| name)
            };
            let Some(field) = source_field else { continue };
            with_source += 1;
            let shows = message.contains(&format!("{{{field}}}"))
                || message.contains(&format!("{{{field}:"))
                || message.contains(&format!(".{field}"));
            if shows {
                let line = text[..start].matches('\n').count() + 1;
                found.push(format!(
                    "{}:{line}: #[error({message})] shows its source `{field}`",
                    file.strip_prefix(repo()).unwrap_or(file).display()
                ));
            }
        }
    }
    assert!(variants > 40, "only {variants} error variants read");
    assert!(found.is_empty(), "{}", found.join("\n"));
    // The reading finds the ones that keep a source (and print it only through the chain).
    assert!(
        with_source >= 2,
        "only {with_source} variants with a source found"
    );
}

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The attribute's inside (up to its closing parenthesis, strings respected) and how far
/// past it the text goes.
fn attribute(text: &str) -> Option<(String, usize)> {
    let (mut depth, mut in_string, mut escaped) = (1, false, false);
    for (i, c) in text.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if in_string => escaped = true,
            '"' => in_string = !in_string,
            '(' if !in_string => depth += 1,
            ')' if !in_string => {
                depth -= 1;
                if depth == 0 {
                    return Some((text[..i].to_owned(), i + 1));
                }
            }
            _ => {}
        }
    }
    None
}

/// The variant after an `#[error]`: its fields, `(…)` or `{…}` (empty for a unit variant).
fn variant_body(text: &str) -> String {
    // Skip doc comments and other attributes, then the name.
    let mut rest = text.strip_prefix(']').unwrap_or(text);
    loop {
        rest = rest.trim_start();
        if rest.starts_with("///") || rest.starts_with("//") {
            rest = rest.split_once('\n').map_or("", |(_, r)| r);
        } else if rest.starts_with("#[") {
            rest = rest.split_once(']').map_or("", |(_, r)| r);
        } else {
            break;
        }
    }
    let name_end = rest
        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(rest.len());
    let after = rest[name_end..].trim_start();
    let (open, close) = match after.chars().next() {
        Some('(') => ('(', ')'),
        Some('{') => ('{', '}'),
        _ => return String::new(),
    };
    let mut depth = 0;
    for (i, c) in after.char_indices() {
        if c == open {
            depth += 1;
        } else if c == close {
            depth -= 1;
            if depth == 0 {
                return after[..=i].to_owned();
            }
        }
    }
    String::new()
}

/// The named fields of `{ … }`, each with the attributes before it.
fn fields(body: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut attrs = String::new();
    for line in body.trim_matches(|c| c == '{' || c == '}').lines() {
        let line = line.trim();
        if line.starts_with("#[") {
            attrs.push_str(line);
        } else if let Some((name, _)) = line.split_once(':') {
            if !line.starts_with("//") {
                out.push((std::mem::take(&mut attrs), name.trim().to_owned()));
            }
        }
    }
    out
}

/// Each I/O failure a command meets is said once, with what and where.
#[test]
fn each_cause_is_printed_once() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing");
    let missing = missing.to_str().unwrap();
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy = busy.local_addr().unwrap().to_string();
    let good = dir.path().join("good.jsonl");
    let good = good.to_str().unwrap();
    // A file where a directory should be.
    let file = dir.path().join("a-file");
    std::fs::write(&file, "").unwrap();
    let under_file = format!("{}/good.jsonl", file.display());
    let bad = dir.path().join("bad.jsonl");
    let bad = bad.to_str().unwrap();
    for (args, cause, says) in [
        (
            vec![
                "collect",
                "--schemas",
                missing,
                "--good",
                good,
                "--bad",
                bad,
            ],
            "No such file or directory",
            format!("schema directory {missing}"),
        ),
        (
            vec!["collect", "--good", &under_file, "--bad", bad],
            "File exists",
            format!("file:{under_file}"),
        ),
        (
            vec!["collect", "--listen", &busy, "--good", good, "--bad", bad],
            "Address already in use",
            "cannot listen".to_owned(),
        ),
        (
            vec!["collect", "--config", missing],
            "No such file or directory",
            format!("cannot read {missing}"),
        ),
        (
            vec!["validate", "--schemas", missing, "-"],
            "No such file or directory",
            missing.to_owned(),
        ),
        (
            vec![
                "codegen",
                "--schemas",
                missing,
                "--lang",
                "ts",
                "--out",
                good,
            ],
            "No such file or directory",
            missing.to_owned(),
        ),
        (
            vec!["lint", "--schemas", missing],
            "is not a directory",
            missing.to_owned(),
        ),
        (
            vec!["pii", "open", "--private-key", missing, good],
            "No such file or directory",
            missing.to_owned(),
        ),
    ] {
        let out = output_within(eventwire().args(&args), Duration::from_secs(20));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?}: {stderr}");
        assert_eq!(
            stderr.matches(cause).count(),
            1,
            "{args:?}: the cause once\n{stderr}"
        );
        assert!(stderr.contains(&says), "{args:?}: says {says:?}\n{stderr}");
        assert!(!stderr.contains("os error"), "{args:?}\n{stderr}");
    }
}

/// Runs `command`; kills it if it has not ended within `limit` (a collector that started
/// when it should have refused to), and fails.
fn output_within(command: &mut std::process::Command, limit: Duration) -> std::process::Output {
    let mut child = command
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > limit {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "still running after {limit:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

/// `send` to a collector that is not there says so at the first failure, with where, and
/// not at every retry; a TLS URL for a plain-HTTP collector is named as such.
#[test]
fn send_says_what_went_wrong_at_the_first_failure() {
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("events.jsonl");
    std::fs::write(
        &events,
        "{\"schema\":\"iglu:com.example.web/search/jsonschema/1-0-0\",\"data\":{\"query\":\"a\",\"results_count\":1}}\n",
    )
    .unwrap();
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // The port is free again: connections are refused.
    let started = Instant::now();
    let out = eventwire()
        .args(["send", "--timeout", "3", "--endpoint"])
        .arg(format!("http://127.0.0.1:{closed}"))
        .arg(&events)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(10));
    let said = format!("cannot connect to 127.0.0.1:{closed}: connection refused");
    // Several retries in 3 s, said once (again only after 30 s).
    assert_eq!(stderr.matches(&said).count(), 1, "{stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("shut_down: 1"), "{stdout}");
    let retries: u64 = stdout
        .split("requests, ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap();
    assert!(retries >= 2, "{stdout}");

    // https:// to a collector that speaks plain HTTP.
    let listen = format!(
        "127.0.0.1:{}",
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    );
    let mut collector = eventwire()
        .args(["collect", "--listen", &listen, "--good"])
        .arg(dir.path().join("good.jsonl"))
        .arg("--bad")
        .arg(dir.path().join("bad.jsonl"))
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let up = Instant::now();
    while std::net::TcpStream::connect(&listen).is_err() {
        assert!(up.elapsed() < Duration::from_secs(10));
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = eventwire()
        .args(["send", "--timeout", "2", "--endpoint"])
        .arg(format!("https://{listen}"))
        .arg(&events)
        .output()
        .unwrap();
    let _ = collector.kill();
    let _ = collector.wait();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "TLS handshake with {listen} failed: it does not speak TLS (an http:// collector given as https://?)"
        )),
        "{stderr}"
    );
}
