"""The filters of issue 17, item 4: the rules leave out events the functions would discard anyway,
and nothing they act on. Each filter is checked with sample events (events/, AWS's documented
shapes) on both sides of it.

Operators ($or, prefix, wildcard, anything-but, exists): "Comparison operators for use in event
patterns in Amazon EventBridge",
https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-create-pattern-operators.html.
The matcher is moto's (as in test_event_patterns.py). moto does not look into arrays of objects
(`containers[].reason`), which EventBridge matches element by element ("the pattern matches if any
element matches"); `eventbridge_view` gives moto that view of an event.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from moto.events.models import EventPattern

from test_event_patterns import load_pattern
from template_support import function_events


def eventbridge_view(value: Any) -> Any:
    """An array of objects as EventBridge matches it: each field holds the array of the elements'
    values (absent where no element has it)."""
    if isinstance(value, dict):
        return {k: eventbridge_view(v) for k, v in value.items()}
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        keys = sorted({k for v in value for k in v})
        return {k: [eventbridge_view(v[k]) for v in value if k in v] for k in keys}
    return value


def pattern(template: dict[str, Any], stack_name: str, route: str, **params: str) -> EventPattern:
    r = function_events(template)[route]
    return load_pattern(r.properties["Pattern"], template, stack_name, **params)


def matches(p: EventPattern, event: dict[str, Any]) -> bool:
    return p.matches_event(eventbridge_view(event))


# ------------------------------------------------------------------ scaler: alarm transitions


def test_alarm_rule_takes_alarm_and_ok_not_insufficient_data(template, stack_name, events) -> None:
    """The scaler ignores INSUFFICIENT_DATA before any AWS call (functions/scaler/src/decide.rs)."""
    p = pattern(template, stack_name, "ScalerFunction.AlarmState")
    assert matches(p, events["cloudwatch-alarm-ok-to-alarm.json"])
    assert matches(p, events["cloudwatch-alarm-alarm-to-ok.json"])
    assert matches(p, events["cloudwatch-alarm-composite.json"])
    assert not matches(p, events["cloudwatch-alarm-insufficient-data.json"])


def test_alarm_name_prefix_is_optional(template, stack_name, events) -> None:
    names = {n: events[n]["detail"]["alarmName"] for n in ("cloudwatch-alarm-ok-to-alarm.json", "cloudwatch-alarm-metric-math.json", "cloudwatch-alarm-composite.json")}
    assert names == {
        "cloudwatch-alarm-ok-to-alarm.json": "random-cpu-high",
        "cloudwatch-alarm-metric-math.json": "auth-requests-per-task-high",
        "cloudwatch-alarm-composite.json": "stage01-degraded",
    }
    unfiltered = pattern(template, stack_name, "ScalerFunction.AlarmState")
    assert all(matches(unfiltered, events[n]) for n in names), "empty AlarmNamePrefix filters no name"
    narrowed = pattern(template, stack_name, "ScalerFunction.AlarmState", AlarmNamePrefix="random-")
    assert matches(narrowed, events["cloudwatch-alarm-ok-to-alarm.json"])
    assert matches(narrowed, events["cloudwatch-alarm-alarm-to-ok.json"])
    assert not matches(narrowed, events["cloudwatch-alarm-metric-math.json"])
    assert not matches(narrowed, events["cloudwatch-alarm-composite.json"])
    # the state filter still holds under a prefix
    assert not matches(narrowed, events["cloudwatch-alarm-insufficient-data.json"])


def test_alarm_name_prefix_default_leaves_the_pattern_as_it_was(template) -> None:
    assert template["Parameters"]["AlarmNamePrefix"]["Default"] == ""
    detail = function_events(template)["ScalerFunction.AlarmState"].properties["Pattern"]["detail"]
    cond, with_prefix, without = detail["Fn::If"]
    assert cond == "HasAlarmNamePrefix"
    assert without == {"state": {"value": ["ALARM", "OK"]}}
    assert with_prefix == {**without, "alarmName": [{"prefix": {"Ref": "AlarmNamePrefix"}}]}


# ------------------------------------------------------------------ deployer: deployment events


def test_deployment_rule_takes_what_the_deployer_reports(template, stack_name, events) -> None:
    """rollout.rs (handle): COMPLETED, FAILED, or a reason containing "rolling back"; the rest is
    ignored there."""
    p = pattern(template, stack_name, "DeployerFunction.DeploymentState")
    assert matches(p, events["ecs-deployment-completed.json"])
    assert matches(p, events["ecs-deployment-failed.json"])
    rollback = events["ecs-deployment-rollback.json"]
    assert rollback["detail"]["eventName"] == "SERVICE_DEPLOYMENT_IN_PROGRESS" and "rolling back" in rollback["detail"]["reason"]
    assert matches(p, rollback)
    assert not matches(p, events["ecs-deployment-in-progress.json"])


def test_deployment_rule_rolling_back_is_case_sensitive_like_the_deployer(template, stack_name, events) -> None:
    p = pattern(template, stack_name, "DeployerFunction.DeploymentState")
    e = copy.deepcopy(events["ecs-deployment-rollback.json"])
    e["detail"]["reason"] = "ECS deployment circuit breaker: Rolling Back to deploymentId ecs-svc/1."
    assert not matches(p, e), "the deployer's contains(\"rolling back\") is case-sensitive: it would ignore this"
    e["detail"]["reason"] = "rolling back"
    assert matches(p, e)


# ------------------------------------------------------------------ recovery: user stops


def test_task_rule_leaves_out_plain_user_stops_only(template, stack_name, events) -> None:
    p = pattern(template, stack_name, "RecoveryFunction.TaskStopped")
    user = events["ecs-task-stopped-user.json"]
    assert user["detail"]["stopCode"] == "UserInitiated" and user["detail"]["stoppedReason"] == "Task stopped by user"
    assert not any("reason" in c for c in user["detail"]["containers"])
    assert not matches(p, user)
    # every other stop, scale-ins included, still reaches recovery
    for name, event in events.items():
        if name.startswith("ecs-task-stopped-") and name != "ecs-task-stopped-user.json":
            assert matches(p, event), name
    assert not matches(p, events["ecs-task-running.json"])


@pytest.mark.parametrize(
    "change",
    [
        "container-oom",  # classified as an out-of-memory stop before the user stop (classify.rs)
        "container-start-failure",
        "other-reason",  # a reason given to StopTask: recovery reads it (health, start failures)
        "no-stop-code",
        "other-stop-code",
    ],
)
def test_task_rule_keeps_user_stops_recovery_may_act_on(change, template, stack_name, events) -> None:
    p = pattern(template, stack_name, "RecoveryFunction.TaskStopped")
    e = copy.deepcopy(events["ecs-task-stopped-user.json"])
    d = e["detail"]
    if change == "container-oom":
        d["containers"][0]["reason"] = "OutOfMemoryError: Container killed due to memory usage"
    elif change == "container-start-failure":
        d["containers"][0]["reason"] = "CannotStartContainerError: Error response from daemon"
    elif change == "other-reason":
        d["stoppedReason"] = "Task failed ELB health checks in (target-group arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/random/abc)"
    elif change == "no-stop-code":
        del d["stopCode"]
    else:
        d["stopCode"] = "EssentialContainerExited"
    assert matches(p, e), change


def test_eventbridge_view_is_needed_for_container_reasons(template, stack_name, events) -> None:
    """Guards the helper: without it moto would not see the container's reason at all."""
    p = pattern(template, stack_name, "RecoveryFunction.TaskStopped")
    e = copy.deepcopy(events["ecs-task-stopped-user.json"])
    e["detail"]["containers"][0]["reason"] = "OutOfMemoryError: Container killed due to memory usage"
    assert eventbridge_view(e)["detail"]["containers"]["reason"] == ["OutOfMemoryError: Container killed due to memory usage"]
    assert not p.matches_event(e) and matches(p, e)


# ------------------------------------------------------------------ optional cluster filter

CLUSTER_RULES = ("RecoveryFunction.TaskStopped", "ScalerFunction.PlacementFailure", "DeployerFunction.HookAwaitingAction")
STAGE01 = "arn:aws:ecs:us-east-1:123456789012:cluster/stage01"
SAMPLES = {
    "RecoveryFunction.TaskStopped": "ecs-task-stopped-crash.json",
    "ScalerFunction.PlacementFailure": "ecs-service-action-placement-failure.json",
    "DeployerFunction.HookAwaitingAction": "ecs-hook-awaiting-action.json",
}


@pytest.mark.parametrize("route", CLUSTER_RULES)
def test_cluster_arns_filter_is_optional_and_exact(route, template, stack_name, events) -> None:
    sample = events[SAMPLES[route]]
    assert sample["detail"]["clusterArn"] == STAGE01
    other = copy.deepcopy(sample)
    other["detail"]["clusterArn"] = "arn:aws:ecs:us-east-1:123456789012:cluster/prod01"
    # default: no filter
    unfiltered = pattern(template, stack_name, route)
    assert matches(unfiltered, sample) and matches(unfiltered, other)
    # one cluster, then two
    only_stage = pattern(template, stack_name, route, ClusterArns=STAGE01)
    assert matches(only_stage, sample) and not matches(only_stage, other)
    both = pattern(template, stack_name, route, ClusterArns=f"{STAGE01},{other['detail']['clusterArn']}")
    assert matches(both, sample) and matches(both, other)
    # exact, not a prefix: stage01 does not admit stage010
    similar = copy.deepcopy(sample)
    similar["detail"]["clusterArn"] = STAGE01 + "0"
    assert not matches(only_stage, similar)


def test_cluster_arns_parameter_accepts_only_cluster_arns(template) -> None:
    import re  # noqa: PLC0415

    rx = re.compile(template["Parameters"]["ClusterArns"]["AllowedPattern"])
    assert rx.fullmatch("")
    assert rx.fullmatch(STAGE01)
    assert rx.fullmatch(f"{STAGE01},arn:aws:ecs:eu-west-1:111122223333:cluster/prod_01")
    for bad in ("stage01", f"{STAGE01}, {STAGE01}", "arn:aws:ecs:us-east-1:123456789012:service/stage01/auth", f"{STAGE01},"):
        assert not rx.fullmatch(bad), bad
