//! How batches reach the collector.
//!
//! [`Transport`] is one method: send a request body, get the collector's answer. The crate
//! ships an HTTP transport on reqwest (feature `reqwest`), an in-memory transport for tests
//! ([`MemoryTransport`]) and one that accepts everything without sending ([`NoopTransport`]).

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};

use crate::protocol::{Batch, BatchResponse};

#[cfg(feature = "reqwest")]
mod http;
#[cfg(feature = "reqwest")]
pub use http::{HttpTransport, DEFAULT_CONNECT_TIMEOUT, DEFAULT_REQUEST_TIMEOUT};

/// A boxed future. Not `Send`: the delivery loop runs on one thread (the tracker's worker
/// natively, the page's event loop in a browser).
pub type LocalBoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + 'a>>;

#[cfg(not(target_arch = "wasm32"))]
mod bounds {
    /// `Send + Sync` natively; nothing on wasm, where there are no threads.
    pub trait MaybeSendSync: Send + Sync {}
    impl<T: Send + Sync + ?Sized> MaybeSendSync for T {}
}
#[cfg(target_arch = "wasm32")]
mod bounds {
    /// `Send + Sync` natively; nothing on wasm, where there are no threads.
    pub trait MaybeSendSync {}
    impl<T: ?Sized> MaybeSendSync for T {}
}
pub use bounds::MaybeSendSync;

/// One request for `POST /v1/batch`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The body, gzipped when `gzip` is true.
    pub body: Vec<u8>,
    /// Whether `body` is gzip-compressed (`Content-Encoding: gzip`).
    pub gzip: bool,
    /// The write key to send as `Authorization: Bearer <key>`, if any.
    pub write_key: Option<Arc<str>>,
    /// Number of events in the body.
    pub events: usize,
}

/// The collector's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Response {
    /// HTTP status.
    pub status: u16,
    /// The `Retry-After` header, if present.
    pub retry_after: Option<String>,
    /// The body (JSON per-event answer on 200).
    pub body: Vec<u8>,
    /// Where a redirect points (the `Location` of a 3xx), or the URL that answered when the
    /// HTTP client followed redirects itself. An answer with a location is never delivery:
    /// only the collector's own answer at the batch endpoint settles events as sent.
    pub location: Option<String>,
    /// The body was longer than the transport reads (1 MiB) and was cut: it is not a batch
    /// answer (the collector's is small), whatever its first bytes say.
    pub truncated: bool,
}

impl Response {
    /// A response with this status and JSON body.
    pub fn json(status: u16, body: &impl serde::Serialize) -> Self {
        Response {
            status,
            retry_after: None,
            body: serde_json::to_vec(body).unwrap_or_default(),
            location: None,
            truncated: false,
        }
    }

    /// A response with this status and no body.
    pub fn status(status: u16) -> Self {
        Response {
            status,
            retry_after: None,
            body: Vec::new(),
            location: None,
            truncated: false,
        }
    }

    /// A response with this status and raw body (anything: a web page, another service's
    /// JSON).
    pub fn raw(status: u16, body: impl Into<Vec<u8>>) -> Self {
        Response {
            body: body.into(),
            ..Response::status(status)
        }
    }

    /// Adds where a redirect points (or which URL answered after one).
    pub fn with_location(mut self, location: impl Into<String>) -> Self {
        self.location = Some(location.into());
        self
    }

    /// Adds a `Retry-After` header.
    pub fn with_retry_after(mut self, value: impl Into<String>) -> Self {
        self.retry_after = Some(value.into());
        self
    }
}

/// A request that got no HTTP answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    /// No answer within the request timeout. Retried with backoff.
    #[error("request timed out")]
    Timeout,
    /// Could not connect, or the connection broke. Retried with backoff.
    #[error("network error: {0}")]
    Network(String),
}

/// Sends one batch request and returns the collector's answer.
///
/// Implementations must not retry on their own: the tracker's policy decides. A custom
/// transport (another HTTP client, a message bus) implements this and is passed to
/// [`crate::TrackerBuilder::transport`].
pub trait Transport: MaybeSendSync + 'static {
    /// Sends `request`; resolves to the answer, or to a [`TransportError`] when none came.
    ///
    /// Must not follow redirects: a 3xx is returned as it is (with its `Location` in
    /// [`Response::location`]), and so is an answer from another URL than the one posted to.
    fn send(&self, request: Request) -> LocalBoxFuture<'_, Result<Response, TransportError>>;

    /// Where batches go (e.g. `http://127.0.0.1:8080/v1/batch`), for error messages; `None`
    /// when the transport has no URL.
    fn endpoint(&self) -> Option<&str> {
        None
    }
}

impl<T: Transport + ?Sized> Transport for Arc<T> {
    fn send(&self, request: Request) -> LocalBoxFuture<'_, Result<Response, TransportError>> {
        (**self).send(request)
    }

    fn endpoint(&self) -> Option<&str> {
        (**self).endpoint()
    }
}

impl<T: Transport + ?Sized> Transport for Box<T> {
    fn send(&self, request: Request) -> LocalBoxFuture<'_, Result<Response, TransportError>> {
        (**self).send(request)
    }

    fn endpoint(&self) -> Option<&str> {
        (**self).endpoint()
    }
}

/// Accepts every batch without sending anything (the collector's answer: all accepted).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoopTransport;

impl Transport for NoopTransport {
    fn send(&self, request: Request) -> LocalBoxFuture<'_, Result<Response, TransportError>> {
        let answer = BatchResponse {
            accepted: request.events as u64,
            ..BatchResponse::default()
        };
        Box::pin(std::future::ready(Ok(Response::json(200, &answer))))
    }
}

type Responder = dyn FnMut(&Batch) -> Result<Response, TransportError> + Send;

/// Records every request in memory and answers through a script, for tests.
///
/// By default every batch is accepted. [`MemoryTransport::respond_with`] scripts the answers
/// (the closure sees the decoded batch of each attempt, in order).
#[derive(Clone)]
pub struct MemoryTransport {
    inner: Arc<Mutex<MemoryInner>>,
}

struct MemoryInner {
    batches: Vec<Batch>,
    requests: Vec<Request>,
    responder: Box<Responder>,
}

impl Default for MemoryTransport {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for MemoryTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryTransport")
            .field("requests", &self.lock().requests.len())
            .finish()
    }
}

impl MemoryTransport {
    /// A transport that accepts every batch.
    pub fn new() -> Self {
        Self::respond_with(|batch| {
            let answer = BatchResponse {
                accepted: batch.events.len() as u64,
                ..BatchResponse::default()
            };
            Ok(Response::json(200, &answer))
        })
    }

    /// A transport that answers each attempt with `responder`.
    pub fn respond_with(
        responder: impl FnMut(&Batch) -> Result<Response, TransportError> + Send + 'static,
    ) -> Self {
        MemoryTransport {
            inner: Arc::new(Mutex::new(MemoryInner {
                batches: Vec::new(),
                requests: Vec::new(),
                responder: Box::new(responder),
            })),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, MemoryInner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Every attempt's batch, decoded, in order.
    pub fn batches(&self) -> Vec<Batch> {
        self.lock().batches.clone()
    }

    /// Every attempt's raw request, in order.
    pub fn requests(&self) -> Vec<Request> {
        self.lock().requests.clone()
    }

    /// The event ids of every attempt, in order (an id appears again when it was resent).
    pub fn event_ids(&self) -> Vec<uuid::Uuid> {
        self.lock()
            .batches
            .iter()
            .flat_map(|b| b.events.iter().map(|e| e.event_id))
            .collect()
    }
}

/// Decodes a request body (gunzipping it when needed) into a batch.
pub fn decode_request(request: &Request) -> Result<Batch, String> {
    if !request.gzip {
        return serde_json::from_slice(&request.body).map_err(|e| format!("json: {e}"));
    }
    #[cfg(feature = "gzip")]
    {
        use std::io::Read;
        let mut plain = Vec::new();
        flate2::read::GzDecoder::new(&request.body[..])
            .read_to_end(&mut plain)
            .map_err(|e| format!("gzip: {e}"))?;
        serde_json::from_slice(&plain).map_err(|e| format!("json: {e}"))
    }
    #[cfg(not(feature = "gzip"))]
    Err("gzip body but the `gzip` feature is off".into())
}

impl Transport for MemoryTransport {
    fn send(&self, request: Request) -> LocalBoxFuture<'_, Result<Response, TransportError>> {
        let answer = match decode_request(&request) {
            Ok(batch) => {
                let mut inner = self.lock();
                // The script runs under the transport's own lock: it is test code and must
                // not call back into the transport.
                let answer = (inner.responder)(&batch);
                inner.batches.push(batch);
                inner.requests.push(request);
                answer
            }
            Err(e) => Ok(Response::json(400, &serde_json::json!({ "error": e }))),
        };
        Box::pin(std::future::ready(answer))
    }
}
