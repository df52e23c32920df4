"""Unit tests of tests/proxy/model_check.py (no server).

Run: .venv/bin/python -m pytest tests/proxy -q
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import random
import sys
import threading
import urllib.parse
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import model_check  # noqa: E402

ECS = "AmazonEC2ContainerServiceV20141113"


@pytest.fixture(scope="module")
def checker():
    return model_check.ModelChecker()


def ecs(checker, op: str, params: dict):
    return checker.check("ecs", op, "json", {"X-Amz-Target": f"{ECS}.{op}",
                                              "Content-Type": "application/x-amz-json-1.1"},
                         json.dumps(params).encode())


def query(checker, service: str, op: str, params: dict | list, version: str = ""):
    pairs = [("Action", op)] + ([("Version", version)] if version else [])
    pairs += list(params.items()) if isinstance(params, dict) else list(params)
    return checker.check(service, op, "query",
                         {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
                         urllib.parse.urlencode(pairs).encode())


def tag(checker, *tags):
    return ecs(checker, "TagResource", {
        "resourceArn": "arn:aws:ecs:us-east-1:123456789012:service/c/s",
        "tags": [{"key": k, "value": v} for k, v in tags]})


def rules(found) -> list[str]:
    return [v.rule for v in found]


# ---------------------------------------------------------------------------------------------
# ECS
# ---------------------------------------------------------------------------------------------
def test_ecs_tag_value_with_star_breaks_the_pattern(checker):
    found = tag(checker, ("autopilot:deploy", "v*"))
    assert len(found) == 1
    v = found[0]
    assert (v.service, v.operation, v.member, v.value) == ("ecs", "TagResource",
                                                           "tags[0].value", "'v*'")
    assert v.rule == r"pattern ([\p{L}\p{Z}\p{N}_.:/=+\-@]*)"
    assert v.message == ("ecs TagResource: tags[0].value='v*' does not match the pattern "
                         r"([\p{L}\p{Z}\p{N}_.:/=+\-@]*)")
    assert set(v.to_dict()) == {"service", "operation", "member", "value", "rule", "message"}


def test_ecs_tag_values_that_pass_and_fail(checker):
    assert tag(checker, ("autopilot:deploy", "semver:2 prefix:release-")) == []
    assert tag(checker, ("k", ""), ("ключ", "значение 2"), ("a/b", "x=y+z@w")) == []
    found = tag(checker, ("ok", "fine"), ("autopilot:deploy", "release-*,main"))
    assert [v.member for v in found] == ["tags[1].value"]
    assert found[0].rule.startswith("pattern ")


def test_ecs_reserved_aws_prefix_in_tag_keys(checker):
    found = tag(checker, ("aws:foo", "1"), ("AWS:x", "2"), ("aWs:y", "3"), ("awsx", "4"))
    assert [v.member for v in found] == ["tags[0].key", "tags[1].key", "tags[2].key"]
    assert set(rules(found)) == {"documented: ECS reserves the aws: tag prefix"}
    assert "aws:" in found[0].message
    # the same rule wherever ECS takes tags (here CreateCluster)
    found = ecs(checker, "CreateCluster", {"clusterName": "c", "tags": [{"key": "Aws:z"}]})
    assert [(v.member, v.rule) for v in found] == [
        ("tags[0].key", "documented: ECS reserves the aws: tag prefix")]
    # "... as a prefix for either keys or values" (ECS developer guide, tag restrictions)
    found = tag(checker, ("team", "aws:platform"), ("team2", "not-aws:x"))
    assert [(v.member, v.rule) for v in found] == [
        ("tags[0].value", "documented: ECS reserves the aws: tag prefix")]


def test_ecs_at_most_50_tags(checker):
    assert tag(checker, *[(f"k{i}", "v") for i in range(50)]) == []
    found = tag(checker, *[(f"k{i}", "v") for i in range(51)])
    assert [(v.member, v.rule) for v in found] == [("tags", "max items 50")]


def test_ecs_run_task_client_token_and_started_by(checker):
    base = {"cluster": "c", "taskDefinition": "td:1"}
    assert ecs(checker, "RunTask", {**base, "clientToken": "a" * 64}) == []
    found = ecs(checker, "RunTask", {**base, "clientToken": "a" * 65})
    assert [v.member for v in found] == ["clientToken"]
    assert found[0].rule.startswith("documented: ECS RunTask clientToken")
    assert [v.member for v in ecs(checker, "RunTask", {**base, "clientToken": "a b"})] == \
        ["clientToken"]
    found = ecs(checker, "RunTask", {**base, "startedBy": "a:b"})
    assert [v.member for v in found] == ["startedBy"]
    assert found[0].rule.startswith("documented: ECS RunTask startedBy")
    # letters, numbers, "-", "_" and "/" (what the recovery function passes on)
    assert ecs(checker, "RunTask", {**base, "startedBy": "events-rule/nightly-report"}) == []
    assert ecs(checker, "RunTask", {**base, "startedBy": "x" * 129}) != []
    # StartTask allows 36
    st = {"cluster": "c", "taskDefinition": "td:1", "containerInstances": ["ci"]}
    assert ecs(checker, "StartTask", {**st, "startedBy": "x" * 36}) == []
    assert rules(ecs(checker, "StartTask", {**st, "startedBy": "x" * 37})) == [
        "documented: ECS StartTask startedBy is at most 36 letters, numbers, -, / or _"]


def test_ecs_required_unknown_enum_and_types(checker):
    found = ecs(checker, "RegisterTaskDefinition", {"family": "f"})
    assert [(v.member, v.rule, v.value) for v in found] == [
        ("containerDefinitions", "required", None)]
    assert found[0].message == "ecs RegisterTaskDefinition: containerDefinitions is required"
    # null counts as absent
    found = ecs(checker, "RegisterTaskDefinition", {"family": None, "containerDefinitions": []})
    assert [(v.member, v.rule) for v in found] == [("family", "required")]

    found = ecs(checker, "DescribeServices", {"cluster": "c", "services": ["s"], "bogus": 1})
    assert [(v.member, v.rule) for v in found] == [("bogus", "unknown member")]

    found = ecs(checker, "CreateService", {"serviceName": "s", "propagateTags": "NOPE"})
    assert len(found) == 1 and found[0].member == "propagateTags"
    assert found[0].rule.startswith("enum [") and "TASK_DEFINITION" in found[0].rule
    assert ecs(checker, "CreateService", {"serviceName": "s", "propagateTags": "SERVICE"}) == []

    found = ecs(checker, "RegisterTaskDefinition", {"family": "f", "containerDefinitions": [
        {"name": "a", "image": "nginx", "memory": 64},
        {"name": "b", "image": ["nginx"], "memory": "64", "essential": "yes", "x": 1}]})
    assert [(v.member, v.rule) for v in found] == [
        ("containerDefinitions[1].image", "type string"),
        ("containerDefinitions[1].memory", "type integer"),
        ("containerDefinitions[1].essential", "type boolean"),
        ("containerDefinitions[1].x", "unknown member")]
    assert rules(ecs(checker, "DescribeServices", {"cluster": "c", "services": "s"})) == \
        ["type list"]


def test_ecs_nested_limits(checker):
    found = ecs(checker, "RegisterTaskDefinition", {"family": "f", "containerDefinitions": [
        {"name": "a", "image": "i", "portMappings": [{"containerPort": 80, "protocol": "sctp"}]}],
        "tags": [{"key": "k" * 129, "value": "v"}]})
    assert [(v.member, v.rule) for v in found] == [
        ("containerDefinitions[0].portMappings[0].protocol", "enum [tcp, udp]"),
        ("tags[0].key", "max length 128")]


def test_long_values_are_truncated(checker):
    found = tag(checker, ("k", "*" * 500))
    assert len(found) == 2  # the pattern and the length
    assert all(len(v.value) == model_check.VALUE_REPR_MAX for v in found)
    assert found[0].value.endswith("...")


# ---------------------------------------------------------------------------------------------
# other JSON services
# ---------------------------------------------------------------------------------------------
def test_dynamodb_put_item(checker):
    h = {"X-Amz-Target": "DynamoDB_20120810.PutItem"}
    item = {"pk": {"S": "a"}, "n": {"N": "1"},
            "m": {"M": {"l": {"L": [{"S": "x"}, {"NULL": True}]}}}}
    assert checker.check("dynamodb", "PutItem", "json", h,
                         json.dumps({"TableName": "state", "Item": item}).encode()) == []
    found = checker.check("dynamodb", "PutItem", "json", h, json.dumps({"Item": item}).encode())
    assert [(v.member, v.rule) for v in found] == [("TableName", "required")]
    found = checker.check("dynamodb", "PutItem", "json", h,
                          json.dumps({"TableName": "", "Item": {"pk": {"S": "a"}},
                                      "ReturnValues": "EVERYTHING"}).encode())
    assert [(v.member, v.rule) for v in found] == [
        ("TableName", "min length 1"),
        ("ReturnValues", "enum [ALL_NEW, ALL_OLD, NONE, UPDATED_NEW, UPDATED_OLD]")]


def test_cloudwatch_json_1_0(checker):
    h = {"X-Amz-Target": "GraniteServiceVersion20100801.ListTagsForResource",
         "Content-Type": "application/x-amz-json-1.0"}
    body = json.dumps({"ResourceARN": "arn:aws:cloudwatch:us-east-1:123456789012:alarm:a"})
    assert checker.check("monitoring", "ListTagsForResource", "json", h, body.encode()) == []
    found = checker.check("monitoring", "ListTagsForResource", "json", h, b"{}")
    assert [(v.service, v.member, v.rule) for v in found] == [
        ("cloudwatch", "ResourceARN", "required")]
    h["X-Amz-Target"] = "GraniteServiceVersion20100801.PutMetricData"
    body = json.dumps({"Namespace": "Autopilot", "MetricData": [
        {"MetricName": "m", "Value": 1.5, "Timestamp": 1767225600,
         "Dimensions": [{"Name": "Cluster", "Value": "c"}]}]})
    assert checker.check("monitoring", "PutMetricData", "json", h, body.encode()) == []


# ---------------------------------------------------------------------------------------------
# Smithy RPC v2 CBOR (the Rust aws-sdk-cloudwatch): decoded, then checked like JSON
# ---------------------------------------------------------------------------------------------
CBOR_HEADERS = {"smithy-protocol": "rpc-v2-cbor", "Content-Type": "application/cbor",
                "Accept": "application/cbor"}


def cw_cbor(checker, op: str, params, headers=None, raw: bytes | None = None):
    import cbor2
    body = raw if raw is not None else cbor2.dumps(params)
    return checker.check("monitoring", op, "rpcv2", headers or CBOR_HEADERS, body)


def test_cloudwatch_rpcv2_cbor_is_checked(checker):
    import botocore.serialize
    import botocore.session
    import cbor2
    model = botocore.session.get_session().get_service_model("cloudwatch")
    ser = botocore.serialize.create_serializer("smithy-rpc-v2-cbor")
    # what an SDK sends (timestamps as tag 1) passes
    req = ser.serialize_to_request({
        "MetricDataQueries": [{"Id": "q", "MetricStat": {
            "Metric": {"Namespace": "AWS/ECS", "MetricName": "CPUUtilization"},
            "Period": 60, "Stat": "Average"}}],
        "StartTime": dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc),
        "EndTime": dt.datetime(2026, 1, 1, 0, 10, 0, 250000, tzinfo=dt.timezone.utc)},
        model.operation_model("GetMetricData"))
    assert checker.check("monitoring", "GetMetricData", "rpcv2", req["headers"],
                         req["body"]) == []
    assert cw_cbor(checker, "DescribeAlarms", {"AlarmNames": ["a"], "MaxRecords": 100}) == []
    assert cw_cbor(checker, "ListTagsForResource", {
        "ResourceARN": "arn:aws:cloudwatch:us-east-1:123456789012:alarm:a"}) == []
    # what AWS refuses
    found = cw_cbor(checker, "DescribeAlarms", {"StateValue": "NOPE", "MaxRecords": 0,
                                                "Bogus": 1, "AlarmNames": ["x" * 256]})
    assert sorted((v.service, v.member, v.rule.split(" [")[0]) for v in found) == [
        ("cloudwatch", "AlarmNames[0]", "max length 255"),
        ("cloudwatch", "Bogus", "unknown member"),
        ("cloudwatch", "MaxRecords", "min value 1"), ("cloudwatch", "StateValue", "enum")]
    assert found[0].message.startswith("cloudwatch DescribeAlarms: ")
    # null and undefined count as absent
    found = cw_cbor(checker, "ListTagsForResource", None, raw=b"\xa1\x6bResourceARN\xf7")
    assert [(v.member, v.rule) for v in found] == [("ResourceARN", "required")]
    found = cw_cbor(checker, "ListTagsForResource", {"ResourceARN": None})
    assert [(v.member, v.rule) for v in found] == [("ResourceARN", "required")]


def test_cloudwatch_rpcv2_cbor_types(checker):
    import cbor2
    base = {"MetricDataQueries": [{"Id": "q", "Expression": "SUM(METRICS())"}]}
    ok = cw_cbor(checker, "GetMetricData", {**base, "StartTime": cbor2.CBORTag(1, 1767225600),
                                            "EndTime": 1767226200.5})  # a bare number passes
    assert ok == []
    found = cw_cbor(checker, "GetMetricData", {**base, "StartTime": "2026-01-01T00:00:00Z",
                                               "EndTime": cbor2.CBORTag(0, "2026-01-01")})
    assert [(v.member, v.rule) for v in found] == [
        ("StartTime", "type timestamp (CBOR tag 1 over a number)"),
        ("EndTime", "type timestamp (CBOR tag 1 over a number)")]
    # a string where a structure member wants a string is fine; bytes are not
    found = cw_cbor(checker, "DescribeAlarms", {"AlarmNames": [b"a"], "MaxRecords": "5"})
    assert [(v.member, v.rule) for v in found] == [("AlarmNames[0]", "type string"),
                                                   ("MaxRecords", "type integer")]
    assert "not a byte string" in found[0].message
    # a double may be any CBOR number
    metric = {"MetricName": "m", "Timestamp": cbor2.CBORTag(1, 1767225600)}
    assert cw_cbor(checker, "PutMetricData", {"Namespace": "N", "MetricData": [
        {**metric, "Value": 2}, {**metric, "Value": 2.5}]}) == []
    found = cw_cbor(checker, "PutMetricData", {"Namespace": "N", "MetricData": [
        {**metric, "Value": "NaN"}]})
    assert [(v.member, v.rule) for v in found] == [("MetricData[0].Value", "type double")]


def test_cloudwatch_rpcv2_cbor_unreadable_and_compressed(checker):
    import cbor2
    for body in (b"\xa1", b"\xa0\x00", b"\xff"):
        found = cw_cbor(checker, "DescribeAlarms", None, raw=body)
        assert [v.rule for v in found] == ["unparseable body"]
        assert "cannot be parsed as CBOR" in found[0].message
    found = cw_cbor(checker, "DescribeAlarms", None, raw=b"\x82\x01\x02")
    assert [(v.member, v.rule) for v in found] == [("(request)", "type structure")]
    # gzip (requestCompression on PutMetricData): undone before the check
    body = gzip.compress(cbor2.dumps({"Namespace": "N", "MetricData": [{"MetricName": "m"}],
                                      "Nope": 1}))
    found = cw_cbor(checker, "PutMetricData", None, {**CBOR_HEADERS, "Content-Encoding": "gzip"},
                    raw=body)
    assert [(v.member, v.rule) for v in found] == [("Nope", "unknown member")]
    found = cw_cbor(checker, "PutMetricData", None, {**CBOR_HEADERS, "Content-Encoding": "gzip"},
                    raw=b"\xa0")
    assert [v.rule for v in found] == ["unparseable body"]


# ---------------------------------------------------------------------------------------------
# Query protocol
# ---------------------------------------------------------------------------------------------
SNS_V = "2010-03-31"
TOPIC = "arn:aws:sns:us-east-1:123456789012:t"


def test_sns_publish_subject(checker):
    ok = {"TopicArn": TOPIC, "Message": "m", "Subject": "[dry run] deploy of api: done"}
    assert query(checker, "sns", "Publish", ok, SNS_V) == []
    found = query(checker, "sns", "Publish", {**ok, "Subject": "a\nb"}, SNS_V)
    assert [(v.service, v.member, v.value, v.rule) for v in found] == [
        ("sns", "Subject", "'a\\nb'",
         "documented: SNS Subject has no line breaks or control characters")]
    found = query(checker, "sns", "Publish", {**ok, "Subject": "s" * 100}, SNS_V)
    assert rules(found) == ["documented: SNS Subject is fewer than 100 characters"]
    assert query(checker, "sns", "Publish", {**ok, "Subject": "s" * 99}, SNS_V) == []
    # UTF-8 text is fine (the current model's wording; older pages said ASCII only).
    assert query(checker, "sns", "Publish", {**ok, "Subject": " é"}, SNS_V) == []
    assert rules(query(checker, "sns", "Publish", {**ok, "Subject": "a\x07b"}, SNS_V)) == [
        "documented: SNS Subject has no line breaks or control characters"]
    found = query(checker, "sns", "Publish", {**ok, "Message": "x" * 262145}, SNS_V)
    assert rules(found) == ["documented: SNS Message is at most 262144 bytes"]
    found = query(checker, "sns", "Publish", {"TopicArn": TOPIC}, SNS_V)
    assert [(v.member, v.rule) for v in found] == [("Message", "required")]


def test_sns_publish_message_attributes_map(checker):
    params = [("TopicArn", TOPIC), ("Message", "m"),
              ("MessageAttributes.entry.1.Name", "event"),
              ("MessageAttributes.entry.1.Value.DataType", "String"),
              ("MessageAttributes.entry.1.Value.StringValue", "deploy"),
              ("MessageAttributes.entry.2.Name", "blob"),
              ("MessageAttributes.entry.2.Value.DataType", "Binary"),
              ("MessageAttributes.entry.2.Value.BinaryValue", "AAEC")]
    assert query(checker, "sns", "Publish", params, SNS_V) == []
    found = query(checker, "sns", "Publish", params + [
        ("MessageAttributes.entry.3.Name", "x"),
        ("MessageAttributes.entry.3.Value.StringValue", "y"),
        ("MessageAttributes.entry.3.Value.Nope", "z")], SNS_V)
    assert [(v.member, v.rule) for v in found] == [
        ("MessageAttributes.entry.3.Value.Nope", "unknown member"),
        ("MessageAttributes['x'].DataType", "required")]


def test_query_unknown_and_type_errors(checker):
    found = query(checker, "sns", "Publish", {"TopicArn": TOPIC, "Message": "m", "Bogus": "1",
                                              "Subject.x": "2"}, SNS_V)
    assert sorted((v.member, v.rule) for v in found) == [
        ("Bogus", "unknown member"), ("Subject.x", "unknown member")]
    found = query(checker, "autoscaling", "SetDesiredCapacity", {
        "AutoScalingGroupName": "g", "DesiredCapacity": "three"}, "2011-01-01")
    assert [(v.member, v.rule) for v in found] == [("DesiredCapacity", "type integer")]


def test_autoscaling_query(checker):
    assert query(checker, "autoscaling", "SetDesiredCapacity", {
        "AutoScalingGroupName": "asg-1", "DesiredCapacity": "3", "HonorCooldown": "false"},
        "2011-01-01") == []
    # lists with .member.N, an empty list as "Name=", and the rewritten XML-characters pattern
    assert query(checker, "autoscaling", "DescribeAutoScalingGroups", {
        "AutoScalingGroupNames.member.1": "a", "AutoScalingGroupNames.member.2": "b",
        "Filters": ""}, "2011-01-01") == []
    tags = {"Tags.member.1.ResourceId": "g", "Tags.member.1.ResourceType": "auto-scaling-group",
            "Tags.member.1.Key": "k", "Tags.member.1.PropagateAtLaunch": "true"}
    assert query(checker, "autoscaling", "CreateOrUpdateTags",
                 {**tags, "Tags.member.1.Value": "v 😀 é"}, "2011-01-01") == []
    found = query(checker, "autoscaling", "CreateOrUpdateTags",
                  {**tags, "Tags.member.1.Value": "a\x01b"}, "2011-01-01")
    assert [v.member for v in found] == ["Tags[0].Value"]
    assert found[0].rule.startswith("pattern [\\u0020-\\uD7FF")


def test_elasticloadbalancing_version_picks_the_model(checker):
    assert query(checker, "elasticloadbalancing", "DescribeTargetHealth",
                 {"TargetGroupArn": "arn:tg"}, "2015-12-01") == []
    found = query(checker, "elasticloadbalancing", "DescribeLoadBalancers",
                  {"LoadBalancerNames.member.1": "x"}, "2015-12-01")
    assert [v.service for v in found] == ["elbv2"]  # elbv2 calls them Names
    assert query(checker, "elasticloadbalancing", "DescribeLoadBalancers",
                 {"LoadBalancerNames.member.1": "x"}, "2012-06-01") == []


def test_query_params_in_the_url(checker):
    found = checker.check("sns", "Publish", "query", {}, b"",
                          query="Action=Publish&Version=2010-03-31&TopicArn=t&X-Amz-Date=1")
    assert [(v.member, v.rule) for v in found] == [("Message", "required")]


# ---------------------------------------------------------------------------------------------
# what is not checked, and bodies that cannot be read
# ---------------------------------------------------------------------------------------------
def test_unchecked_protocols_and_services():
    c = model_check.ModelChecker()
    assert c.check("ec2", "RunInstances", "ec2", {},
                   b"Action=RunInstances&Version=2016-11-15&MinCount=x&Bogus=1") == []
    assert c.check("ec2", "RunInstances", "ec2", {}, b"Action=RunInstances") == []
    assert c.check("ssm", "GetParameter", "json", {"X-Amz-Target": "AmazonSSM.GetParameter"},
                   b"{}") == []
    assert c.check("ecs", "NoSuchOperation", "json",
                   {"X-Amz-Target": f"{ECS}.NoSuchOperation"}, b"{}") == []
    assert c.check("monitoring", "NoSuchOperation", "rpcv2", {}, b"\xa0") == []
    assert c.check("ecs", "GET /x", "rest", {}, b"") == []
    assert c.stats()["unchecked"] == {"ec2:RunInstances": 2, "ssm:GetParameter": 1,
                                      "ecs:NoSuchOperation": 1,
                                      "monitoring:NoSuchOperation": 1, "ecs:GET /x": 1}
    c.clear()
    assert c.stats()["unchecked"] == {}


@pytest.mark.parametrize("protocol,body", [
    ("json", b"{not json"),
    ("json", b"\xff\xfe"),
    ("query", b"Action=Publish&Version=2010-03-31&TopicArn=t&Mess"),
    ("query", b"Action=Publish&Message=%FF%FE"),
    ("query", b"Action=Publish&Message=\xff"),
])
def test_unparseable_bodies(checker, protocol, body):
    service, op = ("ecs", "ListClusters") if protocol == "json" else ("sns", "Publish")
    found = checker.check(service, op, protocol, {"X-Amz-Target": f"{ECS}.{op}"}, body)
    assert [v.rule for v in found] == ["unparseable body"]
    assert "cannot be parsed" in found[0].message


def test_garbage_never_raises(checker):
    rnd = random.Random(1)
    calls = [("ecs", "RegisterTaskDefinition", "json"), ("dynamodb", "PutItem", "json"),
             ("sns", "Publish", "query"), ("autoscaling", "SetDesiredCapacity", "query"),
             ("monitoring", "PutMetricData", "json"), ("monitoring", "PutMetricData", "rpcv2")]
    samples = [b"", b"[]", b"null", b"1", b'"s"', b"{}", b'{"a":', b"&&&", b"=", b"a.b.c=1",
               b"a..b=1", b"MessageAttributes.entry.x.Name=1", b"Tags.member.0.Key=1",
               b'{"containerDefinitions": [null, 1, "x", {"name": {}}]}',
               b'{"Item": {"a": {"M": {"b": {"L": [[], {}]}}}}}', b"[" * 5000 + b"]" * 5000,
               b'{"MetricData": "x"}', b"a." * 5000 + b"=1", b"Subject." * 5000 + b"=1",
               b'{"a":' * 900 + b"1" + b"}" * 900]
    samples += [bytes(rnd.randrange(256) for _ in range(rnd.randrange(1, 64)))
                for _ in range(200)]
    for service, op, protocol in calls:
        target = {"ecs": ECS, "dynamodb": "DynamoDB_20120810",
                  "monitoring": "GraniteServiceVersion20100801"}.get(service, "")
        for body in samples:
            found = checker.check(service, op, protocol, {"X-Amz-Target": f"{target}.{op}"},
                                  body)
            assert isinstance(found, list)
            for v in found:
                assert v.message.startswith(f"{v.service} {op}: ")
    assert checker.stats()["checker_errors"] == {}


def test_top_level_must_be_an_object(checker):
    found = ecs(checker, "ListClusters", ["x"])
    assert [(v.member, v.rule) for v in found] == [("(request)", "type structure")]


# ---------------------------------------------------------------------------------------------
# patterns, models, threads
# ---------------------------------------------------------------------------------------------
def test_bad_pattern_is_skipped_and_listed_once():
    c = model_check.ModelChecker()
    c.ensure_available()
    assert c._compile_pattern("x", "S", "[b-a]") is None
    assert c._compile_pattern("x", "S2", "[b-a]") is None
    assert [(u["service"], u["shape"], u["pattern"]) for u in c.stats()["uncompilable"]] == [
        ("x", "S", "[b-a]")]


def test_models_in_use_compile(checker):
    """Every pattern of the services the proxy checks compiles (some only after a rewrite)."""
    checker.ensure_available()
    for name in sorted(set(model_check.SIGNING_TO_MODEL.values()) | {"elb", "dynamodbstreams"}):
        model = checker._model(name)
        for op in model.operation_names:
            checker._op_node(name, op)
    st = checker.stats()
    assert st["uncompilable"] == []
    assert {r["pattern"] for r in st["rewritten"]} <= {
        r"[\u0020-\uD7FF\uE000-\uFFFD\uD800\uDC00-\uDBFF\uDFFF\r\n\t]*",
        r"[\u0009\u000A\u000D\u0020-\u007E\u0085\u00A0-\uD7FF\uE000-\uFFFD\u10000-\u10FFFF]+"}


def test_threads_share_one_checker():
    c = model_check.ModelChecker()
    out: list = []

    def work():
        for _ in range(20):
            out.append(len(tag(c, ("k", "v*"))))
            out.append(len(query(c, "sns", "Publish", {"TopicArn": TOPIC, "Message": "m",
                                                      "Subject": "a\nb"}, SNS_V)))

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert out == [1] * len(out) and len(out) == 320
