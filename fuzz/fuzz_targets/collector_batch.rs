//! The collector's entry point for a request body: batch decoding, envelope and data
//! validation against the project's schemas. Any input must give an answer (accepted,
//! dead-lettered, or a batch error), never a panic or a hang.
#![no_main]

use std::sync::LazyLock;

use eventwire_collector::registry::{Registry, Source};
use eventwire_collector::validate::{Limits, Pipeline};
use libfuzzer_sys::fuzz_target;

struct State {
    pipeline: Pipeline,
    registry: Registry,
    runtime: tokio::runtime::Runtime,
}

static STATE: LazyLock<State> = LazyLock::new(|| {
    let schemas = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas");
    State {
        pipeline: Pipeline::new(Limits::default()).expect("envelope schema compiles"),
        registry: Registry::new(Source::Dir(schemas)).expect("registry"),
        runtime: tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime"),
    }
});

fuzz_target!(|data: &[u8]| {
    let s = &*STATE;
    let now = chrono::Utc::now();
    let _ = s
        .runtime
        .block_on(s.pipeline.check_batch(data, now, &s.registry));
});
