//! # eventwire-collector
//!
//! The server side of eventwire's wire protocol (`POST /v1/batch`).
//!
//! ## Overview
//!
//! The collector validates each event against its schema, stamps the server's receive time,
//! corrects the client's clock skew, dead-letters what fails with a reason, deduplicates by
//! event id and forwards good events to a sink. This crate grows into the full server; today
//! it holds the time rules of DESIGN §4 ([`time`]), shared by the server and by tests.

pub mod time;
