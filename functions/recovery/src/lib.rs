//! The `recovery` function (see DESIGN.md).

use autopilot::runtime::{run_event, Env, Function};
use autopilot::{Error, Incoming};
use serde_json::{json, Value};

pub struct Recovery {
    pub env: Env,
}

impl Function for Recovery {
    const NAME: &'static str = "recovery";

    fn new(env: Env) -> Self {
        Recovery { env }
    }

    async fn handle(&self, event: Value) -> Result<Value, Error> {
        run_event(&self.env, Self::NAME, event, |incoming| async move { self.dispatch(incoming).await }).await
    }
}

impl Recovery {
    async fn dispatch(&self, incoming: Incoming) -> Result<Value, Error> {
        tracing::info!(detail_type = incoming.detail_type(), "not handled yet");
        Ok(json!({"status": "ignored", "reason": format!("{} is not handled by recovery", incoming.detail_type())}))
    }
}
