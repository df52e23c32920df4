//! An ECR push: what it offers (decided from the event alone), then one deploy over the clusters.

use autopilot::aws_lambda_events::eventbridge::EventBridgeEvent;
use autopilot::events::{EcrActionType, EcrImageAction, EcrResult};
use autopilot::image::{is_account_id, is_ecr_repository_name, not_runnable, EcrRegistry, ImageRef};
use autopilot::runtime::Env;
use autopilot::Error;

use crate::aws::{digest_id, Aws};
use std::collections::{BTreeMap, BTreeSet};

use crate::aws::EcrImage;
use crate::deploy::{deploy_push, discover, discover_only, Discovered, PushOutcome};
use crate::index::{self, Lookup};
use crate::outcome::{conclude, Outcome, PushReport};
use crate::plan::{self, Push, Skip};
use crate::reconcile::{newest_matching, services_by_repository, strictly_newer};

/// What a push event offers, when it can deploy anything at all.
pub struct PushTarget {
    pub digest: String,
    pub tag: String,
    pub account: String,
}

/// The pushed image of a push event, or why it deploys nothing, decided from the event alone:
/// not a push, a failed push, no usable digest, no tag (`autopilot:deploy` rules are about tags;
/// buildx pushes per-platform and attestation manifests untagged), not a runnable image
/// (signatures, attestations, SBOMs and other artifacts: DESIGN.md), no account to build the
/// registry from.
pub fn push_target(ev: &EventBridgeEvent<EcrImageAction>) -> Result<PushTarget, String> {
    let d = &ev.detail;
    // A replication into this registry (the recommended way to serve an Organization from one
    // central registry, issue 16) brings the image as a push would.
    if !matches!(d.action_type, EcrActionType::Push | EcrActionType::Replicate) {
        return Err(format!("ECR {:?} action on {}: only pushes and replications deploy", d.action_type, d.repository_name));
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

/// Deploy a pushed image to every opted-in service that runs its repository and accepts its tag.
pub async fn handle(env: &Env, aws: &Aws, ev: EventBridgeEvent<EcrImageAction>) -> Result<Outcome, Error> {
    let PushTarget { digest, tag, account } = match push_target(&ev) {
        Ok(target) => target,
        Err(reason) => return Ok(Outcome::ignored(reason)),
    };
    let d = &ev.detail;
    let registry = EcrRegistry::new(account.clone(), crate::region_or_own(env, &ev.region));
    // The repository index first (issue 17, item 1): a push to a repository no managed service
    // runs costs one state-table read, and one that some do costs only those services.
    let lookup = index::find(env, &registry, &d.repository_name).await;
    if let Lookup::Unused { age_secs } = &lookup {
        return Ok(Outcome::ignored(format!(
            "no opted-in service of the managed clusters runs {} (repository index of {}s ago)",
            d.repository_name, age_secs
        )));
    }
    let pushed = aws.describe_image(&account, &d.repository_name, digest_id(&digest)).await?;
    // The event's media types may be absent: ECR's own answer is checked too.
    if let Some(why) = pushed.as_ref().and_then(|p| p.not_runnable(&tag)) {
        return Ok(Outcome::ignored(format!("push of {}:{tag} is not a runnable image: {why}", d.repository_name)));
    }
    let pushed_at = pushed.as_ref().and_then(|p| p.pushed_at);
    let push = Push { registry, repository: d.repository_name.clone(), tag, digest, pushed_at, fresh: true };
    tracing::info!(repository = %push.repository, image = %push.label(), "image pushed");
    let disc = match &lookup {
        Lookup::Services(indexed) => {
            discover_only(env, aws, indexed).await?
        }
        Lookup::Stale(_) | Lookup::Unused { .. } => {
            if let Lookup::Stale(why) = &lookup {
                tracing::info!(reason = %why, "discovering every managed service");
            }
            let disc = discover(env, aws).await?;
            if let Err(e) = index::rebuild(env, &disc, &push.registry).await {
                tracing::warn!(error = %e, "could not write the repository index");
            }
            disc
        }
    };
    let running = services_by_repository(&disc, &push.registry).remove(&push.repository).unwrap_or_default();
    if let Lookup::Services(indexed) = &lookup {
        // Those the index named that no longer run the repository leave its entry (not those
        // whose task definition could not be read: they are failures, still indexed).
        let failed: BTreeSet<&str> = disc.failures.iter().map(|(w, _)| w.as_str()).collect();
        let gone: BTreeSet<String> = indexed
            .iter()
            .filter(|(cluster, arn)| !running.iter().any(|(a, _, _)| a == arn) && !failed.contains(crate::deploy::who(cluster, arn.rsplit('/').next().unwrap_or(arn)).as_str()))
            .map(|(_, arn)| arn.clone())
            .collect();
        index::forget(env, &push.repository, &gone).await;
    }
    let outcome = coalesce(env, aws, &account, &push, pushed, &disc, running).await?;
    let mut failures = disc.failures;
    failures.extend(outcome.failed.iter().map(|(w, e)| (w.clone(), e.duplicate())));
    let report = PushReport::new(&push, &outcome, &failures, env.config.dry_run);
    let deployed = report.deployed.len();
    conclude(Outcome::Push(report), deployed, failures)
}

/// Deploy a push, coalescing a burst: a service whose rules match a newer image of the repository
/// than the one pushed (a CI pipeline pushing several tags, a backlog replayed) goes straight to
/// that newest image, and the pushed one is skipped for it. The later pushes' own events then find
/// the service on their image or past it, so a burst registers one revision per family, of the
/// image actually used, and never moves a service back.
/// `running`: the eligible services of `disc` that run the pushed repository
/// (`services_by_repository`).
async fn coalesce(
    env: &Env,
    aws: &Aws,
    account: &str,
    push: &Push,
    pushed: Option<EcrImage>,
    disc: &Discovered,
    running: Vec<(String, String, autopilot::tags::DeployRules)>,
) -> Result<PushOutcome, Error> {
    if running.is_empty() {
        return Ok(deploy_push(env, aws, account, push, disc, None).await);
    }
    let images = aws.list_images(account, &push.repository).await?;
    let this = pushed.unwrap_or(EcrImage {
        digest: push.digest.clone(),
        tags: vec![push.tag.clone()],
        pushed_at: push.pushed_at,
        manifest_media_type: None,
        artifact_media_type: None,
        subject: None,
    });
    let mut newer_for: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    let mut superseded: BTreeMap<String, String> = BTreeMap::new();
    for (arn, who, rules) in &running {
        let Some((newest, tag)) = newest_matching(&images, rules) else { continue };
        // A service already on the newest image is left to the push's own plan (which says it
        // never downgrades).
        let on_newest = disc.services.iter().find(|s| &s.arn == arn).and_then(|s| disc.task_defs.get(&s.task_definition)).is_some_and(|td| {
            td.containers.iter().filter_map(|c| ImageRef::parse(&c.image).ok()).any(|r| r.repository == push.repository && r.digest.as_deref() == Some(newest.digest.as_str()))
        });
        if !on_newest && newest.digest != push.digest && rules.matches(&push.tag) && strictly_newer((&newest, &tag), (&this, &push.tag)) {
            superseded.insert(arn.clone(), format!("{who}: a newer image matches its rules, {tag} ({}): deployed that instead", plan::short_digest(&newest.digest)));
            newer_for.entry((newest.digest.clone(), tag)).or_default().insert(arn.clone());
        }
    }
    if superseded.is_empty() {
        return Ok(deploy_push(env, aws, account, push, disc, None).await);
    }
    let rest: BTreeSet<String> = disc.services.iter().map(|s| s.arn.clone()).filter(|a| !superseded.contains_key(a)).collect();
    let mut out = deploy_push(env, aws, account, push, disc, Some(&rest)).await;
    for ((digest, tag), only) in newer_for {
        let pushed_at = images.iter().find(|i| i.digest == digest).and_then(|i| i.pushed_at);
        let newest = Push { registry: push.registry.clone(), repository: push.repository.clone(), tag, digest, pushed_at, fresh: false };
        tracing::info!(repository = %push.repository, pushed = %push.label(), newest = %newest.label(), services = only.len(), "a newer image is in the repository: deploying it instead (burst coalesced)");
        let part = deploy_push(env, aws, account, &newest, disc, Some(&only)).await;
        out.deployed.extend(part.deployed);
        out.planned.extend(part.planned);
        out.skipped.extend(part.skipped);
        out.failed.extend(part.failed);
    }
    for s in &disc.services {
        if let Some(reason) = superseded.get(&s.arn) {
            out.skipped.push(Skip { cluster: s.cluster.clone(), service: s.name.clone(), reason: reason.clone(), misconfigured: false, fix: None, held_back: None, code_deploy: false });
        }
    }
    Ok(out)
}
