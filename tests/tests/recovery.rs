//! The recovery function on the seed world (moto): re-runs of failed standalone tasks, crash-loop
//! rollbacks, ELB health notifications, debouncing, silence on normal stops, dry run, no leaks.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use autopilot::config::Config;
use autopilot::runtime::Function;
use autopilot_recovery::Recovery;
use aws_sdk_ecs::types::TaskField;
use harness::ecs::{
    crashed_job, deploy_random_v2, fill_instances, free_instances, job_container, job_tasks, log_router, register, register_job, register_job_with, register_job_with_sidecar, run_job, service,
    service_task_arn, stop_task, stopped_event, tag_service, JOB_ENV_SECRET, OVERRIDE_SECRET,
};
use harness::proxy::AwsProxy;
use harness::{for_world, sample_event, World};
use serde_json::{json, Value};

fn recovery(world: &World) -> Recovery {
    recovery_with(world, world.config())
}

/// The function under test. Its DescribeTasks and RunTask answers parse because the suite's proxy
/// corrects moto's task containers (tests/proxy/moto_compat.py).
fn recovery_with(world: &World, config: Config) -> Recovery {
    Recovery::new(world.env_with(config))
}

/// A clock the test moves by hand.
fn manual_clock(start: u64) -> (Arc<AtomicU64>, autopilot_recovery::Clock) {
    let now = Arc::new(AtomicU64::new(start));
    let reader = now.clone();
    (now, Arc::new(move || reader.load(Ordering::SeqCst)))
}

async fn describe_task(world: &World, arn: &str) -> aws_sdk_ecs::types::Task {
    let out = world.ecs().describe_tasks().cluster("stage01").tasks(arn).include(TaskField::Tags).send().await.expect("describe task");
    out.tasks().first().expect("task described").clone()
}

fn assert_no_secrets(world: &World, notes: &[(String, Value)]) {
    let mut secrets = world.secret_values();
    secrets.extend([OVERRIDE_SECRET.to_string(), JOB_ENV_SECRET.to_string()]);
    for (subject, body) in notes {
        let text = format!("{subject}\n{body}");
        for s in &secrets {
            assert!(!text.contains(s.as_str()), "notification leaks {s}: {text}");
        }
        assert!(!subject.contains('\n') && !subject.is_empty() && subject.len() <= 100, "subject is one line: {subject:?}");
        assert_eq!(body["version"], "1.0", "chatbot body: {body}");
        assert_eq!(body["source"], "custom");
    }
}

fn tag(task: &aws_sdk_ecs::types::Task, key: &str) -> Option<String> {
    task.tags().iter().find(|t| t.key() == Some(key)).and_then(|t| t.value()).map(str::to_string)
}

#[tokio::test]
async fn crashed_standalone_task_is_rerun_once_with_its_overrides_and_tags() {
    let world = World::seed().await;
    let td = register_job(&world).await;
    let original = run_job(&world, &td, &[("autopilot:restart", "on-failure:2"), ("team", "data")]).await;
    let original_arn = original.task_arn().unwrap().to_string();
    stop_task(&world, &original_arn).await;
    let event = stopped_event(&world, "ecs-task-stopped-crash.json", &original_arn, &td, "batch:reports", Some(1));

    let f = recovery(&world);
    let outcome = f.handle(event.clone()).await.expect("handled");
    assert_eq!(outcome["class"], "crash", "{outcome}");
    assert_eq!(outcome["action"], "restarted", "{outcome}");
    let new_arn = outcome["newTask"].as_str().expect("newTask").to_string();
    assert_ne!(new_arn, original_arn);

    let rerun = describe_task(&world, &new_arn).await;
    assert_eq!(rerun.task_definition_arn(), Some(td.as_str()));
    assert_eq!(rerun.group(), Some("batch:reports"));
    assert_eq!(rerun.started_by(), Some("events-rule/nightly"));
    assert_eq!(tag(&rerun, "autopilot:restart").as_deref(), Some("on-failure:2"));
    assert_eq!(tag(&rerun, "team").as_deref(), Some("data"));
    let original_id = original_arn.rsplit('/').next().unwrap();
    assert_eq!(tag(&rerun, "autopilot:lineage").as_deref(), Some(original_id));
    let o = rerun.overrides().expect("overrides carried over");
    let env = o.container_overrides()[0].environment();
    assert_eq!(env[0].value(), Some(OVERRIDE_SECRET), "the override reaches the re-run");
    assert_eq!(o.container_overrides()[0].command(), ["php", "/var/www/bin/report.php", "--nightly"]);
    assert_eq!(job_tasks(&world).await, 2);

    // The same delivery again, and the same task in another delivery: nothing more starts.
    let replay = f.handle(event.clone()).await.expect("replay");
    assert_eq!(replay["status"], "replay", "{replay}");
    let again = f.handle(for_world(event, &world)).await.expect("second delivery");
    assert_eq!(again["action"], "none", "{again}");
    assert_eq!(again["newTask"], json!(new_arn));
    assert_eq!(job_tasks(&world).await, 2, "no second re-run");

    let notes = world.notifications().await;
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert!(notes[0].0.contains("nightly-report") && notes[0].0.contains("re-run 1 of 2"), "{}", notes[0].0);
    assert_eq!(notes[0].1["metadata"]["additionalContext"]["newTask"], json!(new_arn));
    assert_eq!(notes[0].1["metadata"]["additionalContext"]["exitCode"], "1", "additionalContext values are strings (custom-notification schema)");
    assert_no_secrets(&world, &notes);

    // Not tagged: left alone, silently.
    let untagged = run_job(&world, &td, &[("team", "data")]).await;
    let arn = untagged.task_arn().unwrap().to_string();
    stop_task(&world, &arn).await;
    let out = f.handle(stopped_event(&world, "ecs-task-stopped-crash.json", &arn, &td, "batch:reports", Some(2))).await.unwrap();
    assert_eq!(out["action"], "none", "{out}");
    assert_eq!(job_tasks(&world).await, 3);
    assert!(world.notifications().await.is_empty());
}

#[tokio::test]
async fn restart_limit_holds_across_a_chain_of_reruns() {
    let world = World::seed().await;
    let td = register_job(&world).await;
    let f = recovery(&world);
    let mut arn = run_job(&world, &td, &[("autopilot:restart", "on-failure:2")]).await.task_arn().unwrap().to_string();
    let mut outcomes = Vec::new();
    for _ in 0..3 {
        stop_task(&world, &arn).await;
        let out = f.handle(stopped_event(&world, "ecs-task-stopped-crash.json", &arn, &td, "batch:reports", Some(1))).await.expect("handled");
        if let Some(next) = out["newTask"].as_str() {
            arn = next.to_string();
        }
        outcomes.push(out);
    }
    let actions: Vec<&str> = outcomes.iter().map(|o| o["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["restarted", "restarted", "notified"], "{outcomes:?}");
    assert_eq!(outcomes[1]["restart"], 2);
    assert_eq!(job_tasks(&world).await, 3, "the original and two re-runs");

    let notes = world.notifications().await;
    assert_eq!(notes.len(), 2, "first re-run (the second is folded into the incident) + limit: {notes:?}");
    assert!(notes[1].0.contains("restart limit 2 reached"), "{}", notes[1].0);
    assert_eq!(notes[1].1["metadata"]["eventType"], "recovery.restart-limit");
    assert_no_secrets(&world, &notes);
}

#[tokio::test]
async fn crash_loop_after_a_deploy_rolls_back_only_with_the_rollback_tag() {
    let world = World::seed().await;
    let f = recovery(&world);
    let (v1, v2) = deploy_random_v2(&world, &f.env).await;
    let crash = |n: usize| stopped_event(&world, "ecs-task-stopped-crash.json", &service_task_arn(&world, n), &v2, "service:random", Some(1));

    // random has no autopilot:rollback tag in the seed: a crash loop is reported, not acted on.
    let mut last = Value::Null;
    for n in 0..3 {
        last = f.handle(crash(n)).await.expect("handled");
    }
    assert_eq!(last["crashLoop"], true, "{last}");
    assert!(last["reason"].as_str().unwrap().contains("autopilot:rollback=on"), "{last}");
    assert!(service(&world, "random").await.task_definition().unwrap().ends_with("random:2"));

    tag_service(&world, "random", "autopilot:rollback", "on").await;
    let out = f.handle(crash(3)).await.expect("handled");
    assert_eq!(out["action"], "rolled-back", "{out}");
    assert_eq!(out["rollbackTo"], "random:1");
    let svc = service(&world, "random").await;
    assert_eq!(svc.task_definition(), Some(v1.as_str()));
    assert_eq!(svc.desired_count(), 4, "desiredCount untouched");
    let (pk, sk) = autopilot::keys::deployment("stage01", "random");
    let record = f.env.state.get(&pk, &sk).await.unwrap().expect("deployment record");
    assert_eq!(record.data["taskDefinition"], json!(v1));
    assert_eq!(record.data["previous"], json!(v2));

    // More tasks of the bad revision: rolled back once only.
    let out = f.handle(crash(4)).await.expect("handled");
    assert_ne!(out["action"], "rolled-back", "{out}");
    assert_eq!(service(&world, "random").await.task_definition(), Some(v1.as_str()));

    let notes = world.notifications().await;
    let rollbacks: Vec<_> = notes.iter().filter(|(s, _)| s.contains("rolled back to random:1")).collect();
    assert_eq!(rollbacks.len(), 1, "{notes:?}");
    assert_eq!(rollbacks[0].1["metadata"]["eventType"], "recovery.rollback");
    assert_eq!(notes.len(), 2, "the incident's first message and the rollback: {notes:?}");
    assert_no_secrets(&world, &notes);
}

#[tokio::test]
async fn elb_health_check_failure_reports_the_target_group_health() {
    let world = World::seed().await;
    let tg = world.str("/target_groups/random");
    let mut event = for_world(sample_event("ecs-task-stopped-elb-health.json"), &world);
    event["detail"]["stoppedReason"] = json!(format!("Task failed ELB health checks in (target-group {tg})"));
    event["detail"]["taskDefinitionArn"] = json!(world.str("/task_definitions/random"));
    let out = recovery(&world).handle(event).await.expect("handled");
    assert_eq!(out["class"], "elb-health-check", "{out}");
    assert_eq!(out["action"], "notified", "{out}");
    let notes = world.notifications().await;
    assert_eq!(notes.len(), 1, "{notes:?}");
    let ctx = &notes[0].1["metadata"]["additionalContext"];
    assert_eq!(ctx["targetGroup"], json!(tg));
    assert_eq!(ctx["healthCheckPath"], "/random/");
    // moto's targets are always healthy; the unhealthy reason is covered with mocks in
    // functions/recovery (elb.rs and the handler test in incident.rs).
    assert!(ctx["targetHealth"].as_str().unwrap().ends_with("on /random/"), "{ctx}");
    assert!(notes[0].1["content"]["description"].as_str().unwrap().contains("Target health:"), "{}", notes[0].1);
    assert_no_secrets(&world, &notes);
}

#[tokio::test]
async fn a_burst_of_failed_tasks_is_one_notification_and_one_summary() {
    let world = World::seed().await;
    let start = autopilot::state::now_epoch();
    let (clock, reader) = manual_clock(start);
    let f = recovery(&world).with_clock(reader);
    let td = world.str("/task_definitions/random");
    for n in 0..50 {
        clock.store(start + n as u64 * 10, Ordering::SeqCst);
        let out = f.handle(stopped_event(&world, "ecs-task-stopped-crash.json", &service_task_arn(&world, n), &td, "service:random", Some(1))).await.expect("handled");
        assert_eq!(out["action"], if n == 0 { "notified" } else { "none" }, "task {n}: {out}");
    }
    let notes = world.notifications().await;
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert!(notes[0].0.contains("random") && notes[0].0.contains("crashed"), "{}", notes[0].0);
    let thread = notes[0].1["metadata"]["threadId"].as_str().expect("the incident's threadId").to_string();

    // The incident goes on after the window: one summary of the 49 folded tasks and this one.
    clock.store(start + 700, Ordering::SeqCst);
    let out = f.handle(stopped_event(&world, "ecs-task-stopped-crash.json", &service_task_arn(&world, 50), &td, "service:random", Some(1))).await.unwrap();
    assert_eq!(out["action"], "notified", "{out}");
    let notes = world.notifications().await;
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert_eq!(notes[0].0, "stage01/random: 50 more tasks of random:1 crashed in the last 12 min");
    assert_eq!(notes[0].1["metadata"]["eventType"], "recovery.summary");
    assert_eq!(notes[0].1["metadata"]["additionalContext"]["crashLoop"], "true");
    // Issue 17 item 10: one incident, one chat thread (custom notifications' threadId,
    // https://docs.aws.amazon.com/chatbot/latest/adminguide/custom-notifs.html); a crash loop
    // nobody rolled back says what to look at.
    assert_eq!(notes[0].1["metadata"]["threadId"], thread.as_str(), "the summary answers in the first message's thread");
    assert_eq!(notes[0].1["content"]["nextSteps"][0], "aws ecs describe-services --region us-east-1 --cluster stage01 --services random".replace("us-east-1", &world.region), "{:#}", notes[0].1);
    assert_no_secrets(&world, &notes);
    assert_eq!(service(&world, "random").await.task_definition(), Some(td.as_str()), "no rollback without the tag");
}

/// Issue 17, item 6: the summary goes out when the incident's window closes, with the true count,
/// even if no other task stops (the summary schedule, rule `<stack>-recovery-summary`); exactly
/// once however often the schedule runs; and a task that stops after it starts a new incident
/// instead of summarising the same counts again.
#[tokio::test]
async fn the_schedule_summarises_a_closed_incident_window_once() {
    let world = World::seed().await;
    let start = autopilot::state::now_epoch();
    let (clock, reader) = manual_clock(start);
    let f = recovery(&world).with_clock(reader);
    let td = world.str("/task_definitions/random");
    for n in 0..20 {
        clock.store(start + n as u64 * 5, Ordering::SeqCst);
        let out = f.handle(stopped_event(&world, "ecs-task-stopped-crash.json", &service_task_arn(&world, n), &td, "service:random", Some(1))).await.expect("handled");
        assert_eq!(out["action"], if n == 0 { "notified" } else { "none" }, "task {n}: {out}");
    }
    let first = world.notifications().await;
    assert_eq!(first.len(), 1);
    let tick = || for_world(sample_event("schedule-recovery-summary.json"), &world);

    clock.store(start + 300, Ordering::SeqCst);
    let out = f.handle(tick()).await.unwrap();
    assert_eq!((out["status"].as_str(), out["open"].as_u64(), out["summarized"].as_u64()), (Some("summaries"), Some(1), Some(0)), "{out}");
    assert!(world.notifications().await.is_empty(), "the window is still open");

    clock.store(start + 660, Ordering::SeqCst);
    let out = f.handle(tick()).await.unwrap();
    assert_eq!((out["closed"].as_u64(), out["summarized"].as_u64()), (Some(1), Some(1)), "{out}");
    let notes = world.notifications().await;
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert_eq!(notes[0].0, "stage01/random: 19 more tasks of random:1 crashed in the last 11 min");
    assert_eq!(notes[0].1["metadata"]["eventType"], "recovery.summary");
    assert_eq!(notes[0].1["metadata"]["additionalContext"]["moreTasks"], "19", "additionalContext values are strings");
    assert_eq!(notes[0].1["metadata"]["additionalContext"]["service"], "random");
    assert!(first[0].1["metadata"]["threadId"].is_string());
    assert_eq!(notes[0].1["metadata"]["threadId"], first[0].1["metadata"]["threadId"], "in the incident's thread");

    let out = f.handle(tick()).await.unwrap();
    assert_eq!((out["closed"].as_u64(), out["summarized"].as_u64()), (Some(0), Some(0)), "told once: {out}");
    assert!(world.notifications().await.is_empty());

    // A task long after: a new incident's first message, not a second summary of the 19.
    clock.store(start + 700, Ordering::SeqCst);
    let out = f.handle(stopped_event(&world, "ecs-task-stopped-crash.json", &service_task_arn(&world, 20), &td, "service:random", Some(1))).await.unwrap();
    assert_eq!(out["action"], "notified", "{out}");
    let notes = world.notifications().await;
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert_eq!(notes[0].1["metadata"]["eventType"], "recovery.task-failed", "{notes:?}");
    assert_no_secrets(&world, &notes);

    // Another schedule's rule is not recovery's.
    let mut other = tick();
    other["resources"] = json!(["arn:aws:events:us-east-1:123456789012:rule/ecs-autopilot-scale-reevaluate"]);
    assert_eq!(f.handle(other).await.unwrap()["status"], "ignored");
}

#[tokio::test]
async fn normal_stops_are_silent() {
    let world = World::seed().await;
    let f = recovery(&world);
    for (file, class) in [
        ("ecs-task-stopped-scale-in.json", "scale-in"),
        ("ecs-task-stopped-deployment-replaced.json", "scale-in"),
        ("ecs-task-stopped-az-rebalancing.json", "az-rebalancing"),
        ("ecs-task-stopped-user.json", "user-stop"),
        ("ecs-task-stopped-exit0.json", "normal-exit"),
    ] {
        let out = f.handle(for_world(sample_event(file), &world)).await.expect("handled");
        assert_eq!(out["class"], class, "{file}: {out}");
        assert_eq!(out["action"], "none", "{file}: {out}");
    }
    let running = f.handle(for_world(sample_event("ecs-task-running.json"), &world)).await.unwrap();
    assert_eq!(running["status"], "ignored", "{running}");
    assert!(world.notifications().await.is_empty());
}

/// Issue 15 item 8: stops ECS makes on purpose are silent and never count towards a crash loop,
/// even of a revision the deployer just rolled out on a service tagged `autopilot:rollback=on`.
/// Availability Zone rebalancing: AWS documents its service events ("Track Amazon ECS Availability
/// Zone rebalancing", https://docs.aws.amazon.com/AmazonECS/latest/developerguide/track-service-rebalancing.html),
/// not the stopped task's stoppedReason (events/README.md). The old tasks of a blue/green
/// deployment: AWS documents no stoppedReason at all, so a ServiceSchedulerInitiated stop worded
/// otherwise (here: none) is silent too. Stop code InfrastructureHealth (ECS API TaskStopCode) is
/// infrastructure: one message per incident, no count. On main, every one of these stops with
/// exit 143 was a crash.
#[tokio::test]
async fn az_rebalancing_deployment_and_infrastructure_health_stops_never_make_a_crash_loop() {
    let world = World::seed().await;
    let env = world.env();
    let (_, v2) = deploy_random_v2(&world, &env).await;
    // Under the Runtime API: the recovery binary as the template configures it.
    let lambda = harness::lambda::LocalLambda::start("recovery", &world.lambda_env());
    tag_service(&world, "random", "autopilot:rollback", "on").await;
    let failures_key = autopilot_recovery::plan::revision_key("stage01", "random", &autopilot_recovery::plan::revision(&v2));
    let stop = |sample: &str, n: usize| stopped_event(&world, sample, &service_task_arn(&world, n), &v2, "service:random", Some(143));

    for n in 0..4 {
        let out = lambda.invoke(&stop("ecs-task-stopped-az-rebalancing.json", n)).unwrap();
        assert_eq!((out["class"].as_str(), out["action"].as_str()), (Some("az-rebalancing"), Some("none")), "{out}");
        assert!(out.get("crashLoop").is_none(), "{out}");

        let mut retired = stop("ecs-task-stopped-az-rebalancing.json", 10 + n);
        retired["detail"].as_object_mut().unwrap().remove("stoppedReason");
        let out = lambda.invoke(&retired).unwrap();
        assert_eq!((out["class"].as_str(), out["action"].as_str()), (Some("scale-in"), Some("none")), "{out}");
    }
    assert!(world.notifications().await.is_empty());

    let mut actions = Vec::new();
    for n in 20..24 {
        let out = lambda.invoke(&stop("ecs-task-stopped-infrastructure-health.json", n)).unwrap();
        assert_eq!(out["class"], "infrastructure", "{out}");
        assert_eq!(out["detail"], "stopped by infrastructure (infrastructure health)", "{out}");
        assert!(out.get("crashLoop").is_none(), "{out}");
        actions.push(out["action"].as_str().unwrap().to_string());
    }
    assert_eq!(actions, ["notified", "none", "none", "none"]);
    let notes = world.notifications().await;
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert!(notes[0].0.contains("infrastructure health") && notes[0].0.contains("replaced by ECS"), "{}", notes[0].0);
    assert_eq!(notes[0].1["metadata"]["additionalContext"]["stopCode"], "InfrastructureHealth");
    assert_no_secrets(&world, &notes);

    assert!(env.state.get("recovery#failures", &failures_key).await.unwrap().is_none(), "nothing counted towards a crash loop");
    assert_eq!(service(&world, "random").await.task_definition(), Some(v2.as_str()), "no rollback");
}

#[tokio::test]
async fn dry_run_decides_and_notifies_but_changes_nothing() {
    let world = World::seed().await;
    let config = Config { dry_run: true, ..world.config() };
    let f = recovery_with(&world, config);

    let td = register_job(&world).await;
    let arn = run_job(&world, &td, &[("autopilot:restart", "on-failure")]).await.task_arn().unwrap().to_string();
    stop_task(&world, &arn).await;
    let out = f.handle(stopped_event(&world, "ecs-task-stopped-crash.json", &arn, &td, "batch:reports", Some(1))).await.unwrap();
    assert_eq!(out["dryRun"], true, "{out}");
    assert!(out["reason"].as_str().unwrap().contains("would re-run"), "{out}");
    assert_eq!(job_tasks(&world).await, 1, "no RunTask in dry run");

    let (v1, v2) = deploy_random_v2(&world, &f.env).await;
    tag_service(&world, "random", "autopilot:rollback", "on").await;
    let mut last = Value::Null;
    for n in 0..3 {
        last = f.handle(stopped_event(&world, "ecs-task-stopped-crash.json", &service_task_arn(&world, n), &v2, "service:random", Some(1))).await.unwrap();
    }
    assert!(last["reason"].as_str().unwrap().contains("would roll the service back to random:1"), "{last}");
    assert_eq!(service(&world, "random").await.task_definition(), Some(v2.as_str()), "no UpdateService in dry run");
    assert_ne!(v1, v2);

    let notes = world.notifications().await;
    assert!(notes.iter().all(|(s, b)| s.starts_with("[dry run]") && b["metadata"]["additionalContext"]["dryRun"] == "true"), "{notes:?}");
    assert!(notes.iter().any(|(s, _)| s.contains("would roll back to random:1")), "{notes:?}");
    assert_no_secrets(&world, &notes);
}

/// Issue 14 item 6: a job whose app exited 0 and whose log router, `essential: false` in its task
/// definition, was killed with 137 as ECS stopped the task did not fail: no re-run, no message,
/// and for a service no crash-loop count. ECS's task events carry no `essential` flag (ECS "Task
/// state change events"): recovery reads it from the task definition (`essential` absent =
/// essential, ECS API reference `ContainerDefinition.essential`). On main every container counted:
/// each of these stops was a crash.
#[tokio::test]
async fn a_sidecar_killed_after_the_job_exited_0_is_not_a_failure() {
    let world = World::seed().await;
    let f = recovery(&world);
    let exits = |app: &str| json!([{"name": app, "exitCode": 0, "lastStatus": "STOPPED"}, {"name": "log-router", "exitCode": 137, "lastStatus": "STOPPED"}]);

    let td = register_job_with_sidecar(&world, Some(false)).await;
    let job = run_job(&world, &td, &[("autopilot:restart", "on-failure:2")]).await.task_arn().unwrap().to_string();
    stop_task(&world, &job).await;
    let mut event = stopped_event(&world, "ecs-task-stopped-exit0.json", &job, &td, "batch:reports", None);
    event["detail"]["containers"] = exits("nightly-report");
    let out = f.handle(event).await.expect("handled");
    assert_eq!((out["class"].as_str(), out["action"].as_str()), (Some("normal-exit"), Some("none")), "{out}");
    assert_eq!(job_tasks(&world).await, 1, "not re-run");

    // Three such stops of a service revision: no crash loop, nothing to say.
    let random = world.ecs().describe_task_definition().task_definition(world.str("/task_definitions/random")).send().await.expect("describe random:1");
    let app = random.task_definition().expect("random:1").container_definitions()[0].clone();
    let v2 = register(world.ecs().register_task_definition().family("random").container_definitions(app).container_definitions(log_router(&world, Some(false)))).await;
    for n in 0..3 {
        let mut event = stopped_event(&world, "ecs-task-stopped-exit0.json", &service_task_arn(&world, n), &v2, "service:random", None);
        event["detail"]["containers"] = exits("random");
        let out = f.handle(event).await.expect("handled");
        assert_eq!((out["class"].as_str(), out["action"].as_str()), (Some("normal-exit"), Some("none")), "{out}");
    }
    assert!(world.notifications().await.is_empty());

    // The same exits where the task definition leaves the sidecar essential (no flag): its 137
    // is the job's failure, and the job is re-run.
    let td = register_job_with_sidecar(&world, None).await;
    let job = run_job(&world, &td, &[("autopilot:restart", "on-failure:2")]).await.task_arn().unwrap().to_string();
    stop_task(&world, &job).await;
    let mut event = stopped_event(&world, "ecs-task-stopped-crash.json", &job, &td, "batch:reports", None);
    event["detail"]["containers"] = exits("nightly-report");
    let out = f.handle(event).await.expect("handled");
    assert_eq!((out["class"].as_str(), out["detail"].as_str(), out["action"].as_str()), (Some("crash"), Some("crashed (exit 137)"), Some("restarted")), "{out}");
    assert_eq!(job_tasks(&world).await, 3);
    let notes = world.notifications().await;
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert_no_secrets(&world, &notes);
}

/// Issue 14 item 7: ECS answered the re-run's RunTask and started nothing (no room on the
/// instances); a later delivery, once there is room, re-runs the task. The test bed's RunTask, as
/// ECS for a successful request ("Ensuring idempotency", ECS API reference), answers a repeated
/// clientToken with the first answer and starts nothing; for a failures answer it does the same,
/// the case ECS's documentation leaves open (tests/proxy/moto_compat.py). On main the retry sent
/// the same token and got the same empty answer back on every delivery.
#[tokio::test]
async fn a_rerun_ecs_could_not_place_is_placed_by_a_later_delivery() {
    let world = World::seed().await;
    let td = register_job_with(&world, job_container(&world).cpu(1024).build()).await;
    let stopped = crashed_job(&world, &td, "on-failure:2").await;
    fill_instances(&world).await;
    let f = recovery(&world);

    let err = f.handle(stopped.clone()).await.expect_err("no room: nothing started");
    assert!(err.retryable() && err.to_string().contains("NoTaskStarted"), "{err}");
    assert_eq!(job_tasks(&world).await, 1, "nothing started");

    free_instances(&world).await;
    // Lambda's retry of the same event.
    let out = f.handle(stopped).await.expect("placed this time");
    assert_eq!((out["action"].as_str(), out["restart"].as_u64()), (Some("restarted"), Some(1)), "{out}");
    let rerun = describe_task(&world, out["newTask"].as_str().unwrap()).await;
    assert_eq!(rerun.task_definition_arn(), Some(td.as_str()));
    assert_eq!(job_tasks(&world).await, 2, "the original and one re-run");
    let notes = world.notifications().await;
    assert_eq!(notes.len(), 1, "the re-run's message only (a retryable failure is not announced): {notes:?}");
    assert!(notes[0].0.contains("re-run 1 of 2"), "{}", notes[0].0);
}

/// Issue 14 item 7: every answer of the re-run's RunTask is lost (the task started); the next
/// delivery sends the same clientToken, so ECS answers with the task it started and starts no
/// second one.
#[tokio::test]
async fn a_lost_run_task_answer_starts_no_second_task() {
    let world = World::seed().await;
    let td = register_job(&world).await;
    let stopped = crashed_job(&world, &td, "on-failure:2").await;
    let proxy = AwsProxy::start();
    proxy.configure(json!({"drop_rate": 1.0, "seed": 1, "drops_for": ["ecs:RunTask"]}));
    let f = Recovery::new(world.env_via(&proxy, world.config()));

    let err = f.handle(stopped.clone()).await.expect_err("no answer came");
    assert!(err.retryable(), "{err}");
    assert!(proxy.count("ecs:RunTask", "dropped") >= 1, "{}", proxy.stats()["actions"]);
    assert_eq!(job_tasks(&world).await, 2, "ECS started the re-run all the same");

    proxy.calm();
    let out = f.handle(stopped).await.expect("the retry");
    assert_eq!(out["action"], "restarted", "{out}");
    let tasks = world.ecs().list_tasks().cluster("stage01").family("nightly-report").send().await.unwrap();
    assert!(tasks.task_arns().iter().any(|a| out["newTask"] == json!(a)), "the re-run ECS started is the one answered: {out}");
    assert_eq!(job_tasks(&world).await, 2, "no second re-run");
}

// awsvpc re-runs are tested with a mocked ECS in functions/recovery (standalone.rs): moto 5.2.1's
// RunTask with a networkConfiguration answers 500 ('NetworkInterface' object has no attribute
// 'private_dns_name'), so it cannot produce an awsvpc task.

/// The recovery binary under a local Lambda Runtime API, configured by environment variables
/// as the template configures it: a crash loop of a freshly deployed random:2 rolls back.
#[tokio::test(flavor = "multi_thread")]
async fn crash_loop_rollback_under_the_runtime_api() {
    let world = World::seed().await;
    let env = world.env();
    let (v1, v2) = deploy_random_v2(&world, &env).await;
    tag_service(&world, "random", "autopilot:rollback", "on").await;
    let lambda = harness::lambda::LocalLambda::start("recovery", &world.lambda_env());
    let mut last = Value::Null;
    for n in 0..3 {
        let event = stopped_event(&world, "ecs-task-stopped-crash.json", &service_task_arn(&world, n), &v2, "service:random", Some(1));
        last = lambda.invoke(&event).unwrap_or_else(|e| panic!("invocation {n} failed: {e}"));
    }
    assert_eq!(last["action"], "rolled-back", "{last}");
    assert_eq!(service(&world, "random").await.task_definition(), Some(v1.as_str()));
    let notes = world.notifications().await;
    assert!(notes.iter().any(|(s, _)| s == "stage01/random: crash loop of random:2, rolled back to random:1"), "{notes:?}");
    assert_no_secrets(&world, &notes);
}

/// Issue 15, item 9 (StopServiceDeployment, API reference: stopType ROLLBACK). random is a
/// BLUE_GREEN service whose deployment of random:2 is still in progress when its tasks crash: ECS
/// itself rolls it back (traffic goes back to the source revision), not an UpdateService that
/// would start another staged deployment from a half-shifted service. Under the Runtime API.
#[tokio::test]
async fn a_crash_loop_during_a_blue_green_deployment_is_rolled_back_by_ecs() {
    use harness::ecs::{deployment_record, show_deployment_configuration, show_rollout, show_service_deployments};
    let world = World::seed().await;
    let (_v1, v2) = deploy_random_v2(&world, &world.env()).await;
    let lambda = harness::lambda::LocalLambda::start("recovery", &world.lambda_env());
    tag_service(&world, "random", "autopilot:rollback", "on").await;
    show_deployment_configuration(&world, "random", Some(json!({"strategy": "BLUE_GREEN", "bakeTimeInMinutes": 5, "maximumPercent": 200, "minimumHealthyPercent": 100})));
    show_rollout(&world, "random", Some("IN_PROGRESS"), 1);
    let mut record = deployment_record(&world, "ecs-service-deployment-blue-green-successful.json");
    let arn = record["serviceDeploymentArn"].as_str().unwrap().replace("/auth/", "/random/");
    record["serviceDeploymentArn"] = json!(arn);
    record["serviceArn"] = json!(world.str("/services/random"));
    record["status"] = json!("IN_PROGRESS");
    record["lifecycleStage"] = json!("BAKE_TIME");
    show_service_deployments(&world, "random", vec![record]);

    let mut last = Value::Null;
    for n in 0..3 {
        last = lambda.invoke(&stopped_event(&world, "ecs-task-stopped-crash.json", &service_task_arn(&world, n), &v2, "service:random", Some(1))).unwrap_or_else(|e| panic!("invocation {n}: {e}"));
    }
    show_rollout(&world, "random", None, 0);
    show_deployment_configuration(&world, "random", None);
    assert_eq!(last["action"], "rolled-back", "{last}");
    assert!(service(&world, "random").await.task_definition().unwrap().ends_with("random:2"), "no UpdateService: ECS shifts traffic back itself");
    let listed = world.ecs().list_service_deployments().cluster("stage01").service("random").send().await.unwrap();
    assert_eq!(listed.service_deployments()[0].status().map(|s| s.as_str()), Some("ROLLBACK_REQUESTED"), "StopServiceDeployment(ROLLBACK) was sent");
    let notes = world.notifications().await;
    let rollback = notes.iter().find(|(_, b)| b["metadata"]["eventType"] == "recovery.rollback").expect("the rollback is told");
    assert_eq!(rollback.1["metadata"]["additionalContext"]["serviceDeployment"], json!(arn));
    assert!(rollback.1["content"]["description"].as_str().unwrap().contains("blue/green deployment in progress was rolled back by ECS"), "{}", rollback.1);
}

/// Issue 17, item 7: with `RecoveryNotify=opted-in`, failed tasks of a service that carries none
/// of autopilot's opt-in tags tell no one (an incident across hundreds of services stays quiet
/// but for the services a team opted in); opted-in services are told as before. `all` (the
/// default) tells about every service.
#[tokio::test]
async fn recovery_notify_opted_in_tells_only_about_opted_in_services() {
    let world = World::seed().await;
    let td = world.str("/task_definitions/random");
    harness::ecs::create_service(&world, "plain", &td, &[("team", "payments")], None).await;
    let crash = |n: usize, group: &str| stopped_event(&world, "ecs-task-stopped-crash.json", &service_task_arn(&world, n), &td, group, Some(1));
    let opted_in = recovery_with(&world, Config { recovery_notify_opted_in: true, ..world.config() });
    for n in 0..3 {
        let out = opted_in.handle(crash(n, "service:plain")).await.expect("handled");
        assert_eq!(out["action"], "none", "{out}");
    }
    assert!(world.notifications().await.is_empty(), "no one is told about a service not opted in");
    let out = opted_in.handle(crash(10, "service:random")).await.expect("handled");
    assert_eq!(out["action"], "notified", "random is opted in (autopilot:deploy): {out}");
    assert_eq!(world.notifications().await.len(), 1);

    let all = recovery(&world);
    let out = all.handle(crash(20, "service:plain")).await.expect("handled");
    assert_eq!(out["action"], "notified", "RecoveryNotify=all (the default) tells about every service: {out}");
}
