//! The AWS calls the deployer makes, one function per operation, errors classified.

use std::collections::HashMap;

use autopilot::aws_sdk_ecr::types::ImageIdentifier;
use autopilot::aws_sdk_ecs::types::{ServiceField, TaskDefinitionField};
use autopilot::tags::ecs_tags;
use autopilot::Error;
use aws_smithy_runtime_api::client::result::SdkError;
use serde_json::Value;

use crate::plan::ObservedService;
use crate::pacer::Pacer;
use crate::taskdef::{CaptureBody, RawTaskDef, ReplaceBody};

pub struct Aws {
    pub ecs: autopilot::aws_sdk_ecs::Client,
    pub ecr: autopilot::aws_sdk_ecr::Client,
    /// ECS's read buckets in this account and Region, for the life of the container (one
    /// invocation after another draws on the same real buckets): DescribeServices and
    /// ListServices, and DescribeTaskDefinition.
    service_reads: std::sync::Arc<Pacer>,
    task_definition_reads: std::sync::Arc<Pacer>,
}

/// What ECR says about one image.
#[derive(Debug, Clone, PartialEq)]
pub struct EcrImage {
    pub digest: String,
    pub tags: Vec<String>,
    /// Epoch milliseconds.
    pub pushed_at: Option<i64>,
    /// `imageManifestMediaType` and `artifactMediaType` (DescribeImages): what tells an image
    /// from a signature, an attestation or an SBOM.
    pub manifest_media_type: Option<String>,
    pub artifact_media_type: Option<String>,
    /// `subjectManifestDigest`: set on referrers (signatures, SBOMs, attestations about another
    /// image, which ECR stores as images of their own).
    pub subject: Option<String>,
}

impl EcrImage {
    /// Why this image is not one a task can run under `tag` (see [`autopilot::image::not_runnable`]).
    pub fn not_runnable(&self, tag: &str) -> Option<String> {
        if let Some(subject) = &self.subject {
            return Some(format!("it is a referrer of {subject} (a signature, attestation or SBOM)"));
        }
        autopilot::image::not_runnable(Some(tag), self.manifest_media_type.as_deref(), self.artifact_media_type.as_deref())
    }
}

/// Deployment facts from DescribeServices (for rollout notifications).
#[derive(Debug, Clone, Default)]
pub struct DeploymentInfo {
    pub id: String,
    pub status: String,
    pub task_definition: String,
    pub created_at: Option<i64>,
    pub rollout_state_reason: Option<String>,
}

/// What ECS recorded of one service deployment (DescribeServiceDeployments): the outcome of a
/// rollout as ECS judges it ("View service history using Amazon ECS service deployments").
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeploymentRecord {
    pub arn: String,
    /// PENDING, IN_PROGRESS, SUCCESSFUL, STOPPED, STOP_REQUESTED, ROLLBACK_REQUESTED,
    /// ROLLBACK_IN_PROGRESS, ROLLBACK_SUCCESSFUL, ROLLBACK_FAILED (or a newer value, kept as sent).
    pub status: String,
    pub status_reason: Option<String>,
    /// Blue/green, linear and canary stages (RECONCILE_SERVICE … BAKE_TIME, CLEAN_UP).
    pub lifecycle_stage: Option<String>,
    /// ROLLING, BLUE_GREEN, LINEAR, CANARY.
    pub strategy: Option<String>,
    pub source_revisions: Vec<String>,
    pub target_revision: Option<String>,
    /// The rollback's reason and the service revision it went back to.
    pub rollback: Option<(Option<String>, Option<String>)>,
    /// Epoch milliseconds.
    pub created_at: Option<i64>,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
}

/// One lifecycle hook of a service deployment, as DescribeServiceDeployments reports it
/// (`lifecycleHookDetails`): what the "ECS Hook State Change" event does not carry.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HookDetail {
    /// AWAITING_ACTION, IN_PROGRESS, SUCCEEDED, FAILED or TIMED_OUT.
    pub status: Option<String>,
    /// Epoch milliseconds.
    pub expires_at: Option<i64>,
    /// What ECS does at `expires_at`: CONTINUE or ROLLBACK.
    pub timeout_action: Option<String>,
}

#[derive(Debug, Clone)]
pub struct ServiceInfo {
    pub observed: ObservedService,
    pub status: String,
    pub deployments: Vec<DeploymentInfo>,
    pub progress: RolloutProgress,
    /// An Express Mode service (resourceManagementType ECS): its revision is changed through
    /// UpdateExpressGatewayService, which Express keeps, not UpdateService, which it drifts from.
    pub express: bool,
}

/// Where a service's rollout stands (DescribeServices): what the stuck-rollout check reads.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RolloutProgress {
    /// The PRIMARY deployment's rolloutState: IN_PROGRESS, COMPLETED, FAILED.
    pub rollout_state: Option<String>,
    pub desired: i32,
    pub running: i32,
    pub pending: i32,
    /// ECS's newest service event ("(service auth) was unable to place a task …").
    pub latest_event: Option<String>,
    /// Minutes the strategy bakes on purpose (`plan::bake_minutes`).
    pub bake_minutes: u64,
    pub strategy: Option<String>,
}

fn millis(t: Option<&autopilot::aws_sdk_ecs::primitives::DateTime>) -> Option<i64> {
    t.and_then(|t| t.to_millis().ok())
}

impl Aws {
    pub fn new(env: &autopilot::runtime::Env) -> Self {
        Self::from_clients(autopilot::clients::ecs(env), autopilot::clients::ecr(env))
    }

    pub fn from_clients(ecs: autopilot::aws_sdk_ecs::Client, ecr: autopilot::aws_sdk_ecr::Client) -> Self {
        Aws { ecs, ecr, service_reads: std::sync::Arc::new(Pacer::service_read()), task_definition_reads: std::sync::Arc::new(Pacer::task_definition_read()) }
    }

    /// The managed clusters: the configured ones, else every cluster (ListClusters).
    pub async fn clusters(&self, configured: &[String]) -> Result<Vec<String>, Error> {
        if !configured.is_empty() {
            return Ok(configured.to_vec());
        }
        autopilot::aws::ecs::cluster_arns(&self.ecs).await
    }

    pub async fn list_services(&self, cluster: &str) -> Result<Vec<String>, Error> {
        autopilot::aws::ecs::service_arns(&self.ecs, cluster, Some(&self.service_reads)).await
    }

    /// The newest deployment record of a service, if ECS keeps one: ListServiceDeployments (one
    /// page, newest first) then DescribeServiceDeployments of the newest. `Ok(None)`: no record
    /// (a history older than 25 October 2024, or a caller without the permission, logged).
    pub async fn latest_deployment_record(&self, cluster: &str, service: &str) -> Result<Option<DeploymentRecord>, Error> {
        let listed = match self.ecs.list_service_deployments().cluster(cluster).service(service).max_results(20).send().await {
            Ok(out) => out,
            Err(e) => {
                let e = Error::aws("ecs", "ListServiceDeployments", e);
                if e.retryable() {
                    return Err(e);
                }
                tracing::warn!(service, error = %e, "no service deployment records: the rollout is reported from the event alone");
                return Ok(None);
            }
        };
        let newest = listed.service_deployments().iter().max_by_key(|d| millis(d.created_at()).unwrap_or(0)).and_then(|d| d.service_deployment_arn());
        let Some(arn) = newest else { return Ok(None) };
        let out = match self.ecs.describe_service_deployments().service_deployment_arns(arn).send().await {
            Ok(out) => out,
            Err(e) => {
                let e = Error::aws("ecs", "DescribeServiceDeployments", e);
                if e.retryable() {
                    return Err(e);
                }
                tracing::warn!(service, error = %e, "the service deployment record cannot be read: the rollout is reported from the event alone");
                return Ok(None);
            }
        };
        Ok(out.service_deployments().first().map(|d| DeploymentRecord {
            arn: d.service_deployment_arn().unwrap_or(arn).to_string(),
            status: d.status().map(|s| s.as_str().to_string()).unwrap_or_default(),
            status_reason: d.status_reason().map(String::from),
            lifecycle_stage: d.lifecycle_stage().map(|s| s.as_str().to_string()),
            strategy: d.deployment_configuration().and_then(|c| c.strategy()).map(|s| s.as_str().to_string()),
            source_revisions: d.source_service_revisions().iter().filter_map(|r| r.arn().map(String::from)).collect(),
            target_revision: d.target_service_revision().and_then(|r| r.arn()).map(String::from),
            rollback: d.rollback().map(|r| (r.reason().map(String::from), r.service_revision_arn().map(String::from))),
            created_at: millis(d.created_at()),
            started_at: millis(d.started_at()),
            finished_at: millis(d.finished_at()),
        }))
    }

    /// DescribeServices with tags, 10 at a time (the API's limit), up to 10 pages in flight (its
    /// bucket: 100, 20/s).
    pub async fn describe_services(&self, cluster: &str, services: &[String]) -> Result<Vec<ServiceInfo>, Error> {
        use futures_util::stream::{self, StreamExt, TryStreamExt};
        let mut pages = Vec::new();
        for chunk in services.chunks(10) {
            pages.push(self.describe_services_page(cluster, chunk));
        }
        let pages: Vec<Vec<ServiceInfo>> = stream::iter(pages).buffered(10).try_collect().await?;
        Ok(pages.into_iter().flatten().collect())
    }

    async fn describe_services_page(&self, cluster: &str, chunk: &[String]) -> Result<Vec<ServiceInfo>, Error> {
        self.service_reads.acquire().await;
        let page = self
            .ecs
            .describe_services()
            .cluster(cluster)
            .set_services(Some(chunk.to_vec()))
            .include(ServiceField::Tags)
            .send()
            .await
            .map_err(|e| Error::aws("ecs", "DescribeServices", e))?;
        Ok(page
            .services()
            .iter()
            .map(|s| ServiceInfo {
                observed: ObservedService {
                    cluster: s.cluster_arn().unwrap_or(cluster).to_string(),
                    name: s.service_name().unwrap_or_default().to_string(),
                    arn: s.service_arn().unwrap_or_default().to_string(),
                    controller: s.deployment_controller().map(|d| d.r#type().as_str().to_string()),
                    tags: ecs_tags(s.tags()),
                    // Express Mode services read with an empty taskDefinition; the revision they
                    // run is their PRIMARY deployment's (Express Mode docs).
                    task_definition: Some(s.task_definition().unwrap_or_default())
                        .filter(|t| !t.is_empty())
                        .or_else(|| s.deployments().iter().find(|d| d.status() == Some("PRIMARY")).and_then(|d| d.task_definition()))
                        .unwrap_or_default()
                        .to_string(),
                },
                express: s.resource_management_type().is_some_and(|t| t.as_str() == "ECS"),
                status: s.status().unwrap_or_default().to_string(),
                deployments: s
                    .deployments()
                    .iter()
                    .map(|d| DeploymentInfo {
                        id: d.id().unwrap_or_default().to_string(),
                        status: d.status().unwrap_or_default().to_string(),
                        task_definition: d.task_definition().unwrap_or_default().to_string(),
                        created_at: millis(d.created_at()),
                        rollout_state_reason: d.rollout_state_reason().map(String::from),
                    })
                    .collect(),
                progress: {
                    let primary = s.deployments().iter().find(|d| d.status() == Some("PRIMARY"));
                    let config = s.deployment_configuration();
                    let strategy = config.and_then(|c| c.strategy()).map(|v| v.as_str().to_string());
                    let linear = config.and_then(|c| c.linear_configuration()).map(|l| (l.step_percent().unwrap_or(0.0), l.step_bake_time_in_minutes().unwrap_or(0)));
                    let canary = config.and_then(|c| c.canary_configuration()).and_then(|c| c.canary_bake_time_in_minutes());
                    RolloutProgress {
                        rollout_state: primary.and_then(|d| d.rollout_state()).map(|r| r.as_str().to_string()),
                        desired: primary.map_or(0, |d| d.desired_count()),
                        running: primary.map_or(0, |d| d.running_count()),
                        pending: primary.map_or(0, |d| d.pending_count()),
                        latest_event: s.events().iter().max_by_key(|e| millis(e.created_at()).unwrap_or(0)).and_then(|e| e.message()).map(String::from),
                        bake_minutes: crate::plan::bake_minutes(strategy.as_deref(), config.and_then(|c| c.bake_time_in_minutes()), linear, canary),
                        strategy,
                    }
                },
            })
            .collect())
    }

    /// The hook `hook_id` of a service deployment (DescribeServiceDeployments); `None` when the
    /// deployment or the hook is not listed. Two attempts only: the caller tells people about the
    /// paused deployment whether or not this answers, and the hook's timeout clock is running.
    pub async fn lifecycle_hook(&self, service_deployment_arn: &str, hook_id: &str) -> Result<Option<HookDetail>, Error> {
        let out = self
            .ecs
            .describe_service_deployments()
            .service_deployment_arns(service_deployment_arn)
            .customize()
            .config_override(autopilot::aws_sdk_ecs::config::Builder::default().retry_config(autopilot::aws::retry_config().with_max_attempts(2)))
            .send()
            .await
            .map_err(|e| Error::aws("ecs", "DescribeServiceDeployments", e))?;
        Ok(out
            .service_deployments()
            .iter()
            .flat_map(|d| d.lifecycle_hook_details())
            .find(|h| h.hook_id() == Some(hook_id))
            .map(|h| HookDetail {
                status: h.status().map(|s| s.as_str().to_string()),
                expires_at: millis(h.expires_at()),
                timeout_action: h.timeout_action().map(|a| a.as_str().to_string()),
            }))
    }

    /// The raw DescribeTaskDefinition answer (with tags), captured from the response body.
    pub async fn describe_task_definition(&self, task_definition: &str) -> Result<RawTaskDef, Error> {
        let capture = CaptureBody::default();
        self.task_definition_reads.acquire().await;
        self.ecs
            .describe_task_definition()
            .task_definition(task_definition)
            .include(TaskDefinitionField::Tags)
            .customize()
            .interceptor(capture.clone())
            .send()
            .await
            .map_err(|e| Error::aws("ecs", "DescribeTaskDefinition", e))?;
        let body = capture.take().ok_or_else(|| Error::Refused(format!("DescribeTaskDefinition {task_definition}: the response body was not captured")))?;
        RawTaskDef::parse(&body).map_err(|e| Error::Refused(format!("{task_definition}: {e}")))
    }

    /// Register `request` (RegisterTaskDefinition JSON) as is; returns the new revision's ARN.
    ///
    /// RegisterTaskDefinition is not idempotent: the SDK's own retry of a call whose answer was
    /// lost registers a second, identical revision. So the SDK does not retry it; this loop does,
    /// and after an answer that may hide a success (no answer, a timeout, a 5xx) it first looks
    /// for a revision newer than `base_revision` that already carries the wanted images.
    pub async fn register_task_definition(&self, request: &Value, base_revision: i64, images: &[(String, String)]) -> Result<String, Error> {
        let family = request.get("family").and_then(Value::as_str).unwrap_or_default().to_string();
        let body = serde_json::to_vec(request).map_err(|e| Error::Refused(format!("cannot encode the task definition: {e}")))?;
        let retry = self.ecs.config().retry_config().cloned().unwrap_or_else(autopilot::aws::retry_config);
        let attempts = retry.max_attempts().max(1);
        let mut backoff = retry.initial_backoff();
        let mut last = None;
        for attempt in 1..=attempts {
            let result = self
                .ecs
                .register_task_definition()
                .family(&family)
                .customize()
                .config_override(autopilot::aws_sdk_ecs::config::Builder::default().retry_config(autopilot::aws_config::retry::RetryConfig::disabled()))
                .interceptor(ReplaceBody(body.clone()))
                .send()
                .await;
            let e = match result {
                Ok(out) => {
                    return out.task_definition().and_then(|t| t.task_definition_arn()).map(String::from).ok_or_else(|| Error::Aws {
                        service: "ecs",
                        operation: "RegisterTaskDefinition",
                        code: "NoArn".into(),
                        message: "no taskDefinitionArn in the answer".into(),
                        retryable: true,
                    })
                }
                Err(e) => e,
            };
            let ambiguous = match &e {
                SdkError::ServiceError(ctx) => ctx.raw().status().is_server_error(),
                SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) | SdkError::ResponseError(_) => true,
                _ => false,
            };
            let error = Error::aws("ecs", "RegisterTaskDefinition", e);
            if ambiguous {
                if let Some(arn) = self.find_registered(&family, base_revision, images).await? {
                    tracing::warn!(family, revision = %arn, error = %error, "the registration had succeeded; its answer was lost");
                    return Ok(arn);
                }
            }
            if !error.retryable() || attempt == attempts {
                return Err(error);
            }
            tracing::debug!(family, attempt, error = %error, "registration failed; retrying");
            last = Some(error);
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(retry.max_backoff());
        }
        Err(last.unwrap_or_else(|| Error::Refused("no registration attempt was made".into())))
    }

    /// An ACTIVE revision of `family` newer than `base_revision` whose containers carry exactly
    /// `images` (container name, image).
    async fn find_registered(&self, family: &str, base_revision: i64, images: &[(String, String)]) -> Result<Option<String>, Error> {
        let listed = self
            .ecs
            .list_task_definitions()
            .family_prefix(family)
            .status(autopilot::aws_sdk_ecs::types::TaskDefinitionStatus::Active)
            .sort(autopilot::aws_sdk_ecs::types::SortOrder::Desc)
            .send()
            .await
            .map_err(|e| Error::aws("ecs", "ListTaskDefinitions", e))?;
        let revision_of = |arn: &str| arn.rsplit_once(':').and_then(|(_, r)| r.parse::<i64>().ok()).unwrap_or(0);
        let mut newer: Vec<&String> = listed
            .task_definition_arns()
            .iter()
            .filter(|arn| arn.rsplit_once(':').is_some_and(|(head, _)| head.ends_with(&format!("task-definition/{family}"))) && revision_of(arn) > base_revision)
            .collect();
        newer.sort_by_key(|arn| std::cmp::Reverse(revision_of(arn)));
        for arn in newer.into_iter().take(3) {
            let td = self.describe_task_definition(arn).await?;
            let observed = td.observed().map_err(|e| Error::Refused(format!("{arn}: {e}")))?;
            let carries = images.iter().all(|(name, image)| observed.containers.iter().any(|c| &c.name == name && &c.image == image));
            if carries {
                return Ok(Some(arn.clone()));
            }
        }
        Ok(None)
    }

    /// Move a service onto a revision; everything else (desiredCount included) stays as it is.
    /// The new revision and nothing else: services with the BLUE_GREEN, LINEAR and CANARY
    /// strategies reject most other fields once they exist, and the revision alone starts a new
    /// deployment whatever the strategy (UpdateService, API reference).
    pub async fn update_service(&self, cluster: &str, service: &str, task_definition: &str) -> Result<(), Error> {
        self.ecs
            .update_service()
            .cluster(cluster)
            .service(service)
            .task_definition(task_definition)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| Error::aws("ecs", "UpdateService", e))
    }

    /// An Express Mode service onto a new revision (UpdateExpressGatewayService with
    /// `taskDefinitionArn`, which must keep a container named `Main`: the copy of the service's
    /// own revision does). An UpdateService would change the service behind Express's back.
    pub async fn update_express_service(&self, service_arn: &str, task_definition: &str) -> Result<(), Error> {
        self.ecs
            .update_express_gateway_service()
            .service_arn(service_arn)
            .task_definition_arn(task_definition)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| Error::aws("ecs", "UpdateExpressGatewayService", e))
    }

    /// One image by digest or tag; `None` when ECR does not have it.
    pub async fn describe_image(&self, registry_id: &str, repository: &str, id: ImageIdentifier) -> Result<Option<EcrImage>, Error> {
        let res = self.ecr.describe_images().registry_id(registry_id).repository_name(repository).image_ids(id).send().await;
        match res {
            Ok(out) => Ok(out.image_details().first().map(ecr_image)),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_image_not_found_exception() || s.is_repository_not_found_exception()) => Ok(None),
            Err(e) => Err(Error::aws("ecr", "DescribeImages", e)),
        }
    }

    /// Every image of a repository (reconcile).
    pub async fn list_images(&self, registry_id: &str, repository: &str) -> Result<Vec<EcrImage>, Error> {
        let mut out = Vec::new();
        let mut token = None;
        loop {
            let res = self.ecr.describe_images().registry_id(registry_id).repository_name(repository).max_results(1000).set_next_token(token).send().await;
            let page = match res {
                Ok(p) => p,
                Err(e) if e.as_service_error().is_some_and(|s| s.is_repository_not_found_exception()) => return Ok(out),
                Err(e) => return Err(Error::aws("ecr", "DescribeImages", e)),
            };
            out.extend(page.image_details().iter().map(ecr_image));
            token = page.next_token().map(String::from);
            if token.is_none() {
                return Ok(out);
            }
        }
    }
}

fn ecr_image(d: &autopilot::aws_sdk_ecr::types::ImageDetail) -> EcrImage {
    EcrImage {
        digest: d.image_digest().unwrap_or_default().to_string(),
        tags: d.image_tags().to_vec(),
        pushed_at: d.image_pushed_at().and_then(|t| t.to_millis().ok()),
        manifest_media_type: d.image_manifest_media_type().map(String::from),
        artifact_media_type: d.artifact_media_type().map(String::from),
        subject: d.subject_manifest_digest().map(String::from),
    }
}

pub fn digest_id(digest: &str) -> ImageIdentifier {
    ImageIdentifier::builder().image_digest(digest).build()
}

pub fn tag_id(tag: &str) -> ImageIdentifier {
    ImageIdentifier::builder().image_tag(tag).build()
}

/// Group failures by message for a one-line summary.
pub fn summarize(failures: &[(String, Error)]) -> String {
    let mut by: HashMap<String, Vec<&str>> = HashMap::new();
    for (who, e) in failures {
        by.entry(e.to_string()).or_default().push(who);
    }
    let mut parts: Vec<String> = by.into_iter().map(|(e, who)| format!("{}: {e}", who.join(", "))).collect();
    parts.sort();
    parts.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use autopilot::aws_sdk_ecs as ecs;

    /// Issue 15, item 3: the UpdateService a rollout sends names the cluster, the service and the
    /// revision, nothing more, so ECS accepts it for BLUE_GREEN, LINEAR and CANARY services.
    #[tokio::test]
    async fn update_service_sends_the_revision_alone() {
        let rule = aws_smithy_mocks::mock!(ecs::Client::update_service)
            .match_requests(|r| {
                r.cluster() == Some("stage01")
                    && r.service() == Some("auth")
                    && r.task_definition() == Some("auth:2")
                    && r.desired_count().is_none()
                    && r.deployment_configuration().is_none()
                    && r.force_new_deployment().is_none()
                    && r.network_configuration().is_none()
                    && r.load_balancers().is_empty()
                    && r.capacity_provider_strategy().is_empty()
            })
            .then_output(|| ecs::operation::update_service::UpdateServiceOutput::builder().build());
        let conf = ecs::Config::builder()
            .behavior_version(ecs::config::BehaviorVersion::latest())
            .region(ecs::config::Region::new("us-east-1"))
            .credentials_provider(ecs::config::Credentials::new("test", "test", None, None, "test"))
            .http_client(aws_smithy_mocks::create_mock_http_client())
            .interceptor(aws_smithy_mocks::MockResponseInterceptor::new().with_rule(&rule))
            .build();
        let sdk = autopilot::aws_config::SdkConfig::builder().behavior_version(autopilot::aws_config::BehaviorVersion::latest()).build();
        let aws = Aws::from_clients(ecs::Client::from_conf(conf), autopilot::aws_sdk_ecr::Client::new(&sdk));
        aws.update_service("stage01", "auth", "auth:2").await.expect("the request matched the rule");
        assert_eq!(rule.num_calls(), 1);
    }
}
