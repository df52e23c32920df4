//! The re-evaluation schedule: alarms emit events only on transitions, so every alarm that stays
//! in ALARM and carries `autopilot:scale` is evaluated again (cooldowns decide whether it acts),
//! then each managed cluster may lose one idle instance.
//!
//! A metric alarm is measured now: GetMetricData reads its metric (or its metric-math queries)
//! over its evaluation window, so a breach that grows while the alarm stays in ALARM reaches the
//! larger step, as Application Auto Scaling's policy does ("The adjustments can continue for
//! additional alarm breaches until the alarm state returns to OK", AAS User Guide, "How step
//! scaling works"). DescribeAlarms' StateReasonData is the last state update's, possibly hours
//! old. A composite alarm has no metric: only a bare step (`+2`) applies, with cooldowns.

use autopilot::config::cluster_name;
use autopilot::runtime::Env;
use autopilot::state::now_epoch;
use autopilot::tags;
use autopilot::Error;

use crate::alarm;
use crate::aws::Aws;
use crate::cluster;
use crate::outcome::{Origin, Outcome};

pub async fn run(env: &Env, aws: &Aws) -> Result<Outcome, Error> {
    let mut results = Vec::new();
    let mut failures = Vec::new();
    let mut token: Option<String> = None;
    loop {
        // A CloudWatch failure must not stop the capacity work below: collect it.
        let page = match aws.describe_alarms_in_alarm(token.clone()).await {
            Ok(page) => page,
            Err(e) => {
                failures.push(e.to_string());
                break;
            }
        };
        for described in page.alarms {
            let mut view = described.view;
            let name = view.name.clone();
            let tags = match alarm::alarm_tags_for_reevaluation(aws, &view).await {
                Ok(t) => t,
                Err(e) => {
                    failures.push(format!("{name}: {e}"));
                    continue;
                }
            };
            if !tags.contains_key(tags::TAG_SCALE) {
                continue;
            }
            if let Some(query) = &described.metric {
                match aws.current_datapoints(query, now_epoch() as i64).await {
                    Ok(datapoints) => view.datapoints = datapoints,
                    Err(e) => {
                        tracing::error!(alarm = %name, error = %e, "could not read the alarm's metric");
                        failures.push(format!("{name}: {e}"));
                        continue;
                    }
                }
            }
            match alarm::evaluate(env, aws, &view, &tags, Origin::ReEvaluation).await {
                Ok(v) => results.push(v),
                Err(e) => {
                    tracing::error!(alarm = %name, error = %e, "re-evaluation failed");
                    failures.push(format!("{name}: {e}"));
                }
            }
        }
        token = page.next_token;
        if token.is_none() {
            break;
        }
    }
    let mut capacity = Vec::new();
    for cluster in managed_clusters(env, aws).await? {
        match cluster::shrink(env, aws, &cluster).await {
            Ok(Some(change)) => capacity.push(change),
            Ok(None) => {}
            Err(e) => failures.push(format!("cluster {cluster}: {e}")),
        }
    }
    if !failures.is_empty() {
        let total = results.len() + failures.len();
        return Err(Error::Partial { failed: failures.len(), total, summary: failures.join("; "), retryable: true });
    }
    Ok(Outcome::ReEvaluated { alarms: results, capacity })
}

/// The configured clusters, else every cluster of the account and region.
async fn managed_clusters(env: &Env, aws: &Aws) -> Result<Vec<String>, Error> {
    if !env.config.clusters.is_empty() {
        return Ok(env.config.clusters.iter().map(|c| cluster_name(c).to_string()).collect());
    }
    Ok(aws.cluster_arns().await?.iter().map(|a| cluster_name(a).to_string()).collect())
}
