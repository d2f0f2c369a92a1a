//! `eventwire demo`: the whole loop on embedded defaults, no services to start.
//!
//! A collector on a free loopback port with file sinks in a fresh directory; a tracker that
//! sends a realistic visit (pages, an article, a search, a video with its player entity, a
//! checkout, a front-end error) plus deliberately bad events; then a report of what arrived.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context as _};
use eventwire::{Entity, SelfDescribing, TrackError, Tracker};
use eventwire_collector::registry::Source;
use eventwire_collector::server::{Collector, CollectorConfig};
use eventwire_collector::sink::SinkSpec;
use serde_json::{json, Value};

/// Arguments of `eventwire demo`.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Schema registry directory.
    #[arg(long, default_value = "schemas")]
    schemas: PathBuf,
    /// Where to write good.jsonl and bad.jsonl (default: a new temporary directory, kept).
    #[arg(long)]
    dir: Option<PathBuf>,
}

/// Runs the demo.
pub fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    if !args.schemas.join("com.example.media").is_dir() {
        bail!(
            "no example schemas under {}: run from the repository root, or pass --schemas DIR",
            args.schemas.display()
        );
    }
    let dir = match &args.dir {
        Some(d) => {
            std::fs::create_dir_all(d).with_context(|| format!("cannot create {}", d.display()))?;
            for f in ["good.jsonl", "bad.jsonl"] {
                let _ = std::fs::remove_file(d.join(f));
            }
            d.clone()
        }
        None => tempfile::Builder::new()
            .prefix("eventwire-demo-")
            .tempdir()
            .context("cannot create a temporary directory")?
            .keep(),
    };
    let runtime = tokio::runtime::Runtime::new().context("cannot start the runtime")?;
    runtime.block_on(demo(&args.schemas, &dir))
}

async fn demo(schemas: &Path, dir: &Path) -> anyhow::Result<ExitCode> {
    let good_path = dir.join("good.jsonl");
    let bad_path = dir.join("bad.jsonl");
    let config = CollectorConfig::new(Source::Dir(schemas.to_owned()))
        .good(SinkSpec::File(good_path.clone()))
        .bad(SinkSpec::File(bad_path.clone()));
    let collector = Collector::new(config)
        .await
        .context("cannot start the collector")?;
    let server = collector
        .serve("127.0.0.1:0".parse().context("address")?)
        .await
        .context("cannot listen on loopback")?;
    println!("eventwire demo");
    println!(
        "  collector  {}  (schemas from {}/)",
        server.endpoint(),
        schemas.display()
    );

    let tracker = Tracker::builder()
        .endpoint(server.endpoint())
        .environment("demo")
        .service("demo-shop")
        .team("growth")
        .version(env!("CARGO_PKG_VERSION"))
        .build()
        .context("cannot build the tracker")?;
    tracker.set_user_id(Some("user-4711".into()));
    println!(
        "  tracker    labels environment=demo service=demo-shop team=growth version={}",
        env!("CARGO_PKG_VERSION")
    );

    let mut refused: Vec<String> = Vec::new();
    let sent = track_visit(&tracker, &mut refused)?;
    tracker
        .flush_async(Duration::from_secs(10))
        .await
        .context("flush")?;

    // A batch whose answer was "lost": the tracker would resend it with the same ids.
    let replayed = replay_first_good(&server.endpoint(), &good_path).await?;
    // A client whose clock is an hour fast.
    let skewed = send_skewed(&server.endpoint()).await?;

    tracker
        .shutdown_async(Duration::from_secs(10))
        .await
        .context("shutdown")?;
    let stats = tracker.stats();
    let totals = collector.totals();
    server.shutdown().await;

    let good = read_lines(&good_path)?;
    let bad = read_lines(&bad_path)?;
    println!();
    println!(
        "gave {} events to the Rust tracker ({} refused at track(): {})",
        sent + refused.len(),
        refused.len(),
        if refused.is_empty() {
            "none".to_owned()
        } else {
            refused.join("; ")
        }
    );
    println!(
        "tracker stats: sent {}, rejected by the collector {}, dropped {}, pending {}",
        stats.sent,
        stats.rejected,
        stats.dropped_total(),
        stats.pending
    );
    println!(
        "collector: {} accepted, {} dead-lettered, {} duplicate(s)",
        totals.accepted, totals.rejected, totals.duplicates
    );
    println!();
    println!("accepted, by schema:");
    let mut by_schema: BTreeMap<&str, usize> = BTreeMap::new();
    for g in &good {
        *by_schema
            .entry(g["schema"].as_str().unwrap_or("?"))
            .or_default() += 1;
    }
    for (schema, n) in &by_schema {
        println!("  {n:>3}  {schema}");
    }
    println!();
    println!("dead-lettered, with reasons:");
    for b in &bad {
        let schema = b["event"]["schema"]
            .as_str()
            .unwrap_or("(kept as raw bytes: it was not parsed)");
        let e = &b["errors"][0];
        let path = e["path"].as_str().filter(|p| !p.is_empty()).unwrap_or("/");
        println!(
            "  {:<15} {}\n                  {} ({}): {}",
            b["code"].as_str().unwrap_or("?"),
            schema,
            path,
            e["keyword"].as_str().unwrap_or(""),
            truncate(e["message"].as_str().unwrap_or(""), 100)
        );
    }
    println!();
    println!("duplicates: event {replayed} was sent again (as after a lost answer) and counted, not stored twice");
    if let Some(s) = good.iter().find(|g| g["event_id"] == json!(skewed)) {
        println!(
            "clock skew: a client an hour fast said created_at {} and sent_at {};\n            received_at {} → event_time {}",
            s["created_at"].as_str().unwrap_or(""),
            s["sent_at"].as_str().unwrap_or(""),
            s["received_at"].as_str().unwrap_or(""),
            s["event_time"].as_str().unwrap_or("")
        );
    }
    println!();
    println!("files:");
    println!("  good  {}  ({} lines)", good_path.display(), good.len());
    println!("  bad   {}  ({} lines)", bad_path.display(), bad.len());
    Ok(ExitCode::SUCCESS)
}

/// Tracks one visit's events and the deliberately bad ones; returns how many were tracked.
fn track_visit(tracker: &Tracker, refused: &mut Vec<String>) -> anyhow::Result<usize> {
    use crate::events::{
        com_example_media as media, com_example_shop as shop, com_example_web as web,
    };
    let media_id = "b0074dlv";
    let player: media::Player = media::Player::builder()
        .kind("video")
        .player_name("html5")
        .player_version(Some(
            "4.2.1"
                .parse::<media::player::v1_0_0::PlayerPlayerVersion>()
                .map_err(anyhow::Error::msg)?,
        ))
        .volume(Some(80_i64))
        .quality(Some(media::player::v1_0_0::PlayerQuality::Hd))
        .try_into()
        .map_err(anyhow::Error::msg)?;
    let player = Entity::typed(&player)?;
    let entities = std::slice::from_ref(&player);
    let mut n = 0;
    let mut count = |r: Result<eventwire::Uuid, TrackError>| -> anyhow::Result<()> {
        match r {
            Ok(_) => n += 1,
            Err(e @ TrackError::TooLarge { .. }) => refused.push(e.to_string()),
            Err(e) => return Err(e.into()),
        }
        Ok(())
    };
    let page: web::PageView = web::PageView::builder()
        .url("https://shop.example.com/")
        .title(Some(
            "Home"
                .parse::<web::page_view::v1_0_0::PageViewTitle>()
                .map_err(anyhow::Error::msg)?,
        ))
        .try_into()
        .map_err(anyhow::Error::msg)?;
    count(tracker.track(page))?;
    let search: web::Search = web::Search::builder()
        .query("planet earth")
        .results_count(12_u64)
        .try_into()
        .map_err(anyhow::Error::msg)?;
    count(tracker.track(search))?;
    let author: web::article_view::v1_0_0::ArticleViewAuthorsItem =
        web::article_view::v1_0_0::ArticleViewAuthorsItem::builder()
            .name("A. Reporter")
            .staff_id(Some(std::num::NonZeroU64::new(7).context("staff id")?))
            .try_into()
            .map_err(anyhow::Error::msg)?;
    let article: web::ArticleView = web::ArticleView::builder()
        .article_id("science-42")
        .headline("Filming the tidal zone at night")
        .section("science")
        .authors(vec![author])
        .word_count(Some(1240_u64))
        .try_into()
        .map_err(anyhow::Error::msg)?;
    count(tracker.track(article))?;
    let play = |position_s: f64| -> anyhow::Result<media::Play> {
        media::Play::builder()
            .media_id(media_id)
            .position_s(position_s)
            .try_into()
            .map_err(anyhow::Error::msg)
    };
    count(tracker.track_with(play(0.0)?, entities))?;
    let seek: media::Seek = media::Seek::builder()
        .media_id(media_id)
        .from_s(12.0)
        .to_s(340.5)
        .method("scrub")
        .try_into()
        .map_err(anyhow::Error::msg)?;
    count(tracker.track_with(seek, entities))?;
    let pause: media::Pause = media::Pause::builder()
        .media_id(media_id)
        .position_s(402.0)
        .reason(Some(media::pause::v1_0_0::PauseReason::User))
        .try_into()
        .map_err(anyhow::Error::msg)?;
    count(tracker.track_with(pause, entities))?;
    count(tracker.track_with(play(402.0)?, entities))?;
    let complete: media::Complete = media::Complete::builder()
        .media_id(media_id)
        .duration_s(3540.0)
        .watched_ratio(0.93)
        .try_into()
        .map_err(anyhow::Error::msg)?;
    count(tracker.track_with(complete, entities))?;
    let item =
        |sku: &str, unit_price: f64| -> anyhow::Result<shop::checkout::v1_0_1::CheckoutItemsItem> {
            shop::checkout::v1_0_1::CheckoutItemsItem::builder()
                .sku(sku)
                .quantity(std::num::NonZeroU64::MIN)
                .unit_price(unit_price)
                .try_into()
                .map_err(anyhow::Error::msg)
        };
    let checkout: shop::Checkout = shop::Checkout::builder()
        .order_id("ORD-20261126")
        .currency("GBP")
        .total(24.98)
        .items(vec![item("DVD-PE3", 19.99)?, item("GIFT-WRAP", 4.99)?])
        .payment_method(Some(shop::checkout::v1_0_1::CheckoutPaymentMethod::Card))
        .try_into()
        .map_err(anyhow::Error::msg)?;
    count(tracker.track(checkout))?;
    let error: web::FrontendError = web::FrontendError::builder()
        .message("Cannot read properties of undefined (reading 'play')")
        .severity("error")
        .error_type(Some(
            "TypeError"
                .parse::<web::frontend_error::v1_0_0::FrontendErrorErrorType>()
                .map_err(anyhow::Error::msg)?,
        ))
        .line(Some(118_u64))
        .try_into()
        .map_err(anyhow::Error::msg)?;
    count(tracker.track(error))?;

    // Deliberately bad, sent as dynamic events (the typed API would not let them be built).
    let play_uri = <media::Play as SelfDescribing>::SCHEMA;
    let search_uri = <web::Search as SelfDescribing>::SCHEMA;
    count(tracker.track_json(
        play_uri,
        &json!({"media_id": media_id, "position_s": "12.5"}),
    ))?; // wrong type
    count(tracker.track_json(
        "iglu:com.example.media/rewind/jsonschema/1-0-0", // not in the registry
        &json!({"media_id": media_id}),
    ))?;
    count(tracker.track_json(
        search_uri,
        &json!({"query": "q".repeat(100_000), "results_count": 0}),
    ))?; // a 100 KB string
    count(tracker.track_json(
        search_uri,
        &json!({"query": "x".repeat(300 * 1024), "results_count": 0}),
    ))?; // over the tracker's limit
    let bad_player = Entity {
        schema: <media::Player as SelfDescribing>::SCHEMA.into(),
        data: json!({"kind": "hologram", "player_name": "html5"}),
    };
    count(tracker.track_with(play(5.0)?, &[bad_player]))?;
    Ok(n)
}

/// Posts the first good event again with its original id, as a tracker does after a lost
/// answer. Returns the event id.
async fn replay_first_good(endpoint: &str, good_path: &Path) -> anyhow::Result<String> {
    let first = read_lines(good_path)?
        .into_iter()
        .next()
        .context("no good event to replay")?;
    let mut event = first.clone();
    if let Some(o) = event.as_object_mut() {
        for field in ["sent_at", "received_at", "event_time"] {
            o.remove(field);
        }
    }
    let body = json!({ "sent_at": eventwire_collector::time::format_timestamp(chrono::Utc::now()), "events": [event] });
    post(endpoint, &body).await?;
    Ok(first["event_id"].as_str().unwrap_or_default().to_owned())
}

/// Sends one event from a client whose clock is an hour fast and which held the event 3 s.
async fn send_skewed(endpoint: &str) -> anyhow::Result<String> {
    let fast = chrono::Utc::now() + chrono::Duration::hours(1);
    let id = uuid::Uuid::now_v7().to_string();
    let fmt = eventwire_collector::time::format_timestamp;
    let body = json!({
        "sent_at": fmt(fast),
        "events": [{
            "event_id": id,
            "schema": "iglu:com.example.web/page_view/jsonschema/1-0-0",
            "data": { "url": "https://shop.example.com/basket", "title": "Basket", "referrer": "https://shop.example.com/" },
            "created_at": fmt(fast - chrono::Duration::seconds(3)),
            "context": {
                "labels": { "environment": "demo", "service": "demo-kiosk" },
                "library": { "name": "demo-raw-http", "version": "1" },
                "anonymous_id": "kiosk-7"
            }
        }]
    });
    post(endpoint, &body).await?;
    Ok(id)
}

async fn post(endpoint: &str, body: &Value) -> anyhow::Result<()> {
    let response = reqwest::Client::new()
        .post(format!("{endpoint}/v1/batch"))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .context("posting to the collector")?;
    if !response.status().is_success() {
        bail!("collector answered {}", response.status());
    }
    Ok(())
}

fn read_lines(path: &Path) -> anyhow::Result<Vec<Value>> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .map(|l| serde_json::from_str(l).with_context(|| format!("{}: not JSON", path.display())))
        .collect()
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let cut: String = s.chars().take(max).collect();
    format!("{cut}…")
}
