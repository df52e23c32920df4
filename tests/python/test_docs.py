"""docs/operations.md, the page about the AWS stack, says what template.yaml does: the same
parameters and defaults, every alarm explained, every output named, an architecture diagram, and
cost arithmetic that adds up."""

from __future__ import annotations

import re

import pytest

from template_support import REPO, resources_of_type

DOC = REPO / "docs" / "operations.md"


@pytest.fixture(scope="module")
def doc() -> str:
    return DOC.read_text(encoding="utf-8")


def section(doc: str, heading: str) -> str:
    """The text under a heading of any level (## or deeper), up to the next heading of the same
    or a higher level (its own subsections included); `#` lines inside code blocks are not headings."""
    lines = doc.splitlines(keepends=True)
    level, body, fenced = 0, [], False
    for line in lines:
        if line.startswith("```"):
            fenced = not fenced
        m = None if fenced else re.match(r"(#+) (.*)", line)
        if level and m and len(m.group(1)) <= level:
            break
        if level:
            body.append(line)
        elif m and m.group(2).strip() == heading and len(m.group(1)) >= 2:
            level = len(m.group(1))
    assert level, f"no '## {heading}' section in {DOC.relative_to(REPO)}"
    return "".join(body)


def table_rows(text: str) -> list[list[str]]:
    """Rows of the first markdown table in `text` (code blocks ignored), header and rule dropped."""
    text = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)
    rows = []
    for line in text.splitlines():
        if line.startswith("|"):
            rows.append([c.strip() for c in line.strip().strip("|").split("|")])
        elif rows:
            break
    return rows[2:]


def test_parameters_table_matches_the_template(doc, template) -> None:
    rows = table_rows(section(doc, "Parameters"))
    documented = {r[0].strip("`"): r[1] for r in rows}
    params = template["Parameters"]
    assert list(documented) == list(params), "same parameters, in the template's order"
    for name, p in params.items():
        default = str(p.get("Default", ""))
        shown = documented[name]
        if default == "":
            assert shown == "*(empty)*", name
        else:
            assert shown == f"`{default}`", f"{name}: documented {shown}, template {default!r}"


def test_every_alarm_is_explained(doc, template) -> None:
    rows = table_rows(section(doc, "Alarms: what they mean and what to do"))
    explained = [r[0].strip("`") for r in rows]
    assert sorted(explained) == sorted(resources_of_type(template, "AWS::CloudWatch::Alarm"))
    assert all(len(r) == 4 and all(len(c) > 20 for c in r[1:]) for r in rows)


def test_every_output_is_named(doc, template) -> None:
    outputs = section(doc, "Outputs")
    for name in template["Outputs"]:
        stem = re.sub(r"^(Deployer|Recovery|Scaler)", "*", name)
        assert f"`{name}`" in outputs or f"`{stem}" in outputs, name


def test_architecture_diagram_names_every_rule_target(doc, template) -> None:
    m = re.search(r"```mermaid\n(.*?)```", doc, re.S)
    assert m, "no mermaid diagram"
    diagram = m.group(1)
    assert diagram.startswith("flowchart")
    for word in ("deployer", "recovery", "scaler", "DynamoDB", "SNS", "Chatbot", "dead-letter", "Auto Scaling", "ECR"):
        assert word in diagram, word


def test_cost_table_adds_up(doc) -> None:
    cost = section(doc, "Cost of a typical month")
    assert "us-east-1 list prices" in cost and "check the pricing" in cost
    rows = [r for r in table_rows(cost.split("**Arithmetic**")[1]) if r[-1].startswith(("$", "**"))]
    amounts = [float(r[-1].strip("*≈ $")) for r in rows if not r[0].startswith("**")]
    total = float(next(r for r in rows if r[0].startswith("**"))[-1].strip("*≈ $"))
    assert abs(sum(amounts) - total) < 0.05, (sum(amounts), total)
    invocations = table_rows(cost.split("**Invocations per month**")[1].split("**Arithmetic**")[0])
    body = [r for r in invocations if not r[0].startswith("**")]
    total_row = next(r for r in invocations if r[0].startswith("**"))
    n = lambda s: float(s.strip("*").replace(",", "").rstrip(" s"))  # noqa: E731
    assert sum(n(r[2]) for r in body) == n(total_row[2])
    assert sum(n(r[4]) for r in body) == n(total_row[4])
    for r in body:
        assert abs(n(r[2]) * n(r[3]) - n(r[4])) < 1, r
