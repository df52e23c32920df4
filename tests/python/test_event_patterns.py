"""Every sample event in events/ reaches exactly the EventBridge rules meant for it.

The wiring lives in the functions' `Events` (SAM event sources, see template.yaml): a route is one
event of one function, named "<Function>.<Event>" here, which SAM turns into the AWS::Events::Rule
<Function><Event> and the AWS::Lambda::Permission <Function><Event>Permission. The patterns come
from template.yaml itself and are matched with moto's EventBridge matcher; the generated rules and
permissions are read from SAM's own transform of the template (template_support.sam_transform).
EXPECTED is the single source of truth of which route an event must reach: an event file without
an entry here fails, and so does an entry whose file is gone.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any

import pytest
from moto.events.models import EventPattern

from template_support import (
    EVENTBRIDGE_EVENT_TYPES,
    REPO,
    Route,
    as_list,
    evaluate_conditions,
    event_files,
    resolve,
    resources_of_type,
    with_conditions,
)

DEPLOYER_PUSH = "DeployerFunction.ImagePush"
DEPLOYER_REPLICATION = "DeployerFunction.ImageReplication"
DEPLOYER_DEPLOYMENT = "DeployerFunction.DeploymentState"
DEPLOYER_HOOK = "DeployerFunction.HookAwaitingAction"
DEPLOYER_RECONCILE = "DeployerFunction.Reconcile"
RECOVERY_STOPPED = "RecoveryFunction.TaskStopped"
RECOVERY_SUMMARY = "RecoveryFunction.Summary"
SCALER_ALARM = "ScalerFunction.AlarmState"
SCALER_PLACEMENT = "ScalerFunction.PlacementFailure"
SCALER_REEVALUATE = "ScalerFunction.Reevaluate"

# events/ file -> the pattern routes ("<Function>.<Event>") it must match; every other route must not match.
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
    # A completed replication into this account and Region deploys like a push (AWS's sample)
    "ecr-replication-action.json": {DEPLOYER_REPLICATION},
    # ECS task state change: every STOPPED task, whatever the cause; never a RUNNING one ...
    "ecs-task-stopped-crash.json": {RECOVERY_STOPPED},
    "ecs-task-stopped-oom.json": {RECOVERY_STOPPED},
    "ecs-task-stopped-elb-health.json": {RECOVERY_STOPPED},
    "ecs-task-stopped-container-health.json": {RECOVERY_STOPPED},
    "ecs-task-stopped-image-pull.json": {RECOVERY_STOPPED},
    "ecs-task-stopped-spot.json": {RECOVERY_STOPPED},
    # ... but a plain user stop, which recovery settles from the event alone (test_event_filters.py)
    "ecs-task-stopped-user.json": set(),
    "ecs-task-stopped-scale-in.json": {RECOVERY_STOPPED},
    "ecs-task-stopped-deployment-replaced.json": {RECOVERY_STOPPED},
    "ecs-task-stopped-exit0.json": {RECOVERY_STOPPED},
    "ecs-task-stopped-sidecar-killed.json": {RECOVERY_STOPPED},
    "ecs-task-stopped-instance-gone.json": {RECOVERY_STOPPED},
    "ecs-task-stopped-az-rebalancing.json": {RECOVERY_STOPPED},
    "ecs-task-stopped-infrastructure-health.json": {RECOVERY_STOPPED},
    "ecs-task-running.json": set(),
    # ECS deployment state change: those the deployer acts on (completed, failed, rolling back)
    "ecs-deployment-in-progress.json": set(),
    "ecs-deployment-completed.json": {DEPLOYER_DEPLOYMENT},
    "ecs-deployment-failed.json": {DEPLOYER_DEPLOYMENT},
    "ecs-deployment-rollback.json": {DEPLOYER_DEPLOYMENT},
    # ECS hook state change: a deployment waiting at a pause hook (AWS's documented example)
    "ecs-hook-awaiting-action.json": {DEPLOYER_HOOK},
    # ECS service action: placement failures only
    "ecs-service-action-placement-failure.json": {SCALER_PLACEMENT},
    "ecs-service-action-placement-failure-capacity-provider.json": {SCALER_PLACEMENT},
    "ecs-service-action-steady-state.json": set(),
    # CloudWatch alarm state change: transitions to ALARM or OK (the scaler filters by the alarm's tags)
    "cloudwatch-alarm-ok-to-alarm.json": {SCALER_ALARM},
    "cloudwatch-alarm-ok-to-alarm-tags.json": {SCALER_ALARM},
    "cloudwatch-alarm-alarm-to-ok.json": {SCALER_ALARM},
    "cloudwatch-alarm-metric-math.json": {SCALER_ALARM},
    "cloudwatch-alarm-composite.json": {SCALER_ALARM},
    "cloudwatch-alarm-insufficient-data.json": set(),
    # Scheduled events reach their function through a schedule rule, never through a pattern
    "schedule-reconcile.json": set(),
    "schedule-reevaluate.json": set(),
    "schedule-recovery-summary.json": set(),
}

# Scheduled events -> (schedule route, word its rule name must contain, its schedule parameter, target function)
SCHEDULES: dict[str, tuple[str, str, str, str]] = {
    "schedule-reconcile.json": (DEPLOYER_RECONCILE, "reconcile", "ReconcileSchedule", "DeployerFunction"),
    "schedule-reevaluate.json": (SCALER_REEVALUATE, "reevaluate", "ReevaluateSchedule", "ScalerFunction"),
    "schedule-recovery-summary.json": (RECOVERY_SUMMARY, "recovery-summary", "SummarySchedule", "RecoveryFunction"),
}

# Every route of the template -> the function it must target
ROUTE_TARGETS: dict[str, str] = {
    DEPLOYER_PUSH: "DeployerFunction",
    DEPLOYER_REPLICATION: "DeployerFunction",
    DEPLOYER_DEPLOYMENT: "DeployerFunction",
    DEPLOYER_HOOK: "DeployerFunction",
    DEPLOYER_RECONCILE: "DeployerFunction",
    RECOVERY_STOPPED: "RecoveryFunction",
    RECOVERY_SUMMARY: "RecoveryFunction",
    SCALER_ALARM: "ScalerFunction",
    SCALER_PLACEMENT: "ScalerFunction",
    SCALER_REEVALUATE: "ScalerFunction",
}

# Where a pattern route's rule lives: the default bus in account mode, the central bus of
# organization mode otherwise (template.yaml, "organization mode"). Schedules have no EventBusName:
# a schedule rule can only be on the default bus.
PATTERN_ROUTE_BUS = {"Fn::If": ["IsOrganization", {"Ref": "EventBus"}, {"Ref": "AWS::NoValue"}]}

# EventBridge's retries of every route before the event goes to the dead-letter queue: 4 attempts
# within an hour (docs/operations.md, alarms table: "4 retries within 1 hour").
RETRY_POLICY = {"MaximumRetryAttempts": 4, "MaximumEventAgeInSeconds": 3600}

ENVELOPE_KEYS = ["version", "id", "detail-type", "source", "account", "time", "region", "resources", "detail"]
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def pattern_routes(routes: dict[str, Route], template: dict[str, Any], stack_name: str) -> dict[str, EventPattern]:
    out = {}
    for rid, route in routes.items():
        if route.type != "EventBridgeRule":
            continue
        pattern = route.properties.get("Pattern")
        assert pattern is not None, f"{rid}: an EventBridgeRule without a Pattern"
        out[rid] = load_pattern(pattern, template, stack_name)
    return out


def load_pattern(pattern: Any, template: dict[str, Any], stack_name: str, **params: str) -> EventPattern:
    """The pattern as CloudFormation deploys it with the parameters' defaults (or `params`):
    Fn::If takes the branch of its condition, then Refs and Subs are resolved."""
    pattern = with_conditions(pattern, evaluate_conditions(template, **params))
    resolved = resolve(pattern, template, stack_name, **params)
    if isinstance(resolved, str):  # EventPattern may also be given as a JSON string
        resolved = json.loads(resolved)
    return EventPattern.load(json.dumps(resolved))


def matching_routes(event: dict[str, Any], patterns: dict[str, EventPattern]) -> set[str]:
    return {rid for rid, pattern in patterns.items() if pattern.matches_event(event)}


# ------------------------------------------------------------------ the table itself


def test_every_event_file_has_an_expectation_and_every_expectation_a_file() -> None:
    names = {f.name for f in event_files()}
    missing = sorted(names - EXPECTED.keys())
    stale = sorted(EXPECTED.keys() - names)
    assert not missing, f"events/ files without an entry in EXPECTED: {missing}"
    assert not stale, f"EXPECTED entries without a file in events/: {stale}"


def test_expectations_name_pattern_routes_of_the_template(routes, template, stack_name) -> None:
    patterns = pattern_routes(routes, template, stack_name)
    named = set().union(*EXPECTED.values())
    assert named <= patterns.keys(), f"EXPECTED names routes that are not pattern routes: {sorted(named - patterns.keys())}"
    unexercised = sorted(patterns.keys() - named)
    assert not unexercised, f"pattern routes no sample event reaches: {unexercised}"


# ------------------------------------------------------------------ matching


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_event_matches_exactly_its_routes(name, events, routes, template, stack_name) -> None:
    if name not in events:
        pytest.fail(f"events/{name} is missing")
    patterns = pattern_routes(routes, template, stack_name)
    got = matching_routes(events[name], patterns)
    assert got == EXPECTED[name], f"{name}: matched {sorted(got)}, expected {sorted(EXPECTED[name])}"


@pytest.mark.parametrize("route_id", sorted(ROUTE_TARGETS))
def test_generated_rule_has_the_pattern_or_schedule_of_its_route(
    route_id, routes, transformed, template, stack_name, events
) -> None:
    """The rule SAM deploys is the route as written: the table above, which reads the template's
    `Events`, is about the rules that will exist. Every sample event is matched against the
    generated rule's own pattern too."""
    route = routes[route_id]
    rule = transformed["Resources"].get(route.rule_id)
    assert rule and rule["Type"] == "AWS::Events::Rule", f"{route_id}: SAM generated no rule {route.rule_id}"
    props = rule["Properties"]
    if route.type == "EventBridgeRule":
        assert "ScheduleExpression" not in props
        pattern = load_pattern(props["EventPattern"], template, stack_name)
        got = {name for name, event in events.items() if pattern.matches_event(event)}
        want = {name for name, routes_of in EXPECTED.items() if route_id in routes_of}
        assert want and got == want, f"{route.rule_id} matches {sorted(got)}, expected {sorted(want)}"
    else:
        assert "EventPattern" not in props
        assert props["ScheduleExpression"] == route.properties["Schedule"]


def test_matcher_is_not_vacuous(routes, template, stack_name, events) -> None:
    """Guards the test itself: a pattern that matched everything (or nothing) would make the
    table above meaningless."""
    patterns = pattern_routes(routes, template, stack_name)
    for rid, pattern in patterns.items():
        assert not pattern.matches_event({"source": "example.unrelated", "detail-type": "Nothing", "detail": {}}), rid
    crash = events["ecs-task-stopped-crash.json"]
    running = json.loads(json.dumps(crash))
    running["detail"]["lastStatus"] = "RUNNING"
    assert patterns[RECOVERY_STOPPED].matches_event(crash)
    assert not patterns[RECOVERY_STOPPED].matches_event(running)


def test_only_a_hook_awaiting_action_reaches_the_deployer(routes, template, stack_name, events) -> None:
    """The hook events of ecs_hook_state_change_events.html other than HOOK_AWAITING_ACTION ask
    nothing of anyone: the rule does not invoke the deployer for them."""
    patterns = pattern_routes(routes, template, stack_name)
    awaiting = events["ecs-hook-awaiting-action.json"]
    assert patterns[DEPLOYER_HOOK].matches_event(awaiting)
    for name in ["HOOK_IN_PROGRESS", "HOOK_SUCCEEDED", "HOOK_FAILED", "HOOK_TIMED_OUT"]:
        other = json.loads(json.dumps(awaiting))
        other["detail"]["eventName"] = name
        assert matching_routes(other, patterns) == set(), name


def test_only_a_successful_replication_reaches_the_deployer(routes, template, stack_name, events) -> None:
    """A replication deploys like a push only when it succeeded; the other ECR Replication Action
    results (AWS documents a FAILED one) and other action types reach no function."""
    patterns = pattern_routes(routes, template, stack_name)
    replicated = events["ecr-replication-action.json"]
    assert matching_routes(replicated, patterns) == {DEPLOYER_REPLICATION}
    for field, value in [("result", "FAILED"), ("action-type", "PUSH"), ("action-type", "DELETE")]:
        other = json.loads(json.dumps(replicated))
        other["detail"][field] = value
        assert matching_routes(other, patterns) == set(), (field, value)
    # and a push event is never taken for a replication (nor the other way round)
    pushed = json.loads(json.dumps(events["ecr-push-tagged.json"]))
    pushed["detail"]["action-type"] = "REPLICATE"
    assert matching_routes(pushed, patterns) == set()


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


# ------------------------------------------------------------------ routes, their rules and targets


def test_every_route_has_an_expected_target(routes) -> None:
    assert set(routes) == set(ROUTE_TARGETS), (
        f"routes without an entry in ROUTE_TARGETS: {sorted(set(routes) - set(ROUTE_TARGETS))}; "
        f"entries without a route: {sorted(set(ROUTE_TARGETS) - set(routes))}"
    )


def test_every_deployed_rule_and_permission_is_a_route(routes, transformed) -> None:
    """Nothing reaches a function outside the table: the rules and Lambda permissions of the
    deployed template are exactly those SAM generates from the routes (no hand-written rule or
    permission, no event source of another kind)."""
    rules = resources_of_type(transformed, "AWS::Events::Rule")
    assert set(rules) == {r.rule_id for r in routes.values()}, sorted(rules)
    permissions = resources_of_type(transformed, "AWS::Lambda::Permission")
    assert set(permissions) == {f"{r.rule_id}Permission" for r in routes.values()}, sorted(permissions)


@pytest.mark.parametrize("route_id", sorted(ROUTE_TARGETS))
def test_route_targets_its_function_with_retries_and_a_dead_letter_queue(route_id, routes, functions, template) -> None:
    route = routes[route_id]
    function_id = ROUTE_TARGETS[route_id]
    props = route.properties
    assert route.function_id == function_id, f"{route_id} is an event of {route.function_id}"
    assert route.type in EVENTBRIDGE_EVENT_TYPES, f"{route_id}: {route.type} is not an EventBridge rule"
    assert props.get("State", "ENABLED") == "ENABLED" and props.get("Enabled", True) is True, f"{route_id} is disabled"
    assert ("Pattern" in props) == (route.type == "EventBridgeRule"), f"{route_id}: a pattern for EventBridgeRule only"
    assert ("Schedule" in props) == (route.type == "Schedule"), f"{route_id}: a schedule for Schedule only"
    # the whole event reaches the function, from the default bus (account mode) or the central
    # bus (organization mode); schedules from the default bus always
    for key in ("Input", "InputPath", "InputTransformer"):
        assert key not in props, f"{route_id}: {key} would change what reaches the function"
    if route.type == "EventBridgeRule":
        assert props.get("EventBusName") == PATTERN_ROUTE_BUS, f"{route_id}: EventBusName {props.get('EventBusName')}"
    else:
        assert "EventBusName" not in props, f"{route_id}: a schedule is on the default bus"

    assert props.get("RetryPolicy") == RETRY_POLICY, f"{route_id}: RetryPolicy {props.get('RetryPolicy')}"

    dlq = props.get("DeadLetterConfig", {})
    assert set(dlq) == {"Arn"}, (
        f"{route_id}: DeadLetterConfig {dlq}: name the function's queue by Arn (Type: SQS makes SAM "
        "create another queue, without encryption, alarm or output)"
    )
    function_dlq = functions[function_id]["Properties"].get("DeadLetterQueue", {}).get("TargetArn")
    assert dlq["Arn"] == function_dlq, f"{route_id}: dead letters go to {dlq['Arn']}, the function's own to {function_dlq}"
    queue_id = dlq["Arn"]["Fn::GetAtt"][0]
    assert template["Resources"][queue_id]["Type"] == "AWS::SQS::Queue"


@pytest.mark.parametrize("route_id", sorted(ROUTE_TARGETS))
def test_generated_rule_targets_its_function_with_retries_and_a_dead_letter_queue(
    route_id, routes, functions, transformed
) -> None:
    route = routes[route_id]
    function_id = ROUTE_TARGETS[route_id]
    rule = transformed["Resources"][route.rule_id]["Properties"]
    assert rule.get("State", "ENABLED") == "ENABLED", f"{route.rule_id}: State {rule.get('State')}"
    if route.type == "EventBridgeRule":
        assert rule.get("EventBusName") == PATTERN_ROUTE_BUS, f"{route.rule_id}: {rule.get('EventBusName')}"
    else:
        assert rule.get("EventBusName", "default") == "default"
    targets = rule.get("Targets", [])
    assert len(targets) == 1, f"{route.rule_id}: expected one target, got {len(targets)}"
    target = targets[0]
    assert target["Arn"] == {"Fn::GetAtt": [function_id, "Arn"]}, f"{route.rule_id} targets {target['Arn']}"
    assert not {"Input", "InputPath", "InputTransformer"} & target.keys(), target
    assert target.get("RetryPolicy") == RETRY_POLICY, f"{route.rule_id}: RetryPolicy {target.get('RetryPolicy')}"
    function_dlq = functions[function_id]["Properties"]["DeadLetterQueue"]["TargetArn"]
    assert target.get("DeadLetterConfig") == {"Arn": function_dlq}, f"{route.rule_id}: {target.get('DeadLetterConfig')}"


@pytest.mark.parametrize("route_id", sorted(ROUTE_TARGETS))
def test_rule_may_invoke_its_function(route_id, routes, transformed) -> None:
    function_id = ROUTE_TARGETS[route_id]
    rule_id = routes[route_id].rule_id
    permissions = [
        r["Properties"]
        for r in transformed["Resources"].values()
        if r["Type"] == "AWS::Lambda::Permission"
        and r["Properties"].get("SourceArn") == {"Fn::GetAtt": [rule_id, "Arn"]}
    ]
    assert len(permissions) == 1, f"{rule_id}: {len(permissions)} Lambda permissions"
    p = permissions[0]
    assert p["Action"] == "lambda:InvokeFunction"
    assert p["Principal"] == "events.amazonaws.com"
    assert p["FunctionName"] in ({"Fn::GetAtt": [function_id, "Arn"]}, {"Ref": function_id})


@pytest.mark.parametrize("route_id", sorted(ROUTE_TARGETS))
def test_rule_may_write_its_dead_letter_queue(route_id, routes, transformed) -> None:
    """EventBridge delivers to a target DLQ only if the queue policy allows the rule. The policy is
    hand-written (SAM attaches none to a DeadLetterConfig given by Arn) and must name SAM's rule."""
    route = routes[route_id]
    queue = route.properties["DeadLetterConfig"]["Arn"]
    rule_arn = {"Fn::GetAtt": [route.rule_id, "Arn"]}
    allowed = False
    for r in transformed["Resources"].values():
        if r["Type"] != "AWS::SQS::QueuePolicy":
            continue
        for st in r["Properties"]["PolicyDocument"]["Statement"]:
            if st["Effect"] != "Allow" or st.get("Principal") != {"Service": "events.amazonaws.com"}:
                continue
            sources = as_list(st.get("Condition", {}).get("ArnEquals", {}).get("aws:SourceArn", []))
            if "sqs:SendMessage" in as_list(st["Action"]) and queue in as_list(st["Resource"]) and rule_arn in sources:
                allowed = True
    assert allowed, f"no queue policy lets {route.rule_id} ({route_id}) send to {queue}"


def test_dead_letter_queue_policy_names_only_deployed_rules(transformed) -> None:
    """A source ARN in the queue policy that names no rule of the deployed template (a rule renamed
    or gone) would fail the deployment or let nothing through."""
    resources = transformed["Resources"]
    for pid, r in resources_of_type(transformed, "AWS::SQS::QueuePolicy").items():
        for st in r["Properties"]["PolicyDocument"]["Statement"]:
            for source in as_list(st.get("Condition", {}).get("ArnEquals", {}).get("aws:SourceArn", [])):
                target = source["Fn::GetAtt"][0]
                assert resources.get(target, {}).get("Type") == "AWS::Events::Rule", f"{pid}/{st.get('Sid')}: {source}"


@pytest.mark.parametrize("name", sorted(SCHEDULES))
def test_scheduled_event_names_a_schedule_rule_of_its_function(
    name, events, routes, transformed, template, stack_name
) -> None:
    route_id, word, parameter, function_id = SCHEDULES[name]
    route = routes[route_id]
    assert route.type == "Schedule"
    assert ROUTE_TARGETS[route_id] == function_id
    assert route.properties["Schedule"] == {"Ref": parameter}
    # The name and schedule of the rule SAM generates: SAM passes a Schedule event's `Name` on and
    # ignores `RuleName` (which only EventBridgeRule events have); CloudFormation's own name for an
    # unnamed rule (<stack>-ScalerFunctionReevaluate-<random>) has "Reevaluate", not "reevaluate".
    rule = transformed["Resources"][route.rule_id]["Properties"]
    schedule = resolve(rule["ScheduleExpression"], template, stack_name)
    assert re.fullmatch(r"(rate\(\d+ (minute|minutes|hour|hours|day|days)\)|cron\(.+\))", schedule), schedule
    rule_name = resolve(rule.get("Name"), template, stack_name)
    assert rule_name and word in rule_name, f"{route.rule_id}: its name {rule_name!r} must contain {word!r}"
    assert len(rule_name) <= 64

    event = events[name]
    assert event["source"] == "aws.events" and event["detail-type"] == "Scheduled Event"
    assert event["resources"] == [f"arn:aws:events:us-east-1:123456789012:rule/{rule_name}"]
    # the other schedule's word must not appear, so the two can be told apart
    others = {w for _, w, _, _ in SCHEDULES.values()} - {word}
    assert not any(o in rule_name.lower() for o in others)


def test_service_deployment_records_follow_ecs_model() -> None:
    """events/records/ holds DescribeServiceDeployments answers (ServiceDeployment): every member
    and enum value must be one ECS's model has, or the tests built on them show what AWS never
    sends."""
    import botocore.session

    model = botocore.session.get_session().get_service_model("ecs")

    def check(value, shape, path):
        if shape.type_name == "structure":
            assert isinstance(value, dict), path
            for k, v in value.items():
                assert k in shape.members, f"{path}.{k} is not a member of {shape.name}"
                check(v, shape.members[k], f"{path}.{k}")
        elif shape.type_name == "list":
            assert isinstance(value, list), path
            for i, v in enumerate(value):
                check(v, shape.member, f"{path}[{i}]")
        elif shape.type_name == "string":
            assert isinstance(value, str), path
            assert not shape.enum or value in shape.enum, f"{path} = {value!r} is not one of {shape.enum}"
        elif shape.type_name in ("integer", "long"):
            assert isinstance(value, int) and not isinstance(value, bool), path
        elif shape.type_name in ("double", "float", "timestamp"):
            assert isinstance(value, (int, float)) and not isinstance(value, bool), path
        elif shape.type_name == "boolean":
            assert isinstance(value, bool), path

    files = sorted((REPO / "events" / "records").glob("ecs-service-deployment-*.json"))
    assert files, "events/records/ has the deployment records of each strategy"
    strategies = set()
    for f in files:
        record = json.loads(f.read_text(encoding="utf-8"))
        check(record, model.shape_for("ServiceDeployment"), f.name)
        strategies.add(record["deploymentConfiguration"]["strategy"])
    assert strategies == {"ROLLING", "BLUE_GREEN", "LINEAR", "CANARY"}
    # An Express Mode service as DescribeServices answers it (the Service shape).
    express = json.loads((REPO / "events" / "records" / "ecs-service-express.json").read_text(encoding="utf-8"))
    check(express, model.shape_for("Service"), "ecs-service-express.json")
    assert express["resourceManagementType"] == "ECS"
