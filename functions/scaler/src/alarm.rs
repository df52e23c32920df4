//! One alarm → one decision for one service, from an alarm transition or from the re-evaluation
//! schedule: observe (the alarm's tags, the service, its cooldown record), decide (`decide.rs`,
//! `steps.rs`), act (UpdateService, then the cluster's capacity), record, notify.

use std::time::Duration;

use autopilot::runtime::Env;
use autopilot::state::now_epoch;
use autopilot::tags::{self, Bounds, Tags};
use autopilot::Error;
use serde_json::json;

use crate::aws::Aws;
use crate::cluster;
use crate::decide::{self, AlarmView, NoStep};
use crate::messages::{self, Scaling};
use crate::outcome::{Capacity, Origin, Outcome, Scaled};
use crate::steps::{self, Cooldowns, Decision};

/// Claims of handled alarm transitions live as long as EventBridge may redeliver.
const TRANSITION_MEMORY: Duration = Duration::from_secs(2 * 24 * 3600);
/// The cooldown record outlives any cooldown (at most 86400 s).
const COOLDOWN_MEMORY: Duration = Duration::from_secs(3 * 24 * 3600);
/// A malformed alarm tag is said once per alarm and value, however often the schedule
/// re-evaluates the alarm meanwhile.
const INVALID_TAG_MEMORY: Duration = Duration::from_secs(30 * 24 * 3600);

/// An alarm's state-change event, in ALARM (`screen` settles the other states: OK ends a
/// scaling episode and never scales).
pub async fn on_transition(env: &Env, aws: &Aws, view: AlarmView) -> Result<Outcome, Error> {
    let tags = alarm_tags(aws, &view).await?;
    if !tags.contains_key(tags::TAG_SCALE) {
        tracing::info!(alarm = %view.name, "alarm has no autopilot:scale tag: ignored");
        return Ok(Outcome::ignored_alarm(&view.name, "no autopilot:scale tag"));
    }
    // Replays of one transition (EventBridge redelivery under a new id) never scale twice.
    let key = view.transition_key();
    if !env.state.create("scale-transition", &key, &json!({"at": now_epoch()}), TRANSITION_MEMORY).await? {
        tracing::info!(alarm = %view.name, transition = %view.timestamp, "alarm transition already handled");
        return Ok(Outcome::Replay { alarm: view.name.clone(), transition: view.timestamp.clone() });
    }
    let result = evaluate(env, aws, &view, &tags, Origin::Alarm).await;
    if result.is_err() {
        let _ = env.state.delete("scale-transition", &key).await;
    }
    result
}

/// The alarm's tags: from the event when it carries them complete (`alarmTags` with
/// `alarmTagsStatus` SUCCESS, an alarm with tag propagation on), else ListTagsForResource.
pub async fn alarm_tags(aws: &Aws, view: &AlarmView) -> Result<Tags, Error> {
    tags_of(aws, view, false).await
}

/// The same for the re-evaluation schedule, through the per-container cache
/// (`Aws::alarm_tags_cached`).
pub async fn alarm_tags_for_reevaluation(aws: &Aws, view: &AlarmView) -> Result<Tags, Error> {
    tags_of(aws, view, true).await
}

async fn tags_of(aws: &Aws, view: &AlarmView, cached: bool) -> Result<Tags, Error> {
    if let Some(t) = &view.tags {
        return Ok(t.clone());
    }
    let Some(arn) = view.arn.clone() else {
        return Err(Error::Refused(format!("alarm {}: the event names no alarm ARN (resources) or account to read its tags", view.name)));
    };
    if cached {
        aws.alarm_tags_cached(&arn).await
    } else {
        aws.list_tags_for_resource(&arn).await
    }
}

/// One alarm → one decision for one service (the alarm path and the re-evaluation path).
pub async fn evaluate(env: &Env, aws: &Aws, view: &AlarmView, tags: &Tags, origin: Origin) -> Result<Outcome, Error> {
    let alarm = &view.name;
    let cfg = match decide::parse_alarm_tags(tags) {
        None => return Ok(Outcome::ignored_alarm(alarm, "no autopilot:scale tag")),
        Some(Ok(c)) => c,
        Some(Err(e)) => {
            let (key, n) = messages::invalid_alarm_tag(alarm, view.arn.as_deref(), &e);
            env.notifier.publish_once(&env.state, &key, INVALID_TAG_MEMORY, &n).await?;
            return Err(Error::tag(format!("alarm {alarm}"), e));
        }
    };
    let (cluster, service) = (cfg.target.cluster.clone(), cfg.target.service.clone());
    if !env.config.manages_cluster(&cluster) {
        tracing::info!(alarm = %alarm, cluster, "cluster is not managed (AUTOPILOT_CLUSTERS): ignored");
        return Ok(Outcome::ignored_alarm(alarm, format!("cluster {cluster} is not managed")));
    }
    // A bare step (`+2`) is read in the alarm's direction, which an event does not carry.
    let directed;
    let view = if decide::needs_direction(view, &cfg.steps) {
        directed = AlarmView { direction: Some(aws.alarm_direction(alarm).await?), ..view.clone() };
        &directed
    } else {
        view
    };
    let step = match decide::alarm_step(view, &cfg.steps) {
        Ok(s) => s,
        Err(NoStep::NoDatapoints) => {
            let why = match origin {
                Origin::Alarm => "no datapoints in the alarm's reasonData to measure the breach",
                Origin::ReEvaluation => "no datapoints of the alarm's metric in its evaluation window now to measure the breach",
            };
            tracing::warn!(alarm = %alarm, why, "cannot measure the breach (composite alarm, or no metric data); only a bare step like +2 can apply");
            return Ok(Outcome::skipped(Some(alarm), why));
        }
        Err(NoStep::NoThreshold) => {
            tracing::warn!(alarm = %alarm, "the alarm has datapoints but no threshold");
            let why = match origin {
                Origin::Alarm => "no threshold in the alarm's reasonData",
                Origin::ReEvaluation => "no static threshold on the alarm (anomaly detection band)",
            };
            return Ok(Outcome::skipped(Some(alarm), why));
        }
        Err(NoStep::NoMatch { breach }) => {
            tracing::info!(alarm = %alarm, breach, "breach matches no step");
            return Ok(Outcome::unchanged(alarm, &service, format!("breach {} matches no step", messages::fmt_num(breach))));
        }
    };

    let Some(svc) = aws.describe_service(&cluster, &service).await? else {
        tracing::warn!(alarm = %alarm, cluster, service, "service named by autopilot:scale does not exist");
        return Ok(Outcome::skipped(Some(alarm), format!("service {cluster}/{service} not found")));
    };
    let bounds = match Bounds::from_tags(&svc.tags) {
        Ok(b) => b,
        Err(e) => {
            let (key, n) = messages::invalid_service_tag(&cluster, &service, &e);
            env.notifier.publish_once(&env.state, &key, env.config.notification_window, &n).await?;
            return Err(Error::tag(format!("service {cluster}/{service}"), e));
        }
    };
    let current = svc.current();

    let (sk, now) = (format!("{cluster}/{service}"), now_epoch() as i64);
    let record = env.state.get("scale", &sk).await?;
    let state: Cooldowns = record.as_ref().and_then(|r| serde_json::from_value(r.data.clone()).ok()).unwrap_or_default();
    let version = record.as_ref().map_or(0, |r| r.version);
    let mut input = steps::Input {
        current,
        bounds,
        adjustment: step.adjustment,
        cooldown: cfg.cooldown,
        state,
        now,
        rollout_in_progress: decide::rollout_in_progress(&svc),
        protected: 0,
    };
    let mut decision = steps::decide(&input);
    // A scale-in that would happen is decided again with the tasks protected from scale-in as
    // its floor: ECS does not stop them, so a lower desiredCount would say tasks go that stay.
    // Read only then: refusals and scale-outs need no task list.
    if matches!(decision, Decision::Scale { from, to, .. } if to < from) {
        input.protected = protected_tasks(aws, &cluster, &service, now).await?;
        if input.protected > 0 {
            decision = steps::decide(&input);
        }
    }
    let say = Scaling { view, cluster: &cluster, service: &service, step: step.adjustment };
    match decision {
        Decision::Nothing { reason } => {
            tracing::info!(alarm = %alarm, service, reason, "no change");
            Ok(Outcome::Unchanged { alarm: alarm.clone(), service, desired: Some(current), reason, origin: Some(origin) })
        }
        Decision::Refused { from, wanted, refusal, detail } => {
            let (key, n) = say.refused(from, wanted, refusal, &detail);
            env.notifier.publish_once(&env.state, &key, COOLDOWN_MEMORY, &n).await?;
            tracing::info!(alarm = %alarm, service, refusal = refusal.as_str(), detail, "scaling refused");
            Ok(Outcome::Refused { alarm: alarm.clone(), service, from, wanted, refusal, reason: detail, origin })
        }
        Decision::Scale { from, to, next, held } => {
            let dry = env.config.dry_run;
            if !dry {
                let new_version = env.state.put_if_version("scale", &sk, &serde_json::to_value(&next).unwrap_or_default(), COOLDOWN_MEMORY, version).await?;
                if let Err(e) = aws.update_desired_count(&cluster, &service, to).await {
                    // The error may be a lost answer to an update that landed: then the
                    // cooldown record must stay, or the redelivery would scale again.
                    let landed = matches!(aws.describe_service(&cluster, &service).await, Ok(Some(now)) if now.desired_count == to as i32);
                    if !landed {
                        let old = record.as_ref().map(|r| r.data.clone()).unwrap_or(json!({}));
                        let _ = env.state.put_if_version("scale", &sk, &old, COOLDOWN_MEMORY, new_version).await;
                        return Err(e);
                    }
                    tracing::warn!(service, to, error = %e, "UpdateService reported an error but the service is at the new count");
                }
            }
            let mut capacity = None;
            if to > from {
                match cluster::ensure_capacity(env, aws, &cluster, &svc.task_definition, svc.to_place_after_scale_out(from, to)).await {
                    Ok(checked) => capacity = checked,
                    Err(e) => {
                        tracing::warn!(error = %e, "capacity check failed after scaling out");
                        capacity = Some(Capacity::Unchecked { error: e.to_string() });
                    }
                }
            }
            let n = say.scaled(from, to, bounds, held, capacity.as_ref());
            env.notifier.publish(&n).await?;
            tracing::info!(alarm = %alarm, service, from, to, dry_run = dry, "scaled");
            Ok(Outcome::Scaled(Scaled {
                alarm: alarm.clone(),
                cluster,
                service,
                from,
                to,
                step: step.adjustment.to_string(),
                dry_run: dry,
                capacity,
                origin,
            }))
        }
    }
}

/// The service's tasks protected from scale-in at `now` (ListTasks, then GetTaskProtection).
async fn protected_tasks(aws: &Aws, cluster: &str, service: &str, now: i64) -> Result<u32, Error> {
    let tasks = aws.service_task_arns(cluster, service).await?;
    if tasks.is_empty() {
        return Ok(0);
    }
    Ok(decide::protected_tasks(&aws.task_protection(cluster, &tasks).await?, now))
}
