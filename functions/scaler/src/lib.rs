//! The `scaler` function (see DESIGN.md).

use autopilot::runtime::{run_event, Env, Function};
use autopilot::{Error, Incoming};
use serde_json::{json, Value};

pub struct Scaler {
    pub env: Env,
}

impl Function for Scaler {
    const NAME: &'static str = "scaler";

    fn new(env: Env) -> Self {
        Scaler { env }
    }

    async fn handle(&self, event: Value) -> Result<Value, Error> {
        run_event(&self.env, Self::NAME, event, |incoming| async move { self.dispatch(incoming).await }).await
    }
}

impl Scaler {
    async fn dispatch(&self, incoming: Incoming) -> Result<Value, Error> {
        tracing::info!(detail_type = incoming.detail_type(), "not handled yet");
        Ok(json!({"status": "ignored", "reason": format!("{} is not handled by scaler", incoming.detail_type())}))
    }
}
