//! Secrets stay secret, and dry run changes nothing.
//!
//! - Each function binary runs under a local Lambda Runtime API with its stdout and stderr
//!   captured (JSON logs at TRACE, beyond DEBUG, the most verbose level the template offers), on the seed
//!   world whose task definitions carry secret-looking environment values, plus `secrets` with
//!   `valueFrom` ARNs. A deploy, a re-run whose overrides carry a secret and a scaling later, no
//!   log line and no notification contains any of them, nor the AWS secret access key.
//! - With `AUTOPILOT_DRY_RUN=true`, every function decides and notifies through the proxy, and
//!   the proxy counts no mutating call to ECS or Auto Scaling.

use autopilot::config::Config;
use autopilot::runtime::Function;
use aws_sdk_ecs::types::Secret;
use harness::cloudwatch::random_cpu_high;
use harness::ecr::{push_event, push_image};
use harness::ecs::{
    crashed_job, deploy_random_v2, fill_instances, job_container, register, register_job_with, service_task_arn, service_td, stopped_event, tag_service, JOB_ENV_SECRET,
    OVERRIDE_SECRET,
};
use harness::lambda::LocalLambda;
use harness::proxy::AwsProxy;
use harness::{for_world, sample_event, World};
use serde_json::Value;

fn value_from(w: &World) -> [String; 3] {
    [
        format!("arn:aws:secretsmanager:us-east-1:{}:secret:auth/db-password-AbCdEf", w.account),
        format!("arn:aws:ssm:us-east-1:{}:parameter/auth/jwt-signing-key", w.account),
        format!("arn:aws:secretsmanager:us-east-1:{}:secret:jobs/report-token-QwErTy", w.account),
    ]
}

/// Every string that must never appear in a log line or a notification.
fn secrets(w: &World) -> Vec<String> {
    let mut s = w.secret_values();
    s.extend([JOB_ENV_SECRET.to_string(), OVERRIDE_SECRET.to_string(), w.str("/secret_access_key")]);
    s.extend(value_from(w));
    s
}

// ------------------------------------------------------------------ the world's secrets

/// auth:2 = auth:1 plus `secrets` (valueFrom ARNs), and the service on it.
async fn auth_with_secret_refs(w: &World) {
    let ecs = w.ecs();
    let base = ecs.describe_task_definition().task_definition(w.str("/task_definitions/auth")).send().await.unwrap();
    let base = base.task_definition().unwrap();
    let [db, jwt, _] = value_from(w);
    let mut c = base.container_definitions()[0].clone();
    c.secrets = Some(vec![
        Secret::builder().name("DB_PASSWORD_REF").value_from(db).build().unwrap(),
        Secret::builder().name("JWT_REF").value_from(jwt).build().unwrap(),
    ]);
    let td = register(
        ecs.register_task_definition()
            .family("auth")
            .container_definitions(c)
            .set_requires_compatibilities(Some(base.requires_compatibilities().to_vec()))
            .execution_role_arn(format!("arn:aws:iam::{}:role/ecsTaskExecutionRole", w.account)),
    )
    .await;
    ecs.update_service().cluster("stage01").service("auth").task_definition(td).send().await.unwrap();
}

/// auth:v2 pushed, and its push event.
async fn push_v2(w: &World) -> Value {
    let digest = push_image(w, "auth", "v2", "a").await;
    push_event(w, "auth", Some("v2"), &digest)
}

/// A crashed standalone job with a secret in its environment, a `valueFrom` secret and an
/// override carrying a secret; the STOPPED event carries the overrides as ECS sends them.
async fn crashed_secret_job(w: &World, restart: &str) -> Value {
    let [_, _, token] = value_from(w);
    let td = register_job_with(w, job_container(w).secrets(Secret::builder().name("REPORT_TOKEN_REF").value_from(token).build().unwrap()).build()).await;
    crashed_job(w, &td, restart).await
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
    let stopped = crashed_secret_job(&w, "on-failure").await;
    let dir = std::env::temp_dir().join(format!("autopilot-security-{}", w.account));
    std::fs::create_dir_all(&dir).unwrap();
    let mut env = w.lambda_env();
    // Beyond the most verbose level the template offers (DEBUG): at TRACE lambda_runtime would
    // log each raw event (the STOPPED event carries the override secret) and the SDK its bodies.
    env.push(("AWS_LAMBDA_LOG_LEVEL".into(), "TRACE".into()));
    env.push(("RUST_LOG".into(), "trace,lambda_runtime=trace,aws_smithy_runtime=trace".into()));

    let mut logs = String::new();
    let mut outcomes = Vec::new();
    for (function, event) in [("deployer", &push), ("recovery", &stopped), ("scaler", &random_cpu_high(&w))] {
        let lambda = LocalLambda::start_logging(function, &env, &dir.join(format!("{function}.log")));
        let out = lambda.invoke(event).unwrap_or_else(|e| panic!("{function}: {e}"));
        // A second delivery of the same event (replay path) logs too.
        let _ = lambda.invoke(event);
        drop(lambda);
        let text = std::fs::read_to_string(dir.join(format!("{function}.log"))).unwrap_or_default();
        assert!(text.contains("event handled"), "{function} logged its outcome (the grep below means something): {text}");
        let debug_lines = text.matches("\"DEBUG\"").count();
        eprintln!("{function}: {} log lines, {debug_lines} at DEBUG", text.lines().count());
        assert!(debug_lines > 0, "{function} logged at DEBUG (the level was really on): {text}");
        assert!(!text.contains("raw JSON event received"), "{function}: lambda_runtime logged the raw event");
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
    let new_td = service_td(&w, "auth").await;
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
    let stopped = crashed_secret_job(&w, "on-failure").await;
    // Fill both instances so that scaling out would also grow the Auto Scaling group.
    fill_instances(&w).await;
    // A crash loop of a freshly deployed revision with rollback on (the rollback path).
    tag_service(&w, "random", "autopilot:rollback", "on").await;
    let (_, v2) = deploy_random_v2(&w, &w.env()).await;

    proxy.reset();
    let config = Config { dry_run: true, ..w.config() };
    let env = || w.env_via(&proxy, config.clone());
    let deployer = autopilot_deployer::Deployer::new(env());
    let scaler = autopilot_scaler::Scaler::new(env());
    let recovery = autopilot_recovery::Recovery::new(env());

    let out = deployer.handle(push.clone()).await.expect("deployer dry run");
    assert_eq!(out["status"], "dry-run", "{out}");
    let out = deployer.handle(for_world(sample_event("schedule-reconcile.json"), &w)).await.expect("reconcile dry run");
    assert_eq!(out["status"], "dry-run", "{out}");
    let out = scaler.handle(random_cpu_high(&w)).await.expect("scaler dry run");
    assert_eq!((out["action"].as_str(), out["dryRun"].as_bool(), out["capacity"]["action"].as_str()), (Some("scaled"), Some(true), Some("grown")), "{out}");
    let out = scaler.handle(for_world(sample_event("ecs-service-action-placement-failure.json"), &w)).await.expect("placement failure dry run");
    assert_eq!(out["capacity"]["action"], "grown", "{out}");
    let out = recovery.handle(stopped).await.expect("recovery dry run");
    assert_eq!(out["dryRun"], true, "{out}");
    let mut last = Value::Null;
    for n in 0..3 {
        let crash = stopped_event(&w, "ecs-task-stopped-crash.json", &service_task_arn(&w, n), &v2, "service:random", Some(1));
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
