"""The CloudWatch dashboard: valid JSON, the widgets the issue asks for, and the same namespace,
metric names and Function dimension values as the code that emits them."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from template_support import REPO, resources_of_type

FUNCTIONS = {"deployer": "DeployerFunction", "recovery": "RecoveryFunction", "scaler": "ScalerFunction"}
QUEUES = ["DeployerDeadLetterQueue", "RecoveryDeadLetterQueue", "ScalerDeadLetterQueue"]


@pytest.fixture(scope="module")
def dashboard(template) -> dict[str, Any]:
    found = resources_of_type(template, "AWS::CloudWatch::Dashboard")
    assert len(found) == 1, "one dashboard"
    return next(iter(found.values()))["Properties"]


@pytest.fixture(scope="module")
def body(dashboard, template) -> dict[str, Any]:
    sub = dashboard["DashboardBody"]["Fn::Sub"]
    assert isinstance(sub, str)

    def placeholder(m: re.Match[str]) -> str:
        name = m.group(1)
        ref = name.split(".")[0]
        assert ref.startswith("AWS::") or ref in template["Resources"], f"${{{name}}} names nothing"
        if "." in name:
            assert template["Resources"][ref]["Type"] == "AWS::SQS::Queue" and name.endswith(".QueueName"), name
        return f"<{name}>"

    return json.loads(re.sub(r"\$\{([^}]+)\}", placeholder, sub))


def metric_lines(body: dict[str, Any]) -> list[tuple[str, list[Any]]]:
    """(widget title, metric line) for every metric of every widget."""
    out = []
    for w in body["widgets"]:
        if w["type"] == "metric":
            for line in w["properties"]["metrics"]:
                out.append((w["properties"]["title"], [x for x in line if not isinstance(x, dict)]))
    return out


def emitted_contract() -> tuple[str, set[str], set[str]]:
    """Namespace, metric names and Function values as the Rust code writes them."""
    metrics_rs = (REPO / "shared/src/metrics.rs").read_text(encoding="utf-8")
    namespace = re.search(r'pub const NAMESPACE: &str = "([^"]+)"', metrics_rs).group(1)
    names = set(re.findall(r'\{"Name": "([A-Za-z]+)", "Unit"', metrics_rs))
    functions = set()
    for crate in FUNCTIONS:
        lib = (REPO / "functions" / crate / "src/lib.rs").read_text(encoding="utf-8")
        functions |= set(re.findall(r'const NAME: &\'static str = "([a-z]+)"', lib))
    return namespace, names, functions


def test_dashboard_metrics_are_the_ones_the_code_emits(body) -> None:
    namespace, names, functions = emitted_contract()
    assert names == {"Events", "Failures", "Rejected", "Actions"}
    assert functions == set(FUNCTIONS)
    own = [line for _, line in metric_lines(body) if not line[0].startswith("AWS/")]
    assert own
    for line in own:
        assert line[0] == namespace and line[1] in names and line[2:] == ["Function", line[3]], line
        assert line[3] in functions, line


@pytest.mark.parametrize("function,title_word", [("deployer", "Deployments"), ("recovery", "Recoveries"), ("scaler", "Scalings")])
def test_a_widget_per_kind_of_action(function, title_word, body, template) -> None:
    namespace, _, _ = emitted_contract()
    widgets = [t for t, line in metric_lines(body) if line == [namespace, "Actions", "Function", function]]
    assert widgets and all(t.startswith(title_word) for t in widgets), widgets


@pytest.mark.parametrize("metric", ["Events", "Failures", "Rejected"])
def test_per_function_counts(metric, body) -> None:
    namespace, _, _ = emitted_contract()
    lines = [line for _, line in metric_lines(body) if line[:2] == [namespace, metric]]
    assert sorted(line[3] for line in lines) == sorted(FUNCTIONS)


@pytest.mark.parametrize("metric", ["Errors", "Duration", "Throttles"])
def test_lambda_metrics_per_function(metric, body) -> None:
    lines = [line for _, line in metric_lines(body) if line[:2] == ["AWS/Lambda", metric]]
    assert sorted(line[2:] for line in lines) == sorted(["FunctionName", f"<{f}>"] for f in FUNCTIONS.values())


def test_dead_letter_queue_depth(body) -> None:
    lines = [line for _, line in metric_lines(body) if line[:2] == ["AWS/SQS", "ApproximateNumberOfMessagesVisible"]]
    assert sorted(line[2:] for line in lines) == sorted(["QueueName", f"<{q}.QueueName>"] for q in QUEUES)


def test_widgets_fit_the_grid_without_overlapping(body) -> None:
    cells: set[tuple[int, int]] = set()
    for w in body["widgets"]:
        assert 0 <= w["x"] and w["x"] + w["width"] <= 24, w
        mine = {(x, y) for x in range(w["x"], w["x"] + w["width"]) for y in range(w["y"], w["y"] + w["height"])}
        assert not mine & cells, f"overlap at {sorted(mine & cells)[:3]}"
        cells |= mine
        if w["type"] == "metric":
            assert w["properties"]["region"] == "<AWS::Region>"


def test_log_level_cannot_drop_the_metric_lines(template) -> None:
    """The metric lines carry no "level": Lambda files them as INFO, so a function log level
    above INFO would filter them out and the dashboard would show nothing."""
    metrics_rs = (REPO / "shared/src/metrics.rs").read_text(encoding="utf-8")
    if '"level"' in metrics_rs:
        pytest.skip("the metric lines now carry their own level")
    assert set(template["Parameters"]["LogLevel"]["AllowedValues"]) <= {"DEBUG", "INFO"}


def test_dashboard_url_output(template) -> None:
    out = template["Outputs"]["DashboardUrl"]["Value"]["Fn::Sub"]
    assert "#dashboards:name=${Dashboard}" in out
