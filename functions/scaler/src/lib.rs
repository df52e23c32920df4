//! The `scaler` function (see DESIGN.md): alarm-driven step scaling of a service's desiredCount
//! with Application Auto Scaling's semantics (`steps.rs`), and the EC2 Auto Scaling group behind
//! an EC2-backed cluster when tasks no longer fit (`capacity.rs`).
//!
//! Which alarm states act:
//! - ALARM: the step containing the breach applies (scale-out or scale-in, by its sign). A bare
//!   step (`+2`) reaches from the threshold outwards in the alarm's direction (`decide::steps_for`).
//! - OK never acts: it ends a scaling episode, as in Application Auto Scaling. Scale-in is a low
//!   alarm's ALARM.
//! - INSUFFICIENT_DATA never acts.
//! - No datapoints (composite alarms, some metric-math alarms, a metric that reports nothing
//!   now): only a bare step can apply; anything else is skipped with a log line.
//! - An alarm that stays in ALARM is re-evaluated by the schedule, its metric measured now
//!   (`reevaluate.rs`).
//!
//! Scale-in waits while ECS reports a rollout (`decide::rollout_in_progress`).
//!
//! Layout, as in the other functions: `decide.rs`, `steps.rs` and `capacity.rs` decide from
//! observed plain data without I/O, `messages.rs` words the notifications, `aws.rs` adapts the
//! SDKs (one function per operation), `alarm.rs`, `reevaluate.rs` and `cluster.rs` orchestrate
//! (observe → decide → act → record → notify), and `outcome.rs` is what an event is answered with.

pub mod alarm;
pub mod aws;
pub mod capacity;
pub mod cluster;
pub mod decide;
pub mod messages;
pub mod outcome;
pub mod reevaluate;
pub mod steps;

use autopilot::aws_sdk_autoscaling as asg;
use autopilot::aws_sdk_cloudwatch as cw;
use autopilot::runtime::{Env, Function};
use autopilot::{Config, Error, Incoming};
use aws_sdk_ecs as ecs;

pub use decide::{parse_alarm_tags, rollout_in_progress, transition_id, AlarmTags, AlarmView};
pub use outcome::Outcome;

use aws::Aws;

pub struct Scaler {
    pub env: Env,
    aws: Aws,
}

impl Function for Scaler {
    const NAME: &'static str = "scaler";
    /// Alarm events and re-evaluation visits go through the scaler's work queue: decisions of one
    /// account and region one at a time, without a reserved concurrency (template.yaml,
    /// ScalerWorkQueue).
    const QUEUED: bool = true;
    type Outcome = Outcome;

    fn new(env: Env) -> Self {
        let aws = Aws::new(&env);
        Scaler { env, aws }
    }

    fn env(&self) -> &Env {
        &self.env
    }

    /// What needs no AWS call: alarms in INSUFFICIENT_DATA, other schedules and service actions,
    /// other event types (`decide::screen`).
    fn screen(incoming: &Incoming, _config: &Config) -> Option<Outcome> {
        decide::screen(incoming)
    }

    async fn dispatch(&self, incoming: Incoming) -> Result<Outcome, Error> {
        // `run_event` answers what `screen` settles before dispatching; asking again keeps this
        // function's answers whole on its own.
        if let Some(settled) = decide::screen(&incoming) {
            return Ok(settled);
        }
        match incoming {
            Incoming::AlarmStateChange(e) => alarm::on_transition(&self.env, &self.aws, AlarmView::from_event(&e, &self.env.region())).await,
            Incoming::Scheduled(_) => reevaluate::run(&self.env, &self.aws).await,
            Incoming::ServiceAction(e) => cluster::on_placement_failure(&self.env, &self.aws, decide::placement_failure(&e)?).await,
            other => Ok(decide::not_handled(&other)),
        }
    }
}

impl Scaler {
    /// A scaler with given clients (adapter tests with aws-smithy-mocks).
    #[doc(hidden)]
    pub fn with_clients(env: Env, ecs: ecs::Client, cw: cw::Client, asg: asg::Client) -> Self {
        Scaler { env, aws: Aws::of(ecs, cw, asg) }
    }
}

#[cfg(test)]
mod adapter_tests;
