//! The adapter: observe the clusters, plan (`plan.rs`), execute the plan, record, notify.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use autopilot::config::cluster_name;
use autopilot::image::ImageRef;
use autopilot::runtime::Env;
use autopilot::state::now_epoch;
use autopilot::tags::TAG_DEPLOY;
use autopilot::{keys, Error, Notification};
use serde_json::{json, Value};

use crate::aws::{digest_id, tag_id, Aws};
use crate::plan::{
    claim_key, eligibility, matching_containers, plan_push, revision_name, running_digest, Eligibility, FamilyPlan, ObservedService,
    ObservedTaskDef, Observed, Plan, Push, RunningImage, Skip,
};
use crate::taskdef::RawTaskDef;

/// A registration claim lives this long while its delivery registers.
const REGISTER_LEASE: Duration = Duration::from_secs(900);
/// Registered revisions and deployment records are remembered this long.
const RECORD_TTL: Duration = Duration::from_secs(30 * 24 * 3600);
pub const PK_REGISTER: &str = "register";

/// Everything opted in that the clusters run, read once per invocation.
#[derive(Default)]
pub struct Discovered {
    pub services: Vec<ObservedService>,
    pub raw: HashMap<String, RawTaskDef>,
    pub task_defs: HashMap<String, ObservedTaskDef>,
    /// "cluster/service" → why it could not be observed.
    pub failures: Vec<(String, Error)>,
}

pub fn who(cluster: &str, service: &str) -> String {
    format!("{}/{service}", cluster_name(cluster))
}

pub async fn discover(env: &Env, aws: &Aws) -> Result<Discovered, Error> {
    let mut d = Discovered::default();
    for cluster in aws.clusters(&env.config.clusters).await? {
        let arns = aws.list_services(&cluster).await?;
        for info in aws.describe_services(&cluster, &arns).await? {
            let s = info.observed;
            if info.status != "ACTIVE" || !s.tags.contains_key(TAG_DEPLOY) {
                continue;
            }
            d.services.push(s);
        }
    }
    // One DescribeTaskDefinition per distinct revision, only for services we could deploy.
    let wanted: BTreeSet<String> =
        d.services.iter().filter(|s| matches!(eligibility(s), Eligibility::Eligible { .. })).map(|s| s.task_definition.clone()).collect();
    for td in wanted {
        match aws.describe_task_definition(&td).await {
            Ok(raw) => match raw.observed() {
                Ok(o) => {
                    d.task_defs.insert(td.clone(), o);
                    d.raw.insert(td, raw);
                }
                Err(e) => d.fail_td(&td, Error::Refused(format!("{}: {e}", revision_name(&td)))),
            },
            Err(e) => d.fail_td(&td, e),
        }
    }
    Ok(d)
}

impl Discovered {
    fn fail_td(&mut self, td: &str, e: Error) {
        tracing::error!(task_definition = %revision_name(td), error = %e, "cannot read task definition: its services are not deployed");
        let (failed, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut self.services).into_iter().partition(|s| s.task_definition == td);
        self.services = kept;
        for s in failed {
            self.failures.push((who(&s.cluster, &s.name), Error::Aws {
                service: "ecs",
                operation: "DescribeTaskDefinition",
                code: e.kind().into(),
                message: e.to_string(),
                retryable: e.retryable(),
            }));
        }
    }
}

/// The outcome of one pushed image over the services offered to it.
#[derive(Default)]
pub struct PushOutcome {
    pub deployed: Vec<Value>,
    pub planned: Vec<Value>,
    pub skipped: Vec<Skip>,
    pub failed: Vec<(String, Error)>,
}

pub async fn deploy_push(env: &Env, aws: &Aws, account: &str, push: &Push, disc: &Discovered, only: Option<&BTreeSet<String>>) -> PushOutcome {
    let mut out = PushOutcome::default();
    let services: Vec<ObservedService> = disc.services.iter().filter(|s| only.is_none_or(|o| o.contains(&s.arn))).cloned().collect();
    let mut observed = Observed { task_defs: disc.task_defs.clone(), ..Observed::default() };
    let mut kept = Vec::new();
    for s in services {
        let Eligibility::Eligible { pin, .. } = eligibility(&s) else {
            kept.push(s);
            continue;
        };
        let Some(td) = disc.task_defs.get(&s.task_definition) else {
            kept.push(s);
            continue;
        };
        let matching = matching_containers(td, &push.registry, &push.repository);
        if matching.is_empty() {
            kept.push(s);
            continue;
        }
        match observe_running(env, aws, account, push, &s, &matching, &mut observed).await {
            Ok(()) => {}
            Err(e) => {
                tracing::error!(service = %who(&s.cluster, &s.name), error = %e, "cannot tell which image the service runs: not deployed");
                out.failed.push((who(&s.cluster, &s.name), e));
                continue;
            }
        }
        let claim = claim_key(&td.family, &push.digest, pin, push.tag.as_deref());
        if !observed.registered.contains_key(&claim) {
            match env.state.get(PK_REGISTER, &claim).await {
                Ok(Some(r)) => {
                    if let Some(arn) = r.data.get("taskDefinition").and_then(Value::as_str) {
                        observed.registered.insert(claim, arn.to_string());
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    out.failed.push((who(&s.cluster, &s.name), e));
                    continue;
                }
            }
        }
        kept.push(s);
    }
    observed.services = kept;
    let plan = plan_push(push, &observed);
    log_plan(push, &plan);
    out.skipped = plan.skipped.clone();
    for fam in &plan.families {
        out.planned.push(json!({
            "family": fam.family,
            "base": revision_name(&fam.base),
            "reuse": fam.existing.as_deref().map(revision_name),
            "images": fam.changes.iter().map(|c| json!({"container": c.container, "to": c.to})).collect::<Vec<_>>(),
            "services": fam.services.iter().map(|t| who(&t.cluster, &t.service)).collect::<Vec<_>>(),
        }));
    }
    if env.config.dry_run {
        for fam in &plan.families {
            let n = family_notification(fam, push, "deploy.planned", &format!("would deploy {} ({})", fam.family, push.label()), None);
            notify(env, &format!("plan#{}#{}", fam.claim, services_key(fam)), &n).await;
        }
        return out;
    }
    // Sequential: RegisterTaskDefinition's bucket is 20 with 1/s refill; the SDK retries back off.
    for fam in &plan.families {
        execute_family(env, aws, push, &disc.raw, fam, &mut out).await;
    }
    out
}

async fn observe_running(
    env: &Env,
    aws: &Aws,
    account: &str,
    push: &Push,
    s: &ObservedService,
    matching: &[(&crate::plan::ContainerImage, ImageRef)],
    observed: &mut Observed,
) -> Result<(), Error> {
    let (pk, sk) = keys::deployment(&s.cluster, &s.name);
    let record = env.state.get(&pk, &sk).await?;
    let recorded = record
        .as_ref()
        .filter(|r| r.data.get("taskDefinition").and_then(Value::as_str).is_some_and(|td| crate::plan::same_revision(td, &s.task_definition)))
        .and_then(|r| r.data.get("digest").and_then(Value::as_str).map(String::from));
    for (c, r) in matching {
        if observed.running.contains_key(&c.image) {
            continue;
        }
        let id = match (&r.digest, &recorded, &r.tag) {
            (Some(d), _, _) | (None, Some(d), _) => digest_id(d),
            (None, None, Some(t)) => tag_id(t),
            (None, None, None) => tag_id("latest"),
        };
        let ecr = aws.describe_image(account, &push.repository, id).await?;
        let ecr_digest = ecr.as_ref().map(|e| e.digest.as_str());
        let digest = running_digest(r, recorded.as_deref(), ecr_digest, push);
        let mut running = RunningImage { digest: digest.clone(), tags: r.tag.iter().cloned().collect(), pushed_at: None };
        if let Some(e) = ecr.filter(|e| digest.as_deref() == Some(e.digest.as_str())) {
            running.tags.extend(e.tags);
            running.pushed_at = e.pushed_at;
        }
        observed.running.insert(c.image.clone(), running);
    }
    Ok(())
}

fn log_plan(push: &Push, plan: &Plan) {
    for fam in &plan.families {
        let services: Vec<String> = fam.services.iter().map(|t| who(&t.cluster, &t.service)).collect();
        tracing::info!(family = %fam.family, base = %revision_name(&fam.base), reuse = ?fam.existing.as_deref().map(revision_name), services = ?services, image = %push.label(), "plan: deploy");
    }
    for s in &plan.skipped {
        tracing::info!(service = %who(&s.cluster, &s.service), reason = %s.reason, "skip");
    }
    if plan.families.is_empty() && plan.skipped.is_empty() {
        tracing::info!(repository = %push.repository, "no opted-in service runs this repository: nothing to do");
    }
}

fn services_key(fam: &FamilyPlan) -> String {
    fam.services.iter().map(|t| who(&t.cluster, &t.service)).collect::<Vec<_>>().join(",")
}

fn family_notification(fam: &FamilyPlan, push: &Push, event_type: &str, outcome: &str, revision: Option<&str>) -> Notification {
    let names: Vec<&str> = fam.services.iter().map(|t| t.service.as_str()).collect();
    let clusters: BTreeSet<&str> = fam.services.iter().map(|t| cluster_name(&t.cluster)).collect();
    let subject = format!("{}: {outcome}", names.join(", "));
    let description = format!(
        "{} in {}: {outcome}. Image {}/{} {}. Previous: {}.",
        names.join(", "),
        clusters.iter().copied().collect::<Vec<_>>().join(", "),
        push.registry,
        push.repository,
        push.label(),
        fam.services.iter().map(|t| revision_name(&t.from)).collect::<BTreeSet<_>>().into_iter().collect::<Vec<_>>().join(", "),
    );
    let mut n = Notification::new(event_type, subject, description)
        .field("cluster", clusters.iter().copied().collect::<Vec<_>>().join(","))
        .field("service", names.join(","))
        .field("family", fam.family.clone())
        .field("imageTag", push.tag.clone().map_or(Value::Null, Value::String))
        .field("digest", push.digest.clone())
        .field("repository", push.repository.clone());
    if let Some(r) = revision {
        n = n.field("revision", revision_name(r)).field("taskDefinition", r.to_string());
    }
    n
}

async fn notify(env: &Env, key: &str, n: &Notification) {
    if let Err(e) = env.notifier.publish_once(&env.state, key, env.config.notification_window, n).await {
        tracing::warn!(error = %e, "notification not sent");
    }
}

/// The revision for a family: reuse the one a claim remembers, else claim, register, remember.
async fn revision_for(env: &Env, aws: &Aws, raw: &HashMap<String, RawTaskDef>, fam: &FamilyPlan) -> Result<String, Error> {
    if let Some(arn) = &fam.existing {
        return Ok(arn.clone());
    }
    let claimed = match env.state.create(PK_REGISTER, &fam.claim, &json!({"status": "registering"}), REGISTER_LEASE).await {
        Ok(claimed) => claimed,
        Err(e) => {
            // The write may have landed with its answer lost: release it so the redelivery that
            // this error triggers is not held off by our own claim for the whole lease.
            let _ = env.state.delete(PK_REGISTER, &fam.claim).await;
            return Err(e);
        }
    };
    if !claimed {
        let record = env.state.get(PK_REGISTER, &fam.claim).await?;
        return match record.and_then(|r| r.data.get("taskDefinition").and_then(Value::as_str).map(String::from)) {
            Some(arn) => Ok(arn),
            None => Err(Error::Conflict(format!("another delivery is registering {}", fam.claim))),
        };
    }
    let result = async {
        let base = raw.get(&fam.base).ok_or_else(|| Error::Refused(format!("{} was not read", revision_name(&fam.base))))?;
        let unknown = base.unknown_fields();
        if !unknown.is_empty() {
            tracing::info!(family = %fam.family, fields = ?unknown, "carrying task-definition fields newer than this build through unchanged");
        }
        let images: Vec<(String, String)> = fam.changes.iter().map(|c| (c.container.clone(), c.to.clone())).collect();
        let request = base.register_request(&images).map_err(|e| Error::Refused(format!("{}: {e}", revision_name(&fam.base))))?;
        aws.register_task_definition(&request, base_revision_of(&fam.base), &images).await
    }
    .await;
    match result {
        Ok(arn) => {
            let data = json!({"status": "registered", "taskDefinition": arn, "from": fam.base, "at": now_epoch()});
            if let Err(e) = env.state.put(PK_REGISTER, &fam.claim, &data, RECORD_TTL).await {
                tracing::warn!(error = %e, claim = %fam.claim, "registered but could not remember it");
            }
            tracing::info!(family = %fam.family, revision = %revision_name(&arn), "registered");
            Ok(arn)
        }
        Err(e) => {
            let _ = env.state.delete(PK_REGISTER, &fam.claim).await;
            Err(e)
        }
    }
}

async fn execute_family(env: &Env, aws: &Aws, push: &Push, raw: &HashMap<String, RawTaskDef>, fam: &FamilyPlan, out: &mut PushOutcome) {
    let arn = match revision_for(env, aws, raw, fam).await {
        Ok(arn) => arn,
        Err(e) => {
            tracing::error!(family = %fam.family, error_kind = e.kind(), error = %e, "cannot register the new revision");
            // A retryable failure fails the invocation and is delivered again: telling a person
            // now would announce a failure the retry may well undo. The DLQ alarm covers the end.
            if !e.retryable() {
                let what = if matches!(e, Error::Refused(_)) { "deploy refused" } else { "deploy failed" };
                let n = family_notification(fam, push, "deploy.failed", &format!("{what} for {} ({})", push.label(), fam.family), None)
                    .field("reason", e.to_string());
                notify(env, &format!("push#{}#failed#{}", fam.claim, services_key(fam)), &n).await;
            }
            for t in &fam.services {
                out.failed.push((who(&t.cluster, &t.service), clone_error(&e)));
            }
            return;
        }
    };
    let mut done = Vec::new();
    let mut failed = Vec::new();
    for t in &fam.services {
        match aws.update_service(&t.cluster, &t.service, &arn).await {
            Ok(()) => {
                let (pk, sk) = keys::deployment(&t.cluster, &t.service);
                let record = json!({"taskDefinition": arn, "previous": t.from, "at": now_epoch(), "digest": push.digest, "tag": push.tag});
                if let Err(e) = env.state.put(&pk, &sk, &record, RECORD_TTL).await {
                    tracing::warn!(error = %e, "deployed but could not record the deployment");
                }
                tracing::info!(service = %who(&t.cluster, &t.service), from = %revision_name(&t.from), to = %revision_name(&arn), "deploying");
                out.deployed.push(json!({
                    "cluster": cluster_name(&t.cluster), "service": t.service, "family": fam.family,
                    "taskDefinition": arn, "previous": t.from, "digest": push.digest, "tag": push.tag,
                }));
                done.push(t.clone());
            }
            Err(e) => {
                tracing::error!(service = %who(&t.cluster, &t.service), error_kind = e.kind(), error = %e, "update failed");
                failed.push((t.clone(), e));
            }
        }
    }
    let label = format!("{} ({})", revision_name(&arn), push.label());
    if !done.is_empty() {
        let group = FamilyPlan { services: done, ..fam.clone() };
        let n = family_notification(&group, push, "deploy.started", &format!("deploying {label}"), Some(&arn));
        notify(env, &format!("push#{}#started#{}", fam.claim, services_key(&group)), &n).await;
    }
    let final_failures: Vec<&(crate::plan::Target, Error)> = failed.iter().filter(|(_, e)| !e.retryable()).collect();
    if !final_failures.is_empty() {
        let group = FamilyPlan { services: final_failures.iter().map(|(t, _)| t.clone()).collect(), ..fam.clone() };
        let reason = final_failures.iter().map(|(_, e)| e.to_string()).collect::<Vec<_>>().join("; ");
        let n = family_notification(&group, push, "deploy.failed", &format!("deploy of {label} failed"), Some(&arn)).field("reason", reason);
        notify(env, &format!("push#{}#failed#{}", fam.claim, services_key(&group)), &n).await;
    }
    for (t, e) in failed {
        out.failed.push((who(&t.cluster, &t.service), e));
    }
}

fn base_revision_of(arn: &str) -> i64 {
    arn.rsplit_once(':').and_then(|(_, r)| r.parse().ok()).unwrap_or(0)
}

/// `Error` is not Clone (it holds no sources that need to be, but keeps the type honest).
pub fn clone_error(e: &Error) -> Error {
    match e {
        Error::Refused(m) => Error::Refused(m.clone()),
        Error::Conflict(m) => Error::Conflict(m.clone()),
        Error::Aws { service, operation, code, message, retryable } => {
            Error::Aws { service: *service, operation: *operation, code: code.clone(), message: message.clone(), retryable: *retryable }
        }
        other => Error::Refused(other.to_string()),
    }
}
