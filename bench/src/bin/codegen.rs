//! Codegen benchmark: time to generate Rust for all of Iglu Central (660 schemas).
//!
//! Run: `cargo run --release -p eventwire-bench --bin codegen`

#![allow(clippy::unwrap_used)] // benchmark harness: fail loudly

use std::time::Instant;

fn main() {
    let corpus = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/corpora/iglu-central/schemas");
    let builder = eventwire_codegen::Builder::new()
        .schemas(&corpus)
        .rerun_if_changed(false);
    let mut times = Vec::new();
    let mut out = None;
    for _ in 0..5 {
        let start = Instant::now();
        let generated = builder.generate().unwrap();
        times.push(start.elapsed().as_secs_f64());
        out = Some(generated);
    }
    times.sort_by(f64::total_cmp);
    let out = out.unwrap();
    println!(
        "eventwire codegen benchmark (Iglu Central, 5 runs, load + normalise + typify + checks + format)"
    );
    println!();
    println!("| measure | value |");
    println!("|---|---:|");
    println!("| schemas → types | {} → {} |", 660, out.types);
    println!("| generated Rust | {:.1} MB |", out.code.len() as f64 / 1e6);
    println!("| time, median of 5 | {:.2} s |", times[2]);
    println!(
        "| time, best / worst | {:.2} s / {:.2} s |",
        times[0], times[4]
    );
    println!(
        "| per schema, median | {:.2} ms |",
        times[2] * 1000.0 / 660.0
    );
    assert_eq!(out.types, 660);
}
