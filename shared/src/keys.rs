//! State-table keys that more than one function reads. Records are `{"taskDefinition": ARN,
//! "at": EPOCH_SECONDS, ...}`; see `state.rs` for the table layout.

/// The revision a service last completed a deployment on (written by the deployer on
/// SERVICE_DEPLOYMENT_COMPLETED; read by recovery to roll back a crash loop).
pub fn stable_revision(cluster: &str, service: &str) -> (String, String) {
    ("stable".into(), format!("{}/{service}", crate::config::cluster_name(cluster)))
}

/// The revision the deployer (or a rollback) last moved a service onto, with `previous` =
/// the revision it replaced and `at` = when (recovery's "deployed recently"); when the deployer
/// put it there, also the `digest` and `tag` it runs (what a rollback gives its verdict on).
pub fn deployment(cluster: &str, service: &str) -> (String, String) {
    ("deployed".into(), format!("{}/{service}", crate::config::cluster_name(cluster)))
}

/// A rollback is a verdict on a digest (DESIGN.md): once ECS's circuit breaker, a crash-loop
/// rollback or a person has moved a service off a revision the deployer put there, the digest it
/// ran is never deployed to that service again, by the reconcile pass or a repeated push; a newer
/// push (another digest) deploys. One record per service and digest, written by the deployer
/// (rollout reports, and reconcile or a push finding the service moved off its revision) and by
/// recovery (after its rollback); read by the deployer in its batched read. The record:
/// [`verdict_record`].
pub fn rolled_back(cluster: &str, service: &str, digest: &str) -> (String, String) {
    ("rolled-back".into(), format!("{}/{service}@{digest}", crate::config::cluster_name(cluster)))
}

/// How long a verdict is remembered: a year, like the last stable revision. A rolled-back digest
/// stays the newest image its service's rules accept until the next push, which may be months
/// away; a verdict that expires while it still is would put it back.
pub const VERDICT_TTL: std::time::Duration = std::time::Duration::from_secs(365 * 24 * 3600);

/// Who gave a verdict ([`verdict_record`]'s `by`): ECS's deployment circuit breaker (a FAILED
/// rollout, or its rollback), recovery's crash-loop rollback, or someone else who moved the
/// service to another revision (found by the deployer).
pub const BY_CIRCUIT_BREAKER: &str = "circuit-breaker";
pub const BY_RECOVERY: &str = "recovery";
pub const BY_MOVED: &str = "moved";

/// The verdict on `digest` for one service: `task_definition` ran it, `by` moved the service off
/// it (or failed it) at `at` (epoch seconds), onto `to` when known.
pub fn verdict_record(digest: &str, task_definition: &str, by: &str, to: Option<&str>, at: u64) -> serde_json::Value {
    let mut v = serde_json::json!({"digest": digest, "taskDefinition": task_definition, "by": by, "at": at});
    if let Some(to) = to {
        v["to"] = serde_json::Value::String(to.to_string());
    }
    v
}

/// The verdict a rollback of a service gives, from the deployment record ([`deployment`]) of the
/// revision rolled back: its key and record, when the deployer put a digest there.
pub fn rollback_verdict(cluster: &str, service: &str, deployment: Option<&serde_json::Value>, by: &str, to: &str, at: u64) -> Option<((String, String), serde_json::Value)> {
    let deployment = deployment?;
    let digest = deployment.get("digest").and_then(serde_json::Value::as_str).filter(|d| !d.is_empty())?;
    let from = deployment.get("taskDefinition").and_then(serde_json::Value::as_str).unwrap_or_default();
    Some((rolled_back(cluster, service, digest), verdict_record(digest, from, by, Some(to), at)))
}

/// A short, stable digest of text for use inside a key (FNV-1a, 64 bits, hex): keeps sort keys
/// under DynamoDB's 1,024-byte limit whatever the text, and is the same in every build.
pub fn digest_of(text: &str) -> String {
    format!("{:016x}", fnv1a(FNV_OFFSET_BASIS, text))
}

/// FNV-1a's 64-bit offset basis.
pub const FNV_OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;

/// FNV-1a, 64 bits, from `basis` (stable in every build, unlike `DefaultHasher`).
pub fn fnv1a(basis: u64, text: &str) -> u64 {
    text.bytes().fold(basis, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_rollback_verdict_names_the_digest_the_deployer_put_there() {
        let deployed = serde_json::json!({"taskDefinition": "arn:td/auth:2", "previous": "arn:td/auth:1", "at": 1, "digest": "sha256:ab", "tag": "v2"});
        let (key, record) = super::rollback_verdict("arn:aws:ecs:us-east-1:1:cluster/stage01", "auth", Some(&deployed), super::BY_RECOVERY, "arn:td/auth:1", 42).unwrap();
        assert_eq!(key, ("rolled-back".to_string(), "stage01/auth@sha256:ab".to_string()));
        assert_eq!(key, super::rolled_back("stage01", "auth", "sha256:ab"), "a cluster's ARN and name give one key");
        assert_eq!(record, serde_json::json!({"digest": "sha256:ab", "taskDefinition": "arn:td/auth:2", "by": "recovery", "to": "arn:td/auth:1", "at": 42}));
        // A record without a digest (a rollback's own, or none): no verdict to give.
        let rollback = serde_json::json!({"taskDefinition": "arn:td/auth:1", "by": "recovery", "reason": "rollback"});
        assert_eq!(super::rollback_verdict("stage01", "auth", Some(&rollback), super::BY_RECOVERY, "x", 1), None);
        assert_eq!(super::rollback_verdict("stage01", "auth", None, super::BY_RECOVERY, "x", 1), None);
    }

    #[test]
    fn digest_is_fnv1a() {
        // Reference values of 64-bit FNV-1a.
        assert_eq!(super::digest_of(""), "cbf29ce484222325");
        assert_eq!(super::digest_of("a"), "af63dc4c8601ec8c");
    }
}
