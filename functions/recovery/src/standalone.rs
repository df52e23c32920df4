//! Re-runs of failed standalone tasks (`autopilot:restart`): observe the task (DescribeTasks),
//! decide (plan: policy, network, the lineage's restart counter), act (RunTask), record (the
//! restart claim and the counter), notify (incident.rs, or a one-off message).

use std::time::Duration;

use autopilot::tags::Tags;
use autopilot::Error;
use serde_json::{json, Value};

use crate::classify::Stopped;
use crate::outcome::{About, Action, Outcome};
use crate::restart::{self, RestartDecision};
use crate::{messages, Recovery, CAS_ATTEMPTS};

pub(crate) const PK_RESTART: &str = "recovery#restart";
pub(crate) const PK_LINEAGE: &str = "recovery#lineage";

const RESTART_MEMORY: Duration = Duration::from_secs(30 * 24 * 3600);

const NOT_OPTED_IN: &str = "not tagged autopilot:restart";

impl Recovery {
    pub(crate) async fn on_standalone_task(&self, s: &Stopped<'_>) -> Result<Outcome, Error> {
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

        // A replayed or repeated event about this task re-runs nothing (moto and ECS both accept
        // clientToken, but only ECS honours it).
        if !self.env.state.create(PK_RESTART, &s.t.task_arn, &json!({"status": "starting"}), RESTART_MEMORY).await? {
            let previous = self.env.state.get(PK_RESTART, &s.t.task_arn).await?;
            let new_task = previous.as_ref().and_then(|r| r.data.get("newTask")).and_then(Value::as_str).map(str::to_string);
            let reason = "already handled: this stopped task was re-run or refused before".to_string();
            return Ok(Outcome::handled(s, Action::None { reason, about: About::AlreadyHandled { new_task } }));
        }
        let decision = match self.reserve_restart(s, tags).await {
            Ok(d) => d,
            Err(e) => {
                let _ = self.env.state.delete(PK_RESTART, &s.t.task_arn).await;
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
                let _ = self.env.state.delete(PK_RESTART, &s.t.task_arn).await;
                return Ok(Outcome::handled(s, Action::none(NOT_OPTED_IN)));
            }
        };

        let run = match restart::rerun(&task, s.t.task_definition_arn.as_deref(), &s.t.task_arn, &lineage, network) {
            Some(rerun) => self.aws.run_task(&s.t.cluster_arn, &relaunch, &rerun).await,
            None => Err(Error::Refused(format!("task {} names no task definition", s.task_id))),
        };
        let new_task = match run {
            Ok(arn) => arn,
            Err(e) => {
                // Give the restart back so EventBridge's retry can do it.
                let _ = self.release_restart(&restart::lineage_key(&s.cluster, &lineage)).await;
                let _ = self.env.state.delete(PK_RESTART, &s.t.task_arn).await;
                return Err(e);
            }
        };
        let _ = self.env.state.put(PK_RESTART, &s.t.task_arn, &json!({"status": "started", "newTask": new_task}), RESTART_MEMORY).await;
        tracing::info!(task = %s.task_id, new_task = %new_task, attempt, limit, lineage = %lineage, "re-ran the stopped task");

        let what = messages::restarted(&new_task, attempt, limit);
        let fields = [("newTask", json!(new_task)), ("restart", json!(attempt)), ("restartLimit", json!(limit)), ("lineage", json!(lineage))];
        let sent = self.notify_incident(s, &restart::task_scope(&s.cluster), &name, &what, &messages::restarted_short(attempt, limit), &fields).await?;
        Ok(Outcome::handled(s, Action::Restarted { reason: what, new_task, restart: attempt, restart_limit: limit, lineage, notified: sent }))
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

    /// Decide against the lineage counter and, for a re-run, count it (optimistically).
    async fn reserve_restart(&self, s: &Stopped<'_>, tags: &Tags) -> Result<RestartDecision, Error> {
        let key = restart::lineage_key(&s.cluster, &restart::lineage_of(tags, &s.task_id));
        for _ in 0..CAS_ATTEMPTS {
            let (restarts, version) = self.restarts(&key).await?;
            let decision = restart::decide_restart(tags, &s.task_id, restarts).map_err(|e| Error::tag(&s.task_id, e))?;
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
    use crate::mock::{ecs_client, sdk};
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
