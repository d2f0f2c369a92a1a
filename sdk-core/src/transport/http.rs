//! HTTP delivery with reqwest (rustls).

use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{
    HeaderValue, CONTENT_ENCODING, CONTENT_TYPE, LOCATION, RETRY_AFTER, USER_AGENT,
};

use super::{LocalBoxFuture, Request, Response, Transport, TransportError};
use crate::protocol::BATCH_PATH;

pub use crate::defaults::{DEFAULT_CONNECT_TIMEOUT, DEFAULT_REQUEST_TIMEOUT};
/// Answers larger than this are cut: the collector's answer is small, anything bigger is not it.
const MAX_RESPONSE_BYTES: usize = 1024 * 1024;

/// Posts batches to `<endpoint>/v1/batch`.
#[derive(Debug, Clone)]
pub struct HttpTransport {
    client: reqwest::Client,
    url: Arc<str>,
    /// `url` as the client normalises it (default ports, case; no credentials, no
    /// fragment), to tell an answer from another URL.
    parsed: Option<reqwest::Url>,
    /// `url` with any credentials hidden, for error messages.
    shown: Arc<str>,
}

impl HttpTransport {
    /// A transport for the collector at `endpoint` (its base URL, e.g. `http://127.0.0.1:8080`).
    ///
    /// Redirects are not followed: a POST that a 301/302/303 turns into a GET, or that a
    /// 307/308 re-posts elsewhere, never reaches the collector's batch endpoint, so its
    /// answer is not delivery (the events are dropped as `not_a_collector`, loudly).
    pub fn new(endpoint: &str, request_timeout: Duration) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .timeout(request_timeout)
            .connect_timeout(DEFAULT_CONNECT_TIMEOUT.min(request_timeout))
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Self::with_client(client, endpoint))
    }

    /// A transport on a client you configured (proxies, TLS roots, …). Build it with
    /// `.redirect(reqwest::redirect::Policy::none())`: if it follows a redirect anyway, the
    /// answer comes from another URL and is reported as one ([`Response::location`]), never
    /// as delivery.
    pub fn with_client(client: reqwest::Client, endpoint: &str) -> Self {
        let url = format!("{}{BATCH_PATH}", endpoint.trim_end_matches('/'));
        let parsed = reqwest::Url::parse(&url).ok();
        // Credentials in the URL (a token as user name, a password) never reach a log.
        let shown = match &parsed {
            Some(u) if !u.username().is_empty() || u.password().is_some() => {
                let mut u = u.clone();
                let _ = u.set_password(None);
                let _ = u.set_username("***");
                u.to_string()
            }
            _ => url.clone(),
        };
        HttpTransport {
            client,
            parsed: parsed.map(|u| comparable(&u)),
            url: url.into(),
            shown: shown.into(),
        }
    }

    async fn post(&self, request: Request) -> Result<Response, TransportError> {
        let mut builder = self
            .client
            .post(&*self.url)
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .header(USER_AGENT, HeaderValue::from_static(crate::USER_AGENT));
        if request.gzip {
            builder = builder.header(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        }
        if let Some(key) = &request.write_key {
            builder = builder.bearer_auth(key);
        }
        let mut response = builder.body(request.body).send().await.map_err(classify)?;
        let status = response.status().as_u16();
        let header = |name| {
            response
                .headers()
                .get(name)
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        };
        let retry_after = header(RETRY_AFTER);
        // A redirect's target, or the URL that answered if the client followed one itself.
        let location = if response.status().is_redirection() {
            Some(header(LOCATION).unwrap_or_default())
        } else if self.parsed.as_ref() != Some(&comparable(response.url())) {
            Some(response.url().to_string())
        } else {
            None
        };
        let mut body = Vec::new();
        let mut truncated = false;
        while let Some(chunk) = response.chunk().await.map_err(classify)? {
            let room = MAX_RESPONSE_BYTES.saturating_sub(body.len());
            body.extend_from_slice(&chunk[..chunk.len().min(room)]);
            if room < chunk.len() {
                truncated = true;
                break;
            }
        }
        Ok(Response {
            status,
            retry_after,
            body,
            location,
            truncated,
        })
    }
}

/// A URL as an answer's URL is compared: without credentials and fragment (the client does
/// not send them, so the answer's URL never has them).
fn comparable(url: &reqwest::Url) -> reqwest::Url {
    let mut u = url.clone();
    let _ = u.set_username("");
    let _ = u.set_password(None);
    u.set_fragment(None);
    u
}

fn classify(e: reqwest::Error) -> TransportError {
    if e.is_timeout() {
        TransportError::Timeout
    } else {
        // Include the source chain: "error sending request" alone says nothing.
        let mut message = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            message.push_str(": ");
            message.push_str(&s.to_string());
            source = s.source();
        }
        TransportError::Network(message)
    }
}

impl Transport for HttpTransport {
    fn send(&self, request: Request) -> LocalBoxFuture<'_, Result<Response, TransportError>> {
        Box::pin(self.post(request))
    }

    fn endpoint(&self) -> Option<&str> {
        Some(&self.shown)
    }
}
