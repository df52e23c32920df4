//! The loopback AWS proxy (`tests/proxy/aws_proxy.py`) as a test fixture: one proxy process per
//! test (its counters are process-wide), in front of moto, configured at run time through
//! `POST /__proxy/config`, stopped on drop.
//!
//! ```text
//! SDK ──▶ aws_proxy.py (faults, drops, throttling, counts) ──▶ the suite's aws_proxy.py ──▶ moto
//! ```
//!
//! The suite's proxy (scripts/test: `--validate refuse --moto-compat --cbor-to-json`) is the last
//! hop: it checks requests against AWS's model and corrects what moto serves differently from AWS
//! (tests/proxy/moto_compat.py, rpcv2.py), so a per-test proxy adds only what the test asks for.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use aws_config::SdkConfig;
use serde_json::{json, Value};

use crate::{python, repo_root};

/// One `aws_proxy.py` process. Killed on drop.
pub struct AwsProxy {
    child: Child,
    /// `host:port` the proxy listens on.
    pub addr: String,
    /// `http://host:port`, for `AWS_ENDPOINT_URL` or an `SdkConfig`.
    pub endpoint: String,
}

impl AwsProxy {
    /// A proxy in front of the suite's endpoint, with no latency, no faults and the ECS token
    /// buckets on.
    pub fn start() -> AwsProxy {
        Self::start_with_upstream(&crate::moto_endpoint(), &["--latency-ms", "0"])
    }

    pub fn start_with_upstream(upstream: &str, extra_args: &[&str]) -> AwsProxy {
        let mut child = Command::new(python())
            .arg(repo_root().join("tests/proxy/aws_proxy.py"))
            .args(["--upstream", upstream, "--port", "0"])
            .args(extra_args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start tests/proxy/aws_proxy.py");
        let stdout = child.stdout.take().expect("proxy stdout");
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).expect("read the proxy's first line");
        let addr = line.trim().strip_prefix("listening on ").unwrap_or_else(|| panic!("aws_proxy.py printed {line:?}")).to_string();
        AwsProxy { child, endpoint: format!("http://{addr}"), addr }
    }

    /// Change the runtime configuration (any keys of the README's `POST /__proxy/config`).
    pub fn configure(&self, config: Value) {
        let (status, body) = http(&self.addr, "POST", "/__proxy/config", &config.to_string());
        assert_eq!(status, 200, "proxy refused config {config}: {body}");
    }

    /// Faults and drops off (counters kept).
    pub fn calm(&self) {
        self.configure(json!({"fault_rate": 0.0, "drop_rate": 0.0, "faults_for": null, "drops_for": null}));
    }

    pub fn stats(&self) -> Value {
        let (status, body) = http(&self.addr, "GET", "/__proxy/stats", "");
        assert_eq!(status, 200, "proxy stats: {body}");
        serde_json::from_str(&body).expect("stats JSON")
    }

    /// Zero the counters, refill the buckets, restart the fault sequences.
    pub fn reset(&self) {
        let (status, body) = http(&self.addr, "POST", "/__proxy/reset", "");
        assert_eq!(status, 200, "proxy reset: {body}");
    }

    /// `stats.services.SERVICE.mutating_calls` (0 when the service was never called).
    pub fn mutating_calls(&self, service: &str) -> u64 {
        self.stats()["services"][service]["mutating_calls"].as_u64().unwrap_or(0)
    }

    /// A counter of one `service:Action` (0 when never called).
    pub fn count(&self, action: &str, counter: &str) -> u64 {
        self.stats()["actions"][action][counter].as_u64().unwrap_or(0)
    }

    /// The same SDK configuration, pointed at the proxy.
    pub fn sdk(&self, base: &SdkConfig) -> SdkConfig {
        base.to_builder().endpoint_url(&self.endpoint).build()
    }
}

impl Drop for AwsProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `GET path` on a proxy's control endpoint: (status, body).
pub fn http_get(addr: &str, path: &str) -> (u16, String) {
    http(addr, "GET", path, "")
}

/// `POST path` with a JSON body on a proxy's control endpoint: (status, body).
pub fn http_post(addr: &str, path: &str, body: &Value) -> (u16, String) {
    http(addr, "POST", path, &body.to_string())
}

/// A minimal HTTP/1.1 exchange (one request per connection).
fn http(addr: &str, method: &str, path: &str, body: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect to proxy {addr}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(30))).ok();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).expect("send to proxy");
    let mut out = Vec::new();
    s.read_to_end(&mut out).expect("read proxy answer");
    let text = String::from_utf8_lossy(&out).to_string();
    let status = text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (status, body)
}
