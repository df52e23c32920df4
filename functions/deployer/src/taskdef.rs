//! Task-definition fidelity: ECS adds task-definition fields faster than any SDK release, so the
//! copy is made from the raw DescribeTaskDefinition answer and sent as the raw
//! RegisterTaskDefinition body. Nothing the describe answer carries can be dropped by a typed
//! model in between; only the read-only fields are removed and only matching images change.
//!
//! The SDK still signs, retries and parses the answer: an interceptor captures the response body
//! of DescribeTaskDefinition, another replaces the request body of RegisterTaskDefinition before
//! signing (the awsJson1.1 body *is* the request JSON, and SigV4 hashes the final body).

use std::fmt;
use std::sync::{Arc, Mutex};

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::{AfterDeserializationInterceptorContextRef, BeforeTransmitInterceptorContextMut};
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::config_bag::ConfigBag;
use serde_json::{Map, Value};

use crate::plan::{ContainerImage, ObservedTaskDef};

/// Fields DescribeTaskDefinition answers that RegisterTaskDefinition does not take (DESIGN.md):
/// the members of ECS's `TaskDefinition` shape that its RegisterTaskDefinition input does not
/// have. tests/python/test_taskdef_model.py compares this list with botocore's model, so a field
/// ECS adds to the output only fails that test, not a user's deploy.
pub const READ_ONLY: &[&str] = &[
    "taskDefinitionArn",
    "revision",
    "status",
    "requiresAttributes",
    "compatibilities",
    "registeredAt",
    "registeredBy",
    "deregisteredAt",
    "deleteRequestedAt",
];

/// RegisterTaskDefinition's members (besides `tags`, which the describe answer carries beside the
/// task definition) when this code was written; tests/python/test_taskdef_model.py keeps it equal
/// to botocore's model. Anything else in a describe answer is newer than this build: it is passed
/// through all the same, and logged by name. `trustedExecutionConfiguration` is one the SDK this
/// build uses (aws-sdk-ecs 1.157.0) does not have: the raw copy carries it.
pub const KNOWN: &[&str] = &[
    "family",
    "taskRoleArn",
    "executionRoleArn",
    "networkMode",
    "containerDefinitions",
    "volumes",
    "placementConstraints",
    "requiresCompatibilities",
    "cpu",
    "memory",
    "pidMode",
    "ipcMode",
    "proxyConfiguration",
    "inferenceAccelerators",
    "ephemeralStorage",
    "runtimePlatform",
    "enableFaultInjection",
    "trustedExecutionConfiguration",
];

/// A tag AWS reserves: its key or value starts with `aws:` in any case. Tags AWS sets itself
/// (`aws:cloudformation:stack-name` and the like) come back from DescribeTaskDefinition, but
/// RegisterTaskDefinition refuses them: "Do not use aws:, AWS:, or any upper or lowercase
/// combination of such as a prefix for either keys or values as it is reserved for AWS use"
/// (ECS's tag restrictions, https://docs.aws.amazon.com/AmazonECS/latest/developerguide/ecs-using-tags.html,
/// and the `tags` member of RegisterTaskDefinition in ECS's API model).
pub fn is_reserved_tag(tag: &Value) -> bool {
    ["key", "value"].iter().any(|k| tag.get(*k).and_then(Value::as_str).is_some_and(|v| v.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("aws:"))))
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TransformError {
    #[error("DescribeTaskDefinition answer is not usable: {0}")]
    Malformed(String),
    #[error("container {0:?} is not in the task definition")]
    NoContainer(String),
}

/// The raw describe answer: `{"taskDefinition": {...}, "tags": [...]}`. Debug never prints it
/// (container environments and secrets are in there).
#[derive(Clone, PartialEq)]
pub struct RawTaskDef(pub Value);

impl fmt::Debug for RawTaskDef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RawTaskDef(<redacted>)")
    }
}

impl RawTaskDef {
    pub fn parse(bytes: &[u8]) -> Result<Self, TransformError> {
        let v: Value = serde_json::from_slice(bytes).map_err(|e| TransformError::Malformed(format!("not JSON: {e}")))?;
        if !v.get("taskDefinition").is_some_and(Value::is_object) {
            return Err(TransformError::Malformed("no taskDefinition object".into()));
        }
        Ok(RawTaskDef(v))
    }

    fn td(&self) -> &Map<String, Value> {
        self.0["taskDefinition"].as_object().expect("checked in parse")
    }

    /// The decision view: names and images only.
    pub fn observed(&self) -> Result<ObservedTaskDef, TransformError> {
        let td = self.td();
        let s = |k: &str| td.get(k).and_then(Value::as_str).map(String::from).ok_or_else(|| TransformError::Malformed(format!("no {k}")));
        let containers = td
            .get("containerDefinitions")
            .and_then(Value::as_array)
            .ok_or_else(|| TransformError::Malformed("no containerDefinitions".into()))?
            .iter()
            .map(|c| ContainerImage {
                name: c.get("name").and_then(Value::as_str).unwrap_or_default().to_string(),
                image: c.get("image").and_then(Value::as_str).unwrap_or_default().to_string(),
            })
            .collect();
        Ok(ObservedTaskDef {
            arn: s("taskDefinitionArn")?,
            family: s("family")?,
            revision: td.get("revision").and_then(Value::as_i64).ok_or_else(|| TransformError::Malformed("no revision".into()))?,
            containers,
        })
    }

    /// Keys of the describe answer's tags that AWS reserves, left out of the copy ([`is_reserved_tag`]).
    pub fn reserved_tags(&self) -> Vec<String> {
        let tags = self.0.get("tags").and_then(Value::as_array).into_iter().flatten();
        tags.filter(|t| is_reserved_tag(t)).map(|t| t.get("key").and_then(Value::as_str).unwrap_or_default().to_string()).collect()
    }

    /// Top-level fields this build does not know (carried through regardless).
    pub fn unknown_fields(&self) -> Vec<String> {
        self.td().keys().filter(|k| !READ_ONLY.contains(&k.as_str()) && !KNOWN.contains(&k.as_str())).cloned().collect()
    }

    /// The RegisterTaskDefinition request: a full copy minus read-only fields, tags from the
    /// describe answer, and `images` (container name → new image) applied.
    pub fn register_request(&self, images: &[(String, String)]) -> Result<Value, TransformError> {
        let mut td = self.td().clone();
        for k in READ_ONLY {
            td.remove(*k);
        }
        let containers = td
            .get_mut("containerDefinitions")
            .and_then(Value::as_array_mut)
            .ok_or_else(|| TransformError::Malformed("no containerDefinitions".into()))?;
        for (name, image) in images {
            let c = containers
                .iter_mut()
                .find(|c| c.get("name").and_then(Value::as_str) == Some(name))
                .ok_or_else(|| TransformError::NoContainer(name.clone()))?;
            c["image"] = Value::String(image.clone());
        }
        // The describe answer's tags, minus those AWS reserves (it would refuse the whole copy).
        let tags: Vec<Value> = self.0.get("tags").and_then(Value::as_array).into_iter().flatten().filter(|t| !is_reserved_tag(t)).cloned().collect();
        if !tags.is_empty() {
            td.insert("tags".into(), Value::Array(tags));
        }
        let mut out = Value::Object(td);
        strip_nulls(&mut out);
        Ok(out)
    }
}

/// JSON null means absent to AWS; some endpoints echo absent members as null.
fn strip_nulls(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|_, x| !x.is_null());
            m.values_mut().for_each(strip_nulls);
        }
        Value::Array(a) => a.iter_mut().for_each(strip_nulls),
        _ => {}
    }
}

/// Captures the response body of the operation it is attached to.
#[derive(Clone, Default)]
pub struct CaptureBody(Arc<Mutex<Option<Vec<u8>>>>);

impl fmt::Debug for CaptureBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CaptureBody")
    }
}

impl CaptureBody {
    pub fn take(&self) -> Option<Vec<u8>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

impl Intercept for CaptureBody {
    fn name(&self) -> &'static str {
        "CaptureBody"
    }

    fn read_after_deserialization(&self, context: &AfterDeserializationInterceptorContextRef<'_>, _: &RuntimeComponents, _: &mut ConfigBag) -> Result<(), BoxError> {
        // The body has been read into memory for the non-streaming deserializer by now.
        if let Some(bytes) = context.response().body().bytes() {
            *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(bytes.to_vec());
        }
        Ok(())
    }
}

/// Replaces the request body (before signing, so the signature covers it).
pub struct ReplaceBody(pub Vec<u8>);

impl fmt::Debug for ReplaceBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ReplaceBody({} bytes)", self.0.len())
    }
}

impl Intercept for ReplaceBody {
    fn name(&self) -> &'static str {
        "ReplaceBody"
    }

    fn modify_before_signing(&self, context: &mut BeforeTransmitInterceptorContextMut<'_>, _: &RuntimeComponents, _: &mut ConfigBag) -> Result<(), BoxError> {
        let request = context.request_mut();
        *request.body_mut() = SdkBody::from(self.0.clone());
        request.headers_mut().insert("Content-Length", self.0.len().to_string());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn describe() -> Value {
        json!({
            "taskDefinition": {
                "taskDefinitionArn": "arn:aws:ecs:us-east-1:1:task-definition/auth:3",
                "family": "auth", "revision": 3, "status": "ACTIVE",
                "registeredAt": 1700000000.0, "registeredBy": "arn:aws:iam::1:root",
                "requiresAttributes": [{"name": "com.amazonaws.ecs.capability.ecr-auth"}],
                "compatibilities": ["EC2"],
                "containerDefinitions": [
                    {"name": "auth", "image": "1.dkr.ecr.us-east-1.amazonaws.com/auth:v1",
                     "environment": [{"name": "DB_PASSWORD", "value": "hunter2"}],
                     "restartPolicy": {"enabled": true, "restartAttemptPeriod": 60},
                     "versionConsistency": "disabled",
                     "aFieldFromTheFuture": {"x": 1}, "credentialSpecs": null},
                    {"name": "envoy", "image": "public.ecr.aws/envoy:v1.29"}
                ],
                "runtimePlatform": {"cpuArchitecture": "ARM64", "operatingSystemFamily": "LINUX"},
                "ephemeralStorage": {"sizeInGiB": 30},
                "taskLevelFutureSetting": {"enabled": true}
            },
            "tags": [{"key": "team", "value": "platform"}]
        })
    }

    #[test]
    fn copy_keeps_everything_but_read_only_fields_and_the_image() {
        let raw = RawTaskDef(describe());
        let req = raw.register_request(&[("auth".into(), "1.dkr.ecr.us-east-1.amazonaws.com/auth@sha256:ab".into())]).unwrap();
        let mut want = describe()["taskDefinition"].clone();
        for k in READ_ONLY {
            want.as_object_mut().unwrap().remove(*k);
        }
        want["containerDefinitions"][0]["image"] = json!("1.dkr.ecr.us-east-1.amazonaws.com/auth@sha256:ab");
        want["containerDefinitions"][0].as_object_mut().unwrap().remove("credentialSpecs");
        want["tags"] = json!([{"key": "team", "value": "platform"}]);
        assert_eq!(req, want);
        // Fields newer than this build survive, at the top level and inside containers.
        assert_eq!(req["taskLevelFutureSetting"], json!({"enabled": true}));
        assert_eq!(req["containerDefinitions"][0]["aFieldFromTheFuture"], json!({"x": 1}));
        assert_eq!(raw.unknown_fields(), vec!["taskLevelFutureSetting".to_string()]);
        assert_eq!(req["containerDefinitions"][1]["image"], "public.ecr.aws/envoy:v1.29");
    }

    /// A copy AWS accepts: tags AWS reserves (`aws:` keys or values, any case) and output-only
    /// fields (`deleteRequestedAt`, ECS's model has it on TaskDefinition only) stay behind; a
    /// member of the model the SDK lacks (`trustedExecutionConfiguration`) goes through.
    #[test]
    fn copy_leaves_reserved_tags_and_output_only_fields_behind() {
        let mut d = describe();
        d["taskDefinition"]["status"] = json!("DELETE_IN_PROGRESS");
        d["taskDefinition"]["deleteRequestedAt"] = json!(1700000500.0);
        d["taskDefinition"]["deregisteredAt"] = json!(1700000400.0);
        d["taskDefinition"]["trustedExecutionConfiguration"] = json!({"isolationMode": "ENABLED"});
        d["tags"] = json!([
            {"key": "aws:cloudformation:stack-name", "value": "web"},
            {"key": "team", "value": "platform"},
            {"key": "AWS:Owner", "value": "x"},
            {"key": "Aws:x", "value": "y"},
            {"key": "source", "value": "aws:managed"},
            {"key": "awsome", "value": "yes"},
            {"key": "aws", "value": "bare"},
        ]);
        let raw = RawTaskDef(d);
        let req = raw.register_request(&[]).unwrap();
        for k in READ_ONLY {
            assert!(req.get(*k).is_none(), "{k} is output-only");
        }
        assert_eq!(req["tags"], json!([{"key": "team", "value": "platform"}, {"key": "awsome", "value": "yes"}, {"key": "aws", "value": "bare"}]));
        assert_eq!(raw.reserved_tags(), ["aws:cloudformation:stack-name", "AWS:Owner", "Aws:x", "source"]);
        assert_eq!(req["trustedExecutionConfiguration"], json!({"isolationMode": "ENABLED"}));
        assert!(!raw.unknown_fields().contains(&"trustedExecutionConfiguration".to_string()), "known to this build, if not to the SDK");
        // Only reserved tags: no `tags` member at all.
        let mut only = describe();
        only["tags"] = json!([{"key": "aws:ecs:managed", "value": "true"}]);
        assert!(RawTaskDef(only).register_request(&[]).unwrap().get("tags").is_none());
    }

    #[test]
    fn errors_are_classified_and_never_print_the_definition() {
        let raw = RawTaskDef(describe());
        assert_eq!(raw.register_request(&[("nope".into(), "x".into())]).unwrap_err(), TransformError::NoContainer("nope".into()));
        assert!(RawTaskDef::parse(b"{}").is_err());
        assert!(RawTaskDef::parse(b"not json").is_err());
        assert!(!format!("{raw:?}").contains("hunter2"));
        let o = raw.observed().unwrap();
        assert_eq!((o.family.as_str(), o.revision, o.containers.len()), ("auth", 3, 2));
        assert!(!format!("{o:?}").contains("hunter2"));
    }

    /// Issue 15 (acceptance): the fields of ECS's 2024–2026 task definitions go through the copy
    /// unchanged, one case per field (ECS API reference: RegisterTaskDefinition's
    /// requiresCompatibilities MANAGED_INSTANCES, enableFaultInjection; ContainerDefinition's
    /// versionConsistency and restartPolicy).
    #[test]
    fn new_task_definition_fields_copy_unchanged() {
        let cases: [(&str, &[&str], Value); 4] = [
            ("requiresCompatibilities", &["requiresCompatibilities"], json!(["MANAGED_INSTANCES"])),
            ("enableFaultInjection", &["enableFaultInjection"], json!(true)),
            ("versionConsistency", &["containerDefinitions", "1", "versionConsistency"], json!("enabled")),
            ("restartPolicy", &["containerDefinitions", "0", "restartPolicy"], json!({"enabled": true, "ignoredExitCodes": [0, 143], "restartAttemptPeriod": 60})),
        ];
        for (field, path, value) in cases {
            let mut d = describe();
            let mut slot = &mut d["taskDefinition"];
            for step in path {
                slot = match step.parse::<usize>() {
                    Ok(n) => &mut slot[n],
                    Err(_) => &mut slot[*step],
                };
            }
            *slot = value.clone();
            let req = RawTaskDef(d).register_request(&[("auth".into(), "1.dkr.ecr.us-east-1.amazonaws.com/auth@sha256:ab".into())]).unwrap();
            let mut got = &req;
            for step in path {
                got = match step.parse::<usize>() {
                    Ok(n) => &got[n],
                    Err(_) => &got[*step],
                };
            }
            assert_eq!(got, &value, "{field}");
        }
    }
}
