//! The demo tracks typed events generated from the repository's `schemas/` (through the
//! `demo-schemas` link, so the published crate carries them).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    eventwire_codegen::Builder::new()
        .schemas("demo-schemas")
        .compile()?;
    Ok(())
}
