//! Pure decisions: the failure window of a service revision, notification debouncing, restart
//! and rollback eligibility. Inputs are plain values (state records, tags, `now`); the adapter in
//! lib.rs reads them and executes the result.

use serde_json::{json, Value};

use autopilot::tags::{RestartPolicy, Tags, TAG_RESTART};

/// Tags a launcher writes on an awsvpc task so that a re-run can rebuild its network
/// configuration (ECS events and DescribeTasks do not carry security groups).
pub const TAG_SUBNETS: &str = "autopilot:subnets";
pub const TAG_SECURITY_GROUPS: &str = "autopilot:security-groups";
pub const TAG_PUBLIC_IP: &str = "autopilot:public-ip";
/// Id of the first task of a chain of re-runs: the restart counter is per lineage.
pub const TAG_LINEAGE: &str = "autopilot:lineage";

/// A rollback only follows a deployment this recent.
pub const RECENT_DEPLOYMENT_SECS: u64 = 3600;
/// Failure records kept per revision (a burst beyond this is still a crash loop).
const MAX_FAILURES_KEPT: usize = 200;

/// `arn:aws:ecs:r:a:task-definition/random:2` or `random:2` → `random:2`.
pub fn revision(task_definition: &str) -> String {
    task_definition.rsplit_once(":task-definition/").map(|(_, r)| r).unwrap_or(task_definition).to_string()
}

/// `arn:aws:ecs:r:a:task/stage01/abc` → `abc`.
pub fn task_id(task_arn: &str) -> &str {
    task_arn.rsplit('/').next().unwrap_or(task_arn)
}

// ------------------------------------------------------------------ failure window

/// Add one failed task to a revision's window (idempotent per task) and drop what is older than
/// `window_secs`. Returns the new record and the number of failures in the window.
pub fn record_failure(previous: Option<&Value>, task: &str, now: u64, window_secs: u64) -> (Value, usize) {
    let mut entries: Vec<(String, u64)> = previous
        .and_then(|v| v.get("failures"))
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|e| Some((e.get("task")?.as_str()?.to_string(), e.get("at")?.as_u64()?))).collect())
        .unwrap_or_default();
    entries.retain(|(_, at)| at + window_secs > now);
    if !entries.iter().any(|(t, _)| t == task) {
        entries.push((task.to_string(), now));
    }
    if entries.len() > MAX_FAILURES_KEPT {
        entries.drain(..entries.len() - MAX_FAILURES_KEPT);
    }
    let count = entries.len();
    let failures: Vec<Value> = entries.into_iter().map(|(t, at)| json!({"task": t, "at": at})).collect();
    (json!({ "failures": failures }), count)
}

// ------------------------------------------------------------------ notification debouncing

/// What to send for one more task of an incident.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Emit {
    /// The first message of an incident.
    First,
    /// The incident went on after the last message's window: `tasks` more tasks (the suppressed
    /// ones and this one) since `since_secs` ago.
    Summary { tasks: u64, since_secs: u64 },
    /// Inside the window of the last message: counted, not sent.
    Suppress,
}

/// Debounce rule: one message per incident key per window. Tasks within the window are counted;
/// the first task after the window closes sends a summary of them (itself included) and opens
/// a new window; if nothing was suppressed, it is a new incident. Returns the new record.
pub fn debounce(previous: Option<&Value>, now: u64, window_secs: u64) -> (Value, Emit) {
    let sent = previous.and_then(|v| v.get("sent")).and_then(Value::as_u64);
    let suppressed = previous.and_then(|v| v.get("suppressed")).and_then(Value::as_u64).unwrap_or(0);
    match sent {
        Some(sent) if now < sent + window_secs => (json!({"sent": sent, "suppressed": suppressed + 1}), Emit::Suppress),
        Some(sent) if suppressed > 0 => (json!({"sent": now, "suppressed": 0}), Emit::Summary { tasks: suppressed + 1, since_secs: now.saturating_sub(sent) }),
        _ => (json!({"sent": now, "suppressed": 0}), Emit::First),
    }
}

pub fn minutes(secs: u64) -> u64 {
    secs.div_ceil(60).max(1)
}

// ------------------------------------------------------------------ standalone re-runs

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RestartDecision {
    /// Not opted in: leave it alone.
    NotOptedIn,
    /// Re-run as the `attempt`-th restart of `lineage` (1-based) of at most `limit`.
    Rerun { lineage: String, attempt: u32, limit: u32 },
    /// The chain used all its restarts.
    LimitReached { lineage: String, limit: u32 },
}

/// `restarts` = restarts already made for the lineage.
pub fn decide_restart(tags: &Tags, stopped_task_id: &str, restarts: u32) -> Result<RestartDecision, autopilot::tags::TagError> {
    let Some(value) = tags.get(TAG_RESTART) else { return Ok(RestartDecision::NotOptedIn) };
    let policy = RestartPolicy::parse(value)?;
    let lineage = tags.get(TAG_LINEAGE).filter(|l| !l.trim().is_empty()).cloned().unwrap_or_else(|| stopped_task_id.to_string());
    Ok(if restarts >= policy.max_restarts {
        RestartDecision::LimitReached { lineage, limit: policy.max_restarts }
    } else {
        RestartDecision::Rerun { lineage, attempt: restarts + 1, limit: policy.max_restarts }
    })
}

/// The tags of the re-run: the stopped task's (minus the `aws:` ones ECS reserves), plus the lineage.
pub fn rerun_tags(tags: &Tags, lineage: &str) -> Tags {
    let mut out: Tags = tags.iter().filter(|(k, _)| !k.starts_with("aws:")).map(|(k, v)| (k.clone(), v.clone())).collect();
    out.insert(TAG_LINEAGE.into(), lineage.to_string());
    out
}

/// RunTask's clientToken (at most 64 characters), the same for every delivery about one task.
pub fn client_token(stopped_task_arn: &str) -> String {
    let id: String = task_id(stopped_task_arn).chars().filter(|c| c.is_ascii_alphanumeric() || *c == '-').take(52).collect();
    format!("autopilot-{id}")
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsVpc {
    pub subnets: Vec<String>,
    pub security_groups: Vec<String>,
    pub assign_public_ip: bool,
}

/// Network configuration of an awsvpc re-run: subnets from `autopilot:subnets` or else the
/// stopped task's ENI attachment; security groups only from `autopilot:security-groups`
/// (nothing else records them once the ENI is gone); public IP from `autopilot:public-ip`.
/// Lists are space-separated: ECS refuses commas in tag values.
pub fn awsvpc(tags: &Tags, attachment_subnets: &[String]) -> Result<AwsVpc, String> {
    let subnets = match tags.get(TAG_SUBNETS) {
        Some(v) => id_list(TAG_SUBNETS, v, "subnet-")?,
        None => Vec::new(),
    };
    let subnets = if subnets.is_empty() { attachment_subnets.to_vec() } else { subnets };
    let security_groups = match tags.get(TAG_SECURITY_GROUPS) {
        Some(v) => id_list(TAG_SECURITY_GROUPS, v, "sg-")?,
        None => Vec::new(),
    };
    if subnets.is_empty() {
        return Err(format!("it uses awsvpc networking and neither the tag {TAG_SUBNETS} nor its network interface names a subnet"));
    }
    if security_groups.is_empty() {
        return Err(format!(
            "it uses awsvpc networking and has no {TAG_SECURITY_GROUPS} tag: ECS does not report a stopped task's security groups, so tag the task at launch with {TAG_SECURITY_GROUPS}=\"sg-1 sg-2\" (space-separated; optionally {TAG_SUBNETS}=\"subnet-1 subnet-2\" and {TAG_PUBLIC_IP}=ENABLED)"
        ));
    }
    let assign_public_ip = tags.get(TAG_PUBLIC_IP).is_some_and(|v| matches!(v.trim().to_ascii_uppercase().as_str(), "ENABLED" | "TRUE" | "ON"));
    Ok(AwsVpc { subnets, security_groups, assign_public_ip })
}

/// Space-separated resource ids (`sg-…`, `subnet-…`) of a network tag.
fn id_list(tag: &str, value: &str, prefix: &str) -> Result<Vec<String>, String> {
    let ids: Vec<String> = value.split(|c: char| c.is_whitespace()).filter(|s| !s.is_empty()).map(String::from).collect();
    let valid = |id: &String| id.strip_prefix(prefix).is_some_and(|rest| !rest.is_empty() && rest.chars().all(|c| c.is_ascii_alphanumeric()));
    match ids.iter().find(|id| !valid(id)) {
        Some(bad) => Err(format!("the tag {tag}={value:?} is not valid: expected space-separated ids like {prefix}0123abcd ({bad:?} is not one)")),
        None => Ok(ids),
    }
}

// ------------------------------------------------------------------ rollback of a crash loop

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RollbackDecision {
    RollBack { to: String },
    /// Notify only, with the reason no rollback happens.
    NotifyOnly(String),
}

pub struct RollbackInputs<'a> {
    /// Revision (family:rev) of the failing tasks.
    pub failing: &'a str,
    /// The service's current task definition (ARN or family:rev).
    pub service_task_definition: Option<&'a str>,
    pub rollback_tag: Result<bool, String>,
    /// The deployment record (keys::deployment).
    pub deployment: Option<&'a Value>,
    /// The stable record (keys::stable_revision).
    pub stable: Option<&'a Value>,
    /// CODE_DEPLOY or EXTERNAL controllers are not ours to drive.
    pub controller: Option<&'a str>,
    pub now: u64,
}

pub fn decide_rollback(i: &RollbackInputs) -> RollbackDecision {
    use RollbackDecision::NotifyOnly;
    match &i.rollback_tag {
        Ok(true) => {}
        Ok(false) => return NotifyOnly("the service is not tagged autopilot:rollback=on".into()),
        Err(e) => return NotifyOnly(format!("the autopilot:rollback tag is invalid: {e}")),
    }
    if let Some(c) = i.controller.filter(|c| *c != "ECS") {
        return NotifyOnly(format!("the service uses the {c} deployment controller"));
    }
    if i.service_task_definition.map(revision).as_deref() != Some(i.failing) {
        return NotifyOnly(format!("the service no longer runs {}", i.failing));
    }
    let td = |v: Option<&Value>| v.and_then(|v| v.get("taskDefinition")).and_then(Value::as_str).map(str::to_string);
    let deployed = td(i.deployment);
    if deployed.as_deref().map(revision).as_deref() != Some(i.failing) {
        return NotifyOnly(format!("{} was not deployed by autopilot", i.failing));
    }
    let at = i.deployment.and_then(|v| v.get("at")).and_then(Value::as_u64).unwrap_or(0);
    if i.now.saturating_sub(at) > RECENT_DEPLOYMENT_SECS {
        return NotifyOnly(format!("{} was deployed more than {} min ago", i.failing, RECENT_DEPLOYMENT_SECS / 60));
    }
    match td(i.stable) {
        None => NotifyOnly("no stable revision is recorded for the service".into()),
        Some(stable) if revision(&stable) == i.failing => NotifyOnly(format!("{} is the last stable revision itself", i.failing)),
        Some(stable) => RollbackDecision::RollBack { to: stable },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revisions_and_tokens() {
        assert_eq!(revision("arn:aws:ecs:us-east-1:1:task-definition/random:2"), "random:2");
        assert_eq!(revision("random:2"), "random:2");
        assert_eq!(task_id("arn:aws:ecs:us-east-1:1:task/stage01/abc"), "abc");
        let t = client_token("arn:aws:ecs:us-east-1:1:task/stage01/0123456789abcdef0123456789abcdef");
        assert_eq!(t, "autopilot-0123456789abcdef0123456789abcdef");
        assert!(client_token(&format!("arn:x:task/c/{}", "a".repeat(200))).len() <= 64);
    }

    #[test]
    fn failure_window_slides_and_ignores_repeats() {
        let (r, n) = record_failure(None, "t1", 1000, 600);
        assert_eq!(n, 1);
        let (r, n) = record_failure(Some(&r), "t1", 1001, 600);
        assert_eq!(n, 1, "the same task twice is one failure");
        let (r, n) = record_failure(Some(&r), "t2", 1300, 600);
        assert_eq!(n, 2);
        let (_, n) = record_failure(Some(&r), "t3", 1650, 600);
        assert_eq!(n, 2, "t1 fell out of the window");
        let mut r = None;
        for i in 0..300 {
            r = Some(record_failure(r.as_ref(), &format!("t{i}"), 5000, 600).0);
        }
        assert_eq!(record_failure(r.as_ref(), "x", 5000, 600).1, 200);
    }

    #[test]
    fn debounce_one_message_then_a_summary() {
        let (r, e) = debounce(None, 100, 600);
        assert_eq!(e, Emit::First);
        let mut r = r;
        for t in 101..112 {
            let (n, e) = debounce(Some(&r), t, 600);
            assert_eq!(e, Emit::Suppress);
            r = n;
        }
        let (r, e) = debounce(Some(&r), 700, 600);
        assert_eq!(e, Emit::Summary { tasks: 12, since_secs: 600 });
        // Quiet for a window: the next one starts a new incident.
        let (_, e) = debounce(Some(&r), 1400, 600);
        assert_eq!(e, Emit::First);
        assert_eq!(minutes(600), 10);
        assert_eq!(minutes(1), 1);
    }

    #[test]
    fn restart_decisions() {
        let tags = |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<Tags>();
        assert_eq!(decide_restart(&tags(&[]), "t", 0).unwrap(), RestartDecision::NotOptedIn);
        assert_eq!(
            decide_restart(&tags(&[("autopilot:restart", "on-failure:2")]), "t", 0).unwrap(),
            RestartDecision::Rerun { lineage: "t".into(), attempt: 1, limit: 2 }
        );
        assert_eq!(
            decide_restart(&tags(&[("autopilot:restart", "on-failure:2"), (TAG_LINEAGE, "orig")]), "t2", 2).unwrap(),
            RestartDecision::LimitReached { lineage: "orig".into(), limit: 2 }
        );
        assert_eq!(decide_restart(&tags(&[("autopilot:restart", "on-failure")]), "t", 2).unwrap(), RestartDecision::Rerun { lineage: "t".into(), attempt: 3, limit: 3 });
        assert!(decide_restart(&tags(&[("autopilot:restart", "always")]), "t", 0).is_err());
        let out = rerun_tags(&tags(&[("aws:ecs:clusterName", "x"), ("team", "a")]), "orig");
        assert_eq!(out, tags(&[("team", "a"), (TAG_LINEAGE, "orig")]));
    }

    #[test]
    fn awsvpc_needs_security_groups() {
        let tags = |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<Tags>();
        let err = awsvpc(&tags(&[]), &["subnet-1".into()]).unwrap_err();
        assert!(err.contains(TAG_SECURITY_GROUPS), "{err}");
        assert!(awsvpc(&tags(&[(TAG_SECURITY_GROUPS, "sg-1")]), &[]).unwrap_err().contains("subnet"));
        let net = awsvpc(&tags(&[(TAG_SECURITY_GROUPS, "sg-1  sg-2"), (TAG_PUBLIC_IP, "ENABLED")]), &["subnet-1".into()]).unwrap();
        assert_eq!(net, AwsVpc { subnets: vec!["subnet-1".into()], security_groups: vec!["sg-1".into(), "sg-2".into()], assign_public_ip: true });
        let net = awsvpc(&tags(&[(TAG_SECURITY_GROUPS, "sg-1"), (TAG_SUBNETS, "subnet-a subnet-b")]), &["subnet-1".into()]).unwrap();
        assert_eq!(net.subnets, vec!["subnet-a", "subnet-b"]);
        assert!(!net.assign_public_ip);
        // Commas cannot be set on an ECS task (its tag values refuse them): say what to write.
        let err = awsvpc(&tags(&[(TAG_SECURITY_GROUPS, "sg-1,sg-2")]), &["subnet-1".into()]).unwrap_err();
        assert!(err.contains("space-separated ids like sg-") && err.contains("\"sg-1,sg-2\""), "{err}");
        let err = awsvpc(&tags(&[(TAG_SECURITY_GROUPS, "sg-1"), (TAG_SUBNETS, "subnet-a,subnet-b")]), &["subnet-1".into()]).unwrap_err();
        assert!(err.contains(TAG_SUBNETS), "{err}");
        // The message a user copies from is itself one ECS accepts.
        let err = awsvpc(&tags(&[]), &["subnet-1".into()]).unwrap_err();
        assert!(err.contains("autopilot:security-groups=\"sg-1 sg-2\""), "{err}");
    }

    #[test]
    fn rollback_only_for_a_recent_autopilot_deployment_with_the_tag() {
        let deployed = json!({"taskDefinition": "arn:aws:ecs:us-east-1:1:task-definition/random:2", "at": 10_000});
        let stable = json!({"taskDefinition": "arn:aws:ecs:us-east-1:1:task-definition/random:1", "at": 5_000});
        let base = || RollbackInputs {
            failing: "random:2",
            service_task_definition: Some("random:2"),
            rollback_tag: Ok(true),
            deployment: Some(&deployed),
            stable: Some(&stable),
            controller: Some("ECS"),
            now: 10_600,
        };
        assert_eq!(decide_rollback(&base()), RollbackDecision::RollBack { to: "arn:aws:ecs:us-east-1:1:task-definition/random:1".into() });
        let not = |i: RollbackInputs| match decide_rollback(&i) {
            RollbackDecision::NotifyOnly(why) => why,
            other => panic!("expected no rollback, got {other:?}"),
        };
        assert!(not(RollbackInputs { rollback_tag: Ok(false), ..base() }).contains("autopilot:rollback=on"));
        assert!(not(RollbackInputs { rollback_tag: Err("bad".into()), ..base() }).contains("invalid"));
        assert!(not(RollbackInputs { controller: Some("CODE_DEPLOY"), ..base() }).contains("CODE_DEPLOY"));
        assert!(not(RollbackInputs { service_task_definition: Some("random:1"), ..base() }).contains("no longer runs"));
        assert!(not(RollbackInputs { now: 10_000 + 3601, ..base() }).contains("more than 60 min"));
        assert!(not(RollbackInputs { deployment: None, ..base() }).contains("not deployed"));
        assert!(not(RollbackInputs { stable: None, ..base() }).contains("no stable"));
        let same = json!({"taskDefinition": "random:2"});
        assert!(not(RollbackInputs { stable: Some(&same), ..base() }).contains("stable revision itself"));
    }
}
