//! The collector's refusals of a request as a whole, in one enum ([`Refusal`]): each with its
//! HTTP status, its code (an [`ErrorCode`] of the wire protocol) and its message, and the
//! answer built from them.

use std::time::Duration;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use eventwire_schema::protocol::ErrorCode;
use serde_json::json;

/// `Retry-After` sent with a 503.
pub const RETRY_AFTER_SECONDS: u64 = 2;

/// Why a request is refused as a whole. A variant whose message is always the same sentence
/// carries what varies in it; the others carry their message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// 401 `unauthorized`: the write key is missing or unknown. Nothing stored.
    Unauthorized,
    /// 408 `timeout`: the body did not arrive within the time allowed (this long).
    Timeout(Duration),
    /// 400 `malformed`: the body could not be read or decompressed, or is not a batch.
    Malformed(String),
    /// 413 `too_large`: the body, as sent or decompressed, or its event count is over a limit.
    PayloadTooLarge(String),
    /// 415 `unsupported_encoding`: a content type other than JSON or plain text (this one,
    /// lowercased, without its parameters).
    UnsupportedMediaType(String),
    /// 415 `unsupported_encoding`: a content encoding other than gzip or none (this one,
    /// lowercased).
    UnsupportedEncoding(String),
    /// 503 `unavailable`, with `Retry-After`: a sink or the schema registry cannot take the
    /// request now. Nothing stored, the sender retries.
    Unavailable(String),
    /// 503 `unavailable`, with a shorter `Retry-After`: the collector has as much work in
    /// flight as it takes; the body was not read. Nothing stored, the sender retries.
    Overloaded(crate::admission::Shed),
}

impl Refusal {
    /// The HTTP status of the answer.
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            Refusal::Unauthorized => StatusCode::UNAUTHORIZED,
            Refusal::Timeout(_) => StatusCode::REQUEST_TIMEOUT,
            Refusal::Malformed(_) => StatusCode::BAD_REQUEST,
            Refusal::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Refusal::UnsupportedMediaType(_) | Refusal::UnsupportedEncoding(_) => {
                StatusCode::UNSUPPORTED_MEDIA_TYPE
            }
            Refusal::Unavailable(_) | Refusal::Overloaded(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The code of the answer and of the dead letter.
    pub(crate) fn code(&self) -> ErrorCode {
        match self {
            Refusal::Unauthorized => ErrorCode::Unauthorized,
            Refusal::Timeout(_) => ErrorCode::Timeout,
            Refusal::Malformed(_) => ErrorCode::Malformed,
            Refusal::PayloadTooLarge(_) => ErrorCode::TooLarge,
            Refusal::UnsupportedMediaType(_) | Refusal::UnsupportedEncoding(_) => {
                ErrorCode::UnsupportedEncoding
            }
            Refusal::Unavailable(_) | Refusal::Overloaded(_) => ErrorCode::Unavailable,
        }
    }

    /// The message of the answer and of the dead letter.
    pub(crate) fn message(&self) -> String {
        match self {
            Refusal::Unauthorized => "write key missing or unknown".into(),
            Refusal::Timeout(timeout) => format!("body not received within {timeout:?}"),
            Refusal::UnsupportedMediaType(mime) => {
                format!("content type {mime:?} is not application/json or text/plain")
            }
            Refusal::UnsupportedEncoding(encoding) => {
                format!("content encoding {encoding:?} is not supported (use gzip or none)")
            }
            Refusal::Overloaded(shed) => shed.message(),
            Refusal::Malformed(message)
            | Refusal::PayloadTooLarge(message)
            | Refusal::Unavailable(message) => message.clone(),
        }
    }

    /// Whether the request is stored as a dead letter (not for 401 and 503: nothing was
    /// accepted, nothing is lost).
    pub(crate) fn dead_letter(&self) -> bool {
        !matches!(
            self,
            Refusal::Unauthorized | Refusal::Unavailable(_) | Refusal::Overloaded(_)
        )
    }
}

impl IntoResponse for Refusal {
    /// The answer to a refusal: its status, `{"error": …, "code": …}`, and `Retry-After` on a 503.
    fn into_response(self) -> Response {
        let mut response = (
            self.status(),
            Json(json!({ "error": self.message(), "code": self.code().as_str() })),
        )
            .into_response();
        let retry_after = match self {
            Refusal::Overloaded(_) => Some(crate::defaults::SHED_RETRY_AFTER_SECONDS),
            Refusal::Unavailable(_) => Some(RETRY_AFTER_SECONDS),
            _ => None,
        };
        if let Some(seconds) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

/// A request refused as a whole.
#[derive(Debug)]
pub(crate) struct Refused {
    /// Why.
    pub(crate) refusal: Refusal,
    /// What to keep of the request in the dead letter.
    pub(crate) raw: Vec<u8>,
}

impl Refused {
    /// `refusal`, keeping at most [`crate::record::MAX_RAW_BYTES`] of `raw` for the dead
    /// letter.
    pub(crate) fn new(refusal: Refusal, raw: &[u8]) -> Self {
        Refused {
            refusal,
            raw: raw[..raw.len().min(crate::record::MAX_RAW_BYTES)].to_vec(),
        }
    }
}

impl From<Refusal> for Refused {
    /// `refusal`, keeping nothing of the request.
    fn from(refusal: Refusal) -> Self {
        Refused {
            refusal,
            raw: Vec::new(),
        }
    }
}
