//! The `deployer` function (see DESIGN.md): push-to-deploy, rollout reports, reconcile.

pub mod aws;
pub mod deploy;
pub mod plan;
pub mod rollout;
pub mod taskdef;

use std::collections::{BTreeMap, BTreeSet};

use autopilot::aws_lambda_events::eventbridge::EventBridgeEvent;
use autopilot::events::{EcrActionType, EcrImageAction, EcrResult};
use autopilot::image::{ecr_registry, ImageRef};
use autopilot::runtime::{run_event, Env, Function};
use autopilot::tags::DeployGlobs;
use autopilot::{Config, Error, Incoming};
use serde_json::{json, Value};

use crate::aws::{digest_id, summarize, Aws, EcrImage};
use crate::deploy::{deploy_push, discover, PushOutcome};
use crate::plan::{eligibility, semver_of, Eligibility, Push};

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

/// The pushed digest and the account of a push event, or why it deploys nothing, decided from
/// the event alone: not a push, a failed push, no usable digest, no account to build the
/// registry from.
fn push_target(ev: &EventBridgeEvent<EcrImageAction>) -> Result<(String, String), String> {
    let d = &ev.detail;
    if d.action_type != EcrActionType::Push {
        return Err(format!("ECR {:?} action on {}: only pushes deploy", d.action_type, d.repository_name));
    }
    if d.result != EcrResult::Success {
        return Err(format!("push to {} did not succeed ({:?})", d.repository_name, d.result));
    }
    let Some(digest) = d.image_digest.clone().filter(|x| ImageRef::parse(&format!("x@{x}")).is_ok()) else {
        return Err(format!("push to {} carries no valid image digest", d.repository_name));
    };
    let Some(account) = ev.account.clone().filter(|a| !a.is_empty()) else {
        return Err("event carries no account".into());
    };
    Ok((digest, account))
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
        let (digest, account) = match push_target(&ev) {
            Ok(target) => target,
            Err(reason) => return ignored(reason),
        };
        let d = &ev.detail;
        let region = self.region_or_own(&ev.region);
        let registry = ecr_registry(&account, &region);
        let pushed = self.aws.describe_image(&account, &d.repository_name, digest_id(&digest)).await?;
        let push = Push {
            registry,
            repository: d.repository_name.clone(),
            tag: d.image_tag.clone().filter(|t| !t.is_empty()),
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
            "skipped": outcome.skipped.iter().map(|s| json!({"cluster": autopilot::config::cluster_name(&s.cluster), "service": s.service, "reason": s.reason})).collect::<Vec<_>>(),
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

    /// Deploy what a lost ECR event left behind: per opted-in service, the newest image of its
    /// repository whose tag matches its globs.
    async fn reconcile(&self, ev: EventBridgeEvent<Value>) -> Result<Value, Error> {
        let Some((account, region)) = self.account_region(&ev.account, &ev.region) else {
            return ignored("event carries no account");
        };
        let registry = ecr_registry(&account, &region);
        let disc = discover(&self.env, &self.aws).await?;
        // repository → services that run it (and their globs)
        let mut by_repo: BTreeMap<String, Vec<(String, String, DeployGlobs)>> = BTreeMap::new();
        for s in &disc.services {
            let Eligibility::Eligible { globs, .. } = eligibility(s) else { continue };
            let Some(td) = disc.task_defs.get(&s.task_definition) else { continue };
            let repos: BTreeSet<String> = td
                .containers
                .iter()
                .filter_map(|c| ImageRef::parse(&c.image).ok())
                .filter(|r| r.registry.as_deref() == Some(registry.as_str()))
                .map(|r| r.repository)
                .collect();
            for repo in repos {
                by_repo.entry(repo).or_default().push((s.arn.clone(), deploy::who(&s.cluster, &s.name), globs.clone()));
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
            let mut groups: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
            for (arn, _, globs) in services {
                if let Some((image, tag)) = newest_matching(&images, &globs) {
                    groups.entry((image.digest.clone(), tag)).or_default().insert(arn);
                }
            }
            for ((digest, tag), only) in groups {
                let pushed_at = images.iter().find(|i| i.digest == digest).and_then(|i| i.pushed_at);
                let push = Push { registry: registry.clone(), repository: repo.clone(), tag: Some(tag), digest, pushed_at, fresh: false };
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

/// The newest image with a tag matching `globs`, and that tag (the highest semver one when several match).
pub fn newest_matching(images: &[EcrImage], globs: &DeployGlobs) -> Option<(EcrImage, String)> {
    images
        .iter()
        .filter_map(|i| {
            let mut tags: Vec<&String> = i.tags.iter().filter(|t| globs.matches(t)).collect();
            tags.sort_by(|a, b| semver_of(a).cmp(&semver_of(b)).then(a.cmp(b)));
            tags.last().map(|t| (i, (*t).clone()))
        })
        .max_by(|a, b| a.0.pushed_at.cmp(&b.0.pushed_at).then(semver_of(&a.1).cmp(&semver_of(&b.1))))
        .map(|(i, t)| (i.clone(), t))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconcile_picks_the_newest_matching_image() {
        let img = |d: &str, tags: &[&str], at: i64| EcrImage { digest: d.into(), tags: tags.iter().map(|t| t.to_string()).collect(), pushed_at: Some(at) };
        let images = vec![img("a", &["v1"], 1), img("b", &["v2", "latest"], 2), img("c", &["main-9"], 3), img("d", &[], 4)];
        let v = DeployGlobs::parse("v*").unwrap();
        assert_eq!(newest_matching(&images, &v).map(|(i, t)| (i.digest, t)), Some(("b".into(), "v2".into())));
        let all = DeployGlobs::parse("*").unwrap();
        assert_eq!(newest_matching(&images, &all).map(|(i, t)| (i.digest, t)), Some(("c".into(), "main-9".into())));
        assert_eq!(newest_matching(&images, &DeployGlobs::parse("release-*").unwrap()), None);
    }
}
