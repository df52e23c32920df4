//! `coldstart BINARY [options]` — start a Lambda function binary N times under a fake Lambda
//! Runtime API of its own (plain std: a `TcpListener` on 127.0.0.1:0, HTTP/1.1 keep-alive, as
//! lambda_runtime's hyper client expects) and measure, per start:
//!
//! - `cold_ms`: just before `spawn` → the first `GET /2018-06-01/runtime/invocation/next` arrives;
//! - `first_event_ms`: just before `spawn` → the response (or error) POST of the first event;
//! - `handle_ms`: each event handed out → its response POST arrives (also per event position:
//!   `handle_ms_by_event`, so the first event's lazy start-up work shows against the second's);
//! - `peak_rss_kb`: `VmHWM` of /proc/PID/status once the process has answered every event and
//!   asked for the next one (it is idle then), right before it is killed.
//!
//! Options:
//!   --runs N            starts (default 30)
//!   --event FILE        an event to hand out, in order (repeatable; none = measure cold start only).
//!                       `{run}` in FILE is replaced by the run number (0-based), so each start can
//!                       get its own file; `@ID@` in the file's text by a unique id per delivery.
//!   --name NAME         AWS_LAMBDA_FUNCTION_NAME (default: the binary's file name)
//!   --endpoint URL      AWS_ENDPOINT_URL (moto or the proxy); none = unset
//!   --env K=V           any other variable (repeatable; AUTOPILOT_*, credentials, ...)
//!   --log FILE          append the function's stdout/stderr there (default: discarded)
//!   --timeout S         per start (default 120)
//!
//! The child gets a clean environment: the Runtime API variables Lambda sets, AWS_REGION
//! us-east-1, fake credentials unless --env gives others, and what the options add.
//! Prints one JSON object: per-run figures and, per figure, median / p90 / min / max.
//! Pure std on purpose: the tool's own cost stays out of what it measures.

use std::collections::VecDeque;

use harness::runtime_api::{start_server, Invocation, Msg};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::RecvTimeoutError;
use std::time::{Duration, Instant};

struct Options {
    binary: PathBuf,
    runs: usize,
    events: Vec<String>,
    name: String,
    endpoint: Option<String>,
    env: Vec<(String, String)>,
    log: Option<PathBuf>,
    timeout: Duration,
}

fn usage(msg: &str) -> ! {
    eprintln!("coldstart: {msg}\nusage: coldstart BINARY [--runs N] [--event FILE]... [--name NAME] [--endpoint URL] [--env K=V]... [--log FILE] [--timeout S]");
    std::process::exit(2)
}

fn parse_args() -> Options {
    let mut args = std::env::args().skip(1);
    let mut binary = None;
    let mut o = Options {
        binary: PathBuf::new(),
        runs: 30,
        events: Vec::new(),
        name: String::new(),
        endpoint: None,
        env: Vec::new(),
        log: None,
        timeout: Duration::from_secs(120),
    };
    while let Some(a) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| usage(&format!("{a} needs a value")));
        match a.as_str() {
            "--runs" => o.runs = value().parse().unwrap_or_else(|_| usage("--runs: a number")),
            "--event" => o.events.push(value()),
            "--name" => o.name = value(),
            "--endpoint" => o.endpoint = Some(value()),
            "--env" => {
                let kv = value();
                let (k, v) = kv.split_once('=').unwrap_or_else(|| usage("--env: K=V"));
                o.env.push((k.to_string(), v.to_string()));
            }
            "--log" => o.log = Some(PathBuf::from(value())),
            "--timeout" => o.timeout = Duration::from_secs(value().parse().unwrap_or_else(|_| usage("--timeout: seconds"))),
            "-h" | "--help" => usage("help"),
            s if s.starts_with("--") => usage(&format!("unknown option {s}")),
            s => binary = Some(PathBuf::from(s)),
        }
    }
    o.binary = binary.unwrap_or_else(|| usage("BINARY is required"));
    if o.name.is_empty() {
        o.name = o.binary.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_else(|| "function".into());
    }
    o
}

// ------------------------------------------------------------------ one start

#[derive(Default)]
struct Run {
    cold_ms: Option<f64>,
    first_event_ms: Option<f64>,
    handle_ms: Vec<f64>,
    peak_rss_kb: Option<u64>,
    rss_kb: Option<u64>,
    outcomes: Vec<String>,
    errors: Vec<String>,
    failure: Option<String>,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn proc_status_kb(pid: u32, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines().find(|l| l.starts_with(field))?.split_whitespace().nth(1)?.parse().ok()
}

static DELIVERY: AtomicU64 = AtomicU64::new(0);

fn load_events(o: &Options, run: usize) -> Result<VecDeque<String>, String> {
    o.events
        .iter()
        .map(|pattern| {
            let path = pattern.replace("{run}", &run.to_string());
            let text = std::fs::read_to_string(&path).map_err(|e| format!("read event {path}: {e}"))?;
            let id = format!("bench-{}-{}-{}", std::process::id(), run, DELIVERY.fetch_add(1, Ordering::SeqCst));
            Ok(text.replace("@ID@", &id))
        })
        .collect()
}

fn truncate(s: &str, n: usize) -> String {
    if s.len() <= n {
        return s.to_string();
    }
    let mut end = n;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

fn one_run(o: &Options, run: usize) -> Run {
    let mut r = Run::default();
    let mut events = match load_events(o, run) {
        Ok(e) => e,
        Err(e) => {
            r.failure = Some(e);
            return r;
        }
    };
    let arn = format!("arn:aws:lambda:us-east-1:123456789012:function:{}", o.name);
    let (port, rx) = start_server(arn);
    let mut cmd = Command::new(&o.binary);
    cmd.env_clear()
        .env("AWS_LAMBDA_RUNTIME_API", format!("127.0.0.1:{port}"))
        .env("AWS_LAMBDA_FUNCTION_NAME", &o.name)
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
        .env("AWS_LAMBDA_LOG_FORMAT", "JSON")
        .env("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE")
        .env("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
        .stdin(Stdio::null());
    if let Some(e) = &o.endpoint {
        cmd.env("AWS_ENDPOINT_URL", e);
    }
    for (k, v) in &o.env {
        cmd.env(k, v);
    }
    match &o.log {
        Some(path) => {
            let file = std::fs::OpenOptions::new().create(true).append(true).open(path).expect("open --log file");
            cmd.stdout(file.try_clone().expect("dup log")).stderr(file);
        }
        None => {
            cmd.stdout(Stdio::null()).stderr(Stdio::null());
        }
    }
    let t0 = Instant::now();
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            r.failure = Some(format!("spawn {}: {e}", o.binary.display()));
            return r;
        }
    };
    let pid = child.id();
    let deadline = t0 + o.timeout;
    let mut sent: Option<Instant> = None;
    let mut expected_id = String::new();
    let mut held = None; // the last `next` stays open until the process is killed
    loop {
        let msg = match rx.recv_timeout(Duration::from_millis(20)) {
            Ok(m) => m,
            Err(RecvTimeoutError::Timeout) => {
                if let Ok(Some(status)) = child.try_wait() {
                    r.failure = Some(format!("the function exited ({status}) before it was measured"));
                    break;
                }
                if Instant::now() > deadline {
                    r.failure = Some(format!("no progress within {:?}", o.timeout));
                    break;
                }
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => {
                r.failure = Some("fake Runtime API stopped".into());
                break;
            }
        };
        match msg {
            Msg::Next { at, reply } => {
                if r.cold_ms.is_none() {
                    r.cold_ms = Some(ms(at - t0));
                }
                match events.pop_front() {
                    Some(event) => {
                        let id = format!("req-{run}-{}", r.handle_ms.len());
                        expected_id = id.clone();
                        sent = Some(Instant::now());
                        let _ = reply.send(Some(Invocation { id, event, timeout: Duration::from_secs(900) }));
                    }
                    None => {
                        r.peak_rss_kb = proc_status_kb(pid, "VmHWM:");
                        r.rss_kb = proc_status_kb(pid, "VmRSS:");
                        held = Some(reply);
                        break;
                    }
                }
            }
            Msg::Response { id, body, .. } | Msg::Error { id, body, .. } if sent.is_none() || id != expected_id => {
                r.failure = Some(format!("an answer for request {id:?} arrived while {expected_id:?} was expected: {}", truncate(&body, 200)));
                break;
            }
            Msg::Response { at, body, .. } => {
                if r.first_event_ms.is_none() {
                    r.first_event_ms = Some(ms(at - t0));
                }
                r.handle_ms.push(ms(at - sent.take().unwrap_or(at)));
                r.outcomes.push(truncate(&body, 400));
            }
            Msg::Error { at, body, .. } => {
                if r.first_event_ms.is_none() {
                    r.first_event_ms = Some(ms(at - t0));
                }
                r.handle_ms.push(ms(at - sent.take().unwrap_or(at)));
                r.errors.push(truncate(&body, 400));
            }
            Msg::InitError { body } => {
                r.failure = Some(format!("init error: {}", truncate(&body, 400)));
                break;
            }
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    drop(held);
    r
}

// ------------------------------------------------------------------ output

fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn num(v: Option<f64>) -> String {
    v.map_or("null".into(), |v| format!("{v:.3}"))
}

/// median, p90 (nearest rank), min, max.
fn stats(mut v: Vec<f64>) -> String {
    if v.is_empty() {
        return "null".into();
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    let median = if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 };
    let p90 = v[((0.9 * n as f64).ceil() as usize).clamp(1, n) - 1];
    format!(r#"{{"n": {n}, "median": {median:.3}, "p90": {p90:.3}, "min": {:.3}, "max": {:.3}}}"#, v[0], v[n - 1])
}

fn main() {
    let o = parse_args();
    if !Path::new(&o.binary).is_file() {
        usage(&format!("{} is not a file", o.binary.display()));
    }
    let mut runs = Vec::new();
    for i in 0..o.runs {
        let r = one_run(&o, i);
        if let Some(f) = &r.failure {
            eprintln!("coldstart: run {i}: {f}");
        }
        runs.push(r);
    }
    let ok: Vec<&Run> = runs.iter().filter(|r| r.failure.is_none()).collect();
    let pick = |f: &dyn Fn(&Run) -> Option<f64>| ok.iter().filter_map(|r| f(r)).collect::<Vec<f64>>();
    let cold = pick(&|r| r.cold_ms);
    let first = pick(&|r| r.first_event_ms);
    let handle: Vec<f64> = ok.iter().flat_map(|r| r.handle_ms.iter().copied()).collect();
    let rss = pick(&|r| r.peak_rss_kb.map(|k| k as f64));
    // per position: the first event pays the lazy start-up work, the second one does not
    let by_event: Vec<String> =
        (0..o.events.len()).map(|i| stats(ok.iter().filter_map(|r| r.handle_ms.get(i).copied()).collect())).collect();
    let errors: usize = runs.iter().map(|r| r.errors.len()).sum();
    let failures: Vec<String> = runs.iter().filter_map(|r| r.failure.as_ref().map(|f| json_str(f))).collect();
    let per_run: Vec<String> = runs
        .iter()
        .map(|r| {
            format!(
                r#"{{"cold_ms": {}, "first_event_ms": {}, "handle_ms": [{}], "peak_rss_kb": {}, "rss_kb": {}}}"#,
                num(r.cold_ms),
                num(r.first_event_ms),
                r.handle_ms.iter().map(|h| format!("{h:.3}")).collect::<Vec<_>>().join(", "),
                r.peak_rss_kb.map_or("null".into(), |k| k.to_string()),
                r.rss_kb.map_or("null".into(), |k| k.to_string()),
            )
        })
        .collect();
    let sample_outcome = runs.iter().find_map(|r| r.outcomes.first()).map_or("null".into(), |s| json_str(s));
    let sample_error = runs.iter().find_map(|r| r.errors.first()).map_or("null".into(), |s| json_str(s));
    println!(
        "{{\"binary\": {}, \"runs\": {}, \"ok_runs\": {}, \"events_per_run\": {}, \"cold_ms\": {}, \"first_event_ms\": {}, \"handle_ms\": {}, \"handle_ms_by_event\": [{}], \"peak_rss_kb\": {}, \"invocation_errors\": {}, \"sample_outcome\": {}, \"sample_error\": {}, \"failures\": [{}], \"per_run\": [{}]}}",
        json_str(&o.binary.display().to_string()),
        o.runs,
        ok.len(),
        o.events.len(),
        stats(cold),
        stats(first),
        stats(handle),
        by_event.join(", "),
        stats(rss),
        errors,
        sample_outcome,
        sample_error,
        failures.join(", "),
        per_run.join(", "),
    );
}
