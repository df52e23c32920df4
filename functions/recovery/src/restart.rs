//! Pure decisions for re-running a failed standalone task (`autopilot:restart`): restart
//! eligibility against the lineage's counter, the re-run's tags, clientToken and network
//! configuration, what it cannot carry over, the restart claim's states, and the keys they are
//! recorded under. Inputs are plain values (tags, what aws.rs observed, the counter, the claim);
//! standalone.rs reads them and executes the result.

use autopilot::tags::{RestartPolicy, Tags, TAG_RESTART};
use serde_json::{json, Value};

use crate::plan::task_id;

/// Tags a launcher writes on an awsvpc task so that a re-run can rebuild its network
/// configuration (ECS events and DescribeTasks do not carry security groups).
pub const TAG_SUBNETS: &str = "autopilot:subnets";
pub const TAG_SECURITY_GROUPS: &str = "autopilot:security-groups";
pub const TAG_PUBLIC_IP: &str = "autopilot:public-ip";
/// Id of the first task of a chain of re-runs: the restart counter is per lineage.
pub const TAG_LINEAGE: &str = "autopilot:lineage";

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
    let lineage = lineage_of(tags, stopped_task_id);
    Ok(if restarts >= policy.max_restarts {
        RestartDecision::LimitReached { lineage, limit: policy.max_restarts }
    } else {
        RestartDecision::Rerun { lineage, attempt: restarts + 1, limit: policy.max_restarts }
    })
}

/// The chain a stopped task belongs to: its `autopilot:lineage` tag, or itself when it is the first.
pub fn lineage_of(tags: &Tags, stopped_task_id: &str) -> String {
    tags.get(TAG_LINEAGE).filter(|l| !l.trim().is_empty()).cloned().unwrap_or_else(|| stopped_task_id.to_string())
}

/// The tags of the re-run: the stopped task's (minus the `aws:` ones ECS reserves), plus the lineage.
pub fn rerun_tags(tags: &Tags, lineage: &str) -> Tags {
    let mut out: Tags = tags.iter().filter(|(k, _)| !k.starts_with("aws:")).map(|(k, v)| (k.clone(), v.clone())).collect();
    out.insert(TAG_LINEAGE.into(), lineage.to_string());
    out
}

/// RunTask's clientToken for RunTask attempt `run_attempt` (1-based) of a stopped task: at most
/// 64 characters ("Up to 64 characters are allowed", ECS RunTask API reference).
///
/// ECS remembers a token for 24 hours and answers a repeated request with the first answer
/// ("Ensuring idempotency", ECS API reference), so the token is the same for every delivery about
/// one attempt: a retry after a lost answer starts no second task. Whether a `failures` answer
/// (nothing started) is replayed too is not documented, so an attempt that ECS answered that way
/// is followed by the next attempt, with its own token ([`claim_after`]). Attempt 1 keeps the
/// token this function has always given.
pub fn client_token(stopped_task_arn: &str, run_attempt: u32) -> String {
    let suffix = if run_attempt <= 1 { String::new() } else { format!("-{run_attempt}") };
    let room = 64 - "autopilot-".len() - suffix.len();
    let id: String = task_id(stopped_task_arn).chars().filter(|c| c.is_ascii_alphanumeric() || *c == '-').take(room.min(52)).collect();
    format!("autopilot-{id}{suffix}")
}

// ------------------------------------------------------------------ the restart claim

/// The restart claim of a stopped task (`recovery#restart` / its ARN) as a delivery finds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RestartClaim {
    /// An earlier delivery ran RunTask attempt `run_attempt - 1` and failed (ECS started nothing,
    /// or its answer never came), or died while running attempt `run_attempt` (its lease
    /// lapsed): take the claim over and run `run_attempt`.
    Retry { run_attempt: u32 },
    /// Another delivery is running attempt `run_attempt` right now (its lease is live).
    InFlight,
    /// Re-run, refused or at its limit before.
    Held { new_task: Option<String> },
}

/// The claim a delivery holds while it runs RunTask attempt `run_attempt`, until `lease_until`
/// (epoch seconds: its invocation's deadline). A delivery that dies mid-RunTask leaves it
/// behind; once the lease has lapsed the next delivery runs the same attempt with the same
/// clientToken, so ECS answers with the task it started, if it started one, instead of a second.
pub fn claim_starting(run_attempt: u32, lease_until: u64) -> Value {
    json!({"status": "starting", "runAttempt": run_attempt, "leaseUntil": lease_until})
}

/// The claim once ECS started `new_task`.
pub fn claim_started(new_task: &str, run_attempt: u32) -> Value {
    json!({"status": "started", "newTask": new_task, "runAttempt": run_attempt})
}

/// The claim after RunTask attempt `run_attempt` failed, released for the next delivery. ECS
/// answered and started nothing (`not_placed`): the next delivery runs a new attempt, with a new
/// token, so that an answer ECS may replay for the old one cannot stop it. Anything else (an
/// error, a lost answer, a failure before RunTask): the same attempt again, with the same token,
/// so that a task ECS did start is answered back instead of started twice.
pub fn claim_after(run_attempt: u32, not_placed: bool) -> Value {
    json!({"status": "retry", "runAttempt": if not_placed { run_attempt.saturating_add(1) } else { run_attempt }})
}

/// What a stored claim says, at `now` (epoch seconds), to a delivery that did not create it.
/// A "starting" claim without a lease (written before leases existed) is held, as it was then.
pub fn read_claim(data: &Value, now: u64) -> RestartClaim {
    let run_attempt = data.get("runAttempt").and_then(Value::as_u64).map_or(1, |n| n.clamp(1, u32::MAX as u64) as u32);
    match data.get("status").and_then(Value::as_str) {
        Some("retry") => RestartClaim::Retry { run_attempt },
        Some("starting") => match data.get("leaseUntil").and_then(Value::as_u64) {
            Some(until) if until <= now => RestartClaim::Retry { run_attempt },
            Some(_) => RestartClaim::InFlight,
            None => RestartClaim::Held { new_task: None },
        },
        _ => RestartClaim::Held { new_task: data.get("newTask").and_then(Value::as_str).map(str::to_string) },
    }
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

/// A stopped task as DescribeTasks shows it, as far as the re-run decisions go (what RunTask is
/// given again besides, overrides included, is `aws::Relaunch`, which no decision reads).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ObservedTask {
    pub tags: Tags,
    pub task_definition: Option<String>,
    /// ECS's `launchType` (`EC2`, `FARGATE`, `EXTERNAL`).
    pub launch_type: Option<String>,
    /// The task had an `ElasticNetworkInterface` attachment (awsvpc networking)…
    pub eni: bool,
    /// …and these are the subnets its attachments name.
    pub eni_subnets: Vec<String>,
    /// The names of the Amazon EBS volumes ECS configured for it at launch (RunTask's
    /// `volumeConfigurations`), of which DescribeTasks shows only the name, role and
    /// deleteOnTermination.
    pub ebs_volumes: Vec<String>,
}

/// The network configuration of a re-run: none for bridge and host tasks; for awsvpc ones (an ENI
/// attachment, or Fargate, which is always awsvpc) rebuilt by [`awsvpc`], or why it cannot be.
pub fn rerun_network(task: &ObservedTask) -> Result<Option<AwsVpc>, String> {
    let is_awsvpc = task.eni || task.launch_type.as_deref() == Some("FARGATE");
    if !is_awsvpc {
        return Ok(None);
    }
    awsvpc(&task.tags, &task.eni_subnets).map(Some)
}

/// What RunTask is asked for on top of what the stopped task ran with (`aws::Relaunch`).
#[derive(Debug, Clone, PartialEq)]
pub struct Rerun {
    pub task_definition: String,
    pub client_token: String,
    pub tags: Tags,
    pub network: Option<AwsVpc>,
    /// The stopped task carried ECS managed tags (`aws:ecs:…`, which only ECS sets, and only when
    /// RunTask had `enableECSManagedTags`): the re-run asks for them again, as it cannot copy them.
    pub enable_ecs_managed_tags: bool,
    /// What the stopped task ran with that RunTask cannot be given back ([`not_carried`]).
    pub not_carried: Vec<String>,
}

/// The re-run of a stopped task: the task definition it ran (DescribeTasks', else the event's),
/// the clientToken of RunTask attempt `run_attempt`, its tags with the chain's lineage. `None`
/// when neither names a task definition.
pub fn rerun(task: &ObservedTask, event_task_definition: Option<&str>, stopped_task_arn: &str, run_attempt: u32, lineage: &str, network: Option<AwsVpc>) -> Option<Rerun> {
    let task_definition = task.task_definition.as_deref().or(event_task_definition)?;
    Some(Rerun {
        task_definition: task_definition.to_string(),
        client_token: client_token(stopped_task_arn, run_attempt),
        tags: rerun_tags(&task.tags, lineage),
        network,
        enable_ecs_managed_tags: task.tags.keys().any(|k| k.starts_with("aws:ecs:")),
        not_carried: not_carried(task),
    })
}

/// What DescribeTasks shows was set for the stopped task but RunTask cannot be given back, named
/// so that the notification and the outcome say it rather than drop it silently: the Amazon EBS
/// volumes configured at launch (`volumeConfigurations`: their size, type, IOPS, snapshot and
/// encryption are not reported). What RunTask was given and DescribeTasks does not show at all
/// (placementConstraints, placementStrategy, propagateTags, a strategy's other providers) cannot
/// be named: docs/functions.md lists it.
pub fn not_carried(task: &ObservedTask) -> Vec<String> {
    task.ebs_volumes.iter().map(|v| format!("volumeConfigurations (EBS volume {v})")).collect()
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

// ------------------------------------------------------------------ keys (see lib.rs for the tables)

/// `CLUSTER/LINEAGE`: the restarts made for a chain of re-runs.
pub fn lineage_key(cluster: &str, lineage: &str) -> String {
    format!("{cluster}/{lineage}")
}

/// `CLUSTER/task`: every standalone task of a cluster is one incident scope (per class and revision).
pub fn task_scope(cluster: &str) -> String {
    format!("{cluster}/task")
}

/// `CLUSTER/FAMILY`: what a standalone task's messages call it.
pub fn task_name(cluster: &str, family: &str) -> String {
    format!("{cluster}/{family}")
}

/// The `notify` key that sends a refusal once per stopped task.
pub fn refused_key(stopped_task_arn: &str) -> String {
    format!("refused#{stopped_task_arn}")
}

/// The `notify` key that sends a lineage's restart-limit message once.
pub fn restart_limit_key(cluster: &str, lineage: &str) -> String {
    format!("restart-limit#{}", lineage_key(cluster, lineage))
}

/// The `notify` key of a dry run's restart message: one per stopped task, or for a chain that
/// used its restarts the same key as the real restart-limit message. `None` when not opted in.
pub fn dry_run_restart_key(cluster: &str, stopped_task_arn: &str, decision: &RestartDecision) -> Option<String> {
    match decision {
        RestartDecision::Rerun { .. } => Some(format!("dry-run-restart#{stopped_task_arn}")),
        RestartDecision::LimitReached { lineage, .. } => Some(restart_limit_key(cluster, lineage)),
        RestartDecision::NotOptedIn => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    fn tags(pairs: &[(&str, &str)]) -> Tags {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn rerun_network_by_how_the_task_ran() {
        let sg = [("autopilot:restart", "on-failure"), (TAG_SECURITY_GROUPS, "sg-1")];
        let task = |launch: Option<&str>, eni: bool, t: &[(&str, &str)]| ObservedTask {
            tags: tags(t),
            launch_type: launch.map(str::to_string),
            eni,
            eni_subnets: if eni { vec!["subnet-eni".into()] } else { vec![] },
            ..ObservedTask::default()
        };
        let vpc = |subnets: &[&str]| -> Result<Option<AwsVpc>, &str> { Ok(Some(AwsVpc { subnets: subnets.iter().map(|s| s.to_string()).collect(), security_groups: vec!["sg-1".into()], assign_public_ip: false })) };
        let cases: Vec<(&str, ObservedTask, Result<Option<AwsVpc>, &str>)> = vec![
            ("bridge on EC2: no network configuration", task(Some("EC2"), false, &[]), Ok(None)),
            ("no launch type, no ENI", task(None, false, &[]), Ok(None)),
            ("EXTERNAL", task(Some("EXTERNAL"), false, &[]), Ok(None)),
            ("awsvpc on EC2: the ENI's subnet", task(Some("EC2"), true, &sg), vpc(&["subnet-eni"])),
            ("awsvpc without the security-group tag", task(Some("EC2"), true, &[]), Err(TAG_SECURITY_GROUPS)),
            ("Fargate is always awsvpc, and needs a subnet", task(Some("FARGATE"), false, &sg), Err(TAG_SUBNETS)),
            ("Fargate with the subnet tag", task(Some("FARGATE"), false, &[(TAG_SECURITY_GROUPS, "sg-1"), (TAG_SUBNETS, "subnet-a")]), vpc(&["subnet-a"])),
        ];
        for (what, t, want) in cases {
            match (rerun_network(&t), want) {
                (Ok(got), Ok(want)) => assert_eq!(got, want, "{what}"),
                (Err(got), Err(needle)) => assert!(got.contains(needle), "{what}: {got}"),
                (got, want) => panic!("{what}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn rerun_keeps_what_the_task_ran() {
        let arn = "arn:aws:ecs:us-east-1:1:task/stage01/0123abcd";
        let task = ObservedTask { tags: tags(&[("team", "a"), ("aws:ecs:cluster", "x")]), task_definition: Some("td:2".into()), ..ObservedTask::default() };
        let r = rerun(&task, Some("td:1"), arn, 1, "orig", None).unwrap();
        assert_eq!(
            r,
            Rerun {
                task_definition: "td:2".into(),
                client_token: "autopilot-0123abcd".into(),
                tags: tags(&[("team", "a"), (TAG_LINEAGE, "orig")]),
                network: None,
                enable_ecs_managed_tags: true,
                not_carried: vec![],
            }
        );
        let described_without = ObservedTask { task_definition: None, ..task.clone() };
        assert_eq!(rerun(&described_without, Some("td:1"), arn, 1, "orig", None).unwrap().task_definition, "td:1", "the event's, when ECS does not say");
        assert_eq!(rerun(&described_without, None, arn, 1, "orig", None), None);
    }

    #[test]
    fn lineage_and_keys() {
        assert_eq!(lineage_of(&tags(&[]), "t1"), "t1");
        assert_eq!(lineage_of(&tags(&[(TAG_LINEAGE, " ")]), "t1"), "t1", "a blank lineage tag starts a new chain");
        assert_eq!(lineage_of(&tags(&[(TAG_LINEAGE, "orig")]), "t1"), "orig");
        assert_eq!(lineage_key("stage01", "orig"), "stage01/orig");
        assert_eq!(task_scope("stage01"), "stage01/task");
        assert_eq!(task_name("stage01", "nightly-report"), "stage01/nightly-report");
        assert_eq!(refused_key("arn:t"), "refused#arn:t");
        assert_eq!(restart_limit_key("stage01", "orig"), "restart-limit#stage01/orig");
        let rerun = RestartDecision::Rerun { lineage: "orig".into(), attempt: 1, limit: 3 };
        let limit = RestartDecision::LimitReached { lineage: "orig".into(), limit: 3 };
        assert_eq!(dry_run_restart_key("stage01", "arn:t", &rerun).as_deref(), Some("dry-run-restart#arn:t"));
        assert_eq!(dry_run_restart_key("stage01", "arn:t", &limit).as_deref(), Some("restart-limit#stage01/orig"));
        assert_eq!(dry_run_restart_key("stage01", "arn:t", &RestartDecision::NotOptedIn), None);
    }

    /// Issue 14 item 8: what the stopped task shows was set and RunTask cannot take back is named;
    /// ECS managed tags, which cannot be copied (`aws:` is reserved), are asked for again.
    #[test]
    fn what_a_rerun_cannot_carry_is_named() {
        let arn = "arn:aws:ecs:us-east-1:1:task/stage01/0123abcd";
        let plain = ObservedTask { tags: tags(&[("team", "a")]), task_definition: Some("td:2".into()), ..ObservedTask::default() };
        let r = rerun(&plain, None, arn, 1, "orig", None).unwrap();
        assert_eq!((r.enable_ecs_managed_tags, r.not_carried.as_slice()), (false, &[] as &[String]));
        let with_ebs = ObservedTask { ebs_volumes: vec!["data".into(), "scratch".into()], tags: tags(&[("aws:ecs:clusterName", "stage01")]), ..plain.clone() };
        let r = rerun(&with_ebs, None, arn, 1, "orig", None).unwrap();
        assert_eq!(r.not_carried, ["volumeConfigurations (EBS volume data)", "volumeConfigurations (EBS volume scratch)"]);
        assert!(r.enable_ecs_managed_tags);
        assert!(!r.tags.contains_key("aws:ecs:clusterName"), "aws: tags are ECS's own");
        let other_aws = ObservedTask { tags: tags(&[("aws:cloudformation:stack-name", "x")]), ..plain };
        assert!(!rerun(&other_aws, None, arn, 1, "orig", None).unwrap().enable_ecs_managed_tags, "only ECS's managed tags say enableECSManagedTags");
    }

    /// Issue 14 item 7: one token per RunTask attempt, a new attempt only after ECS answered and
    /// started nothing.
    #[test]
    fn client_tokens_and_the_restart_claim() {
        let arn = "arn:aws:ecs:us-east-1:1:task/stage01/0123456789abcdef0123456789abcdef";
        assert_eq!(client_token(arn, 1), "autopilot-0123456789abcdef0123456789abcdef", "attempt 1: the token re-runs always had");
        assert_eq!(client_token(arn, 0), client_token(arn, 1));
        assert_eq!(client_token(arn, 2), "autopilot-0123456789abcdef0123456789abcdef-2");
        let long = format!("arn:x:task/c/{}", "a".repeat(200));
        for n in [1, 2, 99, u32::MAX] {
            let t = client_token(&long, n);
            assert!(t.len() <= 64 && t.bytes().all(|b| (33..=126).contains(&b)), "{t}");
        }
        assert_ne!(client_token(&long, 2), client_token(&long, 3), "a long id still gets distinct tokens");

        let now = 1_800_000_000;
        assert_eq!(read_claim(&claim_starting(1, now + 60), now), RestartClaim::InFlight, "another delivery is running it");
        assert_eq!(read_claim(&claim_starting(2, now), now), RestartClaim::Retry { run_attempt: 2 }, "its delivery died: the same token again");
        assert_eq!(read_claim(&json!({"status": "starting", "runAttempt": 1}), now), RestartClaim::Held { new_task: None }, "a claim from before leases");
        assert_eq!(read_claim(&claim_started("arn:new", 2), now), RestartClaim::Held { new_task: Some("arn:new".into()) });
        assert_eq!(read_claim(&claim_after(1, true), now), RestartClaim::Retry { run_attempt: 2 }, "ECS started nothing: a new token");
        assert_eq!(read_claim(&claim_after(2, false), now), RestartClaim::Retry { run_attempt: 2 }, "a lost answer: the same token");
        assert_eq!(read_claim(&json!({"status": "limit"}), now), RestartClaim::Held { new_task: None });
        assert_eq!(read_claim(&json!({"status": "retry"}), now), RestartClaim::Retry { run_attempt: 1 }, "a claim without its attempt is attempt 1");
        assert_eq!(read_claim(&json!({"status": "retry", "runAttempt": 0}), now), RestartClaim::Retry { run_attempt: 1 });
        assert_eq!(read_claim(&json!("garbage"), now), RestartClaim::Held { new_task: None });
    }
}
