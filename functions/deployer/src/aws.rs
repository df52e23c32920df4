//! The AWS calls the deployer makes, one function per operation, errors classified.

use std::collections::HashMap;

use autopilot::aws_sdk_ecr::types::ImageIdentifier;
use autopilot::aws_sdk_ecs::types::{ServiceField, TaskDefinitionField};
use autopilot::tags::ecs_tags;
use autopilot::Error;
use aws_smithy_runtime_api::client::result::SdkError;
use serde_json::Value;

use crate::plan::ObservedService;
use crate::taskdef::{CaptureBody, RawTaskDef, ReplaceBody};

pub struct Aws {
    pub ecs: autopilot::aws_sdk_ecs::Client,
    pub ecr: autopilot::aws_sdk_ecr::Client,
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
}

fn millis(t: Option<&autopilot::aws_sdk_ecs::primitives::DateTime>) -> Option<i64> {
    t.and_then(|t| t.to_millis().ok())
}

impl Aws {
    pub fn new(sdk: &autopilot::aws_config::SdkConfig) -> Self {
        Aws { ecs: autopilot::aws_sdk_ecs::Client::new(sdk), ecr: autopilot::aws_sdk_ecr::Client::new(sdk) }
    }

    /// The managed clusters: the configured ones, else every cluster (ListClusters).
    pub async fn clusters(&self, configured: &[String]) -> Result<Vec<String>, Error> {
        if !configured.is_empty() {
            return Ok(configured.to_vec());
        }
        autopilot::aws::ecs::cluster_arns(&self.ecs).await
    }

    pub async fn list_services(&self, cluster: &str) -> Result<Vec<String>, Error> {
        autopilot::aws::ecs::service_arns(&self.ecs, cluster).await
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
                    task_definition: s.task_definition().unwrap_or_default().to_string(),
                },
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
