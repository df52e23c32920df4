"""model_check: checks AWS API requests against AWS's API model (botocore's service models).

moto accepts requests that AWS refuses: a tag value with a ``*``, a missing required member,
an unknown member, a string longer than its maximum. ``ModelChecker.check()`` reads one
request the way the service would and returns what AWS would refuse in it, as ``Violation``s.

Rules, walking the operation's input shape:

* required members are present (a JSON ``null`` counts as absent);
* strings: ``min``/``max`` length in code points, ``enum``, and ``pattern`` as a *whole-value*
  match (``regex.fullmatch``), which is how AWS services enforce them in practice;
* blobs: ``min``/``max`` in bytes (after base64 decoding); lists and maps: ``min``/``max``
  items; numbers: ``min``/``max``;
* the JSON/query/CBOR type of every value; members the shape does not have ("unknown member");
* a few documented limits the models lack (``DOCUMENTED`` and the ECS tag rules below).

Protocols: awsJson 1.0/1.1 (``X-Amz-Target``), query (form-encoded ``Action=...``) and Smithy
RPC v2 CBOR (``/service/S/operation/Op``: the body decoded with cbor2 and checked like a JSON
one, except that a timestamp is CBOR tag 1 over a number (a bare number passes too), a blob a
byte string, and a float may be any CBOR number). A gzip/deflate ``Content-Encoding`` is undone
first. EC2's query dialect, REST and services without a model here are not checked; they are
counted in ``ModelChecker.unchecked``.

botocore, regex and cbor2 are imported on first use, so importing this module costs nothing.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import sys
import threading
import urllib.parse
from collections import Counter
from dataclasses import asdict, dataclass

# Credential-scope signing name -> botocore service name.
SIGNING_TO_MODEL = {
    "ecs": "ecs",
    "ecr": "ecr",
    "api.ecr": "ecr",
    "dynamodb": "dynamodb",
    "sqs": "sqs",
    "sns": "sns",
    "monitoring": "cloudwatch",
    "autoscaling": "autoscaling",
    "elasticloadbalancing": "elbv2",     # or "elb": chosen by the query Version (ELB_VERSIONS)
    "application-autoscaling": "application-autoscaling",
    "sts": "sts",
    "events": "events",
    "logs": "logs",
    "iam": "iam",
}
# X-Amz-Target prefix -> botocore service name. Decides for JSON protocols, because one signing
# name can serve two models (DynamoDB Streams signs as "dynamodb").
TARGET_TO_MODEL = {
    "AmazonEC2ContainerServiceV20141113": "ecs",
    "AmazonEC2ContainerRegistry_V20150921": "ecr",
    "DynamoDB_20120810": "dynamodb",
    "DynamoDBStreams_20120810": "dynamodbstreams",
    "AmazonSQS": "sqs",
    "GraniteServiceVersion20100801": "cloudwatch",  # JSON 1.0 form of the cloudwatch model
    "AnyScaleFrontendService": "application-autoscaling",
    "AWSEvents": "events",
    "Logs_20140328": "logs",
}
# Classic ELB and ELBv2 share the signing name; the query Version tells them apart.
ELB_VERSIONS = {"2015-12-01": "elbv2", "2012-06-01": "elb"}

# Query parameters that are not members of the input shape.
QUERY_RESERVED = {"Action", "Version"}

# A few models carry Java regex idioms that Python's regex module reads differently. Each is
# rewritten to what it means (the code points U+10000..U+10FFFF) before compiling; the list of
# rewrites made is kept in ModelChecker.rewritten.
PATTERN_REWRITES = (
    # Java UTF-16 surrogate-pair range ("any supplementary character"): a reversed range
    # (\uDC00-\uDBFF) for Python, so it does not compile as written.
    (r"\uD800\uDC00-\uDBFF\uDFFF", r"\U00010000-\U0010FFFF"),
    # "\u10000-\u10FFFF" is \u1000 followed by "0-\u10FF" in Java and Python alike: it meant
    # the supplementary planes.
    (r"\u10000-\u10FFFF", r"\U00010000-\U0010FFFF"),
)
# A pattern match that takes longer than this is abandoned (the rule is skipped and the
# pattern listed in ``uncompilable``): a checker must never stall the proxy.
PATTERN_TIMEOUT_S = 0.25

VALUE_REPR_MAX = 120


@dataclass
class Violation:
    service: str     # botocore service name
    operation: str
    member: str      # path in the request: "tags[0].value", "MessageAttributes['k'].DataType"
    value: str | None  # repr of the value, at most 120 characters (None when absent)
    rule: str        # "pattern ...", "max length 256", "required", "unknown member", ...
    message: str     # one readable line

    def to_dict(self) -> dict:
        return asdict(self)


def _short_repr(v) -> str:
    r = repr(v)
    return r if len(r) <= VALUE_REPR_MAX else r[:VALUE_REPR_MAX - 3] + "..."


# ---------------------------------------------------------------------------------------------
# Documented limits the models lack
# ---------------------------------------------------------------------------------------------
_STARTED_BY = re.compile(r"[A-Za-z0-9_/-]*")


def _ascii_33_126(v: str) -> bool:
    return all(33 <= ord(c) <= 126 for c in v)


def _no_control(v: str) -> bool:
    return not any(ord(c) < 32 or 127 <= ord(c) <= 159 for c in v)


def _utf8_len(v: str) -> int:
    return len(v.encode("utf-8", "surrogatepass"))


def _sns_rules(op: str, prefix: str) -> list:
    # Publish's Subject, as botocore 1.44.8's model documents it (and the current API reference,
    # https://docs.aws.amazon.com/sns/latest/api/API_Publish.html): "Subjects must be UTF-8 text
    # with no line breaks or control characters, and less than 100 characters long."
    # Message: "at most 256 KB in size (262,144 bytes, not 262,144 characters)" (a topic's
    # MaximumMessageSize attribute can raise it; this check does not know about it).
    # https://docs.aws.amazon.com/sns/latest/api/API_PublishBatchRequestEntry.html: the same.
    s, m = prefix + "Subject", prefix + "Message"
    return [
        ("sns", op, s, "documented: SNS Subject has no line breaks or control characters",
         _no_control, "contains a line break or control character"),
        ("sns", op, s, "documented: SNS Subject is fewer than 100 characters",
         lambda v: len(v) < 100, "is not fewer than 100 characters"),
        ("sns", op, m, "documented: SNS Message is at most 262144 bytes",
         lambda v: _utf8_len(v) <= 262144, "is longer than 262144 bytes"),
    ]


# (botocore service, operation, member path ("[]": every item of a list), rule,
#  ok(value) -> bool, what is wrong when not ok)
DOCUMENTED: list[tuple] = [
    # https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_RunTask.html
    # clientToken: "Up to 64 characters are allowed. The valid characters are characters in the
    # range of 33-126, inclusive."
    ("ecs", "RunTask", "clientToken",
     "documented: ECS RunTask clientToken is at most 64 ASCII characters (33-126)",
     lambda v: len(v) <= 64 and _ascii_33_126(v),
     "is not at most 64 ASCII characters in the range 33-126"),
    # startedBy: "Up to 128 letters (uppercase and lowercase), numbers, hyphens (-), forward
    # slash (/), and underscores (_) are allowed." (same page)
    ("ecs", "RunTask", "startedBy",
     "documented: ECS RunTask startedBy is at most 128 letters, numbers, -, / or _",
     lambda v: len(v) <= 128 and _STARTED_BY.fullmatch(v) is not None,
     "is not at most 128 letters, numbers, hyphens, slashes or underscores"),
    # https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_StartTask.html
    # "Up to 36 letters (uppercase and lowercase), numbers, hyphens (-), forward slash (/), and
    # underscores (_) are allowed."
    ("ecs", "StartTask", "startedBy",
     "documented: ECS StartTask startedBy is at most 36 letters, numbers, -, / or _",
     lambda v: len(v) <= 36 and _STARTED_BY.fullmatch(v) is not None,
     "is not at most 36 letters, numbers, hyphens, slashes or underscores"),
    *_sns_rules("Publish", ""),
    *_sns_rules("PublishBatch", "PublishBatchRequestEntries[]."),
]
_DOCUMENTED_BY_OP: dict[tuple[str, str], list] = {}
for _d in DOCUMENTED:
    _DOCUMENTED_BY_OP.setdefault((_d[0], _d[1]), []).append(_d)

# ECS tags, wherever a member named "tags" holds Tag structures (TagResource, RunTask,
# StartTask, CreateService, CreateTaskSet, RegisterTaskDefinition, CreateCluster,
# CreateCapacityProvider, RegisterContainerInstance, ... and nested ones, such as the EBS
# volume tag specifications of RunTask/CreateService):
# https://docs.aws.amazon.com/AmazonECS/latest/developerguide/ecs-using-tags.html (tag
# restrictions): "Maximum number of tags per resource - 50" and "Do not use aws:, AWS:, or any
# upper or lowercase combination of such as a prefix for either keys or values as it is reserved
# for AWS use." Both are checked here.
ECS_TAGS_MAX = 50
ECS_TAG_PREFIX_RULE = "documented: ECS reserves the aws: tag prefix"
ECS_TAGS_MAX_RULE = f"documented: ECS allows at most {ECS_TAGS_MAX} tags"


# ---------------------------------------------------------------------------------------------
# Compiled shapes
# ---------------------------------------------------------------------------------------------
class _Node:
    """One botocore shape, reduced to what the checks need (built once per service+shape)."""
    __slots__ = ("name", "type", "min", "max", "pattern", "pattern_src", "enum", "members",
                 "required", "union", "document", "flattened", "member", "member_name",
                 "key", "value", "key_name", "value_name", "sparse")

    def __init__(self, name: str, type_: str):
        self.name, self.type = name, type_
        self.min = self.max = self.pattern = self.pattern_src = self.enum = None
        self.members: dict[str, _Edge] = {}
        self.required: tuple = ()
        self.union = self.document = self.flattened = self.sparse = False
        self.member = self.key = self.value = None
        self.member_name = self.key_name = self.value_name = None


class _Edge:
    """A structure member: its shape, its query name and how the query protocol spells it."""
    __slots__ = ("node", "wire", "lookup", "flattened", "ecs_tags")

    def __init__(self, node, wire, lookup, flattened, ecs_tags):
        self.node, self.wire, self.lookup = node, wire, lookup
        self.flattened, self.ecs_tags = flattened, ecs_tags


class _Ctx:
    __slots__ = ("service", "operation", "out", "cbor")

    def __init__(self, service: str, operation: str, cbor: bool = False):
        self.service, self.operation, self.out = service, operation, []
        self.cbor = cbor  # values decoded from CBOR (bytes for blobs, tag 1 for timestamps)

    def add(self, path: str, value, rule: str, what: str, absent: bool = False) -> None:
        vr = None if absent else _short_repr(value)
        where = path if absent else f"{path}={vr}"
        self.out.append(Violation(self.service, self.operation, path, vr, rule,
                                  f"{self.service} {self.operation}: {where} {what}"))


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


class _Trie:
    __slots__ = ("value", "kids")

    def __init__(self):
        self.value = None
        self.kids: dict[str, _Trie] = {}


_JSON_TYPES = {dict: "object", list: "array", str: "string", bool: "boolean", int: "number",
               float: "number", type(None): "null", bytes: "byte string",
               bytearray: "byte string"}


def _rpcv2_module():
    """rpcv2.py, next to this file (its CBOR decoding; imports cbor2 only when decoding)."""
    here = os.path.dirname(os.path.abspath(__file__))
    if here not in sys.path:
        sys.path.insert(0, here)
    import rpcv2
    return rpcv2


def _is_tag1(v) -> bool:
    return getattr(v, "tag", None) == 1 and hasattr(v, "value")


class ModelChecker:
    """Thread-safe; loads each service model once, on first use."""

    def __init__(self):
        self._lock = threading.RLock()
        self._session = None
        self._regex = None
        self._models: dict[str, object] = {}
        self._memo: dict[str, dict[str, _Node]] = {}
        self._ops: dict[tuple[str, str], _Node | None] = {}
        self._patterns: dict[str, object] = {}
        self._stats_lock = threading.Lock()
        self.unchecked: Counter = Counter()     # "service:Action" -> requests not checked
        self.uncompilable: list[dict] = []      # patterns skipped (once each)
        self.rewritten: list[dict] = []         # patterns rewritten by PATTERN_REWRITES
        self.checker_errors: Counter = Counter()  # internal errors (request counted unchecked)

    # -- loading ---------------------------------------------------------------------------
    def ensure_available(self) -> None:
        """Imports botocore and regex (raises ImportError if they are missing)."""
        with self._lock:
            if self._session is None:
                import botocore.session
                import regex
                self._regex = regex
                self._session = botocore.session.get_session()

    def _model(self, name: str):
        m = self._models.get(name)
        if m is None:
            with self._lock:
                m = self._models.get(name)
                if m is None:
                    self.ensure_available()
                    m = self._models[name] = self._session.get_service_model(name)
                    self._memo[name] = {}
        return m

    def warm(self, names=("ecs", "ecr", "dynamodb", "sns", "cloudwatch", "autoscaling",
                          "elbv2")) -> None:
        """Loads these models now (the first request of each service does it otherwise)."""
        for n in names:
            try:
                self._model(n)
            except Exception:  # noqa: BLE001 - warming is best effort
                pass

    def _op_node(self, model_name: str, operation: str) -> _Node | None:
        key = (model_name, operation)
        if key in self._ops:
            return self._ops[key]
        model = self._model(model_name)
        with self._lock:
            if key in self._ops:
                return self._ops[key]
            node = None
            if operation in model.operation_names:
                shape = model.operation_model(operation).input_shape
                node = (self._compile(model_name, shape, self._memo[model_name])
                        if shape is not None else _Node("(no input)", "structure"))
            self._ops[key] = node
            return node

    def _compile_pattern(self, service: str, shape: str, src: str):
        if src in self._patterns:
            return self._patterns[src]
        text = src
        for old, new in PATTERN_REWRITES:
            if old in text:
                text = text.replace(old, new)
        try:
            compiled = self._regex.compile(text)
        except Exception as e:  # noqa: BLE001 - regex.error, or anything else: skip the rule
            compiled = None
            with self._stats_lock:
                self.uncompilable.append({"service": service, "shape": shape, "pattern": src,
                                          "error": str(e)})
        else:
            if text != src:
                with self._stats_lock:
                    self.rewritten.append({"service": service, "shape": shape,
                                           "pattern": src, "compiled_as": text})
        self._patterns[src] = compiled
        return compiled

    def _compile(self, service: str, shape, memo: dict) -> _Node:
        node = memo.get(shape.name)
        if node is not None:
            return node
        node = memo[shape.name] = _Node(shape.name, shape.type_name)
        md = shape.metadata
        node.min, node.max = md.get("min"), md.get("max")
        src = md.get("pattern")
        if src is not None and shape.type_name == "string":
            node.pattern_src = src
            node.pattern = self._compile_pattern(service, shape.name, src)
        if shape.type_name == "string" and shape.enum:
            node.enum = frozenset(shape.enum)
        node.sparse = bool(getattr(shape, "_shape_model", {}).get("sparse"))
        t = shape.type_name
        if t == "structure":
            node.document = bool(md.get("document"))
            node.union = bool(md.get("union"))
            if not node.document:
                for mname, ms in shape.members.items():
                    child = self._compile(service, ms, memo)
                    ser = ms.serialization
                    wire = ser.get("name", mname)
                    flattened = bool(ser.get("flattened"))
                    lookup = wire
                    if ms.type_name == "list" and flattened and \
                            ms.member.serialization.get("name"):
                        lookup = ms.member.serialization["name"]
                    ecs_tags = (service == "ecs" and mname == "tags" and child.type == "list"
                                and child.member is not None
                                and child.member.type == "structure"
                                and {"key", "value"} <= set(child.member.members))
                    node.members[mname] = _Edge(child, wire, lookup, flattened, ecs_tags)
                node.required = tuple(shape.required_members)
        elif t == "list":
            node.flattened = bool(shape.serialization.get("flattened"))
            node.member_name = shape.member.serialization.get("name")
            node.member = self._compile(service, shape.member, memo)
        elif t == "map":
            node.flattened = bool(shape.serialization.get("flattened"))
            node.key_name = shape.key.serialization.get("name", "key")
            node.value_name = shape.value.serialization.get("name", "value")
            node.key = self._compile(service, shape.key, memo)
            node.value = self._compile(service, shape.value, memo)
        return node

    # -- the check -------------------------------------------------------------------------
    def _unchecked(self, service: str, action: str) -> list:
        with self._stats_lock:
            self.unchecked[f"{service}:{action}"] += 1
        return []

    def model_name(self, service: str, protocol: str, headers, params: dict | None) -> str | None:
        if protocol == "json":
            target = _header(headers, "X-Amz-Target") or ""
            prefix = target.rpartition(".")[0]
            if prefix in TARGET_TO_MODEL:
                return TARGET_TO_MODEL[prefix]
        name = SIGNING_TO_MODEL.get(service)
        if name == "elbv2" and params is not None:
            name = ELB_VERSIONS.get((params.get("Version") or ("",))[-1], "elbv2")
        return name

    def check(self, service: str, action: str, protocol: str, headers, body: bytes,
              query: str = "") -> list[Violation]:
        """Violations of one request. ``service`` is the credential scope's signing name,
        ``query`` the URL's query string (query-protocol parameters may travel there).
        Never raises: an internal error counts the request as unchecked."""
        try:
            return self._check(service, action, protocol, headers, body or b"", query or "")
        except Exception as e:  # noqa: BLE001 - the proxy must keep going
            with self._stats_lock:
                self.checker_errors[f"{service}:{action}: {type(e).__name__}: {e}"[:300]] += 1
            return self._unchecked(service, action)

    def _check(self, service, action, protocol, headers, body: bytes, query: str):
        if protocol not in ("json", "query", "rpcv2"):  # ec2, rest, control
            return self._unchecked(service, action)
        encoding = _header(headers, "Content-Encoding")
        if encoding and body:  # the SDKs gzip large PutMetricData bodies (requestCompression)
            try:
                body = _rpcv2_module()._decompress(body, encoding)
            except Exception as e:  # noqa: BLE001 - zlib.error, OSError, EOFError, ValueError
                ctx = _Ctx(SIGNING_TO_MODEL.get(service, service), action)
                ctx.add("(body)", body[:60], "unparseable body",
                        f"cannot be decoded as Content-Encoding {encoding} ({e})")
                return ctx.out
        pairs = None
        if protocol == "query":
            pairs, err = _parse_form(body, query)
            params: dict | None = {}
            for k, v in pairs or ():
                params.setdefault(k, []).append(v)
        else:
            params = None
        name = self.model_name(service, protocol, headers, params)
        if name is None:
            return self._unchecked(service, action)
        node = self._op_node(name, action)
        if node is None:  # an operation this model does not have (or a newer one)
            return self._unchecked(service, action)
        ctx = _Ctx(name, action, cbor=protocol == "rpcv2")

        if protocol == "rpcv2":
            try:
                value = _rpcv2_module().decode(body)
            except ImportError as e:  # cbor2 missing: cannot read it
                with self._stats_lock:
                    self.checker_errors[f"{service}:{action}: cbor2 is not installed: {e}"] += 1
                return self._unchecked(service, action)
            except ValueError as e:
                ctx.add("(body)", body[:60], "unparseable body",
                        f"cannot be parsed as CBOR ({e})")
                return ctx.out
        elif protocol == "json":
            try:
                value = json.loads(body) if body.strip() else {}
            except (ValueError, RecursionError) as e:
                ctx.add("(body)", body[:60], "unparseable body",
                        f"cannot be parsed as JSON ({e})")
                return ctx.out
        else:
            if err:
                ctx.add("(body)", body[:60], "unparseable body",
                        f"cannot be parsed as a form-encoded query ({err})")
                return ctx.out
            root = _Trie()
            for k, v in pairs:
                if k in QUERY_RESERVED:
                    continue
                t = root
                for part in k.split("."):
                    t = t.kids.get(part) or t.kids.setdefault(part, _Trie())
                t.value = v
            value = self._q_build(root, node, "", ctx, False)

        try:
            self._walk(value, node, "", ctx)
        except RecursionError:
            ctx.out.clear()
            ctx.add("(body)", body[:60], "unparseable body",
                    "cannot be parsed: it is nested too deeply")
            return ctx.out
        for _svc, _op, path, rule, ok, what in _DOCUMENTED_BY_OP.get((name, action), ()):
            for p, v in _select(value, path):
                if isinstance(v, str) and not ok(v):
                    ctx.add(p, v, rule, what)
        return ctx.out

    # -- query protocol: flat parameters -> the structure they encode -----------------------
    def _q_unknown(self, t: _Trie, key: str, ctx: _Ctx) -> None:
        """Reports every parameter at or under ``t`` as an unknown member."""
        stack = [(key, t)]
        while stack:
            key, t = stack.pop()
            if t.value is not None:
                ctx.add(key, t.value, "unknown member", "is not a member of the input shape")
            stack.extend((_join(key, k), sub) for k, sub in reversed(t.kids.items()))

    def _q_build(self, t: _Trie, node: _Node, key: str, ctx: _Ctx, flat: bool):
        typ = node.type
        if typ == "structure":
            if node.document or not t.kids:
                return t.value if t.value is not None else {}
            if t.value is not None:
                ctx.add(key, t.value, "unknown member", "is not a member of the input shape")
            out = {}
            used = set()
            for mname, e in node.members.items():
                sub = t.kids.get(e.lookup)
                if sub is None:
                    continue
                used.add(e.lookup)
                out[mname] = self._q_build(sub, e.node, _join(key, e.lookup), ctx, e.flattened)
            for k, sub in t.kids.items():
                if k not in used:
                    self._q_unknown(sub, _join(key, k), ctx)
            return out
        if typ in ("list", "map"):
            if not t.kids:
                return [] if typ == "list" and t.value == "" else (
                    {} if t.value == "" else t.value)
            if t.value is not None:
                ctx.add(key, t.value, "unknown member", "is not a member of the input shape")
            if node.flattened or flat:
                holder, hkey = t, key
            else:
                wrap = (node.member_name or "member") if typ == "list" else "entry"
                holder, hkey = t.kids.get(wrap), _join(key, wrap)
                for k, sub in t.kids.items():
                    if k != wrap:
                        self._q_unknown(sub, _join(key, k), ctx)
                if holder is None:
                    return [] if typ == "list" else {}
                if holder.value is not None:
                    ctx.add(hkey, holder.value, "unknown member",
                            "is not a member of the input shape")
            items = []
            for k, sub in holder.kids.items():
                if k.isdigit() and int(k) >= 1:
                    items.append((int(k), k, sub))
                else:
                    self._q_unknown(sub, _join(hkey, k), ctx)
            items.sort()
            if typ == "list":
                return [self._q_build(sub, node.member, _join(hkey, k), ctx, False)
                        for _, k, sub in items]
            out = {}
            for _, k, sub in items:
                ekey = _join(hkey, k)
                ksub, vsub = sub.kids.get(node.key_name), sub.kids.get(node.value_name)
                for kk, extra in sub.kids.items():
                    if kk not in (node.key_name, node.value_name):
                        self._q_unknown(extra, _join(ekey, kk), ctx)
                if ksub is None or ksub.value is None:
                    ctx.add(_join(ekey, node.key_name), None, "required",
                            "is required (a map entry without its key)", absent=True)
                    continue
                mk = ksub.value
                for kk, extra in ksub.kids.items():
                    self._q_unknown(extra, _join(_join(ekey, node.key_name), kk), ctx)
                out[mk] = (self._q_build(vsub, node.value, _join(ekey, node.value_name), ctx,
                                         False) if vsub is not None else None)
            return out
        # scalars
        for k, sub in t.kids.items():
            self._q_unknown(sub, _join(key, k), ctx)
        v = t.value
        if v is None:
            return None
        try:
            if typ in ("integer", "long"):
                return int(v, 10)
            if typ in ("float", "double"):
                return float(v)
        except ValueError:
            return v  # a string where a number belongs: _walk reports the type
        if typ == "boolean":
            return {"true": True, "false": False}.get(v, v)
        return v

    # -- the rules -------------------------------------------------------------------------
    def _walk(self, v, node: _Node, path: str, ctx: _Ctx) -> None:
        t = node.type
        if t == "string":
            if not isinstance(v, str):
                return self._type(v, "string", path, ctx)
            self._bounds(len(v), v, node, path, ctx, "{} length {}",
                         "is shorter than {} characters ({})", "is longer than {} characters ({})")
            if node.enum is not None and v not in node.enum:
                shown = sorted(node.enum)
                listing = ", ".join(shown[:12]) + (", ..." if len(shown) > 12 else "")
                ctx.add(path, v, f"enum [{listing}]", f"is not one of [{listing}]")
            if node.pattern is not None:
                try:
                    ok = node.pattern.fullmatch(v, timeout=PATTERN_TIMEOUT_S) is not None
                except TimeoutError:
                    self._timed_out(ctx.service, node, len(v))
                    ok = True
                if not ok:
                    ctx.add(path, v, f"pattern {node.pattern_src}",
                            f"does not match the pattern {node.pattern_src}")
        elif t == "structure":
            if node.document:
                return
            if not isinstance(v, dict):
                return self._type(v, "structure", path, ctx)
            members = node.members
            present = 0
            for k, x in v.items():
                e = members.get(k)
                if e is None:
                    ctx.add(_join(path, k), x, "unknown member",
                            f"is not a member of {node.name}")
                    continue
                if x is None:
                    continue
                present += 1
                sub = _join(path, k)
                self._walk(x, e.node, sub, ctx)
                if e.ecs_tags and isinstance(x, list):
                    self._ecs_tags(x, e.node, sub, ctx)
            for r in node.required:
                if v.get(r) is None:
                    ctx.add(_join(path, r), None, "required", "is required", absent=True)
            if node.union and present != 1:
                ctx.add(path or "(request)", v, "union: exactly one member",
                        f"sets {present} members of the union {node.name} (exactly one)")
        elif t == "list":
            if not isinstance(v, list):
                return self._type(v, "list", path, ctx)
            self._count(v, node, path, ctx)
            m = node.member
            for i, x in enumerate(v):
                if x is None and node.sparse:
                    continue
                self._walk(x, m, f"{path}[{i}]", ctx)
        elif t == "map":
            if not isinstance(v, dict):
                return self._type(v, "map", path, ctx)
            self._count(v, node, path, ctx)
            for k, x in v.items():
                sub = f"{path}[{k!r}]"
                self._walk(k, node.key, f"{sub} (key)", ctx)
                if x is None and node.sparse:
                    continue
                self._walk(x, node.value, sub, ctx)
        elif t in ("integer", "long"):
            if isinstance(v, bool) or not (isinstance(v, int) or
                                           (isinstance(v, float) and v.is_integer())):
                return self._type(v, t, path, ctx)
            self._range(v, node, path, ctx)
        elif t in ("float", "double"):
            if not ctx.cbor and isinstance(v, str) and v in ("NaN", "Infinity", "-Infinity"):
                return
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                return self._type(v, t, path, ctx)
            self._range(v, node, path, ctx)
        elif t == "boolean":
            if not isinstance(v, bool):
                return self._type(v, "boolean", path, ctx)
        elif t == "timestamp":
            if ctx.cbor:  # rpcv2Cbor: "tag 1 (epoch-based date/time)" over an integer or float
                x = v.value if _is_tag1(v) else v
                if isinstance(x, bool) or not isinstance(x, (int, float)):
                    return self._type(v, "timestamp (CBOR tag 1 over a number)", path, ctx)
            elif isinstance(v, bool) or not isinstance(v, (int, float, str)):
                return self._type(v, "timestamp", path, ctx)
        elif t == "blob":
            if ctx.cbor:  # rpcv2Cbor: "Major type 2 (byte string)"
                if not isinstance(v, (bytes, bytearray)):
                    return self._type(v, "blob (CBOR byte string)", path, ctx)
                n = len(v)
            elif not isinstance(v, str):
                return self._type(v, "blob (base64 string)", path, ctx)
            else:
                try:
                    n = len(base64.b64decode(v, validate=True))
                except (binascii.Error, ValueError):
                    return ctx.add(path, v, "type blob",
                                   "is not base64 (a blob is sent as base64)")
            self._bounds(n, v, node, path, ctx, "{} size {} bytes",
                         "is smaller than {} bytes ({})", "is larger than {} bytes ({})")

    @staticmethod
    def _type(v, expected: str, path: str, ctx: _Ctx) -> None:
        got = _JSON_TYPES.get(type(v), type(v).__name__)
        ctx.add(path or "(request)", v, f"type {expected}", f"should be a {expected}, not a {got}")

    @staticmethod
    def _bounds(n, v, node: _Node, path: str, ctx: _Ctx, rule: str, below: str, above: str) -> None:
        """Reports ``n`` (``v``'s length, size, count or ``v`` itself) outside ``node``'s min and
        max. ``rule`` names the rule from "min"/"max" and the bound ("{} length {}"); ``below``
        and ``above`` say what is wrong from the bound and ``n``."""
        if node.min is not None and n < node.min:
            ctx.add(path, v, rule.format("min", node.min), below.format(node.min, n))
        if node.max is not None and n > node.max:
            ctx.add(path, v, rule.format("max", node.max), above.format(node.max, n))

    @classmethod
    def _count(cls, v, node: _Node, path: str, ctx: _Ctx) -> None:
        cls._bounds(len(v), v, node, path, ctx, "{} items {}",
                    "has fewer than {} items ({})", "has more than {} items ({})")

    @classmethod
    def _range(cls, v, node: _Node, path: str, ctx: _Ctx) -> None:
        cls._bounds(v, v, node, path, ctx, "{} value {}", "is less than {}", "is more than {}")

    @staticmethod
    def _ecs_tags(tags: list, node: _Node, path: str, ctx: _Ctx) -> None:
        if len(tags) > ECS_TAGS_MAX and not (node.max is not None and node.max <= ECS_TAGS_MAX):
            ctx.add(path, tags, ECS_TAGS_MAX_RULE, f"has {len(tags)} tags, more than "
                    f"{ECS_TAGS_MAX}")
        for i, tag in enumerate(tags):
            if isinstance(tag, dict):
                for part in ("key", "value"):
                    x = tag.get(part)
                    if isinstance(x, str) and x[:4].lower() == "aws:":
                        ctx.add(f"{path}[{i}].{part}", x, ECS_TAG_PREFIX_RULE,
                                "begins with aws:, a prefix ECS reserves for AWS")

    def _timed_out(self, service: str, node: _Node, n: int) -> None:
        with self._stats_lock:
            if not any(u["pattern"] == node.pattern_src for u in self.uncompilable):
                self.uncompilable.append({
                    "service": service, "shape": node.name, "pattern": node.pattern_src,
                    "error": f"match took over {PATTERN_TIMEOUT_S} s (value of {n} characters);"
                             " not checked"})

    def stats(self) -> dict:
        with self._stats_lock:
            return {"unchecked": dict(sorted(self.unchecked.items())),
                    "uncompilable": [dict(u) for u in self.uncompilable],
                    "rewritten": [dict(r) for r in self.rewritten],
                    "checker_errors": dict(self.checker_errors)}

    def clear(self) -> None:
        """Forgets the unchecked counts and internal errors (not the pattern lists)."""
        with self._stats_lock:
            self.unchecked.clear()
            self.checker_errors.clear()


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------
def _header(headers, name: str) -> str | None:
    if headers is None:
        return None
    v = headers.get(name)
    if v is None and isinstance(headers, dict):  # plain dicts in unit tests: any case
        low = name.lower()
        v = next((x for k, x in headers.items() if k.lower() == low), None)
    return v if v is None else str(v)


def _parse_form(body: bytes, query: str) -> tuple[list | None, str | None]:
    """Form fields of the body (and of the URL's query, minus presigning parameters).
    Returns (pairs, None) or (None, why it cannot be parsed)."""
    pairs = []
    for src, is_url in ((query, True), (body, False)):
        if isinstance(src, bytes):
            try:
                src = src.decode("utf-8")
            except UnicodeDecodeError:
                return None, "the body is not UTF-8"
        for field in src.split("&"):
            if not field:
                continue
            if "=" not in field:
                return None, f"field without '=': {field[:40]!r}"
            k, _, v = field.partition("=")
            try:
                k = urllib.parse.unquote_plus(k, errors="strict")
                v = urllib.parse.unquote_plus(v, errors="strict")
            except UnicodeDecodeError:
                return None, f"percent-encoding of {k[:40]!r} is not UTF-8"
            if is_url and k.startswith("X-Amz-"):
                continue
            pairs.append((k, v))
    return pairs, None


def _select(value, path: str):
    """(path, value) pairs that ``path`` ("A", "A.B", "A[].B") names in ``value``."""
    items = [("", value)]
    for part in path.split("."):
        each = part.endswith("[]")
        name = part[:-2] if each else part
        nxt = []
        for p, v in items:
            if not isinstance(v, dict) or v.get(name) is None:
                continue
            sub, x = _join(p, name), v[name]
            if each:
                if isinstance(x, list):
                    nxt.extend((f"{sub}[{i}]", y) for i, y in enumerate(x))
            else:
                nxt.append((sub, x))
        items = nxt
    return items
