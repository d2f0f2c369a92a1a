//! All of Iglu Central, and the project's own `schemas/`, as Rust types (generated at build
//! time), and the fidelity measurement of those types against a reference validator.

#![allow(missing_docs)]

include!(concat!(env!("OUT_DIR"), "/eventwire_events.rs"));

/// The types of the project's own `schemas/`.
pub mod project {
    include!(concat!(env!("OUT_DIR"), "/project_events.rs"));
}

/// The types of codegen's golden schemas (`codegen/tests/golden/schemas`).
pub mod golden {
    include!(concat!(env!("OUT_DIR"), "/golden_events.rs"));
}

/// The types of the generated schemas (`gen/schemas.rs`, written at build time to
/// [`generated::DIR`]), with the schemas codegen left out ([`generated::SKIPPED`]).
pub mod generated {
    include!(concat!(env!("OUT_DIR"), "/generated_events.rs"));
}

pub mod fidelity;
