//! What every function does around its decision logic: logging, the shared environment, the
//! idempotency claim on the EventBridge event id, and turning outcomes into invocation results.

use std::future::Future;
use std::time::Duration;

use aws_config::SdkConfig;
use serde_json::{json, Value};

use crate::config::Config;
use crate::error::Error;
use crate::events::Incoming;
use crate::notify::Notifier;
use crate::state::{EventClaim, StateStore};

/// A claim lives this long while a delivery works on it (Lambda's maximum duration).
pub const EVENT_LEASE: Duration = Duration::from_secs(900);
/// A handled event id is remembered this long: EventBridge retries for at most 24 hours.
pub const EVENT_MEMORY: Duration = Duration::from_secs(2 * 24 * 3600);

/// Lambda's JSON or text format and log level, from `AWS_LAMBDA_LOG_FORMAT` / `AWS_LAMBDA_LOG_LEVEL`.
pub fn init_logging() {
    lambda_runtime::tracing::init_default_subscriber();
}

/// Configuration, AWS configuration, state store and notifier, built once per container.
pub struct Env {
    pub config: Config,
    pub sdk: SdkConfig,
    pub state: StateStore,
    pub notifier: Notifier,
}

impl Env {
    pub async fn load(config: Config) -> Self {
        let sdk = crate::aws::load_sdk_config().await;
        Self::new(config, sdk)
    }

    pub fn new(config: Config, sdk: SdkConfig) -> Self {
        let state = match &config.state_table {
            Some(table) => StateStore::dynamo(aws_sdk_dynamodb::Client::new(&sdk), table),
            None => {
                tracing::warn!("AUTOPILOT_STATE_TABLE is not set: idempotency and cooldowns last only as long as this container");
                StateStore::memory()
            }
        };
        let notifier = Notifier::new(config.topic_arn.clone().map(|t| (aws_sdk_sns::Client::new(&sdk), t)), config.dry_run);
        Env { config, sdk, state, notifier }
    }

    pub fn region(&self) -> String {
        self.sdk.region().map(|r| r.to_string()).unwrap_or_else(|| "us-east-1".into())
    }
}

/// A function's pure first look at an event: the answer when the event alone decides that there
/// is nothing to do (a failed push, a task that is not STOPPED, an alarm in INSUFFICIENT_DATA), or
/// `None` when the handler must look at AWS. A screened event touches no AWS API and no state:
/// replaying it is harmless, so it needs no idempotency claim either.
pub type Screen = fn(&Incoming, &Config) -> Option<Value>;

fn event_span(function: &str, incoming: &Incoming) -> tracing::Span {
    tracing::info_span!("event", function, detail_type = incoming.detail_type(), event_id = incoming.id().unwrap_or("-"))
}

fn rejected(function: &str, e: &crate::events::EventError) -> Value {
    tracing::error!(error_kind = "InvalidEvent", error = %e, "event rejected");
    crate::metrics::emit(function, crate::metrics::EventMetrics { rejected: true, ..Default::default() });
    json!({"status": "rejected", "error": {"kind": "InvalidEvent", "message": e.to_string()}})
}

fn screened(function: &str, outcome: &Value) {
    tracing::info!(outcome = %outcome, "event handled from its content alone (no AWS call)");
    crate::metrics::emit(function, crate::metrics::EventMetrics::default());
}

/// The answer to an event that needs neither AWS nor the state table: one that cannot be parsed,
/// or one that `screen` settles. `serve` asks this before the SDK is even configured, so such
/// events (most of what EventBridge sends) cost no client construction, no TLS and no call.
pub fn answer_without_aws(function: &str, config: &Config, raw: &Value, screen: Screen) -> Option<Value> {
    match Incoming::parse(raw.clone()) {
        Err(e) => Some(rejected(function, &e)),
        Ok(incoming) => {
            let outcome = screen(&incoming, config)?;
            let span = event_span(function, &incoming);
            let _guard = span.enter();
            screened(function, &outcome);
            Some(outcome)
        }
    }
}

/// Parse the event, answer what `screen` settles, skip replays, run `handler`, remember the event
/// when it succeeded.
///
/// - An event that cannot be parsed is logged as a classified error and answered with
///   `{"status":"rejected"}`: retrying the same bytes cannot help, and AWS is not touched.
/// - An event `screen` settles is answered at once, before any claim.
/// - A replay (same `id` already handled or in flight) answers `{"status":"replay"}`.
/// - A handler error fails the invocation (so EventBridge/Lambda retry and the DLQ catches what
///   never succeeds) and releases the claim so the retry does the work.
pub async fn run_event<F, Fut>(env: &Env, function: &str, raw: Value, screen: Screen, handler: F) -> Result<Value, Error>
where
    F: FnOnce(Incoming) -> Fut,
    Fut: Future<Output = Result<Value, Error>>,
{
    let incoming = match Incoming::parse(raw) {
        Ok(incoming) => incoming,
        Err(e) => return Ok(rejected(function, &e)),
    };
    let id = incoming.id().map(str::to_string);
    let span = event_span(function, &incoming);
    let _guard = span.enter();
    if let Some(outcome) = screen(&incoming, &env.config) {
        screened(function, &outcome);
        return Ok(outcome);
    }
    if let Some(id) = &id {
        if env.state.begin_event(function, id, EVENT_LEASE).await? == EventClaim::Replay {
            tracing::info!("replayed event: already handled, nothing to do");
            return Ok(json!({"status": "replay", "id": id}));
        }
    }
    let result = handler(incoming).await;
    if let Some(id) = &id {
        if let Err(e) = env.state.finish_event(function, id, result.is_ok(), EVENT_MEMORY).await {
            tracing::warn!(error = %e, "could not record the event's outcome");
        }
    }
    match &result {
        Ok(outcome) => {
            tracing::info!(outcome = %outcome, "event handled");
            crate::metrics::emit(function, crate::metrics::EventMetrics { actions: crate::metrics::count_actions(outcome), ..Default::default() });
        }
        Err(e) => {
            tracing::error!(error_kind = e.kind(), retryable = e.retryable(), error = %e, "event failed");
            crate::metrics::emit(function, crate::metrics::EventMetrics { failed: true, ..Default::default() });
        }
    }
    result
}

/// One Lambda function: built once per container from the environment, then handed each event.
///
/// Every function has the same shape (docs/architecture.md): `screen` settles from the event alone
/// what needs no AWS, `dispatch` handles the rest, both answer with the function's own typed
/// `Outcome`, and `handle` (written once, here) serialises it around the idempotency claim.
pub trait Function: Sized + Send + Sync + 'static {
    /// The binary's name, also the idempotency namespace in the state table.
    const NAME: &'static str;
    /// What the function answers for an event: invocation result, log line and metric source.
    type Outcome: serde::Serialize + Send;
    fn new(env: Env) -> Self;
    fn env(&self) -> &Env;
    /// See [`Screen`]; the default settles nothing.
    fn screen(_incoming: &Incoming, _config: &Config) -> Option<Self::Outcome> {
        None
    }
    /// An event `screen` did not settle, past the idempotency claim.
    fn dispatch(&self, incoming: Incoming) -> impl Future<Output = Result<Self::Outcome, Error>> + Send;
    /// The invocation: [`run_event`] around `screen` and `dispatch`.
    fn handle(&self, event: Value) -> impl Future<Output = Result<Value, Error>> + Send {
        async move { run_event(self.env(), Self::NAME, event, screen_json::<Self>, |incoming| async move { self.dispatch(incoming).await.map(|o| to_json(&o)) }).await }
    }
}

/// An outcome as JSON. Outcomes are plain data (strings, numbers, lists): serialising one cannot
/// fail, and if it ever did the answer says so instead of panicking.
pub fn to_json<T: serde::Serialize>(outcome: &T) -> Value {
    serde_json::to_value(outcome).unwrap_or_else(|e| json!({"status": "unserialisable", "error": e.to_string()}))
}

fn screen_json<F: Function>(incoming: &Incoming, config: &Config) -> Option<Value> {
    F::screen(incoming, config).map(|o| to_json(&o))
}

/// The whole `main` of a function: validate configuration, then serve the Runtime API.
///
/// The SDK configuration is loaded on the first event that needs AWS rather than before the first
/// `next` request, so the cold start up to `next` pays only for reading the environment, and an
/// event that [`Function::screen`] settles is answered without building it at all.
pub async fn serve<F: Function>() -> Result<(), lambda_runtime::Error> {
    init_logging();
    let config = Config::from_env().inspect_err(|e| tracing::error!(error_kind = "InvalidConfiguration", error = %e, "cannot start"))?;
    let function: tokio::sync::OnceCell<F> = tokio::sync::OnceCell::new();
    let (function, config) = (&function, &config);
    lambda_runtime::run(lambda_runtime::service_fn(move |event: lambda_runtime::LambdaEvent<Value>| async move {
        if let Some(answer) = answer_without_aws(F::NAME, config, &event.payload, screen_json::<F>) {
            return Ok(answer);
        }
        let f = function.get_or_init(|| async { F::new(Env::load(config.clone()).await) }).await;
        // Boxed: the handler's future is deep, and the runtime's own layers nest it further.
        Box::pin(f.handle(event.payload)).await
    }))
    .await
}
