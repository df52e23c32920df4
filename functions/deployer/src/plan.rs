//! Push-to-deploy decisions: a pushed image + what the clusters run → one plan of actions.
//! Pure: no AWS call here, every input is observed by the adapter (`deploy.rs`) beforehand.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use autopilot::image::ImageRef;
use autopilot::tags::{semver_tag, DeployRules, PinMode, Tags, TAG_DEPLOY, TAG_PIN};
use serde::Serialize;

/// The image an "ECR Image Action" (or the reconcile schedule) offers.
#[derive(Debug, Clone, PartialEq)]
pub struct Push {
    pub registry: String,
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

#[derive(Debug, Default)]
pub struct Observed {
    pub services: Vec<ObservedService>,
    /// By the reference services use.
    pub task_defs: HashMap<String, ObservedTaskDef>,
    /// By running image reference (the container's `image` string).
    pub running: HashMap<String, RunningImage>,
    /// Claim key → revision ARN already registered for it.
    pub registered: HashMap<String, String>,
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
    /// The command that fixes a misconfigured tag, when the right value is known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
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

/// Containers of `td` that run the pushed repository (normalised comparison).
pub fn matching_containers<'a>(td: &'a ObservedTaskDef, registry: &str, repository: &str) -> Vec<(&'a ContainerImage, ImageRef)> {
    td.containers
        .iter()
        .filter_map(|c| ImageRef::parse(&c.image).ok().filter(|r| r.same_repository(registry, repository)).map(|r| (c, r)))
        .collect()
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

pub fn eligibility(s: &ObservedService) -> Eligibility {
    let Some(raw) = s.tags.get(TAG_DEPLOY) else { return Eligibility::NotOptedIn };
    if let Some(c) = s.controller.as_deref().filter(|c| *c != "ECS") {
        return Eligibility::Skip(format!("deployment controller {c}: autopilot deploys only ECS-controlled services"));
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

/// The plan for one pushed image over every observed service.
pub fn plan_push(push: &Push, observed: &Observed) -> Plan {
    let mut plan = Plan::default();
    // (family, claim) → plan under construction, with the revision of its base.
    let mut groups: BTreeMap<(String, String), FamilyPlan> = BTreeMap::new();
    let mut pins: HashMap<(String, String), PinMode> = HashMap::new();
    for s in &observed.services {
        let skip = |reason: String| Skip { cluster: s.cluster.clone(), service: s.name.clone(), reason, misconfigured: false, fix: None };
        let (rules, pin) = match eligibility(s) {
            Eligibility::NotOptedIn => continue,
            Eligibility::Skip(reason) => {
                plan.skipped.push(skip(reason));
                continue;
            }
            Eligibility::Misconfigured { reason, suggestion } => {
                let fix = suggestion.map(|v| format!("aws ecs tag-resource --resource-arn {} --tags 'key={TAG_DEPLOY},value={v}'", s.arn));
                plan.skipped.push(Skip { misconfigured: true, fix, ..skip(reason) });
                continue;
            }
            Eligibility::Eligible { rules, pin } => (rules, pin),
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
mod tests {
    use super::*;

    const REG: &str = "111122223333.dkr.ecr.us-east-1.amazonaws.com";
    fn d(c: char) -> String {
        format!("sha256:{}", c.to_string().repeat(64))
    }

    fn svc(name: &str, td: &str, tags: &[(&str, &str)]) -> ObservedService {
        ObservedService {
            cluster: "arn:aws:ecs:us-east-1:111122223333:cluster/stage01".into(),
            name: name.into(),
            arn: format!("arn:aws:ecs:us-east-1:111122223333:service/stage01/{name}"),
            controller: None,
            tags: tags.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            task_definition: td.into(),
        }
    }

    fn td(family: &str, rev: i64, containers: &[(&str, &str)]) -> ObservedTaskDef {
        ObservedTaskDef {
            arn: format!("arn:aws:ecs:us-east-1:111122223333:task-definition/{family}:{rev}"),
            family: family.into(),
            revision: rev,
            containers: containers.iter().map(|(n, i)| ContainerImage { name: n.to_string(), image: i.to_string() }).collect(),
        }
    }

    fn push(tag: &str, digest: &str) -> Push {
        Push { registry: REG.into(), repository: "auth".into(), tag: tag.into(), digest: digest.into(), pushed_at: Some(2_000), fresh: true }
    }

    fn world() -> Observed {
        let auth = td("auth", 1, &[("auth", &format!("{REG}/auth:v1")), ("envoy", "public.ecr.aws/envoy:v1.29")]);
        let random = td("random", 1, &[("random", &format!("{REG}/random:v1"))]);
        let mut o = Observed::default();
        o.services = vec![
            svc("auth", &auth.arn, &[("autopilot:deploy", "semver")]),
            svc("auth-canary", &auth.arn, &[("autopilot:deploy", "any"), ("autopilot:pin", "tag")]),
            svc("random", &random.arn, &[("autopilot:deploy", "any")]),
            svc("legacy", &auth.arn, &[]),
        ];
        o.task_defs.insert(auth.arn.clone(), auth);
        o.task_defs.insert(random.arn.clone(), random);
        o.running.insert(format!("{REG}/auth:v1"), RunningImage { digest: Some(d('1')), tags: vec!["v1".into()], pushed_at: Some(1_000) });
        o
    }

    #[test]
    fn push_plans_one_revision_per_family_and_pin() {
        let p = world();
        let plan = plan_push(&push("v2", &d('2')), &p);
        assert_eq!(plan.unrelated, 1, "{plan}");
        assert!(plan.skipped.is_empty(), "{plan}");
        assert_eq!(plan.families.len(), 2, "{plan}");
        let digest = plan.families.iter().find(|f| f.claim == format!("auth@{}", d('2'))).unwrap();
        assert_eq!(digest.services.iter().map(|t| t.service.as_str()).collect::<Vec<_>>(), ["auth"]);
        assert_eq!(digest.changes, vec![ImageChange { container: "auth".into(), from: format!("{REG}/auth:v1"), to: format!("{REG}/auth@{}", d('2')) }]);
        let tag = plan.families.iter().find(|f| f.claim.ends_with("#tag=v2")).unwrap();
        assert_eq!(tag.changes[0].to, format!("{REG}/auth:v2"));
        assert_eq!(tag.services[0].service, "auth-canary");
    }

    #[test]
    fn two_services_one_family_one_revision() {
        let mut p = world();
        p.services[1].tags.remove("autopilot:pin");
        let plan = plan_push(&push("v2", &d('2')), &p);
        assert_eq!(plan.families.len(), 1);
        assert_eq!(plan.families[0].services.len(), 2);
    }

    #[test]
    fn skips_with_reasons() {
        let cases: Vec<(&str, Box<dyn Fn(&mut Observed)>, Push, &str)> = vec![
            ("glob mismatch", Box::new(|o| o.services.truncate(1)), push("latest", &d('2')), "tag latest does not match autopilot:deploy=\"semver\""),
            (
                "code deploy",
                Box::new(|o| {
                    o.services.truncate(1);
                    o.services[0].controller = Some("CODE_DEPLOY".into())
                }),
                push("v2", &d('2')),
                "deployment controller CODE_DEPLOY",
            ),
            (
                "external",
                Box::new(|o| {
                    o.services.truncate(1);
                    o.services[0].controller = Some("EXTERNAL".into())
                }),
                push("v2", &d('2')),
                "deployment controller EXTERNAL",
            ),
            ("same digest", Box::new(|o| o.services.truncate(1)), push("v1", &d('1')), "already runs"),
            ("older semver", Box::new(|o| o.services.truncate(1)), push("v0.9", &d('2')), "never downgrade: pushed v0.9 is older than running v1"),
            (
                "older by push time",
                Box::new(|o| {
                    o.services.truncate(1);
                    o.services[0].tags.insert("autopilot:deploy".into(), "any".into());
                }),
                Push { pushed_at: Some(500), ..push("main-abc", &d('2')) },
                "never downgrade: pushed image",
            ),
            ("old glob", Box::new(|o| { o.services.truncate(1); o.services[0].tags.insert("autopilot:deploy".into(), "v*".into()); }), push("v2", &d('2')), "write autopilot:deploy=\"prefix:v\" instead"),
            ("bad rule", Box::new(|o| { o.services.truncate(1); o.services[0].tags.insert("autopilot:deploy".into(), "semver:two".into()); }), push("v2", &d('2')), "semver:MAJOR"),
            ("bad pin", Box::new(|o| { o.services.truncate(1); o.services[0].tags.insert("autopilot:pin".into(), "latest".into()); }), push("v2", &d('2')), "autopilot:pin"),
            (
                "already registered and running",
                Box::new(|o| {
                    o.services.truncate(1);
                    let arn = o.services[0].task_definition.clone();
                    o.registered.insert(format!("auth@{}", d('2')), arn);
                }),
                push("v2", &d('2')),
                "already on auth:1",
            ),
        ];
        for (name, setup, p, want) in cases {
            let mut o = world();
            setup(&mut o);
            let plan = plan_push(&p, &o);
            assert!(plan.families.is_empty(), "{name}: {plan}");
            assert_eq!(plan.skipped.len(), 1, "{name}: {plan}");
            assert!(plan.skipped[0].reason.contains(want), "{name}: {}", plan.skipped[0].reason);
            let misconfigured = ["old glob", "bad rule", "bad pin"].contains(&name);
            assert_eq!(plan.skipped[0].misconfigured, misconfigured, "{name}");
            if name == "old glob" {
                assert_eq!(
                    plan.skipped[0].fix.as_deref(),
                    Some("aws ecs tag-resource --resource-arn arn:aws:ecs:us-east-1:111122223333:service/stage01/auth --tags 'key=autopilot:deploy,value=prefix:v'")
                );
            }
        }
    }

    #[test]
    fn deploys_when_not_provably_older() {
        let cases = [
            ("newer semver", push("v2", &d('2'))),
            ("same tag new digest", push("v1", &d('2'))),
            ("newer push time, non-semver", Push { pushed_at: Some(5_000), ..push("v-main", &d('2')) }),
        ];
        for (name, p) in cases {
            let mut o = world();
            o.services.truncate(1);
            o.services[0].tags.insert("autopilot:deploy".into(), "any".into());
            let plan = plan_push(&p, &o);
            assert_eq!(plan.families.len(), 1, "{name}: {plan}");
        }
    }

    /// What each `autopilot:deploy` rule deploys over what runs (DESIGN.md: never downgrade,
    /// semver order for version tags, push time otherwise).
    #[test]
    fn each_rule_deploys_what_it_promises() {
        // (rule, running image's tags, its push time, pushed tag, its push time, why skipped)
        let cases: &[(&str, &[&str], i64, &str, i64, Option<&str>)] = &[
            ("semver", &["v2"], 1_000, "v3", 2_000, None),
            ("semver", &["v3"], 1_000, "v3.1.0-rc.1", 2_000, Some("does not match")),
            ("semver", &["v3"], 1_000, "v2.5.0", 3_000, Some("never downgrade: pushed v2.5.0 is older than running v3")),
            ("semver", &["v3"], 1_000, "v3", 2_000, None),
            ("semver", &["v3"], 2_000, "v3.0", 1_000, Some("never downgrade: pushed image")),
            ("semver", &["latest"], 1_000, "v1.0.0", 2_000, None),
            ("semver:2", &["v2.1"], 1_000, "v3.0.0", 2_000, Some("does not match")),
            ("semver:2", &["v2.1"], 1_000, "v2.2.0", 2_000, None),
            ("semver:2.1", &["v2.1"], 1_000, "v2.1.7", 2_000, None),
            ("semver:2.1", &["v2.1"], 1_000, "v2.2.0", 2_000, Some("does not match")),
            ("prefix:release-", &["release-41"], 1_000, "release-42", 2_000, None),
            ("prefix:release-", &["release-41"], 1_000, "main", 2_000, Some("does not match")),
            ("prefix:release-", &["release-43"], 3_000, "release-42", 2_000, Some("never downgrade")),
            ("latest", &["latest"], 1_000, "latest", 2_000, None),
            ("latest", &["v1"], 1_000, "v2", 2_000, Some("does not match")),
            ("main latest", &["main"], 1_000, "latest", 2_000, None),
            ("any", &["main-1"], 1_000, "feature-x", 2_000, None),
            ("any", &["v3"], 1_000, "v3.1.0-rc.1", 2_000, None),
            ("any", &["main-1"], 2_000, "feature-x", 2_000, None),
        ];
        for (rule, running, running_at, tag, pushed_at, skipped) in cases {
            let mut o = world();
            o.services.truncate(1);
            o.services[0].tags.insert("autopilot:deploy".into(), rule.to_string());
            o.running.insert(
                format!("{REG}/auth:v1"),
                RunningImage { digest: Some(d('1')), tags: running.iter().map(|t| t.to_string()).collect(), pushed_at: Some(*running_at) },
            );
            let plan = plan_push(&Push { pushed_at: Some(*pushed_at), ..push(tag, &d('2')) }, &o);
            let what = format!("{rule:?} running {running:?}@{running_at}, push {tag}@{pushed_at}: {plan}");
            match skipped {
                None => assert_eq!(plan.families.len(), 1, "{what}"),
                Some(why) => {
                    assert!(plan.families.is_empty(), "{what}");
                    assert!(plan.skipped[0].reason.contains(why), "{what}");
                }
            }
        }
    }

    #[test]
    fn reconcile_moves_only_onto_an_image_shown_to_be_newer() {
        let mut o = world();
        o.services.truncate(1);
        o.services[0].tags.insert("autopilot:deploy".into(), "any".into());
        o.running.insert(format!("{REG}/auth:v1"), RunningImage { digest: Some(d('1')), tags: vec!["main-1".into()], pushed_at: Some(2_000) });
        let tie = Push { pushed_at: Some(2_000), ..push("feature-x", &d('2')) };
        assert_eq!(plan_push(&tie, &o).families.len(), 1, "a push event at the same second deploys");
        let plan = plan_push(&Push { fresh: false, ..tie }, &o);
        assert!(plan.families.is_empty() && plan.skipped[0].reason.contains("no newer than the running one"), "{plan}");
    }

    #[test]
    fn registered_revision_is_reused_for_services_not_on_it() {
        let mut o = world();
        o.services.truncate(1);
        o.registered.insert(format!("auth@{}", d('2')), "arn:aws:ecs:us-east-1:111122223333:task-definition/auth:9".into());
        let plan = plan_push(&push("v2", &d('2')), &o);
        assert_eq!(plan.families[0].existing.as_deref(), Some("arn:aws:ecs:us-east-1:111122223333:task-definition/auth:9"));
        assert!(plan.to_string().contains("reuse auth:9"), "{plan}");
    }

    #[test]
    fn newest_revision_of_a_family_is_the_base() {
        let mut o = world();
        let newer = td("auth", 4, &[("auth", &format!("{REG}/auth:v1")), ("envoy", "public.ecr.aws/envoy:v1.29"), ("auth-worker", &format!("{REG}/auth:v1"))]);
        o.services[1].tags.remove("autopilot:pin");
        o.services[1].task_definition = newer.arn.clone();
        o.task_defs.insert(newer.arn.clone(), newer);
        let plan = plan_push(&push("v2", &d('2')), &o);
        assert_eq!(plan.families.len(), 1, "{plan}");
        assert_eq!(plan.families[0].base_revision, 4);
        assert_eq!(plan.families[0].changes.len(), 2, "both containers of the pushed repository change, the sidecar does not");
    }

    #[test]
    fn running_digest_trusts_the_reference_then_records_then_ecr() {
        let tagged = ImageRef::parse(&format!("{REG}/auth:v1")).unwrap();
        let p = push("v1", &d('2'));
        assert_eq!(running_digest(&tagged, None, Some(&d('1')), &p), Some(d('1')));
        assert_eq!(running_digest(&tagged, None, Some(&d('2')), &p), None, "the push moved the tag");
        assert_eq!(running_digest(&tagged, None, Some(&d('2')), &Push { fresh: false, ..p.clone() }), Some(d('2')), "reconcile trusts ECR");
        assert_eq!(running_digest(&tagged, Some(&d('3')), Some(&d('2')), &p), Some(d('3')));
        let pinned = ImageRef::parse(&format!("{REG}/auth@{}", d('4'))).unwrap();
        assert_eq!(running_digest(&pinned, None, None, &p), Some(d('4')));
    }
}
