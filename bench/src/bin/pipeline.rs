//! The multi-machine shape on one machine: tracker → collector → Kafka → `eventwire
//! process`, on the local Kafka-protocol broker (in-memory storage, a free loopback port,
//! an input topic of 4 partitions).
//!
//! 1. collect → Kafka: the Rust tracker → the collector with a Kafka good sink, until
//!    `flush` returns;
//! 2. `process` with 1 worker, then with 2 (separate processes, this binary run as
//!    `pipeline --worker …`, each its own group over the same input): events per second
//!    from when the group has settled until its committed offsets reach the end of the
//!    input (lag 0), and the ratio between the two;
//! 3. freshness: a tracker at a steady 2,000 events/s through a collector and one worker,
//!    from `track()` (the event's `created_at`) to the output record (its broker timestamp),
//!    p50 and p99;
//! 4. peak resident memory of each worker (`VmHWM`).
//!
//! `cargo run --release -p eventwire-bench --bin pipeline` (the broker binary comes from
//! `scripts/test.sh`, or `EVENTWIRE_BROKER=/path/to/broker`).

#![allow(clippy::unwrap_used, clippy::print_stdout, clippy::expect_used)] // a benchmark: fail loudly, print a table

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use eventwire::{Tracker, WhenFull};
use eventwire_bench::mix::{mix, player};
use eventwire_collector::registry::Source;
use eventwire_collector::server::{Collector, CollectorConfig, ServerHandle};
use eventwire_collector::sink::SinkSpec;
use eventwire_testkit::kafka::{committed, create_topic, ends};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Message, Offset, TopicPartitionList};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const EVENTS: usize = 100_000;
const PARTITIONS: i32 = 4;
const FRESH_RATE: u64 = 2_000;
const FRESH_SECONDS: u64 = 10;

async fn collector(brokers: &str, topic: &str, dir: &std::path::Path) -> (Collector, ServerHandle) {
    let schemas = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas");
    let config = CollectorConfig::new(Source::Dir(schemas))
        .good(SinkSpec::Kafka {
            brokers: brokers.to_owned(),
            topic: topic.to_owned(),
        })
        .bad(SinkSpec::File(dir.join(format!("bad-{topic}.jsonl"))));
    let collector = Collector::new(config).await.unwrap();
    let server = collector
        .serve("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    (collector, server)
}

fn tracker(endpoint: &str) -> Tracker {
    Tracker::builder()
        .endpoint(endpoint)
        .environment("bench")
        .service("pipeline-bench")
        .when_full(WhenFull::Block(Duration::from_secs(60)))
        .build()
        .unwrap()
}

fn track(tracker: &Tracker, i: usize, player: &eventwire::Entity) {
    let (schema, data, entities) = mix(i);
    let entities: &[eventwire::Entity] = if entities.is_empty() {
        &[]
    } else {
        std::slice::from_ref(player)
    };
    tracker.track_json_with(schema, &data, entities).unwrap();
}

/// A worker process: this binary as `--worker`.
struct Worker {
    child: Child,
    addr: std::net::SocketAddr,
}

impl Worker {
    fn start(brokers: &str, input: &str, group: &str) -> Worker {
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let child = Command::new(std::env::current_exe().unwrap())
            .args(["--worker", brokers, input, group, &addr.to_string()])
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(addr).is_err() {
            assert!(Instant::now() < deadline, "worker did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Worker { child, addr }
    }

    fn owned(&self) -> usize {
        let (_, body, _) = eventwire_testkit::probe::http_get(self.addr, "/healthz");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        v["partitions"].as_array().map_or(0, Vec::len)
    }

    fn cpu_seconds(&self) -> f64 {
        cpu_seconds(self.child.id())
    }

    /// Peak resident memory, MB.
    fn peak_rss_mb(&self) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .unwrap_or(0.0)
            / 1024.0
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// CPU time (user + system) of process `pid` so far, in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which ends with the last ')'): utime is the 12th,
    // stime the 13th, in clock ticks (100 a second on Linux).
    let rest = stat.rsplit(')').next().unwrap_or_default();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

fn worker_main(args: &[String]) {
    let [brokers, input, group, listen] = args else {
        panic!("usage: pipeline --worker BROKERS INPUT GROUP LISTEN");
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let mut config = eventwire_process::ProcessConfig::new(brokers, input);
        config.group = group.clone();
        config.output = Some(format!("kafka://{brokers}/{group}-out"));
        config.state_topic = Some(format!("{group}-state"));
        config.dead_letters = Some(format!("kafka://{brokers}/{group}-dead"));
        config.listen = listen.parse().unwrap();
        config = config.uniques(
            eventwire_process::uniques::UniquesSpec::parse("com.example.media/play:/data/media_id")
                .unwrap(),
        );
        let running = eventwire_process::Process::start(config).await.unwrap();
        running.wait().await.unwrap();
    });
}

/// One `process` run: events per second, the workers' CPU seconds, the broker's CPU seconds,
/// and each worker's peak memory (MB).
struct Run {
    rate: f64,
    events: f64,
    worker_cpu: f64,
    broker_cpu: f64,
    rss: Vec<f64>,
}

/// Runs `n` workers of a new group over `input` until lag 0, measured from when every
/// worker owns a partition.
fn process_rate(
    brokers: &str,
    broker_pid: u32,
    input: &str,
    group: &str,
    n: usize,
    ends: &[i64],
) -> Run {
    let workers: Vec<Worker> = (0..n)
        .map(|_| Worker::start(brokers, input, group))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !workers.iter().all(|w| w.owned() > 0) {
        assert!(Instant::now() < deadline, "the group did not settle");
        std::thread::sleep(Duration::from_millis(20));
    }
    let start = Instant::now();
    let before: i64 = committed(brokers, group, input, PARTITIONS).iter().sum();
    let total: i64 = ends.iter().sum();
    let cpu_before: f64 = workers.iter().map(Worker::cpu_seconds).sum();
    let broker_before = cpu_seconds(broker_pid);
    loop {
        let got = committed(brokers, group, input, PARTITIONS);
        if got == ends {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(600),
            "lag did not reach 0: {got:?} of {ends:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let took = start.elapsed();
    let events = (total - before) as f64;
    Run {
        rate: events / took.as_secs_f64(),
        events,
        worker_cpu: workers.iter().map(Worker::cpu_seconds).sum::<f64>() - cpu_before,
        broker_cpu: cpu_seconds(broker_pid) - broker_before,
        rss: workers.iter().map(Worker::peak_rss_mb).collect(),
    }
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--worker") {
        worker_main(&args[1..]);
        return;
    }
    let broker = eventwire_testkit::broker::Broker::start();
    let brokers = broker.address.clone();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let player = eventwire::Entity {
        schema: "iglu:com.example.media/player/jsonschema/1-0-0".into(),
        data: player()["data"].clone(),
    };

    // 1. collect → Kafka.
    runtime.block_on(create_topic(&brokers, "events", PARTITIONS));
    let (_collector, server) = runtime.block_on(collector(&brokers, "events", dir.path()));
    let t = tracker(&server.endpoint());
    let start = Instant::now();
    let (own_before, broker_before) = (cpu_seconds(std::process::id()), cpu_seconds(broker.pid()));
    for i in 0..EVENTS {
        track(&t, i, &player);
    }
    t.flush(Duration::from_secs(300)).unwrap();
    let collect_rate = EVENTS as f64 / start.elapsed().as_secs_f64();
    let collect_cpu = cpu_seconds(std::process::id()) - own_before;
    let collect_broker_cpu = cpu_seconds(broker.pid()) - broker_before;
    t.shutdown(Duration::from_secs(10)).unwrap();
    let ends = ends(&brokers, "events", PARTITIONS);
    let records: i64 = ends.iter().sum();

    // 2. process, 1 worker then 2.
    let one = process_rate(&brokers, broker.pid(), "events", "one", 1, &ends);
    let two = process_rate(&brokers, broker.pid(), "events", "two", 2, &ends);

    // 3. Freshness at a steady rate, through a collector and one worker.
    runtime.block_on(create_topic(&brokers, "fresh", PARTITIONS));
    let (_c2, server2) = runtime.block_on(collector(&brokers, "fresh", dir.path()));
    let fresh_worker = Worker::start(&brokers, "fresh", "fresh");
    while fresh_worker.owned() == 0 {
        std::thread::sleep(Duration::from_millis(20));
    }
    let t = tracker(&server2.endpoint());
    let tick = Duration::from_millis(10);
    let start = Instant::now();
    let total = (FRESH_RATE * FRESH_SECONDS) as usize;
    for i in 0..total {
        if (i as u64).is_multiple_of(FRESH_RATE / 100) {
            let due = start + tick * (i as u64 / (FRESH_RATE / 100)) as u32;
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
        }
        track(&t, i, &player);
    }
    t.flush(Duration::from_secs(60)).unwrap();
    t.shutdown(Duration::from_secs(10)).unwrap();
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("group.id", "bench-fresh")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition_offset("fresh-out", p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let mut lags = Vec::new();
    let mut stage = Vec::new();
    let mut last = Instant::now();
    while lags.len() < total && last.elapsed() < Duration::from_secs(10) {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            last = Instant::now();
            let out_ms = m.timestamp().to_millis().unwrap_or(0);
            let v: serde_json::Value =
                serde_json::from_slice(m.payload().unwrap_or_default()).unwrap();
            let at = |field: &str| {
                chrono::DateTime::parse_from_rfc3339(v[field].as_str().unwrap())
                    .unwrap()
                    .timestamp_millis()
            };
            lags.push((out_ms - at("created_at")) as f64);
            stage.push((out_ms - at("received_at")) as f64);
        }
    }
    lags.sort_by(f64::total_cmp);
    stage.sort_by(f64::total_cmp);
    let fresh_rss = fresh_worker.peak_rss_mb();
    drop(fresh_worker);
    runtime.block_on(server.shutdown());
    runtime.block_on(server2.shutdown());

    println!("eventwire pipeline benchmark (local broker, in-memory, {PARTITIONS} partitions, loopback, this machine's cores shared by every process)");
    println!();
    println!("| measure | figure |");
    println!("|---|---:|");
    println!("| tracker → collector → Kafka, {EVENTS} events ({records} records in the topic) | {collect_rate:.0} events/s |");
    println!(
        "| … CPU per 1,000 events: tracker + collector (one process) / broker | {:.1} ms / {:.1} ms |",
        collect_cpu * 1e6 / EVENTS as f64,
        collect_broker_cpu * 1e6 / EVENTS as f64
    );
    for (name, run) in [("1 worker", &one), ("2 workers", &two)] {
        println!(
            "| `process`, {name} (dedup, output topic, sketches, commits) | {:.0} events/s |",
            run.rate
        );
        println!(
            "| … CPU per 1,000 events: workers / broker | {:.1} ms / {:.1} ms ({:.0} events per worker CPU-second) |",
            run.worker_cpu * 1e6 / run.events,
            run.broker_cpu * 1e6 / run.events,
            run.events / run.worker_cpu
        );
    }
    println!("| 2 workers ÷ 1 | {:.2} |", two.rate / one.rate);
    println!(
        "| freshness, `track()` → output record, {FRESH_RATE} events/s for {FRESH_SECONDS} s ({} of {total} seen) | p50 {:.0} ms, p99 {:.0} ms |",
        lags.len(),
        percentile(&lags, 0.5),
        percentile(&lags, 0.99)
    );
    println!(
        "| … of which collector's `received_at` → output record | p50 {:.0} ms, p99 {:.0} ms |",
        percentile(&stage, 0.5),
        percentile(&stage, 0.99)
    );
    println!(
        "| peak RSS per worker | 1 worker: {:.0} MB; 2 workers: {} MB; freshness worker: {fresh_rss:.0} MB |",
        one.rss[0],
        two.rss.iter().map(|r| format!("{r:.0}")).collect::<Vec<_>>().join(", ")
    );
    assert_eq!(lags.len(), total, "every fresh event reached the output");
}
