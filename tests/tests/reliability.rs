//! Exactly-once effects under faults and at-least-once, unordered delivery.
//!
//! Each test provisions the seed world, starts its own `aws_proxy.py` (its counters are per
//! process) and runs the three functions' scenarios through it:
//! - deployer: push auth:v2 → one new revision of auth, the service on it;
//! - scaler: random-cpu-high 85/90 over 70 → random 4 → 6;
//! - recovery: a crashed standalone task tagged `autopilot:restart` → exactly one re-run.
//!
//! Set-up (images, the job, the crash) goes straight to moto; only the functions talk through
//! the proxy, so faults hit exactly what the functions do. A failed invocation is delivered
//! again with the same event (EventBridge's retry), at most [`ATTEMPTS`] times. The final state
//! is read straight from moto and compared with the fault-free run.

use std::time::Instant;

use autopilot::config::Config;
use autopilot::runtime::Function;
use autopilot_deployer::Deployer;
use autopilot_recovery::Recovery;
use autopilot_scaler::Scaler;
use harness::cloudwatch::random_cpu_high;
use harness::ecr::{push_event, push_image};
use harness::ecs::{crashed_job, job_tasks, register_job};
use harness::proxy::AwsProxy;
use harness::World;
use serde_json::{json, Value};

/// EventBridge's redeliveries we allow before calling a scenario failed.
const ATTEMPTS: usize = 5;

// ------------------------------------------------------------------ the scenarios

struct Scenario {
    world: World,
    proxy: AwsProxy,
    v2: String,
    push_v2: Value,
    alarm: Value,
    stopped: Value,
}

async fn scenario() -> Scenario {
    let world = World::seed().await;
    let proxy = AwsProxy::start();
    // Only v2: with v3 in the repository too, the v2 event would take auth straight to v3 (a
    // burst coalesces, deployer push.rs). The shuffled test pushes v3 itself.
    let v2 = push_image(&world, "auth", "v2", "").await;
    // A standalone job tagged `autopilot:restart=on-failure:2`, run and crashed.
    let job = register_job(&world).await;
    let stopped = crashed_job(&world, &job, "on-failure:2").await;
    Scenario {
        push_v2: push_event(&world, "auth", Some("v2"), &v2),
        alarm: random_cpu_high(&world),
        stopped,
        v2,
        world,
        proxy,
    }
}

struct Functions {
    deployer: Deployer,
    scaler: Scaler,
    recovery: Recovery,
}

impl Scenario {
    /// The functions, with every AWS call (state table and SNS included) through the proxy.
    fn functions(&self) -> Functions {
        self.functions_with(self.world.config())
    }

    fn functions_with(&self, config: Config) -> Functions {
        let env = || self.world.env_via(&self.proxy, config.clone());
        Functions { deployer: Deployer::new(env()), scaler: Scaler::new(env()), recovery: Recovery::new(env()) }
    }
}

/// What one delivery chain did: the result of every attempt.
#[derive(Debug)]
struct Delivery {
    attempts: Vec<Result<Value, (String, bool)>>,
}

impl Delivery {
    fn succeeded(&self) -> bool {
        self.attempts.last().is_some_and(Result::is_ok)
    }
    fn summary(&self) -> String {
        self.attempts
            .iter()
            .map(|a| match a {
                Ok(v) => format!("ok({})", v.get("status").or(v.get("action")).unwrap_or(&Value::Null)),
                Err((e, retryable)) => format!("err(retryable={retryable}: {e})"),
            })
            .collect::<Vec<_>>()
            .join(" → ")
    }
}

/// Deliver one event until an invocation succeeds (EventBridge retries failed invocations).
async fn deliver<F: Function>(f: &F, event: &Value, max: usize) -> Delivery {
    let mut attempts = Vec::new();
    for _ in 0..max {
        match f.handle(event.clone()).await {
            Ok(v) => {
                attempts.push(Ok(v));
                break;
            }
            Err(e) => attempts.push(Err((e.to_string(), e.retryable()))),
        }
    }
    Delivery { attempts }
}

/// The three scenarios, each delivered until it succeeds.
async fn run_all(s: &Scenario, f: &Functions) -> [Delivery; 3] {
    deliver_all(s, f, ATTEMPTS).await
}

/// The three scenarios, each delivered until it succeeds or `max` times.
async fn deliver_all(s: &Scenario, f: &Functions, max: usize) -> [Delivery; 3] {
    [deliver(&f.deployer, &s.push_v2, max).await, deliver(&f.scaler, &s.alarm, max).await, deliver(&f.recovery, &s.stopped, max).await]
}

// ------------------------------------------------------------------ the observed state

/// The state the scenarios change, read from moto; account-specific parts removed.
#[derive(Debug, Clone, PartialEq)]
struct Snapshot {
    /// Revision the auth service runs and that revision's image (`@digest` part).
    auth_service: (String, String),
    /// Images of every auth revision, in revision order (duplicates = a digest registered twice).
    auth_revisions: Vec<String>,
    random_desired: i32,
    auth_desired: i32,
    random_revisions: usize,
    /// Tasks of the job's family (moto lists STOPPED ones too): the original + re-runs.
    job_tasks: usize,
    /// Subjects of every notification in the inbox, sorted.
    notifications: Vec<String>,
}

fn image_id(image: &str) -> String {
    image.rsplit_once('@').map(|(_, d)| d.to_string()).unwrap_or_else(|| image.rsplit('/').next().unwrap_or(image).to_string())
}

async fn snapshot(w: &World) -> Snapshot {
    let ecs = w.ecs();
    let svcs = ecs.describe_services().cluster("stage01").services("auth").services("random").send().await.expect("describe services");
    let svc = |name: &str| svcs.services().iter().find(|s| s.service_name() == Some(name)).cloned().expect("service");
    let image_of = |td: String| {
        let ecs = ecs.clone();
        async move {
            let out = ecs.describe_task_definition().task_definition(&td).send().await.expect("describe td");
            image_id(out.task_definition().unwrap().container_definitions()[0].image().unwrap())
        }
    };
    let auth_td = svc("auth").task_definition().unwrap().to_string();
    let auth_service = (auth_td.rsplit('/').next().unwrap().to_string(), image_of(auth_td.clone()).await);
    let mut auth_revisions = Vec::new();
    let arns = ecs.list_task_definitions().family_prefix("auth").send().await.expect("list tds").task_definition_arns().to_vec();
    for arn in arns {
        auth_revisions.push(image_of(arn).await);
    }
    let random_revisions = ecs.list_task_definitions().family_prefix("random").send().await.unwrap().task_definition_arns().len();
    let job_tasks = job_tasks(w).await;
    let mut notifications: Vec<String> = w.notifications().await.into_iter().map(|(s, _)| s).collect();
    notifications.sort();
    Snapshot {
        auth_service,
        auth_revisions,
        random_desired: svc("random").desired_count(),
        auth_desired: svc("auth").desired_count(),
        random_revisions,
        job_tasks,
        notifications,
    }
}

fn short(d: &str) -> String {
    autopilot_deployer::plan::short_digest(d)
}

/// The fault-free run's state (checked by `fault_free_run_is_the_baseline`).
fn expected(s: &Scenario) -> Snapshot {
    Snapshot {
        auth_service: ("auth:2".into(), s.v2.clone()),
        auth_revisions: vec!["auth:v1".into(), s.v2.clone()],
        random_desired: 6,
        auth_desired: 2,
        random_revisions: 1,
        job_tasks: 2,
        notifications: {
            let mut n = vec![
                format!("auth: deploying auth:2 (v2, {})", short(&s.v2)),
                "random 4 -> 6 (alarm random-cpu-high: 87.5 > 70 for 2 datapoints; step +2)".to_string(),
                RERUN_SUBJECT.to_string(),
            ];
            n.sort();
            n
        },
    }
}

const RERUN_SUBJECT: &str = "stage01/nightly-report: task of nightly-report:1 crashed (exit 1), re-run 1 of 2";

fn report(case: &str, deliveries: &[Delivery], started: Instant, proxy: &AwsProxy) {
    let stats = proxy.stats();
    let t = &stats["totals"];
    eprintln!(
        "[{case}] {:.1}s; deployer: {}; scaler: {}; recovery: {}; proxy totals: calls {} faults {} throttled {} dropped {}",
        started.elapsed().as_secs_f64(),
        deliveries[0].summary(),
        deliveries[1].summary(),
        deliveries[2].summary(),
        t["calls"],
        t["faults"],
        t["throttled"],
        t["dropped"]
    );
}

fn assert_converged(case: &str, deliveries: &[Delivery]) {
    for (name, d) in ["deployer", "scaler", "recovery"].iter().zip(deliveries) {
        assert!(d.succeeded(), "[{case}] {name} did not converge in {ATTEMPTS} deliveries: {}", d.summary());
        for a in &d.attempts {
            if let Err((e, retryable)) = a {
                assert!(*retryable, "[{case}] {name} failed with a non-retryable error under transient faults: {e}");
            }
        }
    }
}

// ------------------------------------------------------------------ the matrix

/// Run the three scenarios with the proxy's faults set to `faults`, report them as `case`, then
/// calm the proxy (counters kept) so that reading the outcome suffers no fault.
async fn run_under(s: &Scenario, case: &str, faults: Value) -> [Delivery; 3] {
    s.proxy.configure(faults);
    let started = Instant::now();
    let d = run_all(s, &s.functions()).await;
    report(case, &d, started, &s.proxy);
    s.proxy.calm();
    d
}

/// The scenarios on a fresh world with half the answers of `drops_for` lost (seeded by `seed`):
/// at least one answer of `action` was lost, and the scenarios still reach the fault-free state.
async fn lost_answers_converge(case: &str, seed: u64, drops_for: &str, action: &str) {
    let s = scenario().await;
    let d = run_under(&s, case, json!({"drop_rate": 0.5, "seed": seed, "drops_for": [drops_for]})).await;
    assert!(s.proxy.count(action, "dropped") >= 1, "drops happened: {}", s.proxy.stats()["actions"]);
    assert_reaches_the_baseline(&s, case, &d).await;
}

/// Once AWS has recovered (the proxy calmed), EventBridge's redelivery of each scenario until it
/// succeeds, reported as `case`; they must converge, and the state they leave is returned.
async fn redeliver(s: &Scenario, f: &Functions, case: &str) -> Snapshot {
    s.proxy.calm();
    let started = Instant::now();
    let again = run_all(s, f).await;
    report(case, &again, started, &s.proxy);
    assert_converged("redelivery", &again);
    snapshot(&s.world).await
}

/// Every scenario converged with retryable failures only, to the fault-free run's state.
async fn assert_reaches_the_baseline(s: &Scenario, case: &str, deliveries: &[Delivery]) {
    assert_converged(case, deliveries);
    assert_eq!(snapshot(&s.world).await, expected(s));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_free_run_is_the_baseline() {
    let s = scenario().await;
    let started = Instant::now();
    let d = run_all(&s, &s.functions()).await;
    report("fault-free", &d, started, &s.proxy);
    for x in &d {
        assert_eq!(x.attempts.len(), 1, "{}", x.summary());
    }
    assert_converged("fault-free", &d);
    assert_eq!(snapshot(&s.world).await, expected(&s));
    assert!(s.proxy.count("ecs:RegisterTaskDefinition", "forwarded") == 1, "{}", s.proxy.stats()["actions"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_and_5xx_on_20_percent_of_calls_converge_to_the_fault_free_state() {
    let s = scenario().await;
    // Every call the functions make (ECS, ECR, CloudWatch, Auto Scaling, DynamoDB, SNS).
    let d = run_under(&s, "faults 20%", json!({"fault_rate": 0.2, "seed": 20, "fault_kinds": ["throttle", "500", "503"]})).await;
    assert!(s.proxy.stats()["totals"]["faults"].as_u64().unwrap() >= 5, "the faults happened: {}", s.proxy.stats()["totals"]);
    assert_reaches_the_baseline(&s, "faults 20%", &d).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_responses_of_service_updates_and_run_task_converge_to_the_fault_free_state() {
    let s = scenario().await;
    // The change reaches moto, the answer is lost; the SDK retries the same request. Seed 14
    // drops the first answer of the deployer's and of the scaler's UpdateService and of
    // recovery's RunTask (each retry gets through).
    let d = run_under(&s, "drops UpdateService/RunTask", json!({"drop_rate": 0.5, "seed": 14, "drops_for": ["ecs:UpdateService", "ecs:RunTask", "@mutating:autoscaling"]})).await;
    assert_eq!((s.proxy.count("ecs:UpdateService", "dropped"), s.proxy.count("ecs:RunTask", "dropped")), (2, 1), "{}", s.proxy.stats()["actions"]);
    assert_reaches_the_baseline(&s, "drops UpdateService/RunTask", &d).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_response_of_register_task_definition_registers_one_revision() {
    let s = scenario().await;
    // Seed 1: the first RegisterTaskDefinition answer is lost, the SDK's retry gets through.
    let d = run_under(&s, "drops RegisterTaskDefinition", json!({"drop_rate": 0.5, "seed": 1, "drops_for": ["ecs:RegisterTaskDefinition"]})).await;
    assert_eq!(s.proxy.count("ecs:RegisterTaskDefinition", "dropped"), 1, "{}", s.proxy.stats()["actions"]);
    assert_reaches_the_baseline(&s, "drops RegisterTaskDefinition", &d).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_responses_of_state_table_writes_converge_to_the_fault_free_state() {
    // Seed 5: the first state-table write (the deployer's event claim) loses its answer.
    lost_answers_converge("drops dynamodb", 5, "@mutating:dynamodb", "dynamodb:PutItem").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_responses_of_notifications_send_each_notification_once() {
    // Seed 3: the first Publish answer (the deployer's) is lost, the SDK's retry gets through.
    lost_answers_converge("drops sns", 3, "sns:Publish", "sns:Publish").await;
}

/// Every attempt of every ECS / Auto Scaling change fails: the invocation fails loudly and
/// retryably (EventBridge retries, the DLQ catches what never succeeds); once AWS recovers, the
/// redelivery converges.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exhausted_retries_fail_loudly_and_a_later_delivery_converges() {
    let s = scenario().await;
    let f = s.functions();
    s.proxy.configure(json!({"fault_rate": 1.0, "seed": 1, "faults_for": ["@mutating:ecs", "@mutating:autoscaling"]}));
    let first = deliver_all(&s, &f, 1).await;
    for (name, d) in ["deployer", "scaler", "recovery"].iter().zip(&first) {
        match &d.attempts[0] {
            Ok(v) => panic!("{name} succeeded although every change failed: {v}"),
            Err((e, retryable)) => assert!(*retryable, "{name}: a throttled/5xx change must fail retryably: {e}"),
        }
    }
    // The SDK tried each change 6 times before giving up.
    assert_eq!(s.proxy.count("ecs:RegisterTaskDefinition", "faults"), 6);
    assert_eq!(s.proxy.count("ecs:RunTask", "faults"), 6);
    assert_eq!(s.proxy.count("ecs:UpdateService", "faults"), 6);
    let got = redeliver(&s, &f, "exhausted faults, then redelivery").await;
    // A retryable failure is not announced: the redelivery may undo it, and the DLQ alarm
    // reports the deliveries that never succeed.
    assert!(!got.notifications.iter().any(|n| n.contains("deploy failed")), "{:?}", got.notifications);
    assert_eq!(got, expected(&s));
}

/// Every attempt of every ECS change reaches moto and every answer is lost: the invocation
/// fails, though the change happened each time. The redelivery must not apply it again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exhausted_lost_responses_then_redelivery_apply_each_change_once() {
    let s = scenario().await;
    let f = s.functions();
    s.proxy.configure(json!({"drop_rate": 1.0, "seed": 1, "drops_for": ["ecs:RegisterTaskDefinition", "ecs:UpdateService", "ecs:RunTask"]}));
    let first = deliver_all(&s, &f, 1).await;
    for (name, d) in ["deployer", "scaler", "recovery"].iter().zip(&first) {
        // The scaler re-reads the service after a failed UpdateService and finds the new count:
        // the change landed, so it may rightly report success.
        let ok_scaled = *name == "scaler" && matches!(&d.attempts[0], Ok(v) if v["action"] == "scaled");
        assert!(ok_scaled || matches!(&d.attempts[0], Err((_, true))), "{name}: {}", d.summary());
    }
    let got = redeliver(&s, &f, "exhausted drops, then redelivery").await;
    let want = expected(&s);
    assert_eq!((got.auth_service.1.clone(), got.auth_revisions.iter().filter(|i| **i == s.v2).count()), (s.v2.clone(), 1), "one revision per digest: {got:?}");
    assert_eq!(got.random_desired, 6, "no double scaling: {got:?}");
    assert_eq!(got.job_tasks, 2, "one re-run: {got:?}");
    assert_eq!(got.random_desired, want.random_desired);
}

// ------------------------------------------------------------------ delivery: duplicates, order

/// A tiny deterministic shuffle (xorshift64*), so the order is the same on every run.
fn shuffle<T>(items: &mut [T], mut seed: u64) {
    for i in (1..items.len()).rev() {
        seed ^= seed >> 12;
        seed ^= seed << 25;
        seed ^= seed >> 27;
        let r = seed.wrapping_mul(0x2545_f491_4f6c_dd1d);
        items.swap(i, (r % (i as u64 + 1)) as usize);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_deliveries_in_shuffled_order_give_the_in_order_state() {
    let s = scenario().await;
    let f = s.functions();
    let v3 = push_image(&s.world, "auth", "v3", "").await;
    let push_v3 = push_event(&s.world, "auth", Some("v3"), &v3);
    // Each event three times: twice as the same delivery (same id) and once re-published
    // (a new id, same content), everything interleaved in a seeded random order.
    let mut deliveries: Vec<(&str, Value)> = Vec::new();
    for (who, e) in [("deployer", &s.push_v2), ("deployer", &push_v3), ("scaler", &s.alarm), ("recovery", &s.stopped)] {
        let mut copy = e.clone();
        copy["id"] = json!(format!("{}-republished", e["id"].as_str().unwrap()));
        deliveries.extend([(who, e.clone()), (who, e.clone()), (who, copy)]);
    }
    shuffle(&mut deliveries, 0x5eed);
    let order: Vec<String> = deliveries.iter().map(|(w, e)| format!("{w}:{}", e["detail"]["image-tag"].as_str().unwrap_or("-"))).collect();
    for (who, e) in &deliveries {
        let d = match *who {
            "deployer" => deliver(&f.deployer, e, ATTEMPTS).await,
            "scaler" => deliver(&f.scaler, e, ATTEMPTS).await,
            _ => deliver(&f.recovery, e, ATTEMPTS).await,
        };
        assert!(d.succeeded(), "{who}: {}", d.summary());
    }
    let got = snapshot(&s.world).await;
    eprintln!("[shuffled] order {order:?} → {got:?}");
    // In order (v2, v3) the service ends on v3 with one revision per digest; shuffled, v2 may
    // never be registered (it is older than the running v3) but nothing else may differ.
    assert_eq!(got.auth_service.1, v3, "the service runs the newest image: {got:?}");
    assert_eq!(got.auth_revisions.iter().filter(|i| **i == v3).count(), 1, "v3 registered once: {got:?}");
    assert!(got.auth_revisions.iter().filter(|i| **i == s.v2).count() <= 1, "v2 registered at most once: {got:?}");
    assert_eq!((got.random_desired, got.auth_desired, got.job_tasks), (6, 2, 2), "{got:?}");
    let count = |needle: &str| got.notifications.iter().filter(|n| n.contains(needle)).count();
    assert_eq!(count(&format!("(v3, {})", short(&v3))), 1, "{:?}", got.notifications);
    assert!(count(&format!("(v2, {})", short(&s.v2))) <= 1, "{:?}", got.notifications);
    assert_eq!(count("random 4 -> 6"), 1, "{:?}", got.notifications);
    assert_eq!(count(RERUN_SUBJECT), 1, "{:?}", got.notifications);
    assert_eq!(got.notifications.len(), 2 + count(&format!("(v2, {})", short(&s.v2))) + 1, "{:?}", got.notifications);
}
