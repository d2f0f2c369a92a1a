//! Probing a running server from a test or a benchmark: a blocking `GET` that times the
//! answer, and reading a value from a Prometheus text scrape.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// `GET path` on `addr` over a new connection (HTTP/1.0, so the answer ends with the
/// connection): the status (0 if the answer has none), the body, and how long the answer
/// took.
///
/// # Panics
///
/// When the server cannot be reached or does not answer within 10 s.
#[must_use]
pub fn http_get(addr: SocketAddr, path: &str) -> (u16, String, Duration) {
    let started = Instant::now();
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("set a read timeout");
    write!(stream, "GET {path} HTTP/1.0\r\nhost: x\r\n\r\n").expect("send the request");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("read the answer");
    let took = started.elapsed();
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = answer
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_owned();
    (status, body, took)
}

/// The sum of the samples of `name` in a Prometheus text scrape: every label set of a bare
/// name (`eventwire_requests_shed_total`), or the one sample a name with its labels
/// designates (`eventwire_requests_shed_total{reason="bytes"}`); 0 when absent.
#[must_use]
pub fn metric_sum(scrape: &str, name: &str) -> f64 {
    scrape
        .lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_sum_reads_bare_names_and_labelled_samples() {
        let scrape = "# HELP a_total x\n# TYPE a_total counter\na_total{r=\"x\"} 2\na_total{r=\"y\"} 3\na_total_more 7\nb 1.5\n";
        let table: &[(&str, f64)] = &[
            ("a_total", 5.0),
            ("a_total{r=\"y\"}", 3.0),
            ("a_total_more", 7.0),
            ("b", 1.5),
            ("c", 0.0),
        ];
        for (name, value) in table {
            assert_eq!(metric_sum(scrape, name), *value, "{name}");
        }
    }
}
