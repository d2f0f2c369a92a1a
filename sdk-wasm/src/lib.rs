//! # eventwire-wasm
//!
//! The wasm-bindgen facade over the `eventwire` core for the npm package `eventwire`. The
//! tracker logic (Iglu URIs, retry policy, batching, accounting) is the Rust core compiled to
//! wasm; only what only a browser can do (fetch with keepalive, `sendBeacon` on page hide,
//! storage) is JavaScript.
//!
//! This crate exports the core's pure decisions; the browser tracker is built on them.

use std::time::Duration;

use eventwire::policy::{Attempt, RetryPolicy, Verdict};
use eventwire::SchemaKey;
use wasm_bindgen::prelude::*;

/// The version of the core compiled into this module.
#[wasm_bindgen(js_name = coreVersion)]
pub fn core_version() -> String {
    env!("CARGO_PKG_VERSION").to_owned()
}

/// Throws a JS `Error` explaining why `uri` is not a valid Iglu schema URI.
#[wasm_bindgen(js_name = checkSchemaUri)]
pub fn check_schema_uri(uri: &str) -> Result<(), JsError> {
    SchemaKey::validate(uri).map_err(|e| JsError::new(&format!("invalid schema URI `{uri}`: {e}")))
}

/// What to do after a send attempt, per the wire protocol's status table.
///
/// `status` is the HTTP status, or 0 when the request failed without one. Returns a number of
/// milliseconds to wait before resending (`>= 0`), or a negative code: -1 delivered,
/// -2 split the batch, -3 give up (deadline), -4 do not resend (refused).
#[wasm_bindgen(js_name = retryDecision)]
pub fn retry_decision(
    status: u16,
    retry_after: Option<String>,
    attempt: u32,
    elapsed_ms: f64,
    now_unix_ms: f64,
    jitter: f64,
) -> f64 {
    let outcome = if status == 0 {
        Attempt::Network
    } else {
        Attempt::Status {
            code: status,
            retry_after: retry_after.as_deref(),
        }
    };
    let elapsed = Duration::from_millis(elapsed_ms.max(0.0) as u64);
    match RetryPolicy::default().decide(
        outcome,
        attempt,
        elapsed,
        now_unix_ms.max(0.0) as u64,
        jitter,
    ) {
        Verdict::Retry(d) | Verdict::Throttle(d) => d.as_millis() as f64,
        Verdict::Delivered => -1.0,
        Verdict::Split => -2.0,
        Verdict::GiveUp => -3.0,
        Verdict::Refuse(_) => -4.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decisions_follow_the_core_policy() {
        assert_eq!(retry_decision(200, None, 0, 0.0, 0.0, 0.5), -1.0);
        assert_eq!(retry_decision(413, None, 0, 0.0, 0.0, 0.5), -2.0);
        assert_eq!(retry_decision(400, None, 0, 0.0, 0.0, 0.5), -4.0);
        assert_eq!(
            retry_decision(429, Some("3".into()), 0, 0.0, 0.0, 0.5),
            3000.0
        );
        assert_eq!(retry_decision(500, None, 0, 0.0, 0.0, 0.5), 50.0);
        assert_eq!(retry_decision(0, None, 0, 1e9, 0.0, 0.5), -3.0);
    }
}
