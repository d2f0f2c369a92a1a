//! All of Iglu Central as Rust types (generated at build time).

#![allow(missing_docs)]

include!(concat!(env!("OUT_DIR"), "/eventwire_events.rs"));
