//! The README's "Typed events from your schemas", done as a new user would: a crate outside
//! the workspace made of the README's `Cargo.toml` lines, `build.rs` and `src/main.rs`
//! verbatim, on the repository's `schemas/`, must build. So the README cannot drift from
//! what works (it once named no crate but `eventwire`, while the generated code needed
//! three more). The golden schemas' awkward shapes are added to its schemas.

#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

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

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// Makes the README's crate (with `edit` applied to its `Cargo.toml` lines) and builds it.
fn build_readme_crate(edit: impl Fn(String) -> String) -> std::process::Output {
    let repo = repo();
    let readme = std::fs::read_to_string(repo.join("README.md")).unwrap();
    let blocks = blocks(&readme, "Typed events from your schemas");
    let (_, toml) = blocks
        .iter()
        .find(|(lang, _)| lang == "toml")
        .expect("the section gives the Cargo.toml lines");
    let rust: Vec<&String> = blocks
        .iter()
        .filter(|(lang, _)| lang == "rust")
        .map(|(_, text)| text)
        .collect();
    let build = rust
        .iter()
        .find(|t| t.starts_with("// build.rs"))
        .expect("the section gives build.rs");
    let main = rust
        .iter()
        .find(|t| t.starts_with("// src/main.rs"))
        .expect("the section gives src/main.rs");

    let dir = tempfile::tempdir().unwrap();
    let krate = dir.path();
    // The README's paths are relative to this repository.
    let deps = edit(toml.replace("path = \"", &format!("path = \"{}/", repo.display())));
    std::fs::write(
        krate.join("Cargo.toml"),
        format!(
            "[package]\nname = \"readme-typed-events\"\nversion = \"0.0.0\"\nedition = \"2021\"\npublish = false\n\n[workspace]\n\n{deps}"
        ),
    )
    .unwrap();
    std::fs::write(krate.join("build.rs"), build).unwrap();
    std::fs::create_dir_all(krate.join("src")).unwrap();
    std::fs::write(krate.join("src/main.rs"), main).unwrap();
    copy_dir(&repo.join("schemas"), &krate.join("schemas"));
    // And the golden schemas' awkward shapes (names, free-form objects, array defaults,
    // date-times, uuids, patterns): they must need nothing more either.
    copy_dir(
        &repo.join("codegen/tests/golden/schemas"),
        &krate.join("schemas"),
    );
    // The workspace's versions, so the build is offline and the same as ours.
    std::fs::copy(repo.join("Cargo.lock"), krate.join("Cargo.lock")).unwrap();

    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    Command::new(cargo)
        .args(["build", "--offline", "--quiet"])
        .current_dir(krate)
        .env("CARGO_TARGET_DIR", repo.join("target/readme-crate"))
        .env_remove("RUSTFLAGS")
        .output()
        .unwrap()
}

#[test]
fn the_readme_typed_events_crate_builds() {
    let out = build_readme_crate(|toml| toml);
    assert!(
        out.status.success(),
        "the README's crate does not build:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Without eventwire's `codegen` feature, the build fails with one error that says what to
/// enable, among the unresolved paths.
#[test]
fn without_the_codegen_feature_the_error_says_what_to_enable() {
    let out = build_readme_crate(|toml| {
        let sdk = toml
            .lines()
            .find(|l| l.starts_with("eventwire = "))
            .unwrap()
            .to_owned();
        let path = sdk.split('"').nth(1).unwrap();
        toml.replace(
            &sdk,
            &format!(
                "eventwire = {{ path = \"{path}\", default-features = false, features = [\"native\"] }}"
            ),
        )
    });
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("enable eventwire's `codegen` feature"),
        "{stderr}"
    );
}
