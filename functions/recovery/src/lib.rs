//! The `recovery` function (see DESIGN.md): classify every stopped task, re-run failed standalone
//! tasks that opted in (`autopilot:restart`), roll crash-looping service revisions back (opt-in
//! `autopilot:rollback=on`), and tell people once per incident.
//!
//! State-table records (pk / sk):
//! - `recovery#restart` / stopped task ARN: the claim that re-runs a task at most once.
//! - `recovery#lineage` / `CLUSTER/LINEAGE`: restarts made for a chain of re-runs.
//! - `recovery#failures` / `CLUSTER/SERVICE#FAMILY:REV`: failed tasks in the sliding window.
//! - `recovery#rollback` / `CLUSTER/SERVICE#FAMILY:REV`: the claim that rolls a revision back once.
//! - `recovery#incident` / `CLUSTER/SCOPE#CLASS#FAMILY:REV`: notification debouncing.
//! - `notify` / `restart-limit#…`, `refused#…`, `rollback-dry-run#…`: one-off notifications.
//! - reads `stable` and `deployed` (autopilot::keys), writes `deployed` after a rollback.

pub mod classify;
pub mod elb;
pub mod outcome;
pub mod plan;

use std::sync::Arc;
use std::time::Duration;

use autopilot::aws_sdk_ecs as ecs;
use autopilot::aws_sdk_elasticloadbalancingv2 as elbv2;
use autopilot::config::cluster_name;
use autopilot::events::TaskStateChange;
use autopilot::runtime::{run_event, Env, Function};
use autopilot::tags::{ecs_tags, parse_rollback, Tags, TAG_RESTART, TAG_ROLLBACK};
use autopilot::{Config, Error, Incoming, Notification};
use serde_json::{json, Map, Value};

use classify::{classify, StopClass};
use plan::{Emit, RestartDecision, RollbackDecision};

const PK_RESTART: &str = "recovery#restart";
const PK_LINEAGE: &str = "recovery#lineage";
const PK_FAILURES: &str = "recovery#failures";
const PK_ROLLBACK: &str = "recovery#rollback";
const PK_INCIDENT: &str = "recovery#incident";

const RESTART_MEMORY: Duration = Duration::from_secs(30 * 24 * 3600);
const ROLLBACK_MEMORY: Duration = Duration::from_secs(7 * 24 * 3600);
const DEPLOYMENT_MEMORY: Duration = Duration::from_secs(90 * 24 * 3600);
/// Attempts of an optimistic read-modify-write before giving up (retryable Conflict).
const CAS_ATTEMPTS: usize = 20;

/// Seconds since the epoch; replaceable so tests can move time.
pub type Clock = Arc<dyn Fn() -> u64 + Send + Sync>;

pub struct Recovery {
    pub env: Env,
    ecs: ecs::Client,
    elb: elbv2::Client,
    clock: Clock,
}

impl Function for Recovery {
    const NAME: &'static str = "recovery";

    fn new(env: Env) -> Self {
        let ecs = ecs::Client::new(&env.sdk);
        let elb = elbv2::Client::new(&env.sdk);
        Recovery { env, ecs, elb, clock: Arc::new(autopilot::state::now_epoch) }
    }

    async fn handle(&self, event: Value) -> Result<Value, Error> {
        run_event(&self.env, Self::NAME, event, Self::screen, |incoming| async move { self.dispatch(incoming).await }).await
    }

    /// Most stopped tasks need nothing: tasks that are not STOPPED yet, clusters not managed, and
    /// normal stops (scale-in, deployment replacement, exit 0, user stops), decided from the event.
    fn screen(incoming: &Incoming, config: &Config) -> Option<Value> {
        match incoming {
            Incoming::TaskStateChange(event) => screen_task(&event.detail, config),
            other => Some(json!({"status": "ignored", "reason": format!("{} is not handled by recovery", other.detail_type())})),
        }
    }
}

/// The answer for a task event that needs no AWS call (see `Recovery::screen`), or `None`.
fn screen_task(t: &TaskStateChange, config: &Config) -> Option<Value> {
    if t.last_status != "STOPPED" {
        return Some(json!({"status": "ignored", "reason": format!("lastStatus {} is not STOPPED", t.last_status)}));
    }
    if !config.manages_cluster(&t.cluster_arn) {
        tracing::info!(cluster = %t.cluster_arn, "cluster not managed (AUTOPILOT_CLUSTERS)");
        return Some(json!({"status": "ignored", "reason": format!("cluster {} is not managed", cluster_name(&t.cluster_arn))}));
    }
    let s = Stopped::new(t);
    if s.class.is_normal() {
        s.log();
        return Some(s.outcome("none", "a normal stop"));
    }
    if s.class == StopClass::Unknown {
        s.log();
        tracing::warn!(task = %s.task_id, "stop reason not recognised: no action");
        return Some(s.outcome("none", "stop reason not recognised"));
    }
    None
}

/// Everything about one stopped task that the decisions and messages need.
struct Stopped<'a> {
    t: &'a TaskStateChange,
    class: StopClass,
    cluster: String,
    revision: String,
    task_id: String,
}

impl Recovery {
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    pub fn with_ecs(mut self, ecs: ecs::Client) -> Self {
        self.ecs = ecs;
        self
    }

    pub fn with_elb(mut self, elb: elbv2::Client) -> Self {
        self.elb = elb;
        self
    }

    fn now(&self) -> u64 {
        (self.clock)()
    }

    async fn dispatch(&self, incoming: Incoming) -> Result<Value, Error> {
        match incoming {
            Incoming::TaskStateChange(event) => self.on_task(&event.detail).await,
            other => {
                tracing::info!(detail_type = other.detail_type(), "not handled by recovery");
                Ok(json!({"status": "ignored", "reason": format!("{} is not handled by recovery", other.detail_type())}))
            }
        }
    }

    async fn on_task(&self, t: &TaskStateChange) -> Result<Value, Error> {
        if let Some(answer) = screen_task(t, &self.env.config) {
            return Ok(answer);
        }
        let s = Stopped::new(t);
        s.log();
        match t.service_name() {
            Some(service) => self.on_service_task(&s, service).await,
            None => self.on_standalone_task(&s).await,
        }
    }

    // ------------------------------------------------------------------ standalone tasks

    async fn on_standalone_task(&self, s: &Stopped<'_>) -> Result<Value, Error> {
        let described = self
            .ecs
            .describe_tasks()
            .cluster(&s.t.cluster_arn)
            .tasks(&s.t.task_arn)
            .include(ecs::types::TaskField::Tags)
            .send()
            .await
            .map_err(|e| Error::aws("ecs", "DescribeTasks", e))?;
        let Some(task) = described.tasks().iter().find(|x| x.task_arn() == Some(s.t.task_arn.as_str())) else {
            tracing::warn!(task = %s.task_id, "ECS no longer describes the task: its tags (autopilot:restart) are unknown");
            return Ok(s.outcome("none", "the task is no longer described by ECS"));
        };
        let tags = ecs_tags(task.tags());
        if !tags.contains_key(TAG_RESTART) {
            tracing::info!(task = %s.task_id, "not tagged autopilot:restart: left alone");
            return Ok(s.outcome("none", "not tagged autopilot:restart"));
        }
        let family = s.revision.rsplit_once(':').map_or(s.revision.as_str(), |(f, _)| f);
        let name = format!("{}/{family}", s.cluster);

        // The policy and the network come first: neither depends on the counter.
        if let Err(e) = plan::decide_restart(&tags, &s.task_id, 0) {
            return self.refuse(s, &name, format!("cannot re-run: {e}")).await;
        }
        let eni_subnets: Vec<String> = task
            .attachments()
            .iter()
            .filter(|a| a.r#type() == Some("ElasticNetworkInterface"))
            .flat_map(|a| a.details().iter().filter(|d| d.name() == Some("subnetId")).filter_map(|d| d.value().map(str::to_string)))
            .collect();
        let is_awsvpc = task.attachments().iter().any(|a| a.r#type() == Some("ElasticNetworkInterface"))
            || matches!(task.launch_type(), Some(ecs::types::LaunchType::Fargate));
        let network = if is_awsvpc {
            match plan::awsvpc(&tags, &eni_subnets) {
                Ok(n) => Some(n),
                Err(why) => return self.refuse(s, &name, format!("cannot re-run: {why}")).await,
            }
        } else {
            None
        };

        let lineage_key = |lineage: &str| format!("{}/{lineage}", s.cluster);
        if self.env.config.dry_run {
            let restarts = self.restarts(&lineage_key(&lineage_of(&tags, &s.task_id))).await?;
            let decision = plan::decide_restart(&tags, &s.task_id, restarts.0).map_err(|e| Error::tag(&s.task_id, e))?;
            let (what, short, key) = match &decision {
                RestartDecision::Rerun { attempt, limit, .. } => (
                    format!("would re-run it (restart {attempt} of {limit})"),
                    format!("would re-run {attempt} of {limit}"),
                    format!("dry-run-restart#{}", s.t.task_arn),
                ),
                RestartDecision::LimitReached { limit, lineage } => (
                    format!("would not re-run it: restart limit {limit} reached"),
                    format!("restart limit {limit} reached"),
                    format!("restart-limit#{}", lineage_key(lineage)),
                ),
                RestartDecision::NotOptedIn => return Ok(s.outcome("none", "not tagged autopilot:restart")),
            };
            let n = s.base_notification("recovery.task-failed", format!("{name}: task of {} {}, {short}", s.revision, s.class), &what);
            self.env.notifier.publish_once(&self.env.state, &key, self.env.config.notification_window, &n).await?;
            return Ok(s.outcome("notified", &what).with("dryRun", true));
        }

        // A replayed or repeated event about this task re-runs nothing (moto and ECS both accept
        // clientToken, but only ECS honours it).
        if !self.env.state.create(PK_RESTART, &s.t.task_arn, &json!({"status": "starting"}), RESTART_MEMORY).await? {
            let previous = self.env.state.get(PK_RESTART, &s.t.task_arn).await?;
            let new_task = previous.as_ref().and_then(|r| r.data.get("newTask")).cloned().unwrap_or(Value::Null);
            return Ok(s.outcome("none", "already handled: this stopped task was re-run or refused before").with("newTask", new_task));
        }
        let decision = match self.reserve_restart(s, &tags).await {
            Ok(d) => d,
            Err(e) => {
                let _ = self.env.state.delete(PK_RESTART, &s.t.task_arn).await;
                return Err(e);
            }
        };
        let (lineage, attempt, limit) = match decision {
            RestartDecision::Rerun { lineage, attempt, limit } => (lineage, attempt, limit),
            RestartDecision::LimitReached { lineage, limit } => {
                let what = format!("not re-run: restart limit reached ({limit} of {limit} used by lineage {lineage})");
                let n = s
                    .base_notification("recovery.restart-limit", format!("{name}: task of {} {}, restart limit {limit} reached", s.revision, s.class), &what)
                    .field("lineage", lineage.clone())
                    .field("restartLimit", limit);
                self.env.notifier.publish_once(&self.env.state, &format!("restart-limit#{}", lineage_key(&lineage)), RESTART_MEMORY, &n).await?;
                let _ = self.env.state.put(PK_RESTART, &s.t.task_arn, &json!({"status": "limit"}), RESTART_MEMORY).await;
                return Ok(s.outcome("notified", &what).with("lineage", lineage));
            }
            RestartDecision::NotOptedIn => {
                let _ = self.env.state.delete(PK_RESTART, &s.t.task_arn).await;
                return Ok(s.outcome("none", "not tagged autopilot:restart"));
            }
        };

        let run = self.run_again(s, task, &plan::rerun_tags(&tags, &lineage), network.as_ref()).await;
        let new_task = match run {
            Ok(arn) => arn,
            Err(e) => {
                // Give the restart back so EventBridge's retry can do it.
                let _ = self.release_restart(&lineage_key(&lineage)).await;
                let _ = self.env.state.delete(PK_RESTART, &s.t.task_arn).await;
                return Err(e);
            }
        };
        let _ = self.env.state.put(PK_RESTART, &s.t.task_arn, &json!({"status": "started", "newTask": new_task}), RESTART_MEMORY).await;
        tracing::info!(task = %s.task_id, new_task = %new_task, attempt, limit, lineage = %lineage, "re-ran the stopped task");

        let what = format!("re-run as task {} (restart {attempt} of {limit})", plan::task_id(&new_task));
        let scope = format!("{}/task", s.cluster);
        let short = format!("re-run {attempt} of {limit}");
        let extra = |n: Notification| n.field("newTask", new_task.clone()).field("restart", attempt).field("restartLimit", limit).field("lineage", lineage.clone());
        let sent = self.notify_incident(s, &scope, &name, &what, &short, extra).await?;
        Ok(s.outcome("restarted", &what).with("newTask", new_task).with("restart", attempt).with("restartLimit", limit).with("lineage", lineage).with("notified", sent))
    }

    async fn refuse(&self, s: &Stopped<'_>, name: &str, why: String) -> Result<Value, Error> {
        tracing::warn!(task = %s.task_id, why = %why, "re-run refused");
        let n = s.base_notification("recovery.restart-refused", format!("{name}: task of {} {}, not re-run", s.revision, s.class), &why);
        self.env.notifier.publish_once(&self.env.state, &format!("refused#{}", s.t.task_arn), self.env.config.notification_window, &n).await?;
        Err(Error::Refused(format!("task {} ({}): {why}", s.task_id, s.revision)))
    }

    /// (restarts made, record version) for a lineage.
    async fn restarts(&self, key: &str) -> Result<(u32, u64), Error> {
        let rec = self.env.state.get(PK_LINEAGE, key).await?;
        Ok(rec.map_or((0, 0), |r| (r.data.get("restarts").and_then(Value::as_u64).unwrap_or(0) as u32, r.version)))
    }

    /// Decide against the lineage counter and, for a re-run, count it (optimistically).
    async fn reserve_restart(&self, s: &Stopped<'_>, tags: &Tags) -> Result<RestartDecision, Error> {
        let key = format!("{}/{}", s.cluster, lineage_of(tags, &s.task_id));
        for _ in 0..CAS_ATTEMPTS {
            let (restarts, version) = self.restarts(&key).await?;
            let decision = plan::decide_restart(tags, &s.task_id, restarts).map_err(|e| Error::tag(&s.task_id, e))?;
            let RestartDecision::Rerun { attempt, .. } = &decision else { return Ok(decision) };
            match self.env.state.put_if_version(PK_LINEAGE, &key, &json!({"restarts": attempt}), RESTART_MEMORY, version).await {
                Ok(_) => return Ok(decision),
                Err(Error::Conflict(_)) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(Error::Conflict(format!("{PK_LINEAGE}/{key}")))
    }

    async fn release_restart(&self, key: &str) -> Result<(), Error> {
        for _ in 0..CAS_ATTEMPTS {
            let (restarts, version) = self.restarts(key).await?;
            if restarts == 0 {
                return Ok(());
            }
            match self.env.state.put_if_version(PK_LINEAGE, key, &json!({"restarts": restarts - 1}), RESTART_MEMORY, version).await {
                Err(Error::Conflict(_)) => continue,
                other => return other.map(|_| ()),
            }
        }
        Ok(())
    }

    /// RunTask with everything the stopped task ran with. Returns the new task's ARN.
    async fn run_again(&self, s: &Stopped<'_>, task: &ecs::types::Task, tags: &Tags, network: Option<&plan::AwsVpc>) -> Result<String, Error> {
        let task_definition = task.task_definition_arn().or(s.t.task_definition_arn.as_deref()).ok_or_else(|| Error::Refused(format!("task {} names no task definition", s.task_id)))?;
        let mut req = self
            .ecs
            .run_task()
            .cluster(&s.t.cluster_arn)
            .task_definition(task_definition)
            .count(1)
            .client_token(plan::client_token(&s.t.task_arn))
            .set_overrides(task.overrides().cloned())
            .set_group(task.group().map(str::to_string))
            .set_started_by(task.started_by().map(str::to_string))
            .set_platform_version(task.platform_version().map(str::to_string))
            .set_tags(Some(tags.iter().map(|(k, v)| ecs::types::Tag::builder().key(k).value(v).build()).collect()));
        if task.enable_execute_command() {
            req = req.enable_execute_command(true);
        }
        req = match (task.capacity_provider_name(), task.launch_type()) {
            (Some(cp), _) => req.capacity_provider_strategy(ecs::types::CapacityProviderStrategyItem::builder().capacity_provider(cp).weight(1).build().map_err(|e| Error::Refused(e.to_string()))?),
            (None, Some(lt)) => req.launch_type(lt.clone()),
            (None, None) => req,
        };
        if let Some(net) = network {
            let vpc = ecs::types::AwsVpcConfiguration::builder()
                .set_subnets(Some(net.subnets.clone()))
                .set_security_groups(Some(net.security_groups.clone()))
                .assign_public_ip(if net.assign_public_ip { ecs::types::AssignPublicIp::Enabled } else { ecs::types::AssignPublicIp::Disabled })
                .build()
                .map_err(|e| Error::Refused(e.to_string()))?;
            req = req.network_configuration(ecs::types::NetworkConfiguration::builder().awsvpc_configuration(vpc).build());
        }
        let out = req.send().await.map_err(|e| Error::aws("ecs", "RunTask", e))?;
        if let Some(arn) = out.tasks().first().and_then(|t| t.task_arn()) {
            return Ok(arn.to_string());
        }
        let failures: Vec<String> = out.failures().iter().map(|f| format!("{}: {}", f.reason().unwrap_or("?"), f.detail().unwrap_or(""))).collect();
        Err(Error::Aws {
            service: "ecs",
            operation: "RunTask",
            code: "NoTaskStarted".into(),
            message: if failures.is_empty() { "no task was placed".into() } else { failures.join("; ") },
            // Capacity comes and goes: EventBridge's retry may find room.
            retryable: true,
        })
    }

    // ------------------------------------------------------------------ service tasks

    async fn on_service_task(&self, s: &Stopped<'_>, service: &str) -> Result<Value, Error> {
        let scope = format!("{}/{service}", s.cluster);
        if !s.class.is_failure() {
            // Infrastructure: not the revision's fault, ECS replaces the task; say it once.
            let what = "ECS replaces service tasks itself; autopilot did nothing".to_string();
            let sent = self.notify_incident(s, &scope, &scope, &what, "replaced by ECS", |n| n.field("service", service)).await?;
            return Ok(s.outcome(if sent { "notified" } else { "none" }, &what).with("service", service));
        }

        let window = self.env.config.crash_loop_window.as_secs();
        let threshold = self.env.config.crash_loop_threshold as usize;
        let failures_key = format!("{scope}#{}", s.revision);
        let count = self.record_failure(&failures_key, &s.task_id, window).await?;
        let crash_loop = count >= threshold;
        tracing::info!(service, revision = %s.revision, failures = count, threshold, window_secs = window, crash_loop, "service task failed");

        let loop_state = if crash_loop { Some(self.crash_loop(s, service, count).await?) } else { None };
        let minutes = plan::minutes(window);
        let what = match loop_state {
            None => format!("ECS replaces the task; {count} failed task(s) of {} in the last {minutes} min (a crash loop is {threshold})", s.revision),
            Some(CrashLoop::RolledBack(outcome)) => {
                // The rollback message is this incident's message: later tasks fold into it.
                self.touch_incident(s, &scope).await?;
                return Ok(outcome);
            }
            Some(CrashLoop::AlreadyRolledBack) => format!("crash loop: {count} failed tasks of {} in the last {minutes} min; the service was already rolled back", s.revision),
            Some(CrashLoop::NotRolledBack(why)) => format!("crash loop: {count} failed tasks of {} in the last {minutes} min; not rolled back: {why}", s.revision),
        };
        let short = if crash_loop { "crash loop, not rolled back" } else { "replaced by ECS" };
        let sent = self
            .notify_incident(s, &scope, &scope, &what, short, |n| {
                n.field("service", service).field("failuresInWindow", count).field("crashLoopThreshold", threshold).field("crashLoop", crash_loop)
            })
            .await?;
        Ok(s.outcome(if sent { "notified" } else { "none" }, &what).with("service", service).with("failuresInWindow", count).with("crashLoop", crash_loop))
    }

    /// Count one failed task in the revision's sliding window; returns the failures in it.
    async fn record_failure(&self, key: &str, task: &str, window: u64) -> Result<usize, Error> {
        let ttl = Duration::from_secs(window * 2 + 60);
        for _ in 0..CAS_ATTEMPTS {
            let previous = self.env.state.get(PK_FAILURES, key).await?;
            let (data, count) = plan::record_failure(previous.as_ref().map(|r| &r.data), task, self.now(), window);
            match self.env.state.put_if_version(PK_FAILURES, key, &data, ttl, previous.map_or(0, |r| r.version)).await {
                Ok(_) => return Ok(count),
                Err(Error::Conflict(_)) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(Error::Conflict(format!("{PK_FAILURES}/{key}")))
    }

    async fn crash_loop(&self, s: &Stopped<'_>, service: &str, count: usize) -> Result<CrashLoop, Error> {
        let claim_key = format!("{}/{service}#{}", s.cluster, s.revision);
        if self.env.state.get(PK_ROLLBACK, &claim_key).await?.is_some() {
            return Ok(CrashLoop::AlreadyRolledBack);
        }
        let described = self
            .ecs
            .describe_services()
            .cluster(&s.t.cluster_arn)
            .services(service)
            .include(ecs::types::ServiceField::Tags)
            .send()
            .await
            .map_err(|e| Error::aws("ecs", "DescribeServices", e))?;
        let Some(svc) = described.services().first() else {
            return Ok(CrashLoop::NotRolledBack(format!("the service {service} is not found")));
        };
        let tags = ecs_tags(svc.tags());
        let (dk, dsk) = autopilot::keys::deployment(&s.cluster, service);
        let (sk, ssk) = autopilot::keys::stable_revision(&s.cluster, service);
        let deployment = self.env.state.get(&dk, &dsk).await?;
        let stable = self.env.state.get(&sk, &ssk).await?;
        let now = self.now();
        let decision = plan::decide_rollback(&plan::RollbackInputs {
            failing: &s.revision,
            service_task_definition: svc.task_definition(),
            rollback_tag: parse_rollback(tags.get(TAG_ROLLBACK).map(String::as_str)).map_err(|e| e.to_string()),
            deployment: deployment.as_ref().map(|r| &r.data),
            stable: stable.as_ref().map(|r| &r.data),
            controller: svc.deployment_controller().map(|c| c.r#type().as_str()),
            now,
        });
        let to = match decision {
            RollbackDecision::NotifyOnly(why) => {
                tracing::info!(service, revision = %s.revision, why = %why, "crash loop: no rollback");
                return Ok(CrashLoop::NotRolledBack(why));
            }
            RollbackDecision::RollBack { to } => to,
        };
        let to_rev = plan::revision(&to);
        let window_min = plan::minutes(self.env.config.crash_loop_window.as_secs());
        let why = format!("{count} failed tasks of {} in the last {window_min} min after its deployment", s.revision);
        let subject = |verb: &str| format!("{}/{service}: crash loop of {}, {verb} {to_rev}", s.cluster, s.revision);
        let fields = |n: Notification| n.field("service", service).field("rolledBackFrom", s.revision.clone()).field("rolledBackTo", to_rev.clone()).field("failuresInWindow", count);

        if self.env.config.dry_run {
            let what = format!("would roll the service back to {to_rev}: {why}");
            let n = fields(s.base_notification("recovery.rollback", subject("would roll back to"), &what));
            self.env.notifier.publish_once(&self.env.state, &format!("rollback-dry-run#{claim_key}"), self.env.config.notification_window, &n).await?;
            return Ok(CrashLoop::RolledBack(s.outcome("notified", &what).with("service", service).with("dryRun", true).with("rollbackTo", to_rev)));
        }
        if !self.env.state.create(PK_ROLLBACK, &claim_key, &json!({"to": to, "at": now}), ROLLBACK_MEMORY).await? {
            return Ok(CrashLoop::AlreadyRolledBack);
        }
        // Only the task definition: desiredCount belongs to the scaler.
        if let Err(e) = self.ecs.update_service().cluster(&s.t.cluster_arn).service(service).task_definition(&to).send().await {
            let _ = self.env.state.delete(PK_ROLLBACK, &claim_key).await;
            return Err(Error::aws("ecs", "UpdateService", e));
        }
        let previous = s.t.task_definition_arn.clone().unwrap_or_else(|| s.revision.clone());
        self.env
            .state
            .put(&dk, &dsk, &json!({"taskDefinition": to, "previous": previous, "at": now, "by": "recovery", "reason": "rollback"}), DEPLOYMENT_MEMORY)
            .await?;
        tracing::info!(service, from = %s.revision, to = %to_rev, "crash loop: rolled back");
        let what = format!("rolled the service back to {to_rev}: {why}");
        let n = fields(s.base_notification("recovery.rollback", subject("rolled back to"), &what));
        self.env.notifier.publish(&n).await?;
        Ok(CrashLoop::RolledBack(s.outcome("rolled-back", &what).with("service", service).with("rollbackTo", to_rev).with("notified", true)))
    }

    // ------------------------------------------------------------------ notifications

    /// Send (or fold) the incident's message. `scope` keys the incident (with class and
    /// revision); `name` is what the subject calls the service or task family.
    async fn notify_incident(&self, s: &Stopped<'_>, scope: &str, name: &str, what: &str, short: &str, extra: impl Fn(Notification) -> Notification) -> Result<bool, Error> {
        let key = format!("{scope}#{}#{}", s.class.label(), s.revision);
        let window = self.env.config.notification_window.as_secs();
        let ttl = Duration::from_secs(window * 3 + 60);
        for _ in 0..CAS_ATTEMPTS {
            let previous = self.env.state.get(PK_INCIDENT, &key).await?;
            let (data, emit) = plan::debounce(previous.as_ref().map(|r| &r.data), self.now(), window);
            match self.env.state.put_if_version(PK_INCIDENT, &key, &data, ttl, previous.as_ref().map_or(0, |r| r.version)).await {
                Ok(_) => {}
                Err(Error::Conflict(_)) => continue,
                Err(e) => return Err(e),
            }
            let (subject, event_type) = match emit {
                Emit::Suppress => {
                    tracing::info!(incident = %key, "notification folded into the incident's next summary");
                    return Ok(false);
                }
                Emit::First => (format!("{name}: task of {} {}, {short}", s.revision, s.class), "recovery.task-failed"),
                Emit::Summary { tasks, since_secs } => {
                    let noun = if tasks == 1 { "task" } else { "tasks" };
                    (format!("{name}: {tasks} more {noun} of {} {} in the last {} min", s.revision, s.class.verb(), plan::minutes(since_secs)), "recovery.summary")
                }
            };
            let mut n = extra(s.base_notification(event_type, subject, what));
            if let Emit::Summary { tasks, since_secs } = emit {
                n = n.field("moreTasks", tasks).field("sinceSeconds", since_secs);
            }
            if let StopClass::ElbHealthCheck { target_group_arn: Some(tg) } = &s.class {
                n = self.with_target_health(n, tg).await;
            }
            if let Err(e) = self.env.notifier.publish(&n).await {
                // Put the incident back as it was so the retry sends this message.
                let _ = match previous {
                    Some(p) => self.env.state.put(PK_INCIDENT, &key, &p.data, ttl).await,
                    None => self.env.state.delete(PK_INCIDENT, &key).await,
                };
                return Err(e);
            }
            return Ok(true);
        }
        Err(Error::Conflict(format!("{PK_INCIDENT}/{key}")))
    }

    /// Mark the incident as just notified (a rollback message stood for it).
    async fn touch_incident(&self, s: &Stopped<'_>, scope: &str) -> Result<(), Error> {
        let key = format!("{scope}#{}#{}", s.class.label(), s.revision);
        let window = self.env.config.notification_window.as_secs();
        self.env.state.put(PK_INCIDENT, &key, &json!({"sent": self.now(), "suppressed": 0}), Duration::from_secs(window * 3 + 60)).await
    }

    async fn with_target_health(&self, n: Notification, target_group_arn: &str) -> Notification {
        match elb::target_group_health(&self.elb, target_group_arn).await {
            Ok(h) => {
                let summary = h.summary();
                let mut n = n.field("targetGroup", target_group_arn).field("targetHealth", summary.clone());
                if let Some(path) = &h.health_check_path {
                    n = n.field("healthCheckPath", path.clone());
                }
                n.description = format!("{}\nTarget health: {summary}", n.description);
                n
            }
            Err(e) => {
                tracing::warn!(error = %e, target_group = target_group_arn, "could not read the target group's health");
                n.field("targetGroup", target_group_arn)
            }
        }
    }
}

enum CrashLoop {
    RolledBack(Value),
    AlreadyRolledBack,
    NotRolledBack(String),
}

fn lineage_of(tags: &Tags, task_id: &str) -> String {
    tags.get(plan::TAG_LINEAGE).filter(|l| !l.trim().is_empty()).cloned().unwrap_or_else(|| task_id.to_string())
}

trait With {
    fn with(self, key: &str, value: impl Into<Value>) -> Self;
}

impl With for Value {
    fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        if let Value::Object(map) = &mut self {
            map.insert(key.into(), value.into());
        }
        self
    }
}

impl<'a> Stopped<'a> {
    fn new(t: &'a TaskStateChange) -> Self {
        Stopped {
            t,
            class: classify(t),
            cluster: cluster_name(&t.cluster_arn).to_string(),
            revision: t.task_definition_arn.as_deref().map(plan::revision).unwrap_or_else(|| "unknown".into()),
            task_id: plan::task_id(&t.task_arn).to_string(),
        }
    }

    fn log(&self) {
        let t = self.t;
        tracing::info!(
            task = %self.task_id, cluster = %self.cluster, revision = %self.revision, group = t.group.as_deref().unwrap_or("-"),
            class = self.class.label(), stop_code = t.stop_code.as_deref().unwrap_or("-"), stopped_reason = t.stopped_reason.as_deref().unwrap_or("-"),
            "task stopped"
        );
    }

    fn outcome(&self, action: &str, reason: &str) -> Value {
        json!({
            "status": "handled",
            "class": self.class.label(),
            "detail": self.class.to_string(),
            "task": self.t.task_arn,
            "revision": self.revision,
            "action": action,
            "reason": reason,
        })
    }

    /// A notification with what happened and why; `what` says what was done. Built only from
    /// chosen fields (never overrides or container environment).
    fn base_notification(&self, event_type: &str, subject: String, what: &str) -> Notification {
        let mut why = Vec::new();
        if let Some(r) = self.t.stopped_reason.as_deref().filter(|r| !r.is_empty()) {
            why.push(format!("Stopped reason: {r}"));
        }
        for c in &self.t.containers {
            match (c.exit_code, c.reason.as_deref()) {
                (Some(code), Some(r)) => why.push(format!("Container {}: exit {code}, {r}", c.name)),
                (Some(code), None) if code != 0 => why.push(format!("Container {}: exit {code}", c.name)),
                (None, Some(r)) => why.push(format!("Container {}: {r}", c.name)),
                _ => {}
            }
        }
        let description = format!("Task {} ({}) in {} {}.\n{}\nAction: {what}", self.task_id, self.revision, self.cluster, self.class, why.join("\n"));
        let mut context = Map::new();
        context.insert("cluster".into(), self.cluster.clone().into());
        context.insert("task".into(), self.t.task_arn.clone().into());
        context.insert("revision".into(), self.revision.clone().into());
        context.insert("class".into(), self.class.label().into());
        context.insert("action".into(), what.into());
        if let Some(r) = &self.t.stopped_reason {
            context.insert("stoppedReason".into(), r.clone().into());
        }
        if let Some(c) = &self.t.stop_code {
            context.insert("stopCode".into(), c.clone().into());
        }
        if let StopClass::Crash { container, exit_code } = &self.class {
            if let Some(code) = exit_code {
                context.insert("exitCode".into(), (*code).into());
            }
            if let Some(c) = container {
                context.insert("container".into(), c.clone().into());
            }
        }
        let mut n = Notification::new(event_type, subject, description);
        n.fields = context;
        n
    }
}

#[cfg(test)]
mod tests {
    //! The handler end to end where moto cannot help: an unhealthy target group (mocked ELB),
    //! with the message captured at a mocked SNS.
    use super::*;
    use autopilot::aws_sdk_sns as sns;
    use autopilot::config::Config;
    use autopilot::state::StateStore;
    use autopilot::Notifier;
    use aws_smithy_mocks::{mock, MockResponseInterceptor, Rule};
    use elbv2::types::{TargetDescription, TargetGroup, TargetHealth, TargetHealthDescription, TargetHealthReasonEnum, TargetHealthStateEnum};
    use std::sync::Mutex;

    const TG: &str = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/random/3b8f2a9c7d1e4f50";
    const TOPIC: &str = "arn:aws:sns:us-east-1:123456789012:autopilot-notifications";

    fn interceptor(rules: &[&Rule]) -> MockResponseInterceptor {
        rules.iter().fold(MockResponseInterceptor::new(), |i, r| i.with_rule(r))
    }

    fn sdk() -> autopilot::aws_config::SdkConfig {
        autopilot::aws_config::SdkConfig::builder()
            .behavior_version(autopilot::aws_config::BehaviorVersion::latest())
            .region(autopilot::aws_config::Region::new("us-east-1"))
            .build()
    }

    fn elb_client(rules: &[&Rule]) -> elbv2::Client {
        let conf = elbv2::Config::builder()
            .behavior_version(elbv2::config::BehaviorVersion::latest())
            .region(elbv2::config::Region::new("us-east-1"))
            .credentials_provider(elbv2::config::Credentials::new("test", "test", None, None, "test"))
            .http_client(aws_smithy_mocks::create_mock_http_client())
            .interceptor(interceptor(rules))
            .build();
        elbv2::Client::from_conf(conf)
    }

    fn sns_client(rules: &[&Rule]) -> sns::Client {
        let conf = sns::Config::builder()
            .behavior_version(sns::config::BehaviorVersion::latest())
            .region(sns::config::Region::new("us-east-1"))
            .credentials_provider(sns::config::Credentials::new("test", "test", None, None, "test"))
            .http_client(aws_smithy_mocks::create_mock_http_client())
            .interceptor(interceptor(rules))
            .build();
        sns::Client::from_conf(conf)
    }

    fn elb_event(id: &str, task: &str) -> Value {
        json!({
            "version": "0", "id": id, "detail-type": "ECS Task State Change", "source": "aws.ecs",
            "account": "123456789012", "region": "us-east-1", "time": "2025-11-25T02:00:55Z",
            "detail": {
                "clusterArn": "arn:aws:ecs:us-east-1:123456789012:cluster/stage01",
                "taskArn": format!("arn:aws:ecs:us-east-1:123456789012:task/stage01/{task}"),
                "taskDefinitionArn": "arn:aws:ecs:us-east-1:123456789012:task-definition/random:4",
                "group": "service:random", "lastStatus": "STOPPED", "stopCode": "ServiceSchedulerInitiated",
                "stoppedReason": format!("Task failed ELB health checks in (target-group {TG})"),
                "containers": [{"name": "random", "exitCode": 143}],
                "overrides": {"containerOverrides": [{"name": "random", "environment": [{"name": "API_TOKEN", "value": "s3cr3t-in-override"}]}]}
            }
        })
    }

    #[tokio::test]
    async fn elb_health_failure_notification_carries_the_target_health_reason() {
        let health = mock!(elbv2::Client::describe_target_health).match_requests(|r| r.target_group_arn() == Some(TG)).then_output(|| {
            elbv2::operation::describe_target_health::DescribeTargetHealthOutput::builder()
                .target_health_descriptions(
                    TargetHealthDescription::builder()
                        .target(TargetDescription::builder().id("i-0abc").port(32768).build())
                        .target_health(
                            TargetHealth::builder()
                                .state(TargetHealthStateEnum::Unhealthy)
                                .reason(TargetHealthReasonEnum::ResponseCodeMismatch)
                                .description("Health checks failed with these codes: [404]")
                                .build(),
                        )
                        .build(),
                )
                .build()
        });
        let groups = mock!(elbv2::Client::describe_target_groups).then_output(|| {
            elbv2::operation::describe_target_groups::DescribeTargetGroupsOutput::builder()
                .target_groups(TargetGroup::builder().target_group_arn(TG).target_group_name("random").health_check_path("/random/").build())
                .build()
        });
        let sent: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
        let capture = sent.clone();
        let publish = mock!(sns::Client::publish)
            .match_requests(move |r| {
                capture.lock().unwrap().push((r.subject().unwrap_or_default().to_string(), r.message().unwrap_or_default().to_string()));
                r.topic_arn() == Some(TOPIC)
            })
            .then_output(|| sns::operation::publish::PublishOutput::builder().message_id("m-1").build());
        let env = Env {
            config: Config { topic_arn: Some(TOPIC.into()), ..Config::default() },
            sdk: sdk(),
            state: StateStore::memory(),
            notifier: Notifier::new(Some((sns_client(&[&publish]), TOPIC.into())), false),
        };
        let f = Recovery::new(env).with_elb(elb_client(&[&health, &groups]));

        let out = f.handle(elb_event("e-1", "aaaa")).await.unwrap();
        assert_eq!(out["class"], "elb-health-check", "{out}");
        assert_eq!(out["action"], "notified", "{out}");
        // A second task of the same incident is folded into it: no second message.
        let out = f.handle(elb_event("e-2", "bbbb")).await.unwrap();
        assert_eq!(out["action"], "none", "{out}");

        let sent = sent.lock().unwrap().clone();
        assert_eq!(sent.len(), 1, "{sent:?}");
        let (subject, message) = &sent[0];
        assert_eq!(subject, "stage01/random: task of random:4 failed ELB health checks, replaced by ECS");
        let body: Value = serde_json::from_str(message).unwrap();
        let ctx = &body["metadata"]["additionalContext"];
        assert_eq!(ctx["targetHealth"], "Target.ResponseCodeMismatch: Health checks failed with these codes: [404] on /random/");
        assert_eq!(ctx["targetGroup"], TG);
        assert!(body["content"]["description"].as_str().unwrap().contains("[404] on /random/"), "{body}");
        assert!(!message.contains("s3cr3t"), "{message}");
        assert_eq!(health.num_calls(), 1, "the folded task does not look the health up again");
    }

    fn ecs_client(rules: &[&Rule]) -> ecs::Client {
        let conf = ecs::Config::builder()
            .behavior_version(ecs::config::BehaviorVersion::latest())
            .region(ecs::config::Region::new("us-east-1"))
            .credentials_provider(ecs::config::Credentials::new("test", "test", None, None, "test"))
            .http_client(aws_smithy_mocks::create_mock_http_client())
            .interceptor(interceptor(rules))
            .build();
        ecs::Client::from_conf(conf)
    }

    const JOB_TASK: &str = "arn:aws:ecs:us-east-1:123456789012:task/stage01/5b2a3a1f6c8e4d2a9f0b7c1d3e5f7a90";
    const JOB_TD: &str = "arn:aws:ecs:us-east-1:123456789012:task-definition/nightly-report:1";

    /// A stopped awsvpc task as DescribeTasks shows it: ENI attachment with the subnet, no
    /// security groups anywhere.
    fn awsvpc_task(tags: &[(&str, &str)]) -> ecs::types::Task {
        let mut t = ecs::types::Task::builder()
            .task_arn(JOB_TASK)
            .task_definition_arn(JOB_TD)
            .last_status("STOPPED")
            .launch_type(ecs::types::LaunchType::Ec2)
            .group("family:nightly-report")
            .started_by("events-rule/nightly-report")
            .overrides(
                ecs::types::TaskOverride::builder()
                    .container_overrides(
                        ecs::types::ContainerOverride::builder()
                            .name("nightly-report")
                            .environment(ecs::types::KeyValuePair::builder().name("REPORT_DB_PASSWORD").value("s3cr3t-override").build())
                            .build(),
                    )
                    .build(),
            )
            .attachments(
                ecs::types::Attachment::builder()
                    .r#type("ElasticNetworkInterface")
                    .status("DELETED")
                    .details(ecs::types::KeyValuePair::builder().name("subnetId").value("subnet-0c4f1a2b3d5e6f708").build())
                    .build(),
            );
        for (k, v) in tags {
            t = t.tags(ecs::types::Tag::builder().key(*k).value(*v).build());
        }
        t.build()
    }

    fn job_event(id: &str) -> Value {
        json!({
            "version": "0", "id": id, "detail-type": "ECS Task State Change", "source": "aws.ecs",
            "account": "123456789012", "region": "us-east-1", "time": "2025-11-25T02:00:55Z",
            "detail": {
                "clusterArn": "arn:aws:ecs:us-east-1:123456789012:cluster/stage01", "taskArn": JOB_TASK, "taskDefinitionArn": JOB_TD,
                "group": "family:nightly-report", "lastStatus": "STOPPED", "stopCode": "EssentialContainerExited",
                "stoppedReason": "Essential container in task exited", "containers": [{"name": "nightly-report", "exitCode": 1}]
            }
        })
    }

    fn plain_env() -> Env {
        Env { config: Config::default(), sdk: sdk(), state: StateStore::memory(), notifier: Notifier::new(None, false) }
    }

    #[tokio::test]
    async fn awsvpc_rerun_needs_the_security_group_tag() {
        let describe = mock!(ecs::Client::describe_tasks)
            .then_output(|| ecs::operation::describe_tasks::DescribeTasksOutput::builder().tasks(awsvpc_task(&[("autopilot:restart", "on-failure")])).build());
        let run = mock!(ecs::Client::run_task).then_output(|| ecs::operation::run_task::RunTaskOutput::builder().build());
        let f = Recovery::new(plain_env()).with_ecs(ecs_client(&[&describe, &run]));
        let err = f.handle(job_event("e-1")).await.unwrap_err();
        assert_eq!(err.kind(), "Refused", "{err}");
        assert!(err.to_string().contains("autopilot:security-groups"), "{err}");
        assert_eq!(run.num_calls(), 0);
    }

    #[tokio::test]
    async fn awsvpc_rerun_rebuilds_the_network_from_tags_and_the_eni() {
        let describe = mock!(ecs::Client::describe_tasks).then_output(|| {
            ecs::operation::describe_tasks::DescribeTasksOutput::builder()
                .tasks(awsvpc_task(&[("autopilot:restart", "on-failure:5"), ("autopilot:security-groups", "sg-1 sg-2"), ("aws:ecs:managed", "x")]))
                .build()
        });
        let seen: Arc<Mutex<Option<ecs::operation::run_task::RunTaskInput>>> = Arc::default();
        let capture = seen.clone();
        let run = mock!(ecs::Client::run_task)
            .match_requests(move |r| {
                *capture.lock().unwrap() = Some(r.clone());
                true
            })
            .then_output(|| {
                ecs::operation::run_task::RunTaskOutput::builder()
                    .tasks(ecs::types::Task::builder().task_arn("arn:aws:ecs:us-east-1:123456789012:task/stage01/new").build())
                    .build()
            });
        let f = Recovery::new(plain_env()).with_ecs(ecs_client(&[&describe, &run]));
        let out = f.handle(job_event("e-1")).await.unwrap();
        assert_eq!(out["action"], "restarted", "{out}");
        assert_eq!(out["restartLimit"], 5);

        let req = seen.lock().unwrap().clone().expect("RunTask called");
        let vpc = req.network_configuration().and_then(|n| n.awsvpc_configuration()).expect("awsvpc configuration");
        assert_eq!(vpc.subnets(), ["subnet-0c4f1a2b3d5e6f708"]);
        assert_eq!(vpc.security_groups(), ["sg-1", "sg-2"]);
        assert_eq!(vpc.assign_public_ip(), Some(&ecs::types::AssignPublicIp::Disabled));
        assert_eq!(req.client_token(), Some("autopilot-5b2a3a1f6c8e4d2a9f0b7c1d3e5f7a90"));
        assert_eq!(req.task_definition(), Some(JOB_TD));
        assert_eq!(req.launch_type(), Some(&ecs::types::LaunchType::Ec2));
        assert_eq!(req.group(), Some("family:nightly-report"));
        assert_eq!(req.started_by(), Some("events-rule/nightly-report"));
        let env = req.overrides().unwrap().container_overrides()[0].environment();
        assert_eq!(env[0].value(), Some("s3cr3t-override"));
        let tags: Vec<(&str, &str)> = req.tags().iter().map(|t| (t.key().unwrap(), t.value().unwrap())).collect();
        assert_eq!(
            tags,
            [
                ("autopilot:lineage", "5b2a3a1f6c8e4d2a9f0b7c1d3e5f7a90"),
                ("autopilot:restart", "on-failure:5"),
                ("autopilot:security-groups", "sg-1 sg-2"),
            ],
            "aws: tags are ECS's own and cannot be set"
        );

        // RunTask fails: the restart and the claim are given back so the retry can do it.
        let describe = mock!(ecs::Client::describe_tasks).then_output(|| {
            ecs::operation::describe_tasks::DescribeTasksOutput::builder()
                .tasks(awsvpc_task(&[("autopilot:restart", "on-failure:5"), ("autopilot:security-groups", "sg-1")]))
                .build()
        });
        let fail = mock!(ecs::Client::run_task).then_output(|| {
            ecs::operation::run_task::RunTaskOutput::builder()
                .failures(ecs::types::Failure::builder().reason("RESOURCE:MEMORY").build())
                .build()
        });
        let f = Recovery::new(plain_env()).with_ecs(ecs_client(&[&describe, &fail]));
        let err = f.handle(job_event("e-2")).await.unwrap_err();
        assert!(err.retryable() && err.to_string().contains("RESOURCE:MEMORY"), "{err}");
        assert!(f.env.state.get(PK_RESTART, JOB_TASK).await.unwrap().is_none(), "claim released");
        let lineage = f.env.state.get(PK_LINEAGE, "stage01/5b2a3a1f6c8e4d2a9f0b7c1d3e5f7a90").await.unwrap();
        assert_eq!(lineage.map(|r| r.data["restarts"].clone()), Some(json!(0)), "restart given back");
    }
}
