//! Re-runs of failed standalone tasks (`autopilot:restart`): observe the task (DescribeTasks),
//! decide (plan: policy, network, the lineage's restart counter), act (RunTask), record (the
//! restart claim and the counter), notify (incident.rs, or a one-off message).

use std::time::Duration;

use autopilot::tags::Tags;
use autopilot::Error;
use serde_json::{json, Value};

use crate::classify::Stopped;
use crate::outcome::{About, Action, Outcome};
use crate::aws::RunTaskAnswer;
use crate::restart::{self, RestartClaim, RestartDecision};
use crate::{messages, Recovery};

pub(crate) const PK_RESTART: &str = "recovery#restart";
pub(crate) const PK_LINEAGE: &str = "recovery#lineage";
/// The lineage record's counter (an attribute of its own, which `get` reads into `data`).
const RESTARTS: &str = "restarts";

const RESTART_MEMORY: Duration = Duration::from_secs(30 * 24 * 3600);

/// How long a delivery waits for another one that is re-running the same stopped task (a
/// RunTask takes a second or two), checking every IN_FLIGHT_WAIT.
const IN_FLIGHT_CHECKS: u32 = 8;
const IN_FLIGHT_WAIT: Duration = Duration::from_millis(1500);

/// The end of a restart claim's lease: this invocation's deadline, or Lambda's longest
/// invocation (15 minutes) when it has none.
fn lease_until() -> u64 {
    let deadline = autopilot::runtime::invocation_deadline().unwrap_or_else(|| std::time::SystemTime::now() + Duration::from_secs(900));
    deadline.duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() + 1).unwrap_or(0)
}

const NOT_OPTED_IN: &str = "not tagged autopilot:restart";

/// What a delivery finds when it claims a stopped task's re-run.
enum Claimed {
    /// The claim is this delivery's: run RunTask attempt `n` (its clientToken).
    Run(u32),
    /// Handled before (the re-run, if any) or being handled now by another delivery.
    Handled(Option<String>),
}

impl Recovery {
    pub(crate) async fn on_standalone_task(&self, s: &Stopped<'_>, opener: &str) -> Result<Outcome, Error> {
        let Some((task, relaunch)) = self.aws.describe_task(&s.t.cluster_arn, &s.t.task_arn).await? else {
            tracing::warn!(task = %s.task_id, "ECS no longer describes the task: its tags (autopilot:restart) are unknown");
            return Ok(Outcome::handled(s, Action::none("the task is no longer described by ECS")));
        };
        let tags = &task.tags;
        let name = restart::task_name(&s.cluster, s.family());

        // The policy and the network come first: neither depends on the counter.
        match restart::decide_restart(tags, &s.task_id, 0) {
            Ok(RestartDecision::NotOptedIn) => {
                tracing::info!(task = %s.task_id, "not tagged autopilot:restart: left alone");
                return Ok(Outcome::handled(s, Action::none(NOT_OPTED_IN)));
            }
            Err(e) => return Err(self.refuse(s, &name, format!("cannot re-run: {e}")).await),
            Ok(_) => {}
        }
        let network = match restart::rerun_network(&task) {
            Ok(network) => network,
            Err(why) => return Err(self.refuse(s, &name, format!("cannot re-run: {why}")).await),
        };

        if self.env.config.dry_run {
            let (restarts, _) = self.restarts(&restart::lineage_key(&s.cluster, &restart::lineage_of(tags, &s.task_id))).await?;
            let decision = restart::decide_restart(tags, &s.task_id, restarts).map_err(|e| Error::tag(&s.task_id, e))?;
            let (Some((what, n)), Some(key)) = (messages::restart_dry_run(s, &name, &decision), restart::dry_run_restart_key(&s.cluster, &s.t.task_arn, &decision)) else {
                return Ok(Outcome::handled(s, Action::none(NOT_OPTED_IN)));
            };
            self.env.notifier.publish_once(&self.env.state, &key, self.env.config.notification_window, &n).await?;
            return Ok(Outcome::handled(s, Action::Notified { reason: what, about: About::RestartDryRun { dry_run: true } }));
        }

        // A replayed or repeated event about this task re-runs nothing: the restart claim holds
        // the RunTask attempt (its clientToken), released for the next delivery when it failed.
        let run_attempt = match self.claim_restart(s).await? {
            Claimed::Run(run_attempt) => run_attempt,
            Claimed::Handled(new_task) => {
                let reason = "already handled: this stopped task was re-run or refused before".to_string();
                return Ok(Outcome::handled(s, Action::None { reason, about: About::AlreadyHandled { new_task } }));
            }
        };
        let decision = match self.reserve_restart(s, tags).await {
            Ok(d) => d,
            Err(e) => {
                self.release_claim(s, run_attempt, false).await;
                return Err(e);
            }
        };
        let (lineage, attempt, limit) = match decision {
            RestartDecision::Rerun { lineage, attempt, limit } => (lineage, attempt, limit),
            RestartDecision::LimitReached { lineage, limit } => {
                let (what, n) = messages::restart_limit(s, &name, &lineage, limit);
                self.env.notifier.publish_once(&self.env.state, &restart::restart_limit_key(&s.cluster, &lineage), RESTART_MEMORY, &n).await?;
                let _ = self.env.state.put(PK_RESTART, &s.t.task_arn, &json!({"status": "limit"}), RESTART_MEMORY).await;
                return Ok(Outcome::handled(s, Action::Notified { reason: what, about: About::RestartLimit { lineage } }));
            }
            RestartDecision::NotOptedIn => {
                self.release_claim(s, run_attempt, false).await;
                return Ok(Outcome::handled(s, Action::none(NOT_OPTED_IN)));
            }
        };

        let Some(rerun) = restart::rerun(&task, s.t.task_definition_arn.as_deref(), &s.t.task_arn, run_attempt, &lineage, network) else {
            let _ = self.release_restart(&restart::lineage_key(&s.cluster, &lineage)).await;
            self.release_claim(s, run_attempt, false).await;
            return Err(Error::Refused(format!("task {} names no task definition", s.task_id)));
        };
        let started = match self.aws.run_task(&s.t.cluster_arn, &relaunch, &rerun).await {
            Ok(RunTaskAnswer::Started(arn)) => Ok(arn),
            Ok(RunTaskAnswer::NotPlaced(failures)) => {
                tracing::warn!(task = %s.task_id, run_attempt, failures = ?failures, "ECS started no task: the next delivery tries again with a new clientToken");
                let error = Error::Aws {
                    service: "ecs",
                    operation: "RunTask",
                    code: "NoTaskStarted".into(),
                    message: if failures.is_empty() { "no task was placed".into() } else { failures.join("; ") },
                    // Capacity comes and goes: EventBridge's retry may find room.
                    retryable: true,
                };
                Err((true, error))
            }
            Err(e) => Err((false, e)),
        };
        let new_task = match started {
            Ok(arn) => arn,
            Err((not_placed, e)) => {
                // Give the restart back so EventBridge's retry can do it: with the next token when
                // ECS started nothing, with the same one when its answer may have been lost.
                let _ = self.release_restart(&restart::lineage_key(&s.cluster, &lineage)).await;
                self.release_claim(s, run_attempt, not_placed).await;
                return Err(e);
            }
        };
        let _ = self.env.state.put(PK_RESTART, &s.t.task_arn, &restart::claim_started(&new_task, run_attempt), RESTART_MEMORY).await;
        tracing::info!(task = %s.task_id, new_task = %new_task, attempt, limit, lineage = %lineage, run_attempt, not_carried = ?rerun.not_carried, "re-ran the stopped task");

        let what = messages::restarted(&new_task, attempt, limit, &rerun.not_carried);
        let mut fields = vec![("newTask", json!(new_task)), ("restart", json!(attempt)), ("restartLimit", json!(limit)), ("lineage", json!(lineage))];
        if !rerun.not_carried.is_empty() {
            fields.push(("notCarried", json!(rerun.not_carried)));
        }
        let sent = self.notify_incident(s, opener, &restart::task_scope(&s.cluster), &name, &what, &messages::restarted_short(attempt, limit), &fields).await?;
        Ok(Outcome::handled(s, Action::Restarted { reason: what, new_task, restart: attempt, restart_limit: limit, lineage, notified: sent, not_carried: rerun.not_carried }))
    }

    /// Take the stopped task's restart claim (a first delivery, one after a delivery that failed
    /// and released it, or one after a delivery that died holding it), or find it handled
    /// before. Another delivery running it now (another event about the same task) is waited
    /// for a little; if it is still running, this delivery fails retryably and its retry finds
    /// the outcome.
    async fn claim_restart(&self, s: &Stopped<'_>) -> Result<Claimed, Error> {
        let starting = |run_attempt| restart::claim_starting(run_attempt, lease_until());
        for round in 0..IN_FLIGHT_CHECKS {
            if self.env.state.create(PK_RESTART, &s.t.task_arn, &starting(1), RESTART_MEMORY).await? {
                return Ok(Claimed::Run(1));
            }
            let Some(previous) = self.env.state.get(PK_RESTART, &s.t.task_arn).await? else { continue };
            match restart::read_claim(&previous.data, autopilot::state::now_epoch()) {
                RestartClaim::Held { new_task } => return Ok(Claimed::Handled(new_task)),
                RestartClaim::InFlight => tokio::time::sleep(IN_FLIGHT_WAIT).await,
                RestartClaim::Retry { run_attempt } => match self.env.state.put_if_version(PK_RESTART, &s.t.task_arn, &starting(run_attempt), RESTART_MEMORY, previous.version).await {
                    Ok(_) => {
                        tracing::info!(task = %s.task_id, run_attempt, "an earlier delivery's re-run failed or never finished: trying again with its clientToken");
                        return Ok(Claimed::Run(run_attempt));
                    }
                    // Another delivery took it over first: look again.
                    Err(Error::Conflict(_)) => tokio::time::sleep(autopilot::state::conflict_backoff(round as usize)).await,
                    Err(e) => return Err(e),
                },
            }
        }
        Err(Error::Conflict(format!("task {}: another delivery is re-running it now", s.task_id)))
    }

    /// Release the restart claim for the next delivery (restart::claim_after). Best effort: a
    /// claim left held makes the next delivery answer "already handled", as it always has.
    async fn release_claim(&self, s: &Stopped<'_>, run_attempt: u32, not_placed: bool) {
        if let Err(e) = self.env.state.put(PK_RESTART, &s.t.task_arn, &restart::claim_after(run_attempt, not_placed), RESTART_MEMORY).await {
            tracing::warn!(task = %s.task_id, error = %e, "could not release the restart claim");
        }
    }

    /// Tell the task's owner why it is not re-run (once per stopped task); the error fails the
    /// invocation without a retry (a tag must change first).
    async fn refuse(&self, s: &Stopped<'_>, name: &str, why: String) -> Error {
        tracing::warn!(task = %s.task_id, why = %why, "re-run refused");
        let n = messages::refused(s, name, &why);
        if let Err(e) = self.env.notifier.publish_once(&self.env.state, &restart::refused_key(&s.t.task_arn), self.env.config.notification_window, &n).await {
            return e;
        }
        Error::Refused(format!("task {} ({}): {why}", s.task_id, s.revision))
    }

    /// (restarts made, record version) for a lineage.
    async fn restarts(&self, key: &str) -> Result<(u32, u64), Error> {
        let rec = self.env.state.get(PK_LINEAGE, key).await?;
        Ok(rec.map_or((0, 0), |r| (r.data.get("restarts").and_then(Value::as_u64).unwrap_or(0) as u32, r.version)))
    }

    /// Decide against the lineage counter and, for a re-run, count it: one UpdateItem that adds
    /// the restart only while the lineage is below its limit (`StateStore::add_bounded`), so
    /// concurrent re-runs of one lineage never exceed it and never retry for a conflict.
    async fn reserve_restart(&self, s: &Stopped<'_>, tags: &Tags) -> Result<RestartDecision, Error> {
        let key = restart::lineage_key(&s.cluster, &restart::lineage_of(tags, &s.task_id));
        let decision = restart::decide_restart(tags, &s.task_id, 0).map_err(|e| Error::tag(&s.task_id, e))?;
        let RestartDecision::Rerun { limit, .. } = decision else { return Ok(decision) };
        let restarts = match self.env.state.add_bounded(PK_LINEAGE, &key, RESTARTS, 1, Some(limit as u64), RESTART_MEMORY).await? {
            // This restart is the `attempt`-th: decided as if `attempt - 1` had been made.
            Some(attempt) => attempt.saturating_sub(1) as u32,
            None => limit,
        };
        restart::decide_restart(tags, &s.task_id, restarts).map_err(|e| Error::tag(&s.task_id, e))
    }

    /// Give a restart back (its re-run did not start): one UpdateItem, never below zero.
    async fn release_restart(&self, key: &str) -> Result<(), Error> {
        self.env.state.add_bounded(PK_LINEAGE, key, RESTARTS, -1, None, RESTART_MEMORY).await.map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    //! The handler end to end where moto cannot help: moto 5.2.1's RunTask cannot start an awsvpc
    //! task, so ECS is mocked.
    use std::sync::{Arc, Mutex};

    use autopilot::aws_sdk_ecs as ecs;
    use autopilot::config::Config;
    use autopilot::runtime::{Env, Function};
    use autopilot::state::StateStore;
    use autopilot::Notifier;
    use aws_smithy_mocks::mock;
    use serde_json::{json, Value};

    use super::{PK_LINEAGE, PK_RESTART};
    use crate::mock::{ecs_client, ecs_client_without_retries, sdk, sns_client};
    use crate::restart::{self, RestartClaim};
    use crate::Recovery;

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

    /// DescribeTaskDefinition of the job: its containers and their `essential` flags (`None`:
    /// not set, which ECS reads as essential).
    fn job_definition(containers: &[(&'static str, Option<bool>)]) -> aws_smithy_mocks::Rule {
        let containers = containers.to_vec();
        mock!(ecs::Client::describe_task_definition).match_requests(|r| r.task_definition() == Some(JOB_TD)).then_output(move || {
            let mut td = ecs::types::TaskDefinition::builder().task_definition_arn(JOB_TD).family("nightly-report");
            for (name, essential) in &containers {
                td = td.container_definitions(
                    ecs::types::ContainerDefinition::builder()
                        .name(*name)
                        .set_essential(*essential)
                        .environment(ecs::types::KeyValuePair::builder().name("REPORT_DB_PASSWORD").value("s3cr3t-td").build())
                        .build(),
                );
            }
            ecs::operation::describe_task_definition::DescribeTaskDefinitionOutput::builder().task_definition(td.build()).build()
        })
    }

    /// The job's STOPPED event with its containers' exit codes.
    fn job_event_with(id: &str, task: &str, containers: Value) -> Value {
        let mut e = job_event(id);
        e["detail"]["taskArn"] = json!(task);
        e["detail"]["containers"] = containers;
        e
    }

    fn describe_job(tags: &'static [(&'static str, &'static str)]) -> aws_smithy_mocks::Rule {
        mock!(ecs::Client::describe_tasks).then_output(move || ecs::operation::describe_tasks::DescribeTasksOutput::builder().tasks(awsvpc_task(tags)).build())
    }

    fn plain_env() -> Env {
        Env::from_parts(Config::default(), sdk(), StateStore::memory(), Notifier::new(None, false))
    }

    #[tokio::test]
    async fn awsvpc_rerun_needs_the_security_group_tag() {
        let describe = mock!(ecs::Client::describe_tasks)
            .then_output(|| ecs::operation::describe_tasks::DescribeTasksOutput::builder().tasks(awsvpc_task(&[("autopilot:restart", "on-failure")])).build());
        let run = mock!(ecs::Client::run_task).then_output(|| ecs::operation::run_task::RunTaskOutput::builder().build());
        let td = job_definition(&[("nightly-report", None)]);
        let f = Recovery::new(plain_env()).with_ecs(ecs_client(&[&td, &describe, &run]));
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
        let td = job_definition(&[("nightly-report", Some(true))]);
        let f = Recovery::new(plain_env()).with_ecs(ecs_client(&[&td, &describe, &run]));
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
        let f = Recovery::new(plain_env()).with_ecs(ecs_client(&[&td, &describe, &fail]));
        let err = f.handle(job_event("e-2")).await.unwrap_err();
        assert!(err.retryable() && err.to_string().contains("RESOURCE:MEMORY"), "{err}");
        let claim = f.env.state.get(PK_RESTART, JOB_TASK).await.unwrap().expect("the claim keeps the RunTask attempt");
        assert_eq!(restart::read_claim(&claim.data, autopilot::state::now_epoch()), RestartClaim::Retry { run_attempt: 2 }, "claim released, for the next clientToken");
        let lineage = f.env.state.get(PK_LINEAGE, "stage01/5b2a3a1f6c8e4d2a9f0b7c1d3e5f7a90").await.unwrap();
        assert_eq!(lineage.map(|r| r.data["restarts"].clone()), Some(json!(0)), "restart given back");
    }

    fn started(arn: &'static str) -> ecs::operation::run_task::RunTaskOutput {
        ecs::operation::run_task::RunTaskOutput::builder().tasks(ecs::types::Task::builder().task_arn(arn).build()).build()
    }

    /// Issue 14 item 7. ECS remembers a RunTask clientToken for 24 hours and answers a repeated
    /// request with the first answer ("Ensuring idempotency", ECS API reference); whether a
    /// `failures` answer (nothing started) is replayed is not documented. So: after ECS answered
    /// with failures, the next delivery uses a new token (else a replayed failure could stop every
    /// retry); after an answer that never came, the same token (else ECS would start a second
    /// task). On main every delivery sent the same token.
    #[tokio::test]
    async fn a_failures_answer_is_retried_with_a_new_token_and_a_lost_answer_with_the_same() {
        const SG: &[(&str, &str)] = &[("autopilot:restart", "on-failure:2"), ("autopilot:security-groups", "sg-1")];
        let tokens: Arc<Mutex<Vec<String>>> = Arc::default();
        let capture = tokens.clone();
        let run = mock!(ecs::Client::run_task)
            .match_requests(move |r| {
                capture.lock().unwrap().push(r.client_token().unwrap_or_default().to_string());
                true
            })
            .sequence()
            .output(|| ecs::operation::run_task::RunTaskOutput::builder().failures(ecs::types::Failure::builder().reason("RESOURCE:MEMORY").detail("no room").build()).build())
            .http_status(503, None)
            .output(|| started("arn:aws:ecs:us-east-1:123456789012:task/stage01/rerun"))
            .repeatedly()
            .build();
        let (td, describe) = (job_definition(&[("nightly-report", None)]), describe_job(SG));
        let f = Recovery::new(plain_env()).with_ecs(ecs_client_without_retries(&[&td, &describe, &run]));

        // 1. ECS answers with failures: nothing started, the invocation fails for a retry.
        let err = f.handle(job_event("e-1")).await.unwrap_err();
        assert!(err.retryable() && err.to_string().contains("RESOURCE:MEMORY: no room"), "{err}");
        // 2. Lambda's retry of the same event: its answer never comes (503).
        let err = f.handle(job_event("e-1")).await.unwrap_err();
        assert!(err.retryable(), "{err}");
        // 3. The next retry is answered: the re-run.
        let out = f.handle(job_event("e-1")).await.unwrap();
        assert_eq!((out["action"].as_str(), out["newTask"].as_str(), out["restart"].as_u64()), (Some("restarted"), Some("arn:aws:ecs:us-east-1:123456789012:task/stage01/rerun"), Some(1)), "{out}");

        let id = "5b2a3a1f6c8e4d2a9f0b7c1d3e5f7a90";
        assert_eq!(*tokens.lock().unwrap(), [format!("autopilot-{id}"), format!("autopilot-{id}-2"), format!("autopilot-{id}-2")], "a new token after failures, the same after a lost answer");
        let lineage = f.env.state.get(PK_LINEAGE, &format!("stage01/{id}")).await.unwrap().unwrap();
        assert_eq!(lineage.data["restarts"], 1, "one restart counted for one re-run");
        let claim = f.env.state.get(PK_RESTART, JOB_TASK).await.unwrap().unwrap();
        assert_eq!(claim.data, json!({"status": "started", "newTask": "arn:aws:ecs:us-east-1:123456789012:task/stage01/rerun", "runAttempt": 2}));

        // Another delivery about the same stopped task: nothing more.
        let again = f.handle(job_event("e-2")).await.unwrap();
        assert_eq!((again["action"].as_str(), again["newTask"].as_str()), (Some("none"), Some("arn:aws:ecs:us-east-1:123456789012:task/stage01/rerun")), "{again}");
        assert_eq!(run.num_calls(), 3);
    }

    /// A RunTask answered with ConflictException (the token was used before with other
    /// parameters) names the task that request started (`resourceIds`, ECS RunTask API
    /// reference): that task is the re-run, and no other is started.
    #[tokio::test]
    async fn a_conflict_names_the_task_already_started_for_the_token() {
        const SG: &[(&str, &str)] = &[("autopilot:restart", "on-failure"), ("autopilot:security-groups", "sg-1")];
        let run = mock!(ecs::Client::run_task).then_error(|| {
            ecs::operation::run_task::RunTaskError::ConflictException(
                ecs::types::error::ConflictException::builder().message("clientToken in use").resource_ids("arn:aws:ecs:us-east-1:123456789012:task/stage01/first").build(),
            )
        });
        let (td, describe) = (job_definition(&[("nightly-report", None)]), describe_job(SG));
        let f = Recovery::new(plain_env()).with_ecs(ecs_client_without_retries(&[&td, &describe, &run]));
        let out = f.handle(job_event("e-1")).await.unwrap();
        assert_eq!((out["action"].as_str(), out["newTask"].as_str()), (Some("restarted"), Some("arn:aws:ecs:us-east-1:123456789012:task/stage01/first")), "{out}");
        assert_eq!(run.num_calls(), 1);
    }

    /// Issue 14 item 8: the re-run is given what DescribeTasks reports and RunTask accepts
    /// (research note §5): the capacity provider as a one-provider strategy and no launchType
    /// with it ("If a capacityProviderStrategy is specified, the launchType parameter must be
    /// omitted", RunTask API reference), the platform version, ECS Exec, the task-level
    /// overrides, ECS managed tags asked for again (the `aws:` ones cannot be copied); what it
    /// cannot be given back (an EBS volume configured at launch) is named in the outcome and the
    /// notification. On main the managed tags and the EBS volume went silently.
    #[tokio::test]
    async fn the_rerun_carries_what_ecs_reports_and_names_what_it_cannot() {
        let describe = mock!(ecs::Client::describe_tasks).then_output(|| {
            let task = ecs::types::Task::builder()
                .task_arn(JOB_TASK)
                .task_definition_arn(JOB_TD)
                .last_status("STOPPED")
                .launch_type(ecs::types::LaunchType::Fargate)
                .capacity_provider_name("FARGATE_SPOT")
                .platform_version("1.4.0")
                .platform_family("Linux")
                .enable_execute_command(true)
                .group("family:nightly-report")
                .started_by("events-rule/nightly-report")
                // Effective sizes, not overrides: never sent as such.
                .cpu("1024")
                .memory("4096")
                .overrides(
                    ecs::types::TaskOverride::builder()
                        .container_overrides(ecs::types::ContainerOverride::builder().name("nightly-report").environment(ecs::types::KeyValuePair::builder().name("REPORT_DB_PASSWORD").value("s3cr3t-override").build()).build())
                        .cpu("1024")
                        .memory("4096")
                        .ephemeral_storage(ecs::types::EphemeralStorage::builder().size_in_gib(30).build())
                        .task_role_arn("arn:aws:iam::123456789012:role/report-task")
                        .execution_role_arn("arn:aws:iam::123456789012:role/report-exec")
                        .build(),
                )
                .attachments(ecs::types::Attachment::builder().r#type("ElasticNetworkInterface").details(ecs::types::KeyValuePair::builder().name("subnetId").value("subnet-0c4f1a2b3d5e6f708").build()).build())
                .attachments(
                    ecs::types::Attachment::builder()
                        .r#type("AmazonElasticBlockStorage")
                        .details(ecs::types::KeyValuePair::builder().name("roleArn").value("arn:aws:iam::123456789012:role/ebs").build())
                        .details(ecs::types::KeyValuePair::builder().name("volumeName").value("data").build())
                        .details(ecs::types::KeyValuePair::builder().name("volumeId").value("vol-0123456789abcdef0").build())
                        .build(),
                )
                .tags(ecs::types::Tag::builder().key("autopilot:restart").value("on-failure").build())
                .tags(ecs::types::Tag::builder().key("autopilot:security-groups").value("sg-1").build())
                .tags(ecs::types::Tag::builder().key("aws:ecs:clusterName").value("stage01").build());
            ecs::operation::describe_tasks::DescribeTasksOutput::builder().tasks(task.build()).build()
        });
        let seen: Arc<Mutex<Option<ecs::operation::run_task::RunTaskInput>>> = Arc::default();
        let capture = seen.clone();
        let run = mock!(ecs::Client::run_task)
            .match_requests(move |r| {
                *capture.lock().unwrap() = Some(r.clone());
                true
            })
            .then_output(|| started("arn:aws:ecs:us-east-1:123456789012:task/stage01/rerun"));
        let sent: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
        let capture = sent.clone();
        let publish = mock!(autopilot::aws_sdk_sns::Client::publish)
            .match_requests(move |r| {
                capture.lock().unwrap().push((r.subject().unwrap_or_default().to_string(), r.message().unwrap_or_default().to_string()));
                true
            })
            .then_output(|| autopilot::aws_sdk_sns::operation::publish::PublishOutput::builder().message_id("m-1").build());
        const TOPIC: &str = "arn:aws:sns:us-east-1:123456789012:autopilot-notifications";
        let env = Env::from_parts(Config { topic_arn: Some(TOPIC.into()), ..Config::default() }, sdk(), StateStore::memory(), Notifier::new(Some((sns_client(&[&publish]), TOPIC.into())), false));
        let td = job_definition(&[("nightly-report", None)]);
        let f = Recovery::new(env).with_ecs(ecs_client(&[&td, &describe, &run]));
        let out = f.handle(job_event("e-1")).await.unwrap();
        assert_eq!(out["action"], "restarted", "{out}");
        assert_eq!(out["notCarried"], json!(["volumeConfigurations (EBS volume data)"]), "{out}");

        let req = seen.lock().unwrap().clone().expect("RunTask called");
        let strategy: Vec<(Option<&str>, i32, i32)> = req.capacity_provider_strategy().iter().map(|s| (Some(s.capacity_provider()), s.weight(), s.base())).collect();
        assert_eq!(strategy, [(Some("FARGATE_SPOT"), 1, 0)]);
        assert_eq!(req.launch_type(), None, "never launchType with a capacity provider strategy");
        assert_eq!((req.platform_version(), req.enable_execute_command(), req.enable_ecs_managed_tags()), (Some("1.4.0"), Some(true), Some(true)));
        let o = req.overrides().expect("overrides");
        assert_eq!((o.cpu(), o.memory(), o.ephemeral_storage().map(|e| e.size_in_gib())), (Some("1024"), Some("4096"), Some(30)));
        assert_eq!((o.task_role_arn(), o.execution_role_arn()), (Some("arn:aws:iam::123456789012:role/report-task"), Some("arn:aws:iam::123456789012:role/report-exec")));
        assert_eq!(o.container_overrides()[0].environment()[0].value(), Some("s3cr3t-override"));
        assert!(req.tags().iter().all(|t| !t.key().unwrap_or_default().starts_with("aws:")), "{:?}", req.tags());
        assert!(req.volume_configurations().is_empty(), "an EBS volume's configuration cannot be read back");
        assert_eq!(req.network_configuration().and_then(|n| n.awsvpc_configuration()).map(|v| v.subnets().to_vec()), Some(vec!["subnet-0c4f1a2b3d5e6f708".to_string()]));

        let sent = sent.lock().unwrap().clone();
        assert_eq!(sent.len(), 1, "{sent:?}");
        let body: Value = serde_json::from_str(&sent[0].1).unwrap();
        assert!(body["content"]["description"].as_str().unwrap().contains("not carried over (ECS does not report it for a stopped task): volumeConfigurations (EBS volume data)"), "{body}");
        // additionalContext values are strings (custom notifications' schema): a list joined by commas.
        assert_eq!(body["metadata"]["additionalContext"]["notCarried"], "volumeConfigurations (EBS volume data)", "{body}");
        assert!(!sent[0].1.contains("s3cr3t"), "{}", sent[0].1);
    }

    /// Issue 14 item 6: an app that exited 0 and a sidecar its task definition marks
    /// `essential: false`, killed with 137 as ECS stopped the task, is a normal exit: no re-run,
    /// no message. The task definition is read once per revision. The event alone cannot say
    /// (ECS's task events carry no `essential` flag), so the screen leaves it to the handler.
    #[tokio::test]
    async fn a_sidecar_killed_after_the_app_exited_0_is_not_a_failure() {
        use autopilot::Incoming;
        const TAGS: &[(&str, &str)] = &[("autopilot:restart", "on-failure"), ("autopilot:security-groups", "sg-1")];
        let killed = |id: &str, task: &str| job_event_with(id, task, json!([{"name": "nightly-report", "exitCode": 0}, {"name": "log-router", "exitCode": 137}]));
        let screen = |e: &Value| Recovery::screen(&Incoming::parse(e.clone()).unwrap(), &Config::default());
        assert_eq!(screen(&killed("s", JOB_TASK)), None, "the event alone cannot say whose exit it is");
        let all_zero = job_event_with("s", JOB_TASK, json!([{"name": "nightly-report", "exitCode": 0}, {"name": "log-router", "exitCode": 0}]));
        assert!(screen(&all_zero).is_some_and(|o| o.to_json()["class"] == "normal-exit"), "every container exited 0: settled without AWS");

        let td = job_definition(&[("nightly-report", None), ("log-router", Some(false))]);
        let (describe, run) = (describe_job(TAGS), mock!(ecs::Client::run_task).then_output(|| started("arn:aws:ecs:us-east-1:123456789012:task/stage01/rerun")));
        let f = Recovery::new(plain_env()).with_ecs(ecs_client(&[&td, &describe, &run]));
        for (n, task) in [JOB_TASK, "arn:aws:ecs:us-east-1:123456789012:task/stage01/0a0b0c0d"].into_iter().enumerate() {
            let out = f.handle(killed(&format!("e-{n}"), task)).await.unwrap();
            assert_eq!((out["class"].as_str(), out["action"].as_str()), (Some("normal-exit"), Some("none")), "{out}");
        }
        assert_eq!((td.num_calls(), describe.num_calls(), run.num_calls()), (1, 0, 0), "one DescribeTaskDefinition for the revision, nothing else");

        // The same exits where the task definition leaves the sidecar essential (the flag
        // absent means essential): its 137 is the task's failure, and the task is re-run.
        let td = job_definition(&[("nightly-report", None), ("log-router", None)]);
        let (describe, run) = (describe_job(TAGS), mock!(ecs::Client::run_task).then_output(|| started("arn:aws:ecs:us-east-1:123456789012:task/stage01/rerun")));
        let f = Recovery::new(plain_env()).with_ecs(ecs_client(&[&td, &describe, &run]));
        let out = f.handle(killed("e-9", JOB_TASK)).await.unwrap();
        assert_eq!((out["class"].as_str(), out["detail"].as_str(), out["action"].as_str()), (Some("crash"), Some("crashed (exit 137)"), Some("restarted")), "{out}");
    }
}
