//! Every sample in events/ parses into the typed event its detail-type names.

use autopilot::events::EventError;
use autopilot::Incoming;

/// Samples of events AWS sends that no function is wired to receive (tests/python's pattern
/// tests prove no rule routes them): parsing refuses them as unsupported, never half-reads them.
pub const NOT_RECEIVED: &[&str] = &["ECR Referrer Action"];

#[test]
fn every_sample_event_parses() {
    let dir = harness::repo_root().join("events");
    let mut files: Vec<_> = std::fs::read_dir(&dir).expect("events/ exists").map(|e| e.unwrap().path()).filter(|p| p.extension().is_some_and(|e| e == "json")).collect();
    files.sort();
    assert!(files.len() >= 20, "expected the full set of sample events, found {}", files.len());
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        let value: serde_json::Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let want = value["detail-type"].as_str().unwrap_or_default().to_string();
        if NOT_RECEIVED.contains(&want.as_str()) {
            let refused = Incoming::parse(value);
            assert!(matches!(refused, Err(EventError::Unsupported { .. })), "{}: {refused:?}", path.display());
            continue;
        }
        let parsed = Incoming::parse(value).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(parsed.detail_type(), want, "{}", path.display());
        assert!(parsed.id().is_some(), "{} has no id", path.display());
        // What the deployer puts on its work queue parses back into the same event (issue 16).
        let queued = parsed.to_value();
        let again = Incoming::parse(queued.clone()).unwrap_or_else(|e| panic!("{} as queued: {e}", path.display()));
        assert_eq!(again.to_value(), queued, "{}", path.display());
        assert_eq!((again.account(), again.region(), again.id()), (parsed.account(), parsed.region(), parsed.id()), "{}", path.display());
    }
}
