"""The operations of the AWS SDK for Rust clients the functions use: fluent method -> IAM action.

The table (sdk_operations.json next to this file) is generated from the SDK crates' own sources,
pinned by Cargo.lock, so every method a client offers is known, not only the ones the code calls
today: a new call to any of them is recognised by the IAM coverage test.

    .venv/bin/python tests/python/sdk_operations.py          # regenerate sdk_operations.json

test_iam_coverage.py checks that the table still matches the crates of Cargo.lock when their
sources are in the local cargo registry (~/.cargo/registry/src), so an SDK upgrade that adds
operations cannot leave it stale.
"""

from __future__ import annotations

import json
import os
import re
import sys
import tomllib
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
TABLE_PATH = HERE / "sdk_operations.json"
CARGO_LOCK = REPO / "Cargo.lock"

# SDK module (aws_sdk_<module>) -> IAM service prefix. For these services the IAM action of an
# operation is the API operation's own name (no S3-style renames), see the Service Authorization
# Reference of each service.
IAM_PREFIX: dict[str, str] = {
    "ecs": "ecs",
    "ecr": "ecr",
    "autoscaling": "autoscaling",
    "cloudwatch": "cloudwatch",
    "elasticloadbalancingv2": "elasticloadbalancing",
    "dynamodb": "dynamodb",
    "sns": "sns",
    "sqs": "sqs",
    "sts": "sts",
}

_FLUENT = re.compile(r"pub fn ([a-z0-9_]+)\(\s*&self,?\s*\)\s*->\s*crate::operation::([a-z0-9_]+)::builders::\w+FluentBuilder")
_METADATA = re.compile(r'orchestrator::Metadata::new\(\s*"([A-Za-z0-9]+)"', re.S)


def locked_versions(lock: Path = CARGO_LOCK) -> dict[str, str]:
    """aws-sdk-<module> crate versions pinned by Cargo.lock."""
    packages = tomllib.loads(lock.read_text(encoding="utf-8")).get("package", [])
    wanted = {f"aws-sdk-{m}" for m in IAM_PREFIX}
    return {p["name"]: p["version"] for p in packages if p["name"] in wanted}


def crate_source(name: str, version: str) -> Path | None:
    home = Path(os.environ.get("CARGO_HOME", Path.home() / ".cargo"))
    for candidate in sorted((home / "registry" / "src").glob(f"*/{name}-{version}")):
        if (candidate / "src" / "client").is_dir():
            return candidate
    return None


def operations_of_crate(root: Path) -> dict[str, str]:
    """Fluent method name -> API operation name, from the crate's client/ and operation/ modules."""
    out: dict[str, str] = {}
    for client_file in sorted((root / "src" / "client").glob("*.rs")):
        for method, module in _FLUENT.findall(client_file.read_text(encoding="utf-8")):
            op_file = root / "src" / "operation" / f"{module}.rs"
            found = _METADATA.search(op_file.read_text(encoding="utf-8"))
            if not found:
                raise ValueError(f"{op_file}: no orchestrator::Metadata with the operation name")
            out[method] = found.group(1)
    if not out:
        raise ValueError(f"{root}: no fluent builders found (has the SDK's layout changed?)")
    return out


def generate() -> dict[str, object]:
    versions = locked_versions()
    services: dict[str, object] = {}
    for module, prefix in IAM_PREFIX.items():
        name = f"aws-sdk-{module}"
        if name not in versions:
            raise SystemExit(f"{name} is not in Cargo.lock")
        root = crate_source(name, versions[name])
        if root is None:
            raise SystemExit(f"{name} {versions[name]} is not in the cargo registry: run cargo fetch")
        services[module] = {
            "crate": f"{name} {versions[name]}",
            "iam_prefix": prefix,
            "operations": operations_of_crate(root),
        }
    return {"generated_by": "tests/python/sdk_operations.py", "services": services}


def load_table() -> dict[str, object]:
    return json.loads(TABLE_PATH.read_text(encoding="utf-8"))


if __name__ == "__main__":
    table = generate()
    TABLE_PATH.write_text(json.dumps(table, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    counts = {m: len(s["operations"]) for m, s in table["services"].items()}  # type: ignore[index]
    print(f"wrote {TABLE_PATH.relative_to(REPO)}: {counts}", file=sys.stderr)
