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

/// A short, stable digest of text for use inside a key (FNV-1a, 64 bits, hex): keeps sort keys
/// under DynamoDB's 1,024-byte limit whatever the text, and is the same in every build.
pub fn digest_of(text: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

#[cfg(test)]
mod tests {
    #[test]
    fn digest_is_fnv1a() {
        // Reference values of 64-bit FNV-1a.
        assert_eq!(super::digest_of(""), "cbf29ce484222325");
        assert_eq!(super::digest_of("a"), "af63dc4c8601ec8c");
    }
}
