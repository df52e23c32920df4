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
    let claim = w.env().state.get(&autopilot::state::event_claim_pk("recovery", &event_id), &event_id).await.unwrap().expect("the dead delivery's claim");
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

/// Issue 15 under the Runtime API: the deployer binary, configured as the template configures
/// it, against moto with what moto lacks scripted by the suite's proxy (deployment records, a
/// rollout in progress, an Express service), every call through a per-test proxy that counts.
/// Items 3 and 6: a LINEAR service deploys and deploy.started names the strategy and its bake; a
/// CODE_DEPLOY service is skipped and told why. Item 7: a burst (v2 handled with v3 already
/// pushed) goes straight to v3. Item 4: a deployment paused at a pause hook is told with the
/// commands that answer it. Item 1: the end of a
/// rollout that ECS rolled back is reported as rolled back. Item 2: a rollout of ours past its
/// deadline is reported stuck by the reconcile pass. Item 5: an Express service rolls through
/// UpdateExpressGatewayService.
#[tokio::test(flavor = "multi_thread")]
async fn modern_deployments_under_the_runtime_api() {
    use harness::ecr::{push_event, push_image};
    use harness::ecs::{deployment_record, service_td, show_express, show_rollout, show_service_deployments};
    use harness::proxy::AwsProxy;
    let world = World::seed().await;
    let proxy = AwsProxy::start();
    let mut env = world.lambda_env();
    env.retain(|(k, _)| k != "AWS_ENDPOINT_URL");
    env.push(("AWS_ENDPOINT_URL".into(), proxy.endpoint.clone()));
    let lambda = LocalLambda::start("deployer", &env);
    let v1_td = service_td(&world, "auth").await;

    // Items 3, 6 and 7: auth as a LINEAR service, a CODE_DEPLOY service beside it, and v2 and v3
    // pushed within seconds: the v2 event takes auth straight to v3.
    harness::ecs::create_service(&world, "auth-bg", &v1_td, &[("autopilot:deploy", "any")], Some(aws_sdk_ecs::types::DeploymentControllerType::CodeDeploy)).await;
    let linear = json!({"strategy": "LINEAR", "bakeTimeInMinutes": 10, "linearConfiguration": {"stepPercent": 25.0, "stepBakeTimeInMinutes": 5}, "maximumPercent": 200, "minimumHealthyPercent": 100});
    harness::ecs::show_deployment_configuration(&world, "auth", Some(linear));
    let v2 = push_image(&world, "auth", "v2", "r").await;
    let v3 = push_image(&world, "auth", "v3", "r").await;
    let out = lambda.invoke(&push_event(&world, "auth", Some("v2"), &v2)).unwrap();
    harness::ecs::show_deployment_configuration(&world, "auth", None);
    assert_eq!(out["deployed"][0]["digest"], json!(v3), "{out:#}");
    let notes = world.notifications().await;
    let kinds: Vec<&str> = notes.iter().filter_map(|(_, b)| b["metadata"]["eventType"].as_str()).collect();
    assert!(kinds.contains(&"deploy.code-deploy-skipped"), "{kinds:?}");
    let started = notes.iter().find(|(_, b)| b["metadata"]["eventType"] == "deploy.started").expect("deploy.started");
    assert!(started.1["content"]["description"].as_str().unwrap().contains("a linear deployment; ECS shifts traffic in stages, then bakes 30 min"), "{:#}", started.1);

    // Item 4: a deployment paused at a pause hook (AWS's documented event).
    let out = lambda.invoke(&for_world(sample_event("ecs-hook-awaiting-action.json"), &world)).unwrap();
    assert_eq!(out["status"], "awaiting-approval", "{out:#}");
    let notes = world.notifications().await;
    assert!(notes[0].1["content"]["description"].as_str().unwrap().contains("aws ecs continue-service-deployment"), "{notes:?}");

    // Item 2: our record of that deploy 31 minutes old, ECS still IN_PROGRESS: stuck.
    let (pk, sk) = autopilot::keys::deployment("stage01", "auth");
    let state = world.env().state;
    let mut record = state.get(&pk, &sk).await.unwrap().expect("our deployment record").data;
    record["at"] = json!(autopilot::state::now_epoch() - 31 * 60);
    state.put(&pk, &sk, &record, std::time::Duration::from_secs(3600)).await.unwrap();
    show_rollout(&world, "auth", Some("IN_PROGRESS"), 1);
    let out = lambda.invoke(&for_world(sample_event("schedule-reconcile.json"), &world)).unwrap();
    show_rollout(&world, "auth", None, 0);
    assert_eq!(out["stuck"], json!(["stage01/auth"]), "{out:#}");

    // Item 1: ECS rolled v3 back to auth:1 and the rollback's COMPLETED event arrives.
    world.ecs().update_service().cluster("stage01").service("auth").task_definition(&v1_td).send().await.unwrap();
    show_service_deployments(&world, "auth", vec![deployment_record(&world, "ecs-service-deployment-rolling-rollback-successful.json")]);
    let mut completed = for_world(sample_event("ecs-deployment-completed.json"), &world);
    completed["resources"] = json!([world.str("/services/auth")]);
    let out = lambda.invoke(&completed).unwrap();
    assert_eq!(out["status"], "rolled-back", "never reported as success: {out:#}");

    // Item 5: auth as an Express service; a newer push rolls through UpdateExpressGatewayService.
    show_express(&world, "auth", true);
    proxy.reset();
    let v4 = push_image(&world, "auth", "v4", "r").await;
    let out = lambda.invoke(&push_event(&world, "auth", Some("v4"), &v4)).unwrap();
    show_express(&world, "auth", false);
    assert_eq!(out["deployed"][0]["digest"], json!(v4), "{out:#}");
    assert_eq!((proxy.count("ecs:UpdateExpressGatewayService", "calls"), proxy.count("ecs:UpdateService", "calls")), (1, 0));
}

/// Issue 16 under the Runtime API: the deployer binary as the template configures it in
/// organization mode (AUTOPILOT_MEMBER_ROLE, AUTOPILOT_ACCOUNTS), its own account known from the
/// function ARN the Runtime API gives with each invocation (no STS call): a push in a listed
/// member deploys there, one in an unlisted member changes nothing; the same binary in
/// single-account mode ignores another account's event.
#[tokio::test]
async fn organization_mode_under_the_runtime_api() {
    use harness::ecr::{push_event, push_image};
    use harness::ecs::service_td;
    use harness::runtime_api::{deliver, spawn_function, start_server, Answer};
    use std::time::Duration;

    let (central, a, c) = tokio::join!(World::seed(), World::seed(), World::seed());
    let binary = harness::lambda::function_binary("deployer");
    let invoke = |rx: &std::sync::mpsc::Receiver<harness::runtime_api::Msg>, id: &str, event: &serde_json::Value| -> serde_json::Value {
        match deliver(rx, id, &event.to_string(), Duration::from_secs(900), Some(Duration::from_secs(60))).expect("an answer") {
            Answer::Response(body) => serde_json::from_str(&body).expect("JSON"),
            Answer::Error(body) => panic!("{id}: {body}"),
        }
    };
    let arn = format!("arn:aws:lambda:{}:{}:function:deployer", central.region, central.account);

    let mut env = central.lambda_env();
    env.push(("AUTOPILOT_MEMBER_ROLE".into(), "ecs-autopilot/ecs-autopilot-deployer".into()));
    env.push(("AUTOPILOT_ACCOUNTS".into(), a.account.clone()));
    let (port, rx) = start_server(arn.clone());
    let mut org = spawn_function(&binary, &format!("127.0.0.1:{port}"), "deployer", &env, None);
    let (a_before, c_before) = (service_td(&a, "auth").await, service_td(&c, "auth").await);
    let digest = push_image(&a, "auth", "v2", "a").await;
    let out = invoke(&rx, "org-1", &push_event(&a, "auth", Some("v2"), &digest));
    assert_eq!(out["status"], "deployed", "{out:#}");
    assert_ne!(service_td(&a, "auth").await, a_before);
    let digest_c = push_image(&c, "auth", "v2", "c").await;
    let out = invoke(&rx, "org-2", &push_event(&c, "auth", Some("v2"), &digest_c));
    assert_eq!(out["status"], "ignored", "{out:#}");
    assert_eq!(service_td(&c, "auth").await, c_before);
    org.kill().unwrap();
    org.wait().unwrap();

    let (port, rx) = start_server(arn);
    let mut single = spawn_function(&binary, &format!("127.0.0.1:{port}"), "deployer", &central.lambda_env(), None);
    let out = invoke(&rx, "single-1", &push_event(&c, "auth", Some("v2"), &digest_c));
    assert_eq!(out["status"], "ignored", "{out:#}");
    assert!(out["reason"].as_str().unwrap().contains(&format!("not this function's own ({})", central.account)), "{out:#}");
    assert_eq!(service_td(&c, "auth").await, c_before);
    single.kill().unwrap();
    single.wait().unwrap();
}

/// Issue 17, item 9: in account mode too the deployer and the scaler order their work through
/// their FIFO work queues (AUTOPILOT_QUEUE_URL, as template.yaml sets it), instead of a reserved
/// concurrency a new account cannot grant: an EventBridge invocation puts the event in the group
/// `<account>#<region>` and changes nothing; the SQS batch Lambda then delivers does the work.
#[tokio::test]
async fn account_mode_work_goes_through_the_work_queues_under_the_runtime_api() {
    use harness::cloudwatch::random_cpu_high;
    use harness::ecr::{push_event, push_image};
    use harness::ecs::{fill_instances, service, service_td};
    use harness::runtime_api::{deliver, spawn_function, start_server, Answer};
    use std::time::Duration;

    let w = World::seed().await;
    fill_instances(&w).await;
    let sqs = aws_sdk_sqs::Client::new(&w.sdk);
    let group = format!("{}#{}", w.account, w.region);
    for function in ["deployer", "scaler"] {
        let queue = harness::fifo_queue(&w.sdk, &format!("ecs-autopilot-{function}-work.fifo")).await;
        let mut env = w.lambda_env();
        env.push(("AUTOPILOT_QUEUE_URL".into(), queue.clone()));
        let (port, rx) = start_server(format!("arn:aws:lambda:{}:{}:function:{function}", w.region, w.account));
        let mut child = spawn_function(&harness::lambda::function_binary(function), &format!("127.0.0.1:{port}"), function, &env, None);
        let invoke = |id: &str, event: &serde_json::Value| -> serde_json::Value {
            match deliver(&rx, id, &event.to_string(), Duration::from_secs(900), Some(Duration::from_secs(60))).expect("an answer") {
                Answer::Response(body) => serde_json::from_str(&body).expect("JSON"),
                Answer::Error(body) => panic!("{function} {id}: {body}"),
            }
        };
        let (event, before) = match function {
            "deployer" => {
                let digest = push_image(&w, "auth", "v2", "q").await;
                (push_event(&w, "auth", Some("v2"), &digest), service_td(&w, "auth").await)
            }
            _ => (random_cpu_high(&w), service(&w, "random").await.desired_count().to_string()),
        };
        let now = |function: &str| {
            let w = &w;
            let function = function.to_string();
            async move {
                match function.as_str() {
                    "deployer" => service_td(w, "auth").await,
                    _ => service(w, "random").await.desired_count().to_string(),
                }
            }
        };
        let out = invoke(&format!("{function}-1"), &event);
        assert_eq!(out["status"], "queued", "{function}: {out:#}");
        assert_eq!(out["messageGroup"], group, "{out:#}");
        assert_eq!(now(function).await, before, "{function}: nothing done until the queue hands it back");

        let got = sqs
            .receive_message()
            .queue_url(&queue)
            .message_system_attribute_names(aws_sdk_sqs::types::MessageSystemAttributeName::MessageGroupId)
            .send()
            .await
            .expect("receive");
        let messages = got.messages.unwrap_or_default();
        assert_eq!(messages.len(), 1, "{function}: one message");
        let m = &messages[0];
        let delivery = json!({"Records": [{
            "messageId": m.message_id().unwrap(), "receiptHandle": m.receipt_handle().unwrap(), "body": m.body().unwrap(),
            "attributes": {"MessageGroupId": group, "ApproximateReceiveCount": "1"}, "messageAttributes": {},
            "eventSource": "aws:sqs", "eventSourceARN": format!("arn:aws:sqs:{}:{}:ecs-autopilot-{function}-work.fifo", w.region, w.account), "awsRegion": w.region,
        }]});
        let out = invoke(&format!("{function}-2"), &delivery);
        assert_eq!(out, json!({"batchItemFailures": []}), "{function}: {out:#}");
        assert_ne!(now(function).await, before, "{function}: done when handed back");
        child.kill().unwrap();
        child.wait().unwrap();
    }
}
