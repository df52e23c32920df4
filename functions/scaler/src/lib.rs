//! The `scaler` function (see DESIGN.md): alarm-driven step scaling of a service's desiredCount
//! with Application Auto Scaling's semantics (`steps.rs`), and the EC2 Auto Scaling group behind
//! an EC2-backed cluster when tasks no longer fit (`capacity.rs`).
//!
//! Which alarm states act:
//! - ALARM: the step containing the breach applies (scale-out or scale-in, by its sign).
//! - OK: only a step that lowers desiredCount applies ("the steps say so": e.g. `cpu > 70` with
//!   steps `0::+2,:-40:-1` scales in by one when the alarm returns to OK with cpu below 30). A
//!   step that would raise capacity never acts on OK: an M-of-N alarm can be OK with a mean above
//!   its threshold.
//! - INSUFFICIENT_DATA never acts.
//! - No datapoints in reasonData (composite alarms, some metric-math alarms): only a single open
//!   step (`+2`) can apply; anything else is skipped with a log line.
//!
//! Rollout in progress (scale-in waits): more than one deployment, or the PRIMARY deployment
//! IN_PROGRESS while the service runs fewer tasks than it wants. moto keeps one PRIMARY
//! IN_PROGRESS deployment forever, so rolloutState alone cannot be the signal.

pub mod aws;
pub mod capacity;
pub mod cw_compat;
pub mod decide;
pub mod messages;
pub mod outcome;
pub mod steps;

use std::collections::BTreeMap;
use std::time::Duration;

use autopilot::aws_sdk_autoscaling as asg;
use autopilot::aws_sdk_cloudwatch as cw;
use autopilot::config::cluster_name;
use autopilot::events::{AlarmStateValue, SERVICE_TASK_PLACEMENT_FAILURE};
use autopilot::runtime::{run_event, Env, Function};
use autopilot::state::now_epoch;
use autopilot::tags::{self, Bounds, Tags};
use autopilot::{Config, Error, Incoming, Notification};
use aws_sdk_ecs as ecs;
use serde_json::{json, Value};

use capacity::{GroupChange, Instance, TaskSize};
use steps::{Cooldowns, Decision};

pub use aws::cloudwatch_client;
pub use decide::{parse_alarm_tags, transition_id, AlarmTags, AlarmView};

use aws::Aws;

/// Claims of handled alarm transitions live as long as EventBridge may redeliver.
const TRANSITION_MEMORY: Duration = Duration::from_secs(2 * 24 * 3600);
/// The cooldown record outlives any cooldown (at most 86400 s).
const COOLDOWN_MEMORY: Duration = Duration::from_secs(3 * 24 * 3600);

pub struct Scaler {
    pub env: Env,
    aws: Aws,
}

impl Function for Scaler {
    const NAME: &'static str = "scaler";

    fn new(env: Env) -> Self {
        let aws = Aws::new(&env.sdk);
        Scaler { env, aws }
    }

    async fn handle(&self, event: Value) -> Result<Value, Error> {
        run_event(&self.env, Self::NAME, event, Self::screen, |incoming| async move { self.dispatch(incoming).await }).await
    }

    /// What needs no AWS call: alarms in INSUFFICIENT_DATA, other schedules and service actions,
    /// other event types. The same answers as `dispatch` gives them.
    fn screen(incoming: &Incoming, _config: &Config) -> Option<Value> {
        match incoming {
            Incoming::AlarmStateChange(e) if !matches!(e.detail.state.value, AlarmStateValue::Alarm | AlarmStateValue::Ok) => {
                Some(json!({"action": "ignored", "alarm": e.detail.alarm_name, "reason": "state is neither ALARM nor OK"}))
            }
            Incoming::AlarmStateChange(_) => None,
            Incoming::Scheduled(e) => {
                let rule = e.resources.as_ref().and_then(|r| r.first()).cloned().unwrap_or_default();
                (!rule.contains("reevaluate")).then(|| json!({"action": "ignored", "reason": format!("schedule {rule} is not a re-evaluation schedule")}))
            }
            Incoming::ServiceAction(e) if e.detail.event_name != SERVICE_TASK_PLACEMENT_FAILURE => {
                Some(json!({"action": "ignored", "reason": format!("service action {} is not handled", e.detail.event_name)}))
            }
            Incoming::ServiceAction(_) => None,
            other => Some(json!({"action": "ignored", "reason": format!("{} is not handled by scaler", other.detail_type())})),
        }
    }
}

/// Rollout in progress: see the module documentation.
pub fn rollout_in_progress(service: &ecs::types::Service) -> bool {
    let deployments = service.deployments();
    let live = deployments.iter().filter(|d| matches!(d.status(), Some("PRIMARY") | Some("ACTIVE"))).count();
    if live > 1 {
        return true;
    }
    deployments.iter().any(|d| {
        d.status() == Some("PRIMARY")
            && d.rollout_state() == Some(&ecs::types::DeploymentRolloutState::InProgress)
            && service.running_count() < service.desired_count()
    })
}

fn service_arn_parts(arn: &str) -> Option<(String, String)> {
    // arn:aws:ecs:REGION:ACCOUNT:service/CLUSTER/NAME (the old form has no cluster)
    let rest = arn.split_once(":service/")?.1;
    match rest.split_once('/') {
        Some((c, s)) => Some((c.to_string(), s.to_string())),
        None => Some(("default".into(), rest.to_string())),
    }
}

fn task_size(td: &ecs::types::TaskDefinition) -> TaskSize {
    let num = |s: Option<&str>| s.and_then(|v| v.trim().parse::<i64>().ok());
    let containers = td.container_definitions();
    let cpu = num(td.cpu()).unwrap_or_else(|| containers.iter().map(|c| c.cpu() as i64).sum());
    let memory = num(td.memory()).unwrap_or_else(|| {
        containers.iter().map(|c| c.memory().or(c.memory_reservation()).unwrap_or(0) as i64).sum()
    });
    TaskSize { cpu, memory }
}

fn resource(rs: &[ecs::types::Resource], name: &str) -> i64 {
    rs.iter().find(|r| r.name() == Some(name)).map_or(0, |r| r.integer_value() as i64)
}

impl Scaler {
    /// A scaler with given clients (adapter tests with aws-smithy-mocks).
    #[doc(hidden)]
    pub fn with_clients(env: Env, ecs: ecs::Client, cw: cw::Client, asg: asg::Client) -> Self {
        Scaler { env, aws: Aws { ecs, cw, asg } }
    }

    async fn dispatch(&self, incoming: Incoming) -> Result<Value, Error> {
        match incoming {
            Incoming::AlarmStateChange(e) => {
                let view = AlarmView::from_event(&e, &self.env.region());
                self.on_alarm_transition(view).await
            }
            Incoming::Scheduled(e) => {
                let rule = e.resources.as_ref().and_then(|r| r.first()).cloned().unwrap_or_default();
                if rule.contains("reevaluate") {
                    self.reevaluate().await
                } else {
                    tracing::info!(rule, "scheduled event from a rule that is not the re-evaluation schedule: ignored");
                    Ok(json!({"action": "ignored", "reason": format!("schedule {rule} is not a re-evaluation schedule")}))
                }
            }
            Incoming::ServiceAction(e) => {
                if e.detail.event_name != SERVICE_TASK_PLACEMENT_FAILURE {
                    return Ok(json!({"action": "ignored", "reason": format!("service action {} is not handled", e.detail.event_name)}));
                }
                let service_arn = e.resources.as_ref().and_then(|r| r.first()).cloned().unwrap_or_default();
                let Some((arn_cluster, service)) = service_arn_parts(&service_arn) else {
                    return Err(Error::InvalidEvent(autopilot::events::EventError::MalformedDetail {
                        detail_type: "ECS Service Action".into(),
                        path: "resources[0]".into(),
                        message: format!("{service_arn:?} is not an ECS service ARN"),
                    }));
                };
                let cluster = e.detail.cluster_arn.as_deref().map(|c| cluster_name(c).to_string()).unwrap_or(arn_cluster);
                self.on_placement_failure(&cluster, &service, &e.detail.all_reasons()).await
            }
            other => {
                tracing::info!(detail_type = other.detail_type(), "not a scaler event: ignored");
                Ok(json!({"action": "ignored", "reason": format!("{} is not handled by scaler", other.detail_type())}))
            }
        }
    }

    // ------------------------------------------------------------------ alarms

    async fn alarm_tags(&self, view: &AlarmView) -> Result<Tags, Error> {
        if let Some(t) = &view.tags {
            return Ok(t.clone());
        }
        let Some(arn) = view.arn.clone() else {
            return Err(Error::Refused(format!("alarm {}: the event names no alarm ARN (resources) or account to read its tags", view.name)));
        };
        let out = self.aws.cw.list_tags_for_resource().resource_arn(&arn).send().await.map_err(|e| Error::aws("cloudwatch", "ListTagsForResource", e))?;
        Ok(out.tags().iter().filter_map(|t| Some((t.key()?.to_string(), t.value().unwrap_or_default().to_string()))).collect())
    }

    async fn on_alarm_transition(&self, view: AlarmView) -> Result<Value, Error> {
        if !matches!(view.state, AlarmStateValue::Alarm | AlarmStateValue::Ok) {
            tracing::info!(alarm = %view.name, "alarm state is neither ALARM nor OK: nothing to do");
            return Ok(json!({"action": "ignored", "alarm": view.name, "reason": "state is neither ALARM nor OK"}));
        }
        let tags = self.alarm_tags(&view).await?;
        if !tags.contains_key(tags::TAG_SCALE) {
            tracing::info!(alarm = %view.name, "alarm has no autopilot:scale tag: ignored");
            return Ok(json!({"action": "ignored", "alarm": view.name, "reason": "no autopilot:scale tag"}));
        }
        // Replays of one transition (EventBridge redelivery under a new id) never scale twice.
        let key = format!("{}#{}", view.name, view.timestamp);
        if !self.env.state.create("scale-transition", &key, &json!({"at": now_epoch()}), TRANSITION_MEMORY).await? {
            tracing::info!(alarm = %view.name, transition = %view.timestamp, "alarm transition already handled");
            return Ok(json!({"action": "replay", "alarm": view.name, "transition": view.timestamp}));
        }
        let result = self.evaluate(&view, &tags, "alarm").await;
        if result.is_err() {
            let _ = self.env.state.delete("scale-transition", &key).await;
        }
        result
    }

    /// One alarm → one decision for one service (the alarm path and the re-evaluation path).
    async fn evaluate(&self, view: &AlarmView, tags: &Tags, origin: &str) -> Result<Value, Error> {
        let alarm = &view.name;
        let cfg = match parse_alarm_tags(tags) {
            None => return Ok(json!({"action": "ignored", "alarm": alarm, "reason": "no autopilot:scale tag"})),
            Some(Ok(c)) => c,
            Some(Err(e)) => {
                let n = Notification::new("scale.invalid-tag", format!("alarm {alarm}: tag {} is not valid", e.tag), e.to_string())
                    .field("alarm", alarm.as_str())
                    .field("tag", e.tag);
                self.env.notifier.publish_once(&self.env.state, &format!("scale-tag#{alarm}#{}", e.tag), self.env.config.notification_window, &n).await?;
                return Err(Error::tag(format!("alarm {alarm}"), e));
            }
        };
        let (cluster, service) = (cfg.target.cluster.clone(), cfg.target.service.clone());
        if !self.env.config.manages_cluster(&cluster) {
            tracing::info!(alarm = %alarm, cluster, "cluster is not managed (AUTOPILOT_CLUSTERS): ignored");
            return Ok(json!({"action": "ignored", "alarm": alarm, "reason": format!("cluster {cluster} is not managed")}));
        }
        let step = if view.datapoints.is_empty() {
            match steps::open_step(&cfg.steps) {
                Some(s) => s,
                None => {
                    tracing::warn!(alarm = %alarm, "the alarm state carries no datapoints (composite or metric-math alarm): cannot measure the breach; only a single open step like +2 can apply");
                    return Ok(json!({"action": "skipped", "alarm": alarm, "reason": "no datapoints in the alarm's reasonData to measure the breach"}));
                }
            }
        } else {
            let Some(breach) = view.threshold.and_then(|t| steps::breach(&view.datapoints, t)) else {
                tracing::warn!(alarm = %alarm, "the alarm state has datapoints but no threshold");
                return Ok(json!({"action": "skipped", "alarm": alarm, "reason": "no threshold in the alarm's reasonData"}));
            };
            match steps::select_step(&cfg.steps, breach) {
                Some(s) => s,
                None => {
                    tracing::info!(alarm = %alarm, breach, "breach matches no step");
                    return Ok(json!({"action": "none", "alarm": alarm, "service": service, "reason": format!("breach {} matches no step", messages::fmt_num(breach))}));
                }
            }
        };

        let svc = self.describe_service(&cluster, &service).await?;
        let Some(svc) = svc else {
            tracing::warn!(alarm = %alarm, cluster, service, "service named by autopilot:scale does not exist");
            return Ok(json!({"action": "skipped", "alarm": alarm, "reason": format!("service {cluster}/{service} not found")}));
        };
        let bounds = match Bounds::from_tags(&tags::ecs_tags(svc.tags())) {
            Ok(b) => b,
            Err(e) => {
                let n = Notification::new("scale.invalid-tag", format!("{service}: tag {} is not valid", e.tag), e.to_string()).field("service", service.as_str());
                self.env.notifier.publish_once(&self.env.state, &format!("scale-tag#{cluster}/{service}#{}", e.tag), self.env.config.notification_window, &n).await?;
                return Err(Error::tag(format!("service {cluster}/{service}"), e));
            }
        };
        let current = svc.desired_count().max(0) as u32;
        if view.state == AlarmStateValue::Ok && steps::raw_target(current, step.adjustment) >= current as i64 {
            return Ok(json!({"action": "none", "alarm": alarm, "service": service, "reason": "alarm is OK and its step does not lower capacity"}));
        }

        let (sk, now) = (format!("{cluster}/{service}"), now_epoch() as i64);
        let record = self.env.state.get("scale", &sk).await?;
        let state: Cooldowns = record.as_ref().and_then(|r| serde_json::from_value(r.data.clone()).ok()).unwrap_or_default();
        let version = record.as_ref().map_or(0, |r| r.version);
        let input = steps::Input {
            current,
            bounds,
            adjustment: step.adjustment,
            cooldown: cfg.cooldown,
            state,
            now,
            rollout_in_progress: rollout_in_progress(&svc),
        };
        let why = messages::why(view, Some(step.adjustment));
        match steps::decide(&input) {
            Decision::Nothing { reason } => {
                tracing::info!(alarm = %alarm, service, reason, "no change");
                Ok(json!({"action": "none", "alarm": alarm, "service": service, "desired": current, "reason": reason, "origin": origin}))
            }
            Decision::Refused { from, wanted, refusal, detail } => {
                let subject = format!("{service} stays at {from}: {detail} ({why})");
                let n = Notification::new("scale.refused", &subject, format!("{service} in {cluster} wanted {from} -> {wanted}; {detail}."))
                    .field("cluster", cluster.as_str())
                    .field("service", service.as_str())
                    .field("alarm", alarm.as_str())
                    .field("desired", from)
                    .field("wanted", wanted)
                    .field("refusal", refusal.as_str());
                // Once per alarm transition and refusal, however often the schedule re-evaluates.
                let key = format!("scale-refused#{alarm}#{}#{}", view.timestamp, refusal.as_str());
                self.env.notifier.publish_once(&self.env.state, &key, COOLDOWN_MEMORY, &n).await?;
                tracing::info!(alarm = %alarm, service, refusal = refusal.as_str(), detail, "scaling refused");
                Ok(json!({"action": "refused", "alarm": alarm, "service": service, "from": from, "wanted": wanted, "refusal": refusal, "reason": detail, "origin": origin}))
            }
            Decision::Scale { from, to, next, clamped } => {
                let dry = self.env.config.dry_run;
                if !dry {
                    let new_version = self.env.state.put_if_version("scale", &sk, &serde_json::to_value(&next).unwrap_or_default(), COOLDOWN_MEMORY, version).await?;
                    if let Err(e) = self.aws.ecs.update_service().cluster(&cluster).service(&service).desired_count(to as i32).send().await {
                        // The error may be a lost answer to an update that landed: then the
                        // cooldown record must stay, or the redelivery would scale again.
                        let landed = matches!(self.describe_service(&cluster, &service).await, Ok(Some(now)) if now.desired_count() == to as i32);
                        if !landed {
                            let old = record.as_ref().map(|r| r.data.clone()).unwrap_or(json!({}));
                            let _ = self.env.state.put_if_version("scale", &sk, &old, COOLDOWN_MEMORY, new_version).await;
                            return Err(Error::aws("ecs", "UpdateService", e));
                        }
                        tracing::warn!(service, to, error = %Error::aws("ecs", "UpdateService", e), "UpdateService reported an error but the service is at the new count");
                    }
                }
                let mut capacity = Value::Null;
                let mut extra = String::new();
                if to > from {
                    let td = svc.task_definition().unwrap_or_default().to_string();
                    let to_place = to as i64 - svc.running_count() as i64 - svc.pending_count() as i64;
                    match self.ensure_capacity(&cluster, &td, to_place.max((to - from) as i64)).await {
                        Ok(Some((v, text))) => {
                            capacity = v;
                            extra = text;
                        }
                        Ok(None) => {}
                        Err(e) => {
                            tracing::warn!(error = %e, "capacity check failed after scaling out");
                            capacity = json!({"error": e.to_string()});
                            extra = format!(" Cluster capacity could not be checked: {e}.");
                        }
                    }
                }
                let bound = if clamped { if to > from { format!(" (held at max {})", bounds.max) } else { format!(" (held at min {})", bounds.min) } } else { String::new() };
                let subject = format!("{service} {from} -> {to} ({why})");
                let mut n = Notification::new(
                    if to > from { "scale.out" } else { "scale.in" },
                    &subject,
                    format!("{service} in {cluster}: desiredCount {from} → {to}{bound}.{extra}"),
                )
                .field("cluster", cluster.as_str())
                .field("service", service.as_str())
                .field("alarm", alarm.as_str())
                .field("from", from)
                .field("to", to)
                .field("step", step.adjustment.to_string());
                n.title = format!("{service} {from} → {to} ({why})");
                self.env.notifier.publish(&n).await?;
                tracing::info!(alarm = %alarm, service, from, to, dry_run = dry, "scaled");
                Ok(json!({
                    "action": "scaled", "alarm": alarm, "cluster": cluster, "service": service, "from": from, "to": to,
                    "step": step.adjustment.to_string(), "dryRun": dry, "capacity": capacity, "origin": origin,
                }))
            }
        }
    }

    async fn describe_service(&self, cluster: &str, service: &str) -> Result<Option<ecs::types::Service>, Error> {
        let out = self
            .aws
            .ecs
            .describe_services()
            .cluster(cluster)
            .services(service)
            .include(ecs::types::ServiceField::Tags)
            .send()
            .await
            .map_err(|e| Error::aws("ecs", "DescribeServices", e))?;
        Ok(out.services().iter().find(|s| s.status() != Some("INACTIVE")).cloned())
    }

    // ------------------------------------------------------------------ re-evaluation

    async fn reevaluate(&self) -> Result<Value, Error> {
        let mut results = Vec::new();
        let mut failures = Vec::new();
        let mut token: Option<String> = None;
        loop {
            // A CloudWatch failure must not stop the capacity work below: collect it.
            let out = match self
                .aws
                .cw
                .describe_alarms()
                .state_value(cw::types::StateValue::Alarm)
                .alarm_types(cw::types::AlarmType::MetricAlarm)
                .set_next_token(token.clone())
                .send()
                .await
            {
                Ok(out) => out,
                Err(e) => {
                    failures.push(Error::aws("cloudwatch", "DescribeAlarms", e).to_string());
                    break;
                }
            };
            for a in out.metric_alarms() {
                let Some(name) = a.alarm_name() else { continue };
                let rd: Option<autopilot::events::ReasonData> = a.state_reason_data().and_then(|s| serde_json::from_str(s).ok());
                let view = AlarmView {
                    name: name.to_string(),
                    arn: a.alarm_arn().map(String::from),
                    state: AlarmStateValue::Alarm,
                    timestamp: a
                        .state_transitioned_timestamp()
                        .or(a.state_updated_timestamp())
                        .and_then(|t| t.to_millis().ok())
                        .map(|ms| ms.to_string())
                        .unwrap_or_default(),
                    datapoints: rd.as_ref().map(|r| r.datapoints()).unwrap_or_default(),
                    threshold: rd.as_ref().and_then(|r| r.threshold).or(a.threshold()),
                    tags: None,
                };
                let tags = match self.alarm_tags(&view).await {
                    Ok(t) => t,
                    Err(e) => {
                        failures.push(format!("{name}: {e}"));
                        continue;
                    }
                };
                if !tags.contains_key(tags::TAG_SCALE) {
                    continue;
                }
                match self.evaluate(&view, &tags, "re-evaluation").await {
                    Ok(v) => results.push(v),
                    Err(e) => {
                        tracing::error!(alarm = name, error = %e, "re-evaluation failed");
                        failures.push(format!("{name}: {e}"));
                    }
                }
            }
            token = out.next_token().map(String::from);
            if token.is_none() {
                break;
            }
        }
        let mut capacity = Vec::new();
        for cluster in self.managed_clusters().await? {
            match self.shrink(&cluster).await {
                Ok(Some(v)) => capacity.push(v),
                Ok(None) => {}
                Err(e) => failures.push(format!("cluster {cluster}: {e}")),
            }
        }
        if !failures.is_empty() {
            let total = results.len() + failures.len();
            return Err(Error::Partial { failed: failures.len(), total, summary: failures.join("; "), retryable: true });
        }
        Ok(json!({"action": "re-evaluated", "alarms": results, "capacity": capacity}))
    }

    async fn managed_clusters(&self) -> Result<Vec<String>, Error> {
        if !self.env.config.clusters.is_empty() {
            return Ok(self.env.config.clusters.iter().map(|c| cluster_name(c).to_string()).collect());
        }
        let mut names = Vec::new();
        let mut token = None;
        loop {
            let out = self.aws.ecs.list_clusters().set_next_token(token).send().await.map_err(|e| Error::aws("ecs", "ListClusters", e))?;
            names.extend(out.cluster_arns().iter().map(|a| cluster_name(a).to_string()));
            token = out.next_token().map(String::from);
            if token.is_none() {
                return Ok(names);
            }
        }
    }

    // ------------------------------------------------------------------ cluster capacity

    /// The Auto Scaling group behind a cluster, unless a capacity provider with managed scaling
    /// owns it (then ECS scales the group and we must not fight it).
    async fn cluster_group(&self, cluster: &str) -> Result<Option<String>, Error> {
        let out = self
            .aws
            .ecs
            .describe_clusters()
            .clusters(cluster)
            .include(ecs::types::ClusterField::Tags)
            .send()
            .await
            .map_err(|e| Error::aws("ecs", "DescribeClusters", e))?;
        let Some(c) = out.clusters().first() else { return Ok(None) };
        let Some(raw) = c.tags().iter().find(|t| t.key() == Some(tags::TAG_ASG)).and_then(|t| t.value()) else { return Ok(None) };
        let group = tags::parse_asg(raw).map_err(|e| Error::tag(format!("cluster {cluster}"), e))?;
        if !c.capacity_providers().is_empty() {
            let cps = self
                .aws
                .ecs
                .describe_capacity_providers()
                .set_capacity_providers(Some(c.capacity_providers().to_vec()))
                .send()
                .await
                .map_err(|e| Error::aws("ecs", "DescribeCapacityProviders", e))?;
            let owned = cps.capacity_providers().iter().filter_map(|cp| cp.auto_scaling_group_provider()).any(|p| {
                let managed = p.managed_scaling().and_then(|m| m.status()) == Some(&ecs::types::ManagedScalingStatus::Enabled);
                let arn = p.auto_scaling_group_arn();
                managed && (arn == group || arn.ends_with(&format!("autoScalingGroupName/{group}")))
            });
            if owned {
                tracing::info!(cluster, group, "a capacity provider with managed scaling owns the group: left to ECS");
                return Ok(None);
            }
        }
        Ok(Some(group))
    }

    async fn instances(&self, cluster: &str) -> Result<Vec<Instance>, Error> {
        let mut arns = Vec::new();
        let mut token = None;
        loop {
            let out = self
                .aws
                .ecs
                .list_container_instances()
                .cluster(cluster)
                .set_next_token(token)
                .send()
                .await
                .map_err(|e| Error::aws("ecs", "ListContainerInstances", e))?;
            arns.extend(out.container_instance_arns().iter().cloned());
            token = out.next_token().map(String::from);
            if token.is_none() {
                break;
            }
        }
        let mut instances = Vec::new();
        for chunk in arns.chunks(100) {
            let out = self
                .aws
                .ecs
                .describe_container_instances()
                .cluster(cluster)
                .set_container_instances(Some(chunk.to_vec()))
                .send()
                .await
                .map_err(|e| Error::aws("ecs", "DescribeContainerInstances", e))?;
            instances.extend(out.container_instances().iter().map(|ci| Instance {
                arn: ci.container_instance_arn().unwrap_or_default().to_string(),
                ec2_id: ci.ec2_instance_id().map(String::from),
                status: ci.status().unwrap_or_default().to_string(),
                remaining_cpu: resource(ci.remaining_resources(), "CPU"),
                remaining_memory: resource(ci.remaining_resources(), "MEMORY"),
                registered_cpu: resource(ci.registered_resources(), "CPU"),
                registered_memory: resource(ci.registered_resources(), "MEMORY"),
                running_tasks: ci.running_tasks_count() as i64,
                pending_tasks: ci.pending_tasks_count() as i64,
            }));
        }
        Ok(instances)
    }

    async fn group(&self, name: &str) -> Result<Option<asg::types::AutoScalingGroup>, Error> {
        let out = self
            .aws
            .asg
            .describe_auto_scaling_groups()
            .auto_scaling_group_names(name)
            .send()
            .await
            .map_err(|e| Error::aws("autoscaling", "DescribeAutoScalingGroups", e))?;
        Ok(out.auto_scaling_groups().first().cloned())
    }

    async fn size_of(&self, task_definition: &str) -> Result<TaskSize, Error> {
        let out = self
            .aws
            .ecs
            .describe_task_definition()
            .task_definition(task_definition)
            .send()
            .await
            .map_err(|e| Error::aws("ecs", "DescribeTaskDefinition", e))?;
        Ok(out.task_definition().map(task_size).unwrap_or(TaskSize { cpu: 0, memory: 0 }))
    }

    /// Grow the cluster's group when `to_place` tasks of `task_definition` do not fit.
    /// `None`: the cluster has no group to manage.
    async fn ensure_capacity(&self, cluster: &str, task_definition: &str, to_place: i64) -> Result<Option<(Value, String)>, Error> {
        let Some(group_name) = self.cluster_group(cluster).await? else { return Ok(None) };
        let size = self.size_of(task_definition).await?;
        let instances = self.instances(cluster).await?;
        let Some(group) = self.group(&group_name).await? else {
            tracing::warn!(cluster, group = %group_name, "autopilot:asg names a group that does not exist");
            return Ok(Some((json!({"group": group_name, "error": "group not found"}), format!(" Auto Scaling group {group_name} (autopilot:asg) does not exist."))));
        };
        let desired = group.desired_capacity().unwrap_or(0) as i64;
        let max = group.max_size().unwrap_or(0) as i64;
        let g = capacity::plan_growth(&instances, size, to_place, desired);
        let base = json!({"group": group_name, "toPlace": to_place, "fitNow": g.fit_now, "perNewInstance": g.per_new_instance, "launching": g.launching, "missing": g.missing});
        let dry = self.env.config.dry_run;
        let (action, text) = match capacity::grow_group(desired, max, g.missing) {
            GroupChange::None => ("none", String::new()),
            GroupChange::Grow { from, to, wanted, capped } => {
                if !dry {
                    self.aws.asg
                        .set_desired_capacity()
                        .auto_scaling_group_name(&group_name)
                        .desired_capacity(to as i32)
                        .honor_cooldown(false)
                        .send()
                        .await
                        .map_err(|e| Error::aws("autoscaling", "SetDesiredCapacity", e))?;
                }
                let cap = if capped { format!("; it wanted {wanted} but its max is {max}") } else { String::new() };
                ("grown", format!(" {group_name} {from} → {to}: {to_place} task(s) need room, the instances fit {}{cap}.", g.fit_now))
            }
            GroupChange::AtMax { desired, max, wanted } => (
                "at-max",
                format!(" {group_name} is at its max {max} (desired {desired}, {wanted} needed): {} task(s) will not be placed.", (to_place - g.fit_now).max(0)),
            ),
        };
        let mut v = base;
        v["action"] = json!(action);
        v["desired"] = json!(desired);
        v["max"] = json!(max);
        if let GroupChange::Grow { to, .. } = capacity::grow_group(desired, max, g.missing) {
            v["to"] = json!(to);
        }
        Ok(Some((v, text)))
    }

    async fn on_placement_failure(&self, cluster: &str, service: &str, reasons: &[String]) -> Result<Value, Error> {
        if !self.env.config.manages_cluster(cluster) {
            return Ok(json!({"action": "ignored", "reason": format!("cluster {cluster} is not managed")}));
        }
        let Some(svc) = self.describe_service(cluster, service).await? else {
            return Ok(json!({"action": "skipped", "reason": format!("service {cluster}/{service} not found")}));
        };
        // The event says at least one task could not be placed.
        let to_place = (svc.desired_count() as i64 - svc.running_count() as i64 - svc.pending_count() as i64).max(1);
        let td = svc.task_definition().unwrap_or_default().to_string();
        let Some((v, text)) = self.ensure_capacity(cluster, &td, to_place).await? else {
            return Ok(json!({"action": "ignored", "service": service, "reason": format!("cluster {cluster} has no autopilot:asg group to grow")}));
        };
        let action = v["action"].as_str().unwrap_or("none").to_string();
        if action != "none" {
            let group = v["group"].as_str().unwrap_or_default().to_string();
            let subject = match action.as_str() {
                "grown" => format!("{group} {} -> {} for {service} (tasks could not be placed)", v["desired"], v["to"]),
                _ => format!("{group} at max {}: {service} tasks cannot be placed", v["max"]),
            };
            let n = Notification::new(if action == "grown" { "capacity.grow" } else { "capacity.at-max" }, subject, format!("{service} in {cluster}: task placement failed ({}).{text}", reasons.join("; ")))
                .field("cluster", cluster)
                .field("service", service)
                .field("group", group.as_str());
            self.env.notifier.publish(&n).await?;
        } else {
            tracing::info!(cluster, service, ?reasons, "placement failed but the instances have CPU and memory for the tasks: not a capacity problem");
        }
        Ok(json!({"action": "placement-failure", "cluster": cluster, "service": service, "capacity": v, "dryRun": self.env.config.dry_run}))
    }

    /// Remove at most one idle instance per run (see `capacity::pick_idle`): set it DRAINING,
    /// then terminate it in its group with the desired capacity decremented.
    async fn shrink(&self, cluster: &str) -> Result<Option<Value>, Error> {
        let Some(group_name) = self.cluster_group(cluster).await? else { return Ok(None) };
        let instances = self.instances(cluster).await?;
        if !instances.iter().any(|i| i.is_idle()) {
            return Ok(None);
        }
        let Some(group) = self.group(&group_name).await? else { return Ok(None) };
        let members: BTreeMap<String, bool> =
            group.instances().iter().filter_map(|i| Some((i.instance_id()?.to_string(), i.protected_from_scale_in().unwrap_or(false)))).collect();
        // Instances outside the group, or protected from scale-in, are never touched.
        let protected = |id: &str| members.get(id).copied().unwrap_or(true);
        let (unplaced, size) = self.unplaced(cluster).await?;
        let desired = group.desired_capacity().unwrap_or(0) as i64;
        let min = group.min_size().unwrap_or(0) as i64;
        let Some(victim) = capacity::pick_idle(&instances, &protected, desired, min, unplaced, size) else {
            return Ok(None);
        };
        let ec2_id = victim.ec2_id.clone().unwrap_or_default();
        let dry = self.env.config.dry_run;
        if !dry {
            if victim.status != "DRAINING" {
                self.aws.ecs
                    .update_container_instances_state()
                    .cluster(cluster)
                    .container_instances(&victim.arn)
                    .status(ecs::types::ContainerInstanceStatus::Draining)
                    .send()
                    .await
                    .map_err(|e| Error::aws("ecs", "UpdateContainerInstancesState", e))?;
            }
            self.aws.asg
                .terminate_instance_in_auto_scaling_group()
                .instance_id(&ec2_id)
                .should_decrement_desired_capacity(true)
                .send()
                .await
                .map_err(|e| Error::aws("autoscaling", "TerminateInstanceInAutoScalingGroup", e))?;
        }
        let n = Notification::new("capacity.shrink", format!("{group_name} {desired} -> {}: idle instance {ec2_id} removed", desired - 1), format!("Cluster {cluster}: container instance {ec2_id} ran no task; drained and terminated, {group_name} desired {desired} → {}.", desired - 1))
            .field("cluster", cluster)
            .field("group", group_name.as_str())
            .field("instance", ec2_id.as_str());
        self.env.notifier.publish(&n).await?;
        Ok(Some(json!({"action": "shrunk", "cluster": cluster, "group": group_name, "instance": ec2_id, "from": desired, "to": desired - 1, "dryRun": dry})))
    }

    /// Tasks the cluster's services still owe (desired − running − pending) and the largest task
    /// size among those services.
    async fn unplaced(&self, cluster: &str) -> Result<(i64, Option<TaskSize>), Error> {
        let mut arns = Vec::new();
        let mut token = None;
        loop {
            let out = self.aws.ecs.list_services().cluster(cluster).set_next_token(token).send().await.map_err(|e| Error::aws("ecs", "ListServices", e))?;
            arns.extend(out.service_arns().iter().cloned());
            token = out.next_token().map(String::from);
            if token.is_none() {
                break;
            }
        }
        let (mut unplaced, mut size): (i64, Option<TaskSize>) = (0, None);
        for chunk in arns.chunks(10) {
            let out = self
                .aws
                .ecs
                .describe_services()
                .cluster(cluster)
                .set_services(Some(chunk.to_vec()))
                .send()
                .await
                .map_err(|e| Error::aws("ecs", "DescribeServices", e))?;
            for s in out.services() {
                let owed = (s.desired_count() - s.running_count() - s.pending_count()).max(0) as i64;
                if owed > 0 {
                    unplaced += owed;
                    let t = self.size_of(s.task_definition().unwrap_or_default()).await?;
                    size = Some(size.map_or(t, |z| TaskSize { cpu: z.cpu.max(t.cpu), memory: z.memory.max(t.memory) }));
                }
            }
        }
        Ok((unplaced, size))
    }
}

#[cfg(test)]
mod adapter_tests {
    use super::*;
    use autopilot::Config;
    use aws_smithy_mocks::{mock, MockResponseInterceptor, Rule, RuleMode};
    use ecs::operation::describe_services::DescribeServicesOutput;
    use ecs::types::{Deployment, DeploymentRolloutState, Service, Tag};

    // Built by hand: `mock_client!` needs the SDK's `test-util` feature (workspace-wide unification).
    macro_rules! client {
        ($sdk:ident, $rules:expr) => {{
            let mut i = MockResponseInterceptor::new().rule_mode(RuleMode::MatchAny);
            for r in $rules {
                i = i.with_rule(r);
            }
            $sdk::Client::from_conf(
                $sdk::Config::builder()
                    .behavior_version($sdk::config::BehaviorVersion::latest())
                    .region($sdk::config::Region::new("us-east-1"))
                    .credentials_provider($sdk::config::Credentials::new("t", "t", None, None, "t"))
                    .http_client(aws_smithy_mocks::create_mock_http_client())
                    .interceptor(i)
                    .build(),
            )
        }};
    }

    fn scaler(ecs_rules: &[&Rule]) -> Scaler {
        let env = Env::new(Config::default(), autopilot::aws_config::SdkConfig::builder().build());
        Scaler::with_clients(env, client!(ecs, ecs_rules), client!(cw, &[] as &[&Rule]), client!(asg, &[] as &[&Rule]))
    }

    fn service(deployments: Vec<Deployment>) -> Rule {
        mock!(ecs::Client::describe_services).then_output(move || {
            DescribeServicesOutput::builder()
                .services(
                    Service::builder()
                        .service_name("random")
                        .status("ACTIVE")
                        .desired_count(6)
                        .running_count(6)
                        .task_definition("random:2")
                        .set_deployments(Some(deployments.clone()))
                        .tags(Tag::builder().key("autopilot:min").value("2").build())
                        .build(),
                )
                .build()
        })
    }

    fn event(steps: &str, datapoints: &str, threshold: f64) -> Value {
        let reason = format!(r#"{{"recentDatapoints":[{datapoints}],"threshold":{threshold}}}"#);
        json!({
            "id": "e1", "detail-type": "CloudWatch Alarm State Change", "source": "aws.cloudwatch", "account": "123456789012",
            "region": "us-east-1", "time": "2025-11-25T14:35:12Z",
            "resources": ["arn:aws:cloudwatch:us-east-1:123456789012:alarm:random-cpu-low"],
            "detail": {
                "alarmName": "random-cpu-low",
                "state": {"value": "ALARM", "reasonData": reason, "timestamp": "2025-11-25T14:35:12.748+0000"},
                "tags": {"autopilot:scale": "stage01/random", "autopilot:steps": steps}
            }
        })
    }

    fn dep(status: &str, state: DeploymentRolloutState) -> Deployment {
        Deployment::builder().status(status).rollout_state(state).desired_count(6).running_count(3).build()
    }

    /// Two deployments (a real rolling update; moto cannot produce one): scale-in waits.
    #[tokio::test]
    async fn scale_in_waits_for_a_rolling_update() {
        let describe = service(vec![dep("PRIMARY", DeploymentRolloutState::InProgress), dep("ACTIVE", DeploymentRolloutState::Completed)]);
        let update = mock!(ecs::Client::update_service).then_output(|| ecs::operation::update_service::UpdateServiceOutput::builder().build());
        let s = scaler(&[&describe, &update]);
        let out = s.handle(event(":0:-2", "10", 30.0)).await.unwrap();
        assert_eq!(out["refusal"], "rollout-in-progress", "{out}");
        assert_eq!(update.num_calls(), 0);
    }

    /// A failed UpdateService fails the invocation (retryable), releases the transition and
    /// leaves no cooldown behind, so EventBridge's retry scales.
    #[tokio::test]
    async fn failed_update_leaves_no_cooldown_and_releases_the_transition() {
        let describe = service(vec![dep("PRIMARY", DeploymentRolloutState::Completed)]);
        let update = mock!(ecs::Client::update_service)
            .then_error(|| ecs::operation::update_service::UpdateServiceError::ServerException(ecs::types::error::ServerException::builder()
                .message("boom")
                .meta(aws_smithy_types::error::ErrorMetadata::builder().code("ServerException").message("boom").build())
                .build()));
        let s = scaler(&[&describe, &update]);
        let err = s.handle(event("0::+2", "90", 70.0)).await.unwrap_err();
        assert!(err.retryable(), "{err}");
        assert_eq!(update.num_calls(), 1);
        let rec = s.env.state.get("scale", "stage01/random").await.unwrap();
        let cooldowns: Cooldowns = rec.map(|r| serde_json::from_value(r.data).unwrap()).unwrap_or_default();
        assert_eq!(cooldowns.last_scale_out_at, None, "no cooldown recorded for a scale that did not happen");
        assert!(s.env.state.get("scale-transition", &format!("random-cpu-low#{}", transition_id("2025-11-25T14:35:12.748+0000"))).await.unwrap().is_none());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rollout_detection() {
        use ecs::types::{Deployment, DeploymentRolloutState as R, Service};
        let dep = |status: &str, state: R| Deployment::builder().status(status).rollout_state(state).build();
        let svc = |deps: Vec<Deployment>, desired: i32, running: i32| {
            Service::builder().set_deployments(Some(deps)).desired_count(desired).running_count(running).build()
        };
        // moto's eternal PRIMARY IN_PROGRESS with the service running what it wants: no rollout.
        assert!(!rollout_in_progress(&svc(vec![dep("PRIMARY", R::InProgress)], 4, 4)));
        assert!(rollout_in_progress(&svc(vec![dep("PRIMARY", R::InProgress)], 4, 0)));
        assert!(rollout_in_progress(&svc(vec![dep("PRIMARY", R::InProgress), dep("ACTIVE", R::Completed)], 4, 4)));
        assert!(!rollout_in_progress(&svc(vec![dep("PRIMARY", R::Completed)], 4, 2)));
    }

    #[test]
    fn service_arns_and_sizes() {
        assert_eq!(service_arn_parts("arn:aws:ecs:us-east-1:1:service/stage01/random"), Some(("stage01".into(), "random".into())));
        assert_eq!(service_arn_parts("arn:aws:ecs:us-east-1:1:service/random"), Some(("default".into(), "random".into())));
        assert_eq!(service_arn_parts("nope"), None);
        use ecs::types::{ContainerDefinition, TaskDefinition};
        let c = |cpu, mem: Option<i32>, res: Option<i32>| ContainerDefinition::builder().cpu(cpu).set_memory(mem).set_memory_reservation(res).build();
        let td = TaskDefinition::builder().container_definitions(c(256, Some(512), None)).container_definitions(c(128, None, Some(64))).build();
        assert_eq!(task_size(&td), TaskSize { cpu: 384, memory: 576 });
        let td = TaskDefinition::builder().cpu("1024").memory("2048").container_definitions(c(0, Some(10), None)).build();
        assert_eq!(task_size(&td), TaskSize { cpu: 1024, memory: 2048 });
    }
}
