"""The stack's alarms on itself (issue 17, item 11), read from template.yaml.

- asynchronous invocation backlog, per function: AsyncEventAge, AsyncEventsDropped,
  DeadLetterErrors ("Asynchronous invocation metrics",
  https://docs.aws.amazon.com/lambda/latest/dg/monitoring-metrics-types.html);
- EventBridge FailedInvocations per rule, with the dimensions of the rule's bus ("Metrics that
  specify only the RuleName dimension refer to the default event bus. Metrics that specify both the
  EventBusName and RuleName dimensions refer to a custom event bus",
  https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-monitoring.html);
- state-table throttling (ReadThrottleEvents / WriteThrottleEvents, TableName);
- the deployer's Duration near its timeout;
- error alarms that need 2 failing periods of 3, so one retried throttle does not page anyone;
- every alarm notifies the stack's topic on ALARM and on OK.
"""

from __future__ import annotations

from typing import Any

import pytest

from template_support import evaluate_conditions, function_events, resources_of_type, with_conditions

FUNCTIONS = ("DeployerFunction", "RecoveryFunction", "ScalerFunction")
TOPIC = [{"Ref": "NotificationTopic"}]


def alarms(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return resources_of_type(template, "AWS::CloudWatch::Alarm")


def function_dimension(alarm: dict[str, Any]) -> Any:
    return {d["Name"]: d["Value"] for d in alarm["Dimensions"]}.get("FunctionName")


@pytest.mark.parametrize("function_id", FUNCTIONS)
@pytest.mark.parametrize("metric", ["AsyncEventAge", "AsyncEventsDropped", "DeadLetterErrors"])
def test_each_function_has_the_async_backlog_alarms(function_id, metric, template) -> None:
    found = [
        a["Properties"]
        for a in alarms(template).values()
        if a["Properties"].get("MetricName") == metric and function_dimension(a["Properties"]) == {"Ref": function_id}
    ]
    assert len(found) == 1, f"{function_id}: {len(found)} {metric} alarms"
    a = found[0]
    assert a["Namespace"] == "AWS/Lambda"
    if metric == "AsyncEventAge":
        # Milliseconds; near (80 % of) the function's own maximum event age, below it.
        max_age_ms = template["Resources"][function_id]["Properties"]["EventInvokeConfig"]["MaximumEventAgeInSeconds"] * 1000
        assert a["Statistic"] == "Maximum"
        assert 0.5 * max_age_ms <= a["Threshold"] < max_age_ms
        assert a["ComparisonOperator"] == "GreaterThanThreshold"
    else:
        assert a["Statistic"] == "Sum"
        assert a["Threshold"] == 1 and a["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"


def rule_routes(template: dict[str, Any]) -> dict[str, Any]:
    return {r.rule_id: r for r in function_events(template).values() if r.type in ("EventBridgeRule", "Schedule")}


def failed_invocation_alarms(template: dict[str, Any], conditions: dict[str, bool]) -> dict[str, dict[str, Any]]:
    out = {}
    for rid, a in alarms(template).items():
        props = with_conditions(a["Properties"], conditions)
        if props.get("Namespace") == "AWS/Events" and props.get("MetricName") == "FailedInvocations":
            dims = {d["Name"]: d["Value"] for d in props["Dimensions"]}
            rule = dims["RuleName"]["Fn::Select"][1]["Fn::Split"][1]["Fn::GetAtt"][0]
            out[rule] = {"props": props, "dims": dims, "id": rid}
    return out


@pytest.mark.parametrize("mode", ["account", "organization"])
def test_each_eventbridge_rule_has_a_failed_invocations_alarm(mode, template) -> None:
    overrides = {"Mode": "organization", "OrganizationId": "o-exampleorg1"} if mode == "organization" else {}
    conditions = evaluate_conditions(template, **overrides)
    routes = rule_routes(template)
    found = failed_invocation_alarms(template, conditions)
    assert set(found) == set(routes), f"rules without an alarm: {set(routes) - set(found)}; stale: {set(found) - set(routes)}"
    for rule_id, a in found.items():
        route = routes[rule_id]
        on_custom_bus = mode == "organization" and route.type == "EventBridgeRule"
        # The rule name is the last segment of its ARN: arn:...:rule/[bus/]name
        index = a["dims"]["RuleName"]["Fn::Select"][0]
        assert a["dims"]["RuleName"]["Fn::Select"][1]["Fn::Split"][0] == "/"
        if on_custom_bus:
            assert index == 2 and a["dims"].get("EventBusName") == {"Ref": "EventBus"}, rule_id
        else:
            assert index == 1 and set(a["dims"]) == {"RuleName"}, rule_id
        assert a["props"]["Statistic"] == "Sum" and a["props"]["Threshold"] == 1


def test_rule_name_from_arn_on_both_buses() -> None:
    """The ARN shapes the Select/Split relies on (EventBridge's rule ARN: rule/[event-bus-name/]rule-name)."""
    default = "arn:aws:events:us-east-1:123456789012:rule/ecs-autopilot-DeployerFunctionImagePush-ABC123"
    custom = "arn:aws:events:us-east-1:123456789012:rule/ecs-autopilot/ecs-autopilot-DeployerFunctionImagePush-ABC123"
    assert default.split("/")[1] == custom.split("/")[2] == "ecs-autopilot-DeployerFunctionImagePush-ABC123"


def test_state_table_throttling_alarm(template) -> None:
    a = template["Resources"]["StateTableThrottleAlarm"]["Properties"]
    metrics = {m["Id"]: m for m in a["Metrics"]}
    names = {m["MetricStat"]["Metric"]["MetricName"] for m in metrics.values() if "MetricStat" in m}
    assert names == {"ReadThrottleEvents", "WriteThrottleEvents"}
    for m in metrics.values():
        if "MetricStat" in m:
            assert m["MetricStat"]["Metric"]["Namespace"] == "AWS/DynamoDB"
            assert m["MetricStat"]["Metric"]["Dimensions"] == [{"Name": "TableName", "Value": {"Ref": "StateTable"}}]
            assert m["ReturnData"] is False
    returned = [m for m in metrics.values() if m.get("ReturnData")]
    assert len(returned) == 1 and "reads" in returned[0]["Expression"] and "writes" in returned[0]["Expression"]
    assert (a["EvaluationPeriods"], a["DatapointsToAlarm"]) == (3, 2)


def test_deployer_duration_alarm_is_near_its_timeout(template) -> None:
    a = template["Resources"]["DeployerDurationAlarm"]["Properties"]
    timeout_ms = template["Resources"]["DeployerFunction"]["Properties"]["Timeout"] * 1000
    assert a["MetricName"] == "Duration" and a["Namespace"] == "AWS/Lambda" and a["Statistic"] == "Maximum"
    assert function_dimension(a) == {"Ref": "DeployerFunction"}
    assert 0.7 * timeout_ms <= a["Threshold"] < timeout_ms


@pytest.mark.parametrize("function_id", FUNCTIONS)
def test_error_alarms_do_not_fire_on_one_retried_failure(function_id, template) -> None:
    found = [
        a["Properties"]
        for a in alarms(template).values()
        if a["Properties"].get("MetricName") == "Errors" and function_dimension(a["Properties"]) == {"Ref": function_id}
    ]
    assert len(found) == 1
    a = found[0]
    assert a["Period"] == 300
    assert a["EvaluationPeriods"] >= 2 and 2 <= a.get("DatapointsToAlarm", a["EvaluationPeriods"]) <= a["EvaluationPeriods"]


def test_every_alarm_notifies_the_topic_on_alarm_and_ok(template) -> None:
    for rid, a in alarms(template).items():
        props = a["Properties"]
        assert props["AlarmActions"] == TOPIC, rid
        assert props["OKActions"] == TOPIC, rid
        assert props["TreatMissingData"] == "notBreaching", f"{rid}: these metrics are sent only when not zero"


def test_dashboard_points_only_at_pages_that_exist(template) -> None:
    """The dashboard's text widget names repository documents (and a section of one): they exist."""
    import json  # noqa: PLC0415
    import re  # noqa: PLC0415

    from template_support import REPO  # noqa: PLC0415

    body = template["Resources"]["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    widgets = json.loads(re.sub(r"\$\{[^}]+\}", "x", body))["widgets"]
    texts = [w["properties"]["markdown"] for w in widgets if w["type"] == "text"]
    assert texts
    for text in texts:
        paths = re.findall(r"\b((?:docs|member|events)/[\w./-]+\.md|README\.md)", text)
        assert paths, "the text widget says where the alarms are explained"
        for path in paths:
            assert (REPO / path).is_file(), f"the dashboard names {path}, which does not exist"
            for section in re.findall(r'section "([^"]+)"', text):
                assert f"## {section}" in (REPO / path).read_text(encoding="utf-8"), f"{path} has no section {section!r}"
        for url in re.findall(r"\]\(([^)]+)\)", text):
            assert url.startswith("https://") or (REPO / url).exists(), url
