//! A fake Lambda Runtime API (plain std: a `TcpListener` on 127.0.0.1:0, HTTP/1.1 keep-alive,
//! as lambda_runtime's hyper client expects), driven by the test or tool through a channel. Used
//! by the `coldstart` bench tool and by tests that need what `cargo lambda watch` does not give:
//! a real invocation deadline (it sends `Lambda-Runtime-Deadline-Ms: 600000`, a time in 1970)
//! and a function process to kill mid-event.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// One event handed to the function: its request id, body and time until its deadline.
pub struct Invocation {
    pub id: String,
    pub event: String,
    pub timeout: Duration,
}

pub enum Msg {
    /// `GET .../invocation/next`: answer with `Some(invocation)`, or `None` to hold it.
    Next { at: Instant, reply: Sender<Option<Invocation>> },
    Response { at: Instant, id: String, body: String },
    Error { at: Instant, id: String, body: String },
    InitError { body: String },
}

struct Request {
    method: String,
    path: String,
    body: Vec<u8>,
}

/// One HTTP/1.1 request (Content-Length or chunked body); `None` at EOF.
fn read_request(r: &mut BufReader<TcpStream>) -> std::io::Result<Option<Request>> {
    let mut line = String::new();
    loop {
        line.clear();
        if r.read_line(&mut line)? == 0 {
            return Ok(None);
        }
        if !line.trim().is_empty() {
            break;
        }
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_string();
    let path = parts.next().unwrap_or_default().to_string();
    let (mut length, mut chunked) = (0usize, false);
    loop {
        let mut h = String::new();
        if r.read_line(&mut h)? == 0 {
            return Ok(None);
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            let (k, v) = (k.trim().to_ascii_lowercase(), v.trim());
            if k == "content-length" {
                length = v.parse().unwrap_or(0);
            } else if k == "transfer-encoding" && v.to_ascii_lowercase().contains("chunked") {
                chunked = true;
            }
        }
    }
    let mut body = Vec::new();
    if chunked {
        loop {
            let mut size = String::new();
            r.read_line(&mut size)?;
            let n = usize::from_str_radix(size.trim().split(';').next().unwrap_or("0"), 16).unwrap_or(0);
            let mut chunk = vec![0; n + 2]; // data + CRLF
            r.read_exact(&mut chunk)?;
            if n == 0 {
                // trailers end with an empty line; the CRLF read above was it (no trailers sent)
                break;
            }
            body.extend_from_slice(&chunk[..n]);
        }
    } else {
        body.resize(length, 0);
        r.read_exact(&mut body)?;
    }
    Ok(Some(Request { method, path, body }))
}

fn write_response(w: &mut TcpStream, status: &str, headers: &[(&str, String)], body: &str) -> std::io::Result<()> {
    let mut out = format!("HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n", body.len());
    for (k, v) in headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str("\r\n");
    out.push_str(body);
    w.write_all(out.as_bytes())?;
    w.flush()
}

fn serve_connection(stream: TcpStream, tx: Sender<Msg>, function_arn: String) {
    let _ = stream.set_nodelay(true);
    let Ok(mut writer) = stream.try_clone() else { return };
    let mut reader = BufReader::new(stream);
    const BASE: &str = "/2018-06-01/runtime/";
    while let Ok(Some(req)) = read_request(&mut reader) {
        let at = Instant::now();
        let path = req.path.strip_prefix(BASE).unwrap_or(&req.path).to_string();
        let body = String::from_utf8_lossy(&req.body).to_string();
        let accepted = |w: &mut TcpStream| write_response(w, "202 Accepted", &[], r#"{"status":"OK"}"#);
        let result = match (req.method.as_str(), path.as_str()) {
            ("GET", "invocation/next") => {
                let (reply, answer) = channel();
                if tx.send(Msg::Next { at, reply }).is_err() {
                    return;
                }
                match answer.recv() {
                    Ok(Some(Invocation { id, event, timeout })) => {
                        let deadline = (SystemTime::now() + timeout).duration_since(UNIX_EPOCH).unwrap_or_default().as_millis();
                        let headers = [
                            ("lambda-runtime-aws-request-id", id),
                            ("lambda-runtime-deadline-ms", deadline.to_string()),
                            ("lambda-runtime-invoked-function-arn", function_arn.clone()),
                            ("lambda-runtime-trace-id", format!("Root=1-00000000-{:024x};Parent=0000000000000001;Sampled=0", at.elapsed().as_nanos())),
                        ];
                        write_response(&mut writer, "200 OK", &headers, &event)
                    }
                    _ => return, // held: the process is measured and killed while it waits
                }
            }
            ("POST", "init/error") => {
                let _ = tx.send(Msg::InitError { body });
                accepted(&mut writer)
            }
            ("POST", p) if p.starts_with("invocation/") && (p.ends_with("/response") || p.ends_with("/error")) => {
                let id = p.trim_start_matches("invocation/").rsplit_once('/').map(|(id, _)| id.to_string()).unwrap_or_default();
                let msg = if p.ends_with("/response") { Msg::Response { at, id, body } } else { Msg::Error { at, id, body } };
                let _ = tx.send(msg);
                accepted(&mut writer)
            }
            _ => write_response(&mut writer, "404 Not Found", &[], r#"{"errorMessage":"unknown path"}"#),
        };
        if result.is_err() {
            return;
        }
    }
}

/// A Runtime API on 127.0.0.1: its port, and what the function asks and answers.
pub fn start_server(function_arn: String) -> (u16, Receiver<Msg>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let port = listener.local_addr().expect("local addr").port();
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let (tx, arn) = (tx.clone(), function_arn.clone());
            std::thread::spawn(move || serve_connection(stream, tx, arn));
        }
    });
    (port, rx)
}

/// Start a function binary against the Runtime API at `runtime_api` (`host:port[/prefix]`), as
/// Lambda would: a clean environment with the Runtime API variables, JSON logs, and `env`; its
/// stdout and stderr to `log` (created afresh) or discarded.
pub fn spawn_function(binary: &std::path::Path, runtime_api: &str, name: &str, env: &[(String, String)], log: Option<&std::path::Path>) -> std::process::Child {
    use std::process::{Command, Stdio};
    let (stdout, stderr) = match log {
        Some(path) => {
            let out = std::fs::File::create(path).unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
            let err = out.try_clone().expect("log file handle");
            (Stdio::from(out), Stdio::from(err))
        }
        None => (Stdio::null(), Stdio::null()),
    };
    Command::new(binary)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("AWS_LAMBDA_RUNTIME_API", runtime_api)
        .env("AWS_LAMBDA_FUNCTION_NAME", name)
        .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
        .env("AWS_LAMBDA_LOG_FORMAT", "JSON")
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .unwrap_or_else(|e| panic!("start {}: {e}", binary.display()))
}

/// What the function answered for one invocation.
#[derive(Debug)]
pub enum Answer {
    Response(String),
    Error(String),
}

/// Hand `event` to the next `GET .../invocation/next` (with `timeout` until its deadline) and,
/// when `wait` is set, wait for its answer.
pub fn deliver(rx: &Receiver<Msg>, id: &str, event: &str, timeout: Duration, wait: Option<Duration>) -> Option<Answer> {
    let limit = Instant::now() + Duration::from_secs(30);
    loop {
        match rx.recv_timeout(limit.saturating_duration_since(Instant::now())).expect("the function asked for its next event") {
            Msg::Next { reply, .. } => {
                let _ = reply.send(Some(Invocation { id: id.to_string(), event: event.to_string(), timeout }));
                break;
            }
            Msg::InitError { body } => panic!("the function failed to start: {body}"),
            _ => {}
        }
    }
    let wait = wait?;
    let limit = Instant::now() + wait;
    loop {
        match rx.recv_timeout(limit.saturating_duration_since(Instant::now())).expect("the function answered") {
            Msg::Response { id: answered, body, .. } if answered == id => return Some(Answer::Response(body)),
            Msg::Error { id: answered, body, .. } if answered == id => return Some(Answer::Error(body)),
            Msg::InitError { body } => panic!("the function failed to start: {body}"),
            _ => {}
        }
    }
}
