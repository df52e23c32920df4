//! An ECR push: what it offers (decided from the event alone), then one deploy over the clusters.

use autopilot::aws_lambda_events::eventbridge::EventBridgeEvent;
use autopilot::events::{EcrActionType, EcrImageAction, EcrResult};
use autopilot::image::{is_account_id, is_ecr_repository_name, not_runnable, EcrRegistry, ImageRef};
use autopilot::runtime::Env;
use autopilot::Error;

use crate::aws::{digest_id, Aws};
use crate::deploy::{deploy_push, discover};
use crate::outcome::{conclude, Outcome, PushReport};
use crate::plan::{self, Push};

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

/// Deploy a pushed image to every opted-in service that runs its repository and accepts its tag.
pub async fn handle(env: &Env, aws: &Aws, ev: EventBridgeEvent<EcrImageAction>) -> Result<Outcome, Error> {
    let PushTarget { digest, tag, account } = match push_target(&ev) {
        Ok(target) => target,
        Err(reason) => return Ok(Outcome::ignored(reason)),
    };
    let d = &ev.detail;
    let registry = EcrRegistry::new(account.clone(), crate::region_or_own(env, &ev.region));
    let pushed = aws.describe_image(&account, &d.repository_name, digest_id(&digest)).await?;
    // The event's media types may be absent: ECR's own answer is checked too.
    if let Some(why) = pushed.as_ref().and_then(|p| p.not_runnable(&tag)) {
        return Ok(Outcome::ignored(format!("push of {}:{tag} is not a runnable image: {why}", d.repository_name)));
    }
    let push = Push { registry, repository: d.repository_name.clone(), tag, digest, pushed_at: pushed.and_then(|p| p.pushed_at), fresh: true };
    tracing::info!(repository = %push.repository, image = %push.label(), "image pushed");
    let disc = discover(env, aws).await?;
    let outcome = deploy_push(env, aws, &account, &push, &disc, None).await;
    let mut failures = disc.failures;
    failures.extend(outcome.failed.iter().map(|(w, e)| (w.clone(), crate::deploy::clone_error(e))));
    let report = PushReport::new(&push, &outcome, &failures, env.config.dry_run);
    let deployed = report.deployed.len();
    conclude(Outcome::Push(report), deployed, failures)
}
