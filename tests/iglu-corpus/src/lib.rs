//! All of Iglu Central, and the project's own `schemas/`, as Rust types (generated at build
//! time), and the fidelity measurement of those types against a reference validator.

#![allow(missing_docs)]

include!(concat!(env!("OUT_DIR"), "/eventwire_events.rs"));

/// The types of the project's own `schemas/`.
pub mod project {
    include!(concat!(env!("OUT_DIR"), "/project_events.rs"));
}

pub mod fidelity;
