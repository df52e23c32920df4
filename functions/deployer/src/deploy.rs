//! The adapter: observe the clusters, plan (`plan.rs`), execute the plan, record, notify.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use futures_util::stream::{self, StreamExt};

use autopilot::config::cluster_name;
use autopilot::image::ImageRef;
use autopilot::runtime::Env;
use autopilot::state::now_epoch;
use autopilot::tags::TAG_DEPLOY;
use autopilot::{keys, Error, Notification};
use serde_json::{json, Value};

use crate::aws::{digest_id, tag_id, Aws};
use crate::messages::{code_deploy_notification, family_notification, held_back_notification, misconfigured_notification, push_notification, with_strategies};
use crate::outcome::{Deployed, PlannedFamily};
use crate::pacer::{Pacer, Pacers};
use crate::plan::{
    claim_key, eligibility, matching_containers, plan_push, revision_name, running_digest, same_revision, ContainerImage, Eligibility, FamilyPlan,
    History, ObservedService, ObservedTaskDef, Observed, OurDeploy, Plan, Push, RunningImage, Skip, Verdict,
};
use autopilot::tags::PinMode;
use crate::taskdef::RawTaskDef;

/// A registration claim lives this long while its delivery registers.
const REGISTER_LEASE: Duration = Duration::from_secs(900);
/// A service with invalid tags is announced at most this often (per service and tag value).
const MISCONFIGURED_NOTICE_WINDOW: Duration = Duration::from_secs(24 * 3600);
/// A CODE_DEPLOY service stays one until someone migrates it: told once per service (a year in
/// the state table), not at every push.
const CODE_DEPLOY_NOTICE_WINDOW: Duration = Duration::from_secs(365 * 24 * 3600);
/// Registered revisions and deployment records are remembered this long.
const RECORD_TTL: Duration = Duration::from_secs(30 * 24 * 3600);
/// A family is not started with less than this left before the invocation's deadline (issue 17,
/// item 2): a registration paced at RegisterTaskDefinition's 1/s refill, its UpdateServices and
/// the final record write must fit, or Lambda cuts them off half done at 15 minutes.
const DEADLINE_MARGIN: Duration = Duration::from_secs(60);
pub const PK_REGISTER: &str = "register";
/// DescribeTaskDefinition calls in flight at once (its bucket: 50, refill 20/s).
const READ_CONCURRENCY: usize = 10;
/// Families deployed at once: RegisterTaskDefinition's burst. Their registrations wait on
/// [`Pacer`]s, not on each other.
const FAMILY_CONCURRENCY: usize = 20;

/// Everything opted in that the clusters run, read once per invocation.
#[derive(Default)]
pub struct Discovered {
    pub services: Vec<ObservedService>,
    pub raw: HashMap<String, RawTaskDef>,
    pub task_defs: HashMap<String, ObservedTaskDef>,
    /// "cluster/service" → why it could not be observed.
    pub failures: Vec<(String, Error)>,
    /// Service ARN → where its rollout stands.
    pub progress: HashMap<String, crate::aws::RolloutProgress>,
    /// ARNs of the Express Mode services among them.
    pub express: BTreeSet<String>,
}

pub fn who(cluster: &str, service: &str) -> String {
    format!("{}/{service}", cluster_name(cluster))
}

/// Every opted-in service of every managed cluster (ListServices, DescribeServices), with the
/// task definitions of those it could deploy.
pub async fn discover(env: &Env, aws: &Aws) -> Result<Discovered, Error> {
    let mut d = Discovered::default();
    for cluster in aws.clusters(&env.config.clusters).await? {
        let arns = aws.list_services(&cluster).await?;
        d.observe(aws.describe_services(&cluster, &arns).await?);
    }
    d.read_task_definitions(aws).await;
    Ok(d)
}

/// [`discover`] for only these services (cluster, service ARN), as the repository index names
/// them: one DescribeServices per cluster and 10 services, nothing listed. Those gone, no longer
/// opted in or in a cluster no longer managed are simply not found.
pub async fn discover_only(env: &Env, aws: &Aws, services: &[(String, String)]) -> Result<Discovered, Error> {
    let mut by_cluster: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for (cluster, arn) in services.iter().filter(|(c, _)| env.config.manages_cluster(c)) {
        by_cluster.entry(cluster.as_str()).or_default().push(arn.clone());
    }
    let mut d = Discovered::default();
    // The clusters at once: each is its own DescribeServices call, whose bucket is the account's.
    // Built in a loop, not by a closure over `&str`: see `execute_families`.
    let mut reads = Vec::new();
    for (cluster, arns) in &by_cluster {
        reads.push(aws.describe_services(cluster, arns));
    }
    let described: Vec<Result<Vec<crate::aws::ServiceInfo>, Error>> = stream::iter(reads).buffered(READ_CONCURRENCY).collect().await;
    for infos in described {
        match infos {
            Ok(infos) => d.observe(infos),
            // A cluster deleted since the index was built: its services are gone with it (the
            // push then drops them from the entry); anything else fails the push for its retry.
            Err(Error::Aws { code, .. }) if code == "ClusterNotFoundException" => {}
            Err(e) => return Err(e),
        }
    }
    d.read_task_definitions(aws).await;
    Ok(d)
}

impl Discovered {
    /// Keep the active, opted-in services among those described.
    fn observe(&mut self, infos: Vec<crate::aws::ServiceInfo>) {
        for info in infos {
            let s = info.observed;
            if info.status != "ACTIVE" || !s.tags.contains_key(TAG_DEPLOY) {
                continue;
            }
            self.progress.insert(s.arn.clone(), info.progress);
            if info.express {
                self.express.insert(s.arn.clone());
            }
            self.services.push(s);
        }
    }

    /// One DescribeTaskDefinition per distinct revision, only for services we could deploy.
    async fn read_task_definitions(&mut self, aws: &Aws) {
        let wanted: BTreeSet<String> =
            self.services.iter().filter(|s| matches!(eligibility(s), Eligibility::Eligible { .. })).map(|s| s.task_definition.clone()).collect();
        let described: Vec<(String, Result<RawTaskDef, Error>)> = stream::iter(wanted)
            .map(|td| async move {
                let r = aws.describe_task_definition(&td).await;
                (td, r)
            })
            .buffered(READ_CONCURRENCY)
            .collect()
            .await;
        for (td, described) in described {
            match described {
                Ok(raw) => match raw.observed() {
                    Ok(o) => {
                        self.task_defs.insert(td.clone(), o);
                        self.raw.insert(td, raw);
                    }
                    Err(e) => self.fail_td(&td, Error::Refused(format!("{}: {e}", revision_name(&td)))),
                },
                Err(e) => self.fail_td(&td, e),
            }
        }
    }

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
    pub deployed: Vec<Deployed>,
    pub planned: Vec<PlannedFamily>,
    pub skipped: Vec<Skip>,
    pub failed: Vec<(String, Error)>,
}

pub async fn deploy_push(env: &Env, aws: &Aws, account: &str, push: &Push, disc: &Discovered, only: Option<&BTreeSet<String>>) -> PushOutcome {
    let mut out = PushOutcome::default();
    let services: Vec<ObservedService> = disc.services.iter().filter(|s| only.is_none_or(|o| o.contains(&s.arn))).cloned().collect();
    let mut observed = Observed { task_defs: disc.task_defs.clone(), ..Observed::default() };
    let mut kept = Vec::new();
    // Every state record the loop below needs, in one batched read: the deployment record of each
    // candidate service, its verdict on the pushed digest, and the registration claim of each family.
    let mut wanted: BTreeSet<(String, String)> = BTreeSet::new();
    for s in &services {
        let Some((pin, td, _)) = candidate(s, disc, push) else { continue };
        wanted.insert(keys::deployment(&s.cluster, &s.name));
        wanted.insert(keys::rolled_back(&s.cluster, &s.name, &push.digest));
        wanted.insert((PK_REGISTER.to_string(), claim_key(&td.family, &push.digest, pin, &push.tag)));
    }
    let records = if wanted.is_empty() { Ok(HashMap::new()) } else { env.state.get_many(&wanted).await };
    for s in services {
        // Services that are no candidate still go to the planner, which says why they are skipped.
        let Some((pin, td, matching)) = candidate(&s, disc, push) else {
            kept.push(s);
            continue;
        };
        let records = match &records {
            Ok(r) => r,
            Err(e) => {
                out.failed.push((who(&s.cluster, &s.name), e.duplicate()));
                continue;
            }
        };
        let record = records.get(&keys::deployment(&s.cluster, &s.name)).cloned();
        let verdict = records.get(&keys::rolled_back(&s.cluster, &s.name, &push.digest)).map(|r| Verdict::from_record(&r.data));
        let mut history = History { deployed: record.as_ref().and_then(|r| OurDeploy::from_record(&r.data)), verdict, reread: None };
        // Our record puts the pushed digest on another revision than discovery saw: moved off it,
        // or our own deploy landed between discovery and the read. A second look tells (`plan::hold`).
        if history.verdict.is_none() && history.deployed.as_ref().is_some_and(|d| d.digest == push.digest && !same_revision(&d.task_definition, &s.task_definition)) {
            match aws.describe_services(&s.cluster, std::slice::from_ref(&s.name)).await {
                Ok(found) => history.reread = Some(found.into_iter().find(|i| i.observed.name == s.name && i.status != "INACTIVE").map(|i| i.observed.task_definition).unwrap_or_default()),
                Err(e) => {
                    tracing::error!(service = %who(&s.cluster, &s.name), error = %e, "cannot read the service again: not deployed");
                    out.failed.push((who(&s.cluster, &s.name), e));
                    continue;
                }
            }
        }
        observed.history.insert(s.arn.clone(), history);
        match observe_running(aws, account, push, record, &s.task_definition, &matching, &mut observed).await {
            Ok(()) => {}
            Err(e) => {
                tracing::error!(service = %who(&s.cluster, &s.name), error = %e, "cannot tell which image the service runs: not deployed");
                out.failed.push((who(&s.cluster, &s.name), e));
                continue;
            }
        }
        let claim = claim_key(&td.family, &push.digest, pin, &push.tag);
        if let Some(arn) = records.get(&(PK_REGISTER.to_string(), claim.clone())).and_then(|r| r.data.get("taskDefinition").and_then(Value::as_str)) {
            observed.registered.insert(claim, arn.to_string());
        }
        kept.push(s);
    }
    observed.services = kept;
    let plan = plan_push(push, &observed);
    log_plan(push, &plan);
    out.skipped = plan.skipped.clone();
    for s in plan.skipped.iter().filter(|s| s.misconfigured) {
        notify_misconfigured(env, s).await;
    }
    for s in plan.skipped.iter().filter(|s| s.code_deploy) {
        notify_code_deploy(env, s).await;
    }
    record_verdicts(env, &plan.skipped).await;
    for s in plan.skipped.iter().filter(|s| s.held_back.is_some()) {
        notify_held_back(env, push, s).await;
    }
    out.planned = plan.families.iter().map(PlannedFamily::of).collect();
    if env.config.dry_run {
        for fam in &plan.families {
            let n = family_notification(fam, push, "deploy.planned", &format!("would deploy {} ({})", fam.family, push.label()), None);
            notify(env, &format!("plan#{}#{}", fam.claim, services_key(fam)), &n).await;
        }
        return out;
    }
    // One revision per family per digest: claim every family that needs a registration in one
    // conditional batch; a family someone else holds is adopted or retried (`revision_for`).
    let to_claim: BTreeMap<(String, String), Value> = plan
        .families
        .iter()
        .filter(|f| f.existing.is_none())
        .map(|f| ((PK_REGISTER.to_string(), f.claim.clone()), json!({"status": "registering"})))
        .collect();
    let claimed = if to_claim.is_empty() { Ok(BTreeSet::new()) } else { env.state.create_many(&to_claim, REGISTER_LEASE).await };
    let claimed = match claimed {
        Ok(c) => c.into_iter().map(|(_, sk)| sk).collect::<BTreeSet<String>>(),
        Err(e) => {
            // The writes may have landed with their answer lost: release them so the redelivery
            // this error triggers is not held off by our own claims for the whole lease.
            for (pk, sk) in to_claim.keys() {
                let _ = env.state.delete(pk, sk).await;
            }
            tracing::error!(error = %e, "cannot claim the registrations");
            for fam in plan.families.iter().filter(|f| f.existing.is_none()) {
                out.failed.extend(fam.services.iter().map(|t| (who(&t.cluster, &t.service), e.duplicate())));
            }
            let families: Vec<FamilyPlan> = plan.families.iter().filter(|f| f.existing.is_some()).cloned().collect();
            return execute_families(env, aws, push, disc, &families, &BTreeSet::new(), out).await;
        }
    };
    execute_families(env, aws, push, disc, &plan.families, &claimed, out).await
}

/// Deploy the families, several at once, then record what was registered and deployed in one
/// batched write and tell people once for the whole push.
async fn execute_families(
    env: &Env,
    aws: &Aws,
    push: &Push,
    disc: &Discovered,
    families: &[FamilyPlan],
    claimed: &BTreeSet<String>,
    mut out: PushOutcome,
) -> PushOutcome {
    let pacers = Pacers { register: Pacer::register(), update: Pacer::update() };
    let pacers = &pacers;
    // The futures are built in a loop, not by a closure: a closure over `&FamilyPlan` trips the
    // higher-ranked `Send` check of the handler's future.
    let mut work = Vec::new();
    for fam in families {
        work.push(execute_family(env, aws, push, &disc.raw, &disc.express, fam, claimed.contains(&fam.claim), pacers));
    }
    let parts: Vec<FamilyOutcome> = stream::iter(work).buffered(FAMILY_CONCURRENCY).collect().await;
    let mut records = BTreeMap::new();
    let mut started = Vec::new();
    for part in parts {
        out.deployed.extend(part.deployed);
        out.failed.extend(part.failed);
        records.extend(part.records);
        started.extend(part.started);
    }
    if !records.is_empty() {
        if let Err(e) = env.state.put_many(&records, RECORD_TTL).await {
            tracing::warn!(error = %e, "deployed but could not record the registrations and deployments");
        }
    }
    if !started.is_empty() {
        let strategies: Vec<(String, String, u64)> = started
            .iter()
            .flat_map(|(f, _)| f.services.iter())
            .filter_map(|t| disc.progress.get(&t.service_arn).and_then(|p| p.strategy.clone().filter(|s| s != "ROLLING").map(|s| (t.service.clone(), s, p.bake_minutes))))
            .collect();
        let n = with_strategies(push_notification(push, &started), &strategies);
        let key = format!("push#{}#started#{}", push.digest, started.iter().flat_map(|(f, _)| f.services.iter().map(|t| who(&t.cluster, &t.service))).collect::<Vec<_>>().join(","));
        notify(env, &key, &n).await;
    }
    out
}

/// A service this push may deploy: eligible, its task definition read, and a container of it
/// running the pushed repository (those containers, with their parsed images).
fn candidate<'a>(s: &ObservedService, disc: &'a Discovered, push: &Push) -> Option<(PinMode, &'a ObservedTaskDef, Vec<(&'a ContainerImage, ImageRef)>)> {
    let Eligibility::Eligible { pin, .. } = eligibility(s) else { return None };
    let td = disc.task_defs.get(&s.task_definition)?;
    let matching = matching_containers(td, &push.registry, &push.repository);
    (!matching.is_empty()).then_some((pin, td, matching))
}

async fn observe_running(
    aws: &Aws,
    account: &str,
    push: &Push,
    record: Option<autopilot::state::Record>,
    task_definition: &str,
    matching: &[(&ContainerImage, ImageRef)],
    observed: &mut Observed,
) -> Result<(), Error> {
    let recorded = record
        .as_ref()
        .filter(|r| r.data.get("taskDefinition").and_then(Value::as_str).is_some_and(|td| crate::plan::same_revision(td, task_definition)))
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
        if s.misconfigured {
            tracing::warn!(service = %who(&s.cluster, &s.service), reason = %s.reason, fix = ?s.fix, "skip: the service's autopilot tags are invalid");
        } else if s.code_deploy {
            tracing::warn!(service = %who(&s.cluster, &s.service), reason = %s.reason, "skip: CodeDeploy controls the service's deployments; migrate it to Amazon ECS blue/green");
        } else {
            tracing::info!(service = %who(&s.cluster, &s.service), reason = %s.reason, "skip");
        }
    }
    if plan.families.is_empty() && plan.skipped.is_empty() {
        tracing::info!(repository = %push.repository, "no opted-in service runs this repository: nothing to do");
    }
}

/// Tell people, at most as often as a push would, about the opted-in services no push can
/// deploy (invalid tags, CodeDeploy): reconcile does, since with the repository index a push no
/// longer sees every service.
pub async fn tell_ineligible(env: &Env, disc: &Discovered) {
    for s in disc.services.iter().filter_map(crate::plan::ineligible) {
        if s.misconfigured {
            notify_misconfigured(env, &s).await;
        } else if s.code_deploy {
            notify_code_deploy(env, &s).await;
        }
    }
}

/// A service whose `autopilot:` tags cannot be read is never deployed until someone fixes them:
/// tell a person once a day per service and value, with the reason (which says what to write).
async fn notify_misconfigured(env: &Env, s: &Skip) {
    let key = format!("invalid-tag#{}#{}", who(&s.cluster, &s.service), keys::digest_of(&s.reason));
    if let Err(e) = env.notifier.publish_once(&env.state, &key, MISCONFIGURED_NOTICE_WINDOW, &misconfigured_notification(s)).await {
        tracing::warn!(service = %who(&s.cluster, &s.service), error = %e, "invalid-tag notification not sent");
    }
}

/// An opted-in service CodeDeploy controls is never deployed by autopilot: tell a person once per
/// service why, and where AWS documents the migration to ECS-native blue/green.
async fn notify_code_deploy(env: &Env, s: &Skip) {
    let key = format!("code-deploy#{}", who(&s.cluster, &s.service));
    if let Err(e) = env.notifier.publish_once(&env.state, &key, CODE_DEPLOY_NOTICE_WINDOW, &code_deploy_notification(s)).await {
        tracing::warn!(service = %who(&s.cluster, &s.service), error = %e, "code-deploy-skipped notification not sent");
    }
}

/// The verdicts the plan found (a service moved off the digest we put there), recorded so that
/// they outlive our deployment record. A lost write is found again by the next pass.
async fn record_verdicts(env: &Env, skipped: &[Skip]) {
    let at = now_epoch();
    let found: BTreeMap<(String, String), Value> = skipped
        .iter()
        .filter_map(|s| s.held_back.as_ref().filter(|h| h.new).map(|h| (s, h)))
        .map(|(s, h)| (keys::rolled_back(&s.cluster, &s.service, &h.digest), keys::verdict_record(&h.digest, &h.verdict.task_definition, &h.verdict.by, h.verdict.to.as_deref(), at)))
        .collect();
    if found.is_empty() {
        return;
    }
    for (_, sk) in found.keys() {
        tracing::info!(verdict = %sk, "a service was moved off the digest deployed to it: it is not deployed there again");
    }
    if let Err(e) = env.state.create_many(&found, keys::VERDICT_TTL).await {
        tracing::warn!(error = %e, "could not record the verdicts; the next pass finds them again");
    }
}

/// One message per service and held-back digest, for as long as the verdict lasts: the reconcile
/// pass holds it back every 10 minutes, a person needs to hear it once.
async fn notify_held_back(env: &Env, push: &Push, s: &Skip) {
    let Some(h) = &s.held_back else { return };
    let key = format!("held-back#{}#{}", who(&s.cluster, &s.service), h.digest);
    if let Err(e) = env.notifier.publish_once(&env.state, &key, keys::VERDICT_TTL, &held_back_notification(s, push, env.config.state_table.as_deref())).await {
        tracing::warn!(service = %who(&s.cluster, &s.service), error = %e, "held-back notification not sent");
    }
}

/// How long a refusal of one digest for some services is told once: it comes back on every push
/// of that digest and every reconcile tick until a person acts (issue 17, item 3).
pub const REFUSAL_NOTICE_WINDOW: std::time::Duration = std::time::Duration::from_secs(7 * 24 * 3600);

fn services_key(fam: &FamilyPlan) -> String {
    fam.services.iter().map(|t| who(&t.cluster, &t.service)).collect::<Vec<_>>().join(",")
}

async fn notify(env: &Env, key: &str, n: &Notification) {
    notify_within(env, key, env.config.notification_window, n).await
}

async fn notify_within(env: &Env, key: &str, window: std::time::Duration, n: &Notification) {
    match env.notifier.publish_once(&env.state, key, window, n).await {
        Ok(_) => {}
        // The deploy is done and no redelivery will announce it: a message lost because its
        // dedupe record could not be written is worse than the rare duplicate of sending it.
        Err(e @ Error::Aws { service: "dynamodb", .. }) => {
            tracing::warn!(error = %e, "could not record the notification; sending it anyway");
            if let Err(e) = env.notifier.publish(n).await {
                tracing::warn!(error = %e, "notification not sent");
            }
        }
        Err(e) => tracing::warn!(error = %e, "notification not sent"),
    }
}

/// The revision for a family: reuse the one a claim remembers, register it when this delivery
/// holds the claim, else adopt what the holder registered. `Some(record)`: the claim's final
/// record, for the caller's batched write.
async fn revision_for(
    env: &Env,
    aws: &Aws,
    raw: &HashMap<String, RawTaskDef>,
    fam: &FamilyPlan,
    claimed: bool,
    pacer: &Pacer,
) -> Result<(String, Option<Value>), Error> {
    if let Some(arn) = &fam.existing {
        return Ok((arn.clone(), None));
    }
    if !claimed {
        let record = env.state.get(PK_REGISTER, &fam.claim).await?;
        return match record.and_then(|r| r.data.get("taskDefinition").and_then(Value::as_str).map(String::from)) {
            Some(arn) => Ok((arn, None)),
            None => Err(Error::Conflict(format!("another delivery is registering {}", fam.claim))),
        };
    }
    let result = async {
        let base = raw.get(&fam.base).ok_or_else(|| Error::Refused(format!("{} was not read", revision_name(&fam.base))))?;
        let unknown = base.unknown_fields();
        if !unknown.is_empty() {
            tracing::info!(family = %fam.family, fields = ?unknown, "carrying task-definition fields newer than this build through unchanged");
        }
        let reserved = base.reserved_tags();
        if !reserved.is_empty() {
            tracing::info!(family = %fam.family, tags = ?reserved, "not copying tags AWS reserves (aws: prefix): RegisterTaskDefinition refuses them");
        }
        let images: Vec<(String, String)> = fam.changes.iter().map(|c| (c.container.clone(), c.to.clone())).collect();
        let request = base.register_request(&images).map_err(|e| Error::Refused(format!("{}: {e}", revision_name(&fam.base))))?;
        pacer.acquire().await;
        aws.register_task_definition(&request, base_revision_of(&fam.base), &images).await
    }
    .await;
    match result {
        Ok(arn) => {
            tracing::info!(family = %fam.family, revision = %revision_name(&arn), "registered");
            let data = json!({"status": "registered", "taskDefinition": arn, "from": fam.base, "at": now_epoch()});
            Ok((arn, Some(data)))
        }
        Err(e) => {
            let _ = env.state.delete(PK_REGISTER, &fam.claim).await;
            Err(e)
        }
    }
}

/// What one family's deploy did, merged by `execute_families`.
#[derive(Default)]
struct FamilyOutcome {
    deployed: Vec<Deployed>,
    failed: Vec<(String, Error)>,
    /// State records to write: the registration and the services' deployment records.
    records: BTreeMap<(String, String), Value>,
    /// The services now rolling, with the revision, for the push's notification.
    started: Option<(FamilyPlan, String)>,
}

async fn execute_family(
    env: &Env,
    aws: &Aws,
    push: &Push,
    raw: &HashMap<String, RawTaskDef>,
    express: &BTreeSet<String>,
    fam: &FamilyPlan,
    claimed: bool,
    pacers: &Pacers,
) -> FamilyOutcome {
    let mut out = FamilyOutcome::default();
    if let Some(left) = autopilot::runtime::invocation_deadline().map(|d| d.duration_since(std::time::SystemTime::now()).unwrap_or_default()) {
        if left < DEADLINE_MARGIN {
            tracing::warn!(family = %fam.family, seconds_left = left.as_secs(), "the invocation's deadline is near: this family is left for the retry");
            if claimed {
                // Give the registration claim back, so the retry registers at once.
                let _ = env.state.delete(PK_REGISTER, &fam.claim).await;
            }
            let e = Error::Deadline(format!("{} was not started: {} s left before the invocation's deadline", fam.family, left.as_secs()));
            out.failed.extend(fam.services.iter().map(|t| (who(&t.cluster, &t.service), e.duplicate())));
            return out;
        }
    }
    let arn = match revision_for(env, aws, raw, fam, claimed, &pacers.register).await {
        Ok((arn, record)) => {
            if let Some(record) = record {
                out.records.insert((PK_REGISTER.to_string(), fam.claim.clone()), record);
            }
            arn
        }
        Err(e) => {
            tracing::error!(family = %fam.family, error_kind = e.kind(), error = %e, "cannot register the new revision");
            // A retryable failure fails the invocation and is delivered again: telling a person
            // now would announce a failure the retry may well undo. The DLQ alarm covers the end.
            if !e.retryable() {
                let what = if matches!(e, Error::Refused(_)) { "deploy refused" } else { "deploy failed" };
                let n = family_notification(fam, push, "deploy.failed", &format!("{what} for {} ({})", push.label(), fam.family), None)
                    .field("reason", e.to_string());
                notify_within(env, &format!("push#{}#failed#{}", fam.claim, services_key(fam)), REFUSAL_NOTICE_WINDOW, &n).await;
            }
            for t in &fam.services {
                out.failed.push((who(&t.cluster, &t.service), e.duplicate()));
            }
            return out;
        }
    };
    let mut done = Vec::new();
    let mut failed = Vec::new();
    for t in &fam.services {
        pacers.update.acquire().await;
        let updated = if express.contains(&t.service_arn) { aws.update_express_service(&t.service_arn, &arn).await } else { aws.update_service(&t.cluster, &t.service, &arn).await };
        match updated {
            Ok(()) => {
                let record = json!({"taskDefinition": arn, "previous": t.from, "at": now_epoch(), "digest": push.digest, "tag": push.tag, "repository": push.repository});
                out.records.insert(keys::deployment(&t.cluster, &t.service), record);
                tracing::info!(service = %who(&t.cluster, &t.service), from = %revision_name(&t.from), to = %revision_name(&arn), "deploying");
                out.deployed.push(Deployed {
                    cluster: cluster_name(&t.cluster).to_string(),
                    service: t.service.clone(),
                    family: fam.family.clone(),
                    task_definition: arn.clone(),
                    previous: t.from.clone(),
                    digest: push.digest.clone(),
                    tag: push.tag.clone(),
                });
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
        out.started = Some((FamilyPlan { services: done, ..fam.clone() }, arn.clone()));
    }
    let final_failures: Vec<&(crate::plan::Target, Error)> = failed.iter().filter(|(_, e)| !e.retryable()).collect();
    if !final_failures.is_empty() {
        let group = FamilyPlan { services: final_failures.iter().map(|(t, _)| t.clone()).collect(), ..fam.clone() };
        let reason = final_failures.iter().map(|(_, e)| e.to_string()).collect::<Vec<_>>().join("; ");
        let n = family_notification(&group, push, "deploy.failed", &format!("deploy of {label} failed"), Some(&arn)).field("reason", reason);
        notify_within(env, &format!("push#{}#failed#{}", fam.claim, services_key(&group)), REFUSAL_NOTICE_WINDOW, &n).await;
    }
    for (t, e) in failed {
        out.failed.push((who(&t.cluster, &t.service), e));
    }
    out
}

fn base_revision_of(arn: &str) -> i64 {
    arn.rsplit_once(':').and_then(|(_, r)| r.parse().ok()).unwrap_or(0)
}
