//! What every function does around its decision logic: logging, the shared environment, the
//! idempotency claim on the EventBridge event id, and turning outcomes into invocation results.

use std::convert::Infallible;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::time::{Duration, SystemTime};

use futures_util::FutureExt;

use aws_config::SdkConfig;
use serde_json::{json, Value};

use crate::config::Config;
use crate::error::Error;
use crate::events::Incoming;
use crate::notify::Notifier;
use crate::members::{reach, schedule_places, Members, Place, Reach};
use crate::state::{EventClaim, Lease, StateStore};

use std::sync::Arc;


/// An event claim is a lease this long, renewed every [`HEARTBEAT`] while the work runs and
/// never past the invocation's deadline. An invocation that dies (timeout, out of memory, a
/// killed process) stops renewing, so its claim lapses within this time: Lambda's asynchronous
/// retries come one and then two minutes after a failure ("Error handling and automatic retries
/// in Lambda"), and find the event free to handle.
pub const EVENT_LEASE: Duration = Duration::from_secs(30);
/// How often a running delivery renews its lease.
pub const HEARTBEAT: Duration = Duration::from_secs(10);
/// Past the deadline Lambda has stopped the invocation; a lease ends at most this long after it
/// (clock granularity of the state table's expiry, which counts whole seconds).
const DEADLINE_GRACE: Duration = Duration::from_secs(1);
/// A handled event id is remembered this long: EventBridge retries for at most 24 hours.
pub const EVENT_MEMORY: Duration = Duration::from_secs(2 * 24 * 3600);

/// The level asked for: `AWS_LAMBDA_LOG_LEVEL` (the template's `LogLevel`, through Lambda's
/// advanced logging controls), else `RUST_LOG` read as a plain level, else INFO. Only a level:
/// per-target directives are not honoured, so no setting can turn another crate up (see [`log_filter`]).
pub fn log_level(aws_lambda_log_level: Option<&str>, rust_log: Option<&str>) -> tracing::level_filters::LevelFilter {
    use std::str::FromStr;
    let asked = aws_lambda_log_level.or(rust_log).unwrap_or("INFO");
    tracing::level_filters::LevelFilter::from_str(asked.trim()).unwrap_or(tracing::level_filters::LevelFilter::INFO)
}

/// Which log events pass: ours (the `autopilot*` crates) at `level`, every other crate at
/// `level` but never above INFO. At DEBUG and TRACE other crates log what no log line may carry:
/// lambda_runtime the raw event ("raw JSON event received from Lambda", with a task's
/// environment overrides), the SDK and its HTTP stack request and response bodies (task
/// definitions' environment values, secret ARNs) and credential details.
pub fn log_filter(level: tracing::level_filters::LevelFilter) -> lambda_runtime::tracing::subscriber::filter::Targets {
    let others = level.min(tracing::level_filters::LevelFilter::INFO);
    lambda_runtime::tracing::subscriber::filter::Targets::new().with_default(others).with_target("autopilot", level)
}

/// Lambda's JSON or text format (`AWS_LAMBDA_LOG_FORMAT`) at [`log_level`], through
/// [`log_filter`]; and a panic hook that logs where a panic happened but not its message, which
/// may quote data (an `expect` on a value, a `Debug` of an AWS answer).
pub fn init_logging() {
    use lambda_runtime::tracing::subscriber::{self, layer::SubscriberExt, util::SubscriberInitExt};
    let level = log_level(std::env::var("AWS_LAMBDA_LOG_LEVEL").ok().as_deref(), std::env::var("RUST_LOG").ok().as_deref());
    let json = std::env::var("AWS_LAMBDA_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    let format = subscriber::fmt::layer().with_target(false).without_time();
    let registry = subscriber::registry().with(log_filter(level));
    let _ = if json { registry.with(format.json()).try_init() } else { registry.with(format).try_init() };
    std::panic::set_hook(Box::new(|info| {
        let location = info.location().map(|l| format!("{}:{}", l.file(), l.line())).unwrap_or_else(|| "unknown".into());
        tracing::error!(error_kind = "Panic", location = %location, "the handler panicked (its message is not logged: it may quote data)");
    }));
}

/// Configuration, AWS configuration, state store and notifier, built once per container; and,
/// in organization mode, once per member account and region the container acts in
/// ([`Env::for_place`]).
pub struct Env {
    pub config: Config,
    pub sdk: SdkConfig,
    pub state: StateStore,
    pub notifier: Notifier,
    /// `None`: the function's own account and region. `Some`: a member's (issue 16), whose
    /// clients get their own retry partition ([`crate::clients`]).
    pub place: Option<Place>,
    /// The Organization as this container knows it: its own account, member role sessions, and
    /// the function instances built per place.
    pub members: Arc<Members>,
}

impl Env {
    pub async fn load(config: Config) -> Self {
        let sdk = crate::aws::load_sdk_config().await;
        Self::new(config, sdk)
    }

    /// The environment of work done in `place`: the member's AWS configuration, the state table
    /// scoped to the place, notifications naming it; the same configuration and members.
    pub fn for_place(&self, place: &Place, sdk: SdkConfig, account_name: Option<String>) -> Env {
        Env {
            config: self.config.clone(),
            sdk,
            state: self.state.scoped(&place.scope()),
            notifier: self.notifier.for_place(place, account_name),
            place: Some(place.clone()),
            members: self.members.clone(),
        }
    }

    /// An environment of the given parts (tests that mock the state table or the topic).
    pub fn from_parts(config: Config, sdk: SdkConfig, state: StateStore, notifier: Notifier) -> Self {
        let members = Arc::new(Members::new(&config, sdk.clone()));
        Env { config, sdk, state, notifier, place: None, members }
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
        let members = Arc::new(Members::new(&config, sdk.clone()));
        Env { config, sdk, state, notifier, place: None, members }
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

/// Parse the event, answer what `screen` settles, skip replays, run `handler` under a lease on
/// the event id, remember the event when it succeeded.
///
/// - An event that cannot be parsed is logged as a classified error and answered with
///   `{"status":"rejected"}`: retrying the same bytes cannot help, and AWS is not touched.
/// - An event `screen` settles is answered at once, before any claim.
/// - A replay (same `id` already handled) answers `{"status":"replay"}`.
/// - An event another delivery holds right now fails retryably ([`Error::Conflict`]): that
///   delivery may still fail or die, so "replay" would risk losing the event; Lambda's retry
///   finds it done (a replay) or free (its lease lapsed: the work is done then).
/// - While `handler` runs, the lease is renewed every [`HEARTBEAT`], never past `deadline` (the
///   invocation's, from the Runtime API); `None` (tests, `invoke`) renews without end.
/// - A handler error or panic fails the invocation (so EventBridge/Lambda retry and the DLQ
///   catches what never succeeds) and releases the claim so the retry does the work.
pub async fn run_event<F, Fut>(env: &Env, function: &str, raw: Value, screen: Screen, deadline: Option<SystemTime>, handler: F) -> Result<Value, Error>
where
    F: FnOnce(Incoming) -> Fut,
    Fut: Future<Output = Result<Value, Error>>,
{
    run_event_claimed_as(env, function, function, raw, screen, deadline, handler).await
}

/// [`run_event`] with the event's claim under `claims` instead of the function's name: the
/// deployer claims an event once to put it on its work queue and once more to do the work.
async fn run_event_claimed_as<F, Fut>(env: &Env, function: &str, claims: &str, raw: Value, screen: Screen, deadline: Option<SystemTime>, handler: F) -> Result<Value, Error>
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
    let lease = match &id {
        None => None,
        Some(id) => match env.state.begin_event(claims, id, lease_for(deadline)).await? {
            EventClaim::Fresh(lease) => {
                let deadline_in = deadline.map(|d| d.duration_since(SystemTime::now()).unwrap_or_default().as_secs());
                tracing::debug!(lease_seconds = lease_for(deadline).as_secs(), deadline_in_seconds = ?deadline_in, "event claimed");
                Some(lease)
            }
            EventClaim::Done => {
                tracing::info!("replayed event: already handled, nothing to do");
                return Ok(json!({"status": "replay", "id": id}));
            }
            EventClaim::InFlight => {
                let e = Error::Conflict(format!("event {id}: another delivery is handling it now; a retry finds its outcome"));
                tracing::warn!(error_kind = e.kind(), retryable = true, error = %e, "event in flight elsewhere");
                return Err(e);
            }
        },
    };
    let work = AssertUnwindSafe(handler(incoming)).catch_unwind();
    let finished = match &lease {
        Some(lease) => {
            tokio::pin!(work);
            tokio::select! {
                finished = &mut work => finished,
                never = keep_alive(&env.state, lease, deadline) => match never {},
            }
        }
        None => work.await,
    };
    let result = finished.unwrap_or_else(|_| Err(Error::Panic));
    if let Some(lease) = &lease {
        if let Err(e) = env.state.finish_event(lease, result.is_ok(), EVENT_MEMORY).await {
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

/// The lease to take or renew now: [`EVENT_LEASE`], cut to end by the invocation's deadline
/// (plus [`DEADLINE_GRACE`]). An invocation cannot outlive its deadline, so neither can its claim.
pub fn lease_for(deadline: Option<SystemTime>) -> Duration {
    match deadline {
        None => EVENT_LEASE,
        Some(deadline) => (deadline.duration_since(SystemTime::now()).unwrap_or_default() + DEADLINE_GRACE).min(EVENT_LEASE),
    }
}

/// Renew `lease` every [`HEARTBEAT`] until the deadline; runs beside the handler and ends with it.
async fn keep_alive(state: &StateStore, lease: &Lease, deadline: Option<SystemTime>) -> Infallible {
    loop {
        tokio::time::sleep(HEARTBEAT).await;
        if deadline.is_some_and(|d| d <= SystemTime::now()) {
            // Lambda stops the invocation now; the lease ends with DEADLINE_GRACE.
            return std::future::pending().await;
        }
        match state.renew(lease, lease_for(deadline)).await {
            Ok(true) => tracing::debug!("event lease renewed"),
            Ok(false) => {
                tracing::warn!("the event's lease lapsed before the work ended: another delivery may handle it too");
                return std::future::pending().await;
            }
            // The next beat tries again; the lease has EVENT_LEASE - HEARTBEAT to spare.
            Err(e) => tracing::warn!(error = %e, "could not renew the event's lease"),
        }
    }
}

/// The invocation's deadline, or `None` when it is already past as the event arrives: Lambda
/// never hands out such an event, so the clock or the emulator is wrong (`cargo lambda watch`
/// sends 600000 ms, a time in 1970), and a lease cut to it would lapse at once.
fn live_deadline(deadline: SystemTime) -> Option<SystemTime> {
    let live = deadline > SystemTime::now();
    if !live {
        tracing::debug!("the invocation's deadline is already past: leases are renewed without one");
    }
    live.then_some(deadline)
}

tokio::task_local! {
    static DEADLINE: Option<SystemTime>;
}

/// The deadline of the invocation being handled, for claims of a handler's own that must not
/// outlive it (recovery's restart claim). `None` outside an invocation or when it has none.
pub fn invocation_deadline() -> Option<SystemTime> {
    DEADLINE.try_with(|d| *d).ok().flatten()
}

/// One Lambda function: built once per container from the environment, then handed each event.
///
/// Every function has the same shape (docs/architecture.md): `screen` settles from the event alone
/// what needs no AWS, `dispatch` handles the rest, both answer with the function's own typed
/// `Outcome`, and `handle` (written once, here) serialises it around the idempotency claim.
pub trait Function: Sized + Send + Sync + 'static {
    /// The binary's name, also the idempotency namespace in the state table.
    const NAME: &'static str;
    /// Whether, given a work queue (`AUTOPILOT_QUEUE_URL`, both modes), this function puts each
    /// event's work on that queue, one message group per account and region, and does it when the
    /// queue hands it back: one work item of an account and region at a time without a reserved
    /// concurrency (issue 17, item 9), and concurrent invocations never pile onto one account's
    /// ECS buckets (docs/architecture.md, "Pacing across accounts").
    const QUEUED: bool = false;
    /// What the function answers for an event: invocation result, log line and metric source.
    type Outcome: serde::Serialize + Send;
    fn new(env: Env) -> Self;
    fn env(&self) -> &Env;
    /// See [`Screen`]; the default settles nothing.
    fn screen(_incoming: &Incoming, _config: &Config) -> Option<Self::Outcome> {
        None
    }
    /// An event `screen` did not settle, past the idempotency claim, in the place its work is
    /// done (`self` is the instance built for that account and region).
    fn dispatch(&self, incoming: Incoming) -> impl Future<Output = Result<Self::Outcome, Error>> + Send;
    /// An invocation with no deadline (tests, the `invoke` tool): see [`Function::handle_until`].
    fn handle(&self, event: Value) -> impl Future<Output = Result<Value, Error>> + Send {
        self.handle_until(event, None)
    }
    /// The invocation: [`run_event`] around `screen` and [`route`] (which finds the account and
    /// region the work belongs to, then `dispatch`es there), its claim bounded by `deadline` (the
    /// Runtime API's `Lambda-Runtime-Deadline-Ms`). A batch from the function's work queue is
    /// handled message by message ([`Function::handle_queued`]).
    fn handle_until(&self, event: Value, deadline: Option<SystemTime>) -> impl Future<Output = Result<Value, Error>> + Send {
        async move {
            if let Some(batch) = queue_batch(&event) {
                return Ok(self.handle_queued(batch, deadline).await);
            }
            let queue = if Self::QUEUED { self.env().config.queue_url.clone() } else { None };
            // Boxed: `route` holds the deepest handler future of the three functions.
            let dispatch = |incoming| async move { Box::pin(route(self, incoming, queue.as_deref())).await };
            DEADLINE.scope(deadline, run_event(self.env(), Self::NAME, event, screen_json::<Self>, deadline, dispatch)).await
        }
    }
    /// Messages from the work queue (an SQS event, batch size 1 in template.yaml): each body is
    /// an event this function put there, handled under a claim of its own. The answer is SQS's
    /// partial batch response: a message that failed, and every one after it (a FIFO group keeps
    /// its order), goes back to the queue ("Handling errors for an SQS event source in Lambda").
    fn handle_queued(&self, batch: Vec<(String, String)>, deadline: Option<SystemTime>) -> impl Future<Output = Value> + Send {
        async move {
            let claims = format!("{}-work", Self::NAME);
            let mut failures: Vec<String> = Vec::new();
            for (message_id, body) in batch {
                if !failures.is_empty() {
                    failures.push(message_id);
                    continue;
                }
                let Ok(event) = serde_json::from_str::<Value>(&body) else {
                    tracing::error!(error_kind = "InvalidEvent", message_id = %message_id, "a work-queue message that is not JSON: dropped");
                    continue;
                };
                let dispatch = |incoming| async move { Box::pin(route_queued(self, incoming)).await };
                let run = run_event_claimed_as(self.env(), Self::NAME, &claims, event, screen_json::<Self>, deadline, dispatch);
                if DEADLINE.scope(deadline, run).await.is_err() {
                    failures.push(message_id);
                }
            }
            json!({"batchItemFailures": failures.iter().map(|id| json!({"itemIdentifier": id})).collect::<Vec<_>>()})
        }
    }
}

/// The messages of an SQS event (`Records` whose `eventSource` is `aws:sqs`): (messageId, body).
fn queue_batch(event: &Value) -> Option<Vec<(String, String)>> {
    let records = event.get("Records")?.as_array()?;
    if records.is_empty() || !records.iter().all(|r| r.get("eventSource").and_then(Value::as_str) == Some("aws:sqs")) {
        return None;
    }
    Some(
        records
            .iter()
            .map(|r| {
                let field = |k: &str| r.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
                (field("messageId"), field("body"))
            })
            .collect(),
    )
}

/// Where an event's work is done (issue 16), then that work: at home, in a member account and
/// region through its role, on the work queue, or nowhere (an account not ours: ignored, said
/// why). A schedule visits every listed account and region, in parallel.
pub async fn route<F: Function>(home: &F, incoming: Incoming, queue: Option<&str>) -> Result<Value, Error> {
    let env = home.env();
    let own = env.members.own_account().await?;
    if let (Incoming::Scheduled(ev), Some(own)) = (&incoming, own.as_deref()) {
        if env.config.organization() {
            let places = schedule_places(&env.config, own, &env.region());
            return visit(home, ev, &places, own, queue).await;
        }
    }
    route_to_place(home, incoming, queue, own).await
}

/// An event from the work queue: its work is for the one place the event names (a schedule's
/// message is already one place's visit).
async fn route_queued<F: Function>(home: &F, incoming: Incoming) -> Result<Value, Error> {
    let own = home.env().members.own_account().await?;
    route_to_place(home, incoming, None, own).await
}

async fn route_to_place<F: Function>(home: &F, incoming: Incoming, queue: Option<&str>, own: Option<String>) -> Result<Value, Error> {
    let env = home.env();
    let own_region = env.region();
    match reach(&env.config, own.as_deref(), &own_region, incoming.account(), incoming.region()) {
        Reach::Ignored(why) => {
            tracing::info!(account = incoming.account().unwrap_or("-"), region = incoming.region().unwrap_or("-"), reason = %why, "event ignored: not an account this function acts in");
            Ok(json!({"status": "ignored", "reason": why}))
        }
        Reach::Home => match (queue, own) {
            (Some(queue), Some(own)) => enqueue(env, queue, &incoming, &Place::new(own, incoming.region().filter(|r| !r.is_empty()).unwrap_or(&own_region))).await,
            _ => Box::pin(home.dispatch(incoming)).await.map(|o| to_json(&o)),
        },
        Reach::Member(place) => match queue {
            Some(queue) => enqueue(env, queue, &incoming, &place).await,
            None => Box::pin(at_place(home, &place).await?.dispatch(incoming)).await.map(|o| to_json(&o)),
        },
    }
}

/// The function instance that acts in `place`, built once per container: a member role session
/// (assumed now, so that a refusal is known before any work), a scoped state table, notifications
/// naming the place. A refusal is notified once per account and hour and fails that work.
async fn at_place<F: Function>(home: &F, place: &Place) -> Result<Arc<F>, Error> {
    let env = home.env();
    if let Some(f) = env.members.instance::<F>(place) {
        return Ok(f);
    }
    let sdk = match env.members.sdk_for(place, F::NAME).await {
        Ok(sdk) => sdk,
        Err(e) => {
            tracing::error!(error_kind = e.kind(), retryable = e.retryable(), account = %place.account, region = %place.region, error = %e, "cannot act in the member account");
            notify_unreachable(env, place, &e).await;
            return Err(e);
        }
    };
    let own = env.members.own_account().await?;
    let name = if own.as_deref() == Some(place.account.as_str()) { None } else { env.members.account_name(&place.account).await };
    Ok(env.members.keep(place, F::new(env.for_place(place, sdk, name))))
}

/// One notification per account and hour when its role cannot be assumed.
async fn notify_unreachable(env: &Env, place: &Place, e: &Error) {
    let Error::Account { account, role, message, .. } = e else { return };
    let n = crate::notify::Notification::new(
        "account.unreachable",
        format!("ecs-autopilot cannot act in account {account}"),
        format!(
            "Assuming {role} failed: {message}\nNothing is done in account {account} until it can be assumed; the other accounts are not affected. \
             Deploy member/roles.yaml to the account (the roles StackSet, docs/organization.md) and check that its trust names this function's role."
        ),
    )
    .field("account", account.as_str())
    .field("region", place.region.as_str())
    .field("role", role.as_str())
    .thread(crate::notify::thread_id("account", account))
    .keywords([account.as_str(), place.region.as_str()]);
    // What the function tries, to check the trust once the roles are deployed.
    let n = if role.starts_with("arn:") { n.related([role.to_string()]).next_step(format!("aws sts assume-role --role-arn {role} --role-session-name ecs-autopilot-check")) } else { n };
    let once = std::time::Duration::from_secs(3600);
    if let Err(e) = env.notifier.publish_once(&env.state, &format!("account-unreachable/{account}"), once, &n).await {
        tracing::warn!(error = %e, "could not notify that the account is unreachable");
    }
}

/// A schedule in organization mode: the same pass in every listed account and region, in
/// parallel (each account's ECS buckets are its own). One place's failure does not stop the
/// others; the invocation fails only if a failure a retry could fix happened somewhere.
async fn visit<F: Function>(home: &F, ev: &aws_lambda_events::eventbridge::EventBridgeEvent<Value>, places: &[Place], own: &str, queue: Option<&str>) -> Result<Value, Error> {
    let env = home.env();
    let own_region = env.region();
    let own_region = own_region.as_str();
    let runs = places.iter().map(|place| async move {
        let mut here = ev.clone();
        here.account = Some(place.account.clone());
        here.region = Some(place.region.clone());
        here.id = ev.id.as_ref().map(|id| format!("{id}/{}", place.scope()));
        let incoming = Incoming::Scheduled(here);
        let result = match queue {
            Some(queue) => enqueue(env, queue, &incoming, place).await,
            None if place.account == own && place.region == own_region => Box::pin(home.dispatch(incoming)).await.map(|o| to_json(&o)),
            None => match at_place(home, place).await {
                Ok(f) => Box::pin(f.dispatch(incoming)).await.map(|o| to_json(&o)),
                Err(e) => Err(e),
            },
        };
        (place, result)
    });
    let results = futures_util::future::join_all(runs).await;
    let mut visited = Vec::new();
    let (mut failed, mut retryable, mut summary) = (0, false, Vec::new());
    for (place, result) in results {
        match result {
            Ok(outcome) => visited.push(json!({"account": place.account, "region": place.region, "outcome": outcome})),
            Err(e) => {
                failed += 1;
                retryable |= e.retryable();
                summary.push(format!("{place}: {e}"));
                visited.push(json!({"account": place.account, "region": place.region, "error": {"kind": e.kind(), "message": e.to_string()}}));
            }
        }
    }
    if retryable {
        return Err(Error::Partial { failed, total: places.len(), summary: summary.join("; "), retryable });
    }
    Ok(json!({"status": "visited", "places": visited}))
}

/// Put an event's work on the function's FIFO work queue, in the message group of its account
/// and region: SQS hands a group's messages out one at a time, and different groups in
/// parallel ("Using Lambda with Amazon SQS": FIFO queues and message groups), so concurrent
/// invocations never pile onto one account's ECS buckets. The deduplication id is the event's
/// (and place's): a retried put within SQS's five-minute window is dropped by SQS.
async fn enqueue(env: &Env, queue: &str, incoming: &Incoming, place: &Place) -> Result<Value, Error> {
    let body = incoming.to_value();
    let id = incoming.id().map(str::to_string).unwrap_or_else(|| crate::keys::digest_of(&body.to_string()));
    let group = format!("{}#{}", place.account, place.region);
    let dedup = crate::keys::digest_of(&format!("{id}|{}", place.scope()));
    if env.config.dry_run {
        tracing::info!(group = %group, "dry run: the work would be queued");
    }
    let sqs: &aws_sdk_sqs::Client = env.members.sqs();
    sqs.send_message()
        .queue_url(queue)
        .message_body(body.to_string())
        .message_group_id(&group)
        .message_deduplication_id(&dedup)
        .send()
        .await
        .map_err(|e| Error::aws("sqs", "SendMessage", e))?;
    tracing::info!(group = %group, "work queued for its account and region");
    Ok(json!({"status": "queued", "account": place.account, "region": place.region, "messageGroup": group}))
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
        crate::members::learn_own_account(&event.context.invoked_function_arn);
        let queued = queue_batch(&event.payload).is_some();
        if let Some(answer) = (!queued).then(|| answer_without_aws(F::NAME, config, &event.payload, screen_json::<F>)).flatten() {
            return Ok(answer);
        }
        let f = function.get_or_init(|| async { F::new(Env::load(config.clone()).await) }).await;
        // Boxed: the handler's future is deep, and the runtime's own layers nest it further.
        Box::pin(f.handle_until(event.payload, live_deadline(event.context.deadline()))).await
    }))
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing::level_filters::LevelFilter;

    fn env() -> Env {
        let sdk = SdkConfig::builder().behavior_version(aws_config::BehaviorVersion::latest()).build();
        Env::new(Config::default(), sdk)
    }

    fn event(id: &str) -> Value {
        json!({"version": "0", "id": id, "detail-type": "Scheduled Event", "source": "aws.events", "account": "123456789012",
               "time": "2026-11-25T12:00:00Z", "region": "us-east-1", "resources": [], "detail": {}})
    }

    fn nothing_settled(_: &Incoming, _: &Config) -> Option<Value> {
        None
    }

    /// Issue 14, item 4: a panic is caught (release profile: panic = "unwind"), fails the
    /// invocation as retryable, and gives the claim back at once for Lambda's retry.
    #[tokio::test]
    async fn a_panic_fails_retryably_and_releases_the_claim() {
        let env = env();
        let panicked = run_event(&env, "f", event("p-1"), nothing_settled, None, |_| async { panic!("boom with data") }).await;
        let e = panicked.unwrap_err();
        assert!(matches!(e, Error::Panic) && e.retryable() && !e.to_string().contains("boom"), "{e}");
        let retried = run_event(&env, "f", event("p-1"), nothing_settled, None, |_| async { Ok(json!({"status": "done-now"})) }).await;
        assert_eq!(retried.unwrap()["status"], "done-now", "the retry does the work");
        let again = run_event(&env, "f", event("p-1"), nothing_settled, None, |_| async { Ok(json!({"status": "twice"})) }).await;
        assert_eq!(again.unwrap()["status"], "replay");
    }

    /// A delivery that finds another one holding the event fails retryably instead of answering
    /// "replay": the holder may still fail or die, and the event would be lost.
    #[tokio::test]
    async fn an_event_held_elsewhere_fails_retryably_and_runs_nothing() {
        let env = env();
        let EventClaim::Fresh(_held) = env.state.begin_event("f", "h-1", EVENT_LEASE).await.unwrap() else { panic!("fresh") };
        let ran = std::sync::atomic::AtomicBool::new(false);
        let result = run_event(&env, "f", event("h-1"), nothing_settled, None, |_| async {
            ran.store(true, std::sync::atomic::Ordering::SeqCst);
            Ok(json!({}))
        })
        .await;
        let e = result.unwrap_err();
        assert!(matches!(e, Error::Conflict(_)) && e.retryable(), "{e}");
        assert!(!ran.load(std::sync::atomic::Ordering::SeqCst));
    }

    /// Issue 16: a member's clients spend their own retry budget. The SDK keys its retry token
    /// buckets by partition, `{service}-{region}` by default, process-wide: without this, one
    /// account's throttling would drain another's retries in the same region.
    #[test]
    fn member_clients_have_a_retry_partition_per_account_and_region() {
        let home = env();
        let place = |a: &str| home.for_place(&Place::new(a, "eu-west-1"), home.sdk.clone(), None);
        let (a, b) = (place("111122223333"), place("444455556666"));
        assert_eq!(crate::clients::ecs_partition(&a).as_deref(), Some("ecs-111122223333:eu-west-1"));
        assert_eq!(crate::clients::ecs_partition(&b).as_deref(), Some("ecs-444455556666:eu-west-1"));
        assert_ne!(crate::clients::ecs_partition(&home).as_deref(), Some("ecs-111122223333:eu-west-1"), "home keeps the SDK's default");
    }

    #[test]
    fn a_lease_never_outlives_the_invocation() {
        let now = SystemTime::now();
        assert_eq!(lease_for(None), EVENT_LEASE);
        assert_eq!(lease_for(Some(now + Duration::from_secs(900))), EVENT_LEASE, "a long invocation renews a short lease");
        let near = lease_for(Some(now + Duration::from_secs(5)));
        assert!(near <= Duration::from_secs(6) && near >= Duration::from_secs(5), "{near:?}");
        assert_eq!(lease_for(Some(now - Duration::from_secs(5))), DEADLINE_GRACE, "past the deadline: the grace only");
        assert!(EVENT_LEASE < Duration::from_secs(60), "lapses before Lambda's first retry, a minute after a failure");
        assert!(HEARTBEAT * 2 < EVENT_LEASE, "one lost renewal does not lose the lease");
    }

    /// Issue 14, item 5: whatever the level asked for, other crates log at INFO at most
    /// (lambda_runtime logs the raw event at TRACE, the SDK request and response bodies at
    /// DEBUG and TRACE); ours follow the level.
    #[test]
    fn other_crates_never_log_below_info() {
        use lambda_runtime::tracing::subscriber::filter::Targets;
        let enabled = |f: &Targets, target: &str, level: tracing::Level| f.would_enable(target, &level);
        for (aws, rust_log, want) in [
            (Some("TRACE"), None, LevelFilter::TRACE),
            (Some("debug"), Some("trace"), LevelFilter::DEBUG),
            (None, Some("trace"), LevelFilter::TRACE),
            (None, Some("aws_smithy_runtime=trace"), LevelFilter::INFO),
            (None, None, LevelFilter::INFO),
            (Some("WARN"), None, LevelFilter::WARN),
        ] {
            assert_eq!(log_level(aws, rust_log), want, "{aws:?} {rust_log:?}");
        }
        let f = log_filter(LevelFilter::TRACE);
        for target in ["lambda_runtime::layers::api_response", "lambda_runtime_api_client", "aws_smithy_runtime::client::orchestrator", "aws_sdk_ecs", "hyper_util::client", "h2::codec", "rustls"] {
            assert!(!enabled(&f, target, tracing::Level::DEBUG), "{target} at DEBUG");
            assert!(enabled(&f, target, tracing::Level::INFO), "{target} at INFO");
        }
        for target in ["autopilot::runtime", "autopilot_deployer::deploy", "autopilot_recovery", "autopilot_scaler::decide"] {
            assert!(enabled(&f, target, tracing::Level::TRACE), "{target}");
        }
        let quiet = log_filter(LevelFilter::WARN);
        assert!(!enabled(&quiet, "autopilot::runtime", tracing::Level::INFO) && !enabled(&quiet, "aws_sdk_ecs", tracing::Level::INFO));
    }
}
