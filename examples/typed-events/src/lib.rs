//! Typed events generated at build time from `schemas/` (see `build.rs`).

/// The generated types: a module per vendor, e.g. `events::com_example_media::Play`.
pub mod events {
    include!(concat!(env!("OUT_DIR"), "/eventwire_events.rs"));
}
