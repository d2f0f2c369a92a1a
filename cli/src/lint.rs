//! `eventwire lint`: check a schema directory (layout, draft 4, SchemaVer discipline).

use std::path::PathBuf;
use std::process::ExitCode;

use eventwire_codegen::lint::{lint_dir, Severity};

/// Arguments of `eventwire lint`.
#[derive(Debug, clap::Args)]
pub struct LintArgs {
    /// Schema directory in Iglu layout.
    #[arg(long, default_value = "schemas")]
    schemas: PathBuf,
}

/// Prints every issue; exit status 1 when any is an error.
pub fn run(args: LintArgs) -> anyhow::Result<ExitCode> {
    if !args.schemas.is_dir() {
        anyhow::bail!("{} is not a directory", args.schemas.display());
    }
    let issues = lint_dir(&args.schemas);
    for issue in &issues {
        println!("{issue}");
    }
    let errors = issues
        .iter()
        .filter(|i| i.severity == Severity::Error)
        .count();
    let schemas = eventwire_codegen::registry::load_dir(&args.schemas)
        .schemas
        .len();
    println!(
        "{schemas} schemas checked: {errors} error(s), {} warning(s)",
        issues.len() - errors
    );
    Ok(if errors == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
