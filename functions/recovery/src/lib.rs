//! The `recovery` function (see DESIGN.md): classify every stopped task, re-run failed standalone
//! tasks that opted in (`autopilot:restart`), roll crash-looping service revisions back (opt-in
//! `autopilot:rollback=on`), and tell people once per incident.
//!
//! State-table records (pk / sk):
//! - `recovery#restart` / stopped task ARN: the claim that re-runs a task at most once, with the
//!   RunTask attempt its clientToken names (`restart::read_claim`).
//! - `recovery#lineage` / `CLUSTER/LINEAGE`: restarts made for a chain of re-runs (a counter
//!   attribute `restarts`, one conditional `ADD` per re-run).
//! - `recovery#failures` / `CLUSTER/SERVICE#FAMILY:REV`: failed tasks in the revision's window
//!   (a tally: one `ADD` per failed task, `StateStore::tally`).
//! - `recovery#rollback` / `CLUSTER/SERVICE#FAMILY:REV`: the claim that rolls a revision back once.
//! - `recovery#incident` / `CLUSTER/SCOPE#CLASS#FAMILY:REV`: notification debouncing (a tally).
//! - `recovery#open` / the same key: incidents whose window the summary schedule has to close.
//! - `notify` / `restart-limit#…`, `refused#…`, `dry-run-restart#…`, `rollback-dry-run#…`: one-off
//!   notifications.
//! - reads `stable` and `deployed` (autopilot::keys), writes `deployed` after a rollback.
//!
//! In memory, for the life of the Lambda container (a revision's container definitions never
//! change): the essential containers of each task-definition revision it had to read.
//!
//! Laid out as the deployer is: `classify`, `plan` and `restart` decide from observed data without
//! I/O, `messages` words the notifications, `outcome` is what an event answers, `aws` (and `elb`)
//! adapt the SDK, and the handlers orchestrate (observe, decide, act, record, notify):
//! `standalone` (re-runs), `service` (failure window, crash loop, rollback) and `incident` (one
//! message per incident).

pub mod aws;
pub mod classify;
pub mod elb;
mod incident;
pub mod messages;
#[cfg(test)]
mod mock;
pub mod outcome;
pub mod plan;
pub mod restart;
mod service;
mod standalone;

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use autopilot::aws_sdk_ecs as ecs;
use autopilot::aws_sdk_elasticloadbalancingv2 as elbv2;
use autopilot::config::cluster_name;
use autopilot::events::TaskStateChange;
use autopilot::runtime::{Env, Function};
use autopilot::{Config, Error, Incoming};

use aws::Aws;
use classify::{StopClass, Stopped};
use outcome::{Action, Outcome};

/// Attempts of an optimistic read-modify-write before giving up (retryable Conflict).
const CAS_ATTEMPTS: usize = 20;

/// What the name of the incident summary schedule's rule has in it (template.yaml: the rule
/// `<stack>-recovery-summary`): recovery tells its schedule by the rule ARN, as the deployer and
/// the scaler do theirs.
pub const SUMMARY_RULE: &str = "recovery-summary";

/// Seconds since the epoch; replaceable so tests can move time.
pub type Clock = Arc<dyn Fn() -> u64 + Send + Sync>;

/// Task-definition revisions whose essential containers are kept in memory at most; past it the
/// cache starts again (a container that sees more revisions than this is unusual).
const ESSENTIALS_CACHED: usize = 512;

pub struct Recovery {
    pub env: Env,
    aws: Aws,
    clock: Clock,
    /// Essential container names per task-definition ARN, read once per revision for the life of
    /// the Lambda container (`serve` builds one `Recovery` per container).
    essentials: Mutex<HashMap<String, Arc<BTreeSet<String>>>>,
    /// "cluster/service" → whether it is opted in, and when that was read (`service.rs`).
    opt_ins: autopilot::cache::Expiring<bool>,
}

impl Function for Recovery {
    const NAME: &'static str = "recovery";
    type Outcome = Outcome;

    fn new(env: Env) -> Self {
        let aws = Aws::new(&env);
        Recovery { env, aws, clock: Arc::new(autopilot::state::now_epoch), essentials: Mutex::default(), opt_ins: autopilot::cache::Expiring::new(service::OPT_IN_TTL) }
    }

    fn env(&self) -> &Env {
        &self.env
    }

    /// Most stopped tasks need nothing: tasks that are not STOPPED yet, clusters not managed, and
    /// normal stops (scale-in, deployment replacement, user stops, every container exited 0),
    /// decided from the event. A stop whose class depends on which containers are essential (a
    /// non-zero exit) is left to `dispatch`, which reads the task definition.
    fn screen(incoming: &Incoming, config: &Config) -> Option<Outcome> {
        match incoming {
            Incoming::TaskStateChange(event) => screen_task(&event.detail, config),
            Incoming::Scheduled(event) => {
                let rule = autopilot::events::schedule_rule(event);
                (!rule.contains(SUMMARY_RULE)).then(|| Outcome::ignored(format!("schedule {rule} is not the incident summary schedule")))
            }
            other => Some(Outcome::ignored(format!("{} is not handled by recovery", other.detail_type()))),
        }
    }

    async fn dispatch(&self, incoming: Incoming) -> Result<Outcome, Error> {
        match incoming {
            Incoming::TaskStateChange(event) => self.on_task(&event.detail, event.id.as_deref()).await,
            Incoming::Scheduled(event) => match Self::screen(&Incoming::Scheduled(event), &self.env.config) {
                Some(settled) => Ok(settled),
                None => self.on_summary_schedule().await,
            },
            other => {
                tracing::info!(detail_type = other.detail_type(), "not handled by recovery");
                Ok(Outcome::ignored(format!("{} is not handled by recovery", other.detail_type())))
            }
        }
    }
}

/// The answer for a task event that needs no AWS call (see `Recovery::screen`), or `None`.
fn screen_task(t: &TaskStateChange, config: &Config) -> Option<Outcome> {
    if t.last_status != "STOPPED" {
        return Some(Outcome::ignored(format!("lastStatus {} is not STOPPED", t.last_status)));
    }
    if !config.manages_cluster(&t.cluster_arn) {
        tracing::info!(cluster = %t.cluster_arn, "cluster not managed (AUTOPILOT_CLUSTERS)");
        return Some(Outcome::ignored(format!("cluster {} is not managed", cluster_name(&t.cluster_arn))));
    }
    // Only what the event alone settles: whose exit decides is the task definition's to say.
    let class = classify::classify(t, None)?;
    settle(&Stopped::new(t, class))
}

/// The answer for a classified stop that needs nothing done: a normal stop, or one not recognised.
fn settle(s: &Stopped) -> Option<Outcome> {
    if s.class.is_normal() {
        log_stop(s);
        return Some(Outcome::handled(s, Action::none("a normal stop")));
    }
    if s.class == StopClass::Unknown {
        log_stop(s);
        tracing::warn!(task = %s.task_id, "stop reason not recognised: no action");
        return Some(Outcome::handled(s, Action::none("stop reason not recognised")));
    }
    None
}

fn log_stop(s: &Stopped) {
    let t = s.t;
    tracing::info!(
        task = %s.task_id, cluster = %s.cluster, revision = %s.revision, group = t.group.as_deref().unwrap_or("-"),
        class = s.class.label(), stop_code = t.stop_code.as_deref().unwrap_or("-"), stopped_reason = t.stopped_reason.as_deref().unwrap_or("-"),
        "task stopped"
    );
}

impl Recovery {
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    pub fn with_ecs(mut self, ecs: ecs::Client) -> Self {
        self.aws.ecs = ecs;
        self
    }

    pub fn with_elb(mut self, elb: elbv2::Client) -> Self {
        self.aws.elb = elb;
        self
    }

    fn now(&self) -> u64 {
        (self.clock)()
    }

    /// `event_id` names the delivery (the task's ARN without one): the delivery that opens an
    /// incident's window sends its first message, a retry of it too.
    async fn on_task(&self, t: &TaskStateChange, event_id: Option<&str>) -> Result<Outcome, Error> {
        let opener = event_id.filter(|id| !id.is_empty()).unwrap_or(&t.task_arn);
        if let Some(answer) = screen_task(t, &self.env.config) {
            return Ok(answer);
        }
        let class = match classify::classify(t, None) {
            Some(class) => class,
            None => {
                let essential = self.essential_containers(t).await?;
                classify::classify(t, Some(&essential)).unwrap_or(StopClass::Unknown)
            }
        };
        let s = Stopped::new(t, class);
        if let Some(answer) = settle(&s) {
            return Ok(answer);
        }
        log_stop(&s);
        match t.service_name() {
            Some(service) => self.on_service_task(&s, opener, service).await,
            None => self.on_standalone_task(&s, opener).await,
        }
    }

    /// The containers the stopped task's definition marks essential (DescribeTaskDefinition, once
    /// per revision for the life of this container). Every container of the event when the event
    /// names no task definition or ECS no longer describes it.
    async fn essential_containers(&self, t: &TaskStateChange) -> Result<Arc<BTreeSet<String>>, Error> {
        let Some(td) = t.task_definition_arn.as_deref() else {
            tracing::warn!(task = %t.task_arn, "the event names no task definition: every container counts as essential");
            return Ok(Arc::new(classify::all_containers(t)));
        };
        if let Some(known) = self.essentials.lock().unwrap_or_else(|p| p.into_inner()).get(td) {
            return Ok(known.clone());
        }
        let Some(essential) = self.aws.essential_containers(td).await? else {
            tracing::warn!(task_definition = td, "ECS does not describe the task definition: every container counts as essential");
            return Ok(Arc::new(classify::all_containers(t)));
        };
        let essential = Arc::new(essential);
        let mut cache = self.essentials.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= ESSENTIALS_CACHED {
            cache.clear();
        }
        cache.insert(td.to_string(), essential.clone());
        Ok(essential)
    }
}
