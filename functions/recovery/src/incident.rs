//! One message per incident: the debounce record in the state table (plan::debounce decides),
//! the message (messages::incident), the target group's health for ELB health-check stops.

use std::time::Duration;

use autopilot::{Error, Notification};
use serde_json::{json, Value};

use crate::classify::{StopClass, Stopped};
use crate::plan;
use crate::{messages, Recovery, CAS_ATTEMPTS};

const PK_INCIDENT: &str = "recovery#incident";

impl Recovery {
    /// Send (or fold) the incident's message; returns whether it was sent. `scope` keys the
    /// incident (with class and revision); `name` is what the subject calls the service or task
    /// family; `fields` are the message's own.
    pub(crate) async fn notify_incident(&self, s: &Stopped<'_>, scope: &str, name: &str, what: &str, short: &str, fields: &[(&str, Value)]) -> Result<bool, Error> {
        let key = plan::incident_key(scope, &s.class, &s.revision);
        let window = self.env.config.notification_window.as_secs();
        let ttl = Duration::from_secs(window * 3 + 60);
        for round in 0..CAS_ATTEMPTS {
            let previous = self.env.state.get(PK_INCIDENT, &key).await?;
            let (data, emit) = plan::debounce(previous.as_ref().map(|r| &r.data), self.now(), window);
            match self.env.state.put_if_version(PK_INCIDENT, &key, &data, ttl, previous.as_ref().map_or(0, |r| r.version)).await {
                Ok(_) => {}
                Err(Error::Conflict(_)) => tokio::time::sleep(autopilot::state::conflict_backoff(round)).await,
                Err(e) => return Err(e),
            }
            let Some(mut n) = messages::incident(s, name, short, what, &emit, fields) else {
                tracing::info!(incident = %key, "notification folded into the incident's next summary");
                return Ok(false);
            };
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
    pub(crate) async fn touch_incident(&self, s: &Stopped<'_>, scope: &str) -> Result<(), Error> {
        let key = plan::incident_key(scope, &s.class, &s.revision);
        let window = self.env.config.notification_window.as_secs();
        self.env.state.put(PK_INCIDENT, &key, &json!({"sent": self.now(), "suppressed": 0}), Duration::from_secs(window * 3 + 60)).await
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
