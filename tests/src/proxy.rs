//! The loopback AWS proxy (`tests/proxy/aws_proxy.py`) as a test fixture: one proxy process per
//! test (its counters are process-wide), in front of moto, configured at run time through
//! `POST /__proxy/config`, stopped on drop.
//!
//! ```text
//! SDK ──▶ aws_proxy.py (faults, drops, throttling, counts) ──▶ moto_compat (Rust, below) ──▶ moto
//! ```
//!
//! `moto_compat` papers over two moto 5.2.1 gaps that would otherwise make every ECS-task test
//! fail for moto's reasons rather than ours:
//! - task containers' `cpu`/`memory` come back as JSON numbers, which the Rust SDK refuses
//!   (ECS sends strings): they are turned into strings;
//! - RunTask ignores `clientToken`, which ECS honours: a repeated RunTask with a token already
//!   answered gets the first answer again and starts nothing. Without this, a RunTask whose
//!   response is lost (drop) would start a second task in moto where ECS would not.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use aws_config::SdkConfig;
use serde_json::{json, Value};

use crate::repo_root;

fn python() -> PathBuf {
    match std::env::var("AUTOPILOT_TEST_PYTHON") {
        Ok(p) if p.contains('/') => repo_root().join(p),
        Ok(p) => PathBuf::from(p),
        Err(_) => repo_root().join(".venv/bin/python"),
    }
}

/// One `aws_proxy.py` process. Killed on drop.
pub struct AwsProxy {
    child: Child,
    /// `host:port` the proxy listens on.
    pub addr: String,
    /// `http://host:port`, for `AWS_ENDPOINT_URL` or an `SdkConfig`.
    pub endpoint: String,
}

impl AwsProxy {
    /// A proxy in front of moto (through [`moto_compat`]), with no latency, no faults and the
    /// ECS token buckets on.
    pub fn start() -> AwsProxy {
        Self::start_with_upstream(&moto_compat(&crate::moto_endpoint()), &["--latency-ms", "0"])
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

// ------------------------------------------------------------------ moto compatibility layer

/// The endpoint of a process-wide compatibility proxy in front of `upstream` (see the module
/// documentation). One per upstream, started on first use.
pub fn moto_compat(upstream: &str) -> String {
    static PROXIES: OnceLock<Mutex<HashMap<String, String>>> = OnceLock::new();
    let mut map = PROXIES.get_or_init(Default::default).lock().unwrap_or_else(|p| p.into_inner());
    map.entry(upstream.to_string())
        .or_insert_with(|| {
            let listener = TcpListener::bind("127.0.0.1:0").expect("bind the moto compat proxy");
            let addr = listener.local_addr().unwrap();
            let upstream = upstream.trim_start_matches("http://").trim_end_matches('/').to_string();
            let tokens: Arc<Mutex<HashMap<String, Vec<u8>>>> = Arc::default();
            std::thread::spawn(move || {
                for client in listener.incoming().flatten() {
                    let (upstream, tokens) = (upstream.clone(), tokens.clone());
                    std::thread::spawn(move || {
                        let _ = compat_one(client, &upstream, &tokens);
                    });
                }
            });
            format!("http://{addr}")
        })
        .clone()
}

fn read_message(stream: &mut TcpStream, to_eof: bool) -> std::io::Result<(String, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16384];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "connection closed before the head"));
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let length = header(&head, "content-length").and_then(|v| v.parse::<usize>().ok());
    let mut body = buf[head_end..].to_vec();
    match length {
        Some(len) => {
            while body.len() < len {
                let n = stream.read(&mut chunk)?;
                if n == 0 {
                    break;
                }
                body.extend_from_slice(&chunk[..n]);
            }
        }
        None if to_eof => {
            stream.read_to_end(&mut body)?;
        }
        None => {}
    }
    Ok((head, body))
}

fn header(head: &str, name: &str) -> Option<String> {
    head.lines().find_map(|l| l.split_once(':').filter(|(k, _)| k.trim().eq_ignore_ascii_case(name)).map(|(_, v)| v.trim().to_string()))
}

fn compat_one(mut client: TcpStream, upstream: &str, tokens: &Mutex<HashMap<String, Vec<u8>>>) -> std::io::Result<()> {
    let (head, body) = read_message(&mut client, false)?;
    let run_task_token = header(&head, "x-amz-target")
        .filter(|t| t.ends_with(".RunTask"))
        .and_then(|_| serde_json::from_slice::<Value>(&body).ok())
        .and_then(|v| v["clientToken"].as_str().map(String::from));
    if let Some(token) = &run_task_token {
        if let Some(answer) = tokens.lock().unwrap_or_else(|p| p.into_inner()).get(token).cloned() {
            client.write_all(&answer)?;
            return client.flush();
        }
    }
    let mut server = TcpStream::connect(upstream)?;
    let head: String = head
        .split("\r\n")
        .filter(|l| !l.to_ascii_lowercase().starts_with("connection:"))
        .map(|l| if l.is_empty() { String::new() } else { format!("{l}\r\n") })
        .collect::<String>()
        + "Connection: close\r\n\r\n";
    server.write_all(head.as_bytes())?;
    server.write_all(&body)?;
    let (rhead, rbody) = read_message(&mut server, true)?;
    let ok = rhead.split_whitespace().nth(1) == Some("200");
    let rbody = match serde_json::from_slice::<Value>(&rbody) {
        Ok(mut v) => {
            stringify_container_numbers(&mut v);
            serde_json::to_vec(&v).unwrap()
        }
        Err(_) => rbody,
    };
    let mut out = String::new();
    for line in rhead.split("\r\n").filter(|l| !l.is_empty()) {
        let lower = line.to_ascii_lowercase();
        if lower.starts_with("content-length:") || lower.starts_with("connection:") || lower.starts_with("transfer-encoding:") {
            continue;
        }
        out.push_str(line);
        out.push_str("\r\n");
    }
    out.push_str(&format!("Content-Length: {}\r\nConnection: close\r\n\r\n", rbody.len()));
    let mut answer = out.into_bytes();
    answer.extend_from_slice(&rbody);
    if let (Some(token), true) = (run_task_token, ok) {
        tokens.lock().unwrap_or_else(|p| p.into_inner()).insert(token, answer.clone());
    }
    client.write_all(&answer)?;
    client.flush()
}

fn stringify_container_numbers(v: &mut Value) {
    match v {
        Value::Object(map) => {
            for (k, child) in map.iter_mut() {
                if k == "containers" {
                    if let Value::Array(items) = child {
                        for c in items.iter_mut().filter_map(Value::as_object_mut) {
                            for field in ["cpu", "memory", "memoryReservation"] {
                                if let Some(n) = c.get(field).filter(|x| x.is_number()).map(|x| x.to_string()) {
                                    c.insert(field.into(), Value::String(n));
                                }
                            }
                        }
                    }
                }
                stringify_container_numbers(child);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(stringify_container_numbers),
        _ => {}
    }
}
