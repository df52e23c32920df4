//! The cold-start tool (`coldstart`, tests/src/bin/coldstart.rs) measures a real function binary
//! under its fake Runtime API: two starts of the debug `deployer` with a no-op event and no state
//! table (so no AWS endpoint is needed), and a binary that never reaches the Runtime API.

use std::process::Command;

use serde_json::Value;

fn coldstart(args: &[&str]) -> (Value, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_coldstart")).args(args).output().expect("run coldstart");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    let json = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("coldstart printed no JSON ({e}): {stdout}\n{stderr}"));
    (json, stderr)
}

#[test]
fn measures_a_function_through_its_first_event() {
    let binary = harness::lambda::function_binary("deployer");
    assert!(binary.exists(), "{} is not built: run cargo test --workspace --all-targets", binary.display());
    let dir = std::env::temp_dir().join(format!("bench-smoke-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut event = harness::sample_event("ecr-push-failed.json");
    event["id"] = Value::String("@ID@".into());
    let file = dir.join("noop.json");
    std::fs::write(&file, event.to_string()).unwrap();
    let file = file.to_str().unwrap();

    let (r, stderr) = coldstart(&[binary.to_str().unwrap(), "--runs", "2", "--event", file, "--event", file, "--env", "AUTOPILOT_CLUSTERS=stage01"]);
    assert_eq!(r["ok_runs"], 2, "{r}\n{stderr}");
    assert_eq!(r["invocation_errors"], 0, "{r}");
    for figure in ["cold_ms", "first_event_ms"] {
        let s = &r[figure];
        assert_eq!(s["n"], 2, "{figure}: {r}");
        assert!(s["median"].as_f64().unwrap() > 0.0, "{figure}: {r}");
    }
    assert!(r["first_event_ms"]["min"].as_f64().unwrap() > r["cold_ms"]["min"].as_f64().unwrap(), "{r}");
    assert_eq!(r["handle_ms"]["n"], 4, "two events per start: {r}");
    assert!(r["peak_rss_kb"]["median"].as_f64().unwrap() > 1000.0, "{r}");
    let outcome: Value = serde_json::from_str(r["sample_outcome"].as_str().expect("an outcome")).expect("the response body is JSON");
    assert_eq!(outcome["status"], "ignored", "{outcome}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn reports_a_binary_that_never_asks_for_an_event() {
    let (r, stderr) = coldstart(&["/bin/true", "--runs", "1", "--timeout", "5"]);
    assert_eq!(r["ok_runs"], 0, "{r}");
    assert_eq!(r["cold_ms"], Value::Null, "{r}");
    assert!(r["failures"][0].as_str().unwrap().contains("exited"), "{r}");
    assert!(stderr.contains("run 0"), "{stderr}");
}
