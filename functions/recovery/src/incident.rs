//! One message per incident: the incident's tally in the state table (one UpdateItem per task,
//! `StateStore::tally`; plan::incident_step decides), the message (messages::incident), the
//! target group's health for ELB health-check stops; and the summary schedule, which tells each
//! incident's count once its window closes (plan::closing).
//!
//! Records: `recovery#incident` / incident key: the tally (`since`, `n`, `told`, `opener`, and
//! in `data` what its summary is worded from). `recovery#open` / incident key: the incidents the
//! schedule looks at, `{"since": …}` of the window that wrote it; one partition per account and
//! region, written once per window (not once per task), read by one Query per tick.

use std::collections::BTreeSet;
use std::time::Duration;

use autopilot::state::{Counted, Tally};
use autopilot::{Error, Notification};
use serde_json::{json, Value};

use crate::classify::{StopClass, Stopped};
use crate::outcome::Outcome;
use crate::plan::{self, Closing, IncidentStep};
use crate::{messages, Recovery};

const PK_INCIDENT: &str = "recovery#incident";
const PK_OPEN: &str = "recovery#open";

/// Rounds of count-then-reopen: only a window that closes while tasks stop needs a second.
const REOPEN_ATTEMPTS: usize = 5;

impl Recovery {
    fn incident_ttl(&self) -> Duration {
        Duration::from_secs(self.env.config.notification_window.as_secs() * 3 + 60)
    }

    /// Send (or fold) the incident's message; returns whether it was sent. `scope` keys the
    /// incident (with class and revision); `name` is what the subject calls the service or task
    /// family; `fields` are the message's own. `opener` names this delivery (the event id): the
    /// one that opens the incident's window sends its first message.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn notify_incident(&self, s: &Stopped<'_>, opener: &str, scope: &str, name: &str, what: &str, short: &str, fields: &[(&str, Value)]) -> Result<bool, Error> {
        let key = plan::incident_key(scope, &s.class, &s.revision);
        let window = self.env.config.notification_window.as_secs();
        let ttl = self.incident_ttl();
        let ctx = plan::incident_context(&s.cluster, name, &s.revision, &s.class, fields);
        for round in 0..REOPEN_ATTEMPTS {
            let now = self.now();
            let counted = self.env.state.tally(PK_INCIDENT, &key, opener, now, window, &ctx, ttl).await?;
            let (emit, opened, previous) = match (plan::incident_step(&counted, opener, now), &counted) {
                (IncidentStep::Emit(emit), Counted::Open(t)) => (emit, t.clone(), None),
                (IncidentStep::Reopen { claim_summary, then }, Counted::Closed(seen)) => {
                    if !self.env.state.reopen(PK_INCIDENT, &key, seen, claim_summary, opener, now, &ctx, ttl).await? {
                        // Another task opened the next window first (or the schedule told it): count again.
                        tokio::time::sleep(autopilot::state::conflict_backoff(round)).await;
                        continue;
                    }
                    (then, Tally { since: now, count: 1, told: None, opener: Some(opener.into()), data: ctx.clone() }, Some(seen.clone()))
                }
                // incident_step answers Emit for Open and Reopen for Closed; a handler never
                // panics, so a disagreement is an error, not an abort.
                _ => return Err(Error::Refused(format!("incident {key}: the tally and its step disagree"))),
            };
            let Some(mut n) = messages::incident(s, name, short, what, &emit, fields) else {
                tracing::info!(incident = %key, "notification folded into the incident's summary");
                return Ok(false);
            };
            if let StopClass::ElbHealthCheck { target_group_arn: Some(tg) } = &s.class {
                n = self.with_target_health(n, tg).await;
            }
            // Listed for the schedule first, then sent; either failing gives the window back so
            // that the retry sends this message.
            let sent = match self.list_open(&key, opened.since, ttl).await {
                Ok(()) => self.env.notifier.publish(&n).await,
                Err(e) => Err(e),
            };
            if let Err(e) = sent {
                if let Err(undo) = self.env.state.undo_open(PK_INCIDENT, &key, &opened, previous.as_ref()).await {
                    tracing::warn!(incident = %key, error = %undo, "could not give the incident's window back");
                }
                return Err(e);
            }
            return Ok(true);
        }
        Err(Error::Conflict(format!("{PK_INCIDENT}/{key}")))
    }

    /// Mark the incident as just notified (a rollback message stood for it).
    pub(crate) async fn touch_incident(&self, s: &Stopped<'_>, opener: &str, scope: &str) -> Result<(), Error> {
        let key = plan::incident_key(scope, &s.class, &s.revision);
        let now = self.now();
        let ctx = plan::incident_context(&s.cluster, scope, &s.revision, &s.class, &[]);
        self.env.state.restart_tally(PK_INCIDENT, &key, opener, now, &ctx, self.incident_ttl()).await?;
        self.list_open(&key, now, self.incident_ttl()).await
    }

    /// List the incident whose window opened at `since` for the summary schedule.
    async fn list_open(&self, key: &str, since: u64, ttl: Duration) -> Result<(), Error> {
        self.env.state.put(PK_OPEN, key, &json!({"since": since}), ttl).await
    }

    /// The summary schedule (issue 17, item 6): every listed incident whose window closed with
    /// tasks folded into it gets its summary, with the true count, whether or not another task
    /// stops later; exactly once (`StateStore::tell` claims it against other ticks and a late
    /// task). One Query of the open incidents, one BatchGetItem of their tallies, then per
    /// closed window one UpdateItem (the claim), one Publish and one DeleteItem.
    pub(crate) async fn on_summary_schedule(&self) -> Result<Outcome, Error> {
        let now = self.now();
        let window = self.env.config.notification_window.as_secs();
        let listed = self.env.state.query(PK_OPEN).await?;
        let keys: BTreeSet<(String, String)> = listed.iter().map(|(k, _)| (PK_INCIDENT.to_string(), k.clone())).collect();
        let tallies = self.env.state.get_many(&keys).await?;
        let (mut summarized, mut closed, mut open, mut failed) = (0, 0, 0, None);
        for (key, entry) in &listed {
            let tally = tallies.get(&(PK_INCIDENT.to_string(), key.clone())).and_then(|r| Tally::from_data(&r.data));
            match plan::closing(tally.as_ref(), now, window) {
                Closing::Open => {
                    open += 1;
                    continue;
                }
                Closing::Done => {}
                Closing::Tell { since, .. } => {
                    // The count as claimed, which no task adds to any more (its window closed).
                    if let Some(claimed) = self.env.state.tell(PK_INCIDENT, key, since).await? {
                        // A record written before tallies kept its old data: name the incident by its key.
                        let ctx = if claimed.data.get("name").is_some() { claimed.data.clone() } else { json!({"name": key}) };
                        let n = messages::closed_incident_summary(key, &ctx, claimed.count.saturating_sub(1), now.saturating_sub(since));
                        if let Err(e) = self.publish_summary(key, since, &n).await {
                            failed.get_or_insert(e);
                            continue;
                        }
                        summarized += 1;
                        tracing::info!(incident = %key, tasks = claimed.count - 1, "incident window closed: summary sent");
                    }
                }
            }
            closed += 1;
            // Unless a later task listed the incident's next window meanwhile.
            self.env.state.delete_if(PK_OPEN, key, &entry.data).await?;
        }
        if let Some(e) = failed {
            return Err(e);
        }
        Ok(Outcome::Summaries { open, closed, summarized })
    }

    async fn publish_summary(&self, key: &str, since: u64, n: &Notification) -> Result<(), Error> {
        if let Err(e) = self.env.notifier.publish(n).await {
            // Given back for the next tick.
            if let Err(undo) = self.env.state.untell(PK_INCIDENT, key, since).await {
                tracing::warn!(incident = %key, error = %undo, "could not give the summary's claim back");
            }
            return Err(e);
        }
        Ok(())
    }

    /// The message with the target group's health; without it when ELB cannot say.
    async fn with_target_health(&self, n: Notification, target_group_arn: &str) -> Notification {
        let health = match self.aws.target_group_health(target_group_arn).await {
            Ok(h) => Some(h),
            Err(e) => {
                tracing::warn!(error = %e, target_group = target_group_arn, "could not read the target group's health");
                None
            }
        };
        messages::with_target_health(n, target_group_arn, health.as_ref())
    }
}

#[cfg(test)]
mod tests {
    //! The handler end to end where moto cannot help: an unhealthy target group (mocked ELB),
    //! with the message captured at a mocked SNS.
    use std::sync::{Arc, Mutex};

    use autopilot::aws_sdk_elasticloadbalancingv2 as elbv2;
    use autopilot::aws_sdk_sns as sns;
    use autopilot::config::Config;
    use autopilot::runtime::{Env, Function};
    use autopilot::state::StateStore;
    use autopilot::Notifier;
    use aws_smithy_mocks::mock;
    use elbv2::types::{TargetDescription, TargetGroup, TargetHealth, TargetHealthDescription, TargetHealthReasonEnum, TargetHealthStateEnum};
    use serde_json::{json, Value};

    use crate::mock::{elb_client, sdk, sns_client};
    use crate::Recovery;

    const TG: &str = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/random/3b8f2a9c7d1e4f50";
    const TOPIC: &str = "arn:aws:sns:us-east-1:123456789012:autopilot-notifications";

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
        let env = Env::from_parts(Config { topic_arn: Some(TOPIC.into()), ..Config::default() }, sdk(), StateStore::memory(), Notifier::new(Some((sns_client(&[&publish]), TOPIC.into())), false));
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
}
