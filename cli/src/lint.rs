//! `eventwire lint`: check a schema directory (layout, draft 4, SchemaVer discipline,
//! personal-data marks), and that no `--uniques` dimension is a marked field.

use std::path::PathBuf;
use std::process::ExitCode;

use eventwire_codegen::lint::{lint_dir, Severity};
use eventwire_schema::dimension::UniquesSpec;
use eventwire_schema::pii::{Marks, EACH_ITEM};

/// Arguments of `eventwire lint`.
#[derive(Debug, clap::Args)]
pub struct LintArgs {
    /// Schema directory in Iglu layout.
    #[arg(long, default_value = "schemas")]
    schemas: PathBuf,
    /// A `--uniques` dimension of `eventwire process` (`SCHEMA:POINTER` or
    /// `SCHEMA:NAME=POINTER`, repeatable): an error when it is a field marked `x-pii`, which
    /// trackers seal (every sealed value differs, so counting by it counts nothing).
    #[arg(long = "uniques", value_parser = parse_spec)]
    uniques: Vec<UniquesSpec>,
}

fn parse_spec(text: &str) -> Result<UniquesSpec, String> {
    UniquesSpec::parse(text).map_err(|e| e.to_string())
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
    let loaded = eventwire_codegen::registry::load_dir(&args.schemas);
    let mut errors = issues
        .iter()
        .filter(|i| i.severity == Severity::Error)
        .count();
    for spec in &args.uniques {
        for file in loaded
            .schemas
            .iter()
            .filter(|f| format!("{}/{}", f.key.vendor, f.key.name) == spec.schema)
        {
            let Ok(marks) = Marks::of(&file.schema) else {
                continue; // reported above
            };
            if let Some(mark) = marks
                .pointers()
                .iter()
                .find(|m| covers(&format!("/data{m}"), &spec.pointer))
            {
                errors += 1;
                println!(
                    "{}: error: the --uniques dimension `{}` ({}) is, holds or is inside a field marked x-pii (/data{mark}): trackers seal it, so it cannot be counted by",
                    file.path.display(),
                    spec.by,
                    spec.pointer
                );
            }
        }
    }
    let schemas = loaded.schemas.len();
    println!(
        "{schemas} schemas checked: {errors} error(s), {} warning(s)",
        issues
            .iter()
            .filter(|i| i.severity == Severity::Warning)
            .count()
    );
    Ok(if errors == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// True when the field at `pointer` is the marked place `mark`, inside it, or holds it
/// (`process` counts an object or an array by its JSON text, sealed values included); `*`
/// in a mark stands for any array index.
fn covers(mark: &str, pointer: &str) -> bool {
    let mark: Vec<&str> = mark.split('/').collect();
    let pointer: Vec<&str> = pointer.split('/').collect();
    mark.iter()
        .zip(&pointer)
        .all(|(m, p)| m == p || (*m == EACH_ITEM && p.parse::<usize>().is_ok()))
}

#[cfg(test)]
mod tests {
    use super::covers;

    #[test]
    fn a_mark_covers_its_field_and_what_is_inside() {
        for (mark, pointer, covered) in [
            ("/data/email", "/data/email", true),
            ("/data/address", "/data/address/street", true),
            ("/data/phones/*", "/data/phones/0", true),
            ("/data/contacts/*/name", "/data/contacts/12/name", true),
            ("/data/email", "/data/email_domain", false),
            ("/data/meta/email", "/data/meta", true),
            ("/data/items/*", "/data/items", true),
            ("/data/email", "/data", true),
            ("/data/email", "/data/name", false),
            ("/data/phones/*", "/data/phones/x", false),
            ("/data/a", "/entities/0/data/a", false),
        ] {
            assert_eq!(covers(mark, pointer), covered, "{mark} {pointer}");
        }
    }
}
