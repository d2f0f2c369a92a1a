//! The demo tracks typed events generated from the repository's `schemas/`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    eventwire_codegen::Builder::new()
        .schemas("../schemas")
        .compile()?;
    Ok(())
}
