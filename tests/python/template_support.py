"""Loading of template.yaml, samconfig.toml and events/ for the template tests.

The template is read with a YAML loader that understands CloudFormation's short-form intrinsic
functions (!Ref, !Sub, !GetAtt, !If, ...) and turns them into their long form ({"Ref": ...},
{"Fn::Sub": ...}, {"Fn::GetAtt": [...]}), so tests look at the template itself, never a copy.

EventBridge wiring lives in the functions' `Events` (SAM event sources). `function_events` reads it
from the template as written; `sam_transform` runs SAM's own transform (samtranslator, which
cfn-lint brings into .venv) offline, so tests can also check the AWS::Events::Rule and
AWS::Lambda::Permission resources SAM generates from it (<Function><Event>, and
<Function><Event>Permission).
"""

from __future__ import annotations

import copy
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
TEMPLATE_PATH = REPO / "template.yaml"
SAMCONFIG_PATH = REPO / "samconfig.toml"
EVENTS_DIR = REPO / "events"


class CfnLoader(yaml.SafeLoader):
    """SafeLoader plus CloudFormation's short-form tags."""


def _construct_cfn_tag(loader: CfnLoader, tag_suffix: str, node: yaml.Node) -> dict[str, Any]:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    if tag_suffix == "Ref":
        return {"Ref": value}
    if tag_suffix == "Condition":
        return {"Condition": value}
    if tag_suffix == "GetAtt" and isinstance(value, str):
        # !GetAtt Resource.Attribute (the attribute itself may contain dots)
        resource, _, attribute = value.partition(".")
        return {"Fn::GetAtt": [resource, attribute]}
    return {f"Fn::{tag_suffix}": value}


CfnLoader.add_multi_constructor("!", _construct_cfn_tag)


def load_template(path: Path = TEMPLATE_PATH) -> dict[str, Any]:
    with path.open(encoding="utf-8") as fh:
        return yaml.load(fh, Loader=CfnLoader)  # noqa: S506 - CfnLoader is a SafeLoader


def load_samconfig(path: Path = SAMCONFIG_PATH) -> dict[str, Any]:
    with path.open("rb") as fh:
        return tomllib.load(fh)


PSEUDO_PARAMETERS = {
    "AWS::Partition": "aws",
    "AWS::Region": "us-east-1",
    "AWS::AccountId": "123456789012",
    "AWS::URLSuffix": "amazonaws.com",
}


def resolve(value: Any, template: dict[str, Any], stack_name: str, **params: str) -> Any:
    """Resolve the intrinsics a pattern, a rule name or a schedule may use: Ref to a parameter
    (its default) or a pseudo parameter, and Fn::Sub over those. Anything else is an error, so a
    template change that tests can no longer evaluate fails loudly instead of passing silently."""
    values = {name: str(p.get("Default", "")) for name, p in template.get("Parameters", {}).items()}
    known = {**PSEUDO_PARAMETERS, "AWS::StackName": stack_name, **values, **params}

    if isinstance(value, list):
        return [resolve(v, template, stack_name, **params) for v in value]
    if isinstance(value, dict):
        if len(value) == 1:
            (key, arg), = value.items()
            if key == "Ref":
                if arg not in known:
                    raise ValueError(f"cannot resolve Ref {arg!r} (not a parameter or pseudo parameter)")
                return known[arg]
            if key == "Fn::Sub":
                if not isinstance(arg, str):
                    raise ValueError(f"cannot resolve Fn::Sub with a variable map: {arg!r}")

                def substitute(m: re.Match[str]) -> str:
                    name = m.group(1)
                    if name not in known:
                        raise ValueError(f"cannot resolve ${{{name}}} in Fn::Sub {arg!r}")
                    return known[name]

                return re.sub(r"\$\{([^}!]+)\}", substitute, arg)
            if key == "Fn::Split":
                sep, source = arg
                return str(resolve(source, template, stack_name, **params)).split(sep)
            if key.startswith("Fn::") or key == "Condition":
                raise ValueError(f"cannot resolve intrinsic {key} in {value!r}")
        return {k: resolve(v, template, stack_name, **params) for k, v in value.items()}
    return value


def resources_of_type(template: dict[str, Any], type_name: str) -> dict[str, dict[str, Any]]:
    return {rid: r for rid, r in template["Resources"].items() if r.get("Type") == type_name}


def event_files() -> list[Path]:
    return sorted(EVENTS_DIR.glob("*.json"))


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def policy_statements(template: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Every identity-policy statement of the template, with the logical id it belongs to."""
    out = []
    for rid, res in template["Resources"].items():
        props = res.get("Properties", {})
        if res["Type"] == "AWS::Serverless::Function":
            for policy in as_list(props.get("Policies", [])):
                assert isinstance(policy, dict) and "Statement" in policy, (
                    f"{rid}: only inline policy documents can be audited here, not {policy!r} "
                    "(managed policies and SAM policy templates hide their statements)"
                )
                out += [(rid, st) for st in as_list(policy["Statement"])]
        elif res["Type"] == "AWS::IAM::Role":
            for policy in props.get("Policies", []):
                out += [(rid, st) for st in as_list(policy["PolicyDocument"]["Statement"])]
            assert not props.get("ManagedPolicyArns"), f"{rid}: managed policies cannot be audited here"
        elif res["Type"] in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            out += [(rid, st) for st in as_list(props["PolicyDocument"]["Statement"])]
    return out


# SAM event source types that become an EventBridge rule on the default bus (the others, e.g.
# ScheduleV2 = EventBridge Scheduler, would deliver another payload: see template.yaml's header).
EVENTBRIDGE_EVENT_TYPES = ("EventBridgeRule", "Schedule")


@dataclass(frozen=True)
class Route:
    """One event of a function's `Events`: what SAM turns into one rule, one target, one permission."""

    function_id: str
    event_name: str
    type: str
    properties: dict[str, Any]

    @property
    def id(self) -> str:
        """How tests name the route: "<Function>.<Event>" (e.g. DeployerFunction.ImagePush)."""
        return f"{self.function_id}.{self.event_name}"

    @property
    def rule_id(self) -> str:
        """Logical id of the AWS::Events::Rule SAM generates: <function-LogicalId><event-LogicalId>
        (sam-specification-generated-resources-function.html)."""
        return f"{self.function_id}{self.event_name}"


def function_events(template: dict[str, Any]) -> dict[str, Route]:
    """Every event of every AWS::Serverless::Function, by "<Function>.<Event>"."""
    out = {}
    for fid, res in resources_of_type(template, "AWS::Serverless::Function").items():
        for name, event in (res.get("Properties", {}).get("Events") or {}).items():
            route = Route(fid, name, event["Type"], event.get("Properties", {}))
            out[route.id] = route
    return out


def sam_transform(template: dict[str, Any]) -> dict[str, Any]:
    """The template after SAM's transform (AWS::Serverless-2016-10-31), offline: no AWS call, the
    region is us-east-1 and the functions' local CodeUri is swapped for an S3 placeholder (the
    transform accepts only S3 locations; `sam build`/`sam package` do the same swap)."""
    import boto3  # noqa: PLC0415 - only the transform tests need these
    from samtranslator.parser.parser import Parser  # noqa: PLC0415
    from samtranslator.translator.translator import Translator  # noqa: PLC0415

    fragment = copy.deepcopy(template)
    globals_fn = fragment.get("Globals", {}).get("Function", {})
    if globals_fn.get("CodeUri") == ".":
        globals_fn["CodeUri"] = "s3://placeholder-bucket/ecs-autopilot.zip"
    for res in fragment["Resources"].values():
        if res.get("Type") == "AWS::Serverless::Function" and res.get("Properties", {}).get("CodeUri") == ".":
            res["Properties"]["CodeUri"] = "s3://placeholder-bucket/ecs-autopilot.zip"
    translator = Translator({}, Parser(), boto_session=boto3.session.Session(region_name="us-east-1"))
    return translator.translate(fragment, parameter_values={})


# ------------------------------------------------------------------ conditions


def parameter_values(template: dict[str, Any], **overrides: str) -> dict[str, str]:
    """Every parameter's value as CloudFormation would see it: its default, unless overridden."""
    values = {name: str(p.get("Default", "")) for name, p in template.get("Parameters", {}).items()}
    for name, value in overrides.items():
        assert name in values, f"no parameter {name}"
        values[name] = str(value)
    return values


def evaluate_conditions(template: dict[str, Any], **overrides: str) -> dict[str, bool]:
    """The template's Conditions with the given parameter values (defaults otherwise). Knows the
    condition functions CloudFormation has: Fn::Equals, Fn::Not, Fn::And, Fn::Or, Condition."""
    params = parameter_values(template, **overrides)
    conditions = template.get("Conditions", {})
    cache: dict[str, bool] = {}

    def value(v: Any) -> Any:
        if isinstance(v, dict) and set(v) == {"Ref"}:
            return params[v["Ref"]]
        if isinstance(v, dict) and set(v) == {"Fn::Join"}:
            sep, items = v["Fn::Join"]
            return sep.join(str(value(i)) for i in (items if isinstance(items, list) else value(items)))
        if isinstance(v, dict) and set(v) == {"Fn::Select"}:
            index, items = v["Fn::Select"]
            return value(items)[int(index)]
        if isinstance(v, dict) and set(v) == {"Fn::Split"}:
            sep, s = v["Fn::Split"]
            return str(value(s)).split(sep)
        return v

    def ev(expr: Any) -> bool:
        (key, arg), = expr.items()
        if key == "Condition":
            return cond(arg)
        if key == "Fn::Equals":
            return str(value(arg[0])) == str(value(arg[1]))
        if key == "Fn::Not":
            return not ev(arg[0])
        if key == "Fn::And":
            return all(ev(a) for a in arg)
        if key == "Fn::Or":
            return any(ev(a) for a in arg)
        raise ValueError(f"unknown condition function {key}")

    def cond(name: str) -> bool:
        if name not in cache:
            cache[name] = ev(conditions[name])
        return cache[name]

    return {name: cond(name) for name in conditions}


def with_conditions(value: Any, conditions: dict[str, bool]) -> Any:
    """`value` as CloudFormation sees it under these condition values: Fn::If takes its branch,
    AWS::NoValue drops the key or list item. Other intrinsics stay as they are."""
    no_value = {"Ref": "AWS::NoValue"}
    if isinstance(value, dict):
        if set(value) == {"Fn::If"}:
            name, yes, no = value["Fn::If"]
            return with_conditions(yes if conditions[name] else no, conditions)
        out = {}
        for k, v in value.items():
            v = with_conditions(v, conditions)
            if v != no_value:
                out[k] = v
        return out
    if isinstance(value, list):
        return [x for x in (with_conditions(v, conditions) for v in value) if x != no_value]
    return value
