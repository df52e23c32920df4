//! Property tests (proptest) over everything that reads outside input: event parsing, image
//! references, the opt-in tag parsers, the scaler's step arithmetic and the recovery classifier.
//! No AWS, no moto: pure functions only.
//!
//! Bounded for CI: 256 cases per property (proptest's default), all together a few seconds.
//! A longer fuzz run: `PROPTEST_CASES=100000 cargo test --workspace --test properties`
//! (proptest reads PROPTEST_CASES; a failure prints the minimal input and its seed).

use std::collections::{BTreeMap, BTreeSet};

use autopilot::events::{TaskContainer, TaskStateChange};
use autopilot::image::ImageRef;
use autopilot::tags::{self, Adjustment, Bounds, DeployRules, RestartPolicy, ScaleTarget, Steps};
use autopilot::Incoming;
use autopilot_recovery::classify::{all_containers, classify, target_group_arn};
use autopilot_scaler::steps::{self, Cooldowns, Decision, Input};
use proptest::prelude::*;
use proptest::test_runner::Config;
use serde_json::{Map, Number, Value};

/// proptest's defaults (256 cases, or PROPTEST_CASES), without writing regression files into
/// the repository: a failure prints its minimal input, which belongs in a table test.
fn config() -> Config {
    Config { failure_persistence: None, ..Config::default() }
}

// ------------------------------------------------------------------ JSON strategies

fn any_string() -> impl Strategy<Value = String> {
    prop_oneof![
        // Words the parsers look for, so mutations hit real branches.
        prop::sample::select(vec![
            "", "ECR Image Action", "ECS Task State Change", "ECS Deployment State Change", "ECS Service Action",
            "CloudWatch Alarm State Change", "Scheduled Event", "aws.ecr", "aws.ecs", "aws.cloudwatch", "aws.events",
            "PUSH", "SUCCESS", "STOPPED", "ALARM", "OK", "NaN", "null", "\u{0}", "\u{fffd}", "é", "2025-11-25T14:35:12.748+0000",
        ])
        .prop_map(String::from),
        ".{0,40}",
    ]
}

fn json_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| Number::from_f64(f).map_or(Value::Null, Value::Number)),
        any_string().prop_map(Value::String),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    json_leaf().prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((any_string(), inner), 0..6).prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// An event-shaped object: a known (source, detail-type) pair and an arbitrary detail.
fn event_shaped() -> impl Strategy<Value = Value> {
    let pairs = prop::sample::select(vec![
        ("aws.ecr", "ECR Image Action"),
        ("aws.ecs", "ECS Task State Change"),
        ("aws.ecs", "ECS Deployment State Change"),
        ("aws.ecs", "ECS Service Action"),
        ("aws.cloudwatch", "CloudWatch Alarm State Change"),
        ("aws.events", "Scheduled Event"),
        ("aws.scheduler", "Scheduled Event"),
    ]);
    (pairs, json_value(), json_value(), json_value()).prop_map(|((source, dt), detail, id, time)| {
        serde_json::json!({"version": "0", "id": id, "source": source, "detail-type": dt, "time": time, "detail": detail,
                           "account": "123456789012", "region": "us-east-1", "resources": []})
    })
}

fn sample_events() -> Vec<Value> {
    let dir = harness::repo_root().join("events");
    let mut files: Vec<_> = std::fs::read_dir(&dir).expect("events/").flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "json")).collect();
    files.sort();
    files.iter().map(|p| serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()).collect()
}

/// Every path (JSON pointer) into a value.
fn pointers(v: &Value, at: String, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                let p = format!("{at}/{}", k.replace('~', "~0").replace('/', "~1"));
                out.push(p.clone());
                pointers(child, p, out);
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                let p = format!("{at}/{i}");
                out.push(p.clone());
                pointers(child, p, out);
            }
        }
        _ => {}
    }
}

#[derive(Debug, Clone)]
enum Mutation {
    Delete(prop::sample::Index),
    Replace(prop::sample::Index, Value),
}

fn apply(mut event: Value, mutations: &[Mutation]) -> Value {
    for m in mutations {
        let mut paths = Vec::new();
        pointers(&event, String::new(), &mut paths);
        if paths.is_empty() {
            break;
        }
        let (index, replacement) = match m {
            Mutation::Delete(i) => (i, None),
            Mutation::Replace(i, v) => (i, Some(v.clone())),
        };
        let path = paths[index.index(paths.len())].clone();
        let (parent, last) = path.rsplit_once('/').unwrap();
        let last = last.replace("~1", "/").replace("~0", "~");
        match (event.pointer_mut(parent), replacement) {
            (Some(Value::Object(m)), None) => {
                m.remove(&last);
            }
            (Some(Value::Array(a)), None) => {
                let i: usize = last.parse().unwrap();
                a.remove(i);
            }
            (Some(Value::Object(m)), Some(v)) => {
                m.insert(last, v);
            }
            (Some(Value::Array(a)), Some(v)) => {
                let i: usize = last.parse().unwrap();
                a[i] = v;
            }
            _ => {}
        }
    }
    event
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        any::<prop::sample::Index>().prop_map(Mutation::Delete),
        (any::<prop::sample::Index>(), json_value()).prop_map(|(i, v)| Mutation::Replace(i, v)),
    ]
}

/// What a handler does first with a parsed event, short of AWS: every pure step must hold.
fn exercise(incoming: &Incoming) {
    match incoming {
        Incoming::TaskStateChange(e) => {
            let class = classify(&e.detail, None).unwrap_or_else(|| classify(&e.detail, Some(&all_containers(&e.detail))).expect("a task definition settles every stop"));
            let _ = (class.to_string(), class.label(), class.is_failure(), e.detail.service_name());
            let _ = autopilot_recovery::plan::task_id(&e.detail.task_arn);
            if let Some(td) = &e.detail.task_definition_arn {
                let _ = autopilot_recovery::plan::revision(td);
            }
            let _ = format!("{:?}", e.detail);
        }
        Incoming::AlarmStateChange(e) => {
            if let Some(rd) = e.detail.state.reason_data() {
                let dps = rd.datapoints();
                assert!(dps.iter().all(|d| d.is_finite()), "datapoints are finite: {dps:?}");
                if let Some(t) = rd.threshold {
                    let _ = steps::breach(&dps, t);
                }
            }
            if let Some(t) = e.detail.propagated_tags() {
                let _ = autopilot_scaler::parse_alarm_tags(t);
            }
            let _ = e.detail.state.timestamp.as_deref().map(autopilot_scaler::transition_id);
        }
        Incoming::EcrImageAction(e) => {
            let _ = ImageRef::parse(&e.detail.repository_name);
            if let Some(d) = &e.detail.image_digest {
                let _ = ImageRef::parse(&format!("x@{d}"));
                let _ = autopilot_deployer::plan::short_digest(d);
            }
            if let Some(t) = &e.detail.image_tag {
                let _ = autopilot_deployer::plan::semver_of(t);
            }
        }
        Incoming::DeploymentStateChange(e) => {
            let _ = e.detail.name();
            if let Some(arn) = e.resources.as_ref().and_then(|r| r.first()) {
                let _ = autopilot_deployer::rollout::parse_service_arn(arn);
            }
        }
        Incoming::HookStateChange(e) => {
            let _ = (e.detail.name(), e.detail.expires_at(), e.detail.updated_at(), autopilot_deployer::hook::awaiting_action(&e.detail));
            if let Some(arn) = &e.detail.service_deployment_arn {
                let _ = autopilot_deployer::hook::parse_service_deployment_arn(arn);
            }
        }
        Incoming::ServiceAction(e) => {
            let _ = e.detail.all_reasons();
        }
        Incoming::Scheduled(_) => {}
    }
    let _ = (incoming.id(), incoming.detail_type());
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn parse_never_panics_on_arbitrary_json(v in json_value()) {
        if let Ok(incoming) = Incoming::parse(v) {
            exercise(&incoming);
        }
    }

    #[test]
    fn parse_never_panics_on_event_shaped_json(v in event_shaped()) {
        if let Ok(incoming) = Incoming::parse(v) {
            exercise(&incoming);
        }
    }

    #[test]
    fn parse_never_panics_on_mutated_sample_events(
        which in any::<prop::sample::Index>(),
        mutations in prop::collection::vec(mutation(), 1..6),
    ) {
        let samples = sample_events();
        prop_assume!(!samples.is_empty());
        let event = apply(samples[which.index(samples.len())].clone(), &mutations);
        if let Ok(incoming) = Incoming::parse(event) {
            exercise(&incoming);
        }
    }
}

#[test]
fn every_sample_event_parses_and_exercises() {
    let samples = sample_events();
    assert!(samples.len() >= 20, "events/ has the sample events");
    for e in samples {
        // "ECR Referrer Action" and the like: AWS sends them, no function receives them.
        if e["detail-type"] == "ECR Referrer Action" {
            continue;
        }
        let incoming = Incoming::parse(e.clone()).unwrap_or_else(|err| panic!("{}: {err}", e["detail-type"]));
        exercise(&incoming);
    }
}

// ------------------------------------------------------------------ image references

fn component() -> impl Strategy<Value = String> {
    "[a-z0-9][a-z0-9._-]{0,12}"
}

/// A valid reference and the parts it was built from.
fn image_ref() -> impl Strategy<Value = (String, Option<String>, String, Option<String>, Option<String>)> {
    let registry = prop_oneof![
        Just(None),
        Just(Some("localhost".to_string())),
        ("[a-z0-9]{1,10}(\\.[a-z0-9]{1,10}){1,3}", prop::option::of(1u16..)).prop_map(|(h, p)| Some(match p {
            Some(p) => format!("{h}:{p}"),
            None => h,
        })),
        (1u16..).prop_map(|p| Some(format!("host:{p}"))),
    ];
    let tag = prop::option::of("[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}");
    let digest = prop::option::of("[0-9a-f]{64}".prop_map(|h| format!("sha256:{h}")));
    (registry, prop::collection::vec(component(), 1..4), tag, digest).prop_map(|(registry, mut parts, tag, digest)| {
        // Without a registry, a first component with a '.' would read as a registry host.
        if registry.is_none() && parts.len() > 1 {
            parts[0] = parts[0].replace('.', "-");
        }
        let repository = parts.join("/");
        let mut s = match &registry {
            Some(r) => format!("{r}/{repository}"),
            None => repository.clone(),
        };
        if let Some(t) = &tag {
            s = format!("{s}:{t}");
        }
        if let Some(d) = &digest {
            s = format!("{s}@{d}");
        }
        (s, registry, repository, tag, digest)
    })
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn image_ref_parse_never_panics(s in ".{0,300}") {
        let _ = ImageRef::parse(&s);
    }

    #[test]
    fn image_ref_parse_never_panics_on_reference_like_strings(s in "[a-zA-Z0-9:/@._-]{0,80}") {
        if let Ok(r) = ImageRef::parse(&s) {
            // Whatever parses prints back to something that parses to the same reference.
            prop_assert_eq!(ImageRef::parse(&r.to_string()), Ok(r));
        }
    }

    #[test]
    fn valid_references_parse_and_round_trip((s, registry, repository, tag, digest) in image_ref()) {
        let r = ImageRef::parse(&s).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(r.registry.as_deref(), registry.as_deref());
        prop_assert_eq!(&r.repository, &repository);
        prop_assert_eq!(r.tag.as_deref(), tag.as_deref());
        prop_assert_eq!(r.digest.as_deref(), digest.as_deref());
        prop_assert_eq!(r.to_string(), s);
        prop_assert_eq!(ImageRef::parse(&r.to_string()), Ok(r));
    }
}

// ------------------------------------------------------------------ tag parsers

fn tag_value() -> impl Strategy<Value = String> {
    prop_oneof![".{0,60}", "[0-9:+=%,. -]{0,40}", "[a-z0-9/_-]{0,40}", "on-failure(:[0-9]{0,12})?",]
}

/// Valid `autopilot:steps` values: ordered, non-overlapping intervals.
fn valid_steps() -> impl Strategy<Value = String> {
    let adjustment = prop_oneof![
        (-5000i64..=5000).prop_map(|n| format!("{n:+}")),
        (0u32..=10_000).prop_map(|p| format!("+{p}%")),
        (0u32..=10_000).prop_map(|p| format!("-{p}%")),
        (0u32..=10_000).prop_map(|p| format!("+{p}pct")),
        (0u32..=10_000).prop_map(|p| format!("-{p}pct")),
        (0u32..=5000).prop_map(|n| format!("={n}")),
    ];
    let separator = prop::sample::select(vec![",", " ", ", ", "  "]);
    (prop::collection::btree_set(-1000i32..1000, 1..6), prop::collection::vec(adjustment, 6), any::<bool>(), any::<bool>(), separator).prop_map(|(cuts, adjs, open_low, open_high, separator)| {
        let cuts: Vec<i32> = cuts.into_iter().collect();
        // Application Auto Scaling's rules (StepAdjustment): a negative lower bound needs a step
        // without a lower bound, a positive upper bound one without an upper bound.
        let open_low = open_low || cuts[0] < 0;
        let open_high = open_high || cuts[cuts.len() - 1] > 0;
        let mut items = Vec::new();
        if open_low {
            items.push(format!(":{}:{}", cuts[0], adjs[0]));
        }
        for (i, w) in cuts.windows(2).enumerate() {
            items.push(format!("{}:{}:{}", w[0], w[1], adjs[(i + 1) % adjs.len()]));
        }
        if open_high || items.is_empty() {
            items.push(format!("{}::{}", cuts[cuts.len() - 1], adjs[5]));
        }
        items.join(separator)
    })
}

/// `autopilot:deploy` values: rules and near-misses (old globs, bad keywords, separators ECS
/// accepts and refuses), joined every which way.
fn deploy_value() -> impl Strategy<Value = String> {
    let word = prop_oneof![
        prop::sample::select(vec![
            "any", "semver", "semver:2", "semver:2.4", "semver:", "semver:x", "semver:1.2.3", "prefix:release-", "prefix:", "prefix:-x",
            "latest", "v2.1.0", "main", "v*", "*", "release-*", "sha256:*", "?", "é", "a=b", "x@y", "regex:v", "+1", "%",
        ])
        .prop_map(String::from),
        "[A-Za-z0-9_.:=+@/-]{1,20}",
        ".{1,10}",
    ];
    let separator = prop::sample::select(vec![" ", "  ", "\u{a0}", "\u{3000}", ",", ", ", "\t", "\n"]);
    (prop::collection::vec((word, separator), 0..6)).prop_map(|parts| parts.into_iter().map(|(w, s)| format!("{w}{s}")).collect())
}

/// Values made only of valid rules, separated by spaces.
fn valid_rules() -> impl Strategy<Value = String> {
    let rule = prop_oneof![
        Just("any".to_string()),
        Just("semver".to_string()),
        (0u64..1000).prop_map(|m| format!("semver:{m}")),
        (0u64..1000, 0u64..1000).prop_map(|(m, n)| format!("semver:{m}.{n}")),
        "[A-Za-z0-9_][A-Za-z0-9_.-]{0,30}".prop_map(|p| format!("prefix:{p}")),
        "[A-Za-z0-9_][A-Za-z0-9_.-]{0,40}",
    ];
    prop::collection::vec(rule, 1..6).prop_map(|r| r.join(" "))
}

/// ECS's `TagValue` pattern (botocore's model), as ECS applies it: to the whole value.
fn ecs_accepts(value: &str) -> bool {
    static PATTERN: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    PATTERN.get_or_init(|| regex::Regex::new(r"^[\p{L}\p{Z}\p{N}_.:/=+\-@]*$").unwrap()).is_match(value) && value.chars().count() <= 256
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn tag_parsers_never_panic(a in tag_value(), b in tag_value(), text in ".{0,40}") {
        let _ = Steps::parse(&a);
        let _ = DeployRules::parse(&a).map(|r| (r.matches(&text), r.to_string()));
        let _ = RestartPolicy::parse(&a);
        let _ = Bounds::parse(Some(&a), Some(&b));
        let _ = Bounds::parse(None, Some(&b));
        let _ = ScaleTarget::parse(&a);
        let _ = tags::PinMode::parse(Some(&a));
        let _ = tags::parse_rollback(Some(&a));
        let _ = tags::parse_cooldown(Some(&a));
        let _ = tags::parse_asg(&a);
        let _ = Adjustment::parse(&a);
        let mut t = BTreeMap::new();
        t.insert(tags::TAG_SCALE.to_string(), a.clone());
        t.insert(tags::TAG_STEPS.to_string(), b.clone());
        t.insert(tags::TAG_COOLDOWN.to_string(), text.clone());
        let _ = autopilot_scaler::parse_alarm_tags(&t);
    }

    #[test]
    fn tag_errors_name_the_tag(a in ".{0,60}") {
        for (result, tag) in [
            (Steps::parse(&a).err(), tags::TAG_STEPS),
            (DeployRules::parse(&a).err(), tags::TAG_DEPLOY),
            (RestartPolicy::parse(&a).err(), tags::TAG_RESTART),
            (ScaleTarget::parse(&a).err(), tags::TAG_SCALE),
        ] {
            if let Some(e) = result {
                prop_assert_eq!(e.tag, tag);
                prop_assert!(e.to_string().contains(tag), "{}", e);
            }
        }
    }

    #[test]
    fn valid_steps_parse_and_adjustments_round_trip(s in valid_steps()) {
        let parsed = Steps::parse(&s).map_err(|e| TestCaseError::fail(format!("{s}: {e}")))?;
        for step in &parsed.0 {
            prop_assert_eq!(Adjustment::parse(&step.adjustment.to_string()), Some(step.adjustment));
        }
    }

    #[test]
    fn any_matches_everything_and_a_tag_only_itself(t in "[A-Za-z0-9_][A-Za-z0-9_.-]{0,40}", other in "[A-Za-z0-9_][A-Za-z0-9_.-]{0,40}") {
        prop_assert!(DeployRules::parse("any").unwrap().matches(&t));
        prop_assume!(t != "any" && t != "semver");
        let literal = DeployRules::parse(&t).unwrap();
        prop_assert!(literal.matches(&t));
        prop_assert_eq!(literal.matches(&other), other == t);
    }

    /// DESIGN.md: every value the parser accepts is one ECS accepts on a service, and what it
    /// prints (in messages users copy) is too, and reads back as the same rules.
    #[test]
    fn accepted_deploy_values_are_ones_ecs_accepts(value in deploy_value()) {
        if let Ok(rules) = DeployRules::parse(&value) {
            prop_assert!(ecs_accepts(&value), "accepted {:?}, which ECS refuses", value);
            let printed = rules.to_string();
            prop_assert!(ecs_accepts(&printed), "prints {:?}, which ECS refuses", printed);
            prop_assert_eq!(DeployRules::parse(&printed).ok(), Some(rules));
        }
    }

    #[test]
    fn valid_rule_values_parse_and_round_trip(value in valid_rules()) {
        let rules = DeployRules::parse(&value).map_err(|e| TestCaseError::fail(format!("{value}: {e}")))?;
        prop_assert!(ecs_accepts(&value), "{:?}", value);
        prop_assert_eq!(DeployRules::parse(&rules.to_string()).ok(), Some(rules));
    }

    /// A value in the old glob form is refused, and the value the message proposes instead
    /// parses and is one ECS accepts.
    #[test]
    fn old_globs_propose_a_value_ecs_accepts(items in prop::collection::vec("[a-z0-9][a-z0-9._-]{0,12}\\*?", 1..4)) {
        let value = format!("{}*", items.join(","));
        let text = DeployRules::parse(&value).unwrap_err().to_string();
        if let Some(proposed) = text.split("write autopilot:deploy=\"").nth(1).and_then(|rest| rest.split('"').next()) {
            prop_assert!(ecs_accepts(proposed), "{}", text);
            prop_assert!(DeployRules::parse(proposed).is_ok(), "{}", text);
        }
    }
}

// ------------------------------------------------------------------ scaler step arithmetic

fn adjustment() -> impl Strategy<Value = Adjustment> {
    // The range Adjustment::parse accepts (it is the only producer).
    prop_oneof![
        (-5000i64..=5000).prop_map(Adjustment::Change),
        (-10_000.0f64..=10_000.0).prop_map(Adjustment::Percent),
        any::<u32>().prop_map(Adjustment::Exact),
    ]
}

fn bounds() -> impl Strategy<Value = Bounds> {
    (0u32..=5000, 0u32..=5000).prop_map(|(a, b)| Bounds { min: a.min(b), max: a.max(b) })
}

fn cooldowns() -> impl Strategy<Value = Cooldowns> {
    let t = prop::option::of(0i64..=4_000_000_000);
    (t.clone(), 0u32..=5000, 0u64..=86_400, t, 0u64..=86_400).prop_map(|(o, added, oc, i, ic)| Cooldowns {
        last_scale_out_at: o,
        last_scale_out_added: added,
        scale_out_cooldown: oc,
        last_scale_in_at: i,
        scale_in_cooldown: ic,
    })
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn decide_never_panics_and_lands_within_bounds(
        current in 0u32..=10_000,
        bounds in bounds(),
        adjustment in adjustment(),
        cooldown in 0u64..=86_400,
        state in cooldowns(),
        now in 0i64..=4_000_000_000,
        rollout in any::<bool>(),
        protected in prop_oneof![Just(0u32), 0u32..=10_000],
    ) {
        let input = Input { current, bounds, adjustment, cooldown, state, now, rollout_in_progress: rollout, protected };
        let wanted = steps::raw_target(current, adjustment);
        match steps::decide(&input) {
            Decision::Scale { from, to, next, .. } => {
                prop_assert_eq!(from, current);
                prop_assert_ne!(to, from);
                // Above autopilot:max only when held there by tasks protected from scale-in
                // (a count above max by hand, scaled in as far as ECS would stop tasks).
                prop_assert!(bounds.min <= to && (to <= bounds.max || (to < from && to == protected)), "{} outside {:?}", to, bounds);
                if to > from {
                    prop_assert!(wanted > current as i64, "scale-out only when the step asks for more");
                    // Beyond the step only to come back inside the bounds (a count below autopilot:min).
                    prop_assert!((to as i64) <= wanted || to == bounds.min, "beyond the step");
                    prop_assert_eq!(next.last_scale_out_at, Some(now));
                } else {
                    prop_assert!(wanted < current as i64, "scale-in only when the step asks for less");
                    // Beyond the step only to come back inside the bounds (a count above
                    // autopilot:max), stopping at the tasks protected from scale-in on the way.
                    prop_assert!((to as i64) >= wanted || to == bounds.max || to == protected, "beyond the step");
                    prop_assert!(!rollout, "no scale-in during a rollout");
                    prop_assert!(to >= protected, "never below the tasks protected from scale-in");
                }
            }
            Decision::Refused { from, .. } => prop_assert_eq!(from, current),
            Decision::Nothing { .. } => {}
        }
    }

    #[test]
    fn step_selection_and_percent_rounding_never_panic(
        s in valid_steps(),
        datapoints in prop::collection::vec(-1e12f64..1e12, 0..10),
        threshold in -1e12f64..1e12,
        current in 0u32..=10_000,
        percent in -10_000.0f64..=10_000.0,
        min_magnitude in 0i64..=10,
    ) {
        let steps_ = Steps::parse(&s).unwrap();
        if let Some(b) = steps::breach(&datapoints, threshold) {
            prop_assert!(b.is_finite());
            if let Some(step) = steps::select_step(&steps_, b) {
                let lo = step.lower.unwrap_or(f64::NEG_INFINITY);
                let hi = step.upper.unwrap_or(f64::INFINITY);
                prop_assert!(lo <= b && b <= hi, "breach {} outside the chosen step [{}, {}]", b, lo, hi);
            }
        }
        let _ = steps_.bare();
        let change = steps::round_percent_change(current, percent, min_magnitude);
        prop_assert!(change.unsigned_abs() <= (current as u64 * 100) + min_magnitude as u64);
        if percent > 0.0 && current > 0 {
            prop_assert!(change >= 1);
        }
        if percent < 0.0 && current > 0 {
            prop_assert!(change <= -1);
        }
    }
}

// ------------------------------------------------------------------ recovery classifier

fn container() -> impl Strategy<Value = TaskContainer> {
    let reason = prop_oneof![
        Just(None),
        any_string().prop_map(Some),
        prop::sample::select(vec!["OutOfMemoryError: Container killed due to memory usage", "CannotPullContainerError: x", "ResourceInitializationError: unable to pull secrets"]).prop_map(|s| Some(s.to_string())),
    ];
    (any_string(), prop::option::of(any::<i64>()), reason, prop::option::of(any::<bool>())).prop_map(|(name, exit_code, reason, essential)| TaskContainer {
        name,
        exit_code,
        reason,
        essential,
        ..TaskContainer::default()
    })
}

/// A container as a stopped task's event shows it: a few names, the exit codes that matter.
fn exited_container() -> impl Strategy<Value = TaskContainer> {
    let name = prop::sample::select(vec!["app", "log-router", "xray", "app"]).prop_map(String::from);
    let exit_code = prop::option::of(prop::sample::select(vec![0i64, 1, 2, 137, 143]));
    let reason = prop::option::of(prop::sample::select(vec!["OutOfMemoryError: Container killed due to memory usage", "done"]).prop_map(String::from));
    (name, exit_code, reason).prop_map(|(name, exit_code, reason)| TaskContainer { name, exit_code, reason, ..TaskContainer::default() })
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn classify_never_panics(
        reason in prop::option::of(prop_oneof![any_string(), ".{0,200}", "Task failed ELB health checks in \\(target-group arn:aws.{0,80}".prop_map(String::from)]),
        stop_code in prop::option::of(prop_oneof![
            prop::sample::select(vec!["EssentialContainerExited", "TaskFailedToStart", "UserInitiated", "ServiceSchedulerInitiated", "SpotInterruption", "TerminationNotice", "InfrastructureHealth"]).prop_map(String::from),
            any_string(),
        ]),
        containers in prop::collection::vec(container(), 0..4),
        group in prop::option::of(any_string()),
    ) {
        let t = TaskStateChange {
            cluster_arn: "arn:aws:ecs:us-east-1:123456789012:cluster/stage01".into(),
            task_arn: "arn:aws:ecs:us-east-1:123456789012:task/stage01/abc".into(),
            stopped_reason: reason.clone(),
            stop_code,
            containers,
            group,
            last_status: "STOPPED".into(),
            ..TaskStateChange::default()
        };
        let class = classify(&t, Some(&all_containers(&t))).expect("with the task definition's essential containers, every stop has a class");
        let _ = (class.to_string(), class.label(), class.verb(), class.is_failure(), class.is_normal(), class.is_infrastructure());
        let _ = classify(&t, None);
        if let Some(r) = &reason {
            if let Some(arn) = target_group_arn(r) {
                prop_assert!(arn.contains(":targetgroup/"));
            }
        }
    }

    /// What the screen settles from the event alone (no AWS call) is what the handler would
    /// decide with the task definition, whichever of the task's containers it marks essential:
    /// the screen never settles a stop whose class depends on a sidecar (issue 14 item 6).
    #[test]
    fn the_event_alone_agrees_with_every_task_definition(
        reason in prop::option::of(prop::sample::select(vec!["Essential container in task exited", "Task stopped by user", "Scaling activity initiated by (deployment ecs-svc/1)", "", "OutOfMemoryError: x", "AZ Rebalancing", "Task failed new health checks"]).prop_map(String::from)),
        stop_code in prop::option::of(prop::sample::select(vec!["EssentialContainerExited", "TaskFailedToStart", "UserInitiated", "ServiceSchedulerInitiated", "InfrastructureHealth"]).prop_map(String::from)),
        containers in prop::collection::vec(exited_container(), 0..4),
        essential_mask in any::<u8>(),
    ) {
        let t = TaskStateChange {
            cluster_arn: "arn:aws:ecs:us-east-1:123456789012:cluster/stage01".into(),
            task_arn: "arn:aws:ecs:us-east-1:123456789012:task/stage01/abc".into(),
            stopped_reason: reason,
            stop_code,
            containers,
            last_status: "STOPPED".into(),
            ..TaskStateChange::default()
        };
        let essential: BTreeSet<String> = t.containers.iter().enumerate().filter(|(i, _)| essential_mask & (1 << i) != 0).map(|(_, c)| c.name.clone()).collect();
        if let Some(from_event) = classify(&t, None) {
            prop_assert_eq!(Some(from_event), classify(&t, Some(&essential)));
        }
    }

    #[test]
    fn recovery_plan_helpers_never_panic(s in ".{0,120}", n in any::<u32>(), now in any::<u32>(), window in 2u64..=86_400) {
        let _ = autopilot_recovery::plan::revision(&s);
        let _ = autopilot_recovery::plan::task_id(&s);
        for n in [0, 1, 2, n] {
            let token = autopilot_recovery::plan::client_token(&s, n);
            prop_assert!(token.len() <= 64 && token.bytes().all(|b| (33..=126).contains(&b)), "{}", token);
        }
        let _ = autopilot_recovery::plan::minutes(window);
        let mut t = BTreeMap::new();
        t.insert(tags::TAG_RESTART.to_string(), s.clone());
        let _ = autopilot_recovery::plan::decide_restart(&t, "task", n);
        let tally = autopilot::state::Tally { since: now as u64, count: n as u64, told: None, opener: Some(s.clone()), data: serde_json::json!({}) };
        for counted in [autopilot::state::Counted::Open(tally.clone()), autopilot::state::Counted::Closed(tally.clone())] {
            let _ = autopilot_recovery::plan::incident_step(&counted, &s, (now as u64).saturating_add(window));
        }
        let _ = autopilot_recovery::plan::closing(Some(&tally), (now as u64).saturating_add(window), window);
    }
}
