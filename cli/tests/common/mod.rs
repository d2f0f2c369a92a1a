//! What the command-line tests share: the repository root and the built binary run from it.

use std::path::PathBuf;
use std::process::Command;

/// The repository root (where a user runs `eventwire`).
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The built `eventwire` binary, run from the repository root.
pub fn eventwire() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_eventwire"));
    c.current_dir(repo());
    c
}
