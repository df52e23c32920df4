//! The plan's table tests: one pushed image over observed services, every rule and skip.
use super::*;

const REG: &str = "111122223333.dkr.ecr.us-east-1.amazonaws.com";
fn d(c: char) -> String {
    format!("sha256:{}", c.to_string().repeat(64))
}

fn svc(name: &str, td: &str, tags: &[(&str, &str)]) -> ObservedService {
    ObservedService {
        cluster: "arn:aws:ecs:us-east-1:111122223333:cluster/stage01".into(),
        name: name.into(),
        arn: format!("arn:aws:ecs:us-east-1:111122223333:service/stage01/{name}"),
        controller: None,
        tags: tags.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        task_definition: td.into(),
    }
}

fn td(family: &str, rev: i64, containers: &[(&str, &str)]) -> ObservedTaskDef {
    ObservedTaskDef {
        arn: format!("arn:aws:ecs:us-east-1:111122223333:task-definition/{family}:{rev}"),
        family: family.into(),
        revision: rev,
        containers: containers.iter().map(|(n, i)| ContainerImage { name: n.to_string(), image: i.to_string() }).collect(),
    }
}

fn push(tag: &str, digest: &str) -> Push {
    Push { registry: EcrRegistry::new("111122223333", "us-east-1"), repository: "auth".into(), tag: tag.into(), digest: digest.into(), pushed_at: Some(2_000), fresh: true }
}

fn world() -> Observed {
    let auth = td("auth", 1, &[("auth", &format!("{REG}/auth:v1")), ("envoy", "public.ecr.aws/envoy:v1.29")]);
    let random = td("random", 1, &[("random", &format!("{REG}/random:v1"))]);
    let mut o = Observed::default();
    o.services = vec![
        svc("auth", &auth.arn, &[("autopilot:deploy", "semver")]),
        svc("auth-canary", &auth.arn, &[("autopilot:deploy", "any"), ("autopilot:pin", "tag")]),
        svc("random", &random.arn, &[("autopilot:deploy", "any")]),
        svc("legacy", &auth.arn, &[]),
    ];
    o.task_defs.insert(auth.arn.clone(), auth);
    o.task_defs.insert(random.arn.clone(), random);
    o.running.insert(format!("{REG}/auth:v1"), RunningImage { digest: Some(d('1')), tags: vec!["v1".into()], pushed_at: Some(1_000) });
    o
}

#[test]
fn push_plans_one_revision_per_family_and_pin() {
    let p = world();
    let plan = plan_push(&push("v2", &d('2')), &p);
    assert_eq!(plan.unrelated, 1, "{plan}");
    assert!(plan.skipped.is_empty(), "{plan}");
    assert_eq!(plan.families.len(), 2, "{plan}");
    let digest = plan.families.iter().find(|f| f.claim == format!("auth@{}", d('2'))).unwrap();
    assert_eq!(digest.services.iter().map(|t| t.service.as_str()).collect::<Vec<_>>(), ["auth"]);
    assert_eq!(digest.changes, vec![ImageChange { container: "auth".into(), from: format!("{REG}/auth:v1"), to: format!("{REG}/auth@{}", d('2')) }]);
    let tag = plan.families.iter().find(|f| f.claim.ends_with("#tag=v2")).unwrap();
    assert_eq!(tag.changes[0].to, format!("{REG}/auth:v2"));
    assert_eq!(tag.services[0].service, "auth-canary");
}

#[test]
fn two_services_one_family_one_revision() {
    let mut p = world();
    p.services[1].tags.remove("autopilot:pin");
    let plan = plan_push(&push("v2", &d('2')), &p);
    assert_eq!(plan.families.len(), 1);
    assert_eq!(plan.families[0].services.len(), 2);
}

#[test]
fn skips_with_reasons() {
    let cases: Vec<(&str, Box<dyn Fn(&mut Observed)>, Push, &str)> = vec![
        ("glob mismatch", Box::new(|o| o.services.truncate(1)), push("latest", &d('2')), "tag latest does not match autopilot:deploy=\"semver\""),
        (
            "code deploy",
            Box::new(|o| {
                o.services.truncate(1);
                o.services[0].controller = Some("CODE_DEPLOY".into())
            }),
            push("v2", &d('2')),
            "deployment controller CODE_DEPLOY",
        ),
        (
            "external",
            Box::new(|o| {
                o.services.truncate(1);
                o.services[0].controller = Some("EXTERNAL".into())
            }),
            push("v2", &d('2')),
            "deployment controller EXTERNAL",
        ),
        ("same digest", Box::new(|o| o.services.truncate(1)), push("v1", &d('1')), "already runs"),
        ("older semver", Box::new(|o| o.services.truncate(1)), push("v0.9", &d('2')), "never downgrade: pushed v0.9 is older than running v1"),
        (
            "older by push time",
            Box::new(|o| {
                o.services.truncate(1);
                o.services[0].tags.insert("autopilot:deploy".into(), "any".into());
            }),
            Push { pushed_at: Some(500), ..push("main-abc", &d('2')) },
            "never downgrade: pushed image",
        ),
        ("old glob", Box::new(|o| { o.services.truncate(1); o.services[0].tags.insert("autopilot:deploy".into(), "v*".into()); }), push("v2", &d('2')), "write autopilot:deploy=\"prefix:v\" instead"),
        ("bad rule", Box::new(|o| { o.services.truncate(1); o.services[0].tags.insert("autopilot:deploy".into(), "semver:two".into()); }), push("v2", &d('2')), "semver:MAJOR"),
        ("bad pin", Box::new(|o| { o.services.truncate(1); o.services[0].tags.insert("autopilot:pin".into(), "latest".into()); }), push("v2", &d('2')), "autopilot:pin"),
        (
            "already registered and running",
            Box::new(|o| {
                o.services.truncate(1);
                let arn = o.services[0].task_definition.clone();
                o.registered.insert(format!("auth@{}", d('2')), arn);
            }),
            push("v2", &d('2')),
            "already on auth:1",
        ),
    ];
    for (name, setup, p, want) in cases {
        let mut o = world();
        setup(&mut o);
        let plan = plan_push(&p, &o);
        assert!(plan.families.is_empty(), "{name}: {plan}");
        assert_eq!(plan.skipped.len(), 1, "{name}: {plan}");
        assert!(plan.skipped[0].reason.contains(want), "{name}: {}", plan.skipped[0].reason);
        let misconfigured = ["old glob", "bad rule", "bad pin"].contains(&name);
        assert_eq!(plan.skipped[0].misconfigured, misconfigured, "{name}");
        assert_eq!(plan.skipped[0].code_deploy, name == "code deploy", "{name}: only CODE_DEPLOY is told about the migration");
        if name == "code deploy" {
            assert!(plan.skipped[0].reason.ends_with(&format!("migrate it to Amazon ECS blue/green ({CODE_DEPLOY_MIGRATION})")), "{}", plan.skipped[0].reason);
        }
        if name == "old glob" {
            assert_eq!(
                plan.skipped[0].fix.as_deref(),
                Some("aws ecs tag-resource --resource-arn arn:aws:ecs:us-east-1:111122223333:service/stage01/auth --tags 'key=autopilot:deploy,value=prefix:v'")
            );
        }
    }
}

#[test]
fn deploys_when_not_provably_older() {
    let cases = [
        ("newer semver", push("v2", &d('2'))),
        ("same tag new digest", push("v1", &d('2'))),
        ("newer push time, non-semver", Push { pushed_at: Some(5_000), ..push("v-main", &d('2')) }),
    ];
    for (name, p) in cases {
        let mut o = world();
        o.services.truncate(1);
        o.services[0].tags.insert("autopilot:deploy".into(), "any".into());
        let plan = plan_push(&p, &o);
        assert_eq!(plan.families.len(), 1, "{name}: {plan}");
    }
}

/// What each `autopilot:deploy` rule deploys over what runs (DESIGN.md: never downgrade,
/// semver order for version tags, push time otherwise).
#[test]
fn each_rule_deploys_what_it_promises() {
    // (rule, running image's tags, its push time, pushed tag, its push time, why skipped)
    let cases: &[(&str, &[&str], i64, &str, i64, Option<&str>)] = &[
        ("semver", &["v2"], 1_000, "v3", 2_000, None),
        ("semver", &["v3"], 1_000, "v3.1.0-rc.1", 2_000, Some("does not match")),
        ("semver", &["v3"], 1_000, "v2.5.0", 3_000, Some("never downgrade: pushed v2.5.0 is older than running v3")),
        ("semver", &["v3"], 1_000, "v3", 2_000, None),
        ("semver", &["v3"], 2_000, "v3.0", 1_000, Some("never downgrade: pushed image")),
        ("semver", &["latest"], 1_000, "v1.0.0", 2_000, None),
        ("semver:2", &["v2.1"], 1_000, "v3.0.0", 2_000, Some("does not match")),
        ("semver:2", &["v2.1"], 1_000, "v2.2.0", 2_000, None),
        ("semver:2.1", &["v2.1"], 1_000, "v2.1.7", 2_000, None),
        ("semver:2.1", &["v2.1"], 1_000, "v2.2.0", 2_000, Some("does not match")),
        ("prefix:release-", &["release-41"], 1_000, "release-42", 2_000, None),
        ("prefix:release-", &["release-41"], 1_000, "main", 2_000, Some("does not match")),
        ("prefix:release-", &["release-43"], 3_000, "release-42", 2_000, Some("never downgrade")),
        ("latest", &["latest"], 1_000, "latest", 2_000, None),
        ("latest", &["v1"], 1_000, "v2", 2_000, Some("does not match")),
        ("main latest", &["main"], 1_000, "latest", 2_000, None),
        ("any", &["main-1"], 1_000, "feature-x", 2_000, None),
        ("any", &["v3"], 1_000, "v3.1.0-rc.1", 2_000, None),
        ("any", &["main-1"], 2_000, "feature-x", 2_000, None),
    ];
    for (rule, running, running_at, tag, pushed_at, skipped) in cases {
        let mut o = world();
        o.services.truncate(1);
        o.services[0].tags.insert("autopilot:deploy".into(), rule.to_string());
        o.running.insert(
            format!("{REG}/auth:v1"),
            RunningImage { digest: Some(d('1')), tags: running.iter().map(|t| t.to_string()).collect(), pushed_at: Some(*running_at) },
        );
        let plan = plan_push(&Push { pushed_at: Some(*pushed_at), ..push(tag, &d('2')) }, &o);
        let what = format!("{rule:?} running {running:?}@{running_at}, push {tag}@{pushed_at}: {plan}");
        match skipped {
            None => assert_eq!(plan.families.len(), 1, "{what}"),
            Some(why) => {
                assert!(plan.families.is_empty(), "{what}");
                assert!(plan.skipped[0].reason.contains(why), "{what}");
            }
        }
    }
}

#[test]
fn reconcile_moves_only_onto_an_image_shown_to_be_newer() {
    let mut o = world();
    o.services.truncate(1);
    o.services[0].tags.insert("autopilot:deploy".into(), "any".into());
    o.running.insert(format!("{REG}/auth:v1"), RunningImage { digest: Some(d('1')), tags: vec!["main-1".into()], pushed_at: Some(2_000) });
    let tie = Push { pushed_at: Some(2_000), ..push("feature-x", &d('2')) };
    assert_eq!(plan_push(&tie, &o).families.len(), 1, "a push event at the same second deploys");
    let plan = plan_push(&Push { fresh: false, ..tie }, &o);
    assert!(plan.families.is_empty() && plan.skipped[0].reason.contains("no newer than the running one"), "{plan}");
}

#[test]
fn registered_revision_is_reused_for_services_not_on_it() {
    let mut o = world();
    o.services.truncate(1);
    o.registered.insert(format!("auth@{}", d('2')), "arn:aws:ecs:us-east-1:111122223333:task-definition/auth:9".into());
    let plan = plan_push(&push("v2", &d('2')), &o);
    assert_eq!(plan.families[0].existing.as_deref(), Some("arn:aws:ecs:us-east-1:111122223333:task-definition/auth:9"));
    assert!(plan.to_string().contains("reuse auth:9"), "{plan}");
}

#[test]
fn newest_revision_of_a_family_is_the_base() {
    let mut o = world();
    let newer = td("auth", 4, &[("auth", &format!("{REG}/auth:v1")), ("envoy", "public.ecr.aws/envoy:v1.29"), ("auth-worker", &format!("{REG}/auth:v1"))]);
    o.services[1].tags.remove("autopilot:pin");
    o.services[1].task_definition = newer.arn.clone();
    o.task_defs.insert(newer.arn.clone(), newer);
    let plan = plan_push(&push("v2", &d('2')), &o);
    assert_eq!(plan.families.len(), 1, "{plan}");
    assert_eq!(plan.families[0].base_revision, 4);
    assert_eq!(plan.families[0].changes.len(), 2, "both containers of the pushed repository change, the sidecar does not");
}

#[test]
fn running_digest_trusts_the_reference_then_records_then_ecr() {
    let tagged = ImageRef::parse(&format!("{REG}/auth:v1")).unwrap();
    let p = push("v1", &d('2'));
    assert_eq!(running_digest(&tagged, None, Some(&d('1')), &p), Some(d('1')));
    assert_eq!(running_digest(&tagged, None, Some(&d('2')), &p), None, "the push moved the tag");
    assert_eq!(running_digest(&tagged, None, Some(&d('2')), &Push { fresh: false, ..p.clone() }), Some(d('2')), "reconcile trusts ECR");
    assert_eq!(running_digest(&tagged, Some(&d('3')), Some(&d('2')), &p), Some(d('3')));
    let pinned = ImageRef::parse(&format!("{REG}/auth@{}", d('4'))).unwrap();
    assert_eq!(running_digest(&pinned, None, None, &p), Some(d('4')));
}

/// A container pulling the pushed repository through another host of the same registry (FIPS,
/// dual-stack, dual-stack FIPS: the ECR endpoints page of the AWS General Reference) runs it, and
/// keeps its host in the new image; a look-alike host is another registry.
#[test]
fn every_host_of_the_registry_deploys_and_keeps_its_host() {
    let hosts = [
        "111122223333.dkr.ecr-fips.us-east-1.amazonaws.com",
        "111122223333.dkr-ecr.us-east-1.on.aws",
        "111122223333.dkr-ecr-fips.us-east-1.on.aws",
    ];
    for host in hosts {
        let fips = td("auth", 1, &[("auth", &format!("{host}/auth:v1"))]);
        let mut o = world();
        o.services.truncate(1);
        o.services[0].task_definition = fips.arn.clone();
        o.task_defs.insert(fips.arn.clone(), fips);
        o.running.insert(format!("{host}/auth:v1"), RunningImage { digest: Some(d('1')), tags: vec!["v1".into()], pushed_at: Some(1_000) });
        let plan = plan_push(&push("v2", &d('2')), &o);
        assert_eq!(plan.families.len(), 1, "{host}: {plan}");
        assert_eq!(plan.families[0].changes[0].to, format!("{host}/auth@{}", d('2')), "{host}");
    }
    let look_alike = td("auth", 1, &[("auth", "111122223333.dkr.ecr.us-east-1.amazonaws.com.evil.example/auth:v1")]);
    let mut o = world();
    o.services.truncate(1);
    o.services[0].task_definition = look_alike.arn.clone();
    o.task_defs.insert(look_alike.arn.clone(), look_alike);
    let plan = plan_push(&push("v2", &d('2')), &o);
    assert!(plan.families.is_empty() && plan.skipped.is_empty() && plan.unrelated == 1, "{plan}");
}

// ------------------------------------------------------------------ a rollback is a verdict on a digest

const R1: &str = "arn:aws:ecs:us-east-1:111122223333:task-definition/auth:1";
const R2: &str = "arn:aws:ecs:us-east-1:111122223333:task-definition/auth:2";
const R3: &str = "arn:aws:ecs:us-east-1:111122223333:task-definition/auth:3";

fn ours(td: &str, digest: &str) -> Option<OurDeploy> {
    Some(OurDeploy { task_definition: td.into(), digest: digest.into() })
}

fn verdict(by: &str) -> Option<Verdict> {
    Some(Verdict { by: by.into(), task_definition: R2.into(), to: Some(R1.into()) })
}

/// DESIGN.md: once ECS's circuit breaker, a crash-loop rollback or a person has moved a service
/// off a revision autopilot deployed, neither a replayed push nor the reconcile pass may put that
/// digest back on that service; only a newer push can. The service runs auth:1 (v1) below, after
/// v2 (digest 2) was deployed as auth:2 and rolled back.
#[test]
fn a_rolled_back_digest_is_held_back_and_a_newer_push_is_not() {
    use autopilot::keys::{BY_CIRCUIT_BREAKER, BY_MOVED, BY_RECOVERY};
    // (case, history, known running digests, push, fresh, want: None = deploys, Some((reason, new verdict)))
    let cases: Vec<(&str, History, bool, Push, Option<(&str, bool)>)> = vec![
        ("circuit breaker's verdict, replayed push", History { verdict: verdict(BY_CIRCUIT_BREAKER), deployed: ours(R2, &d('2')), reread: None }, true, push("v2", &d('2')), Some(("circuit breaker failed or rolled back auth:2", false))),
        ("circuit breaker's verdict, reconcile", History { verdict: verdict(BY_CIRCUIT_BREAKER), ..History::default() }, true, Push { fresh: false, ..push("v2", &d('2')) }, Some(("circuit breaker", false))),
        ("recovery's verdict", History { verdict: verdict(BY_RECOVERY), ..History::default() }, true, push("v2", &d('2')), Some(("recovery rolled back a crash loop of auth:2", false))),
        ("a person moved the service off our revision", History { deployed: ours(R2, &d('2')), reread: Some(R1.into()), ..History::default() }, true, Push { fresh: false, ..push("v2", &d('2')) }, Some(("moved to auth:1 off auth:2", true))),
        ("the same, found by a replayed push", History { deployed: ours(R2, &d('2')), reread: Some(R1.into()), ..History::default() }, true, push("v2", &d('2')), Some((BY_MOVED, true))),
        ("our record names another digest", History { deployed: ours(R2, &d('3')), ..History::default() }, true, push("v2", &d('2')), None),
        ("a newer push after a verdict on v2", History { deployed: ours(R2, &d('2')), reread: Some(R1.into()), ..History::default() }, true, push("v3", &d('3')), None),
        ("no record at all", History::default(), true, push("v2", &d('2')), None),
        ("our deploy landed between discovery and the read", History { deployed: ours(R2, &d('2')), reread: Some(R2.into()), ..History::default() }, true, push("v2", &d('2')), Some(("while being observed", false))),
        ("what runs is unknown: no evidence of a move", History { deployed: ours(R2, &d('2')), reread: Some(R1.into()), ..History::default() }, false, push("v2", &d('2')), None),
    ];
    for (name, history, known, p, want) in cases {
        let mut o = world();
        o.services.truncate(1);
        o.services[0].task_definition = R1.into();
        let base = td("auth", 1, &[("auth", &format!("{REG}/auth:v1"))]);
        o.task_defs.insert(R1.into(), base);
        if !known {
            o.running.insert(format!("{REG}/auth:v1"), RunningImage { digest: None, tags: vec!["v1".into()], pushed_at: None });
        }
        o.history.insert(o.services[0].arn.clone(), history);
        let plan = plan_push(&p, &o);
        match want {
            None => assert_eq!(plan.families.len(), 1, "{name}: {plan}"),
            Some((reason, new)) => {
                assert!(plan.families.is_empty(), "{name}: {plan}");
                let skip = &plan.skipped[0];
                assert!(skip.reason.contains(reason), "{name}: {}", skip.reason);
                match &skip.held_back {
                    Some(h) => {
                        assert_eq!((h.digest.as_str(), h.new), (p.digest.as_str(), new), "{name}");
                        assert!(skip.reason.contains("only a newer push deploys"), "{name}: {}", skip.reason);
                    }
                    None => assert!(!new && reason == "while being observed", "{name}: not held back"),
                }
            }
        }
    }
}

/// A verdict only ever matters where the digest would deploy: a service that runs it (a FAILED
/// rollout without rollback stays on it) says "already runs", and an older push stays a downgrade.
#[test]
fn a_verdict_does_not_change_same_or_older() {
    let mut o = world();
    o.services.truncate(1);
    o.history.insert(o.services[0].arn.clone(), History { verdict: verdict(autopilot::keys::BY_CIRCUIT_BREAKER), ..History::default() });
    let plan = plan_push(&push("v1", &d('1')), &o);
    assert!(plan.skipped[0].reason.contains("already runs") && plan.skipped[0].held_back.is_none(), "{plan}");
    let plan = plan_push(&push("v0.9", &d('2')), &o);
    assert!(plan.skipped[0].reason.contains("never downgrade") && plan.skipped[0].held_back.is_none(), "{plan}");
}

/// "ECS Deployment State Change" events that are verdicts on the digest we deployed: a FAILED
/// rollout of our revision; a circuit-breaker rollback to any other revision (ECS rolls back to
/// the last completed deployment: https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_DeploymentCircuitBreaker.html).
#[test]
fn rollout_events_that_are_verdicts() {
    let ours = ours(R2, &d('2'));
    // (rolling back, the event's revision: the failed one, or the rollback's target, verdict)
    let cases = [
        (false, R2, true),
        (false, "auth:2", true),
        (false, R3, false),
        (true, R1, true),
        (true, R2, false),
        (true, "auth:2", false),
    ];
    for (rolling_back, current, want) in cases {
        assert_eq!(rollout_verdict(rolling_back, current, ours.as_ref()).is_some(), want, "rolling back {rolling_back}, {current}");
    }
    assert_eq!(rollout_verdict(false, R2, None), None, "not ours: no record");
    assert_eq!(rollout_verdict(true, R1, ours.as_ref()), ours);
}

#[test]
fn our_deployment_record_and_verdicts_from_the_state_table() {
    use serde_json::json;
    let deployed = json!({"taskDefinition": R2, "previous": R1, "at": 1, "digest": d('2'), "tag": "v2"});
    assert_eq!(OurDeploy::from_record(&deployed), ours(R2, &d('2')));
    let rollback = json!({"taskDefinition": R1, "previous": R2, "at": 2, "by": "recovery", "reason": "rollback"});
    assert_eq!(OurDeploy::from_record(&rollback), None, "recovery's rollback record is not a deploy of ours");
    let record = autopilot::keys::verdict_record(&d('2'), R2, autopilot::keys::BY_RECOVERY, Some(R1), 3);
    assert_eq!(Verdict::from_record(&record), verdict(autopilot::keys::BY_RECOVERY).unwrap());
}

/// Issue 15, item 2: our own deadline, plus what the strategy bakes on purpose.
#[test]
fn a_rollout_is_stuck_past_its_deadline_and_bake_times() {
    assert_eq!(bake_minutes(None, Some(5), None, None), 0, "rolling bakes nothing");
    assert_eq!(bake_minutes(Some("BLUE_GREEN"), Some(15), None, None), 15);
    assert_eq!(bake_minutes(Some("LINEAR"), Some(10), Some((25.0, 5)), None), 4 * 5 + 10);
    assert_eq!(bake_minutes(Some("LINEAR"), None, Some((30.0, 6)), None), 4 * 6, "30 % steps: 30, 60, 90, 100");
    assert_eq!(bake_minutes(Some("CANARY"), Some(10), None, Some(20)), 30);
    assert_eq!(bake_minutes(Some("LINEAR"), Some(-3), Some((0.0, 5)), None), 5, "nonsense is not negative");
    let ours = OurDeploy { task_definition: "arn:aws:ecs:us-east-1:1:task-definition/auth:2".into(), digest: "sha256:aa".into() };
    let t0 = 1_800_000_000;
    for (current, state, bake, now, want) in [
        ("auth:2", Some("IN_PROGRESS"), 0, t0 + 1801, Some(1801)),
        ("auth:2", Some("IN_PROGRESS"), 0, t0 + 1800, None),
        ("auth:2", Some("IN_PROGRESS"), 15, t0 + 1801, None),
        ("auth:2", Some("IN_PROGRESS"), 15, t0 + 1800 + 901, Some(2701)),
        ("auth:2", Some("COMPLETED"), 0, t0 + 9999, None),
        ("auth:2", Some("FAILED"), 0, t0 + 9999, None),
        ("auth:2", None, 0, t0 + 9999, None),
        ("auth:1", Some("IN_PROGRESS"), 0, t0 + 9999, None),
    ] {
        assert_eq!(stuck_for(&ours, t0, current, state, 1800, bake, now), want, "{current} {state:?} bake {bake} at +{}", now - t0);
    }
}
