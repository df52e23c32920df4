"""Every `autopilot:` tag value a user can copy from us is one AWS accepts where it is set.

ECS refuses tag values outside `[\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]*` (the `TagValue` shape of ECS in
botocore's model, applied to the whole value; the ECS developer guide's tag restrictions add:
at most 256 characters, no `aws:` prefix). moto accepts anything, which is how `v*` and
`release-*,main` once reached the README. CloudWatch alarm tags (`autopilot:scale`, `steps`,
`cooldown`) have no character pattern.

The values are read from what users and the test bed copy: README.md, docs/, events/, the
playground and its scenarios, the seed world and the benchmark worlds. (The requests the tests
send are checked at run time by tests/proxy/aws_proxy.py --validate refuse.)
"""

from __future__ import annotations

import re
from pathlib import Path

import botocore.session
import pytest
import regex

from template_support import REPO

# Where each tag is set: alarm tags go on CloudWatch alarms, every other on ECS resources.
ALARM_TAGS = {"scale", "steps", "cooldown"}

SOURCES = [
    "README.md",
    *sorted(str(p.relative_to(REPO)) for p in (REPO / "docs").glob("*.md")),
    *sorted(str(p.relative_to(REPO)) for p in (REPO / "events").glob("*.json")),
    "events/README.md",
    "scripts/playground",
    *sorted(str(p.relative_to(REPO)) for p in (REPO / "scripts" / "scenarios").glob("*")),
    "tests/seed_world.py",
    "benches/worlds.py",
]

KEY = r"autopilot:(?P<key>[a-z][a-z-]*)"
# The ways a tag is written in those files, each with its value.
FORMS = [
    # prose and shell: autopilot:deploy="prefix:release- main", autopilot:rollback=on
    re.compile(KEY + r"""=(?:"(?P<dq>[^"]*)"|'(?P<sq>[^']*)'|(?P<bare>[^\s`'",)|;\]]*))"""),
    # AWS CLI shorthand, the whole item quoted: 'Key=autopilot:steps,Value=0:15:+1 15::+2'
    re.compile(r"'[Kk]ey=" + KEY + r",[Vv]alue=(?P<sq>[^']*)'"),
    # AWS CLI shorthand unquoted: key=autopilot:deploy,value=semver
    re.compile(r"(?<!')[Kk]ey=" + KEY + r",[Vv]alue=(?:'(?P<sq>[^']*)'|\"(?P<dq>[^\"]*)\"|(?P<bare>[^\s'\"]*))"),
    # Python / JSON dicts: "autopilot:deploy": "semver"
    re.compile(r"""["']""" + KEY + r"""["']\s*:\s*(?:f?"(?P<dq>[^"]*)"|f?'(?P<sq>[^']*)')"""),
    # {"key": "autopilot:deploy", "value": "any"}, dict(key='autopilot:x', value='y')
    re.compile(r"""[Kk]ey["']?\s*[:=]\s*["']""" + KEY + r"""["']\s*,\s*["']?[Vv]alue["']?\s*[:=]\s*(?:f?"(?P<dq>[^"]*)"|f?'(?P<sq>[^']*)')"""),
]


def written_values() -> list[tuple[str, int, str, str]]:
    """(file, line, tag key, value) of every autopilot: tag value written in SOURCES."""
    found = []
    for name in SOURCES:
        path = REPO / name
        if not path.is_file():
            continue
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            seen = set()
            for form in FORMS:
                for m in form.finditer(line):
                    # The key itself, written as text (`autopilot:deploy` in a table), has no value.
                    value = next((m.group(g) for g in ("dq", "sq", "bare") if g in m.groupdict() and m.group(g) is not None), None)
                    # A value interpolated by the script itself (an f-string's {…}) is not one.
                    if value is None or "{" in value or (m.start(), m.group("key")) in seen:
                        continue
                    seen.add((m.start(), m.group("key")))
                    found.append((name, n, m.group("key"), value))
    return found


@pytest.fixture(scope="module")
def ecs_tag_value_pattern() -> regex.Pattern:
    shape = botocore.session.get_session().get_service_model("ecs").shape_for("TagValue")
    return regex.compile(shape.metadata["pattern"])


def test_the_model_still_says_what_we_rely_on(ecs_tag_value_pattern) -> None:
    shape = botocore.session.get_session().get_service_model("ecs").shape_for("TagValue")
    assert shape.metadata["max"] == 256
    for refused in ("v*", "release-*,main", "sha256:*", "sg-1,sg-2", "+25%", "a?b"):
        assert not ecs_tag_value_pattern.fullmatch(refused), refused
    for accepted in ("semver", "prefix:release- main", "semver:2.4", "sg-1 sg-2", "0:15:+1 15::+2", "on-failure:2", ""):
        assert ecs_tag_value_pattern.fullmatch(accepted), accepted


def test_values_are_found_where_users_read_them() -> None:
    """The extraction itself works: a test that finds nothing would pass for nothing."""
    values = written_values()
    where = {(f, k, v) for f, _, k, v in values}
    assert ("README.md", "deploy", "semver") in where, sorted(where)
    assert ("README.md", "steps", "0:15:+1 15::+2") in where, sorted(where)
    assert ("README.md", "security-groups", "sg-0a1b2c3d sg-4e5f6a7b") in where, sorted(where)
    assert ("tests/seed_world.py", "deploy", "any") in where, sorted(where)
    assert ("tests/seed_world.py", "steps", "0:15:+1 15::+2") in where, sorted(where)
    assert sum(1 for _, _, k, _ in values if k not in ALARM_TAGS) >= 20, values


def test_every_ecs_tag_value_is_one_ecs_accepts(ecs_tag_value_pattern) -> None:
    refused = []
    for name, line, key, value in written_values():
        if key in ALARM_TAGS:
            continue
        if not ecs_tag_value_pattern.fullmatch(value) or len(value) > 256 or value[:4].lower() == "aws:":
            refused.append(f"{name}:{line}: autopilot:{key}={value!r}")
    assert not refused, "ECS would refuse these tag values:\n  " + "\n  ".join(refused)


@pytest.mark.parametrize("key", ["deploy", "steps", "restart", "security-groups"])
def test_the_forms_read_what_they_should(key) -> None:
    """Each written form of a tag yields exactly its value."""
    samples = {
        "deploy": ["tagged `autopilot:deploy=semver`.", "--tags key=autopilot:deploy,value=semver key=x,value=y",
                   '"autopilot:deploy": "semver",', "dict(key='autopilot:deploy', value='semver')"],
        "steps": ["'Key=autopilot:steps,Value=semver' Key=x", '{"key": "autopilot:steps", "value": "semver"}'],
        "restart": ["autopilot:restart='semver'"],
        "security-groups": ['autopilot:security-groups="semver"'],
    }[key]
    for text in samples:
        got = [(k, v) for form in FORMS for m in form.finditer(text)
               for k, v in [(m.group("key"), next(m.group(g) for g in ("dq", "sq", "bare") if g in m.groupdict() and m.group(g) is not None))]]
        assert (key, "semver") in got and all(v == "semver" for _, v in got), (text, got)
