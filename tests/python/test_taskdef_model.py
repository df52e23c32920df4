"""The deployer's task-definition copy against ECS's API model (botocore): the fields it removes
are exactly the output-only ones, and the fields it knows are exactly RegisterTaskDefinition's.

functions/deployer/src/taskdef.rs copies DescribeTaskDefinition's raw `taskDefinition` into
RegisterTaskDefinition, minus `READ_ONLY`. A member ECS adds to the `TaskDefinition` shape but not
to RegisterTaskDefinition's input (as it did with `deleteRequestedAt`) would be copied and refused
by AWS, failing every deploy of every service: this test fails first, on the botocore update that
brings the member. `KNOWN` only decides what is logged as "newer than this build"; it must be the
model's shared members, so the log names exactly what is new.
"""

from __future__ import annotations

import re

import botocore.session
import pytest

from template_support import REPO

TASKDEF_RS = REPO / "functions" / "deployer" / "src" / "taskdef.rs"


def rust_list(name: str) -> list[str]:
    """The string items of `pub const NAME: &[&str] = &[...];` in taskdef.rs."""
    source = TASKDEF_RS.read_text(encoding="utf-8")
    m = re.search(rf"pub const {name}: &\[&str\] =\s*&\[(.*?)\];", source, re.S)
    assert m, f"no `pub const {name}: &[&str]` in {TASKDEF_RS.relative_to(REPO)}"
    items = re.findall(r'"([^"]*)"', m.group(1))
    assert items, f"{name} is empty"
    assert len(items) == len(set(items)), f"{name} lists a field twice: {items}"
    return items


@pytest.fixture(scope="module")
def ecs():
    return botocore.session.get_session().get_service_model("ecs")


@pytest.fixture(scope="module")
def output_members(ecs) -> set[str]:
    return set(ecs.shape_for("TaskDefinition").members)


@pytest.fixture(scope="module")
def input_members(ecs) -> set[str]:
    return set(ecs.operation_model("RegisterTaskDefinition").input_shape.members)


def test_read_only_fields_are_the_models_output_only_members(output_members, input_members) -> None:
    output_only = output_members - input_members
    read_only = set(rust_list("READ_ONLY"))
    assert not output_only - read_only, (
        f"TaskDefinition members RegisterTaskDefinition does not take, missing from READ_ONLY in "
        f"taskdef.rs (the copy would carry them and AWS would refuse it): {sorted(output_only - read_only)}"
    )
    assert not read_only - output_only, (
        f"READ_ONLY removes fields RegisterTaskDefinition takes (the copy would lose them): "
        f"{sorted(read_only - output_only)}"
    )
    # The research note's list (issue 14, §8), checked against this model.
    assert "deleteRequestedAt" in read_only


def test_known_fields_are_the_models_shared_members(output_members, input_members) -> None:
    shared = output_members & input_members
    known = set(rust_list("KNOWN"))
    assert known == shared, (
        f"KNOWN in taskdef.rs is not the model's RegisterTaskDefinition ∩ TaskDefinition: "
        f"new in the model {sorted(shared - known)}, gone from it {sorted(known - shared)}"
    )


def test_tags_are_the_only_input_only_member(output_members, input_members) -> None:
    # register_request() takes tags from the describe answer's `tags` (include=[TAGS]), beside
    # the task definition: any other input-only member would have no source to copy from.
    assert input_members - output_members == {"tags"}


def test_the_model_has_a_member_the_sdk_does_not(output_members, input_members) -> None:
    # trustedExecutionConfiguration is in the model and not in aws-sdk-ecs 1.157.0 (research note
    # §8): the raw copy carries it (functions/deployer/tests/sdk_fidelity.rs sends it through the SDK).
    assert "trustedExecutionConfiguration" in output_members & input_members
