//! Generates Rust for a schema directory and reports errors (development aid).
//!
//! `cargo run -p eventwire-codegen --example probe -- DIR OUT.rs`

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = args.next().unwrap_or_else(|| "schemas".into());
    let out = args.next().unwrap_or_else(|| "/tmp/probe.rs".into());
    let builder = eventwire_codegen::Builder::new()
        .schemas(&dir)
        .rerun_if_changed(false);
    match builder.generate() {
        Ok(o) => {
            std::fs::write(&out, &o.code).expect("write");
            let schemas: std::collections::BTreeSet<String> =
                o.loosened.iter().map(|(k, _)| k.to_string()).collect();
            println!(
                "{} types, {} loosenings in {} schemas, uses {:?}",
                o.types,
                o.loosened.len(),
                schemas.len(),
                o.uses
            );
        }
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    }
}
