//! Failed tasks of services: count them in their revision's window (the state table), and on a
//! crash loop observe the service (DescribeServices and the deployer's records), decide the
//! rollback (plan), act (UpdateService), record (the claim and the deployment record), notify.

use std::time::Duration;

use autopilot::state::{Counted, Tally};
use autopilot::Error;
use serde_json::json;

use crate::classify::Stopped;
use crate::outcome::{About, Action, Outcome, Window};
use crate::plan::{self, FailureWindow, RollbackDecision, RollbackInputs, ServiceFailure};
use crate::{messages, Recovery, CAS_ATTEMPTS};

const PK_FAILURES: &str = "recovery#failures";
const PK_ROLLBACK: &str = "recovery#rollback";

const ROLLBACK_MEMORY: Duration = Duration::from_secs(7 * 24 * 3600);
const DEPLOYMENT_MEMORY: Duration = Duration::from_secs(90 * 24 * 3600);

/// Where a crash loop ends up in one invocation.
enum CrashLoop {
    /// Rolled back (or, in a dry run, would be): the outcome, whose message was sent.
    RolledBack(Outcome),
    Reported(ServiceFailure),
}

/// What a stop of a service that is not opted in answers under `RecoveryNotify=opted-in`.
pub const NOT_OPTED_IN_SERVICE: &str = "the service is not opted in to autopilot (RecoveryNotify=opted-in)";

/// How long a service's opt-in is trusted (a tag added now is seen within this time).
pub(crate) const OPT_IN_TTL: std::time::Duration = std::time::Duration::from_secs(300);

impl Recovery {
    pub(crate) async fn on_service_task(&self, s: &Stopped<'_>, opener: &str, service: &str) -> Result<Outcome, Error> {
        if self.env.config.recovery_notify_opted_in && !self.opted_in(&s.t.cluster_arn, service).await? {
            tracing::info!(service, "not opted in to autopilot (AUTOPILOT_RECOVERY_NOTIFY=opted-in): nothing counted or told");
            return Ok(Outcome::handled(s, Action::none(NOT_OPTED_IN_SERVICE)));
        }
        let scope = plan::service_scope(&s.cluster, service);
        if !s.class.is_failure() {
            // Infrastructure: not the revision's fault, ECS replaces the task; say it once.
            let what = messages::REPLACED_BY_ECS.to_string();
            let sent = self.notify_incident(s, opener, &scope, &scope, &what, "replaced by ECS", &[("service", json!(service))]).await?;
            return Ok(Outcome::handled(s, Action::notified_if(sent, what, About::Service { service: service.into(), window: None })));
        }

        let window_secs = self.env.config.crash_loop_window.as_secs();
        let threshold = self.env.config.crash_loop_threshold as usize;
        let failures = self.record_failure(&plan::revision_key(&s.cluster, service, &s.revision), opener, window_secs).await?;
        let window = FailureWindow { failures, threshold, window_secs };
        let crash_loop = window.crash_loop();
        tracing::info!(service, revision = %s.revision, failures, threshold, window_secs, crash_loop, "service task failed");

        let failure = if crash_loop {
            match self.crash_loop(s, service, failures).await? {
                CrashLoop::RolledBack(outcome) => {
                    // The rollback message is this incident's message: later tasks fold into it.
                    self.touch_incident(s, opener, &scope).await?;
                    return Ok(outcome);
                }
                CrashLoop::Reported(failure) => failure,
            }
        } else {
            ServiceFailure::Replaced
        };
        let what = messages::service_failure(&s.revision, &window, &failure);
        let fields = [("service", json!(service)), ("failuresInWindow", json!(failures)), ("crashLoopThreshold", json!(threshold)), ("crashLoop", json!(crash_loop))];
        let sent = self.notify_incident(s, opener, &scope, &scope, &what, messages::service_failure_short(&window), &fields).await?;
        let about = About::Service { service: service.into(), window: Some(Window { failures_in_window: failures, crash_loop }) };
        Ok(Outcome::handled(s, Action::notified_if(sent, what, about)))
    }

    /// Whether the service carries one of autopilot's opt-in tags (issue 17, item 7: with
    /// `RecoveryNotify=opted-in`, an incident across hundreds of other services tells no one).
    /// Read once per service per [`OPT_IN_TTL`] and container: one DescribeServices, not one per
    /// stopped task.
    async fn opted_in(&self, cluster: &str, service: &str) -> Result<bool, Error> {
        let key = format!("{}/{service}", autopilot::config::cluster_name(cluster));
        if let Some(opted) = self.opt_ins.get(&key) {
            return Ok(opted);
        }
        let opted = self.aws.describe_service(cluster, service).await?.is_some_and(|svc| plan::opted_in(&svc.tags));
        self.opt_ins.put(&key, opted);
        Ok(opted)
    }

    /// Count one failed task in the revision's window; returns the failures in the last `window`
    /// seconds (plan::failures_in_window). One UpdateItem (`StateStore::tally`: `ADD #n :one`
    /// while the window is open), so that a burst of failing tasks never races on the record;
    /// the window opens with a revision's first failure and lasts `window` seconds, the next
    /// failure after it opens the next one (a second UpdateItem), keeping the closed one's count.
    async fn record_failure(&self, key: &str, opener: &str, window: u64) -> Result<usize, Error> {
        let ttl = Duration::from_secs(window * 2 + 60);
        for round in 0..CAS_ATTEMPTS {
            let now = self.now();
            match self.env.state.tally(PK_FAILURES, key, opener, now, window, &json!({}), ttl).await? {
                Counted::Open(t) => return Ok(plan::failures_in_window(&t, now, window)),
                Counted::Closed(seen) => {
                    let data = plan::failure_window_data(&seen);
                    if self.env.state.reopen(PK_FAILURES, key, &seen, false, opener, now, &data, ttl).await? {
                        let opened = Tally { since: now, count: 1, told: None, opener: Some(opener.into()), data };
                        return Ok(plan::failures_in_window(&opened, now, window));
                    }
                    // Another failure opened the next window first: count in it.
                    tokio::time::sleep(autopilot::state::conflict_backoff(round)).await;
                }
            }
        }
        Err(Error::Conflict(format!("{PK_FAILURES}/{key}")))
    }

    async fn crash_loop(&self, s: &Stopped<'_>, service: &str, failures: usize) -> Result<CrashLoop, Error> {
        let claim_key = plan::revision_key(&s.cluster, service, &s.revision);
        if self.env.state.get(PK_ROLLBACK, &claim_key).await?.is_some() {
            return Ok(CrashLoop::Reported(ServiceFailure::AlreadyRolledBack));
        }
        let Some(svc) = self.aws.describe_service(&s.t.cluster_arn, service).await? else {
            return Ok(CrashLoop::Reported(ServiceFailure::NotRolledBack(format!("the service {service} is not found"))));
        };
        let (dk, dsk) = autopilot::keys::deployment(&s.cluster, service);
        let (sk, ssk) = autopilot::keys::stable_revision(&s.cluster, service);
        let deployment = self.env.state.get(&dk, &dsk).await?;
        let stable = self.env.state.get(&sk, &ssk).await?;
        let now = self.now();
        let to = match plan::decide_rollback(&RollbackInputs::new(&s.revision, &svc, deployment.as_ref().map(|r| &r.data), stable.as_ref().map(|r| &r.data), now)) {
            RollbackDecision::NotifyOnly(why) => {
                tracing::info!(service, revision = %s.revision, why = %why, "crash loop: no rollback");
                return Ok(CrashLoop::Reported(ServiceFailure::NotRolledBack(why)));
            }
            RollbackDecision::RollBack { to } => to,
        };
        let to_rev = plan::revision(&to);
        let window_secs = self.env.config.crash_loop_window.as_secs();

        if self.env.config.dry_run {
            let (what, n) = messages::rollback(s, service, failures, window_secs, &to_rev, true);
            self.env.notifier.publish_once(&self.env.state, &plan::rollback_dry_run_key(&claim_key), self.env.config.notification_window, &n).await?;
            let about = About::RollbackDryRun { service: service.into(), dry_run: true, rollback_to: to_rev };
            return Ok(CrashLoop::RolledBack(Outcome::handled(s, Action::Notified { reason: what, about })));
        }
        if !self.env.state.create(PK_ROLLBACK, &claim_key, &json!({"to": to, "at": now}), ROLLBACK_MEMORY).await? {
            return Ok(CrashLoop::Reported(ServiceFailure::AlreadyRolledBack));
        }
        // A staged (blue/green, linear, canary) deployment in progress is rolled back by ECS
        // itself; anything else by moving the service to the last stable revision.
        let by_ecs = match plan::rollback_method(svc.strategy.as_deref(), svc.rolling_out) {
            plan::RollbackMethod::StopDeployment => match self.aws.roll_back_deployment_in_progress(&s.t.cluster_arn, service).await {
                Ok(stopped) => stopped,
                Err(e) => {
                    let _ = self.env.state.delete(PK_ROLLBACK, &claim_key).await;
                    return Err(e);
                }
            },
            plan::RollbackMethod::UpdateService => None,
        };
        if by_ecs.is_none() {
            if let Err(e) = self.aws.update_service_task_definition(&s.t.cluster_arn, service, &to).await {
                let _ = self.env.state.delete(PK_ROLLBACK, &claim_key).await;
                return Err(e);
            }
        }
        // A rollback is a verdict on the digest the deployer put there (DESIGN.md): the deployer
        // must not deploy it to this service again. Read from the record before it is replaced.
        if let Some(((pk, sk), verdict)) = autopilot::keys::rollback_verdict(&s.cluster, service, deployment.as_ref().map(|r| &r.data), autopilot::keys::BY_RECOVERY, &to, now) {
            if let Err(e) = self.env.state.create(&pk, &sk, &verdict, autopilot::keys::VERDICT_TTL).await {
                tracing::error!(service, error = %e, "rolled back, but the verdict on the rolled-back digest was not recorded");
            }
        }
        let previous = s.t.task_definition_arn.as_deref().unwrap_or(&s.revision);
        self.env.state.put(&dk, &dsk, &plan::rollback_record(&to, previous, now), DEPLOYMENT_MEMORY).await?;
        tracing::info!(service, from = %s.revision, to = %to_rev, by_ecs = ?by_ecs, "crash loop: rolled back");
        let (what, mut n) = messages::rollback(s, service, failures, window_secs, &to_rev, false);
        if let Some(deployment) = &by_ecs {
            let kind = svc.strategy.as_deref().unwrap_or_default().to_lowercase().replace('_', "/");
            n.description.push_str(&format!(" The {kind} deployment in progress was rolled back by ECS (StopServiceDeployment, stop type ROLLBACK): ECS shifts traffic back to the source revision."));
            n = n.field("serviceDeployment", deployment.clone()).field("rollbackBy", "StopServiceDeployment");
        }
        self.env.notifier.publish(&n).await?;
        Ok(CrashLoop::RolledBack(Outcome::handled(s, Action::RolledBack { reason: what, service: service.into(), rollback_to: to_rev, notified: true })))
    }
}
