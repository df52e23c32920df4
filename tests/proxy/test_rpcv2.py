"""Unit tests of tests/proxy/rpcv2.py: Smithy RPC v2 CBOR <-> AWS JSON 1.0 (no server).

Requests are made by botocore's own rpc-v2-cbor serializer (what an SDK sends: timestamps as
tag 1, the same headers as aws-sdk-cloudwatch) or by hand where a case needs odd CBOR; answers
are read back by botocore's rpc-v2-cbor parser, an implementation independent of this one, and
by cbor2 to look at the bytes.

Run: .venv/bin/python -m pytest tests/proxy -q
"""

from __future__ import annotations

import base64
import datetime as dt
import gzip
import json
import math
import sys
from pathlib import Path

import botocore.model
import botocore.parsers
import botocore.serialize
import botocore.session
import cbor2
import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import rpcv2  # noqa: E402

CW = "GraniteServiceVersion20100801"
AUTH = ("Authorization", "AWS4-HMAC-SHA256 Credential=AKIDCBOR/20260101/us-east-1/monitoring/"
                         "aws4_request, SignedHeaders=host;x-amz-date, Signature=00")
UTC = dt.timezone.utc


@pytest.fixture(scope="module")
def model():
    return botocore.session.get_session().get_service_model("cloudwatch")


@pytest.fixture(scope="module")
def tr():
    return rpcv2.Translator()


def sdk_request(model, op: str, params: dict) -> dict:
    """The request botocore's smithy-rpc-v2-cbor serializer makes (url_path, headers, body)."""
    ser = botocore.serialize.create_serializer("smithy-rpc-v2-cbor")
    return ser.serialize_to_request(params, model.operation_model(op))


def to_json(tr, model, op: str, params: dict):
    req = sdk_request(model, op, params)
    assert req["url_path"] == f"/service/{CW}/operation/{op}"
    j = tr.request(CW, op, [*req["headers"].items(), AUTH], req["body"])
    return j, json.loads(j.body)


def raw(body: bytes):
    """CBOR bytes -> values, tags kept as CBORTag."""
    return cbor2.loads(body, semantic_decoders={1: lambda v, _i: cbor2.CBORTag(1, v)})


def sdk_parse(model, op: str, status: int, headers: list, body: bytes) -> dict:
    """What botocore's rpc-v2-cbor parser (an SDK) makes of an answer."""
    parser = botocore.parsers.create_parser("smithy-rpc-v2-cbor")
    opm = model.operation_model(op)
    shape = opm.output_shape if status < 300 else None
    return parser.parse({"status_code": status, "headers": {k.lower(): v for k, v in headers},
                         "body": body}, shape)


def answer(tr, model, op: str, status: int, body: dict | bytes, headers=None):
    j = rpcv2.JsonRequest(rpcv2.SERVICES[CW], op, "/", [], b"")
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    hdrs = headers if headers is not None else [("Content-Type", "text"),
                                                ("x-amzn-requestid", "rid-1")]
    return tr.response(j, status, hdrs, data)


# ---------------------------------------------------------------------------------------------
# requests: CBOR -> AWS JSON 1.0
# ---------------------------------------------------------------------------------------------
def test_describe_alarms_request(tr, model):
    j, body = to_json(tr, model, "DescribeAlarms", {
        "AlarmNames": ["a", "b"], "MaxRecords": 100, "StateValue": "ALARM",
        "AlarmTypes": ["MetricAlarm"]})
    assert body == {"AlarmNames": ["a", "b"], "MaxRecords": 100, "StateValue": "ALARM",
                    "AlarmTypes": ["MetricAlarm"]}
    assert j.path == "/" and j.operation == "DescribeAlarms"
    h = dict(j.headers)
    assert h["X-Amz-Target"] == f"{CW}.DescribeAlarms"
    assert h["Content-Type"] == "application/x-amz-json-1.0"
    assert h["Authorization"] == AUTH[1]  # moto reads the account and the service from it
    lower = {k.lower() for k in h}
    assert not lower & {"smithy-protocol", "accept"}
    assert [k for k in h if k.lower() == "content-type"] == ["Content-Type"]


def test_list_tags_for_resource_request(tr, model):
    arn = "arn:aws:cloudwatch:us-east-1:123456789012:alarm:a"
    _, body = to_json(tr, model, "ListTagsForResource", {"ResourceARN": arn})
    assert body == {"ResourceARN": arn}


def test_get_metric_data_timestamps_become_epoch_seconds(tr, model):
    start = dt.datetime(2026, 1, 1, tzinfo=UTC)
    end = dt.datetime(2026, 1, 1, 0, 10, 0, 500000, tzinfo=UTC)
    req = sdk_request(model, "GetMetricData", {
        "MetricDataQueries": [{"Id": "q", "MetricStat": {
            "Metric": {"Namespace": "AWS/ECS", "MetricName": "CPUUtilization",
                       "Dimensions": [{"Name": "ClusterName", "Value": "c"}]},
            "Period": 60, "Stat": "Average"}, "ReturnData": True}],
        "StartTime": start, "EndTime": end, "ScanBy": "TimestampDescending"})
    # what the SDK sends: tag 1 over epoch seconds (an integer, or a float with milliseconds)
    sent = raw(req["body"])
    assert sent["StartTime"] == cbor2.CBORTag(1, 1767225600)
    assert sent["EndTime"] == cbor2.CBORTag(1, 1767226200.5)
    body = json.loads(tr.request(CW, "GetMetricData", req["headers"].items(), req["body"]).body)
    assert body["StartTime"] == 1767225600 and body["EndTime"] == 1767226200.5
    assert body["MetricDataQueries"][0]["MetricStat"]["Metric"]["Dimensions"] == [
        {"Name": "ClusterName", "Value": "c"}]
    assert body["MetricDataQueries"][0]["ReturnData"] is True


def test_put_metric_alarm_request(tr, model):
    _, body = to_json(tr, model, "PutMetricAlarm", {
        "AlarmName": "cpu-high", "MetricName": "CPUUtilization", "Namespace": "AWS/ECS",
        "Statistic": "Average", "Period": 60, "EvaluationPeriods": 2, "Threshold": 70.5,
        "ComparisonOperator": "GreaterThanThreshold", "ActionsEnabled": False,
        "Dimensions": [{"Name": "ServiceName", "Value": "api"}],
        "Tags": [{"Key": "autopilot:scale", "Value": "stage01/api"}]})
    assert body == {
        "AlarmName": "cpu-high", "MetricName": "CPUUtilization", "Namespace": "AWS/ECS",
        "Statistic": "Average", "Period": 60, "EvaluationPeriods": 2, "Threshold": 70.5,
        "ComparisonOperator": "GreaterThanThreshold", "ActionsEnabled": False,
        "Dimensions": [{"Name": "ServiceName", "Value": "api"}],
        "Tags": [{"Key": "autopilot:scale", "Value": "stage01/api"}]}


def test_hand_made_cbor_nulls_undefined_indefinite_lengths_and_half_floats(tr):
    # {_ "AlarmNames": [_ "a"], "StateValue": null, "ActionPrefix": undefined,
    #    "MaxRecords": 5} followed by a PutMetricData-style half float
    body = (b"\xbf" + cbor2.dumps("AlarmNames") + b"\x9f" + cbor2.dumps("a") + b"\xff"
            + cbor2.dumps("StateValue") + b"\xf6" + cbor2.dumps("ActionPrefix") + b"\xf7"
            + cbor2.dumps("MaxRecords") + b"\x05" + b"\xff")
    j = tr.request(CW, "DescribeAlarms", [AUTH], body)
    assert json.loads(j.body) == {"AlarmNames": ["a"], "MaxRecords": 5}
    # a half-precision float (servers must read them) and NaN -> JSON's "NaN" string
    data = {"Namespace": "N", "MetricData": [
        {"MetricName": "m", "Timestamp": cbor2.CBORTag(1, 1767225600), "Value": 1.0}]}
    enc = rpcv2.encode(data).replace(b"\xfb\x3f\xf0\x00\x00\x00\x00\x00\x00", b"\xf9\x3c\x00")
    out = json.loads(tr.request(CW, "PutMetricData", [AUTH], enc).body)
    assert out["MetricData"][0] == {"MetricName": "m", "Timestamp": 1767225600, "Value": 1.0}
    data["MetricData"][0]["Value"] = math.nan
    out = json.loads(tr.request(CW, "PutMetricData", [AUTH], rpcv2.encode(data)).body)
    assert out["MetricData"][0]["Value"] == "NaN"


def test_empty_body_is_an_empty_structure(tr):
    j = tr.request(CW, "DescribeAlarms", [AUTH], b"")
    assert j.body == b"{}"


def test_gzip_request_body(tr, model):
    req = sdk_request(model, "PutMetricData", {"Namespace": "N", "MetricData": [
        {"MetricName": "m", "Value": 2.0}]})
    hdrs = [*req["headers"].items(), ("Content-Encoding", "gzip"), AUTH]
    j = tr.request(CW, "PutMetricData", hdrs, gzip.compress(req["body"]))
    assert json.loads(j.body) == {"Namespace": "N", "MetricData": [
        {"MetricName": "m", "Value": 2.0}]}
    assert "content-encoding" not in {k.lower() for k, _ in j.headers}


@pytest.mark.parametrize("body,why", [
    (b"\xa1", "not CBOR"),
    (b"\xa0\x00", "bytes after the CBOR data item"),
    (b"\x82\x01\x02", "not a CBOR map"),
    (b"{}", "not CBOR"),
])
def test_unreadable_requests_are_serialization_exceptions(tr, body, why):
    with pytest.raises(rpcv2.TranslationError) as ei:
        tr.request(CW, "DescribeAlarms", [AUTH], body)
    assert ei.value.code == "SerializationException"
    assert why in ei.value.message


def test_services_it_does_not_translate(tr):
    with pytest.raises(KeyError):
        tr.request("SomeOtherService", "Op", [], b"\xa0")
    assert rpcv2.service_for("com.amazonaws.cloudwatch." + CW) is rpcv2.SERVICES[CW]
    assert rpcv2.service_for("com.example." + CW) is None


def test_operation_the_model_lacks_is_converted_without_shapes(tr):
    body = cbor2.dumps({"When": cbor2.CBORTag(1, 5), "Blob": b"\x00\x01", "N": None})
    j = tr.request(CW, "NoSuchOperation", [AUTH], body)
    assert json.loads(j.body) == {"When": 5, "Blob": "AAE="}
    assert dict(j.headers)["X-Amz-Target"] == f"{CW}.NoSuchOperation"


# ---------------------------------------------------------------------------------------------
# answers: moto's JSON -> CBOR
# ---------------------------------------------------------------------------------------------
MOTO_DESCRIBE = {  # moto 5.2.1's DescribeAlarms answer, with a few values made awkward
    "CompositeAlarms": [], "MetricAlarms": [{
        "AlarmName": "a1", "AlarmArn": "arn:aws:cloudwatch:us-east-1:123456789012:alarm:a1",
        "AlarmConfigurationUpdatedTimestamp": 1796205618.055, "ActionsEnabled": True,
        "OKActions": [], "AlarmActions": [], "StateValue": "OK", "StateReason": "created",
        "StateReasonData": "{}", "StateUpdatedTimestamp": "2026-12-02T10:00:18.055Z",
        "StateTransitionedTimestamp": None, "MetricName": "CPU", "Namespace": "AWS/ECS",
        "Statistic": "Average", "Dimensions": [{"Name": "ServiceName", "Value": "api"}],
        "Period": 60, "EvaluationPeriods": 1.0, "Threshold": 70,
        "ComparisonOperator": "GreaterThanThreshold", "Metrics": []}],
    "NextToken": None}


def test_describe_alarms_answer(tr, model):
    status, hdrs, body = answer(tr, model, "DescribeAlarms", 200, MOTO_DESCRIBE)
    assert status == 200
    h = dict(hdrs)
    assert h["Content-Type"] == "application/cbor" and h["smithy-protocol"] == "rpc-v2-cbor"
    assert h["x-amzn-requestid"] == "rid-1"
    assert [k for k in h if k.lower() == "content-type"] == ["Content-Type"]
    wire = raw(body)
    alarm = wire["MetricAlarms"][0]
    # timestamps: tag 1 over epoch seconds, from a JSON number or an ISO 8601 string
    assert alarm["AlarmConfigurationUpdatedTimestamp"] == cbor2.CBORTag(1, 1796205618.055)
    assert alarm["StateUpdatedTimestamp"] == cbor2.CBORTag(1, 1796205618.055)
    # nulls are left out; doubles are CBOR floats, integers CBOR integers (the Rust SDK's
    # decoder reads a double only from a float and an integer only from an integer)
    assert "StateTransitionedTimestamp" not in alarm and "NextToken" not in wire
    assert alarm["Threshold"] == 70.0 and isinstance(alarm["Threshold"], float)
    assert alarm["EvaluationPeriods"] == 1 and isinstance(alarm["EvaluationPeriods"], int)
    assert b"\x69Threshold\xfb\x40\x51\x80\x00\x00\x00\x00\x00" in body  # 70.0 as a double
    assert b"\xc1\xfb" in body  # tag 1 over a double
    # an SDK reads it
    parsed = sdk_parse(model, "DescribeAlarms", status, hdrs, body)
    a = parsed["MetricAlarms"][0]
    assert a["StateUpdatedTimestamp"] == dt.datetime(2026, 12, 2, 10, 0, 18, 55000, tzinfo=UTC)
    assert a["Threshold"] == 70.0 and a["Dimensions"] == [{"Name": "ServiceName",
                                                           "Value": "api"}]


def test_get_metric_data_answer_tags_each_timestamp(tr, model):
    j = rpcv2.JsonRequest(rpcv2.SERVICES[CW], "GetMetricData", "/", [], b"")
    status, hdrs, body = tr.response(j, 200, [("Content-Type", "text")], json.dumps({
        "MetricDataResults": [{"Id": "q", "Label": "m Sum",
                               "Timestamps": [1767225600, 1767225660], "Values": [1, 2.5],
                               "StatusCode": "Complete"}]}).encode())
    r = raw(body)["MetricDataResults"][0]
    assert r["Timestamps"] == [cbor2.CBORTag(1, 1767225600), cbor2.CBORTag(1, 1767225660)]
    assert r["Values"] == [1.0, 2.5] and all(isinstance(x, float) for x in r["Values"])
    parsed = sdk_parse(model, "GetMetricData", status, hdrs, body)
    assert parsed["MetricDataResults"][0]["Timestamps"][1] == dt.datetime(
        2026, 1, 1, 0, 1, tzinfo=UTC)


def test_blob_answer_becomes_a_byte_string(tr, model):
    png = b"\x89PNG\r\n\x1a\n\x00"
    j = rpcv2.JsonRequest(rpcv2.SERVICES[CW], "GetMetricWidgetImage", "/", [], b"")
    status, hdrs, body = tr.response(j, 200, [], json.dumps(
        {"MetricWidgetImage": base64.b64encode(png).decode()}).encode())
    assert raw(body) == {"MetricWidgetImage": png}
    assert sdk_parse(model, "GetMetricWidgetImage", status, hdrs, body)[
        "MetricWidgetImage"] == png


def test_unit_output_has_no_body_and_no_content_type(tr, model):
    # "Responses for operations with no defined output type ... MUST NOT contain bodies"
    status, hdrs, body = answer(tr, model, "PutMetricAlarm", 200, {})
    assert (status, body) == (200, b"")
    h = {k.lower(): v for k, v in hdrs}
    assert "content-type" not in h and h["smithy-protocol"] == "rpc-v2-cbor"


def test_error_answer(tr, model):
    # moto 5.2.1's SetAlarmState answer for a missing alarm
    moto_hdrs = [("X-Amzn-Errortype", f"{CW}#ResourceNotFound"), ("Content-Type", "text"),
                 ("x-amzn-query-error", "ResourceNotFound;Sender"), ("status", "404"),
                 ("x-amzn-requestid", "rid-2")]
    status, hdrs, body = answer(tr, model, "SetAlarmState", 404, {
        "__type": f"{CW}#ResourceNotFound", "message": "An unspecified service error occurred",
        "Message": "An unspecified service error occurred"}, moto_hdrs)
    assert status == 404
    h = {k.lower(): v for k, v in hdrs}
    assert h["content-type"] == "application/cbor" and h["smithy-protocol"] == "rpc-v2-cbor"
    assert h["x-amzn-query-error"] == "ResourceNotFound;Sender"
    assert "x-amzn-errortype" not in h and "status" not in h  # "SHOULD NOT contain"
    # __type: the absolute shape id; message kept
    assert raw(body) == {"__type": "com.amazonaws.cloudwatch#ResourceNotFound",
                         "message": "An unspecified service error occurred"}
    err = sdk_parse(model, "SetAlarmState", status, hdrs, body)["Error"]
    assert err["Code"] == "ResourceNotFound" and err["Type"] == "Sender"


def test_error_members_follow_the_error_shape(tr, model):
    # moto writes "Message" (the Rust SDK reads ResourceNotFoundException's message from
    # "Message"); "message" is added, as every error has one; both reach the SDK
    status, hdrs, body = answer(tr, model, "TagResource", 404, {
        "__type": f"{CW}#ResourceNotFoundException", "Message": "Unknown"},
        [("x-amzn-query-error", "ResourceNotFoundException;Sender")])
    assert raw(body) == {"__type": "com.amazonaws.cloudwatch#ResourceNotFoundException",
                         "Message": "Unknown", "message": "Unknown"}
    # an error named by its query-compatible code finds its shape
    status, hdrs, body = answer(tr, model, "PutMetricData", 400, {
        "__type": "InvalidParameterValue", "message": "bad"})
    assert raw(body)["__type"] == "com.amazonaws.cloudwatch#InvalidParameterValueException"
    assert sdk_parse(model, "PutMetricData", status, hdrs, body)["Error"]["Code"] == \
        "InvalidParameterValueException"


def test_answers_that_are_not_json(tr, model):
    html = b"<!doctype html>\n<title>500 Internal Server Error</title>"
    status, hdrs, body = answer(tr, model, "DescribeAlarmHistory", 500, html,
                                [("Content-Type", "text/html; charset=utf-8")])
    assert status == 500
    e = raw(body)
    assert e["__type"] == "ProxyTranslationError" and "HTTP 500" in e["message"]
    assert "<!doctype html>" in e["message"]
    assert dict(hdrs)["Content-Type"] == "application/cbor"
    # moto routes an unsigned request to S3 and answers 200 with XML: not a success here
    status, _, body = answer(tr, model, "DescribeAlarms", 200, b"<?xml version='1.0'?><x/>")
    assert status == 502 and raw(body)["__type"] == "ProxyTranslationError"
    # a timestamp that is no date
    status, _, body = answer(tr, model, "DescribeAlarms", 200, {"MetricAlarms": [
        {"StateUpdatedTimestamp": "yesterday"}]})
    assert status == 502 and "cannot turn moto's answer" in raw(body)["message"]


# ---------------------------------------------------------------------------------------------
# value conversions with a synthetic model (float, sparse lists, blobs in requests)
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def synthetic():
    return botocore.model.ServiceModel({
        "metadata": {"protocol": "smithy-rpc-v2-cbor", "apiVersion": "2020-01-01",
                     "serviceId": "X", "endpointPrefix": "x", "targetPrefix": "X"},
        "operations": {},
        "shapes": {
            "S": {"type": "structure", "members": {
                "F": {"shape": "Float"}, "B": {"shape": "Blob"}, "L": {"shape": "Sparse"},
                "Dense": {"shape": "Dense"}, "M": {"shape": "Map"}, "Flag": {"shape": "Bool"},
                "Text": {"shape": "Str"}, "T": {"shape": "Ts"}}},
            "Float": {"type": "float"}, "Double": {"type": "double"},
            "Blob": {"type": "blob"}, "Bool": {"type": "boolean"},
            "Str": {"type": "string"}, "Ts": {"type": "timestamp"},
            "Sparse": {"type": "list", "member": {"shape": "Str"}, "sparse": True},
            "Dense": {"type": "list", "member": {"shape": "Str"}},
            "Map": {"type": "map", "key": {"shape": "Str"}, "value": {"shape": "Double"}},
        }}).shape_for("S")


def test_response_values_by_shape(synthetic):
    out = rpcv2.response_to_cbor({
        "F": 1, "B": "AAE=", "L": ["a", None], "Dense": ["a", None], "M": {"k": "Infinity",
                                                                          "z": None},
        "Flag": "true", "Text": 5, "T": "Wed, 02 Dec 2026 10:00:18 GMT", "Extra": None}, synthetic)
    assert out == {"F": 1.0, "B": b"\x00\x01", "L": ["a", None], "Dense": ["a"],
                   "M": {"k": math.inf}, "Flag": True, "Text": "5",
                   "T": cbor2.CBORTag(1, 1796205618)}
    assert isinstance(out["F"], rpcv2.F32)
    enc = rpcv2.encode(out)
    assert b"\x61F\xfa\x3f\x80\x00\x00" in enc  # a Smithy float: single precision
    assert b"\xfb\x7f\xf0\x00\x00\x00\x00\x00\x00" in enc  # Infinity as a double, not half


def test_request_values_by_shape(synthetic):
    out = rpcv2.request_to_json({
        "F": math.inf, "B": b"\x00\x01", "L": ["a", None], "Dense": ["a", None],
        "T": cbor2.CBORTag(0, "2026-01-01T00:00:00Z"), "Text": None}, synthetic)
    assert out == {"F": "Infinity", "B": "AAE=", "L": ["a", None], "Dense": ["a"],
                   "T": 1767225600}
