//! The `deployer` function (see DESIGN.md): push-to-deploy, rollout reports, reconcile.
//!
//! The rooms, in the order an event meets them (docs/architecture.md):
//! - events in: `lib.rs` answers what the event alone settles (`screen`) and dispatches;
//!   `push.rs` reads an ECR push, `rollout.rs` an ECS deployment state change, `hook.rs` a
//!   deployment paused at a pause lifecycle hook, `reconcile.rs` the schedule;
//! - observe: `deploy::discover` and `aws.rs` read the clusters into plain data
//!   (`plan::ObservedService`, `plan::ObservedTaskDef`), `taskdef.rs` keeps the raw JSON;
//! - decide: `plan.rs` (a pushed image + what runs → a plan, pure and table-tested),
//!   `reconcile::newest_matching`, `messages.rs` (what people are told);
//! - act: `deploy.rs` executes a plan through `aws.rs`, paced by `pacer.rs`, records it in the
//!   state table and notifies;
//! - answer: `outcome.rs`, serialised once, here.

pub mod aws;
pub mod deploy;
pub mod hook;
pub mod index;
pub mod messages;
pub mod outcome;
pub mod pacer;
pub mod plan;
pub mod push;
pub mod reconcile;
pub mod rollout;
pub mod taskdef;

use autopilot::runtime::{Env, Function};
use autopilot::{Config, Error, Incoming};

use crate::aws::Aws;
use crate::outcome::{Ignored, Outcome};

pub use reconcile::newest_matching;

pub struct Deployer {
    pub env: Env,
    aws: Aws,
}

impl Function for Deployer {
    const NAME: &'static str = "deployer";
    const QUEUED: bool = true;
    type Outcome = Outcome;

    fn new(env: Env) -> Self {
        let aws = Aws::new(&env);
        Deployer { env, aws }
    }

    fn env(&self) -> &Env {
        &self.env
    }

    /// Pushes that cannot deploy anything (failed, untagged, artifacts, malformed) and schedules
    /// that are not ours, from the event alone.
    fn screen(incoming: &Incoming, _config: &Config) -> Option<Outcome> {
        let reason = match incoming {
            Incoming::EcrImageAction(ev) => push::push_target(ev).err()?,
            Incoming::DeploymentStateChange(_) => return None,
            Incoming::HookStateChange(ev) => hook::awaiting_action(&ev.detail).err()?,
            Incoming::Scheduled(ev) if reconcile::is_reconcile(ev) => return None,
            Incoming::Scheduled(ev) => reconcile::not_ours(ev),
            other => format!("{} is not handled by deployer", other.detail_type()),
        };
        Some(Outcome::Ignored(Ignored::new(reason)))
    }

    async fn dispatch(&self, incoming: Incoming) -> Result<Outcome, Error> {
        match incoming {
            Incoming::EcrImageAction(ev) => push::handle(&self.env, &self.aws, ev).await,
            Incoming::DeploymentStateChange(ev) => rollout::handle(&self.env, &self.aws, ev).await,
            Incoming::HookStateChange(ev) => hook::handle(&self.env, &self.aws, ev).await,
            Incoming::Scheduled(ev) if reconcile::is_reconcile(&ev) => reconcile::handle(&self.env, &self.aws, ev).await,
            Incoming::Scheduled(ev) => Ok(Outcome::ignored(reconcile::not_ours(&ev))),
            other => Ok(Outcome::ignored(format!("{} is not handled by deployer", other.detail_type()))),
        }
    }
}

/// The event's region, else the function's own.
fn region_or_own(env: &Env, region: &Option<String>) -> String {
    region.clone().filter(|r| !r.is_empty()).unwrap_or_else(|| env.region())
}
