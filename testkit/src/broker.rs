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

/// A certificate authority and a server certificate for `127.0.0.1` and `localhost`, made
/// with the `openssl` command in a temporary directory (kept as long as this is).
pub struct Tls {
    dir: tempfile::TempDir,
}

impl Tls {
    /// Makes the CA (`ca.pem`) and the server's certificate and key (`server.pem`,
    /// `server.key`), valid for two days.
    pub fn generate() -> Tls {
        let dir = tempfile::tempdir().unwrap();
        let run = |args: &[&str]| {
            let out = Command::new("openssl")
                .args(args)
                .current_dir(dir.path())
                .output()
                .unwrap_or_else(|e| {
                    panic!("cannot run openssl (scripts/test.sh installs it): {e}")
                });
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        run(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=eventwire test CA",
        ]);
        run(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=localhost",
        ]);
        std::fs::write(
            dir.path().join("ext"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\n",
        )
        .unwrap();
        run(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "ext",
        ]);
        Tls { dir }
    }

    /// The CA certificate clients trust (`ssl.ca.location`).
    pub fn ca(&self) -> std::path::PathBuf {
        self.dir.path().join("ca.pem")
    }
}

impl Broker {
    /// Starts a broker and waits until it accepts connections (at most 30 s).
    pub fn start() -> Broker {
        Self::start_with(&[])
    }

    /// Starts a broker whose listener only takes TLS connections, with `tls`'s server
    /// certificate.
    pub fn start_tls(tls: &Tls) -> Broker {
        let cert = tls.dir.path().join("server.pem");
        let key = tls.dir.path().join("server.key");
        Self::start_with(&[
            "--cert".as_ref(),
            cert.as_os_str(),
            "--key".as_ref(),
            key.as_os_str(),
        ])
    }

    fn start_with(extra: &[&std::ffi::OsStr]) -> Broker {
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
            .args(extra)
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
