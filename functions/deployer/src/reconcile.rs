//! The reconcile schedule: deploy what a lost ECR event left behind. Per opted-in service, the
//! newest runnable image of its repository whose tag its rules accept, deployed like a push.

use std::collections::{BTreeMap, BTreeSet};

use autopilot::aws_lambda_events::eventbridge::EventBridgeEvent;
use autopilot::image::EcrRegistry;
use autopilot::runtime::Env;
use autopilot::tags::{semver_tag, DeployRules};
use autopilot::Error;
use serde_json::Value;

use crate::aws::{Aws, EcrImage};
use crate::deploy::{self, deploy_push, discover};
use crate::outcome::{conclude_reconcile, Outcome, PushReport, ReconcileReport};
use crate::messages;
use crate::plan::{eligibility, stuck_for, Eligibility, OurDeploy, Push};
use autopilot::keys;
use autopilot::state::now_epoch;

/// The deployer's schedule is the rule whose name contains `reconcile` (template.yaml).
pub fn is_reconcile(ev: &EventBridgeEvent<Value>) -> bool {
    autopilot::events::schedule_rule(ev).contains("reconcile")
}

pub fn not_ours(ev: &EventBridgeEvent<Value>) -> String {
    format!("scheduled rule {:?} is not a reconcile schedule", autopilot::events::schedule_rule(ev))
}

pub async fn handle(env: &Env, aws: &Aws, ev: EventBridgeEvent<Value>) -> Result<Outcome, Error> {
    let Some(account) = ev.account.clone().filter(|a| !a.is_empty()) else {
        return Ok(Outcome::ignored("event carries no account"));
    };
    let registry = EcrRegistry::new(account.clone(), crate::region_or_own(env, &ev.region));
    let disc = discover(env, aws).await?;
    // Reconcile is the index's builder: a failure to write it leaves pushes discovering
    // everything, as before the index, and is no reason to fail the pass.
    if let Err(e) = crate::index::rebuild(env, &disc, &registry).await {
        tracing::warn!(error = %e, "could not write the repository index");
    }
    deploy::tell_ineligible(env, &disc).await;
    let by_repo = services_by_repository(&disc, &registry);
    let mut failures = disc.failures.iter().map(|(w, e)| (w.clone(), e.duplicate())).collect::<Vec<_>>();
    let mut reports = Vec::new();
    for (repo, services) in by_repo {
        let images = match aws.list_images(&account, &repo).await {
            Ok(i) => i,
            Err(e) => {
                for (_, name, _) in &services {
                    failures.push((name.clone(), e.duplicate()));
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
            let outcome = deploy_push(env, aws, &account, &push, &disc, Some(&only)).await;
            reports.push(PushReport::new(&push, &outcome, &outcome.failed, env.config.dry_run));
            failures.extend(outcome.failed);
        }
    }
    let mut report = ReconcileReport::new(reports, env.config.dry_run);
    match report_stuck(env, &disc).await {
        Ok(stuck) => report.stuck = stuck,
        Err(e) => failures.push(("stuck rollouts".into(), e)),
    }
    conclude_reconcile(report, failures)
}

/// Repository of `registry` → the eligible services that run it: (ARN, "cluster/service", rules).
pub fn services_by_repository(disc: &deploy::Discovered, registry: &EcrRegistry) -> BTreeMap<String, Vec<(String, String, DeployRules)>> {
    let mut by_repo: BTreeMap<String, Vec<(String, String, DeployRules)>> = BTreeMap::new();
    for s in &disc.services {
        let Eligibility::Eligible { rules, .. } = eligibility(s) else { continue };
        let Some(td) = disc.task_defs.get(&s.task_definition) else { continue };
        for repo in crate::index::repositories_of(td, registry) {
            by_repo.entry(repo).or_default().push((s.arn.clone(), deploy::who(&s.cluster, &s.name), rules.clone()));
        }
    }
    by_repo
}

/// Rollouts we started that are past `AUTOPILOT_ROLLOUT_DEADLINE_SECONDS` plus their strategy's
/// bake times (`plan::stuck_for`), told once per rollout: ECS sends nothing for a rollout that
/// has no circuit breaker and never finishes. With the task counts and ECS's newest service event.
async fn report_stuck(env: &Env, disc: &deploy::Discovered) -> Result<Vec<String>, Error> {
    let wanted: BTreeSet<(String, String)> = disc.services.iter().map(|s| keys::deployment(&s.cluster, &s.name)).collect();
    if wanted.is_empty() {
        return Ok(Vec::new());
    }
    let records = env.state.get_many(&wanted).await?;
    let now = now_epoch();
    let mut stuck = Vec::new();
    for s in &disc.services {
        let Some(record) = records.get(&keys::deployment(&s.cluster, &s.name)) else { continue };
        let (Some(ours), Some(started)) = (OurDeploy::from_record(&record.data), record.data.get("at").and_then(Value::as_u64)) else { continue };
        let Some(progress) = disc.progress.get(&s.arn) else { continue };
        let deadline = env.config.rollout_deadline.as_secs();
        let Some(running) = stuck_for(&ours, started, &s.task_definition, progress.rollout_state.as_deref(), deadline, progress.bake_minutes, now) else { continue };
        let who = deploy::who(&s.cluster, &s.name);
        let n = messages::stuck(s, &ours, &record.data, running, deadline, progress);
        let key = format!("deploy.stuck#{who}#{started}");
        env.notifier.publish_once(&env.state, &key, STUCK_MEMORY, &n).await?;
        tracing::warn!(service = %who, running_seconds = running, "rollout past its deadline");
        stuck.push(who);
    }
    Ok(stuck)
}

/// A stuck rollout is told once; the record of that outlives any rollout.
const STUCK_MEMORY: std::time::Duration = std::time::Duration::from_secs(7 * 24 * 3600);

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

/// Whether candidate `a` is newer than `b` (never-downgrade order, DESIGN.md); a tie (same version
/// and push time) goes to the greater tag, so the reconcile pass picks one image, always the same.
pub fn newer(a: (&EcrImage, &String), b: (&EcrImage, &String)) -> bool {
    match order(a, b) {
        std::cmp::Ordering::Equal => a.1 > b.1,
        o => o.is_gt(),
    }
}

/// Whether `a` is shown to be newer than `b`: a higher version, else a later push. A tie shows
/// nothing: ECR's push times are coarse enough for two images of one burst to share one (moto's
/// count whole seconds), and a push event is news of its own, so the pushed image is not
/// superseded by one that merely sorts after it.
pub fn strictly_newer(a: (&EcrImage, &String), b: (&EcrImage, &String)) -> bool {
    order(a, b).is_gt()
}

fn order(a: (&EcrImage, &String), b: (&EcrImage, &String)) -> std::cmp::Ordering {
    if let (Some(va), Some(vb)) = (semver_tag(a.1), semver_tag(b.1)) {
        if va != vb {
            return va.cmp(&vb);
        }
    }
    a.0.pushed_at.cmp(&b.0.pushed_at)
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

    /// A burst's images can share a push time: the coalescer moves a service past the pushed
    /// image only onto one shown to be newer (CI flake: `v1` seeded in the same second as the
    /// pushed `feature-x` sorted after it by tag alone, and `any` skipped the push).
    #[test]
    fn a_tie_in_push_time_is_not_newer() {
        let (v1, feature) = (img("a", &["v1"], 5), img("b", &["feature-x"], 5));
        let (t1, tf) = ("v1".to_string(), "feature-x".to_string());
        assert!(newer((&v1, &t1), (&feature, &tf)), "reconcile still picks one of the two, always the same");
        assert!(!strictly_newer((&v1, &t1), (&feature, &tf)) && !strictly_newer((&feature, &tf), (&v1, &t1)));
        let later = img("c", &["feature-y"], 6);
        assert!(strictly_newer((&later, &"feature-y".to_string()), (&feature, &tf)));
        let (v2, v2t) = (img("d", &["v2"], 1), "v2".to_string());
        assert!(strictly_newer((&v2, &v2t), (&v1, &t1)), "a higher version is newer whatever its push time");
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
