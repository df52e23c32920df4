"""Session fixtures of the template tests (helpers live in template_support.py)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from template_support import (
    EVENTS_DIR,
    Route,
    event_files,
    function_events,
    load_samconfig,
    load_template,
    resources_of_type,
    sam_transform,
)


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
def routes(template: dict[str, Any]) -> dict[str, Route]:
    """The functions' `Events` (SAM event sources), by "<Function>.<Event>"."""
    found = function_events(template)
    assert found, "no AWS::Serverless::Function of template.yaml has Events"
    return found


@pytest.fixture(scope="session")
def transformed(template: dict[str, Any]) -> dict[str, Any]:
    """template.yaml after SAM's transform: the rules and permissions SAM generates."""
    return sam_transform(template)


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
