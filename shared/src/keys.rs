//! State-table keys that more than one function reads. Records are `{"taskDefinition": ARN,
//! "at": EPOCH_SECONDS, ...}`; see `state.rs` for the table layout.

/// The revision a service last completed a deployment on (written by the deployer on
/// SERVICE_DEPLOYMENT_COMPLETED; read by recovery to roll back a crash loop).
pub fn stable_revision(cluster: &str, service: &str) -> (String, String) {
    ("stable".into(), format!("{}/{service}", crate::config::cluster_name(cluster)))
}

/// The revision the deployer (or a rollback) last moved a service onto, with `previous` =
/// the revision it replaced and `at` = when (recovery's "deployed recently").
pub fn deployment(cluster: &str, service: &str) -> (String, String) {
    ("deployed".into(), format!("{}/{service}", crate::config::cluster_name(cluster)))
}
