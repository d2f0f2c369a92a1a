//! A Kafka-protocol broker on loopback for tests and benchmarks: the binary
//! `scripts/test.sh` installs (`EVENTWIRE_BROKER`), in-memory storage, a free port, killed
//! on drop.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A broker process.
pub struct Broker {
    child: Child,
    /// `127.0.0.1:PORT`, for `bootstrap.servers`.
    pub address: String,
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The broker binary: `EVENTWIRE_BROKER`, else the one `scripts/test.sh` installs into
/// cargo's bin directory.
pub fn binary() -> String {
    if let Ok(path) = std::env::var("EVENTWIRE_BROKER") {
        return path;
    }
    let home = std::env::var("CARGO_HOME")
        .unwrap_or_else(|_| format!("{}/.cargo", std::env::var("HOME").unwrap_or_default()));
    let path = format!("{home}/bin/nisshi");
    assert!(
        std::path::Path::new(&path).exists(),
        "the Kafka-protocol broker is not installed ({path}): run ./scripts/test.sh, which installs it"
    );
    path
}

impl Broker {
    /// Starts a broker and waits until it accepts connections (at most 30 s).
    pub fn start() -> Broker {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = format!("tcp://127.0.0.1:{port}");
        let bin = binary();
        let child = Command::new(&bin)
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            .args(["--storage-engine", "memory://eventwire/"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start the broker {bin}: {e}"));
        let broker = Broker {
            child,
            address: format!("127.0.0.1:{port}"),
        };
        let started = Instant::now();
        while std::net::TcpStream::connect(&broker.address).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "the broker did not start listening"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        broker
    }

    /// The broker's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}
