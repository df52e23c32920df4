//! Organization mode (issue 16): which account and region an event's work belongs to, and the
//! AWS configuration that acts there.
//!
//! EventBridge sets an event's `account` and `region` itself, so a member account can only ever
//! name itself ("Sending and receiving events between AWS accounts in Amazon EventBridge"); the
//! function still checks the account against `AUTOPILOT_ACCOUNTS` before it assumes anything.
//! The decisions ([`reach`], [`schedule_places`]) are pure; [`Members`] holds what they need
//! from AWS: the function's own account and, per member account, one cached role session.
//!
//! Per account, for the life of the container:
//! - one credentials provider, AssumeRole'd once and refreshed only when the session nears its
//!   end (the SDK's `AssumeRoleProvider` caches nothing itself; its client's identity cache does,
//!   per provider instance, and that cache holds at most 64 partitions in aws-smithy-runtime
//!   1.16: our own cache keeps the session whatever the SDK's does);
//! - a failure (role missing, trust refused) remembered for [`REFUSAL_MEMORY`], so that a burst
//!   of that account's events costs one STS call, not one each.
//!
//! Per (account, region): one SdkConfig (built by the caller, see `runtime`) whose clients get a
//! retry partition of their own (`aws::client`): the SDK's default partition is per service and
//! region, so one account's throttling would otherwise drain every account's retry budget.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use aws_config::SdkConfig;
use aws_credential_types::provider::{error::CredentialsError, future, ProvideCredentials};
use aws_credential_types::Credentials;
use aws_smithy_types::error::display::DisplayErrorContext;

use crate::config::{is_region, Config};
use crate::error::Error;
use crate::image::is_account_id;

/// An account and a region: where work is done.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub struct Place {
    pub account: String,
    pub region: String,
}

impl Place {
    pub fn new(account: impl Into<String>, region: impl Into<String>) -> Self {
        Place { account: account.into(), region: region.into() }
    }

    /// `ACCOUNT:REGION`: the state table's key scope and the SDK retry partitions' suffix.
    pub fn scope(&self) -> String {
        format!("{}:{}", self.account, self.region)
    }
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.account, self.region)
    }
}

/// Where an event's work goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reach {
    /// The function's own account and region, or an event that names no account: the clients
    /// and state keys of every release so far.
    Home,
    /// Another account (through its member role), or another region of the function's own.
    Member(Place),
    /// Not this function's to act on, and why (logged; the event succeeds).
    Ignored(String),
}

/// Where the work of an event from `account`/`region` goes (`own_account` unknown: the event is
/// trusted to be the function's own, as in every release before organization mode).
pub fn reach(config: &Config, own_account: Option<&str>, own_region: &str, account: Option<&str>, region: Option<&str>) -> Reach {
    let region = region.filter(|r| !r.is_empty()).unwrap_or(own_region);
    let Some(account) = account.filter(|a| !a.is_empty()) else { return Reach::Home };
    if !is_account_id(account) {
        return Reach::Ignored(format!("the event's account {:?} is not a 12-digit account id", printable(account)));
    }
    let own = own_account == Some(account);
    if !config.organization() {
        return match own_account {
            Some(mine) if !own => Reach::Ignored(format!(
                "an event of account {account}, not this function's own ({mine}): organization mode is off (AUTOPILOT_MEMBER_ROLE is unset)"
            )),
            _ => Reach::Home,
        };
    }
    if !own && !config.accounts.is_empty() && !config.accounts.iter().any(|a| a == account) {
        return Reach::Ignored(format!("account {account} is not in AUTOPILOT_ACCOUNTS: nothing is done there"));
    }
    if !is_region(region) {
        return Reach::Ignored(format!("the event's region {:?} is not a region name", printable(region)));
    }
    if own && region == own_region {
        return Reach::Home;
    }
    Reach::Member(Place::new(account, region))
}

/// The places a schedule visits: every listed account (the function's own when none is listed,
/// or when it is listed) in every listed region (the function's own when none is).
pub fn schedule_places(config: &Config, own_account: &str, own_region: &str) -> Vec<Place> {
    let regions: Vec<&str> = if config.regions.is_empty() { vec![own_region] } else { config.regions.iter().map(String::as_str).collect() };
    let mut accounts: Vec<&str> = Vec::new();
    if config.accounts.is_empty() || config.accounts.iter().any(|a| a == own_account) {
        accounts.push(own_account);
    }
    if config.organization() {
        accounts.extend(config.accounts.iter().map(String::as_str).filter(|a| *a != own_account));
    }
    let mut places = Vec::new();
    for account in accounts {
        for region in &regions {
            let place = Place::new(account, *region);
            if !places.contains(&place) {
                places.push(place);
            }
        }
    }
    places
}

fn printable(s: &str) -> String {
    s.chars().take(40).map(|c| if c.is_control() { '?' } else { c }).collect()
}

/// The partition of a region (`aws`, `aws-cn`, `aws-us-gov`): ARNs of roles there use it.
pub fn partition(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "aws-cn"
    } else if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else if region.starts_with("us-iso-") {
        "aws-iso"
    } else if region.starts_with("us-isob-") {
        "aws-iso-b"
    } else {
        "aws"
    }
}

/// How long a refused AssumeRole is remembered before STS is asked again.
pub const REFUSAL_MEMORY: Duration = Duration::from_secs(60);
/// A session is renewed when it has less than this left.
const RENEW_BEFORE: Duration = Duration::from_secs(300);
/// How long a member session lasts (the role's default maximum is one hour).
const SESSION: Duration = Duration::from_secs(3600);

static INVOKED_ACCOUNT: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// The account of the function's own ARN, as the Runtime API gives it with each invocation
/// (`Lambda-Runtime-Invoked-Function-Arn`): the function's own account, known without a call.
pub fn learn_own_account(invoked_function_arn: &str) {
    if let Some(account) = invoked_function_arn.split(':').nth(4).filter(|a| is_account_id(a)) {
        let _ = INVOKED_ACCOUNT.set(account.to_string());
    }
}

/// The function's view of the Organization: its own account, and a role session per member.
pub struct Members {
    base: SdkConfig,
    role: Option<String>,
    own: tokio::sync::OnceCell<String>,
    sessions: Mutex<HashMap<String, Arc<RoleSession>>>,
    refused: crate::cache::Expiring<Arc<Error>>,
    assume_calls: Arc<std::sync::atomic::AtomicU64>,
    /// The function instance built for each place ([`Members::instance`]): any type, since the
    /// environment that holds this is shared by all three functions' code.
    instances: Mutex<HashMap<Place, Arc<dyn std::any::Any + Send + Sync>>>,
    sqs: std::sync::OnceLock<aws_sdk_sqs::Client>,
    organizations: std::sync::OnceLock<aws_sdk_organizations::Client>,
    names: Mutex<HashMap<String, Option<String>>>,
}

impl Members {
    pub fn new(config: &Config, base: SdkConfig) -> Self {
        // aws-config's loader always sets a time source; a configuration built by hand (tests,
        // the invoke tool) may not, and the AssumeRole provider needs one to judge expiry.
        let base = match base.time_source() {
            Some(_) => base,
            None => base.to_builder().time_source(aws_types::sdk_config::SharedTimeSource::default()).build(),
        };
        Members {
            instances: Mutex::default(),
            sqs: std::sync::OnceLock::new(),
            organizations: std::sync::OnceLock::new(),
            names: Mutex::default(),
            base,
            role: config.member_role.clone(),
            own: tokio::sync::OnceCell::new(),
            sessions: Mutex::default(),
            refused: crate::cache::Expiring::new(REFUSAL_MEMORY),
            assume_calls: Arc::default(),
        }
    }

    /// The function's own account: from its invoked ARN when the Runtime API gave one, else (in
    /// organization mode, where it matters) STS GetCallerIdentity, once. `None` in
    /// single-account mode without an ARN (a test calling the handler itself).
    pub async fn own_account(&self) -> Result<Option<String>, Error> {
        if let Some(known) = self.own.get() {
            return Ok(Some(known.clone()));
        }
        if let Some(account) = INVOKED_ACCOUNT.get() {
            return Ok(Some(self.own.get_or_init(|| async { account.clone() }).await.clone()));
        }
        if self.role.is_none() {
            return Ok(None);
        }
        let sts: aws_sdk_sts::Client = aws_sdk_sts::Client::new(&self.base);
        let account = self
            .own
            .get_or_try_init(|| async {
                let me = sts.get_caller_identity().send().await.map_err(|e| Error::aws("sts", "GetCallerIdentity", e))?;
                me.account().map(str::to_string).ok_or_else(|| Error::Refused("STS GetCallerIdentity named no account".into()))
            })
            .await?;
        Ok(Some(account.clone()))
    }

    pub fn own_region(&self) -> String {
        self.base.region().map(|r| r.to_string()).unwrap_or_else(|| "us-east-1".into())
    }

    /// The role this function assumes in `account`.
    pub fn role_arn(&self, account: &str, region: &str) -> Option<String> {
        self.role.as_ref().map(|role| format!("arn:{}:iam::{account}:role/{role}", partition(region)))
    }

    /// The instance of `T` built for `place` by [`Members::keep`], if any.
    pub fn instance<T: Send + Sync + 'static>(&self, place: &Place) -> Option<Arc<T>> {
        let instances = self.instances.lock().unwrap_or_else(|p| p.into_inner());
        instances.get(place).cloned().and_then(|any| any.downcast::<T>().ok())
    }

    /// Keep `instance` as the one for `place` (the first kept wins if two events raced).
    pub fn keep<T: Send + Sync + 'static>(&self, place: &Place, instance: T) -> Arc<T> {
        let mut instances = self.instances.lock().unwrap_or_else(|p| p.into_inner());
        let kept = instances.entry(place.clone()).or_insert_with(|| Arc::new(instance) as Arc<dyn std::any::Any + Send + Sync>).clone();
        kept.downcast::<T>().unwrap_or_else(|_| unreachable!("one function type per container"))
    }

    /// The SQS client of the function's own account (its work queue).
    pub fn sqs(&self) -> &aws_sdk_sqs::Client {
        self.sqs.get_or_init(|| aws_sdk_sqs::Client::new(&self.base))
    }

    /// A member account's name in the Organization (AWS Organizations DescribeAccount), asked once
    /// per container, for notifications. Only the management account or a delegated administrator
    /// may ask; elsewhere the answer is AccessDenied, and the account is named by its id alone.
    pub async fn account_name(&self, account: &str) -> Option<String> {
        if let Some(known) = self.names.lock().unwrap_or_else(|p| p.into_inner()).get(account) {
            return known.clone();
        }
        let organizations: &aws_sdk_organizations::Client = self.organizations.get_or_init(|| aws_sdk_organizations::Client::new(&self.base));
        let name = match organizations.describe_account().account_id(account).send().await {
            Ok(out) => out.account().and_then(|a| a.name()).map(printable).filter(|n| !n.trim().is_empty()),
            Err(e) => {
                let e = Error::aws("organizations", "DescribeAccount", e);
                tracing::debug!(account, error = %e, "no account name from AWS Organizations: notifications name the account by its id");
                None
            }
        };
        self.names.lock().unwrap_or_else(|p| p.into_inner()).insert(account.to_string(), name.clone());
        name
    }

    /// How many AssumeRole calls this container made (the bench's "at most one per account").
    pub fn assume_calls(&self) -> u64 {
        self.assume_calls.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The AWS configuration that acts in `place`: the function's own credentials in its own
    /// account, else the member role's session (assumed now if this container has none yet, so
    /// that a refusal is known before any work starts).
    pub async fn sdk_for(&self, place: &Place, function: &'static str) -> Result<SdkConfig, Error> {
        let own = self.own_account().await?;
        let builder = self.base.to_builder().region(aws_types::region::Region::new(place.region.clone()));
        if own.as_deref() == Some(place.account.as_str()) {
            return Ok(builder.build());
        }
        let session = self.session(&place.account, &place.region, function).await?;
        Ok(builder.credentials_provider(aws_credential_types::provider::SharedCredentialsProvider::new(SessionHandle(session))).build())
    }

    async fn session(&self, account: &str, region: &str, function: &'static str) -> Result<Arc<RoleSession>, Error> {
        let Some(role_arn) = self.role_arn(account, region) else {
            return Err(Error::Refused(format!("account {account} is not this function's own, and AUTOPILOT_MEMBER_ROLE is unset")));
        };
        if let Some(e) = self.refused.get(account) {
            return Err(e.duplicate());
        }
        let session = {
            let mut sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
            sessions
                .entry(account.to_string())
                .or_insert_with(|| Arc::new(RoleSession { function, role_arn: role_arn.clone(), base: self.base.clone(), calls: self.assume_calls.clone(), held: Default::default() }))
                .clone()
        };
        match session.current().await {
            Ok(_) => {
                self.refused.remove(account);
                Ok(session)
            }
            Err(e) => {
                let retryable = !is_refusal(&e);
                let error = Error::Account { account: account.to_string(), role: role_arn, message: e, retryable };
                self.refused.put(account, Arc::new(error.duplicate()));
                Err(error)
            }
        }
    }
}

/// A refusal that a retry within minutes cannot fix: the role is missing or does not trust us.
fn is_refusal(message: &str) -> bool {
    ["AccessDenied", "not authorized", "NoSuchEntity", "InvalidClientTokenId", "ValidationError", "RegionDisabled"].iter().any(|m| message.contains(m))
}

/// One member account's role session: assumed on first use, renewed near its end, shared by
/// every client of that account in this container.
#[derive(Debug)]
struct RoleSession {
    function: &'static str,
    role_arn: String,
    /// The function's own configuration: STS is called with its credentials, region and endpoint.
    base: SdkConfig,
    calls: Arc<std::sync::atomic::AtomicU64>,
    held: tokio::sync::Mutex<Option<Credentials>>,
}

impl RoleSession {
    async fn current(&self) -> Result<Credentials, String> {
        let mut held = self.held.lock().await;
        if let Some(creds) = held.as_ref().filter(|c| c.expiry().is_none_or(|end| end > SystemTime::now() + RENEW_BEFORE)) {
            return Ok(creds.clone());
        }
        self.calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // The session name and tag say which function acted (CloudTrail, aws:PrincipalTag); the
        // member trust policy allows sts:TagSession for that. What the event was goes to logs.
        let provider = aws_config::sts::AssumeRoleProvider::builder(self.role_arn.clone())
            .configure(&self.base)
            .session_name(format!("ecs-autopilot-{}", self.function))
            .session_length(SESSION)
            .tags([("autopilot-function", self.function)])
            .build()
            .await;
        let creds = provider.provide_credentials().await.map_err(|e| describe(&e))?;
        tracing::info!(role = %self.role_arn, "assumed the member role");
        *held = Some(creds.clone());
        Ok(creds)
    }
}

fn describe(e: &CredentialsError) -> String {
    // The chain names the STS error code and message; credentials are never part of an error.
    DisplayErrorContext(e).to_string()
}

/// The session as the SDK's clients see it.
#[derive(Debug, Clone)]
struct SessionHandle(Arc<RoleSession>);

/// The session as the SDK sees it: renewed by the one session of the account (so by one
/// AssumeRole) whichever of its clients asks first.
impl ProvideCredentials for SessionHandle {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::new(async move { self.0.current().await.map_err(CredentialsError::provider_error) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn org(accounts: &[&str]) -> Config {
        Config { member_role: Some("ecs-autopilot/ecs-autopilot-deployer".into()), accounts: accounts.iter().map(|a| a.to_string()).collect(), ..Config::default() }
    }

    const OWN: &str = "999988887777";

    #[test]
    fn where_an_events_work_goes() {
        let single = Config::default();
        let (listed, all) = (org(&["111122223333"]), org(&[]));
        let m = |a: &str, r: &str| Reach::Member(Place::new(a, r));
        let cases: Vec<(&str, &Config, Option<&str>, Option<&str>, Option<&str>, Reach)> = vec![
            ("single, own account", &single, Some(OWN), Some(OWN), Some("us-east-1"), Reach::Home),
            ("single, no account named", &single, Some(OWN), None, None, Reach::Home),
            ("single, own account unknown (trusted as before)", &single, None, Some("111122223333"), None, Reach::Home),
            ("single, foreign account", &single, Some(OWN), Some("111122223333"), Some("us-east-1"), Reach::Ignored(String::new())),
            ("org, listed member", &listed, Some(OWN), Some("111122223333"), Some("eu-west-1"), m("111122223333", "eu-west-1")),
            ("org, unlisted member", &listed, Some(OWN), Some("444455556666"), Some("us-east-1"), Reach::Ignored(String::new())),
            ("org, no list: every member", &all, Some(OWN), Some("444455556666"), Some("us-east-1"), m("444455556666", "us-east-1")),
            ("org, own account at home", &listed, Some(OWN), Some(OWN), Some("us-east-1"), Reach::Home),
            ("org, own account elsewhere", &listed, Some(OWN), Some(OWN), Some("eu-west-1"), m(OWN, "eu-west-1")),
            ("org, event without region: the function's", &all, Some(OWN), Some("111122223333"), None, m("111122223333", "us-east-1")),
            ("org, not an account id", &all, Some(OWN), Some("1111-2222-3333"), None, Reach::Ignored(String::new())),
            ("org, not a region", &all, Some(OWN), Some("111122223333"), Some("moon-1"), Reach::Ignored(String::new())),
        ];
        for (what, config, own, account, region, want) in cases {
            let got = reach(config, own, "us-east-1", account, region);
            match (&got, &want) {
                (Reach::Ignored(why), Reach::Ignored(_)) => assert!(!why.is_empty(), "{what}: an ignored event says why"),
                _ => assert_eq!(got, want, "{what}"),
            }
        }
        let Reach::Ignored(why) = reach(&listed, Some(OWN), "us-east-1", Some("444455556666"), None) else { panic!() };
        assert!(why.contains("444455556666") && why.contains("AUTOPILOT_ACCOUNTS"), "{why}");
        let Reach::Ignored(why) = reach(&single, Some(OWN), "us-east-1", Some("444455556666"), None) else { panic!() };
        assert!(why.contains("AUTOPILOT_MEMBER_ROLE"), "{why}");
    }

    #[test]
    fn schedules_visit_every_listed_account_and_region() {
        let mut config = org(&["111122223333", "444455556666"]);
        config.regions = vec!["us-east-1".into(), "eu-west-1".into()];
        let places: Vec<String> = schedule_places(&config, OWN, "us-east-1").iter().map(Place::to_string).collect();
        assert_eq!(places, ["111122223333 us-east-1", "111122223333 eu-west-1", "444455556666 us-east-1", "444455556666 eu-west-1"], "the central account only when listed");
        config.accounts.push(OWN.into());
        assert_eq!(schedule_places(&config, OWN, "us-east-1")[0], Place::new(OWN, "us-east-1"), "listed: visited first");
        let places = schedule_places(&Config::default(), OWN, "us-east-1");
        assert_eq!(places, [Place::new(OWN, "us-east-1")], "single-account mode: home only");
        assert_eq!(schedule_places(&org(&[]), OWN, "eu-west-1"), [Place::new(OWN, "eu-west-1")]);
    }

    #[test]
    fn role_arns_follow_the_partition() {
        assert_eq!(partition("cn-north-1"), "aws-cn");
        assert_eq!(partition("us-gov-west-1"), "aws-us-gov");
        assert_eq!(partition("eu-west-1"), "aws");
    }
}
