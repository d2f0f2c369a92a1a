//! `eventwire codegen`: typed event code from schemas, for teams that check it in.

use std::path::PathBuf;
use std::process::ExitCode;

/// Target language.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    /// Rust types (typify), each implementing `eventwire::SelfDescribing`.
    Rust,
    /// TypeScript types and the URI → data map, for the browser package.
    Ts,
}

/// Arguments of `eventwire codegen`.
#[derive(Debug, clap::Args)]
pub struct CodegenArgs {
    /// Schema directory in Iglu layout.
    #[arg(long, default_value = "schemas")]
    schemas: PathBuf,
    /// Language to generate.
    #[cfg_attr(
        not(feature = "native"),
        arg(
            help = "Language to generate: ts (rust: in the native binary, cargo install eventwire-cli)"
        )
    )]
    #[arg(long, value_enum, default_value_t = Lang::Rust)]
    lang: Lang,
    /// Output file (`-` for stdout).
    #[arg(long)]
    out: PathBuf,
}

/// Generates the file; exit status 1 with every problem listed when a schema cannot be used
/// (a schema that cannot be turned into types is left out, the others are written).
pub fn run(args: CodegenArgs) -> anyhow::Result<ExitCode> {
    // typify reports some schemas it cannot turn into types by panicking, which the native
    // binary catches and reports per schema; WebAssembly aborts on a panic instead.
    #[cfg(not(feature = "native"))]
    if args.lang == Lang::Rust {
        anyhow::bail!(
            "codegen --lang rust runs in the native binary (cargo install eventwire-cli); this build generates --lang ts"
        );
    }
    let builder = eventwire_codegen::Builder::new()
        .schemas(&args.schemas)
        .rerun_if_changed(false);
    let output = match args.lang {
        Lang::Rust => builder.generate(),
        Lang::Ts => builder
            .generate_typescript()
            .map(|code| eventwire_codegen::rust::RustOutput {
                code,
                types: 0,
                loosened: Vec::new(),
                renamed: Vec::new(),
                skipped: Vec::new(),
                uses: eventwire_codegen::rust::Uses::default(),
            }),
    };
    let output = match output {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{}", crate::without_os_error_numbers(&e.to_string()));
            return Ok(ExitCode::FAILURE);
        }
    };
    if args.out.as_os_str() == "-" {
        print!("{}", output.code);
    } else {
        eventwire_codegen::write_if_changed(&args.out, &output.code)?;
        match args.lang {
            Lang::Rust => eprintln!(
                "wrote {} types to {}{}",
                output.types,
                args.out.display(),
                needs(&output.uses)
            ),
            Lang::Ts => eprintln!("wrote TypeScript types to {}", args.out.display()),
        }
    }
    for (key, l) in &output.loosened {
        let at = l.at();
        if l.checked {
            eprintln!(
                "note: {key}: looser Rust type at {at}: {} (its validate() checks it)",
                l.what
            );
        } else {
            eprintln!("warning: {key}: not checked at {at}: {}", l.what);
        }
    }
    for (scope, r) in &output.renamed {
        eprintln!(
            "note: {scope}: {:?} is named `{}` (`{}` is taken)",
            r.name, r.ident, r.base
        );
    }
    for e in &output.skipped {
        eprintln!("error: {e} (no type generated for it; the other schemas' types were written)");
    }
    Ok(if output.skipped.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn needs(uses: &eventwire_codegen::rust::Uses) -> String {
    let eventwire = if uses.regress || uses.chrono {
        "eventwire (its default feature `codegen`)"
    } else {
        "eventwire"
    };
    format!(" (the crate needs: {eventwire}, serde with `derive`)")
}
