//! A fault-injecting HTTP/1.1 proxy on loopback, between the tracker and the collector.
//!
//! It reads each request itself (head and `Content-Length` body), so it can fail at the
//! points that matter: before the collector sees anything, halfway through the body, or after
//! the collector stored the batch but before its answer reaches the tracker. The fault is a
//! setting the scenario changes as it goes ([`Proxy::set`]).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the proxy does to the next requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Forward and answer normally.
    Pass,
    /// Reset every connection at once (a collector that is down).
    Refuse,
    /// Hold each request this long before forwarding it (a slow collector; past the
    /// tracker's request timeout, the tracker retries what the collector then stores).
    Delay(Duration),
    /// Answer this status without forwarding, with a `Retry-After` in seconds if given.
    Status {
        /// The HTTP status.
        code: u16,
        /// `Retry-After` seconds.
        retry_after: Option<u64>,
    },
    /// Read half of the body, then reset the connection.
    ResetMidBody,
    /// Forward the request, let the collector store it, then reset instead of answering.
    LoseResponse,
    /// Forward the request, then hang up on the collector (and the tracker) this long after
    /// sending it: a client that gives up while the collector is still committing.
    HangUp(Duration),
}

/// What the proxy did.
#[derive(Debug, Default)]
pub struct ProxyCounts {
    /// Requests read in full or in part.
    pub requests: AtomicU64,
    /// Requests that met a fault other than `Pass`.
    pub faulted: AtomicU64,
}

/// A running proxy (stops with its runtime when dropped).
pub struct Proxy {
    addr: SocketAddr,
    fault: Arc<Mutex<Fault>>,
    /// What the proxy did so far.
    pub counts: Arc<ProxyCounts>,
    _runtime: tokio::runtime::Runtime,
}

impl Proxy {
    /// Listens on a free loopback port and forwards to `upstream`.
    ///
    /// # Panics
    ///
    /// When no loopback port can be bound (a test harness: fail loudly).
    #[must_use]
    pub fn start(upstream: SocketAddr) -> Proxy {
        #[allow(clippy::expect_used)]
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("proxy runtime");
        #[allow(clippy::expect_used)]
        let listener = runtime
            .block_on(TcpListener::bind("127.0.0.1:0"))
            .expect("bind proxy");
        #[allow(clippy::expect_used)]
        let addr = listener.local_addr().expect("proxy address");
        let fault = Arc::new(Mutex::new(Fault::Pass));
        let counts = Arc::new(ProxyCounts::default());
        let (f, c) = (fault.clone(), counts.clone());
        runtime.spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (f, c) = (f.clone(), c.clone());
                tokio::spawn(async move {
                    let _ = connection(client, upstream, &f, &c).await;
                });
            }
        });
        Proxy {
            addr,
            fault,
            counts,
            _runtime: runtime,
        }
    }

    /// The tracker's endpoint: `http://127.0.0.1:PORT`.
    #[must_use]
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Changes what the next requests meet.
    pub fn set(&self, fault: Fault) {
        *self.fault.lock().unwrap_or_else(PoisonError::into_inner) = fault;
    }

    fn current(fault: &Mutex<Fault>) -> Fault {
        fault.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

const MAX_HEAD: usize = 64 * 1024;

/// Serves one client connection: request after request until it closes or a fault ends it.
async fn connection(
    mut client: TcpStream,
    upstream: SocketAddr,
    fault: &Mutex<Fault>,
    counts: &ProxyCounts,
) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(16 * 1024);
    loop {
        let Some(head_len) = read_head(&mut client, &mut buf).await? else {
            return Ok(());
        };
        let head = buf[..head_len].to_vec();
        let body_len = content_length(&head);
        counts.requests.fetch_add(1, Ordering::Relaxed);
        let now = Proxy::current(fault);
        if now != Fault::Pass {
            counts.faulted.fetch_add(1, Ordering::Relaxed);
        }
        match now {
            Fault::Refuse => return reset(client),
            Fault::ResetMidBody => {
                fill(&mut client, &mut buf, head_len + body_len / 2).await?;
                return reset(client);
            }
            _ => {}
        }
        fill(&mut client, &mut buf, head_len + body_len).await?;
        let request: Vec<u8> = buf.drain(..head_len + body_len).collect();
        match now {
            Fault::Status { code, retry_after } => {
                let retry = retry_after.map_or(String::new(), |s| format!("retry-after: {s}\r\n"));
                let answer = format!("HTTP/1.1 {code} Fault\r\ncontent-length: 0\r\n{retry}\r\n");
                client.write_all(answer.as_bytes()).await?;
                continue;
            }
            Fault::Delay(d) => tokio::time::sleep(d).await,
            _ => {}
        }
        if let Fault::HangUp(after) = now {
            if let Ok(mut conn) = TcpStream::connect(upstream).await {
                conn.write_all(&request).await?;
                tokio::time::sleep(after).await;
                let _ = reset(conn);
            }
            return reset(client);
        }
        let Ok(response) = forward(upstream, &request, head_len).await else {
            // The collector is not there: as a dead collector, the connection drops.
            return reset(client);
        };
        if now == Fault::LoseResponse {
            return reset(client);
        }
        client.write_all(&response).await?;
        // `connection: close` was asked of the collector; the client is told the same.
        return Ok(());
    }
}

/// Reads until the end of a request head; returns its length, or `None` at a clean EOF.
async fn read_head(client: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<Option<usize>> {
    loop {
        if let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            return Ok(Some(pos + 4));
        }
        if buf.len() > MAX_HEAD {
            return Err(std::io::Error::other("request head too large"));
        }
        let mut chunk = [0u8; 8192];
        let n = client.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Reads until `buf` holds at least `want` bytes.
async fn fill(client: &mut TcpStream, buf: &mut Vec<u8>, want: usize) -> std::io::Result<()> {
    while buf.len() < want {
        let mut chunk = vec![0u8; (want - buf.len()).min(64 * 1024)];
        let n = client.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Ok(())
}

fn content_length(head: &[u8]) -> usize {
    String::from_utf8_lossy(head)
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.trim()
                .eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())
                .flatten()
        })
        .unwrap_or(0)
}

/// Sends one request to the collector on a new connection (asking it to close after
/// answering) and reads the whole answer.
async fn forward(
    upstream: SocketAddr,
    request: &[u8],
    head_len: usize,
) -> std::io::Result<Vec<u8>> {
    let mut conn = TcpStream::connect(upstream).await?;
    // Replace the head's final blank line with `connection: close` + blank line.
    conn.write_all(&request[..head_len - 2]).await?;
    conn.write_all(b"connection: close\r\n\r\n").await?;
    conn.write_all(&request[head_len..]).await?;
    let mut response = Vec::new();
    conn.read_to_end(&mut response).await?;
    if response.is_empty() {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    Ok(response)
}

/// Drops the connection with a TCP reset rather than a clean close.
fn reset(client: TcpStream) -> std::io::Result<()> {
    client.set_zero_linger()?;
    drop(client);
    Ok(())
}
