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
