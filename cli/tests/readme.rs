//! The README's Rust quickstart, run as a newcomer would: its `Cargo.toml` lines and its
//! `main` verbatim (only the collector's address changed to a free port), built outside the
//! workspace and run against `eventwire collect` on the repository's `schemas/`. Both of its
//! events must be stored and none dead-lettered (it once tracked a schema `schemas/` does
//! not have).

#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{eventwire, repo};
use serde_json::Value;

/// The fenced blocks of the README section `title`, as (language, text), in order.
fn blocks(readme: &str, title: &str) -> Vec<(String, String)> {
    let start = readme
        .find(&format!("\n## {title}\n"))
        .unwrap_or_else(|| panic!("README has no section {title:?}"));
    let section = &readme[start + 1..];
    let end = section[3..].find("\n## ").map_or(section.len(), |e| e + 3);
    let mut out = Vec::new();
    let mut lines = section[..end].lines();
    while let Some(line) = lines.next() {
        if let Some(lang) = line.strip_prefix("```") {
            let body: Vec<&str> = lines.by_ref().take_while(|l| *l != "```").collect();
            out.push((lang.to_owned(), body.join("\n") + "\n"));
        }
    }
    out
}

fn lines(path: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn the_rust_quickstart_delivers_both_events_to_a_collector() {
    let repo = repo();
    let readme = std::fs::read_to_string(repo.join("README.md")).unwrap();
    let blocks = blocks(&readme, "Rust quickstart");
    let toml = &blocks
        .iter()
        .find(|(lang, _)| lang == "toml")
        .expect("the quickstart gives Cargo.toml lines")
        .1;
    let main = &blocks
        .iter()
        .find(|(lang, text)| lang == "rust" && text.contains("fn main"))
        .expect("the quickstart gives a main")
        .1;
    const ENDPOINT: &str = "http://127.0.0.1:8080";
    assert!(main.contains(ENDPOINT), "the quickstart's endpoint moved");

    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let mut collector = eventwire()
        .args(["collect", "--listen", &listen, "--good"])
        .arg(dir.path().join("good.jsonl"))
        .arg("--bad")
        .arg(dir.path().join("bad.jsonl"))
        .stderr(Stdio::null())
        .spawn()
        .unwrap();

    let krate = dir.path().join("quickstart");
    std::fs::create_dir_all(krate.join("src")).unwrap();
    let deps = toml.replace("path = \"", &format!("path = \"{}/", repo.display()));
    std::fs::write(
        krate.join("Cargo.toml"),
        format!(
            "[package]\nname = \"readme-quickstart\"\nversion = \"0.0.0\"\nedition = \"2021\"\npublish = false\n\n[workspace]\n\n{deps}"
        ),
    )
    .unwrap();
    std::fs::write(
        krate.join("src/main.rs"),
        main.replace(ENDPOINT, &format!("http://{listen}")),
    )
    .unwrap();
    std::fs::copy(repo.join("Cargo.lock"), krate.join("Cargo.lock")).unwrap();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let target = repo.join("target/readme-crate");
    let build = Command::new(&cargo)
        .args(["build", "--offline", "--quiet"])
        .current_dir(&krate)
        .env("CARGO_TARGET_DIR", &target)
        .env_remove("RUSTFLAGS")
        .output()
        .unwrap();
    assert!(
        build.status.success(),
        "the quickstart does not build:\n{}",
        String::from_utf8_lossy(&build.stderr)
    );

    let started = Instant::now();
    while std::net::TcpStream::connect(&listen).is_err() {
        assert!(started.elapsed() < Duration::from_secs(10), "no collector");
        std::thread::sleep(Duration::from_millis(20));
    }
    let run = Command::new(target.join("debug/readme-quickstart"))
        .output()
        .unwrap();
    let _ = collector.kill();
    let _ = collector.wait();
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(
        stdout.contains("sent: 2") && stdout.contains("rejected: 0"),
        "{stdout}"
    );
    let good = lines(&dir.path().join("good.jsonl"));
    let schemas: Vec<&str> = good.iter().map(|e| e["schema"].as_str().unwrap()).collect();
    assert_eq!(
        schemas,
        [
            "iglu:com.example.media/play/jsonschema/1-0-0",
            "iglu:com.example.web/search/jsonschema/1-0-0"
        ]
    );
    assert!(lines(&dir.path().join("bad.jsonl")).is_empty());
}
