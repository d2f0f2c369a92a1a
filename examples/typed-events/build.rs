//! Generates typed events from the repository's schemas into OUT_DIR (like prost-build).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    eventwire_codegen::Builder::new()
        .schemas("../../schemas")
        .compile()?;
    Ok(())
}
