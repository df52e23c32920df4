//! Secrets stay secret, and dry run changes nothing.
//!
//! - Each function binary runs under a local Lambda Runtime API with its stdout and stderr
//!   captured (JSON logs at DEBUG, the most verbose level the template allows), on the seed
//!   world whose task definitions carry secret-looking environment values, plus `secrets` with
//!   `valueFrom` ARNs. A deploy, a re-run whose overrides carry a secret and a scaling later, no
//!   log line and no notification contains any of them, nor the AWS secret access key.
//! - With `AUTOPILOT_DRY_RUN=true`, every function decides and notifies through the proxy, and
//!   the proxy counts no mutating call to ECS or Auto Scaling.

use std::time::Duration;

use autopilot::config::Config;
use autopilot::runtime::{Env, Function};
use aws_sdk_ecs::types::{ContainerDefinition, ContainerOverride, KeyValuePair, Secret, Tag, TaskOverride};
use harness::lambda::LocalLambda;
use harness::proxy::AwsProxy;
use harness::{for_world, sample_event, World};
use serde_json::{json, Value};

const JOB: &str = "nightly-report";
const JOB_ENV_SECRET: &str = "s3cr3t-job-env-b2c4e6";
const OVERRIDE_SECRET: &str = "s3cr3t-override-7d1f0a";

fn value_from(w: &World) -> [String; 3] {
    [
        format!("arn:aws:secretsmanager:us-east-1:{}:secret:auth/db-password-AbCdEf", w.account),
        format!("arn:aws:ssm:us-east-1:{}:parameter/auth/jwt-signing-key", w.account),
        format!("arn:aws:secretsmanager:us-east-1:{}:secret:jobs/report-token-QwErTy", w.account),
    ]
}

/// Every string that must never appear in a log line or a notification.
fn secrets(w: &World) -> Vec<String> {
    let mut s: Vec<String> = w.raw["secret_values"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect();
    s.extend([JOB_ENV_SECRET.to_string(), OVERRIDE_SECRET.to_string(), w.str("/secret_access_key")]);
    s.extend(value_from(w));
    s
}

// ------------------------------------------------------------------ the world's secrets

fn ecs_direct(w: &World) -> aws_sdk_ecs::Client {
    w.ecs()
}

/// auth:2 = auth:1 plus `secrets` (valueFrom ARNs), and the service on it.
async fn auth_with_secret_refs(w: &World) {
    let ecs = ecs_direct(w);
    let base = ecs.describe_task_definition().task_definition(w.str("/task_definitions/auth")).send().await.unwrap();
    let base = base.task_definition().unwrap();
    let [db, jwt, _] = value_from(w);
    let mut c = base.container_definitions()[0].clone();
    c.secrets = Some(vec![
        Secret::builder().name("DB_PASSWORD_REF").value_from(db).build().unwrap(),
        Secret::builder().name("JWT_REF").value_from(jwt).build().unwrap(),
    ]);
    let td = ecs
        .register_task_definition()
        .family("auth")
        .container_definitions(c)
        .set_requires_compatibilities(Some(base.requires_compatibilities().to_vec()))
        .execution_role_arn(format!("arn:aws:iam::{}:role/ecsTaskExecutionRole", w.account))
        .send()
        .await
        .unwrap()
        .task_definition()
        .unwrap()
        .task_definition_arn()
        .unwrap()
        .to_string();
    ecs.update_service().cluster("stage01").service("auth").task_definition(td).send().await.unwrap();
}

async fn push_v2(w: &World) -> Value {
    let manifest = json!({"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": 1, "digest": "sha256:2222222222222222222222222222222222222222222222222222222222222222"},
        "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": 1, "digest": "sha256:3333333333333333333333333333333333333333333333333333333333333333"}]});
    let out = aws_sdk_ecr::Client::new(&w.sdk)
        .put_image()
        .repository_name("auth")
        .image_manifest(manifest.to_string())
        .image_manifest_media_type("application/vnd.docker.distribution.manifest.v2+json")
        .image_tag("v2")
        .send()
        .await
        .unwrap();
    let mut e = for_world(sample_event("ecr-push-tagged.json"), w);
    e["detail"]["image-digest"] = json!(out.image().unwrap().image_id().unwrap().image_digest().unwrap());
    e
}

/// A crashed standalone job with a secret in its environment, a `valueFrom` secret and an
/// override carrying a secret; the STOPPED event carries the overrides as ECS sends them.
async fn crashed_job(w: &World, restart: &str) -> Value {
    let ecs = ecs_direct(w);
    let [_, _, token] = value_from(w);
    let td = ecs
        .register_task_definition()
        .family(JOB)
        .container_definitions(
            ContainerDefinition::builder()
                .name(JOB)
                .image(w.str("/images/random"))
                .memory(128)
                .essential(true)
                .environment(KeyValuePair::builder().name("REPORT_DB_PASSWORD").value(JOB_ENV_SECRET).build())
                .secrets(Secret::builder().name("REPORT_TOKEN_REF").value_from(token).build().unwrap())
                .build(),
        )
        .send()
        .await
        .unwrap()
        .task_definition()
        .unwrap()
        .task_definition_arn()
        .unwrap()
        .to_string();
    let overrides = TaskOverride::builder()
        .container_overrides(ContainerOverride::builder().name(JOB).environment(KeyValuePair::builder().name("REPORT_TOKEN").value(OVERRIDE_SECRET).build()).build())
        .build();
    let t = ecs
        .run_task()
        .cluster("stage01")
        .task_definition(&td)
        .launch_type(aws_sdk_ecs::types::LaunchType::Ec2)
        .overrides(overrides)
        .tags(Tag::builder().key("autopilot:restart").value(restart).build())
        .send()
        .await
        .unwrap();
    let arn = t.tasks()[0].task_arn().unwrap().to_string();
    ecs.stop_task().cluster("stage01").task(&arn).send().await.unwrap();
    let mut e = for_world(sample_event("ecs-task-stopped-crash.json"), w);
    e["detail"]["taskArn"] = json!(arn);
    e["detail"]["taskDefinitionArn"] = json!(td);
    e["detail"]["attachments"] = json!([]);
    e["detail"]["containers"] = json!([{"name": JOB, "exitCode": 1}]);
    e["detail"]["overrides"] = json!({"containerOverrides": [{"name": JOB, "environment": [{"name": "REPORT_TOKEN", "value": OVERRIDE_SECRET}]}]});
    e["resources"] = json!([arn]);
    e
}

fn alarm(w: &World) -> Value {
    let mut e = sample_event("cloudwatch-alarm-ok-to-alarm.json");
    e["detail"]["state"]["reasonData"] =
        json!(json!({"version": "1.0", "statistic": "Average", "period": 60, "recentDatapoints": [85.0, 90.0], "threshold": 70.0}).to_string());
    for_world(e, w)
}

fn assert_clean(what: &str, text: &str, secrets: &[String]) {
    for s in secrets {
        if let Some(at) = text.find(s.as_str()) {
            let line = text[..at].rsplit('\n').next().unwrap_or("");
            panic!("{what} leaks {s:?} in: {}…", line.chars().take(300).collect::<String>());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_logs_or_notifications() {
    let w = World::seed().await;
    auth_with_secret_refs(&w).await;
    let push = push_v2(&w).await;
    let stopped = crashed_job(&w, "on-failure").await;
    let dir = std::env::temp_dir().join(format!("autopilot-security-{}", w.account));
    std::fs::create_dir_all(&dir).unwrap();
    let mut env = w.lambda_env();
    env.push(("AWS_LAMBDA_LOG_LEVEL".into(), "DEBUG".into()));

    let mut logs = String::new();
    let mut outcomes = Vec::new();
    for (function, event) in [("deployer", &push), ("recovery", &stopped), ("scaler", &alarm(&w))] {
        let lambda = LocalLambda::start_logging(function, &env, &dir.join(format!("{function}.log")));
        let out = lambda.invoke(event).unwrap_or_else(|e| panic!("{function}: {e}"));
        // A second delivery of the same event (replay path) logs too.
        let _ = lambda.invoke(event);
        drop(lambda);
        let text = std::fs::read_to_string(dir.join(format!("{function}.log"))).unwrap_or_default();
        assert!(text.contains("event handled"), "{function} logged its outcome (the grep below means something): {text}");
        eprintln!("{function}: {} log lines, {} at DEBUG", text.lines().count(), text.matches("\"DEBUG\"").count());
        outcomes.push(out.to_string());
        logs += &text;
    }
    assert!(outcomes[0].contains("\"deployed\""), "{}", outcomes[0]);
    assert!(outcomes[1].contains("\"restarted\""), "{}", outcomes[1]);
    assert!(outcomes[2].contains("\"scaled\""), "{}", outcomes[2]);

    let secrets = secrets(&w);
    assert_clean("the function logs", &logs, &secrets);
    assert_clean("the invocation results", &outcomes.join("\n"), &secrets);
    let notes = w.notifications().await;
    assert!(notes.len() >= 3, "deploy, re-run and scaling were notified: {notes:?}");
    for (subject, body) in &notes {
        assert_clean("a notification", &format!("{subject}\n{body}"), &secrets);
    }
    // The secrets really were in play: the re-run carries the override, the new revision the refs.
    let new_td = w.ecs().describe_services().cluster("stage01").services("auth").send().await.unwrap().services()[0].task_definition().unwrap().to_string();
    let td = w.ecs().describe_task_definition().task_definition(&new_td).send().await.unwrap();
    assert_eq!(td.task_definition().unwrap().container_definitions()[0].secrets().len(), 2, "the deployed copy keeps its secrets");
    let _ = std::fs::remove_dir_all(&dir);
}

// ------------------------------------------------------------------ dry run

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_sends_no_mutating_call_to_ecs_or_auto_scaling() {
    let w = World::seed().await;
    let proxy = AwsProxy::start();
    let push = push_v2(&w).await;
    let stopped = crashed_job(&w, "on-failure").await;
    // Fill both instances so that scaling out would also grow the Auto Scaling group.
    let ecs = ecs_direct(&w);
    ecs.register_task_definition()
        .family("filler")
        .container_definitions(ContainerDefinition::builder().name("filler").image("busybox").cpu(2048).memory(256).essential(true).build())
        .send()
        .await
        .unwrap();
    let _ = ecs.run_task().cluster("stage01").task_definition("filler").count(4).send().await;
    // A crash loop of a freshly deployed revision with rollback on (the rollback path).
    ecs.tag_resource().resource_arn(w.str("/services/random")).tags(Tag::builder().key("autopilot:rollback").value("on").build()).send().await.unwrap();
    let v1 = w.str("/task_definitions/random");
    let base = ecs.describe_task_definition().task_definition(&v1).send().await.unwrap();
    let mut c = base.task_definition().unwrap().container_definitions()[0].clone();
    c.image = Some(format!("{}:v2", w.str("/repositories/random/uri")));
    let v2 = ecs.register_task_definition().family("random").container_definitions(c).send().await.unwrap().task_definition().unwrap().task_definition_arn().unwrap().to_string();
    ecs.update_service().cluster("stage01").service("random").task_definition(&v2).send().await.unwrap();
    let state = w.env();
    let now = autopilot::state::now_epoch();
    let (pk, sk) = autopilot::keys::deployment("stage01", "random");
    state.state.put(&pk, &sk, &json!({"taskDefinition": v2, "previous": v1, "at": now - 60}), Duration::from_secs(3600)).await.unwrap();
    let (pk, sk) = autopilot::keys::stable_revision("stage01", "random");
    state.state.put(&pk, &sk, &json!({"taskDefinition": v1, "at": now - 86000}), Duration::from_secs(3600)).await.unwrap();

    proxy.reset();
    let config = Config { dry_run: true, ..w.config() };
    let env = || Env::new(config.clone(), proxy.sdk(&w.sdk));
    let deployer = autopilot_deployer::Deployer::new(env());
    let scaler = autopilot_scaler::Scaler::new(env());
    let recovery = autopilot_recovery::Recovery::new(env());

    let out = deployer.handle(push.clone()).await.expect("deployer dry run");
    assert_eq!(out["status"], "dry-run", "{out}");
    let out = deployer.handle(for_world(sample_event("schedule-reconcile.json"), &w)).await.expect("reconcile dry run");
    assert_eq!(out["status"], "dry-run", "{out}");
    let out = scaler.handle(alarm(&w)).await.expect("scaler dry run");
    assert_eq!((out["action"].as_str(), out["dryRun"].as_bool(), out["capacity"]["action"].as_str()), (Some("scaled"), Some(true), Some("grown")), "{out}");
    let out = scaler.handle(for_world(sample_event("ecs-service-action-placement-failure.json"), &w)).await.expect("placement failure dry run");
    assert_eq!(out["capacity"]["action"], "grown", "{out}");
    let out = recovery.handle(stopped).await.expect("recovery dry run");
    assert_eq!(out["dryRun"], true, "{out}");
    let mut last = Value::Null;
    for n in 0..3 {
        let mut crash = for_world(sample_event("ecs-task-stopped-crash.json"), &w);
        crash["detail"]["taskArn"] = json!(format!("arn:aws:ecs:us-east-1:{}:task/stage01/{:032x}", w.account, 0xd00d + n));
        crash["detail"]["taskDefinitionArn"] = json!(v2);
        crash["detail"]["group"] = json!("service:random");
        crash["detail"]["attachments"] = json!([]);
        crash["detail"]["containers"] = json!([{"name": "random", "exitCode": 1}]);
        last = recovery.handle(crash).await.expect("crash dry run");
    }
    assert!(last["reason"].as_str().unwrap_or_default().contains("would roll the service back"), "{last}");

    let stats = proxy.stats();
    let mutating = |svc: &str| stats["services"][svc]["mutating_calls"].as_u64().unwrap_or(0);
    let ecs_calls: Vec<&String> = stats["actions"].as_object().unwrap().iter().filter(|(k, v)| k.starts_with("ecs:") && v["mutating"] == true).map(|(k, _)| k).collect();
    assert_eq!(mutating("ecs"), 0, "mutating ECS calls in dry run: {ecs_calls:?}");
    assert_eq!(mutating("autoscaling"), 0, "mutating Auto Scaling calls in dry run: {}", stats["services"]["autoscaling"]);
    assert!(stats["services"]["ecs"]["calls"].as_u64().unwrap_or(0) > 5, "the functions did read ECS through the proxy: {}", stats["services"]);
    assert!(mutating("sns") >= 4, "dry runs notify: {}", stats["services"]);
    let notes = w.notifications().await;
    assert!(notes.iter().all(|(s, _)| s.starts_with("[dry run]")), "{notes:?}");
}
