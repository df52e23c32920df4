"""Session fixtures of the template tests (helpers live in template_support.py)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from template_support import EVENTS_DIR, event_files, load_samconfig, load_template, resources_of_type


@pytest.fixture(scope="session")
def template() -> dict[str, Any]:
    return load_template()


@pytest.fixture(scope="session")
def samconfig() -> dict[str, Any]:
    return load_samconfig()


@pytest.fixture(scope="session")
def stack_name(samconfig: dict[str, Any]) -> str:
    return samconfig["default"]["global"]["parameters"]["stack_name"]


@pytest.fixture(scope="session")
def rules(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found = resources_of_type(template, "AWS::Events::Rule")
    assert found, "template.yaml declares no AWS::Events::Rule"
    return found


@pytest.fixture(scope="session")
def functions(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found = resources_of_type(template, "AWS::Serverless::Function")
    assert found, "template.yaml declares no AWS::Serverless::Function"
    return found


@pytest.fixture(scope="session")
def events() -> dict[str, dict[str, Any]]:
    files = event_files()
    assert files, f"no events in {EVENTS_DIR}"
    return {f.name: json.loads(f.read_text(encoding="utf-8")) for f in files}
