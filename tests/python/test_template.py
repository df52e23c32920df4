"""Properties of template.yaml that cfn-lint cannot know: least privilege, the functions' contract
with the code (DESIGN.md), encryption, dead letters and the alarms on ourselves."""

from __future__ import annotations

import re
from typing import Any

import pytest

from template_support import REPO, as_list, policy_statements, resources_of_type

FUNCTIONS: dict[str, dict[str, Any]] = {
    # Organization mode lets the deployer work several accounts at once (its work queue keeps one
    # message per account and Region in flight): template.yaml, DeployerWorkQueueMapping.
    # Reserved concurrency comes from parameters (0 = none): test_concurrency.py.
    "DeployerFunction": {"binary": "deployer", "timeout": 900},
    "RecoveryFunction": {"binary": "recovery", "timeout": 120},
    "ScalerFunction": {"binary": "scaler", "timeout": 120},
}

# Mutating actions that may have Resource "*", each with the reason from the AWS Service
# Authorization Reference. Anything else that is not Describe*/List*/Get*/BatchGet* must name
# resources. Keep this list short: add an entry only for an action whose "Resource types" column
# in the reference is empty.
WILDCARD_RESOURCE_ALLOWED: dict[str, str] = {
    "ecs:RegisterTaskDefinition": (
        "RegisterTaskDefinition has no resource type in the Service Authorization Reference (the "
        "revision's ARN does not exist before the call); only aws:RequestTag / aws:TagKeys "
        "conditions can narrow it."
    ),
}
# For the record, actions used here that DO support resource-level permissions and therefore
# must never be "*": ecs:UpdateService (service), ecs:RunTask (task-definition), ecs:TagResource
# (task, task-definition, ...), ecs:UpdateContainerInstancesState (container-instance),
# autoscaling:SetDesiredCapacity and autoscaling:TerminateInstanceInAutoScalingGroup
# (autoScalingGroup), iam:PassRole (role), sns:Publish (topic), dynamodb:* item actions (table),
# kms:* (key).

READ_ONLY_VERB = re.compile(r"^(Describe|List|Get|BatchGet)[A-Z]")


def effective(template: dict[str, Any], function_id: str) -> dict[str, Any]:
    """Function properties with SAM Globals applied (environment variables merged)."""
    glob = dict(template.get("Globals", {}).get("Function", {}))
    own = template["Resources"][function_id]["Properties"]
    merged = {**glob, **own}
    env = {
        **glob.get("Environment", {}).get("Variables", {}),
        **own.get("Environment", {}).get("Variables", {}),
    }
    merged["Environment"] = {"Variables": env}
    return merged


def is_read_only(action: str) -> bool:
    _, _, verb = action.partition(":")
    return bool(READ_ONLY_VERB.match(verb))


# ------------------------------------------------------------------ IAM


def test_there_are_policies_to_audit(template) -> None:
    statements = policy_statements(template)
    owners = {rid for rid, _ in statements}
    assert set(FUNCTIONS) <= owners


def test_no_mutating_action_on_every_resource_unless_aws_allows_nothing_else(template) -> None:
    offenders = []
    for rid, st in policy_statements(template):
        if st.get("Effect") != "Allow":
            continue
        if "*" not in as_list(st.get("Resource", [])):
            continue
        for action in as_list(st["Action"]):
            if is_read_only(action) or action in WILDCARD_RESOURCE_ALLOWED:
                continue
            offenders.append(f"{rid}/{st.get('Sid', '?')}: {action}")
    assert not offenders, f"mutating actions on Resource '*': {offenders}"


def test_allow_list_holds_no_stale_entries(template) -> None:
    used = {
        action
        for _, st in policy_statements(template)
        if "*" in as_list(st.get("Resource", []))
        for action in as_list(st["Action"])
    }
    assert set(WILDCARD_RESOURCE_ALLOWED) <= used, f"unused allow-list entries: {sorted(set(WILDCARD_RESOURCE_ALLOWED) - used)}"


def test_statements_use_no_wildcard_actions_or_negations(template) -> None:
    for rid, st in policy_statements(template):
        assert st.get("Effect") == "Allow", f"{rid}: unexpected {st.get('Effect')} statement"
        assert "NotAction" not in st and "NotResource" not in st, f"{rid}/{st.get('Sid')}: NotAction/NotResource"
        for action in as_list(st["Action"]):
            assert re.fullmatch(r"[a-z0-9-]+:[A-Za-z0-9]+\*?", action), f"{rid}: odd action {action!r}"
            assert not action.endswith(":*"), f"{rid}: {action} grants a whole service"
            if action.endswith("*"):
                # only kms:GenerateDataKey* style families of one operation are acceptable
                assert action == "kms:GenerateDataKey*", f"{rid}: wildcard action {action!r}"


def scoped_to_this_account(resource: Any, template: dict[str, Any]) -> bool:
    if isinstance(resource, dict):
        if "Fn::GetAtt" in resource:
            return resource["Fn::GetAtt"][0] in template["Resources"]
        if "Ref" in resource:
            return resource["Ref"] in template["Resources"]
        if "Fn::Sub" in resource and isinstance(resource["Fn::Sub"], str):
            arn = resource["Fn::Sub"]
            return arn.startswith("arn:${AWS::Partition}:") and "${AWS::AccountId}" in arn
    return False


# The one statement that names other accounts' resources: organization mode's functions assume
# the member roles of member/roles.yaml (fixed path /ecs-autopilot/) in any member account.
MEMBER_ROLES = {"Fn::Sub": "arn:${AWS::Partition}:iam::*:role/ecs-autopilot/*"}


def test_mutating_actions_name_resources_of_this_account(template) -> None:
    offenders = []
    for rid, st in policy_statements(template):
        if st.get("Resource") == MEMBER_ROLES and sorted(as_list(st["Action"])) == ["sts:AssumeRole", "sts:TagSession"]:
            continue
        actions = [a for a in as_list(st["Action"]) if not is_read_only(a) and a not in WILDCARD_RESOURCE_ALLOWED]
        if not actions:
            continue
        for resource in as_list(st["Resource"]):
            if not scoped_to_this_account(resource, template):
                offenders.append(f"{rid}/{st.get('Sid', '?')}: {actions} on {resource!r}")
    assert not offenders, offenders


def test_pass_role_only_to_ecs_tasks(template) -> None:
    found = 0
    for rid, st in policy_statements(template):
        if "iam:PassRole" in as_list(st["Action"]):
            found += 1
            assert as_list(st["Action"]) == ["iam:PassRole"], f"{rid}: keep iam:PassRole in a statement of its own"
            cond = st.get("Condition", {}).get("StringEquals", {})
            assert cond.get("iam:PassedToService") == "ecs-tasks.amazonaws.com", f"{rid}: PassRole without iam:PassedToService"
    assert found >= 2  # deployer (register) and recovery (run)


def test_tagging_only_on_create(template) -> None:
    for rid, st in policy_statements(template):
        if "ecs:TagResource" in as_list(st["Action"]):
            assert as_list(st["Action"]) == ["ecs:TagResource"], rid
            cond = st.get("Condition", {}).get("StringEquals", {})
            assert cond.get("ecs:CreateAction") in ("RegisterTaskDefinition", "RunTask"), (
                f"{rid}: ecs:TagResource is needed only to tag what the function creates"
            )


def actions_of(template: dict[str, Any], function_id: str) -> set[str]:
    return {a for rid, st in policy_statements(template) if rid == function_id for a in as_list(st["Action"])}


# Which actions each function needs is read from the code: test_iam_coverage.py.


def test_only_the_scaler_touches_auto_scaling_and_alarms(template) -> None:
    for function_id in ("DeployerFunction", "RecoveryFunction"):
        acts = actions_of(template, function_id)
        assert not {a for a in acts if a.startswith(("autoscaling:", "cloudwatch:"))}, function_id
    assert "ecs:RegisterTaskDefinition" not in actions_of(template, "ScalerFunction")
    assert "ecs:RunTask" not in actions_of(template, "ScalerFunction") | actions_of(template, "DeployerFunction")


# ------------------------------------------------------------------ functions


@pytest.mark.parametrize("function_id", sorted(FUNCTIONS))
def test_function_shape(function_id, template) -> None:
    want = FUNCTIONS[function_id]
    res = template["Resources"][function_id]
    props = effective(template, function_id)
    assert res["Metadata"]["BuildMethod"] == "rust-cargolambda"
    assert res["Metadata"]["BuildProperties"]["Binary"] == want["binary"]
    assert props["Runtime"] == "provided.al2023"
    assert props["Handler"] == "bootstrap"
    assert props["CodeUri"] == "."
    assert props["MemorySize"] == 256
    assert props["Timeout"] == want["timeout"]
    assert props["Architectures"] == [{"Ref": "Architecture"}]

    logging = props["LoggingConfig"]
    assert logging["LogFormat"] == "JSON"
    assert logging["ApplicationLogLevel"] == {"Ref": "LogLevel"}
    group = template["Resources"][logging["LogGroup"]["Ref"]]
    assert group["Type"] == "AWS::Logs::LogGroup"
    assert group["Properties"]["RetentionInDays"]

    dlq = props["DeadLetterQueue"]
    assert dlq["Type"] == "SQS"
    assert template["Resources"][dlq["TargetArn"]["Fn::GetAtt"][0]]["Type"] == "AWS::SQS::Queue"
    invoke = props["EventInvokeConfig"]
    assert 0 <= invoke["MaximumRetryAttempts"] <= 2
    assert 60 <= invoke["MaximumEventAgeInSeconds"] <= 21600
    # EventBridge wiring: the function's own Events (SAM generates rules and permissions from them;
    # every route is checked in test_event_patterns.py).
    events = props.get("Events")
    assert events, f"{function_id}: no Events (wire EventBridge through the function's Events)"
    assert {e["Type"] for e in events.values()} <= {"EventBridgeRule", "Schedule"}, events


def test_dead_letter_queues_are_one_per_function(template) -> None:
    queues = [effective(template, f)["DeadLetterQueue"]["TargetArn"]["Fn::GetAtt"][0] for f in FUNCTIONS]
    assert len(set(queues)) == len(FUNCTIONS)


def test_parameters(template) -> None:
    params = template["Parameters"]
    assert params["Architecture"]["Default"] == "arm64"
    assert set(params["Architecture"]["AllowedValues"]) == {"arm64", "x86_64"}
    assert params["Clusters"]["Default"] == ""
    assert params["DryRun"]["Default"] == "false"
    assert set(params["DryRun"]["AllowedValues"]) == {"true", "false"}
    assert params["CrashLoopThreshold"]["Default"] == 3
    assert params["CrashLoopWindowSeconds"]["Default"] == 600
    assert params["ReconcileSchedule"]["Default"] == "rate(10 minutes)"
    assert params["ReevaluateSchedule"]["Default"] == "rate(1 minute)"
    # Issue 14, item 5: not TRACE (lambda_runtime logs the raw event there, task overrides and all).
    assert set(params["LogLevel"]["AllowedValues"]) <= {"DEBUG", "INFO", "WARN", "ERROR", "FATAL"}


@pytest.mark.parametrize("function_id", sorted(FUNCTIONS))
def test_environment_contract(function_id, template) -> None:
    env = effective(template, function_id)["Environment"]["Variables"]
    assert env["AUTOPILOT_CLUSTERS"] == {"Ref": "Clusters"}
    assert env["AUTOPILOT_STATE_TABLE"] == {"Ref": "StateTable"}
    assert env["AUTOPILOT_TOPIC_ARN"] == {"Ref": "NotificationTopic"}
    assert env["AUTOPILOT_DRY_RUN"] == {"Ref": "DryRun"}
    crash = {"AUTOPILOT_CRASH_LOOP_THRESHOLD": {"Ref": "CrashLoopThreshold"},
             "AUTOPILOT_CRASH_LOOP_WINDOW_SECONDS": {"Ref": "CrashLoopWindowSeconds"}}
    if function_id == "RecoveryFunction":
        assert {k: env.get(k) for k in crash} == crash
    else:
        assert not crash.keys() & env.keys()


# Organization mode's variables (DESIGN.md, issue 16): the template and the Rust side were written
# in parallel against that contract.
ORGANIZATION_VARIABLES = {"AUTOPILOT_MEMBER_ROLE", "AUTOPILOT_ACCOUNTS", "AUTOPILOT_REGIONS", "AUTOPILOT_QUEUE_URL"}


def test_environment_variables_are_ones_the_code_reads(template) -> None:
    config = REPO / "shared" / "src" / "config.rs"
    if not config.exists():
        pytest.skip("shared/src/config.rs not found")
    read = set(re.findall(r'"(AUTOPILOT_[A-Z0-9_]+)"', config.read_text(encoding="utf-8")))
    unknown_anywhere = set()
    for function_id in FUNCTIONS:
        env = effective(template, function_id)["Environment"]["Variables"]
        unknown = {k for k in env if k.startswith("AUTOPILOT_")} - read
        unknown_anywhere |= unknown
        assert not unknown - ORGANIZATION_VARIABLES, f"{function_id} sets variables the code never reads: {sorted(unknown)}"
    if unknown_anywhere and not ORGANIZATION_VARIABLES & read:
        # Until the Rust side of issue 16 is merged, config.rs reads none of them; from then on
        # this test is strict again (a variable the code does not read fails it).
        pytest.xfail(f"the code does not read organization mode's {sorted(unknown_anywhere)} yet (issue 16, Rust side)")
    assert not unknown_anywhere, f"variables the code never reads: {sorted(unknown_anywhere)}"


MEMBER_ROLE_NAMES = {
    "DeployerFunction": "ecs-autopilot/ecs-autopilot-deployer",
    "RecoveryFunction": "ecs-autopilot/ecs-autopilot-recovery",
    "ScalerFunction": "ecs-autopilot/ecs-autopilot-scaler",
}


@pytest.mark.parametrize("function_id", sorted(FUNCTIONS))
def test_organization_environment_contract(function_id, template) -> None:
    """DESIGN.md and issue 16: the member role (path/name of member/roles.yaml's role) in
    organization mode, empty in account mode; the accounts and Regions likewise; the deployer's
    work queue URL (the deployer's and the scaler's, in both modes since issue 17, item 9)."""
    env = effective(template, function_id)["Environment"]["Variables"]
    assert env["AUTOPILOT_MEMBER_ROLE"] == {"Fn::If": ["IsOrganization", MEMBER_ROLE_NAMES[function_id], ""]}
    assert env["AUTOPILOT_ACCOUNTS"] == {"Fn::If": ["IsOrganization", {"Ref": "MemberAccounts"}, ""]}
    assert env["AUTOPILOT_REGIONS"] == {"Fn::If": ["IsOrganization", {"Ref": "MemberRegions"}, ""]}
    if function_id in ("DeployerFunction", "ScalerFunction"):
        assert env["AUTOPILOT_QUEUE_URL"] == {"Ref": function_id.replace("Function", "WorkQueue")}
    else:
        assert "AUTOPILOT_QUEUE_URL" not in env
    # the central roles get a fixed path in organization mode (their ARNs are Outputs)
    assert effective(template, function_id)["RolePath"] == {
        "Fn::If": ["IsOrganization", "/ecs-autopilot-central/", {"Ref": "AWS::NoValue"}]
    }


# ------------------------------------------------------------------ state, notifications, queues


def test_state_table(template) -> None:
    tables = resources_of_type(template, "AWS::DynamoDB::Table")
    assert list(tables) == ["StateTable"]
    p = tables["StateTable"]["Properties"]
    assert p["BillingMode"] == "PAY_PER_REQUEST"
    assert p["KeySchema"] == [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}]
    assert sorted(p["AttributeDefinitions"], key=lambda a: a["AttributeName"]) == [
        {"AttributeName": "pk", "AttributeType": "S"},
        {"AttributeName": "sk", "AttributeType": "S"},
    ]
    assert p["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    assert p["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    assert p["SSESpecification"]["SSEEnabled"] is True


def test_state_table_keys_match_the_code(template) -> None:
    state = REPO / "shared" / "src" / "state.rs"
    if not state.exists():
        pytest.skip("shared/src/state.rs not found")
    src = state.read_text(encoding="utf-8")
    consts = dict(re.findall(r'pub const (ATTR_[A-Z_]+): &str = "([^"]+)"', src))
    p = template["Resources"]["StateTable"]["Properties"]
    assert consts.get("ATTR_PK") == p["KeySchema"][0]["AttributeName"]
    assert consts.get("ATTR_SK") == p["KeySchema"][1]["AttributeName"]
    assert consts.get("ATTR_EXPIRES_AT") == p["TimeToLiveSpecification"]["AttributeName"]


# The deployer's and the scaler's work queues and their dead-letter queues (FIFO, both modes).
WORK_QUEUES = {"DeployerWorkQueue": 345600, "DeployerWorkDeadLetterQueue": 1209600, "ScalerWorkQueue": 345600, "ScalerWorkDeadLetterQueue": 1209600}


def test_queues_are_encrypted(template, transformed) -> None:
    queues = resources_of_type(template, "AWS::SQS::Queue")
    assert len(queues) == len(FUNCTIONS) + len(WORK_QUEUES)
    # and SAM adds none (an event's DeadLetterConfig with Type: SQS would: a bare queue per event)
    deployed = resources_of_type(transformed, "AWS::SQS::Queue")
    assert deployed.keys() == queues.keys(), f"queues after SAM's transform: {sorted(deployed)}"
    for qid, q in queues.items():
        p = q["Properties"]
        assert p.get("SqsManagedSseEnabled") is True or p.get("KmsMasterKeyId"), qid
        want = WORK_QUEUES.get(qid, 1209600)
        assert p.get("MessageRetentionPeriod") == want, f"{qid}: keep dead letters the maximum 14 days"


def test_topic_is_encrypted_with_a_key_cloudwatch_may_use(template) -> None:
    topic = template["Resources"]["NotificationTopic"]["Properties"]
    key_ref = topic["KmsMasterKeyId"]
    assert key_ref == {"Fn::GetAtt": ["NotificationKey", "Arn"]}, (
        "CloudWatch alarms cannot publish to a topic under alias/aws/sns: use the customer managed key"
    )
    key = template["Resources"]["NotificationKey"]["Properties"]
    assert key["EnableKeyRotation"] is True
    services = [st["Principal"].get("Service") for st in key["KeyPolicy"]["Statement"] if isinstance(st["Principal"], dict)]
    assert "cloudwatch.amazonaws.com" in services


def test_email_subscription_is_optional(template) -> None:
    subs = resources_of_type(template, "AWS::SNS::Subscription")
    assert subs, "no e-mail subscription"
    for sid, s in subs.items():
        assert s.get("Condition") == "HasNotificationEmail", sid
    assert template["Parameters"]["NotificationEmail"]["Default"] == ""


# ------------------------------------------------------------------ alarms and outputs


def alarms(template: dict[str, Any]) -> list[dict[str, Any]]:
    return [a["Properties"] for a in resources_of_type(template, "AWS::CloudWatch::Alarm").values()]


@pytest.mark.parametrize("function_id", sorted(FUNCTIONS))
def test_function_errors_raise_an_alarm(function_id, template) -> None:
    matching = [
        a for a in alarms(template)
        if a.get("Namespace") == "AWS/Lambda" and a.get("MetricName") == "Errors"
        and {"Name": "FunctionName", "Value": {"Ref": function_id}} in a["Dimensions"]
    ]
    assert len(matching) == 1, function_id
    assert {"Ref": "NotificationTopic"} in matching[0]["AlarmActions"]


def test_dead_letters_raise_an_alarm(template) -> None:
    for qid in resources_of_type(template, "AWS::SQS::Queue"):
        if qid in ("DeployerWorkQueue", "ScalerWorkQueue"):  # work queues, not dead-letter queues
            continue
        matching = [
            a for a in alarms(template)
            if a.get("Namespace") == "AWS/SQS" and a.get("MetricName") == "ApproximateNumberOfMessagesVisible"
            and {"Name": "QueueName", "Value": {"Fn::GetAtt": [qid, "QueueName"]}} in a["Dimensions"]
        ]
        assert len(matching) == 1, qid
        assert {"Ref": "NotificationTopic"} in matching[0]["AlarmActions"]


def test_outputs(template) -> None:
    values = [o["Value"] for o in template["Outputs"].values()]
    assert {"Ref": "NotificationTopic"} in values
    assert {"Ref": "StateTable"} in values
    for qid in resources_of_type(template, "AWS::SQS::Queue"):
        assert {"Ref": qid} in values, f"no output with the URL of {qid}"
    for function_id in FUNCTIONS:
        assert {"Fn::GetAtt": [function_id, "Arn"]} in values, f"no output with the ARN of {function_id}"
