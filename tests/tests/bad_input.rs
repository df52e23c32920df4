//! Malformed and hostile input: every row of the table goes to all three functions on the seed
//! world, through the proxy. Each answer must be `{"status":"rejected"}`, a logged ignore/skip,
//! or a classified non-retryable error — never a panic — and no mutating call may reach ECS,
//! Auto Scaling or SNS (state-table claims are allowed). Bad configuration: each binary refuses
//! to start naming the variable; malformed resource tags fail that resource with the tag named
//! while the rest of the work proceeds.

use std::sync::Arc;

use autopilot::runtime::Function;
use autopilot_deployer::Deployer;
use autopilot_recovery::Recovery;
use autopilot_scaler::Scaler;
use harness::cloudwatch::{alarm_reason_data, publish_cpu};
use harness::ecr::{push_event, push_image};
use harness::ecs::{crashed_job, create_service, register_job, service, service_td};
use harness::proxy::AwsProxy;
use harness::{for_world, sample_event, World};
use serde_json::{json, Value};

/// What a row may answer, beyond "no panic, no mutating call".
#[derive(Debug, Clone, Copy, PartialEq)]
enum Expect {
    /// `{"status":"rejected"}` from every function (cannot be parsed).
    Rejected,
    /// Parsed, then ignored/skipped or a non-retryable error: nothing done.
    NoAction,
}

struct Row {
    name: &'static str,
    event: Value,
    expect: Expect,
}

fn set(mut e: Value, pointer: &str, v: Value) -> Value {
    let (parent, key) = pointer.rsplit_once('/').unwrap();
    match e.pointer_mut(parent) {
        Some(Value::Object(m)) => {
            m.insert(key.to_string(), v);
        }
        Some(Value::Array(a)) => a[key.parse::<usize>().unwrap()] = v,
        _ => panic!("no {parent} in the event"),
    }
    e
}

fn remove(mut e: Value, pointer: &str) -> Value {
    let (parent, key) = pointer.rsplit_once('/').unwrap();
    e.pointer_mut(parent).and_then(Value::as_object_mut).unwrap().remove(key);
    e
}

const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fn rows(w: &World) -> Vec<Row> {
    let push = || {
        let e = for_world(sample_event("ecr-push-tagged.json"), w);
        // A repository nobody runs: a valid push of it is a no-op, so only the bad part matters.
        set(set(e, "/detail/repository-name", json!("nobody")), "/detail/image-digest", json!(DIGEST))
    };
    let alarm = |n: usize| {
        let e = for_world(sample_event("cloudwatch-alarm-ok-to-alarm.json"), w);
        // Each row its own transition, so no row is a replay of another.
        set(e, "/detail/state/timestamp", json!(format!("2025-11-25T15:{n:02}:00.000+0000")))
    };
    let reason_data = |n: usize, rd: Value| {
        let text = if rd.is_string() { rd } else { json!(rd.to_string()) };
        set(alarm(n), "/detail/state/reasonData", text)
    };
    let task = || {
        let e = for_world(sample_event("ecs-task-stopped-crash.json"), w);
        // A standalone task ECS does not know: recovery looks it up and leaves it alone.
        set(e, "/detail/taskArn", json!(format!("arn:aws:ecs:us-east-1:{}:task/stage01/{:032x}", w.account, 0xbad)))
    };
    let huge = "x".repeat(5 * 1024 * 1024);
    let r = |name, event, expect| Row { name, event, expect };
    use Expect::*;
    vec![
        r("JSON null", Value::Null, Rejected),
        r("array", json!([1, 2]), Rejected),
        r("string", json!("ECR Image Action"), Rejected),
        r("number", json!(42), Rejected),
        r("empty object", json!({}), Rejected),
        r("missing detail", remove(push(), "/detail"), Rejected),
        r("detail null (ECR)", set(push(), "/detail", Value::Null), Rejected),
        r("detail null (task)", set(task(), "/detail", Value::Null), Rejected),
        r("detail null (alarm)", set(alarm(0), "/detail", Value::Null), Rejected),
        r("detail a string", set(push(), "/detail", json!("x")), Rejected),
        r("detail-type a number", set(push(), "/detail-type", json!(7)), Rejected),
        r("source missing", remove(push(), "/source"), Rejected),
        r("unknown detail-type", set(push(), "/detail-type", json!("ECR Image Scan")), Rejected),
        r("unknown source", set(push(), "/source", json!("my.app")), Rejected),
        r("spoofed source for a known detail-type", set(task(), "/source", json!("aws.ecr")), Rejected),
        r("repository-name a number", set(push(), "/detail/repository-name", json!(7)), Rejected),
        r("repository-name missing", remove(push(), "/detail/repository-name"), Rejected),
        r("image-tag an object", set(push(), "/detail/image-tag", json!({"a": 1})), Rejected),
        r("5 MB repository-name", set(push(), "/detail/repository-name", json!(huge)), NoAction),
        r("5 MB unknown field", set(push(), "/detail/padding", json!(huge)), NoAction),
        r("5 MB stoppedReason", set(task(), "/detail/stoppedReason", json!(huge)), NoAction),
        r("repository name 256 chars", set(push(), "/detail/repository-name", json!("a".repeat(256))), NoAction),
        r("repository name 257 chars", set(push(), "/detail/repository-name", json!("a".repeat(257))), NoAction),
        r("image tag 128 chars", set(push(), "/detail/image-tag", json!(format!("v{}", "1".repeat(127)))), NoAction),
        r("image tag 129 chars", set(push(), "/detail/image-tag", json!(format!("v{}", "1".repeat(128)))), NoAction),
        r("repository name with registry port and digest", set(push(), "/detail/repository-name", json!(format!("host:5000/auth@{DIGEST}"))), NoAction),
        r("repository name with a tag", set(push(), "/detail/repository-name", json!("auth:v2")), NoAction),
        r("uppercase repository name", set(push(), "/detail/repository-name", json!("AUTH")), NoAction),
        r("digest not sha256:hex", set(push(), "/detail/image-digest", json!("sha256:zz")), NoAction),
        r("digest missing", remove(push(), "/detail/image-digest"), NoAction),
        r("push FAILURE", set(push(), "/detail/result", json!("FAILURE")), NoAction),
        r("unknown action-type", set(push(), "/detail/action-type", json!("REPLICATE")), NoAction),
        r("control and replacement characters", set(push(), "/detail/repository-name", json!("au\u{0}th\u{202e}\u{fffd}")), NoAction),
        r("alarm NaN datapoints (strings)", reason_data(1, json!({"recentDatapoints": ["NaN", "NaN"], "threshold": 70.0})), NoAction),
        r("alarm null datapoints", reason_data(2, json!({"recentDatapoints": [null, null], "threshold": 70.0})), NoAction),
        r("alarm Infinity datapoints", reason_data(3, json!({"recentDatapoints": ["Infinity", "-Infinity"], "threshold": 70.0})), NoAction),
        r("alarm NaN threshold", reason_data(4, json!({"recentDatapoints": [90.0], "threshold": "NaN"})), NoAction),
        r("alarm without reasonData", remove(alarm(5), "/detail/state/reasonData"), NoAction),
        r("alarm reasonData not JSON", reason_data(6, json!("{not json")), NoAction),
        r("alarm reasonData a number", set(alarm(7), "/detail/state/reasonData", json!(5)), Rejected),
        r("alarm state unknown", set(alarm(8), "/detail/state/value", json!("PANIC")), NoAction),
        r("alarm name empty", set(set(alarm(9), "/detail/alarmName", json!("")), "/resources", json!([])), NoAction),
        // ALARM below its threshold: evaluated past the transition claim (the absurd timestamp
        // is its identity), matches no step. (An OK transition never gets that far: OK never scales.)
        r("alarm absurd timestamp", set(reason_data(10, json!({"recentDatapoints": [60.0], "threshold": 70.0})), "/detail/state/timestamp", json!("99999-99-99T99:99:99Z")), NoAction),
        r("task without containers", remove(task(), "/detail/containers"), NoAction),
        r("task containers an object", set(task(), "/detail/containers", json!({"name": "x"})), Rejected),
        r("task negative exit code", set(task(), "/detail/containers/0/exitCode", json!(-1)), NoAction),
        r("task exit code i64::MIN", set(task(), "/detail/containers/0/exitCode", json!(i64::MIN)), NoAction),
        r("task exit code a string", set(task(), "/detail/containers/0/exitCode", json!("1")), Rejected),
        r("task absurd timestamp", set(task(), "/detail/stoppedAt", json!("99999-01-01T00:00:00Z")), Rejected),
        r("task timestamp year 9999", set(task(), "/detail/stoppedAt", json!("9999-12-31T23:59:59Z")), NoAction),
        r("task ARN empty", set(task(), "/detail/taskArn", json!("")), NoAction),
        r("task cluster not managed", set(task(), "/detail/clusterArn", json!("arn:aws:ecs:us-east-1:1:cluster/other")), NoAction),
        r("task lastStatus RUNNING", set(task(), "/detail/lastStatus", json!("RUNNING")), NoAction),
        r("service action with a garbage resource", set(for_world(sample_event("ecs-service-action-placement-failure.json"), w), "/resources", json!(["not-an-arn"])), NoAction),
        r("deployment event for an unknown service", set(for_world(sample_event("ecs-deployment-failed.json"), w), "/resources", json!(["arn:aws:ecs:us-east-1:1:service/stage01/nope"])), NoAction),
        r("schedule with detail null", set(for_world(sample_event("schedule-reconcile.json"), w), "/detail", Value::Null), NoAction),
        r("schedule from an unknown rule", set(for_world(sample_event("schedule-reevaluate.json"), w), "/resources", json!(["arn:aws:events:us-east-1:1:rule/other"])), NoAction),
        r("id a number", set(push(), "/id", json!(5)), Rejected),
        r("resources a string", set(push(), "/resources", json!("x")), Rejected),
    ]
}

fn functions(w: &World, proxy: &AwsProxy) -> (Arc<Deployer>, Arc<Scaler>, Arc<Recovery>) {
    let env = || w.env_via(proxy, w.config());
    (Arc::new(Deployer::new(env())), Arc::new(Scaler::new(env())), Arc::new(Recovery::new(env())))
}

/// Run `handle` on its own task so a panic is reported as this row's failure.
async fn outcome<F: Function>(f: &Arc<F>, event: &Value) -> Result<Result<Value, (String, bool)>, String> {
    let (f, event) = (f.clone(), event.clone());
    tokio::spawn(async move { f.handle(event).await.map_err(|e| (format!("{} ({})", e, e.kind()), e.retryable())) }).await.map_err(|e| format!("panicked: {e}"))
}

/// What the world looks like from the functions' side: no row may change it.
async fn state(w: &World) -> Value {
    let ecs = w.ecs();
    let svcs = ecs.describe_services().cluster("stage01").services("auth").services("random").send().await.unwrap();
    let services: Vec<Value> = svcs.services().iter().map(|s| json!([s.service_name(), s.task_definition(), s.desired_count()])).collect();
    let tds = ecs.list_task_definitions().send().await.unwrap().task_definition_arns().len();
    let tasks = ecs.list_tasks().cluster("stage01").send().await.unwrap().task_arns().len();
    let asg = aws_sdk_autoscaling::Client::new(&w.sdk);
    let group = asg.describe_auto_scaling_groups().auto_scaling_group_names("stage01-asg").send().await.unwrap();
    json!({"services": services, "taskDefinitions": tds, "tasks": tasks, "asgDesired": group.auto_scaling_groups()[0].desired_capacity()})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_events_are_rejected_or_ignored_and_touch_nothing() {
    let w = World::seed().await;
    let proxy = AwsProxy::start();
    let (deployer, scaler, recovery) = functions(&w, &proxy);
    let before = state(&w).await;
    let mut table = Vec::new();
    let mut failures = Vec::new();
    for row in rows(&w) {
        let mut cells = Vec::new();
        for (name, out) in [
            ("deployer", outcome(&deployer, &row.event).await),
            ("scaler", outcome(&scaler, &row.event).await),
            ("recovery", outcome(&recovery, &row.event).await),
        ] {
            let cell = match &out {
                Err(panic) => {
                    failures.push(format!("{}: {name} {panic}", row.name));
                    "PANIC".to_string()
                }
                Ok(Ok(v)) => {
                    let status = v.get("status").or(v.get("action")).and_then(Value::as_str).unwrap_or("?").to_string();
                    if row.expect == Expect::Rejected && status != "rejected" {
                        failures.push(format!("{}: {name} should reject, answered {v}", row.name));
                    }
                    if ["deployed", "scaled", "restarted", "rolled-back", "stable", "failed"].contains(&status.as_str()) {
                        failures.push(format!("{}: {name} acted: {v}", row.name));
                    }
                    status
                }
                Ok(Err((e, retryable))) => {
                    if *retryable {
                        failures.push(format!("{}: {name} failed retryably (EventBridge would retry garbage): {e}", row.name));
                    }
                    if row.expect == Expect::Rejected {
                        failures.push(format!("{}: {name} should reject, failed: {e}", row.name));
                    }
                    format!("error: {}", e.chars().take(90).collect::<String>())
                }
            };
            cells.push(cell);
        }
        table.push(format!("| {} | {} |", row.name, cells.join(" | ")));
    }
    eprintln!("| row | deployer | scaler | recovery |\n|---|---|---|---|\n{}", table.join("\n"));
    let stats = proxy.stats();
    for service in ["ecs", "autoscaling", "sns"] {
        let n = stats["services"][service]["mutating_calls"].as_u64().unwrap_or(0);
        if n != 0 {
            let calls: Vec<&String> = stats["actions"].as_object().unwrap().iter().filter(|(k, v)| k.starts_with(&format!("{service}:")) && v["mutating"] == true).map(|(k, _)| k).collect();
            failures.push(format!("{n} mutating {service} call(s): {calls:?}"));
        }
    }
    assert_eq!(state(&w).await, before, "the world changed");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The bytes `"\ud800"` (a lone surrogate) are not JSON any Rust deserializer accepts: the
/// Runtime API client refuses such a payload before a handler runs. Nothing to reach.
#[test]
fn lone_surrogates_never_become_an_event() {
    let raw = r#"{"detail-type":"ECR Image Action","source":"aws.ecr","detail":{"repository-name":"\ud800"}}"#;
    assert!(serde_json::from_str::<Value>(raw).is_err());
    let invalid_utf8: &[u8] = b"{\"detail-type\":\"ECR Image Action\",\"source\":\"aws.ecr\",\"detail\":{\"repository-name\":\"\xff\xfe\"}}";
    assert!(serde_json::from_slice::<Value>(invalid_utf8).is_err());
}

// ------------------------------------------------------------------ bad configuration

#[test]
fn every_binary_refuses_to_start_on_bad_configuration_naming_the_variable() {
    for binary in ["deployer", "recovery", "scaler"] {
        for (var, value) in [
            ("AUTOPILOT_DRY_RUN", "maybe"),
            ("AUTOPILOT_CLUSTERS", "stage 01"),
            ("AUTOPILOT_TOPIC_ARN", "my-topic"),
            ("AUTOPILOT_STATE_TABLE", "x"),
            ("AUTOPILOT_CRASH_LOOP_THRESHOLD", "0"),
            ("AUTOPILOT_NOTIFICATION_WINDOW_SECONDS", "forever"),
        ] {
            let out = std::process::Command::new(harness::lambda::function_binary(binary))
                .env_clear()
                .env("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:1")
                .env(var, value)
                .output()
                .unwrap_or_else(|e| panic!("run {binary}: {e} (build with cargo test --workspace --all-targets)"));
            assert!(!out.status.success(), "{binary} started with {var}={value}");
            let all = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
            assert!(all.contains(var) && all.contains(value) && all.contains("expected"), "{binary} {var}={value}: {all}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_tags_name_the_resource_and_tag_and_the_rest_proceeds() {
    let w = World::seed().await;
    let proxy = AwsProxy::start();
    let env = || w.env_via(&proxy, w.config());

    // --- deployer: `autopilot:deploy=` (empty) on a second auth service; auth still deploys.
    let auth_td = service_td(&w, "auth").await;
    create_service(&w, "auth-empty-tag", &auth_td, &[("autopilot:deploy", "")], None).await;
    let digest = push_image(&w, "auth", "v2", "a").await;
    let push = push_event(&w, "auth", Some("v2"), &digest);
    let out = Deployer::new(env()).handle(push).await.expect("the deploy proceeds");
    assert_eq!(out["deployed"].as_array().unwrap().len(), 1, "{out:#}");
    assert_eq!(out["deployed"][0]["service"], "auth", "{out:#}");
    let skip = out["skipped"].as_array().unwrap().iter().find(|s| s["service"] == "auth-empty-tag").unwrap_or_else(|| panic!("auth-empty-tag skipped: {out:#}"));
    assert!(skip["reason"].as_str().unwrap().contains("autopilot:deploy"), "{skip}");
    assert_eq!(service_td(&w, "auth-empty-tag").await, auth_td, "the mis-tagged service is untouched");

    // --- recovery: `autopilot:restart=always` on a task is refused naming task and tag; a
    // correctly tagged task is re-run all the same.
    let job = register_job(&w).await;
    let mut crashed = Vec::new();
    for policy in ["always", "on-failure"] {
        crashed.push(crashed_job(&w, &job, policy).await);
    }
    let f = Recovery::new(env());
    let err = f.handle(crashed[0].clone()).await.expect_err("a malformed restart policy fails the invocation");
    assert!(!err.retryable(), "{err}");
    let text = err.to_string();
    assert!(text.contains("autopilot:restart") && text.contains("always") && text.contains("nightly-report"), "{text}");
    let ok = f.handle(crashed[1].clone()).await.expect("the well-tagged task");
    assert_eq!(ok["action"], "restarted", "{ok}");

    // --- scaler: `autopilot:steps=abc` on an alarm in CloudWatch; re-evaluation still scales
    // the well-tagged alarm and fails the invocation naming the bad one.
    let cw = aws_sdk_cloudwatch::Client::new(&w.sdk);
    let reason_data = alarm_reason_data(&[85.0, 90.0], 70.0);
    cw.put_metric_alarm()
        .alarm_name("random-cpu-bad-steps")
        .metric_name("CPUUtilization")
        .namespace("AWS/ECS")
        .statistic(aws_sdk_cloudwatch::types::Statistic::Average)
        .period(60)
        .evaluation_periods(2)
        .threshold(70.0)
        .comparison_operator(aws_sdk_cloudwatch::types::ComparisonOperator::GreaterThanThreshold)
        .tags(aws_sdk_cloudwatch::types::Tag::builder().key("autopilot:scale").value("stage01/random").build())
        .tags(aws_sdk_cloudwatch::types::Tag::builder().key("autopilot:steps").value("abc").build())
        .send()
        .await
        .unwrap();
    for alarm in ["random-cpu-high", "random-cpu-bad-steps"] {
        cw.set_alarm_state()
            .alarm_name(alarm)
            .state_value(aws_sdk_cloudwatch::types::StateValue::Alarm)
            .state_reason("test")
            .state_reason_data(&reason_data)
            .send()
            .await
            .unwrap();
    }
    // The re-evaluation measures the metric now: ECS reports 85 and 90 for random.
    publish_cpu(&w, "random", &[85.0, 90.0]).await;
    let err = Scaler::new(env()).handle(for_world(sample_event("schedule-reevaluate.json"), &w)).await.expect_err("the bad alarm fails the invocation");
    let text = err.to_string();
    assert!(text.contains("random-cpu-bad-steps") && text.contains("autopilot:steps") && text.contains("abc"), "{text}");
    assert_eq!(service(&w, "random").await.desired_count(), 6, "the well-tagged alarm scaled random all the same");
    let notes = w.notifications().await;
    assert!(notes.iter().any(|(s, _)| s.contains("random-cpu-bad-steps") && s.contains("autopilot:steps")), "{notes:?}");
}
