//! Push-to-deploy decisions: a pushed image + what the clusters run → one plan of actions.
//! Pure: no AWS call here, every input is observed by the adapter (`deploy.rs`) beforehand.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use autopilot::image::{EcrRegistry, ImageRef};
use autopilot::tags::{semver_tag, DeployRules, PinMode, Tags, TAG_DEPLOY, TAG_PIN};
use serde::Serialize;

/// The image an "ECR Image Action" (or the reconcile schedule) offers.
#[derive(Debug, Clone, PartialEq)]
pub struct Push {
    /// The push's account and region: a container pulling through any of its hosts (IPv4, FIPS,
    /// dual-stack) runs this repository.
    pub registry: EcrRegistry,
    pub repository: String,
    /// Untagged pushes never deploy: the `autopilot:deploy` rules are about tags.
    pub tag: String,
    pub digest: String,
    /// ECR imagePushedAt, epoch milliseconds.
    pub pushed_at: Option<i64>,
    /// An ECR push event (the tag may just have moved), not a reconcile look-up.
    pub fresh: bool,
}

impl Push {
    pub fn label(&self) -> String {
        format!("{}, {}", self.tag, short_digest(&self.digest))
    }
}

pub fn short_digest(d: &str) -> String {
    let cut = d.char_indices().nth(19).map_or(d.len(), |(i, _)| i);
    if cut < d.len() {
        format!("{}...", &d[..cut])
    } else {
        d.to_string()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ObservedService {
    pub cluster: String,
    pub name: String,
    pub arn: String,
    /// ECS, CODE_DEPLOY or EXTERNAL (None = ECS).
    pub controller: Option<String>,
    pub tags: Tags,
    /// As DescribeServices reports it (an ARN, or family:revision).
    pub task_definition: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ContainerImage {
    pub name: String,
    pub image: String,
}

/// Only what decisions need from a task definition: no environment, no secrets.
#[derive(Clone, PartialEq)]
pub struct ObservedTaskDef {
    pub arn: String,
    pub family: String,
    pub revision: i64,
    pub containers: Vec<ContainerImage>,
}

impl fmt::Debug for ObservedTaskDef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.family, self.revision)
    }
}

/// What is known about the image a container runs (ECR lookup, the ref itself, our records).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunningImage {
    pub digest: Option<String>,
    pub tags: Vec<String>,
    pub pushed_at: Option<i64>,
}

/// The deployer's own deployment record of a service (`keys::deployment`): it put
/// `task_definition`, running `digest`, on the service.
#[derive(Debug, Clone, PartialEq)]
pub struct OurDeploy {
    pub task_definition: String,
    pub digest: String,
}

impl OurDeploy {
    /// The record's facts, when the deployer wrote it (a rollback's record names no digest).
    pub fn from_record(record: &serde_json::Value) -> Option<OurDeploy> {
        let s = |k: &str| record.get(k).and_then(serde_json::Value::as_str).filter(|v| !v.is_empty()).map(String::from);
        Some(OurDeploy { task_definition: s("taskDefinition")?, digest: s("digest")? })
    }
}

/// A verdict on a digest for one service (`keys::rolled_back`): who moved the service off the
/// revision that ran it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verdict {
    /// `keys::BY_CIRCUIT_BREAKER`, `keys::BY_RECOVERY` or `keys::BY_MOVED`.
    pub by: String,
    /// The revision that ran the digest.
    pub task_definition: String,
    /// The revision the service was moved to, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
}

impl Verdict {
    pub fn from_record(record: &serde_json::Value) -> Verdict {
        let s = |k: &str| record.get(k).and_then(serde_json::Value::as_str).map(String::from);
        Verdict { by: s("by").unwrap_or_else(|| autopilot::keys::BY_MOVED.into()), task_definition: s("taskDefinition").unwrap_or_default(), to: s("to") }
    }
}

/// What the state table (and a second look at the service) says about one service, for the
/// pushed digest.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct History {
    /// The deployer's last deployment record of the service.
    pub deployed: Option<OurDeploy>,
    /// A verdict on the pushed digest for this service.
    pub verdict: Option<Verdict>,
    /// The service's revision, read again after the records (only when the deployment record
    /// names the pushed digest on another revision than discovery saw).
    pub reread: Option<String>,
}

#[derive(Debug, Default)]
pub struct Observed {
    pub services: Vec<ObservedService>,
    /// By the reference services use.
    pub task_defs: HashMap<String, ObservedTaskDef>,
    /// By running image reference (the container's `image` string).
    pub running: HashMap<String, RunningImage>,
    /// Claim key → revision ARN already registered for it.
    pub registered: HashMap<String, String>,
    /// By service ARN: its deployment record and verdict on the pushed digest.
    pub history: HashMap<String, History>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ImageChange {
    pub container: String,
    pub from: String,
    pub to: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Target {
    pub cluster: String,
    pub service: String,
    pub service_arn: String,
    /// Task definition the service runs now.
    pub from: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FamilyPlan {
    pub family: String,
    /// State-table sort key under pk `register`: one revision per family per digest.
    pub claim: String,
    /// The revision copied.
    pub base: String,
    pub base_revision: i64,
    /// Already registered by an earlier delivery: reuse, register nothing.
    pub existing: Option<String>,
    pub changes: Vec<ImageChange>,
    pub services: Vec<Target>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Skip {
    pub cluster: String,
    pub service: String,
    pub reason: String,
    /// The service's own tags are invalid: a person is told, once (the reason says what to write).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub misconfigured: bool,
    /// Opted in, but CodeDeploy controls its deployments: a person is told once per service why,
    /// and where AWS documents the migration to ECS-native blue/green.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub code_deploy: bool,
    /// The command that fixes a misconfigured tag, when the right value is known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
    /// Held back by a verdict on the pushed digest: a person is told, once per service and digest.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub held_back: Option<HeldBack>,
}

/// A service the pushed digest is not deployed to because it was rolled back there (DESIGN.md:
/// a rollback is a verdict on a digest).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HeldBack {
    pub digest: String,
    pub verdict: Verdict,
    /// Found now (the service moved off our revision): the adapter records the verdict.
    pub new: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Plan {
    pub families: Vec<FamilyPlan>,
    pub skipped: Vec<Skip>,
    /// Opted-in services that do not run the pushed repository.
    pub unrelated: usize,
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.families.is_empty() && self.skipped.is_empty() {
            return write!(f, "nothing to deploy ({} opted-in services do not run this repository)", self.unrelated);
        }
        for fam in &self.families {
            let rev = match &fam.existing {
                Some(arn) => format!("reuse {}", revision_name(arn)),
                None => format!("register a copy of {}:{}", fam.family, fam.base_revision),
            };
            let changes: Vec<String> = fam.changes.iter().map(|c| format!("{} → {}", c.container, c.to)).collect();
            let services: Vec<String> = fam.services.iter().map(|t| format!("{}/{}", autopilot::config::cluster_name(&t.cluster), t.service)).collect();
            writeln!(f, "{}: {rev} with {}; update {}", fam.family, changes.join(", "), services.join(", "))?;
        }
        for s in &self.skipped {
            writeln!(f, "skip {}/{}: {}", autopilot::config::cluster_name(&s.cluster), s.service, s.reason)?;
        }
        Ok(())
    }
}

/// `family:revision` of an ARN or reference.
pub fn revision_name(td: &str) -> String {
    td.rsplit('/').next().unwrap_or(td).to_string()
}

pub fn claim_key(family: &str, digest: &str, pin: PinMode, tag: &str) -> String {
    match pin {
        PinMode::Tag => format!("{family}@{digest}#tag={tag}"),
        PinMode::Digest => format!("{family}@{digest}"),
    }
}

pub fn new_image(current: &ImageRef, push: &Push, pin: PinMode) -> String {
    match pin {
        PinMode::Tag => current.with_tag(&push.tag),
        PinMode::Digest => current.with_digest(&push.digest),
    }
}

/// Containers of `td` that run the pushed repository (normalised comparison; any host form of
/// the registry: [`EcrRegistry::is_host`]). Their new image keeps their own host.
pub fn matching_containers<'a>(td: &'a ObservedTaskDef, registry: &EcrRegistry, repository: &str) -> Vec<(&'a ContainerImage, ImageRef)> {
    td.containers.iter().filter_map(|c| ImageRef::parse(&c.image).ok().filter(|r| r.in_ecr(registry, repository)).map(|r| (c, r))).collect()
}

/// Why a service is (or is not) an opted-in deploy target at all.
pub enum Eligibility {
    /// No `autopilot:deploy` tag: never touched, not even reported.
    NotOptedIn,
    Skip(String),
    /// Its tags are wrong: a person must fix them (the reason says how; `suggestion` is the
    /// `autopilot:deploy` value to write instead, when there is one).
    Misconfigured { reason: String, suggestion: Option<String> },
    Eligible { rules: DeployRules, pin: PinMode },
}

/// AWS's guide from CodeDeploy blue/green to Amazon ECS blue/green deployments, where a service
/// autopilot can deploy ends up.
pub const CODE_DEPLOY_MIGRATION: &str = "https://docs.aws.amazon.com/AmazonECS/latest/developerguide/migrate-codedeploy-to-ecs-bluegreen.html";

pub const CONTROLLER_CODE_DEPLOY: &str = "CODE_DEPLOY";

/// Why a CODE_DEPLOY service is skipped: ECS answers UpdateService with a new task definition
/// "Unable to update task definition on services with a CODE_DEPLOY deployment controller";
/// only a CodeDeploy deployment moves it.
pub fn code_deploy_reason() -> String {
    format!(
        "deployment controller CODE_DEPLOY: ECS takes a new task definition for it only through a CodeDeploy deployment, and autopilot deploys only ECS-controlled services; migrate it to Amazon ECS blue/green ({CODE_DEPLOY_MIGRATION})"
    )
}

pub fn eligibility(s: &ObservedService) -> Eligibility {
    let Some(raw) = s.tags.get(TAG_DEPLOY) else { return Eligibility::NotOptedIn };
    match s.controller.as_deref() {
        Some(CONTROLLER_CODE_DEPLOY) => return Eligibility::Skip(code_deploy_reason()),
        Some(c) if c != "ECS" => return Eligibility::Skip(format!("deployment controller {c}: autopilot deploys only ECS-controlled services")),
        _ => {}
    }
    let rules = match DeployRules::parse(raw) {
        Ok(r) => r,
        Err(e) => return Eligibility::Misconfigured { reason: e.to_string(), suggestion: e.suggestion },
    };
    match PinMode::parse(s.tags.get(TAG_PIN).map(String::as_str)) {
        Ok(pin) => Eligibility::Eligible { rules, pin },
        Err(e) => Eligibility::Misconfigured { reason: e.to_string(), suggestion: None },
    }
}

/// Lenient semver of an image tag (`v2` = 2.0.0); see [`autopilot::tags::semver_tag`].
pub fn semver_of(tag: &str) -> Option<semver::Version> {
    semver_tag(tag)
}

#[derive(Debug, Clone, PartialEq)]
pub enum Order {
    /// The pushed digest is what runs.
    Same,
    /// Newer, equal version with another digest, or not provably older.
    Deploy,
    Older(String),
}

/// Never downgrade: semver order when both sides carry a version tag (an equal version is
/// decided by push time, so a rebuilt `v2` pushed later deploys), else ECR push time.
pub fn order(push: &Push, running: &RunningImage) -> Order {
    if running.digest.as_deref() == Some(push.digest.as_str()) {
        return Order::Same;
    }
    let pushed_v = semver_of(&push.tag);
    let running_v = running.tags.iter().filter_map(|t| semver_of(t).map(|v| (v, t))).max_by(|a, b| a.0.cmp(&b.0));
    if let (Some(p), Some((r, rtag))) = (pushed_v, running_v) {
        match p.cmp(&r) {
            std::cmp::Ordering::Less => return Order::Older(format!("pushed {} is older than running {rtag}", push.tag)),
            std::cmp::Ordering::Greater => return Order::Deploy,
            std::cmp::Ordering::Equal => {}
        }
    }
    if let (Some(p), Some(r)) = (push.pushed_at, running.pushed_at) {
        if p < r {
            return Order::Older(format!("pushed image ({}) was pushed before the running one", short_digest(&push.digest)));
        }
        // A push event is news of its own; the reconcile pass moves a service only onto an image
        // shown to be newer, and an equal push time shows nothing.
        if p == r && !push.fresh {
            return Order::Older(format!("pushed image ({}) is no newer than the running one (same push time)", short_digest(&push.digest)));
        }
    }
    Order::Deploy
}

/// Why an opted-in service is no candidate for any push, from its tags and controller alone
/// (`None`: eligible, or not opted in).
pub fn ineligible(s: &ObservedService) -> Option<Skip> {
    let skip = |reason: String| Skip { cluster: s.cluster.clone(), service: s.name.clone(), reason, misconfigured: false, code_deploy: false, fix: None, held_back: None };
    match eligibility(s) {
        Eligibility::NotOptedIn | Eligibility::Eligible { .. } => None,
        Eligibility::Skip(reason) => Some(Skip { code_deploy: s.controller.as_deref() == Some(CONTROLLER_CODE_DEPLOY), ..skip(reason) }),
        Eligibility::Misconfigured { reason, suggestion } => {
            let fix = suggestion.map(|v| format!("aws ecs tag-resource --resource-arn {} --tags 'key={TAG_DEPLOY},value={v}'", s.arn));
            Some(Skip { misconfigured: true, fix, ..skip(reason) })
        }
    }
}

/// The plan for one pushed image over every observed service.
pub fn plan_push(push: &Push, observed: &Observed) -> Plan {
    let mut plan = Plan::default();
    // (family, claim) → plan under construction, with the revision of its base.
    let mut groups: BTreeMap<(String, String), FamilyPlan> = BTreeMap::new();
    let mut pins: HashMap<(String, String), PinMode> = HashMap::new();
    for s in &observed.services {
        let skip = |reason: String| Skip { cluster: s.cluster.clone(), service: s.name.clone(), reason, misconfigured: false, code_deploy: false, fix: None, held_back: None };
        let (rules, pin) = match eligibility(s) {
            Eligibility::Eligible { rules, pin } => (rules, pin),
            _ => {
                plan.skipped.extend(ineligible(s));
                continue;
            }
        };
        let Some(td) = observed.task_defs.get(&s.task_definition) else {
            plan.skipped.push(skip(format!("task definition {} could not be read", revision_name(&s.task_definition))));
            continue;
        };
        let matching = matching_containers(td, &push.registry, &push.repository);
        if matching.is_empty() {
            plan.unrelated += 1;
            continue;
        }
        if !rules.matches(&push.tag) {
            plan.skipped.push(skip(format!("tag {} does not match {TAG_DEPLOY}=\"{rules}\"", push.tag)));
            continue;
        }
        let mut verdict = Order::Same;
        for (c, _) in &matching {
            let running = observed.running.get(&c.image).cloned().unwrap_or_default();
            match order(push, &running) {
                Order::Same => {}
                Order::Deploy => {
                    if verdict == Order::Same {
                        verdict = Order::Deploy
                    }
                }
                older @ Order::Older(_) => {
                    verdict = older;
                    break;
                }
            }
        }
        match verdict {
            Order::Same => {
                plan.skipped.push(skip(format!("already runs {}", short_digest(&push.digest))));
                continue;
            }
            Order::Older(reason) => {
                plan.skipped.push(skip(format!("never downgrade: {reason}")));
                continue;
            }
            Order::Deploy => {}
        }
        let known_digests = matching.iter().all(|(c, _)| observed.running.get(&c.image).is_some_and(|r| r.digest.is_some()));
        match hold(push, s, observed.history.get(&s.arn), known_digests) {
            None => {}
            Some(Hold::Unsettled(reason)) => {
                plan.skipped.push(skip(reason));
                continue;
            }
            Some(Hold::Back(held)) => {
                plan.skipped.push(Skip { held_back: Some(held.clone()), ..skip(held_back_reason(&held)) });
                continue;
            }
        }
        let claim = claim_key(&td.family, &push.digest, pin, &push.tag);
        let existing = observed.registered.get(&claim).cloned();
        if let Some(arn) = &existing {
            if same_revision(arn, &s.task_definition) {
                plan.skipped.push(skip(format!("already on {} for {}", revision_name(arn), short_digest(&push.digest))));
                continue;
            }
        }
        let target = Target { cluster: s.cluster.clone(), service: s.name.clone(), service_arn: s.arn.clone(), from: s.task_definition.clone() };
        let key = (td.family.clone(), claim.clone());
        pins.insert(key.clone(), pin);
        let group = groups.entry(key).or_insert_with(|| FamilyPlan {
            family: td.family.clone(),
            claim,
            base: td.arn.clone(),
            base_revision: td.revision,
            existing,
            changes: Vec::new(),
            services: Vec::new(),
        });
        // Services of one family may run different revisions: copy the newest.
        if td.revision > group.base_revision {
            group.base = td.arn.clone();
            group.base_revision = td.revision;
        }
        group.services.push(target);
    }
    for (key, mut group) in groups {
        let pin = pins[&key];
        let base = observed.task_defs.values().find(|t| t.arn == group.base).expect("base is an observed task definition");
        group.changes = matching_containers(base, &push.registry, &push.repository)
            .into_iter()
            .map(|(c, r)| ImageChange { container: c.name.clone(), from: c.image.clone(), to: new_image(&r, push, pin) })
            .collect();
        plan.families.push(group);
    }
    plan
}

/// Why a service that would deploy the pushed digest does not.
#[derive(Debug, Clone, PartialEq)]
pub enum Hold {
    /// A verdict on the digest for this service, known or found now.
    Back(HeldBack),
    /// The service changed while it was observed: the next delivery or pass decides.
    Unsettled(String),
}

/// A rollback is a verdict on a digest (DESIGN.md). The pushed digest, which the never-downgrade
/// order would deploy to `s`, is held back when a verdict on it for this service is recorded,
/// or when the deployer's own record says it put the digest on the service with a revision the
/// service no longer runs: someone (a person, ECS, another tool) moved it off, and moved it to
/// something not newer (a newer deploy of ours makes the digest older, so the order never gets
/// here). That second case needs the running images known (`known_digests`) and a second look
/// at the service (`History::reread`) that agrees with discovery: a record written between the
/// two reads is our own deploy in flight, not a move.
pub fn hold(push: &Push, s: &ObservedService, history: Option<&History>, known_digests: bool) -> Option<Hold> {
    let history = history?;
    if let Some(verdict) = &history.verdict {
        return Some(Hold::Back(HeldBack { digest: push.digest.clone(), verdict: verdict.clone(), new: false }));
    }
    let ours = history.deployed.as_ref().filter(|d| d.digest == push.digest)?;
    let now = history.reread.as_deref().unwrap_or(&s.task_definition);
    if !same_revision(now, &s.task_definition) {
        return Some(Hold::Unsettled(format!("moved to {} while being observed; the next pass decides", revision_name(now))));
    }
    if same_revision(&ours.task_definition, now) || !known_digests {
        return None;
    }
    let verdict = Verdict { by: autopilot::keys::BY_MOVED.into(), task_definition: ours.task_definition.clone(), to: Some(now.to_string()) };
    Some(Hold::Back(HeldBack { digest: push.digest.clone(), verdict, new: true }))
}

/// The skip reason of a held-back service (its log line and outcome).
pub fn held_back_reason(h: &HeldBack) -> String {
    let by = match h.verdict.by.as_str() {
        autopilot::keys::BY_CIRCUIT_BREAKER => "ECS's deployment circuit breaker failed or rolled back".to_string(),
        autopilot::keys::BY_RECOVERY => "recovery rolled back a crash loop of".to_string(),
        _ => format!("the service was moved{} off", h.verdict.to.as_deref().map(|t| format!(" to {}", revision_name(t))).unwrap_or_default()),
    };
    format!("held back: {by} {} running {}; only a newer push deploys", revision_name(&h.verdict.task_definition), short_digest(&h.digest))
}

/// Whether an "ECS Deployment State Change" is a verdict on the digest we deployed: a FAILED
/// rollout of the revision our record put on the service (`current` is the failed deployment's
/// revision), or a circuit-breaker rollback to another revision than ours (`current` is the
/// rollback's target: ECS rolls back to the last completed deployment, so a target other than
/// our revision means ours failed, or was replaced by someone else's completed rollout, which
/// moved the service off it all the same).
pub fn rollout_verdict(rolling_back: bool, current: &str, deployed: Option<&OurDeploy>) -> Option<OurDeploy> {
    let ours = deployed?;
    let on_ours = same_revision(&ours.task_definition, current);
    (on_ours != rolling_back).then(|| ours.clone())
}

/// Minutes a strategy waits on purpose before ECS calls the rollout done ("Amazon ECS
/// blue/green deployments", "linear deployments", "canary deployments"): the final bake, plus
/// each linear step's bake (one step per `stepPercent` of traffic) or the canary's bake.
pub fn bake_minutes(strategy: Option<&str>, bake: Option<i32>, linear: Option<(f64, i32)>, canary_bake: Option<i32>) -> u64 {
    let minutes = |m: Option<i32>| m.unwrap_or(0).max(0) as u64;
    match strategy {
        Some("BLUE_GREEN") => minutes(bake),
        Some("LINEAR") => {
            let (step, step_bake) = linear.unwrap_or((0.0, 0));
            let steps = if step > 0.0 { (100.0 / step).ceil().min(100.0) as u64 } else { 1 };
            steps * minutes(Some(step_bake)) + minutes(bake)
        }
        Some("CANARY") => minutes(canary_bake) + minutes(bake),
        _ => 0,
    }
}

/// A rollout of ours past its deadline: the service still runs the revision we put on it, ECS
/// still reports the PRIMARY deployment IN_PROGRESS, and `deadline` plus the strategy's bake
/// times have passed since we started it (`started_at`, epoch seconds). How long it has run.
pub fn stuck_for(ours: &OurDeploy, started_at: u64, current: &str, rollout_state: Option<&str>, deadline_secs: u64, bake_minutes: u64, now: u64) -> Option<u64> {
    if rollout_state != Some("IN_PROGRESS") || !same_revision(&ours.task_definition, current) {
        return None;
    }
    let running = now.saturating_sub(started_at);
    (running > deadline_secs + bake_minutes * 60).then_some(running)
}

/// ARNs and `family:revision` references name the same revision.
pub fn same_revision(a: &str, b: &str) -> bool {
    a == b || revision_name(a) == revision_name(b)
}

/// The digest a container runs: the reference's own digest, else the one we recorded deploying
/// (`recorded`), else ECR's answer for its tag — unless that is the digest a push event just
/// announced: then the push moved the tag, and what the tasks run is unknown.
pub fn running_digest(reference: &ImageRef, recorded: Option<&str>, ecr: Option<&str>, push: &Push) -> Option<String> {
    if let Some(d) = &reference.digest {
        return Some(d.clone());
    }
    if let Some(d) = recorded {
        return Some(d.to_string());
    }
    ecr.filter(|d| !push.fresh || *d != push.digest).map(str::to_string)
}

#[cfg(test)]
mod tests;
