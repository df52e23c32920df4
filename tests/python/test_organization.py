"""Organization mode (issue 16, docs/organization.md), read from the templates themselves: the
central bus admits only the Organization's PutEvents; the member roles trust exactly the three
central function roles and hold exactly today's per-function permissions; the member forwarding
rules are no broader than the central functions' own rules; the member templates are flat; the
deployer's FIFO work queue and its mapping exist only in organization mode; account mode keeps
nothing of it.

moto enforces neither bus policies nor trust policies (shared/research/organization.md, section
3), so these properties can only be proven by reading the templates. What moto does show (a
service-managed StackSet creating member/roles.yaml's roles in the accounts of an OU) is the last
test here.
"""

from __future__ import annotations

import copy
import fnmatch
import json
import re
from pathlib import Path
from typing import Any

import pytest
from moto.events.models import EventPattern

from template_support import REPO, as_list, evaluate_conditions, function_events, load_template, resources_of_type, with_conditions

MEMBER_DIR = REPO / "member"
ROLES_PATH = MEMBER_DIR / "roles.yaml"
FORWARDING_PATH = MEMBER_DIR / "forwarding.yaml"

# central function -> (member role logical id in roles.yaml, its name, the roles.yaml parameter
# carrying the central role ARN, the central output that gives it)
MEMBER_ROLES: dict[str, tuple[str, str, str, str]] = {
    "DeployerFunction": ("DeployerRole", "ecs-autopilot-deployer", "CentralDeployerRoleArn", "DeployerFunctionRoleArn"),
    "RecoveryFunction": ("RecoveryRole", "ecs-autopilot-recovery", "CentralRecoveryRoleArn", "RecoveryFunctionRoleArn"),
    "ScalerFunction": ("ScalerRole", "ecs-autopilot-scaler", "CentralScalerRoleArn", "ScalerFunctionRoleArn"),
}
MEMBER_PATH = "/ecs-autopilot/"
FORWARDER_ARN = {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:role/ecs-autopilot/ecs-autopilot-forwarder"}
# The work queues exist in both modes since issue 17, item 9 (tests/python/test_concurrency.py).
ORGANIZATION_ONLY = {
    "EventBus",
    "EventBusPolicy",
    "DeployerOrganizationPolicy",
    "RecoveryOrganizationPolicy",
    "ScalerOrganizationPolicy",
}


@pytest.fixture(scope="module")
def roles() -> dict[str, Any]:
    return load_template(ROLES_PATH)


@pytest.fixture(scope="module")
def forwarding() -> dict[str, Any]:
    return load_template(FORWARDING_PATH)


def member_templates() -> list[Path]:
    return sorted(MEMBER_DIR.glob("*.yaml"))


def walk(value: Any):
    yield value
    if isinstance(value, dict):
        for v in value.values():
            yield from walk(v)
    elif isinstance(value, list):
        for v in value:
            yield from walk(v)


def referenced_ids(value: Any) -> set[str]:
    """Logical ids a value refers to (Ref, Fn::GetAtt, ${Id} / ${Id.Attr} in Fn::Sub)."""
    out = set()
    for v in walk(value):
        if not isinstance(v, dict) or len(v) != 1:
            continue
        (key, arg), = v.items()
        if key == "Ref" and isinstance(arg, str):
            out.add(arg)
        elif key == "Fn::GetAtt":
            out.add(arg[0] if isinstance(arg, list) else arg.split(".")[0])
        elif key == "Fn::Sub":
            text = arg if isinstance(arg, str) else arg[0]
            out |= {m.split(".")[0] for m in re.findall(r"\$\{([^}!]+)\}", text)}
    return out


# ------------------------------------------------------------------ the central bus


def test_bus_policy_grants_only_put_events_to_the_organization(template) -> None:
    bus = template["Resources"]["EventBus"]
    assert bus["Type"] == "AWS::Events::EventBus"
    policies = resources_of_type(template, "AWS::Events::EventBusPolicy")
    assert list(policies) == ["EventBusPolicy"], "one policy on the central bus"
    policy = policies["EventBusPolicy"]
    props = policy["Properties"]
    assert props["EventBusName"] == {"Ref": "EventBus"}
    st = props["Statement"]
    assert isinstance(st, dict), "a single statement"
    assert st["Effect"] == "Allow"
    assert st["Principal"] == "*"
    assert as_list(st["Action"]) == ["events:PutEvents"], "nothing but PutEvents (no rule or target management)"
    assert st["Resource"] == {"Fn::GetAtt": ["EventBus", "Arn"]}
    assert st["Condition"] == {"StringEquals": {"aws:PrincipalOrgID": {"Ref": "OrganizationId"}}}
    assert "Action" not in props and "Principal" not in props, "the legacy Action/Principal form grants a whole account"


def test_organization_id_is_required_in_organization_mode(template) -> None:
    params = template["Parameters"]
    assert params["Mode"]["Default"] == "account"
    assert set(params["Mode"]["AllowedValues"]) == {"account", "organization"}
    pattern = re.compile(params["OrganizationId"]["AllowedPattern"])
    assert pattern.fullmatch("o-a1b2c3d4e5") and pattern.fullmatch("")
    assert not pattern.fullmatch("o-short") and not pattern.fullmatch("123456789012")
    rule = template["Rules"]["OrganizationModeNeedsOrganizationId"]
    assert rule["RuleCondition"] == {"Fn::Equals": [{"Ref": "Mode"}, "organization"]}
    assert rule["Assertions"][0]["Assert"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "OrganizationId"}, ""]}]}
    accounts = re.compile(params["MemberAccounts"]["AllowedPattern"])
    for ok in ["", "111122223333", "111122223333 444455556666,777788889999", "111122223333, 444455556666"]:
        assert accounts.fullmatch(ok), ok
    for bad in ["11112222333", "111122223333;444455556666", "o-a1b2c3d4e5", "1111222233334"]:
        assert not accounts.fullmatch(bad), bad
    regions = re.compile(params["MemberRegions"]["AllowedPattern"])
    for ok in ["", "us-east-1", "us-east-1 eu-west-1,ap-southeast-2", "us-gov-west-1 il-central-1"]:
        assert regions.fullmatch(ok), ok
    for bad in ["us-east", "US-EAST-1", "us-east-1;eu-west-1", "*"]:
        assert not regions.fullmatch(bad), bad


def test_pattern_rules_move_to_the_bus_and_schedules_stay_on_the_default_bus(template, transformed) -> None:
    for route in function_events(template).values():
        rule = transformed["Resources"][route.rule_id]["Properties"]
        if route.type == "EventBridgeRule":
            assert rule["EventBusName"] == {"Fn::If": ["IsOrganization", {"Ref": "EventBus"}, {"Ref": "AWS::NoValue"}]}
        else:
            assert "EventBusName" not in rule, f"{route.rule_id}: a schedule can only be on the default bus"


# ------------------------------------------------------------------ member roles: trust


@pytest.mark.parametrize("function_id", sorted(MEMBER_ROLES))
def test_member_role_trusts_exactly_its_central_function_role(function_id, roles, template, transformed) -> None:
    role_id, name, parameter, output = MEMBER_ROLES[function_id]
    role = roles["Resources"][role_id]
    assert role["Type"] == "AWS::IAM::Role"
    props = role["Properties"]
    assert props["RoleName"] == name
    assert props["Path"] == MEMBER_PATH
    statements = as_list(props["AssumeRolePolicyDocument"]["Statement"])
    assert len(statements) == 1, f"{role_id}: one trust statement"
    st = statements[0]
    assert st["Effect"] == "Allow"
    # the central account's root as principal (never the role ARN itself), narrowed to one role
    assert st["Principal"] == {"AWS": {"Fn::Sub": "arn:${AWS::Partition}:iam::${CentralAccountId}:root"}}
    assert sorted(as_list(st["Action"])) == ["sts:AssumeRole", "sts:TagSession"]
    assert st["Condition"] == {"ArnEquals": {"aws:PrincipalArn": {"Ref": parameter}}}
    # the parameter is filled from the central output naming exactly that function's role
    assert parameter in roles["Parameters"] and output in roles["Parameters"][parameter]["Description"]
    assert template["Outputs"][output]["Value"] == {"Fn::GetAtt": [f"{function_id}Role", "Arn"]}
    assert transformed["Resources"][function_id]["Properties"]["Role"] == {"Fn::GetAtt": [f"{function_id}Role", "Arn"]}
    assert "Condition" not in template["Outputs"][output], "the role ARN is known in both modes"


def test_the_three_trusts_name_three_different_central_roles(roles) -> None:
    named = [
        st["Condition"]["ArnEquals"]["aws:PrincipalArn"]["Ref"]
        for role_id, *_ in MEMBER_ROLES.values()
        for st in as_list(roles["Resources"][role_id]["Properties"]["AssumeRolePolicyDocument"]["Statement"])
    ]
    assert sorted(named) == sorted(p for _, _, p, _ in MEMBER_ROLES.values())
    arn = re.compile(roles["Parameters"]["CentralDeployerRoleArn"]["AllowedPattern"])
    assert arn.fullmatch("arn:aws:iam::111122223333:role/ecs-autopilot-central/stack-DeployerFunctionRole-AbC123")
    assert not arn.fullmatch("arn:aws:iam::111122223333:root")


@pytest.mark.parametrize("function_id", sorted(MEMBER_ROLES))
def test_central_function_may_assume_its_member_role_with_session_tags(function_id, template) -> None:
    """The central policy's resource covers the role the function builds from the event's account
    (arn:${partition}:iam::${account}:role/${AUTOPILOT_MEMBER_ROLE}), and nothing outside
    role/ecs-autopilot/."""
    _, name, _, _ = MEMBER_ROLES[function_id]
    policy = template["Resources"][function_id.replace("Function", "OrganizationPolicy")]
    assert policy["Type"] == "AWS::IAM::Policy" and policy["Condition"] == "IsOrganization"
    assert policy["Properties"]["Roles"] == [{"Ref": f"{function_id}Role"}]
    assume = [st for st in policy["Properties"]["PolicyDocument"]["Statement"] if "sts:AssumeRole" in as_list(st["Action"])]
    assert len(assume) == 1
    assert sorted(as_list(assume[0]["Action"])) == ["sts:AssumeRole", "sts:TagSession"]
    resource = assume[0]["Resource"]["Fn::Sub"].replace("${AWS::Partition}", "aws")
    env = template["Resources"][function_id]["Properties"]["Environment"]["Variables"]["AUTOPILOT_MEMBER_ROLE"]
    member_role = env["Fn::If"][1]
    assert member_role == MEMBER_PATH.strip("/") + "/" + name
    assert fnmatch.fnmatchcase(f"arn:aws:iam::111122223333:role/{member_role}", resource)
    assert not fnmatch.fnmatchcase("arn:aws:iam::111122223333:role/Admin", resource)
    assert not fnmatch.fnmatchcase("arn:aws:iam::111122223333:role/other/ecs-autopilot/x", resource)


# ------------------------------------------------------------------ member roles: permissions


def central_only(statement: dict[str, Any], template: dict[str, Any]) -> bool:
    """A statement on a resource of the central stack itself (state table, topic, its key)."""
    return bool(referenced_ids(statement.get("Resource")) & set(template["Resources"]))


def widen_region(value: Any) -> Any:
    """The central statement as a member role holds it: one role serves every Region."""
    out = copy.deepcopy(value)
    for v in walk(out):
        if isinstance(v, dict) and isinstance(v.get("Fn::Sub"), str):
            v["Fn::Sub"] = v["Fn::Sub"].replace("${AWS::Region}", "*")
    return out


@pytest.mark.parametrize("function_id", sorted(MEMBER_ROLES))
def test_member_role_holds_exactly_todays_function_permissions(function_id, roles, template) -> None:
    central = template["Resources"][function_id]["Properties"]["Policies"][0]["Statement"]
    kept = [widen_region(st) for st in central if not central_only(st, template)]
    dropped = {st["Sid"] for st in central if central_only(st, template)}
    assert dropped == {"StateTable", "Notify", "NotifyThroughEncryptedTopic"}, dropped
    role_id = MEMBER_ROLES[function_id][0]
    policies = roles["Resources"][role_id]["Properties"]["Policies"]
    assert len(policies) == 1 and not roles["Resources"][role_id]["Properties"].get("ManagedPolicyArns")
    member = policies[0]["PolicyDocument"]["Statement"]
    assert member == kept, f"{role_id} differs from {function_id}'s policy (minus the central-only statements)"
    # and, said as action sets: every action of the function except the central-only ones
    actions = lambda sts: {a for st in sts for a in as_list(st["Action"])}  # noqa: E731
    assert actions(member) == actions(central) - actions(st for st in central if central_only(st, template))
    assert not {a for a in actions(member) if a.split(":")[0] in ("dynamodb", "sns", "kms", "sqs", "sts")}


@pytest.mark.parametrize("function_id", sorted(MEMBER_ROLES))
def test_central_function_holds_its_member_permissions_in_every_region_of_its_own_account(function_id, roles, template) -> None:
    """In organization mode the functions act in their own account without a role, in any Region an
    event or a schedule names (MemberRegions): their organization policy carries exactly the member
    role's statements (the Region widened, this account), next to the AssumeRole and queue ones."""
    policy = template["Resources"][function_id.replace("Function", "OrganizationPolicy")]["Properties"]["PolicyDocument"]
    own = [st for st in policy["Statement"] if st["Sid"] not in ("AssumeMemberRoles", "NameMemberAccounts", "EnqueueWork", "WorkFromQueue")]
    role_id = MEMBER_ROLES[function_id][0]
    assert own == roles["Resources"][role_id]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]


def test_member_roles_act_in_their_own_account_only(roles) -> None:
    for role_id, *_ in MEMBER_ROLES.values():
        for st in roles["Resources"][role_id]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]:
            for resource in as_list(st["Resource"]):
                if resource == "*":
                    continue
                arn = resource["Fn::Sub"]
                assert arn.startswith("arn:${AWS::Partition}:") and ":${AWS::AccountId}:" in arn, (role_id, arn)


def test_forwarder_role(roles, forwarding) -> None:
    role = roles["Resources"]["ForwarderRole"]["Properties"]
    assert role["RoleName"] == "ecs-autopilot-forwarder" and role["Path"] == MEMBER_PATH
    (trust,) = as_list(role["AssumeRolePolicyDocument"]["Statement"])
    assert trust["Principal"] == {"Service": "events.amazonaws.com"}
    assert as_list(trust["Action"]) == ["sts:AssumeRole"]
    assert trust["Condition"] == {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}}
    (policy,) = role["Policies"]
    (st,) = as_list(policy["PolicyDocument"]["Statement"])
    assert as_list(st["Action"]) == ["events:PutEvents"]
    assert st["Resource"] == {"Ref": "CentralEventBusArn"}
    # the forwarding rules name this role by its fixed ARN
    name = FORWARDER_ARN["Fn::Sub"].rsplit("/", 1)[1]
    assert FORWARDER_ARN["Fn::Sub"].endswith(f":role{MEMBER_PATH}{name}") and name == role["RoleName"]


# ------------------------------------------------------------------ member forwarding


def forwarding_rules(forwarding: dict[str, Any]) -> dict[str, dict[str, Any]]:
    rules = resources_of_type(forwarding, "AWS::Events::Rule")
    assert rules, "member/forwarding.yaml forwards nothing"
    return rules


def central_patterns(template: dict[str, Any]) -> dict[str, Any]:
    """The central rules' patterns in organization mode with the other parameters' defaults
    (AlarmNamePrefix empty: a prefix only narrows the central rule further)."""
    conditions = evaluate_conditions(template, Mode="organization", OrganizationId="o-exampleorg1")
    return {
        rid: with_conditions(r.properties["Pattern"], conditions)
        for rid, r in function_events(template).items()
        if r.type == "EventBridgeRule"
    }


def test_each_forwarding_pattern_is_a_central_pattern(forwarding, template) -> None:
    """No broader than the functions' own rules: every forwarded pattern is one central rule's
    pattern, and every central pattern rule has its forwarder (else that function would hear
    nothing from the members)."""
    central = central_patterns(template)
    matched = {}
    for rid, rule in forwarding_rules(forwarding).items():
        hits = [cid for cid, p in central.items() if p == rule["Properties"]["EventPattern"]]
        assert hits, f"{rid}: its pattern is no central rule's pattern"
        matched[rid] = hits[0]
    assert set(matched.values()) == set(central), f"central rules without a forwarder: {set(central) - set(matched.values())}"


def test_forwarding_matches_the_same_sample_events_as_the_central_rules(forwarding, template, events) -> None:
    """The same, through the matcher: on every events/ sample, as AWS sends it and as it arrives
    from a member account in another Region, a forwarding rule matches only events some central
    pattern rule matches, and together they forward every event a central rule wants."""
    central = {rid: EventPattern.load(json.dumps(p)) for rid, p in central_patterns(template).items()}
    forwards = {rid: EventPattern.load(json.dumps(r["Properties"]["EventPattern"])) for rid, r in forwarding_rules(forwarding).items()}
    assert "ecr-replication-action.json" in events
    for name, event in events.items():
        for variant in (event, {**event, "account": "111122223333", "region": "eu-west-1"}):
            wanted = {rid for rid, p in central.items() if p.matches_event(variant)}
            forwarded = {rid for rid, p in forwards.items() if p.matches_event(variant)}
            assert bool(forwarded) == bool(wanted), f"{name}: forwarded by {forwarded}, wanted by {wanted}"
            assert len(forwarded) <= 1, f"{name}: forwarded twice ({forwarded}), billed twice"
    replicated = events["ecr-replication-action.json"]
    failed = {**replicated, "detail": {**replicated["detail"], "result": "FAILED"}}
    other = {**replicated, "detail": {**replicated["detail"], "action-type": "DELETE"}}
    for refused in (failed, other):
        assert not any(p.matches_event(refused) for p in forwards.values())
        assert not any(p.matches_event(refused) for p in central.values())


def test_forwarding_rules_send_one_hop_to_the_central_bus(forwarding) -> None:
    queue_arn = {"Fn::GetAtt": ["ForwardDeadLetterQueue", "Arn"]}
    for rid, rule in forwarding_rules(forwarding).items():
        props = rule["Properties"]
        assert props.get("EventBusName", "default") == "default", f"{rid}: AWS service events arrive on the default bus"
        assert props.get("State", "ENABLED") == "ENABLED"
        (target,) = props["Targets"]
        assert target["Arn"] == {"Ref": "CentralEventBusArn"}, f"{rid}: straight to the central bus"
        assert target["RoleArn"] == FORWARDER_ARN, f"{rid}: an organization-wide bus grant needs a role"
        assert target["DeadLetterConfig"] == {"Arn": queue_arn}
        assert not {"Input", "InputPath", "InputTransformer"} & target.keys(), f"{rid}: forward the event unchanged"
    assert not resources_of_type(forwarding, "AWS::Events::EventBus"), "no hub bus in between (AWS drops a second hop)"


def test_forwarding_dead_letter_queue_admits_exactly_the_forwarding_rules(forwarding) -> None:
    queue = forwarding["Resources"]["ForwardDeadLetterQueue"]["Properties"]
    assert queue.get("SqsManagedSseEnabled") is True and queue["MessageRetentionPeriod"] == 1209600
    (policy,) = resources_of_type(forwarding, "AWS::SQS::QueuePolicy").values()
    allows = [st for st in policy["Properties"]["PolicyDocument"]["Statement"] if st["Effect"] == "Allow"]
    (st,) = allows
    assert st["Principal"] == {"Service": "events.amazonaws.com"} and as_list(st["Action"]) == ["sqs:SendMessage"]
    sources = st["Condition"]["ArnEquals"]["aws:SourceArn"]
    assert sorted(s["Fn::GetAtt"][0] for s in sources) == sorted(forwarding_rules(forwarding))


# ------------------------------------------------------------------ flat member templates


@pytest.mark.parametrize("path", member_templates(), ids=lambda p: p.name)
def test_member_template_is_flat(path) -> None:
    """Service-managed StackSets' default execution role deploys no nested stacks, transforms or
    macros (stacksets-custom-execution-role.html)."""
    tpl = load_template(path)
    assert "Transform" not in tpl, f"{path.name}: no transform (SAM or macro)"
    for rid, res in tpl["Resources"].items():
        assert res["Type"] not in ("AWS::CloudFormation::Stack", "AWS::Serverless::Application"), f"{path.name}: {rid}"
        assert not res["Type"].startswith("AWS::Serverless::"), f"{path.name}: {rid} needs SAM's transform"
    assert not any(isinstance(v, dict) and "Fn::Transform" in v for v in walk(tpl)), path.name


def test_member_templates_are_the_two_documented_ones() -> None:
    assert [p.name for p in member_templates()] == ["forwarding.yaml", "roles.yaml"]


def test_member_readme_commands_fill_every_parameter(roles, forwarding, template) -> None:
    """member/README.md's commands are the documented way in: each StackSet's create-stack-set
    passes every parameter of its template, from central outputs that exist, with the
    capabilities and permission model AWS needs."""
    readme = (MEMBER_DIR / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```sh\n(.*?)```", readme, re.S)
    for stack_set, tpl, path in (("ecs-autopilot-roles", roles, "member/roles.yaml"), ("ecs-autopilot-forwarding", forwarding, "member/forwarding.yaml")):
        create = next(b for b in blocks if "create-stack-set" in b and f"--stack-set-name {stack_set}" in b)
        assert f"file://{path}" in create
        assert "--permission-model SERVICE_MANAGED" in create
        # auto-deployment on, in shorthand (Enabled=true) or JSON ({\"Enabled\":true, ...})
        assert re.search(r'--auto-deployment \S*Enabled(=|\\?":)true', create), stack_set
        assert "--call-as DELEGATED_ADMIN" in create
        for name in tpl["Parameters"]:
            assert f"ParameterKey={name}," in create, f"{stack_set}: parameter {name} is not passed"
        needs_iam = any(r["Type"].startswith("AWS::IAM::") for r in tpl["Resources"].values())
        assert ("CAPABILITY_NAMED_IAM" in create) == needs_iam, stack_set
        instances = next(b for b in blocks if "create-stack-instances" in b and f"--stack-set-name {stack_set}" in b)
        assert "OrganizationalUnitIds=" in instances
    for output in re.findall(r"\$\(out (\w+)\)", readme):
        assert output in template["Outputs"], f"member/README.md reads a central output that does not exist: {output}"
    assert readme.index("ecs-autopilot-roles") < readme.index("ecs-autopilot-forwarding")


# ------------------------------------------------------------------ the deployer's work queue


def test_organization_resources_exist_only_in_organization_mode(template) -> None:
    resources = template["Resources"]
    conditional = {rid for rid, r in resources.items() if r.get("Condition") == "IsOrganization"}
    assert conditional == ORGANIZATION_ONLY
    # anything else refers to them only under Fn::If IsOrganization
    for rid, res in resources.items():
        if rid in ORGANIZATION_ONLY:
            continue
        stripped = copy.deepcopy(res)
        for v in walk(stripped):
            if isinstance(v, dict) and "Fn::If" in v and v["Fn::If"][0] == "IsOrganization":
                v["Fn::If"][1] = None
        assert not referenced_ids(stripped) & ORGANIZATION_ONLY, f"{rid} refers to an organization-only resource outside Fn::If"
    for name, out in template["Outputs"].items():
        if referenced_ids(out["Value"]) & ORGANIZATION_ONLY:
            assert out.get("Condition") == "IsOrganization", name


def test_work_queue_is_a_high_throughput_fifo_queue_with_a_fifo_dead_letter_queue(template) -> None:
    res = template["Resources"]
    q = res["DeployerWorkQueue"]["Properties"]
    assert q["FifoQueue"] is True
    assert q["ContentBasedDeduplication"] is False, "the deployer sets MessageDeduplicationId itself"
    assert q["DeduplicationScope"] == "messageGroup" and q["FifoThroughputLimit"] == "perMessageGroupId"
    assert q.get("SqsManagedSseEnabled") is True or q.get("KmsMasterKeyId")
    timeout = res["DeployerFunction"]["Properties"]["Timeout"]
    assert q["VisibilityTimeout"] >= 6 * timeout, "Lambda: at least six times the function timeout"
    assert q["VisibilityTimeout"] <= 43200
    redrive = q["RedrivePolicy"]
    assert redrive["deadLetterTargetArn"] == {"Fn::GetAtt": ["DeployerWorkDeadLetterQueue", "Arn"]}
    assert redrive["maxReceiveCount"] == 5
    dlq = res["DeployerWorkDeadLetterQueue"]["Properties"]
    assert dlq["FifoQueue"] is True, "a FIFO queue's dead-letter queue is FIFO"
    # A FIFO queue's name ends in .fifo, and so does AUTOPILOT_QUEUE_URL (the deployer refuses to
    # start otherwise); 80 characters at most with the longest stack name the template allows (47).
    for queue in (q, dlq):
        name = queue["QueueName"]["Fn::Sub"]
        assert name.startswith("${AWS::StackName}-") and name.endswith(".fifo")
        assert len(name.replace("${AWS::StackName}", "x" * 47)) <= 80
    assert dlq["MessageRetentionPeriod"] > q["MessageRetentionPeriod"]


@pytest.mark.parametrize("function", ["Deployer", "Scaler"])
def test_work_queue_mapping(function, template) -> None:
    res = template["Resources"]
    mapping = res[f"{function}WorkQueueMapping"]
    assert mapping["Type"] == "AWS::Lambda::EventSourceMapping"
    p = mapping["Properties"]
    assert p["EventSourceArn"] == {"Fn::GetAtt": [f"{function}WorkQueue", "Arn"]}
    assert p["FunctionName"] == {"Ref": f"{function}Function"}
    assert p["BatchSize"] == 1
    assert p["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert f"{function}QueueAccess" in as_list(mapping.get("DependsOn", [])), "Lambda checks the role's SQS rights at creation"
    # "MaximumConcurrency ... 2 to 1000" (AWS::Lambda::EventSourceMapping ScalingConfig)
    assert 2 <= p["ScalingConfig"]["MaximumConcurrency"] <= 1000
    policy = res[f"{function}QueueAccess"]
    assert "Condition" not in policy and policy["Properties"]["Roles"] == [{"Ref": f"{function}FunctionRole"}]
    statements = policy["Properties"]["PolicyDocument"]["Statement"]
    queue_actions = {a for st in statements if st["Resource"] == {"Fn::GetAtt": [f"{function}WorkQueue", "Arn"]} for a in as_list(st["Action"])}
    assert queue_actions == {"sqs:SendMessage", "sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"}


@pytest.mark.parametrize("function", ["Deployer", "Scaler"])
def test_work_dead_letters_raise_an_alarm(function, template) -> None:
    alarm = template["Resources"][f"{function}WorkDeadLetterAlarm"]["Properties"]
    assert {"Name": "QueueName", "Value": {"Fn::GetAtt": [f"{function}WorkDeadLetterQueue", "QueueName"]}} in alarm["Dimensions"]
    assert alarm["AlarmActions"] == [{"Ref": "NotificationTopic"}]


# ------------------------------------------------------------------ account mode is unchanged


def account_mode(value: Any) -> Any:
    """The template as CloudFormation sees it with Mode=account: Fn::If IsOrganization takes its
    false branch, AWS::NoValue drops the key."""
    if isinstance(value, dict):
        if set(value) == {"Fn::If"} and value["Fn::If"][0] == "IsOrganization":
            return account_mode(value["Fn::If"][2])
        out = {}
        for k, v in value.items():
            v = account_mode(v)
            if v != {"Ref": "AWS::NoValue"}:
                out[k] = v
        return out
    if isinstance(value, list):
        return [account_mode(v) for v in value]
    return value


def test_account_mode_keeps_todays_functions(template, transformed) -> None:
    resources = {rid: account_mode(r) for rid, r in transformed["Resources"].items() if r.get("Condition") != "IsOrganization"}
    assert not ORGANIZATION_ONLY & resources.keys()
    for function_id in MEMBER_ROLES:
        props = resources[function_id]["Properties"]
        env = props["Environment"]["Variables"]
        for name in ("AUTOPILOT_MEMBER_ROLE", "AUTOPILOT_ACCOUNTS", "AUTOPILOT_REGIONS"):
            assert env.get(name, "") == "", f"{function_id}: {name} in account mode"
        assert "Path" not in resources[f"{function_id}Role"]["Properties"]
    # Reserved concurrency with its parameters' defaults: test_concurrency.py.
    for rid, r in resources.items():
        if r["Type"] == "AWS::Events::Rule":
            assert "EventBusName" not in r["Properties"], f"{rid}: on the default bus in account mode"


# ------------------------------------------------------------------ moto: a service-managed StackSet


def test_service_managed_stack_set_creates_the_member_roles_in_an_ou(roles) -> None:
    """moto (5.2) creates a SERVICE_MANAGED StackSet's resources in the accounts of the targeted
    OU (AutoDeployment itself is ignored there): member/roles.yaml's four roles appear, at their
    fixed path, in each member account, and nowhere else."""
    boto3 = pytest.importorskip("boto3")
    moto = pytest.importorskip("moto")
    body = ROLES_PATH.read_text(encoding="utf-8")
    with moto.mock_aws():
        org = boto3.client("organizations", region_name="us-east-1")
        org.create_organization(FeatureSet="ALL")
        root = org.list_roots()["Roots"][0]["Id"]
        ou = org.create_organizational_unit(ParentId=root, Name="workloads")["OrganizationalUnit"]["Id"]
        members = []
        for n in range(2):
            status = org.create_account(Email=f"m{n}@example.com", AccountName=f"member-{n}")["CreateAccountStatus"]
            account = status["AccountId"]
            org.move_account(AccountId=account, SourceParentId=root, DestinationParentId=ou)
            members.append(account)
        cfn = boto3.client("cloudformation", region_name="us-east-1")
        central = "999988887777"
        parameters = [
            {"ParameterKey": "CentralAccountId", "ParameterValue": central},
            {"ParameterKey": "CentralDeployerRoleArn", "ParameterValue": f"arn:aws:iam::{central}:role/ecs-autopilot-central/d"},
            {"ParameterKey": "CentralRecoveryRoleArn", "ParameterValue": f"arn:aws:iam::{central}:role/ecs-autopilot-central/r"},
            {"ParameterKey": "CentralScalerRoleArn", "ParameterValue": f"arn:aws:iam::{central}:role/ecs-autopilot-central/s"},
            {"ParameterKey": "CentralEventBusArn", "ParameterValue": f"arn:aws:events:us-east-1:{central}:event-bus/ecs-autopilot"},
        ]
        cfn.create_stack_set(
            StackSetName="ecs-autopilot-roles",
            TemplateBody=body,
            Parameters=parameters,
            Capabilities=["CAPABILITY_NAMED_IAM"],
            PermissionModel="SERVICE_MANAGED",
            AutoDeployment={"Enabled": True, "RetainStacksOnAccountRemoval": False},
        )
        cfn.create_stack_instances(
            StackSetName="ecs-autopilot-roles",
            DeploymentTargets={"OrganizationalUnitIds": [ou]},
            Regions=["us-east-1"],
        )
        sts = boto3.client("sts", region_name="us-east-1")
        for account in members:
            creds = sts.assume_role(
                RoleArn=f"arn:aws:iam::{account}:role/OrganizationAccountAccessRole", RoleSessionName="test"
            )["Credentials"]
            iam = boto3.client(
                "iam",
                region_name="us-east-1",
                aws_access_key_id=creds["AccessKeyId"],
                aws_secret_access_key=creds["SecretAccessKey"],
                aws_session_token=creds["SessionToken"],
            )
            found = {r["RoleName"]: r for r in iam.list_roles(PathPrefix=MEMBER_PATH)["Roles"]}
            assert set(found) == {
                "ecs-autopilot-deployer",
                "ecs-autopilot-recovery",
                "ecs-autopilot-scaler",
                "ecs-autopilot-forwarder",
            }, account
            deployer = found["ecs-autopilot-deployer"]
            assert deployer["Arn"] == f"arn:aws:iam::{account}:role/ecs-autopilot/ecs-autopilot-deployer"
            trust = deployer["AssumeRolePolicyDocument"]
            trust = json.loads(trust) if isinstance(trust, str) else trust
            (st,) = trust["Statement"]
            assert st["Principal"] == {"AWS": f"arn:aws:iam::{central}:root"}
            assert st["Condition"]["ArnEquals"]["aws:PrincipalArn"] == f"arn:aws:iam::{central}:role/ecs-autopilot-central/d"
        # the management account (where the StackSet lives) gets none: service-managed StackSets skip it
        iam = boto3.client("iam", region_name="us-east-1")
        assert iam.list_roles(PathPrefix=MEMBER_PATH)["Roles"] == []
