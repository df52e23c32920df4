"""Every sample event in events/ reaches exactly the EventBridge rules meant for it.

The patterns come from template.yaml itself and are matched with moto's EventBridge matcher.
EXPECTED is the single source of truth of which rule an event must reach: an event file without
an entry here fails, and so does an entry whose file is gone.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any

import pytest
from moto.events.models import EventPattern

from template_support import event_files, resolve

DEPLOYER_PUSH = "DeployerImagePushRule"
DEPLOYER_DEPLOYMENT = "DeployerDeploymentStateRule"
RECOVERY_STOPPED = "RecoveryTaskStoppedRule"
SCALER_ALARM = "ScalerAlarmStateRule"
SCALER_PLACEMENT = "ScalerPlacementFailureRule"

# events/ file -> the pattern rules (logical ids) it must match; every other rule must not match.
EXPECTED: dict[str, set[str]] = {
    # ECR: successful pushes only, tagged or not (the deployer skips untagged pushes itself)
    "ecr-push-tagged.json": {DEPLOYER_PUSH},
    "ecr-push-untagged.json": {DEPLOYER_PUSH},
    "ecr-push-random-latest.json": {DEPLOYER_PUSH},
    "ecr-push-failed.json": set(),
    "ecr-delete.json": set(),
    # Artifacts arrive as ordinary successful pushes: the deployer screens them (DESIGN.md)
    "ecr-push-cosign-signature.json": {DEPLOYER_PUSH},
    "ecr-push-sbom-artifact.json": {DEPLOYER_PUSH},
    # AWS's documented storage-class samples: not pushes
    "ecr-image-archive.json": set(),
    "ecr-referrer-restore.json": set(),
    # ECS task state change: every STOPPED task, whatever the cause; never a RUNNING one
    "ecs-task-stopped-crash.json": {RECOVERY_STOPPED},
    "ecs-task-stopped-oom.json": {RECOVERY_STOPPED},
    "ecs-task-stopped-elb-health.json": {RECOVERY_STOPPED},
    "ecs-task-stopped-container-health.json": {RECOVERY_STOPPED},
    "ecs-task-stopped-image-pull.json": {RECOVERY_STOPPED},
    "ecs-task-stopped-spot.json": {RECOVERY_STOPPED},
    "ecs-task-stopped-user.json": {RECOVERY_STOPPED},
    "ecs-task-stopped-scale-in.json": {RECOVERY_STOPPED},
    "ecs-task-stopped-deployment-replaced.json": {RECOVERY_STOPPED},
    "ecs-task-stopped-exit0.json": {RECOVERY_STOPPED},
    "ecs-task-stopped-instance-gone.json": {RECOVERY_STOPPED},
    "ecs-task-running.json": set(),
    # ECS deployment state change: all of them go to the deployer
    "ecs-deployment-in-progress.json": {DEPLOYER_DEPLOYMENT},
    "ecs-deployment-completed.json": {DEPLOYER_DEPLOYMENT},
    "ecs-deployment-failed.json": {DEPLOYER_DEPLOYMENT},
    "ecs-deployment-rollback.json": {DEPLOYER_DEPLOYMENT},
    # ECS service action: placement failures only
    "ecs-service-action-placement-failure.json": {SCALER_PLACEMENT},
    "ecs-service-action-placement-failure-capacity-provider.json": {SCALER_PLACEMENT},
    "ecs-service-action-steady-state.json": set(),
    # CloudWatch alarm state change: every transition (the scaler filters by the alarm's tags)
    "cloudwatch-alarm-ok-to-alarm.json": {SCALER_ALARM},
    "cloudwatch-alarm-alarm-to-ok.json": {SCALER_ALARM},
    "cloudwatch-alarm-metric-math.json": {SCALER_ALARM},
    "cloudwatch-alarm-composite.json": {SCALER_ALARM},
    "cloudwatch-alarm-insufficient-data.json": {SCALER_ALARM},
    # Scheduled events reach their function through a schedule rule, never through a pattern
    "schedule-reconcile.json": set(),
    "schedule-reevaluate.json": set(),
}

# Scheduled events -> (schedule rule logical id, word its name must contain, target function)
SCHEDULES: dict[str, tuple[str, str, str]] = {
    "schedule-reconcile.json": ("DeployerReconcileRule", "reconcile", "DeployerFunction"),
    "schedule-reevaluate.json": ("ScalerReevaluateRule", "reevaluate", "ScalerFunction"),
}

# Every rule of the template -> the function it must target
RULE_TARGETS: dict[str, str] = {
    DEPLOYER_PUSH: "DeployerFunction",
    DEPLOYER_DEPLOYMENT: "DeployerFunction",
    "DeployerReconcileRule": "DeployerFunction",
    RECOVERY_STOPPED: "RecoveryFunction",
    SCALER_ALARM: "ScalerFunction",
    SCALER_PLACEMENT: "ScalerFunction",
    "ScalerReevaluateRule": "ScalerFunction",
}

ENVELOPE_KEYS = ["version", "id", "detail-type", "source", "account", "time", "region", "resources", "detail"]
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def pattern_rules(rules: dict[str, dict[str, Any]], template: dict[str, Any], stack_name: str) -> dict[str, EventPattern]:
    out = {}
    for rid, rule in rules.items():
        pattern = rule["Properties"].get("EventPattern")
        if pattern is None:
            continue
        resolved = resolve(pattern, template, stack_name)
        if isinstance(resolved, str):  # EventPattern may also be given as a JSON string
            resolved = json.loads(resolved)
        out[rid] = EventPattern.load(json.dumps(resolved))
    return out


def matching_rules(event: dict[str, Any], patterns: dict[str, EventPattern]) -> set[str]:
    return {rid for rid, pattern in patterns.items() if pattern.matches_event(event)}


# ------------------------------------------------------------------ the table itself


def test_every_event_file_has_an_expectation_and_every_expectation_a_file() -> None:
    names = {f.name for f in event_files()}
    missing = sorted(names - EXPECTED.keys())
    stale = sorted(EXPECTED.keys() - names)
    assert not missing, f"events/ files without an entry in EXPECTED: {missing}"
    assert not stale, f"EXPECTED entries without a file in events/: {stale}"


def test_expectations_name_pattern_rules_of_the_template(rules, template, stack_name) -> None:
    patterns = pattern_rules(rules, template, stack_name)
    named = set().union(*EXPECTED.values())
    assert named <= patterns.keys(), f"EXPECTED names rules that are not pattern rules: {sorted(named - patterns.keys())}"
    unexercised = sorted(patterns.keys() - named)
    assert not unexercised, f"pattern rules no sample event reaches: {unexercised}"


# ------------------------------------------------------------------ matching


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_event_matches_exactly_its_rules(name, events, rules, template, stack_name) -> None:
    if name not in events:
        pytest.fail(f"events/{name} is missing")
    patterns = pattern_rules(rules, template, stack_name)
    got = matching_rules(events[name], patterns)
    assert got == EXPECTED[name], f"{name}: matched {sorted(got)}, expected {sorted(EXPECTED[name])}"


def test_matcher_is_not_vacuous(rules, template, stack_name, events) -> None:
    """Guards the test itself: a pattern that matched everything (or nothing) would make the
    table above meaningless."""
    patterns = pattern_rules(rules, template, stack_name)
    for rid, pattern in patterns.items():
        assert not pattern.matches_event({"source": "example.unrelated", "detail-type": "Nothing", "detail": {}}), rid
    crash = events["ecs-task-stopped-crash.json"]
    running = json.loads(json.dumps(crash))
    running["detail"]["lastStatus"] = "RUNNING"
    assert patterns[RECOVERY_STOPPED].matches_event(crash)
    assert not patterns[RECOVERY_STOPPED].matches_event(running)


# ------------------------------------------------------------------ the events are well-formed


@pytest.mark.parametrize("path", event_files(), ids=lambda p: p.name)
def test_event_has_a_full_envelope(path) -> None:
    event = json.loads(path.read_text(encoding="utf-8"))
    assert list(event.keys()) == ENVELOPE_KEYS, f"{path.name}: envelope keys {list(event.keys())}"
    assert event["version"] == "0"
    assert UUID_RE.match(event["id"]), event["id"]
    assert event["account"] == "123456789012"
    assert event["region"] == "us-east-1"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", event["time"]), event["time"]
    datetime.fromisoformat(event["time"].replace("Z", "+00:00"))
    assert isinstance(event["resources"], list)
    assert all(isinstance(r, str) and r.startswith("arn:aws:") for r in event["resources"])
    assert isinstance(event["detail"], dict)
    prefix = {"aws.ecr": "ecr-", "aws.ecs": "ecs-", "aws.cloudwatch": "cloudwatch-", "aws.events": "schedule-"}
    assert path.name.startswith(prefix[event["source"]]), f"{path.name}: file names start with their source"


def test_event_ids_are_unique(events) -> None:
    ids = [e["id"] for e in events.values()]
    assert len(ids) == len(set(ids))


def test_task_events_never_carry_tags_and_hide_a_secret_for_leak_tests(events) -> None:
    """Task state change events carry no tags (the functions must read them), and the standalone
    task events carry a secret-looking environment override that must never reach a log line or
    a notification."""
    secrets = set()
    for name, event in events.items():
        if event["detail-type"] != "ECS Task State Change":
            continue
        assert "tags" not in event["detail"], name
        for override in event["detail"].get("overrides", {}).get("containerOverrides", []):
            for env in override.get("environment", []):
                if "PASSWORD" in env["name"]:
                    secrets.add(env["value"])
    assert secrets == {"canary-7f3a9c1e-env-secret-do-not-log"}


# ------------------------------------------------------------------ rules and their targets


def test_every_rule_has_an_expected_target(rules) -> None:
    assert set(rules) == set(RULE_TARGETS), (
        f"rules without an entry in RULE_TARGETS: {sorted(set(rules) - set(RULE_TARGETS))}; "
        f"entries without a rule: {sorted(set(RULE_TARGETS) - set(rules))}"
    )


@pytest.mark.parametrize("rule_id", sorted(RULE_TARGETS))
def test_rule_targets_its_function_with_retries_and_a_dead_letter_queue(rule_id, rules, functions, template) -> None:
    rule = rules[rule_id]["Properties"]
    function_id = RULE_TARGETS[rule_id]
    assert rule.get("State", "ENABLED") == "ENABLED"
    assert ("EventPattern" in rule) != ("ScheduleExpression" in rule), f"{rule_id}: a pattern or a schedule, not both"
    targets = rule.get("Targets", [])
    assert len(targets) == 1, f"{rule_id}: expected one target, got {len(targets)}"
    target = targets[0]
    assert target["Arn"] == {"Fn::GetAtt": [function_id, "Arn"]}, f"{rule_id} targets {target['Arn']}"

    retry = target.get("RetryPolicy")
    assert retry, f"{rule_id}: no RetryPolicy"
    assert 0 < retry["MaximumRetryAttempts"] <= 185
    assert 60 <= retry["MaximumEventAgeInSeconds"] <= 86400

    dlq = target.get("DeadLetterConfig", {}).get("Arn")
    assert dlq, f"{rule_id}: no DeadLetterConfig"
    function_dlq = functions[function_id]["Properties"].get("DeadLetterQueue", {}).get("TargetArn")
    assert dlq == function_dlq, f"{rule_id}: dead letters go to {dlq}, the function's own to {function_dlq}"
    queue_id = dlq["Fn::GetAtt"][0]
    assert template["Resources"][queue_id]["Type"] == "AWS::SQS::Queue"


@pytest.mark.parametrize("rule_id", sorted(RULE_TARGETS))
def test_rule_may_invoke_its_function(rule_id, template) -> None:
    function_id = RULE_TARGETS[rule_id]
    permissions = [
        r["Properties"]
        for r in template["Resources"].values()
        if r["Type"] == "AWS::Lambda::Permission"
        and r["Properties"].get("SourceArn") == {"Fn::GetAtt": [rule_id, "Arn"]}
    ]
    assert len(permissions) == 1, f"{rule_id}: {len(permissions)} Lambda permissions"
    p = permissions[0]
    assert p["Action"] == "lambda:InvokeFunction"
    assert p["Principal"] == "events.amazonaws.com"
    assert p["FunctionName"] in ({"Fn::GetAtt": [function_id, "Arn"]}, {"Ref": function_id})


@pytest.mark.parametrize("rule_id", sorted(RULE_TARGETS))
def test_rule_may_write_its_dead_letter_queue(rule_id, rules, template) -> None:
    """EventBridge delivers to a target DLQ only if the queue policy allows the rule."""
    queue = rules[rule_id]["Properties"]["Targets"][0]["DeadLetterConfig"]["Arn"]
    allowed = False
    for r in template["Resources"].values():
        if r["Type"] != "AWS::SQS::QueuePolicy":
            continue
        for st in r["Properties"]["PolicyDocument"]["Statement"]:
            if st["Effect"] != "Allow" or st.get("Principal") != {"Service": "events.amazonaws.com"}:
                continue
            resources = st["Resource"] if isinstance(st["Resource"], list) else [st["Resource"]]
            sources = st.get("Condition", {}).get("ArnEquals", {}).get("aws:SourceArn", [])
            sources = sources if isinstance(sources, list) else [sources]
            if "sqs:SendMessage" in st["Action"] and queue in resources and {"Fn::GetAtt": [rule_id, "Arn"]} in sources:
                allowed = True
    assert allowed, f"no queue policy lets {rule_id} send to {queue}"


@pytest.mark.parametrize("name", sorted(SCHEDULES))
def test_scheduled_event_names_a_schedule_rule_of_its_function(name, events, rules, template, stack_name) -> None:
    rule_id, word, function_id = SCHEDULES[name]
    rule = rules[rule_id]["Properties"]
    assert "ScheduleExpression" in rule
    schedule = resolve(rule["ScheduleExpression"], template, stack_name)
    assert re.fullmatch(r"(rate\(\d+ (minute|minutes|hour|hours|day|days)\)|cron\(.+\))", schedule), schedule
    assert RULE_TARGETS[rule_id] == function_id
    rule_name = resolve(rule.get("Name"), template, stack_name)
    assert rule_name and word in rule_name.lower(), f"{rule_id}: its name {rule_name!r} must contain {word!r}"
    assert len(rule_name) <= 64

    event = events[name]
    assert event["source"] == "aws.events" and event["detail-type"] == "Scheduled Event"
    assert event["resources"] == [f"arn:aws:events:us-east-1:123456789012:rule/{rule_name}"]
    # the other schedule's word must not appear, so the two can be told apart
    others = {w for _, w, _ in SCHEDULES.values()} - {word}
    assert not any(o in rule_name.lower() for o in others)
