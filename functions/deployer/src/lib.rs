//! The `deployer` function (see DESIGN.md): push-to-deploy, rollout reports, reconcile.

pub mod aws;
pub mod deploy;
pub mod plan;
pub mod rollout;
pub mod taskdef;

use std::collections::{BTreeMap, BTreeSet};

use autopilot::aws_lambda_events::eventbridge::EventBridgeEvent;
use autopilot::events::{EcrActionType, EcrImageAction, EcrResult};
use autopilot::image::{ecr_registry, is_account_id, is_ecr_repository_name, not_runnable, ImageRef};
use autopilot::runtime::{run_event, Env, Function};
use autopilot::tags::{semver_tag, DeployRules};
use autopilot::{Config, Error, Incoming};
use serde_json::{json, Value};

use crate::aws::{digest_id, summarize, Aws, EcrImage};
use crate::deploy::{deploy_push, discover, PushOutcome};
use crate::plan::{eligibility, Eligibility, Push};

pub struct Deployer {
    pub env: Env,
    aws: Aws,
}

impl Function for Deployer {
    const NAME: &'static str = "deployer";

    fn new(env: Env) -> Self {
        let aws = Aws::new(&env.sdk);
        Deployer { env, aws }
    }

    async fn handle(&self, event: Value) -> Result<Value, Error> {
        run_event(&self.env, Self::NAME, event, Self::screen, |incoming| async move { self.dispatch(incoming).await }).await
    }

    fn screen(incoming: &Incoming, _config: &Config) -> Option<Value> {
        let reason = match incoming {
            Incoming::EcrImageAction(ev) => push_target(ev).err()?,
            Incoming::DeploymentStateChange(_) => return None,
            Incoming::Scheduled(ev) => {
                let rule = ev.resources.as_ref().and_then(|r| r.first()).cloned().unwrap_or_default();
                if rule.contains("reconcile") {
                    return None;
                }
                format!("scheduled rule {rule:?} is not a reconcile schedule")
            }
            other => format!("{} is not handled by deployer", other.detail_type()),
        };
        Some(json!({"status": "ignored", "reason": reason}))
    }
}

/// What a push event offers, when it can deploy anything at all.
struct PushTarget {
    digest: String,
    tag: String,
    account: String,
}

/// The pushed image of a push event, or why it deploys nothing, decided from the event alone:
/// not a push, a failed push, no usable digest, no tag (`autopilot:deploy` rules are about tags;
/// buildx pushes per-platform and attestation manifests untagged), not a runnable image
/// (signatures, attestations, SBOMs and other artifacts: DESIGN.md), no account to build the
/// registry from.
fn push_target(ev: &EventBridgeEvent<EcrImageAction>) -> Result<PushTarget, String> {
    let d = &ev.detail;
    if d.action_type != EcrActionType::Push {
        return Err(format!("ECR {:?} action on {}: only pushes deploy", d.action_type, d.repository_name));
    }
    if d.result != EcrResult::Success {
        return Err(format!("push to {} did not succeed ({:?})", d.repository_name, d.result));
    }
    if !is_ecr_repository_name(&d.repository_name) {
        let shown: String = d.repository_name.chars().take(80).map(|c| if c.is_control() { '?' } else { c }).collect();
        return Err(format!("repository-name {shown:?} is not a name ECR gives a repository"));
    }
    let Some(digest) = d.image_digest.clone().filter(|x| ImageRef::parse(&format!("x@{x}")).is_ok()) else {
        return Err(format!("push to {} carries no valid image digest", d.repository_name));
    };
    let Some(tag) = d.image_tag.clone().filter(|t| !t.is_empty()) else {
        return Err(format!("untagged push to {} ({}): only tagged images deploy", d.repository_name, plan::short_digest(&digest)));
    };
    // ECR tags are at most 300 characters (its ImageTag shape), of Docker's tag alphabet.
    let tag_ok = tag.len() <= 300
        && tag.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
        && tag.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if !tag_ok {
        let shown: String = tag.chars().take(80).map(|c| if c.is_control() { '?' } else { c }).collect();
        return Err(format!("image-tag {shown:?} of the push to {} is not an image tag", d.repository_name));
    }
    if let Some(why) = not_runnable(Some(&tag), d.manifest_media_type.as_deref(), d.artifact_media_type.as_deref()) {
        return Err(format!("push of {}:{tag} is not a runnable image: {why}", d.repository_name));
    }
    let Some(account) = ev.account.clone().filter(|a| is_account_id(a)) else {
        return Err("event carries no 12-digit account id".into());
    };
    Ok(PushTarget { digest, tag, account })
}

fn ignored(reason: impl Into<String>) -> Result<Value, Error> {
    let reason = reason.into();
    tracing::info!(%reason, "skip");
    Ok(json!({"status": "ignored", "reason": reason}))
}

impl Deployer {
    async fn dispatch(&self, incoming: Incoming) -> Result<Value, Error> {
        match incoming {
            Incoming::EcrImageAction(ev) => self.push(ev).await,
            Incoming::DeploymentStateChange(ev) => rollout::handle(&self.env, &self.aws, ev).await,
            Incoming::Scheduled(ev) => {
                let rule = ev.resources.as_ref().and_then(|r| r.first()).cloned().unwrap_or_default();
                if rule.contains("reconcile") {
                    self.reconcile(ev).await
                } else {
                    ignored(format!("scheduled rule {rule:?} is not a reconcile schedule"))
                }
            }
            other => ignored(format!("{} is not handled by deployer", other.detail_type())),
        }
    }

    fn account_region(&self, account: &Option<String>, region: &Option<String>) -> Option<(String, String)> {
        let account = account.clone().filter(|a| !a.is_empty())?;
        Some((account, self.region_or_own(region)))
    }

    /// The event's region, else the function's own.
    fn region_or_own(&self, region: &Option<String>) -> String {
        region.clone().filter(|r| !r.is_empty()).unwrap_or_else(|| self.env.region())
    }

    async fn push(&self, ev: EventBridgeEvent<EcrImageAction>) -> Result<Value, Error> {
        let PushTarget { digest, tag, account } = match push_target(&ev) {
            Ok(target) => target,
            Err(reason) => return ignored(reason),
        };
        let d = &ev.detail;
        let region = self.region_or_own(&ev.region);
        let registry = ecr_registry(&account, &region);
        let pushed = self.aws.describe_image(&account, &d.repository_name, digest_id(&digest)).await?;
        // The event's media types may be absent: ECR's own answer is checked too.
        if let Some(why) = pushed.as_ref().and_then(|p| p.not_runnable(&tag)) {
            return ignored(format!("push of {}:{tag} is not a runnable image: {why}", d.repository_name));
        }
        let push = Push {
            registry,
            repository: d.repository_name.clone(),
            tag,
            digest,
            pushed_at: pushed.and_then(|p| p.pushed_at),
            fresh: true,
        };
        tracing::info!(repository = %push.repository, image = %push.label(), "image pushed");
        let disc = discover(&self.env, &self.aws).await?;
        let outcome = deploy_push(&self.env, &self.aws, &account, &push, &disc, None).await;
        let mut failures = disc.failures;
        let result = self.finish(&push, outcome, &mut failures);
        self.conclude(result, failures)
    }

    fn finish(&self, push: &Push, outcome: PushOutcome, failures: &mut Vec<(String, Error)>) -> Value {
        failures.extend(outcome.failed);
        let status = if self.env.config.dry_run {
            "dry-run"
        } else if !failures.is_empty() {
            "failed"
        } else if !outcome.deployed.is_empty() {
            "deployed"
        } else {
            "nothing-to-do"
        };
        json!({
            "status": status,
            "image": {"repository": push.repository, "tag": push.tag, "digest": push.digest},
            "plan": outcome.planned,
            "deployed": outcome.deployed,
            "skipped": outcome.skipped.iter().map(|s| {
                let mut v = json!({"cluster": autopilot::config::cluster_name(&s.cluster), "service": s.service, "reason": s.reason});
                if let Some(fix) = &s.fix {
                    v["fix"] = json!(fix);
                }
                v
            }).collect::<Vec<_>>(),
            "failed": failures.iter().map(|(w, e)| json!({"service": w, "error": e.to_string(), "retryable": e.retryable()})).collect::<Vec<_>>(),
        })
    }

    fn conclude(&self, result: Value, failures: Vec<(String, Error)>) -> Result<Value, Error> {
        if failures.is_empty() {
            return Ok(result);
        }
        tracing::error!(outcome = %result, "some services were not deployed");
        let total = result["deployed"].as_array().map_or(0, Vec::len) + failures.len();
        Err(Error::Partial {
            failed: failures.len(),
            total,
            summary: summarize(&failures),
            retryable: failures.iter().any(|(_, e)| e.retryable()),
        })
    }

    /// Deploy what a lost ECR event left behind: per opted-in service, the newest runnable image
    /// of its repository whose tag matches its rules.
    async fn reconcile(&self, ev: EventBridgeEvent<Value>) -> Result<Value, Error> {
        let Some((account, region)) = self.account_region(&ev.account, &ev.region) else {
            return ignored("event carries no account");
        };
        let registry = ecr_registry(&account, &region);
        let disc = discover(&self.env, &self.aws).await?;
        // repository → services that run it (and their rules)
        let mut by_repo: BTreeMap<String, Vec<(String, String, DeployRules)>> = BTreeMap::new();
        for s in &disc.services {
            let Eligibility::Eligible { rules, .. } = eligibility(s) else { continue };
            let Some(td) = disc.task_defs.get(&s.task_definition) else { continue };
            let repos: BTreeSet<String> = td
                .containers
                .iter()
                .filter_map(|c| ImageRef::parse(&c.image).ok())
                .filter(|r| r.registry.as_deref() == Some(registry.as_str()) && is_ecr_repository_name(&r.repository))
                .map(|r| r.repository)
                .collect();
            for repo in repos {
                by_repo.entry(repo).or_default().push((s.arn.clone(), deploy::who(&s.cluster, &s.name), rules.clone()));
            }
        }
        let mut failures = disc.failures.iter().map(|(w, e)| (w.clone(), deploy::clone_error(e))).collect::<Vec<_>>();
        let mut results = Vec::new();
        for (repo, services) in by_repo {
            let images = match self.aws.list_images(&account, &repo).await {
                Ok(i) => i,
                Err(e) => {
                    for (_, name, _) in &services {
                        failures.push((name.clone(), deploy::clone_error(&e)));
                    }
                    continue;
                }
            };
            let skipped = artifacts(&images);
            if let Some((tag, why)) = skipped.first() {
                tracing::info!(repository = %repo, count = skipped.len(), first = %tag, reason = %why, "reconcile: tagged artifacts skipped (not runnable images)");
            }
            let mut groups: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
            for (arn, _, rules) in services {
                if let Some((image, tag)) = newest_matching(&images, &rules) {
                    groups.entry((image.digest.clone(), tag)).or_default().insert(arn);
                }
            }
            for ((digest, tag), only) in groups {
                let pushed_at = images.iter().find(|i| i.digest == digest).and_then(|i| i.pushed_at);
                let push = Push { registry: registry.clone(), repository: repo.clone(), tag, digest, pushed_at, fresh: false };
                let outcome = deploy_push(&self.env, &self.aws, &account, &push, &disc, Some(&only)).await;
                let mut f = Vec::new();
                let mut r = self.finish(&push, outcome, &mut f);
                r["failed"] = json!(f.iter().map(|(w, e)| json!({"service": w, "error": e.to_string()})).collect::<Vec<_>>());
                failures.extend(f);
                results.push(r);
            }
        }
        let deployed: Vec<Value> = results.iter().flat_map(|r| r["deployed"].as_array().cloned().unwrap_or_default()).collect();
        let status = if self.env.config.dry_run {
            "dry-run"
        } else if !deployed.is_empty() {
            "deployed"
        } else {
            "in-sync"
        };
        let result = json!({"status": status, "deployed": deployed, "images": results});
        self.conclude(result, failures)
    }
}

/// The newest runnable image with a tag its rules accept, and that tag. "Newest" is semver order
/// when both tags are versions (so a `v2.5.1` hotfix pushed after `v3.0.0` does not win), else
/// push time. Artifacts (signatures, attestations, SBOMs: their tags and media types) never count,
/// whatever the rule (the caller logs them once per repository: [`artifacts`]).
pub fn newest_matching(images: &[EcrImage], rules: &DeployRules) -> Option<(EcrImage, String)> {
    let mut best: Option<(&EcrImage, &String)> = None;
    for image in images {
        for tag in &image.tags {
            if !rules.matches(tag) || image.not_runnable(tag).is_some() {
                continue;
            }
            best = match best {
                Some(b) if !newer((image, tag), b) => Some(b),
                _ => Some((image, tag)),
            };
        }
    }
    best.map(|(i, t)| (i.clone(), t.clone()))
}

/// The tagged images of a repository that are not runnable, with why (signatures, SBOMs, ...).
pub fn artifacts(images: &[EcrImage]) -> Vec<(String, String)> {
    images.iter().flat_map(|i| i.tags.iter().filter_map(move |t| i.not_runnable(t).map(|why| (t.clone(), why)))).collect()
}

/// Whether candidate `a` is newer than `b` (never-downgrade order, DESIGN.md).
fn newer(a: (&EcrImage, &String), b: (&EcrImage, &String)) -> bool {
    use std::cmp::Ordering::*;
    if let (Some(va), Some(vb)) = (semver_tag(a.1), semver_tag(b.1)) {
        match va.cmp(&vb) {
            Greater => return true,
            Less => return false,
            Equal => {}
        }
    }
    match a.0.pushed_at.cmp(&b.0.pushed_at) {
        Greater => true,
        Less => false,
        Equal => a.1 > b.1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn img(d: &str, tags: &[&str], at: i64) -> EcrImage {
        EcrImage {
            digest: d.into(),
            tags: tags.iter().map(|t| t.to_string()).collect(),
            pushed_at: Some(at),
            manifest_media_type: Some("application/vnd.docker.distribution.manifest.v2+json".into()),
            artifact_media_type: Some("application/vnd.docker.container.image.v1+json".into()),
            subject: None,
        }
    }

    fn pick(images: &[EcrImage], rules: &str) -> Option<(String, String)> {
        newest_matching(images, &DeployRules::parse(rules).unwrap()).map(|(i, t)| (i.digest, t))
    }

    #[test]
    fn reconcile_picks_the_newest_matching_image() {
        let images = vec![img("a", &["v1"], 1), img("b", &["v2", "latest"], 2), img("c", &["main-9"], 3), img("d", &[], 4)];
        assert_eq!(pick(&images, "semver"), Some(("b".into(), "v2".into())));
        assert_eq!(pick(&images, "any"), Some(("c".into(), "main-9".into())));
        assert_eq!(pick(&images, "latest"), Some(("b".into(), "latest".into())));
        assert_eq!(pick(&images, "prefix:release-"), None);
        assert_eq!(pick(&images, "semver:1"), Some(("a".into(), "v1".into())));
    }

    #[test]
    fn semver_rules_pick_the_highest_version_not_the_last_push() {
        let images = vec![img("v3", &["v3.0.0"], 1), img("hotfix", &["v2.5.1"], 2), img("rc", &["v3.1.0-rc.1"], 3)];
        assert_eq!(pick(&images, "semver"), Some(("v3".into(), "v3.0.0".into())), "pre-releases are not releases");
        assert_eq!(pick(&images, "semver:2"), Some(("hotfix".into(), "v2.5.1".into())));
        assert_eq!(pick(&images, "any"), Some(("rc".into(), "v3.1.0-rc.1".into())), "any takes every tag, in version order");
    }

    #[test]
    fn reconcile_never_picks_an_artifact() {
        let hex = "b".repeat(64);
        let mut sbom = img("sbom", &["v9"], 9);
        sbom.artifact_media_type = Some("application/spdx+json".into());
        let sig = img("sig", &[&format!("sha256-{hex}.sig")], 10);
        let mut attestation = img("att", &["v8"], 8);
        attestation.manifest_media_type = Some("application/vnd.in-toto+json".into());
        let mut referrer = img("referrer", &["v10"], 10);
        referrer.subject = Some("sha256:1234".into());
        let images = vec![img("real", &["v2"], 1), sbom, sig, attestation, referrer];
        assert_eq!(pick(&images, "any"), Some(("real".into(), "v2".into())));
        assert_eq!(pick(&images, "semver"), Some(("real".into(), "v2".into())));
        let skipped: Vec<String> = artifacts(&images).into_iter().map(|(t, _)| t).collect();
        assert_eq!(skipped, ["v9", format!("sha256-{hex}.sig").as_str(), "v8", "v10"]);
    }
}
