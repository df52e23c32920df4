//! The `deployer` function (see DESIGN.md).

use autopilot::runtime::{run_event, Env, Function};
use autopilot::{Error, Incoming};
use serde_json::{json, Value};

pub struct Deployer {
    pub env: Env,
}

impl Function for Deployer {
    const NAME: &'static str = "deployer";

    fn new(env: Env) -> Self {
        Deployer { env }
    }

    async fn handle(&self, event: Value) -> Result<Value, Error> {
        run_event(&self.env, Self::NAME, event, |incoming| async move { self.dispatch(incoming).await }).await
    }
}

impl Deployer {
    async fn dispatch(&self, incoming: Incoming) -> Result<Value, Error> {
        tracing::info!(detail_type = incoming.detail_type(), "not handled yet");
        Ok(json!({"status": "ignored", "reason": format!("{} is not handled by deployer", incoming.detail_type())}))
    }
}
