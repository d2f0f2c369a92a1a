//! `eventwire demo`, `validate` and `collect` run as a user runs them, from the repository
//! root.

#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

mod common;
use common::{eventwire, repo};

fn lines(path: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn demo_runs_the_whole_loop_and_reports() {
    let dir = tempfile::tempdir().unwrap();
    let out = eventwire()
        .args(["demo", "--dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let good = lines(&dir.path().join("good.jsonl"));
    let bad = lines(&dir.path().join("bad.jsonl"));
    assert_eq!(good.len(), 11, "{stdout}");
    let mut codes: Vec<&str> = bad.iter().map(|b| b["code"].as_str().unwrap()).collect();
    codes.sort();
    assert_eq!(
        codes,
        [
            "entity_invalid",
            "schema_invalid",
            "too_large",
            "unknown_schema"
        ]
    );
    // Each good event id once.
    let mut ids: Vec<&str> = good
        .iter()
        .map(|g| g["event_id"].as_str().unwrap())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 11);
    for needle in [
        "1 duplicate(s)",
        "refused at track()",
        "event_time",
        "good.jsonl",
        "bad.jsonl",
        "schema_invalid",
    ] {
        assert!(stdout.contains(needle), "missing {needle:?} in\n{stdout}");
    }
    // The skewed client's event time is an hour before its own clock.
    let skewed = good
        .iter()
        .find(|g| g["context"]["labels"]["service"] == "demo-kiosk")
        .unwrap();
    let created =
        chrono::DateTime::parse_from_rfc3339(skewed["created_at"].as_str().unwrap()).unwrap();
    let event_time =
        chrono::DateTime::parse_from_rfc3339(skewed["event_time"].as_str().unwrap()).unwrap();
    let skew = (created - event_time).num_seconds();
    assert!((3590..=3610).contains(&skew), "{skew}");
}

#[test]
fn validate_reports_each_invalid_line_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("events.jsonl");
    std::fs::write(
        &file,
        concat!(
            r#"{"schema":"iglu:com.example.media/play/jsonschema/1-0-0","data":{"media_id":"b0074dlv","position_s":3}}"#, "\n",
            r#"{"schema":"iglu:com.example.media/play/jsonschema/1-0-0","data":{"media_id":"b0074dlv","position_s":-3}}"#, "\n",
            r#"{"schema":"iglu:com.example.nope/x/jsonschema/1-0-0","data":{}}"#, "\n",
            "not json\n",
        ),
    )
    .unwrap();
    let out = eventwire()
        .args(["validate", "--schemas", "schemas"])
        .arg(&file)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("line 2: schema_invalid\n  /data/position_s (minimum)"),
        "{stdout}"
    );
    assert!(stdout.contains("line 3: unknown_schema"), "{stdout}");
    assert!(stdout.contains("line 4: malformed"), "{stdout}");
    assert!(stdout.contains("1 valid, 3 invalid"), "{stdout}");

    let ok = dir.path().join("ok.jsonl");
    std::fs::write(&ok, r#"{"schema":"iglu:com.example.web/search/jsonschema/1-0-0","data":{"query":"a","results_count":1}}"#).unwrap();
    let out = eventwire().args(["validate"]).arg(&ok).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// `validate` applies the collector's limits (what the collector dead-letters as
/// `too_large`, `validate` reports as `too_large`), and prints untrusted text escaped: a
/// property name with a newline cannot break the report or forge a summary line.
#[test]
fn validate_applies_the_collectors_limits_and_escapes_what_it_prints() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("events.jsonl");
    let deep = format!("{}1{}", "[".repeat(40), "]".repeat(40));
    let long = "x".repeat(70 * 1024);
    let lines = [
        // 40 levels deep: the collector's limit is 32.
        format!(r#"{{"schema":"iglu:com.example.media/play/jsonschema/1-0-0","data":{{"media_id":"a","position_s":1,"deep":{deep}}}}}"#),
        // A 70 KB string: the collector's limit is 64 KiB.
        format!(r#"{{"schema":"iglu:com.example.web/search/jsonschema/1-0-0","data":{{"query":"{long}","results_count":1}}}}"#),
        // A property name that would print a fake summary line.
        r#"{"schema":"iglu:com.example.web/search/jsonschema/1-0-0","data":{"query":"a","results_count":1,"x\n99 valid, 0 invalid":1}}"#.to_owned(),
    ];
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    let out = eventwire()
        .args(["validate", "--schemas", "schemas"])
        .arg(&file)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("line 1: too_large\n  / (maxDepth)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("line 2: too_large\n  / (maxStringBytes)"),
        "{stdout}"
    );
    assert!(stdout.contains("line 3: schema_invalid"), "{stdout}");
    assert!(
        !stdout.lines().any(|l| l.starts_with("99 valid")),
        "an input forged a line: {stdout}"
    );
    assert_eq!(
        stdout.lines().last(),
        Some("0 valid, 3 invalid"),
        "{stdout}"
    );
}

#[test]
fn collect_serves_until_interrupted() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    // Good events to stdout, dead letters to a file, JSON logs on stderr.
    let mut child = eventwire()
        .args([
            "collect",
            "--listen",
            &listen,
            "--dev",
            "--log",
            "info",
            "--log-format",
            "json",
            "--good",
            "-",
            "--bad",
        ])
        .arg(dir.path().join("bad.jsonl"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait (bounded) for it to listen.
    let started = Instant::now();
    while std::net::TcpStream::connect(&listen).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "collector did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let events = dir.path().join("events.jsonl");
    std::fs::write(
        &events,
        concat!(
            r#"{"schema":"iglu:com.example.web/search/jsonschema/1-0-0","data":{"query":"a","results_count":1}}"#, "\n",
            r#"{"schema":"iglu:com.example.web/search/jsonschema/1-0-0","data":{"query":""}}"#, "\n",
        ),
    )
    .unwrap();
    let out = eventwire()
        .args(["send", "--endpoint", &format!("http://{listen}")])
        .arg(&events)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "one rejection: {stdout}");
    assert!(
        stdout.contains("sent:         1 ") && stdout.contains("schema_invalid: 1"),
        "{stdout}"
    );
    // SIGINT, as Ctrl-C.
    Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    let status = child.wait().unwrap();
    assert!(status.success());
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert!(stderr.contains("1 accepted, 1 dead-lettered"), "{stderr}");
    let log_line = stderr
        .lines()
        .find(|l| l.contains("collector listening"))
        .unwrap();
    let log: Value = serde_json::from_str(log_line).unwrap();
    assert_eq!(log["level"], "INFO");
    let mut stdout = String::new();
    std::io::Read::read_to_string(child.stdout.as_mut().unwrap(), &mut stdout).unwrap();
    let good: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(good.len(), 1, "{stdout}");
    assert_eq!(good[0]["data"]["query"], "a");
    assert_eq!(lines(&dir.path().join("bad.jsonl")).len(), 1);
}

#[test]
fn lint_passes_the_projects_schemas_and_fails_a_broken_directory() {
    let out = eventwire().args(["lint"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    // vendor/name/format/version: every file four levels down.
    let schemas = (0..4).fold(vec![repo().join("schemas")], |dirs, _| {
        dirs.iter()
            .filter(|d| d.is_dir())
            .flat_map(|d| std::fs::read_dir(d).unwrap().map(|e| e.unwrap().path()))
            .filter(|p| !p.file_name().unwrap().to_string_lossy().starts_with('.'))
            .collect()
    });
    let count = schemas.iter().filter(|p| p.is_file()).count();
    assert!(count >= 14, "{count}");
    assert!(
        stdout.contains(&format!("{count} schemas checked: 0 error(s)")),
        "{stdout}"
    );

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("com.acme/x/jsonschema/1-0-0");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, r#"{"self":{"vendor":"com.acme","name":"y","format":"jsonschema","version":"1-0-0"},"type":"object"}"#).unwrap();
    let out = eventwire()
        .args(["lint", "--schemas"])
        .arg(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains(&format!("{}: error: `self` block says", path.display())),
        "{stdout}"
    );
}

#[test]
fn codegen_writes_the_same_rust_every_time() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.rs"), dir.path().join("b.rs"));
    for out in [&a, &b] {
        let status = eventwire()
            .args(["codegen", "--lang", "rust", "--out"])
            .arg(out)
            .status()
            .unwrap();
        assert!(status.success());
    }
    let (a, b) = (std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    assert_eq!(a, b, "byte-identical");
    let text = String::from_utf8(a).unwrap();
    assert!(text.starts_with("// @generated by eventwire-codegen"));
    assert!(text.contains("pub mod com_example_media"));
    assert!(text.contains(
        r#"const SCHEMA: &'static str = "iglu:com.example.media/play/jsonschema/1-0-0";"#
    ));
}

/// The `eventwire` binary keeps numbers exact (serde_json's `arbitrary_precision`, for the
/// collector); its codegen must still read schemas with decimals (`multipleOf: 0.01`), as
/// `build.rs` does.
#[test]
fn codegen_reads_schemas_with_decimals() {
    let dir = tempfile::tempdir().unwrap();
    let schema_dir = dir.path().join("schemas/com.acme/refund/jsonschema");
    std::fs::create_dir_all(&schema_dir).unwrap();
    std::fs::write(
        schema_dir.join("1-0-0"),
        r#"{
  "$schema": "http://iglucentral.com/schemas/com.snowplowanalytics.self-desc/schema/jsonschema/1-0-0#",
  "self": {"vendor": "com.acme", "name": "refund", "format": "jsonschema", "version": "1-0-0"},
  "type": "object",
  "properties": {"amount": {"type": "number", "multipleOf": 0.01, "minimum": 0.00, "maximum": 9999999}},
  "required": ["amount"],
  "additionalProperties": false
}"#,
    )
    .unwrap();
    let out = dir.path().join("events.rs");
    let output = eventwire()
        .args(["codegen", "--lang", "rust", "--schemas"])
        .arg(dir.path().join("schemas"))
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(text.contains("pub amount: f64"), "{text}");
}

/// Codegen on a registry where one schema cannot be turned into types: the others are
/// written, the error names the schema, exit status 1; renamed names are printed as notes.
#[test]
fn codegen_writes_the_rest_when_one_schema_fails_and_notes_renamed_names() {
    let dir = tempfile::tempdir().unwrap();
    for (name, body) in [
        (
            "good",
            r#""type": "object", "properties": {"userId": {"type": "string"}, "user_id": {"type": "integer"}}"#,
        ),
        (
            "endless",
            r##""anyOf": [{"type": "string"}, {"$ref": "#"}]"##,
        ),
    ] {
        let schema_dir = dir
            .path()
            .join(format!("schemas/com.acme/{name}/jsonschema"));
        std::fs::create_dir_all(&schema_dir).unwrap();
        std::fs::write(
            schema_dir.join("1-0-0"),
            format!(
                r#"{{"$schema": "http://iglucentral.com/schemas/com.snowplowanalytics.self-desc/schema/jsonschema/1-0-0#", "self": {{"vendor": "com.acme", "name": "{name}", "format": "jsonschema", "version": "1-0-0"}}, {body}}}"#
            ),
        )
        .unwrap();
    }
    let out = dir.path().join("events.rs");
    let output = eventwire()
        .args(["codegen", "--lang", "rust", "--schemas"])
        .arg(dir.path().join("schemas"))
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("error: iglu:com.acme/endless/jsonschema/1-0-0"),
        "{stderr}"
    );
    assert!(
        stderr.contains(r#"note: iglu:com.acme/good/jsonschema/1-0-0: "userId" is named `user_id_2` (`user_id` is taken)"#),
        "{stderr}"
    );
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(text.contains("pub user_id_2: "), "{text}");
    assert!(text.contains(r#"rename = "userId""#), "{text}");
    assert!(!text.contains("Endless"), "{text}");
}

/// `pii keygen` makes a key pair (the private key readable by its owner only, no file
/// replaced); `pii open` opens what was sealed to it, checks the opened events against
/// their schemas, and names each field that does not open (changed, moved, another key)
/// without stopping.
#[test]
fn pii_keygen_and_open() {
    let dir = tempfile::tempdir().unwrap();
    let (public, private) = (dir.path().join("pii.pub"), dir.path().join("pii.key"));
    let out = eventwire()
        .args(["pii", "keygen", "--public"])
        .arg(&public)
        .arg("--private")
        .arg(&private)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&private).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "private key mode {mode:o}");
    }
    let before = std::fs::read_to_string(&private).unwrap();
    let again = eventwire()
        .args(["pii", "keygen", "--public"])
        .arg(&public)
        .arg("--private")
        .arg(&private)
        .output()
        .unwrap();
    assert_eq!(
        again.status.code(),
        Some(2),
        "an error, as every command reports one"
    );
    assert!(String::from_utf8_lossy(&again.stderr).contains("exists: not replacing a key"));
    assert_eq!(std::fs::read_to_string(&private).unwrap(), before);

    // A registry with one marked schema.
    let schemas = dir.path().join("schemas");
    let at = schemas.join("com.example.health/symptom/jsonschema");
    std::fs::create_dir_all(&at).unwrap();
    std::fs::write(
        at.join("1-0-0"),
        serde_json::json!({
            "$schema": "http://iglucentral.com/schemas/com.snowplowanalytics.self-desc/schema/jsonschema/1-0-0#",
            "self": {"vendor": "com.example.health", "name": "symptom", "format": "jsonschema", "version": "1-0-0"},
            "type": "object",
            "properties": {
                "note": {"type": "string", "maxLength": 100, "x-pii": true},
                "severity": {"type": "integer", "minimum": 0, "maximum": 10, "x-pii": true},
                "kind": {"type": "string"}
            },
            "required": ["kind"],
            "additionalProperties": false
        })
        .to_string(),
    )
    .unwrap();
    let key = eventwire_pii::PublicKey::parse(&std::fs::read_to_string(&public).unwrap()).unwrap();
    let other = eventwire_pii::PrivateKey::generate();
    let schema = "iglu:com.example.health/symptom/jsonschema/1-0-0";
    let event = |id: &str, note: &str, severity: serde_json::Value| {
        serde_json::json!({
            "event_id": id,
            "schema": schema,
            "data": {
                "note": eventwire_pii::seal(&key, id, schema, "/data/note", &serde_json::json!(note)).unwrap(),
                "severity": eventwire_pii::seal(&key, id, schema, "/data/severity", &severity).unwrap(),
                "kind": "headache",
            },
        })
    };
    let (a, b) = (
        "01a22d46-ab9a-75df-811d-7c71a1b9e1d1",
        "01a22d46-ab9a-75df-811d-7c71a1b9e1d2",
    );
    let good = event(a, "marker-7f3a", serde_json::json!(4));
    // Tampered: one character inside the ciphertext changed (not the last one, whose low
    // bits base64 leaves unused: changing those makes a non-canonical encoding, refused as
    // not a sealed value before any decryption).
    let mut tampered = event(b, "marker-7f3b", serde_json::json!(5));
    let mut note = tampered["data"]["note"].as_str().unwrap().to_owned();
    let at = note.len() - 10;
    let flipped = if &note[at..=at] == "A" { "B" } else { "A" };
    note.replace_range(at..=at, flipped);
    tampered["data"]["note"] = serde_json::json!(note);
    // Moved: the first event's note put in another event.
    let mut moved = event(
        "01a22d46-ab9a-75df-811d-7c71a1b9e1d3",
        "x",
        serde_json::json!(1),
    );
    moved["data"]["note"] = good["data"]["note"].clone();
    // Sealed to a key not given.
    let mut foreign = event(
        "01a22d46-ab9a-75df-811d-7c71a1b9e1d4",
        "x",
        serde_json::json!(1),
    );
    foreign["data"]["note"] = serde_json::json!(eventwire_pii::seal(
        other.public_key(),
        "01a22d46-ab9a-75df-811d-7c71a1b9e1d4",
        schema,
        "/data/note",
        &serde_json::json!("y")
    )
    .unwrap());
    // Opens, but the opened value breaks the schema (severity 11 > 10).
    let invalid = event(
        "01a22d46-ab9a-75df-811d-7c71a1b9e1d5",
        "x",
        serde_json::json!(11),
    );
    let input = dir.path().join("good.jsonl");
    std::fs::write(
        &input,
        [&good, &tampered, &moved, &foreign, &invalid]
            .iter()
            .map(|e| format!("{e}\n"))
            .collect::<String>(),
    )
    .unwrap();
    let out = eventwire()
        .args(["pii", "open", "--private-key"])
        .arg(&private)
        .arg("--schemas")
        .arg(&schemas)
        .arg(&input)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let opened: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(opened.len(), 5, "every line is written");
    assert_eq!(
        opened[0]["data"],
        serde_json::json!({"note": "marker-7f3a", "severity": 4, "kind": "headache"})
    );
    assert!(
        stderr.contains("line 2: /data/note: does not open: changed, or moved from another event, schema or field"),
        "{stderr}"
    );
    assert_eq!(
        opened[1]["data"]["severity"], 5,
        "the other field of line 2 opened"
    );
    assert!(
        stderr.contains("line 3: /data/note: does not open"),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "line 4: /data/note: sealed to key {}, which is not among the keys given",
            other.public_key().key_id()
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains("line 5: schema_invalid: /data/severity (maximum)"),
        "{stderr}"
    );
    assert!(
        stderr.contains("5 lines, 7 fields opened, 4 lines with errors"),
        "{stderr}"
    );
    // No plaintext on stderr, not even where an opened value breaks its schema.
    assert!(!stderr.contains("marker-7f3"), "{stderr}");
    assert!(
        !stderr.contains("greater") && !stderr.contains("11"),
        "{stderr}"
    );
    // A line that does not open keeps its sealed value: nothing is guessed.
    assert!(eventwire_pii::is_sealed(
        opened[1]["data"]["note"].as_str().unwrap()
    ));

    // With the other key added (a rotated-out key), line 4 opens too.
    let other_file = dir.path().join("old.key");
    std::fs::write(&other_file, other.to_text()).unwrap();
    let out = eventwire()
        .args(["pii", "open", "--private-key"])
        .arg(&private)
        .arg("--key")
        .arg(&other_file)
        .arg("--schemas")
        .arg(&schemas)
        .arg(&input)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("line 4:"), "{stderr}");
    let opened: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(opened[3]["data"]["note"], "y");
}

/// `lint` refuses a misspelled or non-boolean personal-data mark, and a `--uniques`
/// dimension that is a marked field (trackers seal it: it cannot be counted by).
#[test]
fn lint_checks_personal_data_marks_and_uniques_dimensions() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("com.acme/view/jsonschema/1-0-0");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(
        &path,
        serde_json::json!({
            "$schema": "http://iglucentral.com/schemas/com.snowplowanalytics.self-desc/schema/jsonschema/1-0-0#",
            "self": {"vendor": "com.acme", "name": "view", "format": "jsonschema", "version": "1-0-0"},
            "type": "object",
            "properties": {
                "article_id": {"type": "string"},
                "reader": {"type": "object", "properties": {"email": {"type": "string"}}, "x-pii": true}
            }
        })
        .to_string(),
    )
    .unwrap();
    let lint = |uniques: &[&str]| {
        let mut c = eventwire();
        c.args(["lint", "--schemas"]).arg(dir.path());
        for u in uniques {
            c.args(["--uniques", u]);
        }
        let out = c.output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (code, stdout) = lint(&["com.acme/view:/data/article_id"]);
    assert_eq!(code, Some(0), "{stdout}");
    let (code, stdout) = lint(&[
        "com.acme/view:/data/article_id",
        "com.acme/view:email=/data/reader/email",
    ]);
    assert_eq!(code, Some(1), "{stdout}");
    assert!(
        stdout.contains("error: the --uniques dimension `email` (/data/reader/email) is, holds or is inside a field marked x-pii (/data/reader)"),
        "{stdout}"
    );
    assert!(stdout.contains("1 schemas checked: 1 error(s)"), "{stdout}");
}
