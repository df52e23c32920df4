"""Reserved concurrency of the three functions comes from parameters (issue 17, item 9).

Lambda reserves concurrency for a function only while the account keeps 100 unreserved: "You can
reserve up to the Unreserved account concurrency value that is shown, minus 100 for functions that
don't have reserved concurrency"
(https://docs.aws.amazon.com/lambda/latest/dg/configuration-concurrency.html). So every
reservation must be one a new account (quota 10) can turn off: 0 means "no reservation", which the
template writes as AWS::NoValue (a reservation of 0 would mean "never invoke"). Every default is
"no reservation": the ordering the deployer and the scaler rely on comes from their FIFO work
queues instead (one message group per account and Region, handed out one message at a time:
"Scaling behavior for FIFO queues", https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-scaling.html).
"""

from __future__ import annotations

import re

import pytest

from template_support import evaluate_conditions, with_conditions

ORG = {"Mode": "organization", "OrganizationId": "o-exampleorg1"}

# (parameters, mode overrides) -> expected ReservedConcurrentExecutions per function (None = absent)
CASES = [
    # Defaults: nothing reserved in either mode, so `sam deploy --guided` succeeds in a new account.
    ({}, {"DeployerFunction": None, "ScalerFunction": None, "RecoveryFunction": None}),
    (ORG, {"DeployerFunction": None, "ScalerFunction": None, "RecoveryFunction": None}),
    # A new account: nothing reserved at all.
    (
        {"DeployerReservedConcurrency": "0", "ScalerReservedConcurrency": "0", "RecoveryConcurrency": "0"},
        {"DeployerFunction": None, "ScalerFunction": None, "RecoveryFunction": None},
    ),
    (
        {**ORG, "DeployerReservedConcurrency": "0", "ScalerReservedConcurrency": "0"},
        {"DeployerFunction": None, "ScalerFunction": None, "RecoveryFunction": None},
    ),
    # Explicit values, and recovery's cap.
    (
        {"DeployerReservedConcurrency": "3", "ScalerReservedConcurrency": "1", "RecoveryConcurrency": "20"},
        {"DeployerFunction": {"Ref": "DeployerReservedConcurrency"}, "ScalerFunction": 1, "RecoveryFunction": {"Ref": "RecoveryConcurrency"}},
    ),
    (
        {**ORG, "DeployerReservedConcurrency": "40", "RecoveryConcurrency": "10"},
        {"DeployerFunction": {"Ref": "DeployerReservedConcurrency"}, "ScalerFunction": None, "RecoveryFunction": {"Ref": "RecoveryConcurrency"}},
    ),
]


@pytest.mark.parametrize(("params", "want"), CASES, ids=[str(c[0]) for c in CASES])
def test_reserved_concurrency_follows_the_parameters(params, want, template) -> None:
    conditions = evaluate_conditions(template, **params)
    for function_id, expected in want.items():
        props = with_conditions(template["Resources"][function_id]["Properties"], conditions)
        assert props.get("ReservedConcurrentExecutions") == expected, (function_id, params)


def test_concurrency_parameters(template) -> None:
    p = template["Parameters"]
    assert p["DeployerReservedConcurrency"]["Default"] == "0", "the default must work in every account (quota 10)"
    assert p["ScalerReservedConcurrency"]["Default"] == 0, "the default must work in every account (quota 10)"
    assert [str(v) for v in p["ScalerReservedConcurrency"]["AllowedValues"]] == ["0", "1"], (
        "more than one scaler at a time lets two decisions on one service race"
    )
    assert p["RecoveryConcurrency"]["Default"] == "0", "the default must work in every account (quota 10)"
    # Only one spelling of zero, so a zero can never become a reservation of 0 (no invocations).
    for name in ("DeployerReservedConcurrency", "RecoveryConcurrency"):
        rx = re.compile(p[name]["AllowedPattern"])
        assert rx.fullmatch("0") and rx.fullmatch("20")
        assert not rx.fullmatch("00") and not rx.fullmatch("007") and not rx.fullmatch("-1"), name
    grouped = {n for g in template["Metadata"]["AWS::CloudFormation::Interface"]["ParameterGroups"] for n in g["Parameters"]}
    assert {"DeployerReservedConcurrency", "ScalerReservedConcurrency", "RecoveryConcurrency"} <= grouped


def test_no_reservation_is_no_value_never_zero(template) -> None:
    """Lambda takes a reservation of 0 as "throttle every invocation": 0 must remove the property."""
    everything_off = evaluate_conditions(
        template, DeployerReservedConcurrency="0", ScalerReservedConcurrency="0", RecoveryConcurrency="0"
    )
    for function_id in ("DeployerFunction", "RecoveryFunction", "ScalerFunction"):
        props = with_conditions(template["Resources"][function_id]["Properties"], everything_off)
        assert "ReservedConcurrentExecutions" not in props, function_id


@pytest.mark.parametrize("mode", [{}, ORG], ids=["account", "organization"])
def test_the_work_queues_order_what_a_reservation_did(mode, template) -> None:
    """Both modes: the deployer and the scaler read AUTOPILOT_QUEUE_URL from their own FIFO queue
    and are handed its messages back one at a time per group (BatchSize 1), whatever the
    reservation parameters say."""
    conditions = evaluate_conditions(template, **mode)
    resources = template["Resources"]
    for function_id, queue_id in (("DeployerFunction", "DeployerWorkQueue"), ("ScalerFunction", "ScalerWorkQueue")):
        queue = resources[queue_id]
        assert "Condition" not in queue and queue["Properties"]["FifoQueue"] is True, queue_id
        env = with_conditions(resources[function_id]["Properties"], conditions)["Environment"]["Variables"]
        assert env["AUTOPILOT_QUEUE_URL"] == {"Ref": queue_id}, function_id
        mapping = resources[f"{queue_id}Mapping"]
        assert "Condition" not in mapping, queue_id
        props = mapping["Properties"]
        assert props["EventSourceArn"] == {"Fn::GetAtt": [queue_id, "Arn"]}
        assert props["FunctionName"] == {"Ref": function_id}
        assert props["BatchSize"] == 1 and props["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
        # "at least six times the configuration timeout on your function" (services-sqs-configure.html)
        assert queue["Properties"]["VisibilityTimeout"] >= 6 * resources[function_id]["Properties"]["Timeout"], queue_id
    # Recovery's work is per stopped task and already guarded per record: no queue.
    assert "AUTOPILOT_QUEUE_URL" not in resources["RecoveryFunction"]["Properties"]["Environment"]["Variables"]


def test_readme_names_the_quota_that_matters() -> None:
    from template_support import REPO  # noqa: PLC0415

    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert "aws lambda get-account-settings" in readme
    for name in ("DeployerReservedConcurrency", "ScalerReservedConcurrency", "RecoveryConcurrency"):
        assert name in readme, name
