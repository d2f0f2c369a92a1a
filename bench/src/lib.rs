//! Shared pieces of eventwire's benchmarks: a realistic event and a loopback HTTP sink.

#![allow(clippy::unwrap_used)] // benchmark harness: fail loudly

use std::convert::Infallible;
use std::io::Read;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde::{de::IgnoredAny, Deserialize, Serialize};

/// A media play event of about 600 bytes of JSON: a dozen properties and a nested object.
#[derive(Debug, Clone, Serialize)]
pub struct MediaPlay {
    /// Media id.
    pub media_id: String,
    /// Title.
    pub title: String,
    /// Position in seconds.
    pub position_s: f64,
    /// Duration in seconds.
    pub duration_s: f64,
    /// Playback rate.
    pub playback_rate: f64,
    /// Volume 0-100.
    pub volume: u8,
    /// Muted.
    pub muted: bool,
    /// Full screen.
    pub fullscreen: bool,
    /// Picture in picture.
    pub picture_in_picture: bool,
    /// Quality label.
    pub quality: String,
    /// Audio language.
    pub audio_language: String,
    /// Subtitles language.
    pub subtitles: Option<String>,
    /// Page the player is on.
    pub page_url: String,
    /// Where the viewer came from.
    pub referrer: String,
    /// Programme information.
    pub programme: Programme,
}

/// Nested programme details.
#[derive(Debug, Clone, Serialize)]
pub struct Programme {
    /// Brand.
    pub brand: String,
    /// Series.
    pub series: u32,
    /// Episode.
    pub episode: u32,
    /// Genres.
    pub genres: Vec<String>,
    /// Broadcast channel.
    pub channel: String,
}

impl eventwire::SelfDescribing for MediaPlay {
    const SCHEMA: &'static str = "iglu:com.example.media/play/jsonschema/1-0-0";
}

impl MediaPlay {
    /// The benchmark's event, varied by `i`.
    pub fn sample(i: u64) -> Self {
        MediaPlay {
            media_id: format!("b0074dlv-{i}"),
            title: "Planet Earth III: Coasts — the tidal zone at night".into(),
            position_s: i as f64 * 0.5,
            duration_s: 3540.0,
            playback_rate: 1.0,
            volume: 80,
            muted: false,
            fullscreen: true,
            picture_in_picture: false,
            quality: "1080p-hdr".into(),
            audio_language: "en-GB".into(),
            subtitles: Some("en".into()),
            page_url: format!(
                "https://www.example.com/iplayer/episode/b0074dlv/planet-earth-iii-series-3-{i}"
            ),
            referrer: "https://www.example.com/iplayer/categories/nature-and-science/featured"
                .into(),
            programme: Programme {
                brand: "Planet Earth".into(),
                series: 3,
                episode: 1,
                genres: vec!["factual".into(), "nature".into(), "documentary".into()],
                channel: "bbc-one-hd".into(),
            },
        }
    }
}

/// The player entity attached to the event.
pub fn player_entity() -> eventwire::Entity {
    eventwire::Entity {
        schema: "iglu:com.example.media/player/jsonschema/1-0-0".into(),
        data: serde_json::json!({"kind": "video", "player": "html5", "version": "4.2.1", "autoplay": false}),
    }
}

#[derive(Deserialize)]
struct Counted {
    events: Vec<IgnoredAny>,
}

/// A loopback HTTP sink that answers every POST with 200 and counts events.
pub struct Sink {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Events counted so far.
    pub events: Arc<AtomicU64>,
    /// Requests answered so far.
    pub requests: Arc<AtomicU64>,
}

impl Sink {
    /// Starts the sink on its own thread and runtime.
    pub fn start() -> Sink {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let events = Arc::new(AtomicU64::new(0));
        let requests = Arc::new(AtomicU64::new(0));
        let (e, r) = (events.clone(), requests.clone());
        std::thread::Builder::new()
            .name("sink".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async move {
                    let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                    loop {
                        let Ok((stream, _)) = listener.accept().await else {
                            break;
                        };
                        let (e, r) = (e.clone(), r.clone());
                        tokio::spawn(async move {
                            let service = hyper::service::service_fn(move |req| {
                                count(req, e.clone(), r.clone())
                            });
                            let _ = hyper::server::conn::http1::Builder::new()
                                .serve_connection(TokioIo::new(stream), service)
                                .await;
                        });
                    }
                });
            })
            .unwrap();
        Sink {
            addr,
            events,
            requests,
        }
    }

    /// The base URL to give a tracker.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// A request body, gunzipped when `gzip` (a body that fails to read or inflate is empty or
/// cut short: the counts then show the loss).
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

async fn count(
    req: Request<Incoming>,
    events: Arc<AtomicU64>,
    requests: Arc<AtomicU64>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let gzip = req
        .headers()
        .get("content-encoding")
        .is_some_and(|v| v == "gzip");
    let plain = read_body(req.into_body(), gzip).await;
    let n = serde_json::from_slice::<Counted>(&plain).map_or(0, |c| c.events.len() as u64);
    events.fetch_add(n, Ordering::Relaxed);
    requests.fetch_add(1, Ordering::Relaxed);
    let answer = format!(r#"{{"accepted":{n},"duplicates":0,"rejected":[]}}"#);
    Ok(Response::new(Full::new(Bytes::from(answer))))
}
