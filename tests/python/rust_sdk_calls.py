"""Find the AWS SDK for Rust calls in the functions' sources: `receiver.snake_case_op()`.

A fluent SDK call is a method with no arguments whose name is an operation of a client
(sdk_operations.json knows every operation of every client the code may use). Several services
share operation names (describe_services, list_tags_for_resource, ...), so the service comes from
the receiver: the identifier right before the call (`self.ecs.update_service()` -> `ecs`,
`client.publish()` -> `client`) is looked up among the names the crate binds to a client type
(`ecs: autopilot::aws_sdk_ecs::Client`, `client: &elbv2::Client`, with the file's `use ... as`
aliases). A file whose code names a single SDK crate resolves any receiver to it. Anything else is
reported as unresolved, never guessed: the test fails until the binding is made recognisable.

Comments, string literals and `#[cfg(test)]` items are blanked out first (line numbers kept), so
mocks in unit tests and operation names in strings or docs are not calls.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from sdk_operations import load_table

_TABLE = load_table()["services"]
# SDK module -> {fluent method: IAM action}
OPERATIONS: dict[str, dict[str, str]] = {
    module: {method: f"{svc['iam_prefix']}:{op}" for method, op in svc["operations"].items()}
    for module, svc in _TABLE.items()
}
ALL_METHODS: set[str] = {m for ops in OPERATIONS.values() for m in ops}


def blank_comments_and_strings(src: str) -> str:
    """Replace comments and the contents of string and char literals by spaces (newlines kept)."""
    out: list[str] = []
    i, n = 0, len(src)

    def blank(text: str) -> str:
        return "".join(c if c == "\n" else " " for c in text)

    while i < n:
        c = src[i]
        if src.startswith("//", i):
            j = src.find("\n", i)
            j = n if j == -1 else j
            out.append(blank(src[i:j]))
            i = j
        elif src.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if src.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif src.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            out.append(blank(src[i:j]))
            i = j
        elif (m := re.compile(r'b?r(#*)"').match(src, i)) and (i == 0 or not (src[i - 1].isalnum() or src[i - 1] == "_")):
            end = src.find('"' + m.group(1), m.end())
            end = n if end == -1 else end + 1 + len(m.group(1))
            out.append('"' + blank(src[i + 1 : end - 1]) + '"')
            i = end
        elif c == '"':
            j = i + 1
            while j < n and src[j] != '"':
                j += 2 if src[j] == "\\" else 1
            out.append('"' + blank(src[i + 1 : j]) + '"')
            i = j + 1
        elif c == "'" and (m := re.compile(r"'(\\(x[0-9a-fA-F]{2}|u\{[0-9a-fA-F]+\}|.)|[^\\'])'").match(src, i)):
            out.append("' '" + blank(src[i + 3 : m.end()]))
            i = m.end()
        else:
            out.append(c)
            i += 1
    return "".join(out)


def blank_test_items(src: str) -> str:
    """Blank every item under `#[cfg(test)]` (a test module, function or use). `src` must already
    be free of comments and strings, so braces balance."""
    chars = list(src)
    for m in re.finditer(r"#\[cfg\(test\)\]", src):
        i = m.end()
        while i < len(src) and src[i] not in "{;":
            i += 1
        if i < len(src) and src[i] == "{":
            depth = 0
            while i < len(src):
                depth += {"{": 1, "}": -1}.get(src[i], 0)
                if depth == 0:
                    break
                i += 1
        for k in range(m.start(), min(i + 1, len(src))):
            if chars[k] != "\n":
                chars[k] = " "
    return "".join(chars)


def code_of(path: Path) -> str:
    return blank_test_items(blank_comments_and_strings(path.read_text(encoding="utf-8")))


_USE_ALIAS = re.compile(r"\buse\s+(?:::)?(?:autopilot::)?aws_sdk_([a-z0-9]+)(?:\s+as\s+(\w+))?\s*;")
_SDK_PATH = re.compile(r"\baws_sdk_([a-z0-9]+)\b")
_CLIENT_BINDING = re.compile(r"\b([a-z_][a-z0-9_]*)\s*:\s*&?\s*(?:mut\s+)?(?:[A-Za-z_]\w*::)*?([A-Za-z_]\w*)::Client\b")
_CALL = re.compile(r"(?P<recv>[A-Za-z_]\w*|\))\s*\.\s*(?P<op>[a-z][a-z0-9_]*)\s*\(\s*\)")
_UFCS = re.compile(r"(?P<path>(?:[A-Za-z_]\w*::)*)(?P<module>[A-Za-z_]\w*)::Client::(?P<op>[a-z][a-z0-9_]*)\s*\(")


def aliases_of(code: str) -> dict[str, str]:
    """Path segment -> SDK module, for this file: `aws_sdk_ecs` and any `use ... as ecs`."""
    out = {f"aws_sdk_{m}": m for m in OPERATIONS}
    for module, alias in _USE_ALIAS.findall(code):
        if module in OPERATIONS and alias:
            out[alias] = module
    return out


def sdk_modules_named(code: str) -> set[str]:
    return {m for m in _SDK_PATH.findall(code) if m in OPERATIONS}


@dataclass
class Call:
    file: Path
    line: int
    receiver: str
    method: str
    module: str | None = None  # resolved SDK module

    @property
    def action(self) -> str | None:
        return OPERATIONS[self.module].get(self.method) if self.module else None

    def where(self) -> str:
        return f"{self.file}:{self.line}: {self.receiver}.{self.method}()"


@dataclass
class Scan:
    calls: list[Call] = field(default_factory=list)
    unresolved: list[str] = field(default_factory=list)
    bindings: dict[str, str] = field(default_factory=dict)

    @property
    def actions(self) -> set[str]:
        return {c.action for c in self.calls if c.action}


def client_bindings(code: str) -> dict[str, set[str]]:
    """Names this file binds to a client type (struct fields, parameters, typed lets)."""
    aliases = aliases_of(code)
    out: dict[str, set[str]] = {}
    for name, segment in _CLIENT_BINDING.findall(code):
        if segment in aliases:
            out.setdefault(name, set()).add(aliases[segment])
    return out


def scan_files(files: list[Path], root: Path) -> Scan:
    """The SDK calls of one crate. A receiver resolves, in this order, through a client binding
    of its own file, through the only SDK crate its file names, or through a client binding
    elsewhere in the crate (`aws.ecs.op()` on a struct declared in another module)."""
    codes = {f: code_of(f) for f in files}
    scan = Scan()
    local = {f: client_bindings(code) for f, code in codes.items()}
    crate: dict[str, set[str]] = {}
    for bindings in local.values():
        for name, modules in bindings.items():
            crate.setdefault(name, set()).update(modules)
    scan.bindings = {name: next(iter(m)) for name, m in crate.items() if len(m) == 1}

    for f, code in codes.items():
        rel = f.relative_to(root)
        aliases = aliases_of(code)
        named = sdk_modules_named(code) | {m for a, m in aliases.items() if re.search(rf"\b{a}::", code)}
        for m in _CALL.finditer(code):
            method = m.group("op")
            if method not in ALL_METHODS:
                continue
            line = code.count("\n", 0, m.start("op")) + 1
            call = Call(rel, line, m.group("recv"), method)
            candidates = local[f].get(call.receiver)
            if not candidates and len(named) == 1:
                candidates = named
            if not candidates:
                candidates = crate.get(call.receiver)
            if not candidates or len(candidates) > 1:
                why = f"it may be any of {sorted(candidates)}" if candidates else "no client binding of that name"
                scan.unresolved.append(f"{call.where()}: cannot tell which client {call.receiver!r} is ({why})")
                continue
            module = next(iter(candidates))
            if method not in OPERATIONS[module]:
                scan.unresolved.append(f"{call.where()}: {method} is no operation of aws_sdk_{module}")
                continue
            call.module = module
            scan.calls.append(call)
        for m in _UFCS.finditer(code):
            module = aliases.get(m.group("module"))
            if module and m.group("op") in OPERATIONS[module]:
                line = code.count("\n", 0, m.start("op")) + 1
                scan.calls.append(Call(rel, line, f"{m.group('module')}::Client", m.group("op"), module))
    return scan


_ERROR_LABEL = re.compile(r'Error::aws\(\s*"([a-z0-9-]+)"\s*,\s*"([A-Za-z0-9]+)"')


def error_labels(files: list[Path]) -> set[str]:
    """`Error::aws("ecs", "UpdateService", e)` labels outside tests, as IAM actions. Labels are
    read before strings are blanked, from code whose comments and test items are gone."""
    out = set()
    for f in files:
        raw = f.read_text(encoding="utf-8")
        no_tests = blank_test_items(blank_comments_and_strings(raw))
        # keep raw text only where the blanked code still has the call (strings blanked there)
        for m in _ERROR_LABEL.finditer(raw):
            if no_tests[m.start() : m.start() + len("Error::aws(")] == "Error::aws(":
                out.add(f"{m.group(1)}:{m.group(2)}")
    return out
