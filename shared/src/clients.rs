//! The clients of one environment (`runtime::Env`): the SDK's defaults at home, exactly as
//! before; in a member account and region (issue 16), a retry partition of their own per
//! service, account and region. The SDK keeps its retry token buckets in one process-wide map
//! keyed by partition, `{service}-{region}` by default (aws-smithy-runtime's
//! `client/retries/strategy/standard.rs`), so without this one account's throttling would spend
//! the retry budget of every other account in that region.

use crate::runtime::Env;

macro_rules! client {
    ($(#[$doc:meta])* $name:ident, $krate:ident, $service:literal) => {
        $(#[$doc])*
        pub fn $name(env: &Env) -> $krate::Client {
            match &env.place {
                None => $krate::Client::new(&env.sdk),
                Some(place) => {
                    let partition = $krate::config::retry::RetryPartition::new(format!("{}-{}", $service, place.scope()));
                    $krate::Client::from_conf($krate::config::Builder::from(&env.sdk).retry_partition(partition).build())
                }
            }
        }
    };
}

client!(ecs, aws_sdk_ecs, "ecs");
client!(ecr, aws_sdk_ecr, "ecr");
client!(cloudwatch, aws_sdk_cloudwatch, "cloudwatch");
client!(autoscaling, aws_sdk_autoscaling, "autoscaling");
client!(elbv2, aws_sdk_elasticloadbalancingv2, "elasticloadbalancing");

/// The retry partition a member's ECS client uses (for tests and the bench's report).
pub fn ecs_partition(env: &Env) -> Option<String> {
    ecs(env).config().retry_partition().map(|p| p.to_string())
}
