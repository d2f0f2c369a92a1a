//! # eventwire-testkit
//!
//! Dev-only (never published): what eventwire's test suites and benchmarks share instead of
//! each building its own.
//!
//! - [`Collector`]: a loopback HTTP server in the collector's place, on its own thread and
//!   runtime. Without a script it accepts every batch and only counts (fast enough for the
//!   benchmarks); with one ([`Collector::scripted`]) it records every request it sees and
//!   answers each as the script says: any status, headers, a batch answer with rejections,
//!   a raw body, or a hang.
//! - [`proxy::Proxy`]: a fault-injecting proxy between a tracker and a collector (refuse,
//!   delay, answer a status, reset mid-body, lose the answer, hang up).
//!
//! Everything listens on loopback only and stops when dropped.

#![allow(clippy::unwrap_used, clippy::missing_panics_doc)] // a test harness: fail loudly

pub mod broker;
pub mod kafka;
pub mod probe;
pub mod proxy;

use std::collections::HashMap;
use std::convert::Infallible;
use std::io::Read;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use eventwire::protocol::{Batch, BatchResponse, BATCH_PATH};
use eventwire::Uuid;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

/// What the collector does with one request.
#[derive(Debug, Clone)]
pub enum Step {
    /// Answer with this status and headers; on a 200, this batch answer (`None`: every
    /// event accepted).
    Answer(u16, Vec<(&'static str, String)>, Option<BatchResponse>),
    /// Wait this long, then answer 200 (the client should have timed out).
    Hang(Duration),
    /// Answer with this status, headers and raw body (not a batch answer).
    Raw(u16, Vec<(&'static str, String)>, &'static str),
}

/// Every event accepted.
#[must_use]
pub fn ok() -> Step {
    Step::Answer(200, vec![], None)
}

/// This status, no body.
#[must_use]
pub fn status(code: u16) -> Step {
    Step::Answer(code, vec![], None)
}

/// A request as the collector saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    /// The batch, decoded (gunzipped when it was).
    pub batch: Batch,
    /// The status it was answered with (0: the request hung; the client never got one).
    pub status: u16,
    /// Whether the body was gzipped.
    pub gzip: bool,
    /// The `Authorization` header.
    pub authorization: Option<String>,
    /// When it arrived.
    pub at: Instant,
}

/// A request to another path than `/v1/batch` (only a redirect followed by the client gets
/// there): method, path, body bytes.
pub type Stray = (String, String, usize);

/// The script: the request's arrival number (from 0) and its batch → what to do.
pub type Script = dyn Fn(usize, &Batch) -> Step + Send + Sync;

/// What the collector's thread shares with its handle.
#[derive(Default)]
struct Log {
    seen: Mutex<Vec<Seen>>,
    strays: Mutex<Vec<Stray>>,
    events: AtomicU64,
    requests: AtomicU64,
    arrived: AtomicUsize,
}

/// A loopback collector stand-in (see the crate docs). Stops when dropped.
pub struct Collector {
    /// Where it listens.
    pub addr: SocketAddr,
    log: Arc<Log>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Collector {
    /// Accepts every batch and counts its events and requests; records nothing.
    #[must_use]
    pub fn accept_all() -> Collector {
        Collector::serve(bind(), None)
    }

    /// Answers each request as `script` says, recording what it saw.
    pub fn scripted(script: impl Fn(usize, &Batch) -> Step + Send + Sync + 'static) -> Collector {
        Collector::serve(bind(), Some(Arc::new(script)))
    }

    /// As [`Collector::scripted`], on a listener the caller bound (a port chosen earlier).
    pub fn scripted_on(
        listener: std::net::TcpListener,
        script: impl Fn(usize, &Batch) -> Step + Send + Sync + 'static,
    ) -> Collector {
        Collector::serve(listener, Some(Arc::new(script)))
    }

    fn serve(listener: std::net::TcpListener, script: Option<Arc<Script>>) -> Collector {
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let log = Arc::new(Log::default());
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let shared = log.clone();
        let thread = std::thread::Builder::new()
            .name("testkit-collector".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async move {
                    let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                    loop {
                        tokio::select! {
                            _ = &mut stopped => break,
                            accepted = listener.accept() => {
                                let Ok((stream, _)) = accepted else { continue };
                                let (script, log) = (script.clone(), shared.clone());
                                tokio::spawn(async move {
                                    let service = hyper::service::service_fn(move |req| {
                                        handle(req, script.clone(), log.clone())
                                    });
                                    let _ = hyper::server::conn::http1::Builder::new()
                                        .serve_connection(TokioIo::new(stream), service)
                                        .await;
                                });
                            }
                        }
                    }
                });
            })
            .unwrap();
        Collector {
            addr,
            log,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// The base URL to give a tracker: `http://127.0.0.1:PORT`.
    #[must_use]
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Events received so far, in requests to `/v1/batch` (every attempt counts).
    #[must_use]
    pub fn events(&self) -> u64 {
        self.log.events.load(Ordering::SeqCst)
    }

    /// Requests to `/v1/batch` so far.
    #[must_use]
    pub fn requests(&self) -> u64 {
        self.log.requests.load(Ordering::SeqCst)
    }

    /// Every request a scripted collector saw, in arrival order.
    #[must_use]
    pub fn seen(&self) -> Vec<Seen> {
        self.log.seen.lock().unwrap().clone()
    }

    /// Requests that reached another path than `/v1/batch`.
    #[must_use]
    pub fn strays(&self) -> Vec<Stray> {
        self.log.strays.lock().unwrap().clone()
    }

    /// How often each event id arrived in any request.
    #[must_use]
    pub fn arrivals(&self) -> HashMap<Uuid, usize> {
        count_ids(self.seen().iter())
    }

    /// How often each event id arrived in a request answered 200.
    #[must_use]
    pub fn accepted(&self) -> HashMap<Uuid, usize> {
        count_ids(self.seen().iter().filter(|s| s.status == 200))
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn bind() -> std::net::TcpListener {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap()
}

fn count_ids<'a>(seen: impl Iterator<Item = &'a Seen>) -> HashMap<Uuid, usize> {
    let mut map = HashMap::new();
    for s in seen {
        for e in &s.batch.events {
            *map.entry(e.event_id).or_insert(0) += 1;
        }
    }
    map
}

/// A request body, gunzipped when `gzip` (a body that fails to read or inflate comes back
/// empty or cut short: the counts then show the loss).
pub async fn read_body(body: Incoming, gzip: bool) -> Bytes {
    let body = body
        .collect()
        .await
        .map(http_body_util::Collected::to_bytes)
        .unwrap_or_default();
    if gzip {
        let mut out = Vec::new();
        let _ = flate2::read::GzDecoder::new(&body[..]).read_to_end(&mut out);
        Bytes::from(out)
    } else {
        body
    }
}

/// Only the number of events: what the counting collector parses.
#[derive(serde::Deserialize)]
struct Counted {
    events: Vec<serde::de::IgnoredAny>,
}

async fn handle(
    req: Request<Incoming>,
    script: Option<Arc<Script>>,
    log: Arc<Log>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let gzip = req
        .headers()
        .get("content-encoding")
        .is_some_and(|v| v == "gzip");
    let authorization = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    if req.uri().path() != BATCH_PATH {
        // Where a redirect leads: a web page that answers anything with 200.
        let method = req.method().to_string();
        let path = req.uri().path().to_owned();
        let body = req.into_body().collect().await.unwrap().to_bytes();
        log.strays.lock().unwrap().push((method, path, body.len()));
        let page = "<!doctype html><title>Welcome</title><p>Our new site";
        return Ok(Response::builder()
            .status(200)
            .header("content-type", "text/html")
            .body(Full::new(Bytes::from(page)))
            .unwrap());
    }
    let plain = read_body(req.into_body(), gzip).await;
    log.requests.fetch_add(1, Ordering::SeqCst);
    let Some(script) = script else {
        let n = serde_json::from_slice::<Counted>(&plain).map_or(0, |c| c.events.len() as u64);
        log.events.fetch_add(n, Ordering::SeqCst);
        let answer = format!(r#"{{"accepted":{n},"duplicates":0,"rejected":[]}}"#);
        return Ok(Response::new(Full::new(Bytes::from(answer))));
    };
    let batch: Batch = serde_json::from_slice(&plain).expect("the tracker sends valid batches");
    log.events
        .fetch_add(batch.events.len() as u64, Ordering::SeqCst);
    // Numbered by arrival: a hung request is logged when it arrives, with status 0.
    let n = log.arrived.fetch_add(1, Ordering::SeqCst);
    let step = script(n, &batch);
    let (status, headers, answer, hang, raw) = match step {
        Step::Answer(status, headers, answer) => (status, headers, answer, None, None),
        Step::Hang(d) => (200, vec![], None, Some(d), None),
        Step::Raw(status, headers, body) => (status, headers, None, None, Some(body)),
    };
    log.seen.lock().unwrap().push(Seen {
        batch: batch.clone(),
        status: if hang.is_some() { 0 } else { status },
        gzip,
        authorization,
        at: Instant::now(),
    });
    if let Some(d) = hang {
        tokio::time::sleep(d).await;
    }
    let answer = answer.unwrap_or(BatchResponse {
        accepted: batch.events.len() as u64,
        ..Default::default()
    });
    let mut response = Response::builder().status(status);
    for (k, v) in headers {
        response = response.header(k, v);
    }
    let body = if let Some(raw) = raw {
        raw.as_bytes().to_vec()
    } else if status == 200 {
        serde_json::to_vec(&answer).unwrap()
    } else {
        Vec::new()
    };
    Ok(response.body(Full::new(Bytes::from(body))).unwrap())
}
