//! The library every ecs-autopilot function stands on.

pub mod aws;
pub mod cache;
pub mod clients;
pub mod config;
pub mod error;
pub mod events;
pub mod image;
pub mod keys;
pub mod members;
pub mod metrics;
pub mod notify;
pub mod pacer;
pub mod runtime;
pub mod state;
pub mod tags;

pub use config::Config;
pub use error::{Error, Result};
pub use events::Incoming;
pub use notify::{Notification, Notifier};
pub use state::StateStore;

pub use aws_config;
pub use aws_lambda_events;
pub use aws_sdk_autoscaling;
pub use aws_sdk_cloudwatch;
pub use aws_sdk_dynamodb;
pub use aws_sdk_ecr;
pub use aws_sdk_ecs;
pub use aws_sdk_elasticloadbalancingv2;
pub use aws_sdk_organizations;
pub use aws_sdk_sns;
pub use aws_sdk_sqs;
pub use aws_sdk_sts;
pub use lambda_runtime;
