//! The TypeScript output type-checks under `tsc --strict`, and wrong `data` for a `schema`
//! does not: `tests/ts/usage.ts` holds `// @ts-expect-error` lines, which tsc itself
//! rejects if the error they announce is missing. TypeScript comes from `tests/ts`
//! (`npm ci`, run by scripts/test.sh).

#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

use std::path::PathBuf;
use std::process::Command;

#[test]
fn generated_typescript_checks_right_data_and_rejects_wrong_data() {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let ts = repo.join("tests/ts");
    let tsc = ts.join("node_modules/.bin/tsc");
    assert!(
        tsc.exists(),
        "TypeScript is not installed: run ./scripts/test.sh (npm ci in tests/ts)"
    );
    let code = eventwire_codegen::Builder::new()
        .schemas(repo.join("schemas"))
        .rerun_if_changed(false)
        .generate_typescript()
        .unwrap();
    std::fs::write(ts.join("events.ts"), &code).unwrap();
    let out = Command::new(&tsc).arg("-p").arg(&ts).output().unwrap();
    assert!(
        out.status.success(),
        "tsc --strict failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let expectations = std::fs::read_to_string(ts.join("usage.ts"))
        .unwrap()
        .matches("@ts-expect-error")
        .count();
    println!("tsc --strict: generated types accepted, {expectations} wrong usages rejected");
    assert!(expectations >= 8);
}
