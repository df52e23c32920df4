//! Each function binary under a local Lambda Runtime API (`cargo lambda watch
//! --only-lambda-apis` + `cargo lambda invoke`), configured by environment variables exactly
//! as the SAM template configures it, talking to moto over HTTP.

use harness::lambda::LocalLambda;
use harness::{for_world, sample_event, World};
use serde_json::json;

fn schedule_event(world: &World, rule: &str) -> serde_json::Value {
    for_world(
        json!({
            "version": "0", "id": "x", "detail-type": "Scheduled Event", "source": "aws.events",
            "account": "123456789012", "time": "2026-11-25T12:00:00Z", "region": "us-east-1",
            "resources": [format!("arn:aws:events:us-east-1:123456789012:rule/{rule}")], "detail": {}
        }),
        world,
    )
}

/// `work` is an event the function must look at AWS for (so it claims the event id).
async fn replay_and_reject(function: &str, work: &str) {
    let world = World::seed().await;
    let lambda = LocalLambda::start(function, &world.lambda_env());

    // An event settled from its content alone: the same answer every time, no claim, no AWS.
    let unrelated = schedule_event(&world, "some-unrelated-rule");
    let first = lambda.invoke(&unrelated).unwrap_or_else(|e| panic!("{function}: {e}"));
    let again = lambda.invoke(&unrelated).unwrap();
    assert_eq!(first, again, "{function}: a screened event is answered the same way twice");
    assert!(first["status"] == "ignored" || first["action"] == "ignored", "{function}: {first}");

    let event = for_world(sample_event(work), &world);
    let first = lambda.invoke(&event).unwrap_or_else(|e| panic!("{function}: {e}"));
    assert_ne!(first["status"], "replay", "{function}: first delivery is not a replay: {first}");
    // Same EventBridge id again: the state table in moto's DynamoDB remembers it.
    let second = lambda.invoke(&event).unwrap();
    assert_eq!(second["status"], "replay", "{function}: {second}");

    // An event that is not EventBridge's: a classified rejection, not a crash.
    let rejected = lambda.invoke(&json!({"hello": "world"})).unwrap();
    assert_eq!(rejected["status"], "rejected", "{function}: {rejected}");
    assert_eq!(rejected["error"]["kind"], "InvalidEvent");

    // And the process is still serving.
    let third = lambda.invoke(&schedule_event(&world, "another-rule")).unwrap();
    assert_ne!(third["status"], "replay");
}

#[tokio::test(flavor = "multi_thread")]
async fn deployer_under_the_runtime_api() {
    replay_and_reject("deployer", "schedule-reconcile.json").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn recovery_under_the_runtime_api() {
    replay_and_reject("recovery", "ecs-task-stopped-crash.json").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn scaler_under_the_runtime_api() {
    replay_and_reject("scaler", "schedule-reevaluate.json").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_configuration_stops_the_function_with_the_variable_named() {
    let out = std::process::Command::new(harness::lambda::function_binary("deployer"))
        .env("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:1")
        .env("AUTOPILOT_DRY_RUN", "maybe")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let all = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(all.contains("AUTOPILOT_DRY_RUN") && all.contains("true or false"), "{all}");
}

/// Issue 14, item 4 (AWS: "Error handling and automatic retries in Lambda": an asynchronous
/// invocation that fails is retried after one minute, then two). A recovery invocation with a
/// 6-second deadline is killed while its RunTask is in flight (the proxy holds it, then lets it
/// reach ECS as AWS would after its caller died). Re-delivered at once, the event is still held:
/// the delivery fails retryably instead of answering "replay" and losing it. Re-delivered after
/// the dead invocation's deadline, it is handled, and the re-run is the task the dead invocation
/// had started (same clientToken): the work is done exactly once. Then it is a replay.
#[tokio::test(flavor = "multi_thread")]
async fn a_function_killed_mid_event_leaves_the_event_to_the_next_delivery() {
    use harness::ecs::{crashed_job, job_tasks, register_job};
    use harness::proxy::AwsProxy;
    use harness::runtime_api::{deliver, spawn_function, start_server, Answer};
    use std::time::{Duration, Instant};

    let w = World::seed().await;
    let td = register_job(&w).await;
    let stopped = crashed_job(&w, &td, "on-failure").await;
    let event_id = stopped["id"].as_str().unwrap().to_string();
    let tasks_before = job_tasks(&w).await;
    let proxy = AwsProxy::start();
    proxy.configure(json!({"holds": {"ecs:RunTask": 3000}}));
    let mut env = w.lambda_env();
    env.retain(|(k, _)| k != "AWS_ENDPOINT_URL");
    env.push(("AWS_ENDPOINT_URL".into(), proxy.endpoint.clone()));
    let binary = harness::lambda::function_binary("recovery");
    let (port, rx) = start_server(format!("arn:aws:lambda:{}:{}:function:recovery", w.region, w.account));
    let api = format!("127.0.0.1:{port}");
    let event = stopped.to_string();

    // The first delivery, killed while its RunTask is held.
    let mut first = spawn_function(&binary, &api, "recovery", &env, None);
    let t0 = Instant::now();
    deliver(&rx, "req-1", &event, Duration::from_secs(6), None);
    while proxy.count("ecs:RunTask", "calls") == 0 {
        assert!(t0.elapsed() < Duration::from_secs(20), "the first delivery reached RunTask");
        std::thread::sleep(Duration::from_millis(20));
    }
    first.kill().unwrap();
    first.wait().unwrap();
    let claim = w.env().state.get("event#recovery", &event_id).await.unwrap().expect("the dead delivery's claim");
    assert_eq!(claim.data["status"], "in-progress");

    let mut second = spawn_function(&binary, &api, "recovery", &env, None);
    let answer = deliver(&rx, "req-2", &event, Duration::from_secs(30), Some(Duration::from_secs(30))).unwrap();
    let Answer::Error(body) = answer else { panic!("a held event is not answered as done: {answer:?}") };
    assert!(body.contains("Conflict") && body.contains("another delivery"), "{body}");
    assert!(t0.elapsed() < Duration::from_secs(6), "this was before the dead invocation's deadline");

    // Past the dead invocation's deadline (6 s, plus the lease's grace and a second's rounding).
    std::thread::sleep(Duration::from_secs(9).saturating_sub(t0.elapsed()));
    let answer = deliver(&rx, "req-3", &event, Duration::from_secs(30), Some(Duration::from_secs(30))).unwrap();
    let Answer::Response(body) = answer else { panic!("the next delivery does the work: {answer:?}") };
    let outcome: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(outcome["action"], "restarted", "{outcome}");
    assert_eq!(job_tasks(&w).await, tasks_before + 1, "one re-run, though RunTask reached ECS twice: {outcome}");
    assert_eq!(proxy.count("ecs:RunTask", "calls"), 2, "the dead delivery's RunTask, then the same clientToken again");

    let answer = deliver(&rx, "req-4", &event, Duration::from_secs(30), Some(Duration::from_secs(30))).unwrap();
    let Answer::Response(body) = answer else { panic!("{answer:?}") };
    assert!(body.contains("\"replay\""), "{body}");
    second.kill().unwrap();
    second.wait().unwrap();
}
