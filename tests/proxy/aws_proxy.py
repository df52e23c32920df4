#!/usr/bin/env python3
"""aws_proxy: a loopback HTTP proxy in front of moto's server.

It forwards every request unchanged (method, path + query, headers, body) to an upstream
moto URL and, on the way, emulates what makes real AWS different from moto:

* a per-call latency (``--latency-ms``, default 25 ms: half before forwarding, half after);
* ECS's token buckets per caller account and Region (burst / refill per second), answering
  ``ThrottlingException`` exactly as ECS's JSON 1.1 protocol does; the account of an access key
  comes from the STS AssumeRole answers passing through, else from moto's GetCallerIdentity
  (class Accounts);
* fault injection: a fraction of calls answered with a throttling error or HTTP 500/503
  without being forwarded (``--fault-rate``), or forwarded and then the connection closed
  without an answer (``--drop-after-forward-rate``), deterministic with ``--seed``;
* call counting per service and action, with a static "mutating" classification;
* optionally (``--validate record|refuse``), a check of every request against AWS's API model
  (model_check.py: botocore's service models), so that what AWS would refuse and moto accepts
  is recorded, or refused the way AWS refuses it;
* optionally (``--cbor-to-json``), Smithy RPC v2 CBOR requests to CloudWatch (what the Rust
  aws-sdk-cloudwatch sends) forwarded as the AWS JSON 1.0 requests moto serves, and moto's JSON
  answers turned back into CBOR (rpcv2.py, directed by botocore's shapes).

Control endpoints (never delayed, throttled or faulted):
  GET  /__proxy/stats    counters (see README.md)
  POST /__proxy/reset    zero the counters, refill every bucket, restart fault sequences
  GET  /__proxy/config   current runtime configuration
  POST /__proxy/config   change it (JSON object with any of the keys of Config; "holds":
                         {"ecs:RunTask": 8000} holds such calls 8 s, then forwards them)
  GET  /__proxy/calls?by=account             calls, throttles and ECS bucket groups per caller account
  GET  /__proxy/accounts                     access key -> account, as the proxy knows it
  POST /__proxy/accounts                     name keys' accounts: {"keys": {"AKID": "111122223333"}}
  GET  /__proxy/violations[?account=AKID]   requests that break the API model
  POST /__proxy/violations/clear            forget them (reset keeps them)
  GET  /__proxy/ecs/rollouts                 rollouts shown in ECS service answers (--moto-compat)
  POST /__proxy/ecs/rollouts                 show one: {"account", "cluster", "service",
                                             "rolloutState" (null: stop), "activeDeployments"}
  POST /__proxy/ecs/service-configuration    show a service's deploymentConfiguration (--moto-compat)
  POST /__proxy/ecs/service-deployments      give one service's deployment records (--moto-compat):
                                             {"account", "cluster", "service", "serviceDeployments"}
  POST /__proxy/ecs/task-protection          give one cluster's protected tasks (--moto-compat):
                                             {"account", "cluster", "protectedTasks"}
  POST /__proxy/ecs/capacity-providers       give an account's capacity providers (--moto-compat):
                                             {"account", "capacityProviders"}

Python 3.11 standard library only; ``--validate`` also needs botocore and regex (and cbor2 to
check CBOR bodies), ``--cbor-to-json`` botocore and cbor2: each imported only when turned on.
Run ``python3 aws_proxy.py --help``.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import os
import re
import secrets
import signal
import socket
import struct
import sys
import threading
import time
import urllib.parse
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from xml.sax.saxutils import escape as xml_escape

# ---------------------------------------------------------------------------------------------
# ECS's documented token buckets (per account and Region). Actions of one row share a bucket.
# https://docs.aws.amazon.com/AmazonECS/latest/APIReference/request-throttling.html
# ---------------------------------------------------------------------------------------------
DEFAULT_BUCKETS: dict[str, dict] = {
    "task-definition-modify": {
        "burst": 20, "rate": 1.0,
        "actions": ["RegisterTaskDefinition", "DeregisterTaskDefinition"]},
    "service-modify": {
        "burst": 50, "rate": 5.0,
        "actions": ["CreateService", "UpdateService", "DeleteService"]},
    "service-read": {
        "burst": 100, "rate": 20.0,
        "actions": ["DescribeServices", "ListServices"]},
    "task-read": {
        "burst": 100, "rate": 20.0,
        "actions": ["DescribeTasks", "ListTasks"]},
    "task-definition-read": {
        "burst": 50, "rate": 20.0,
        "actions": ["DescribeTaskDefinition"]},
}

# Services whose buckets are emulated (signing name of the credential scope).
THROTTLED_SERVICES = {"ecs"}

# Static classification of mutating actions, by verb prefix (plus a few whole names).
MUTATING_PREFIXES = (
    "Register", "Deregister", "Create", "Update", "Delete", "Put", "Run", "Start", "Stop",
    "Set", "Terminate", "Tag", "Untag", "Publish", "Send", "Submit", "Execute", "Attach",
    "Detach", "Modify", "Enable", "Disable", "Complete", "Record", "Remove", "Add", "Reset",
    "Cancel", "Change", "Increase", "Decrease", "Subscribe", "Unsubscribe", "Confirm",
    "Associate", "Disassociate", "Import", "Restore", "Purge", "Suspend", "Resume", "Reboot",
    "Revoke", "Authorize", "Upload", "Copy", "Move", "Invoke", "Apply", "Replace", "Release",
    "Allocate", "Assign", "Unassign", "Signal", "Rotate", "Initiate", "Batch",
    "Transact", "Restart", "Acknowledge", "Enter", "Exit", "Rollback",
)
# Prefix matches that are read-only nonetheless ("BatchGet*" and "BatchDescribe*" too).
NOT_MUTATING = {"BatchCheckLayerAvailability"}


def is_mutating(action: str) -> bool:
    if action in NOT_MUTATING:
        return False
    if action.startswith(("BatchGet", "BatchDescribe", "TransactGet")):
        return False
    if " /" in action:  # REST call named "METHOD /path" (see classify)
        return action.split(" ", 1)[0] in ("POST", "PUT", "PATCH", "DELETE")
    return any(action.startswith(p) and (len(action) == len(p) or action[len(p)].isupper())
               for p in MUTATING_PREFIXES)


# X-Amz-Target prefixes -> service signing names (fallback when there is no credential scope).
TARGET_SERVICES = {
    "AmazonEC2ContainerServiceV20141113": "ecs",
    "AmazonEC2ContainerRegistry_V20150921": "ecr",
    "DynamoDB_20120810": "dynamodb",
    "DynamoDBStreams_20120810": "dynamodb",
    "AmazonSQS": "sqs",
    "AnyScaleFrontendService": "application-autoscaling",
    "AWSEvents": "events",
    "Logs_20140328": "logs",
    "GraniteServiceVersion20100801": "monitoring",
    "AWSStepFunctions": "states",
    "secretsmanager": "secretsmanager",
    "AmazonSSM": "ssm",
}

HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te",
              "trailer", "upgrade", "expect"}

CRED_RE = re.compile(r"Credential=([^/\s,]+)/(\d{8})/([^/\s,]+)/([^/\s,]+)/")
RPCV2_RE = re.compile(r"^/service/([^/]+)/operation/([^/?]+)")


# ---------------------------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------------------------
@dataclass
class Config:
    latency_ms: float = 25.0
    throttle: bool = True
    fault_rate: float = 0.0
    drop_rate: float = 0.0
    seed: int = field(default_factory=lambda: secrets.randbits(31))
    fault_kinds: list = field(default_factory=lambda: ["throttle", "500", "503"])
    faults_for: list | None = None     # None = every AWS call; else names (see matches())
    drops_for: list | None = None      # None = same as faults_for
    fault_key: str = "sequence"        # "sequence" | "content"
    drop_mode: str = "close"           # "close" (FIN) | "reset" (RST)
    upstream_timeout: float = 30.0
    buckets: dict = field(default_factory=lambda: json.loads(json.dumps(DEFAULT_BUCKETS)))
    validate: str = "off"              # "off" | "record" | "refuse" (see model_check.py)
    cbor_to_json: bool = False         # translate rpc-v2-cbor CloudWatch calls (see rpcv2.py)
    moto_compat: bool = False          # correct moto's ECS where SDKs cannot parse it (moto_compat.py)
    holds: dict = field(default_factory=dict)  # {filter (see matches()): ms}: hold such calls, then forward

    def public(self) -> dict:
        return {
            "latency_ms": self.latency_ms, "throttle": self.throttle,
            "fault_rate": self.fault_rate, "drop_rate": self.drop_rate, "seed": self.seed,
            "fault_kinds": list(self.fault_kinds), "faults_for": self.faults_for,
            "drops_for": self.drops_for, "fault_key": self.fault_key,
            "drop_mode": self.drop_mode, "upstream_timeout": self.upstream_timeout,
            "buckets": self.buckets, "validate": self.validate,
            "cbor_to_json": self.cbor_to_json, "moto_compat": self.moto_compat,
            "holds": dict(self.holds),
        }


FAULT_KINDS = {"throttle", "500", "503"}
VALIDATE_MODES = ("off", "record", "refuse")

_loaded: dict = {}  # module name -> the module, once its dependencies were found


def _load_here(name: str, ensure_available):
    """Imports module ``name`` (next to this file) once, and has ``ensure_available(module)``
    import what it needs (raising ImportError) before it is handed out."""
    if name not in _loaded:
        here = os.path.dirname(os.path.abspath(__file__))
        if here not in sys.path:
            sys.path.insert(0, here)
        mod = __import__(name)
        ensure_available(mod)
        _loaded[name] = mod
    return _loaded[name]


def load_rpcv2():
    """Imports rpcv2 (next to this file), botocore and cbor2; raises ImportError."""
    return _load_here("rpcv2", lambda mod: mod.Translator().ensure_available())


def load_model_check():
    """Imports model_check (next to this file) and botocore/regex; raises ImportError."""
    return _load_here("model_check", lambda mod: mod.ModelChecker().ensure_available())


def _missing(load, needs: str) -> str | None:
    """None when ``load()`` finds the modules a setting needs, else what is missing: "needs
    NEEDS: the ImportError"."""
    try:
        load()
    except ImportError as e:
        return f"needs {needs}: {e}"
    return None


def validate_update(cfg: Config, upd: dict) -> list[str]:
    """Apply ``upd`` to ``cfg`` in place; returns the list of errors (nothing applied then)."""
    errs: list[str] = []
    new = Config(**{k: getattr(cfg, k) for k in cfg.__dataclass_fields__})
    new.buckets = json.loads(json.dumps(cfg.buckets))
    for k, v in upd.items():
        try:
            if k == "latency_ms":
                new.latency_ms = float(v)
                assert new.latency_ms >= 0
            elif k == "throttle":
                assert isinstance(v, bool)
                new.throttle = v
            elif k in ("fault_rate", "drop_rate"):
                f = float(v)
                assert 0.0 <= f <= 1.0
                setattr(new, k, f)
            elif k == "seed":
                new.seed = int(v)
            elif k == "fault_kinds":
                assert isinstance(v, list) and v and all(str(x) in FAULT_KINDS for x in v)
                new.fault_kinds = [str(x) for x in v]
            elif k in ("faults_for", "drops_for"):
                assert v is None or (isinstance(v, list) and all(isinstance(x, str) for x in v))
                setattr(new, k, v)
            elif k == "fault_key":
                assert v in ("sequence", "content")
                new.fault_key = v
            elif k == "drop_mode":
                assert v in ("close", "reset")
                new.drop_mode = v
            elif k == "upstream_timeout":
                new.upstream_timeout = float(v)
                assert new.upstream_timeout > 0
            elif k == "validate":
                assert v in VALIDATE_MODES
                if v != "off" and (missing := _missing(load_model_check, "botocore and regex")):
                    errs.append(f"'validate' {missing}")
                    continue
                new.validate = v
            elif k == "moto_compat":
                assert isinstance(v, bool)
                new.moto_compat = v
            elif k == "holds":
                assert isinstance(v, dict)
                assert all(isinstance(f, str) and float(ms) >= 0 for f, ms in v.items())
                new.holds = {f: float(ms) for f, ms in v.items()}
            elif k == "cbor_to_json":
                assert isinstance(v, bool)
                if v and (missing := _missing(load_rpcv2, "botocore and cbor2")):
                    errs.append(f"'cbor_to_json' {missing}")
                    continue
                new.cbor_to_json = v
            elif k == "buckets":
                assert isinstance(v, dict)
                for name, spec in v.items():
                    assert isinstance(spec, dict)
                    b = new.buckets.setdefault(name, {"burst": 1, "rate": 1.0, "actions": []})
                    for sk, sv in spec.items():
                        assert sk in ("burst", "rate", "actions")
                        if sk == "actions":
                            assert isinstance(sv, list)
                            b[sk] = [str(x) for x in sv]
                        else:
                            b[sk] = float(sv)
                            assert b[sk] >= 0
            else:
                errs.append(f"unknown key {k!r}")
        except (AssertionError, TypeError, ValueError):
            errs.append(f"bad value for {k!r}: {v!r}")
    if not errs:
        for k in cfg.__dataclass_fields__:
            setattr(cfg, k, getattr(new, k))
    return errs


# ---------------------------------------------------------------------------------------------
# Request classification
# ---------------------------------------------------------------------------------------------
@dataclass
class CallInfo:
    service: str
    action: str
    protocol: str   # json | query | ec2 | rpcv2 | rest | control
    account: str    # access key id ("anonymous" when unsigned)
    region: str
    owner: str = ""  # the caller's AWS account (Accounts.resolve); "" until resolved


    @property
    def key(self) -> str:
        return f"{self.service}:{self.action}"


def _header(headers, name: str) -> str | None:
    v = headers.get(name)
    return v if v is None else str(v)


def classify(method: str, path: str, headers, body: bytes) -> CallInfo:
    auth = _header(headers, "Authorization") or ""
    parsed = urllib.parse.urlsplit(path)
    query = urllib.parse.parse_qs(parsed.query, keep_blank_values=True)
    m = CRED_RE.search(auth)
    if not m and "X-Amz-Credential" in query:   # presigned URL
        m = CRED_RE.search("Credential=" + query["X-Amz-Credential"][0] + "/")
    account, region, service = ("anonymous", "", "")
    if m:
        account, region, service = m.group(1), m.group(3), m.group(4)

    if parsed.path.startswith("/moto-api") or parsed.path.startswith("/__"):
        return CallInfo("moto-api", parsed.path, "control", account, region)

    target = _header(headers, "X-Amz-Target")
    if target:
        prefix, _, action = target.rpartition(".")
        if not service:
            service = TARGET_SERVICES.get(prefix, prefix or "unknown")
        return CallInfo(service, action, "json", account, region)

    rp = RPCV2_RE.match(parsed.path)
    if rp:
        if not service:  # {serviceName} may also be the absolute shape id, "#" written "."
            name = rp.group(1).rpartition(".")[2]
            service = TARGET_SERVICES.get(name, rp.group(1))
        return CallInfo(service, rp.group(2), "rpcv2", account, region)

    action = None
    if "Action" in query:
        action = query["Action"][0]
    ctype = (_header(headers, "Content-Type") or "").lower()
    if action is None and method == "POST" and "x-www-form-urlencoded" in ctype and body:
        try:
            form = urllib.parse.parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
            if "Action" in form:
                action = form["Action"][0]
        except Exception:  # noqa: BLE001 - classification must never fail
            pass
    if action is not None:
        service = service or "unknown"
        return CallInfo(service, action, "ec2" if service == "ec2" else "query", account, region)

    # REST protocols (S3, Lambda, ...): name the call by method and first path segments.
    segs = [s for s in parsed.path.split("/") if s][:2]
    return CallInfo(service or "unknown", f"{method} /{'/'.join(segs)}", "rest", account, region)


def matches(filters: list | None, info: CallInfo) -> bool:
    """``None`` matches everything. Items: "ecs" (service), "RegisterTaskDefinition",
    "ecs:RegisterTaskDefinition", "@mutating" (every mutating action), "@read"."""
    if filters is None:
        return True
    mut = is_mutating(info.action)
    for f in filters:
        if f == info.service or f == info.action or f == info.key:
            return True
        if f == "@mutating" and mut:
            return True
        if f == "@read" and not mut:
            return True
        if f.startswith("@mutating:") and mut and f.split(":", 1)[1] == info.service:
            return True
    return False


# ---------------------------------------------------------------------------------------------
# Error bodies, per protocol
# ---------------------------------------------------------------------------------------------
# The proxy's own CBOR answers are written here, with the standard library only, so that faults
# and refusals answer rpc-v2-cbor calls in CBOR without cbor2.
def _cbor_text(s: str) -> bytes:
    b = s.encode()
    n = len(b)
    if n < 24:
        head = bytes([0x60 | n])
    elif n < 256:
        head = bytes([0x78, n])
    elif n < 65536:
        head = bytes([0x79]) + struct.pack(">H", n)
    else:
        head = bytes([0x7A]) + struct.pack(">I", n)
    return head + b


def _cbor_map(d: dict[str, str]) -> bytes:
    assert len(d) < 24
    return bytes([0xA0 | len(d)]) + b"".join(_cbor_text(k) + _cbor_text(v) for k, v in d.items())


# Smithy RPC v2 CBOR answers: "Every response for the rpcv2Cbor protocol MUST contain a
# Smithy-Protocol header with the value of rpc-v2-cbor", errors are a map with "__type" and
# "message", and "Responses ... SHOULD NOT contain the X-Amzn-ErrorType header" (smithy-lang/
# smithy, docs/source-2.0/additional-specs/protocols/smithy-rpc-v2-cbor.rst; see rpcv2.py).
def _rpcv2_error(code: str, message: str, rid: str, extra: list | None = None):
    hdrs = [("Content-Type", "application/cbor"), ("smithy-protocol", "rpc-v2-cbor"),
            ("x-amzn-RequestId", rid)] + (extra or [])
    return hdrs, _cbor_map({"__type": code, "message": message})


def _json_error(headers, code: str, message: str, rid: str):
    """An AWS JSON protocol error answer: the request's JSON content type (``application/json``
    when it had none of JSON's), ``__type`` and ``message`` in the body, the code in
    X-Amzn-ErrorType. (headers, body)"""
    ctype = _header(headers, "Content-Type") or "application/x-amz-json-1.1"
    if "json" not in ctype:
        ctype = "application/json"
    body = json.dumps({"__type": code, "message": message}, separators=(",", ":")).encode()
    return [("Content-Type", ctype), ("x-amzn-RequestId", rid), ("x-amzn-ErrorType", code)], body


def _query_error(service: str, qtype: str, code: str, message_xml: str, rid: str):
    """An AWS Query protocol error answer (``<ErrorResponse>``); ``message_xml`` is already
    escaped for XML. (headers, body)"""
    body = (f'<ErrorResponse xmlns="https://{service}.amazonaws.com/doc/">'
            f"<Error><Type>{qtype}</Type><Code>{code}</Code>"
            f"<Message>{message_xml}</Message></Error>"
            f"<RequestId>{rid}</RequestId></ErrorResponse>").encode()
    return [("Content-Type", "text/xml"), ("x-amzn-RequestId", rid)], body


# Services with the awsQueryCompatible trait: their JSON/CBOR errors also carry
# "x-amzn-query-error: <Query code>;<Sender|Receiver>", from which the SDKs take the code.
QUERY_COMPATIBLE = {"monitoring"}


ERRORS = {
    # kind: (status, code for JSON/rpcv2, code for Query/EC2, message, Query <Type>)
    "throttle": (400, "ThrottlingException", "Throttling", "Rate exceeded", "Sender"),
    "500": (500, "InternalFailure", "InternalFailure",
            "The request processing has failed because of an unknown error, exception or "
            "failure.", "Receiver"),
    "503": (503, "ServiceUnavailable", "ServiceUnavailable",
            "The request has failed due to a temporary failure of the server.", "Receiver"),
}


def error_response(kind: str, info: CallInfo, headers) -> tuple[int, list, bytes]:
    status, json_code, query_code, message, qtype = ERRORS[kind]
    rid = str(uuid.uuid4())
    if info.protocol in ("json", "rest", "control"):
        hdrs, body = _json_error(headers, json_code, message, rid)
    elif info.protocol == "rpcv2":
        hdrs, body = _rpcv2_error(json_code, message, rid)
    elif info.protocol == "ec2":
        body = (f'<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error>'
                f"<Code>{query_code if kind != 'throttle' else 'RequestLimitExceeded'}</Code>"
                f"<Message>{message}</Message></Error></Errors>"
                f"<RequestID>{rid}</RequestID></Response>").encode()
        hdrs = [("Content-Type", "text/xml;charset=UTF-8")]
    else:  # query
        hdrs, body = _query_error(info.service, qtype, query_code, message, rid)
    return status, hdrs, body


def validation_response(info: CallInfo, headers, message: str) -> tuple[int, list, bytes]:
    """HTTP 400 as AWS answers a request that breaks the API model (JSON, RPC v2 CBOR or Query
    protocol)."""
    rid = str(uuid.uuid4())
    if info.protocol == "rpcv2":
        extra = ([("x-amzn-query-error", "ValidationError;Sender")]
                 if info.service in QUERY_COMPATIBLE else [])
        hdrs, body = _rpcv2_error("ValidationException", message, rid, extra)
    elif info.protocol == "json":
        hdrs, body = _json_error(headers, "ValidationException", message, rid)
    else:  # query
        hdrs, body = _query_error(info.service, "Sender", "ValidationError", xml_escape(message), rid)
    return 400, hdrs, body


# ---------------------------------------------------------------------------------------------
# Whose account a call is: ECS's buckets are per account and Region, whatever the key
# ---------------------------------------------------------------------------------------------
# What moto answers GetCallerIdentity for an access key it does not know (it acts in its default
# account then): such a key stays an account of its own, named by the key, as before.
MOTO_CATCH_ALL_ARN = "arn:aws:sts::123456789012:user/moto"
ACCOUNT_RE = re.compile(r"^\d{12}$")
ROLE_ARN_RE = re.compile(r"^arn:[^:]+:iam::(\d{12}):role/")
XML_ACCESS_KEY_RE = re.compile(r"<AccessKeyId>\s*([^<\s]+)\s*</AccessKeyId>")
XML_ACCOUNT_RE = re.compile(r"<Account>\s*(\d{12})\s*</Account>")
XML_ARN_RE = re.compile(r"<Arn>\s*([^<\s]+)\s*</Arn>")


class Accounts:
    """Access key id -> the AWS account its calls act in, as moto sees it.

    - Keys an STS AssumeRole returns: recorded from the call passing through the proxy (the
      form's ``RoleArn`` names the account, the XML answer the new ``AccessKeyId``).
    - Every other key: asked once, on its first call, with an STS GetCallerIdentity sent to moto
      under that key (moto reads the key from the credential scope and checks no signature), and
      cached. A key moto does not know (its catch-all identity) is an account of its own, named
      by the key: the proxy's behaviour before accounts, which tests sharing one proxy rely on.
    - ``POST /__proxy/accounts`` may also say it (``{"keys": {"AKID": "111122223333"}}``).
    If moto cannot answer, the key stands for itself for that call and is asked again later.
    """

    def __init__(self):
        self.lock = threading.Lock()
        self.keys: dict[str, dict] = {}   # akid -> {"account": ..., "source": ...}
        self.pending: dict[str, threading.Lock] = {}  # akid -> held while it is being asked
        self.upstream: tuple[str, int] | None = None
        self.timeout = 5.0

    def note(self, akid: str, account: str, source: str) -> None:
        with self.lock:
            self.keys[akid] = {"account": account, "source": source}

    def known(self) -> dict:
        with self.lock:
            return {k: dict(v) for k, v in sorted(self.keys.items())}

    def note_assume_role(self, form_body: bytes, answer: bytes) -> str | None:
        """Records the new key's account; returns that account (None if unreadable)."""
        try:
            form = urllib.parse.parse_qs(form_body.decode("utf-8", "replace"))
            m = ROLE_ARN_RE.match(form.get("RoleArn", [""])[0])
            k = XML_ACCESS_KEY_RE.search(answer.decode("utf-8", "replace"))
        except Exception:  # noqa: BLE001 - never fails a call
            return None
        if m and k:
            self.note(k.group(1), m.group(1), "assume-role")
            return m.group(1)
        return None

    def resolve(self, akid: str) -> str:
        if akid == "anonymous":
            return akid
        with self.lock:
            hit = self.keys.get(akid)
            if hit is not None:
                return hit["account"]
            # One question per key, however many of its calls arrive at once (a burst of
            # concurrent first calls then reaches the bucket together, as it would at AWS).
            pending = self.pending.setdefault(akid, threading.Lock())
        with pending:
            with self.lock:
                hit = self.keys.get(akid)
            if hit is not None:
                return hit["account"]
            account = self._ask(akid)
            with self.lock:
                self.pending.pop(akid, None)
                if account is None:
                    return akid
                # an AssumeRole answer noted meanwhile wins
                return self.keys.setdefault(akid, {"account": account, "source": "caller-identity"})["account"]

    def _ask(self, akid: str) -> str | None:
        if self.upstream is None:
            return None
        host, port = self.upstream
        body = b"Action=GetCallerIdentity&Version=2011-06-15"
        date = time.strftime("%Y%m%d", time.gmtime())
        conn = http.client.HTTPConnection(host, port, timeout=self.timeout)
        try:
            conn.request("POST", "/", body=body, headers={
                "Content-Type": "application/x-www-form-urlencoded; charset=utf-8",
                "X-Amz-Date": time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()),
                "Authorization": f"AWS4-HMAC-SHA256 Credential={akid}/{date}/us-east-1/sts/"
                                 "aws4_request, SignedHeaders=host;x-amz-date, Signature=00"})
            r = conn.getresponse()
            text = r.read().decode("utf-8", "replace")
            if r.status != 200:
                return None
        except (OSError, http.client.HTTPException):
            return None
        finally:
            conn.close()
        acct, arn = XML_ACCOUNT_RE.search(text), XML_ARN_RE.search(text)
        if not acct:
            return None
        if arn and arn.group(1) == MOTO_CATCH_ALL_ARN:
            return akid
        return acct.group(1)


# ---------------------------------------------------------------------------------------------
# State: buckets, counters, fault sequences, model violations
# ---------------------------------------------------------------------------------------------
COUNTERS = ("calls", "forwarded", "throttled", "faults", "dropped", "errors")


class State:
    def __init__(self, cfg: Config, violations_log: str | None = None):
        self.cfg = cfg
        self.lock = threading.Lock()
        # --moto-compat: DynamoDB writes reach moto one at a time (see _forward_serialised).
        self.dynamodb_writes = threading.Lock()
        # model violations: kept across reset() (a suite-wide proxy must keep them)
        self.vlock = threading.Lock()
        self.violations: list[dict] = []
        self.violations_log = violations_log
        self._checker = None
        self._translator = None
        here = os.path.dirname(os.path.abspath(__file__))
        if here not in sys.path:
            sys.path.insert(0, here)
        import moto_compat
        self.compat = moto_compat.MotoCompat()
        self.accounts = Accounts()  # kept across reset(): keys stay in their accounts
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.actions: dict[str, dict] = {}
            self.faults_by_kind = {k: 0 for k in FAULT_KINDS}
            self.buckets: dict[tuple, list] = {}   # (account, region, group) -> [tokens, t]
            # per account: "service:Action" -> counters; (region, group) -> answered/throttled
            self.by_account: dict[str, dict[str, dict]] = {}
            self.groups: dict[tuple, dict] = {}    # (account, region, group) -> counters
            self.account_keys: dict[str, set] = {}
            self.assumed: dict[str, int] = {}      # role's account -> AssumeRole sessions into it
            self.sequences: dict[str, int] = {}
            self.since = time.time()

    # -- token buckets ---------------------------------------------------------------------
    def _group_of(self, action: str) -> str | None:
        for name, spec in self.cfg.buckets.items():
            if action in spec.get("actions", ()):
                return name
        return None

    def take_token(self, info: CallInfo) -> bool:
        """True if the call may proceed (token taken or not subject to a bucket)."""
        if not self.cfg.throttle or info.service not in THROTTLED_SERVICES:
            return True
        with self.lock:
            group = self._group_of(info.action)
            if group is None:
                return True
            spec = self.cfg.buckets[group]
            burst, rate = float(spec["burst"]), float(spec["rate"])
            now = time.monotonic()
            key = (info.owner or info.account, info.region, group)
            b = self.buckets.get(key)
            if b is None:
                b = self.buckets[key] = [burst, now]
            b[0] = min(burst, b[0] + (now - b[1]) * rate)
            b[1] = now
            # Counted per caller account, apart from how the bucket is keyed.
            g = self.groups.setdefault((info.owner or info.account, info.region, group),
                                       {"admitted": 0, "throttled": 0, "unexplained": 0})
            if b[0] >= 1.0:
                b[0] -= 1.0
                g["admitted"] += 1
                return True
            g["throttled"] += 1
            # The account's own bucket is empty only once it admitted a burst's worth of the
            # account's own calls (since the last reset): a throttle before that would come from
            # other accounts' calls, i.e. buckets shared across accounts. Counted, not assumed.
            if g["admitted"] < burst:
                g["unexplained"] += 1
            return False

    def refill_buckets(self) -> None:
        with self.lock:
            self.buckets.clear()

    # -- API model checks ------------------------------------------------------------------
    def _once(self, attr: str, make):
        """``self.<attr>``, made by ``make()`` on first use: once, however many threads ask."""
        if getattr(self, attr) is None:
            with self.vlock:
                if getattr(self, attr) is None:
                    setattr(self, attr, make())
        return getattr(self, attr)

    def checker(self):
        return self._once("_checker", lambda: load_model_check().ModelChecker())

    def translator(self):
        return self._once("_translator", lambda: load_rpcv2().Translator())

    def check_request(self, info: CallInfo, headers, body: bytes, path: str) -> list:
        query = urllib.parse.urlsplit(path).query
        return self.checker().check(info.service, info.action, info.protocol, headers, body,
                                    query)

    def record_violations(self, info: CallInfo, found: list, refused: bool) -> None:
        now = time.time()
        rows = [{"time": now, "account": info.account, "region": info.region,
                 "refused": refused, **v.to_dict()} for v in found]
        with self.vlock:
            self.violations.extend(rows)
            if self.violations_log:
                try:
                    with open(self.violations_log, "a", encoding="utf-8") as f:
                        f.write("".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))
                except OSError as e:
                    sys.stderr.write(f"aws_proxy: cannot append to {self.violations_log}: {e}\n")

    def violations_report(self, account: str | None = None) -> dict:
        with self.vlock:
            rows = [dict(r) for r in self.violations
                    if account is None or r["account"] == account]
        extra = self._checker.stats() if self._checker is not None else {
            "unchecked": {}, "uncompilable": [], "rewritten": [], "checker_errors": {}}
        return {"count": len(rows), "violations": rows, **extra}

    def clear_violations(self) -> int:
        with self.vlock:
            n = len(self.violations)
            self.violations.clear()
        if self._checker is not None:
            self._checker.clear()
        return n

    # -- deterministic fault decisions -----------------------------------------------------
    def _uniform(self, *parts) -> float:
        h = hashlib.sha256("|".join(str(p) for p in parts).encode()).digest()
        return int.from_bytes(h[:8], "big") / 2.0 ** 64

    def decide(self, info: CallInfo, body: bytes) -> tuple[str | None, bool]:
        """Returns (fault kind or None, drop after forward?)."""
        cfg = self.cfg
        if info.protocol == "control" or (cfg.fault_rate <= 0 and cfg.drop_rate <= 0):
            return None, False
        with self.lock:
            if cfg.fault_key == "content":
                seq_key = info.key + "#" + hashlib.sha256(body).hexdigest()[:16]
            else:
                seq_key = info.key
            n = self.sequences.get(seq_key, 0)
            self.sequences[seq_key] = n + 1
        if cfg.fault_rate > 0 and matches(cfg.faults_for, info):
            if self._uniform(cfg.seed, "fault", seq_key, n) < cfg.fault_rate:
                kinds = cfg.fault_kinds
                kind = kinds[int(self._uniform(cfg.seed, "kind", seq_key, n) * len(kinds))]
                return kind, False
        drops_for = cfg.drops_for if cfg.drops_for is not None else cfg.faults_for
        if cfg.drop_rate > 0 and matches(drops_for, info):
            if self._uniform(cfg.seed, "drop", seq_key, n) < cfg.drop_rate:
                return None, True
        return None, False

    # -- counters --------------------------------------------------------------------------
    def count(self, info: CallInfo, what: str, kind: str | None = None) -> None:
        with self.lock:
            e = self.actions.get(info.key)
            if e is None:
                e = self.actions[info.key] = {
                    "service": info.service, "action": info.action,
                    "mutating": is_mutating(info.action), **{c: 0 for c in COUNTERS}}
            e[what] += 1
            if kind:
                self.faults_by_kind[kind] += 1
            if info.protocol == "control":
                return
            owner = info.owner or info.account
            acc = self.by_account.setdefault(owner, {})
            a = acc.get(info.key)
            if a is None:
                a = acc[info.key] = {"service": info.service, "action": info.action,
                                     **{c: 0 for c in COUNTERS}}
            a[what] += 1
            self.account_keys.setdefault(owner, set()).add(info.account)

    def calls_by_account(self) -> dict:
        """GET /__proxy/calls?by=account (README.md): every AWS call since the last reset, per
        caller account, with its ECS bucket groups."""
        with self.lock:
            now = time.monotonic()
            accounts: dict[str, dict] = {}
            for owner, acts in sorted(self.by_account.items()):
                services: dict[str, dict] = {}
                tot = {c: 0 for c in COUNTERS}
                for v in acts.values():
                    sv = services.setdefault(v["service"], {c: 0 for c in COUNTERS})
                    for c in COUNTERS:
                        sv[c] += v[c]
                        tot[c] += v[c]
                accounts[owner] = {**tot, "services": services,
                                   "actions": {k: dict(v) for k, v in sorted(acts.items())},
                                   "keys": sorted(self.account_keys.get(owner, ())),
                                   "buckets": {}, "unexplained_throttles": 0,
                                   "assume_role_sessions": self.assumed.get(owner, 0)}
            for (owner, region, group), g in sorted(self.groups.items()):
                a = accounts.setdefault(owner, {c: 0 for c in COUNTERS} | {
                    "services": {}, "actions": {}, "keys": [], "buckets": {},
                    "unexplained_throttles": 0, "assume_role_sessions": self.assumed.get(owner, 0)})
                spec = self.cfg.buckets.get(group, {"burst": 0, "rate": 0})
                b = self.buckets.get((owner, region, group))
                level = None if b is None else round(
                    min(float(spec["burst"]), b[0] + (now - b[1]) * float(spec["rate"])), 3)
                a["buckets"][f"{region}/{group}"] = {**g, "burst": spec["burst"],
                                                     "rate": spec["rate"], "level": level}
                a["unexplained_throttles"] += g["unexplained"]
            for owner, n in self.assumed.items():  # sessions opened into an account not used yet
                accounts.setdefault(owner, {c: 0 for c in COUNTERS} | {
                    "services": {}, "actions": {}, "keys": [], "buckets": {},
                    "unexplained_throttles": 0, "assume_role_sessions": n})
            assumed_total = sum(self.assumed.values())
            since = self.since
        totals = {c: sum(a[c] for a in accounts.values()) for c in COUNTERS}
        totals["unexplained_throttles"] = sum(a["unexplained_throttles"] for a in accounts.values())
        totals["accounts"] = len(accounts)
        totals["assume_role_sessions"] = assumed_total
        return {"by": "account", "accounts": accounts, "totals": totals, "since": since}

    def stats(self) -> dict:
        with self.lock:
            actions = {k: dict(v) for k, v in sorted(self.actions.items())}
            by_kind = dict(self.faults_by_kind)
            buckets = {}
            now = time.monotonic()
            for (acct, region, group), (tokens, t) in sorted(self.buckets.items()):
                spec = self.cfg.buckets.get(group, {"burst": 0, "rate": 0})
                level = min(float(spec["burst"]), tokens + (now - t) * float(spec["rate"]))
                buckets.setdefault(f"{acct}/{region}", {})[group] = round(level, 3)
            since = self.since
        with self.vlock:
            n_violations = len(self.violations)
        by_action: dict[str, dict] = {}
        services: dict[str, dict] = {}
        totals = {c: 0 for c in COUNTERS}
        totals["mutating_calls"] = 0
        for v in actions.values():
            if v["service"] == "moto-api":
                continue
            a = by_action.setdefault(v["action"], {"mutating": v["mutating"],
                                                   **{c: 0 for c in COUNTERS}})
            s = services.setdefault(v["service"], {**{c: 0 for c in COUNTERS},
                                                   "mutating_calls": 0})
            for c in COUNTERS:
                a[c] += v[c]
                s[c] += v[c]
                totals[c] += v[c]
            if v["mutating"]:
                s["mutating_calls"] += v["calls"]
                totals["mutating_calls"] += v["calls"]
        return {
            "actions": actions,
            "by_action": by_action,
            "services": services,
            "mutating": {k: v["mutating"] for k, v in actions.items()},
            "totals": {**totals, "faults_by_kind": by_kind, "violations": n_violations},
            "buckets": buckets,
            "since": since,
        }


# ---------------------------------------------------------------------------------------------
# HTTP handling
# ---------------------------------------------------------------------------------------------
class ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "aws-proxy"
    timeout = 120  # idle keep-alive connections are closed after this many seconds

    # set on the subclass by make_server()
    state: State
    upstream: tuple[str, int]
    verbose: bool = False

    def log_message(self, fmt, *args):  # noqa: D401 - quiet unless --verbose
        if self.verbose:
            sys.stderr.write("aws_proxy: " + (fmt % args) + "\n")

    def _read_body(self) -> bytes:
        te = (self.headers.get("Transfer-Encoding") or "").lower()
        if "chunked" in te:
            chunks = []
            while True:
                line = self.rfile.readline(65537)
                size = int(line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline(65537)
            return b"".join(chunks)
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n > 0 else b""

    def _send(self, status: int, headers: list, body: bytes, reason: str | None = None,
              head_only: bool = False) -> None:
        """Write status line, headers and body in one send (no Nagle/delayed-ACK stall)."""
        if reason is None:
            reason = self.responses.get(status, ("",))[0]
        self.log_request(status)
        out = [f"{self.protocol_version} {status} {reason}\r\n"]
        has_len = False
        for k, v in headers:
            lk = k.lower()
            if lk in HOP_BY_HOP:
                continue
            if lk == "content-length":
                if not head_only:
                    continue
                has_len = True
            out.append(f"{k}: {v}\r\n")
        if not head_only:
            out.append(f"Content-Length: {len(body)}\r\n")
        elif not has_len:
            out.append("Content-Length: 0\r\n")
        if self.close_connection:
            out.append("Connection: close\r\n")
        out.append("\r\n")
        data = "".join(out).encode("latin-1", "replace")
        if body and not head_only:
            data += body
        self.wfile.write(data)
        self.wfile.flush()

    def _send_json(self, status: int, obj) -> None:
        body = json.dumps(obj, indent=1, sort_keys=True).encode()
        self._send(status, [("Content-Type", "application/json")], body)

    # -- control endpoints -----------------------------------------------------------------
    def _control(self, body: bytes) -> None:
        path = urllib.parse.urlsplit(self.path).path.rstrip("/")
        st = self.state
        if path == "/__proxy/stats" and self.command == "GET":
            return self._send_json(200, st.stats())
        if path == "/__proxy/reset" and self.command == "POST":
            st.reset()
            return self._send_json(200, {"reset": True})
        if path == "/__proxy/config" and self.command == "GET":
            return self._send_json(200, st.cfg.public())
        if path == "/__proxy/calls" and self.command == "GET":
            q = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
            by = q.get("by", ["account"])[0]
            if by != "account":
                return self._send_json(400, {"error": f"by={by}: only by=account is counted here "
                                                      "(per action: GET /__proxy/stats)"})
            return self._send_json(200, st.calls_by_account())
        if path == "/__proxy/accounts" and self.command == "GET":
            return self._send_json(200, {"keys": st.accounts.known()})
        if path == "/__proxy/accounts" and self.command == "POST":
            try:
                upd = json.loads(body or b"{}")
                keys = upd["keys"]
                assert isinstance(keys, dict) and all(
                    isinstance(k, str) and isinstance(v, str) and ACCOUNT_RE.match(v)
                    for k, v in keys.items())
            except (ValueError, KeyError, TypeError, AssertionError):
                return self._send_json(400, {"error": 'body must be {"keys": {"AKID": "<12 digits>"}}'})
            for k, v in keys.items():
                st.accounts.note(k, v, "given")
            return self._send_json(200, {"keys": st.accounts.known()})
        if path == "/__proxy/violations" and self.command == "GET":
            q = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
            account = q["account"][0] if "account" in q else None
            return self._send_json(200, st.violations_report(account))
        if path == "/__proxy/violations/clear" and self.command == "POST":
            return self._send_json(200, {"cleared": st.clear_violations()})
        if path == "/__proxy/ecs/rollouts" and self.command == "GET":
            return self._send_json(200, st.compat.rollouts())
        if path == "/__proxy/ecs/rollouts" and self.command == "POST":
            # Shown by the --moto-compat rewrite of service answers (moto_compat.py).
            if not st.cfg.moto_compat:
                return self._send_json(400, {"error": "rollouts are shown by --moto-compat, which is off"})
            try:
                return self._send_json(200, st.compat.set_rollout(json.loads(body or b"{}")))
            except ValueError as e:
                return self._send_json(400, {"error": str(e)})
        if path == "/__proxy/ecs/service-configuration" and self.command == "POST":
            if not st.cfg.moto_compat:
                return self._send_json(400, {"error": "service configurations are shown by --moto-compat, which is off"})
            try:
                return self._send_json(200, st.compat.set_configuration(json.loads(body or b"{}")))
            except ValueError as e:
                return self._send_json(400, {"error": str(e)})
        if path == "/__proxy/ecs/service-deployments" and self.command == "POST":
            # Answered by --moto-compat in place of moto, which has no such records.
            if not st.cfg.moto_compat:
                return self._send_json(400, {"error": "service deployments are answered by --moto-compat, which is off"})
            try:
                return self._send_json(200, st.compat.set_service_deployments(json.loads(body or b"{}")))
            except ValueError as e:
                return self._send_json(400, {"error": str(e)})
        if path == "/__proxy/ecs/capacity-providers" and self.command == "POST":
            # Answered by --moto-compat in place of moto, which knows only Auto Scaling providers.
            if not st.cfg.moto_compat:
                return self._send_json(400, {"error": "capacity providers are answered by --moto-compat, which is off"})
            try:
                return self._send_json(200, st.compat.set_capacity_providers(json.loads(body or b"{}")))
            except ValueError as e:
                return self._send_json(400, {"error": str(e)})
        if path == "/__proxy/ecs/task-protection" and self.command == "POST":
            # Answered by --moto-compat in place of moto, which has no GetTaskProtection.
            if not st.cfg.moto_compat:
                return self._send_json(400, {"error": "task protection is answered by --moto-compat, which is off"})
            try:
                return self._send_json(200, st.compat.set_task_protection(json.loads(body or b"{}")))
            except ValueError as e:
                return self._send_json(400, {"error": str(e)})
        if path == "/__proxy/sts/refused-roles" and self.command == "POST":
            # Answered by --moto-compat in place of moto, which never refuses an AssumeRole.
            if not st.cfg.moto_compat:
                return self._send_json(400, {"error": "refused roles are answered by --moto-compat, which is off"})
            try:
                return self._send_json(200, st.compat.set_refused_roles(json.loads(body or b"{}")))
            except ValueError as e:
                return self._send_json(400, {"error": str(e)})
        if path == "/__proxy/config" and self.command == "POST":
            try:
                upd = json.loads(body or b"{}")
                assert isinstance(upd, dict)
            except (ValueError, AssertionError):
                return self._send_json(400, {"error": "body must be a JSON object"})
            with st.lock:
                errs = validate_update(st.cfg, upd)
            if errs:
                return self._send_json(400, {"error": "; ".join(errs)})
            if "seed" in upd or "fault_key" in upd:
                with st.lock:
                    st.sequences.clear()
            if "buckets" in upd:
                st.refill_buckets()
            return self._send_json(200, st.cfg.public())
        return self._send_json(404, {"error": f"no control endpoint {self.command} {path}"})

    # -- proxying --------------------------------------------------------------------------
    def _forward(self, body: bytes, path: str | None = None, headers=None):
        """Sends the request (or ``path``/``headers``/``body`` in its place) to moto."""
        host, port = self.upstream
        conn = http.client.HTTPConnection(host, port, timeout=self.state.cfg.upstream_timeout)
        try:
            conn.putrequest(self.command, path or self.path, skip_host=True,
                            skip_accept_encoding=True)
            for k, v in (self.headers.items() if headers is None else headers):
                if k.lower() in HOP_BY_HOP or k.lower() == "content-length":
                    continue
                conn.putheader(k, v)
            if body or self.command in ("POST", "PUT", "PATCH"):
                conn.putheader("Content-Length", str(len(body)))
            conn.endheaders(body if body else None)
            resp = conn.getresponse()
            data = resp.read()
            return resp.status, resp.reason, resp.getheaders(), data
        finally:
            conn.close()

    def _handle(self) -> None:
        try:
            body = self._read_body()
        except (ValueError, OSError):
            self.close_connection = True
            return self._send(400, [("Content-Type", "text/plain")], b"bad request body")
        if self.path.startswith("/__proxy/"):
            return self._control(body)

        st = self.state
        cfg = st.cfg
        info = classify(self.command, self.path, self.headers, body)
        control = info.protocol == "control"
        info.owner = info.account if control else st.accounts.resolve(info.account)
        st.count(info, "calls")
        half = 0.0 if control else cfg.latency_ms / 2000.0
        if half:
            time.sleep(half)
        # A call held on purpose (a test kills its caller meanwhile): forwarded afterwards all
        # the same, as AWS carries out a request whose caller went away.
        for f, ms in cfg.holds.items():
            if not control and matches([f], info):
                time.sleep(ms / 1000.0)
                break

        # AWS validates a request before it throttles it (and before anything can fail).
        if not control and cfg.validate != "off":
            found = st.check_request(info, self.headers, body, self.path)
            if found:
                refuse = cfg.validate == "refuse"
                st.record_violations(info, found, refuse)
                if refuse:
                    status, hdrs, ebody = validation_response(info, self.headers,
                                                              found[0].message)
                    if half:
                        time.sleep(half)
                    return self._send(status, hdrs, ebody)

        if not control and not st.take_token(info):
            st.count(info, "throttled")
            status, hdrs, ebody = error_response("throttle", info, self.headers)
            if half:
                time.sleep(half)
            return self._send(status, hdrs, ebody)

        kind, drop = st.decide(info, body)
        if kind is not None:
            st.count(info, "faults", kind)
            status, hdrs, ebody = error_response(kind, info, self.headers)
            if half:
                time.sleep(half)
            return self._send(status, hdrs, ebody)

        # --cbor-to-json: an rpc-v2-cbor call to a service rpcv2.py knows goes to moto as AWS
        # JSON 1.0, and moto's answer comes back as CBOR (the SDK cannot tell).
        jreq = None
        if info.protocol == "rpcv2" and cfg.cbor_to_json:
            rp = RPCV2_RE.match(urllib.parse.urlsplit(self.path).path)
            tr = st.translator()
            try:
                jreq = tr.request(rp.group(1), rp.group(2), self.headers.items(), body)
            except KeyError:  # a service it does not translate: forwarded unchanged
                jreq = None
            except Exception as e:  # noqa: BLE001 - answered, never a dropped connection
                st.count(info, "errors")
                if isinstance(e, load_rpcv2().TranslationError):  # the service's answer to it
                    status, code, msg = 400, e.code, e.message
                else:
                    status, code, msg = 500, "ProxyTranslationError", f"{type(e).__name__}: {e}"
                hdrs, ebody = _rpcv2_error(code, msg, str(uuid.uuid4()))
                if half:
                    time.sleep(half)
                return self._send(status, hdrs, ebody)

        # --moto-compat: an AssumeRole of a role the test says does not trust the caller
        # (moto trusts every caller; moto_compat.py).
        if cfg.moto_compat and info.service == "sts" and info.action == "AssumeRole":
            refused = st.compat.refused_assume_role(body)
            if refused is not None:
                st.count(info, "errors")
                if half:
                    time.sleep(half)
                return self._send(403, [("Content-Type", "text/xml")], refused)

        # --moto-compat: service deployment records, task protection and capacity providers a
        # test gives, which moto does not keep (moto_compat.py).
        if cfg.moto_compat and info.service == "ecs" and info.protocol == "json":
            answered = st.compat.answer_service_deployments(info.account, info.action, body)
            if answered is None:  # GetTaskProtection, which moto does not implement
                records = st.compat.answer_task_protection(info.account, info.action, body)
                answered = None if records is None else (200, records)
            if answered is None:  # Managed Instances providers, which moto cannot create
                records = st.compat.answer_capacity_providers(info.account, info.action, body)
                answered = None if records is None else (200, records)
            if answered is not None:
                status, records = answered
                st.count(info, "forwarded")
                if half:
                    time.sleep(half)
                return self._send(status, [("Content-Type", "application/x-amz-json-1.1")], records)

        # --moto-compat: UpdateExpressGatewayService carried out as moto's UpdateService.
        express = None
        if cfg.moto_compat and info.service == "ecs" and info.action == "UpdateExpressGatewayService":
            express = st.compat.express_update(body)

        # --moto-compat: a RunTask repeating an answered clientToken gets the first answer, as
        # from ECS, and starts nothing (moto_compat.py).
        compat_key = None
        if cfg.moto_compat and info.service == "ecs" and info.action == "RunTask":
            compat_key = st.compat.run_task_key(info.account, body)
            cached = st.compat.replay(compat_key)
            if cached is not None:
                status, hdrs, data = cached
                if half:
                    time.sleep(half)
                return self._send(status, hdrs, data)

        try:
            if express is not None:
                target, ebody = express
                headers = [(k, target if k.lower() == "x-amz-target" else v) for k, v in self.headers.items()]
                status, reason, hdrs, data = self._forward(ebody, None, headers)
                if status == 200:
                    data = st.compat.express_answer(body, data)
            elif jreq is None and cfg.moto_compat and info.service == "dynamodb" and is_mutating(info.action):
                # DynamoDB applies the writes to one item one after the other: an UpdateItem's
                # ADD and its condition are atomic ("Atomic counters", DynamoDB Developer Guide).
                # moto applies them as a read-modify-write in whichever request thread runs, so
                # two concurrent UpdateItems of one new item both find it absent and both create
                # it (issue 17 item 6's burst saw two "first" messages and a count lost). One
                # write at a time makes moto's answers DynamoDB's.
                with st.dynamodb_writes:
                    status, reason, hdrs, data = self._forward(body)
            elif jreq is None:
                status, reason, hdrs, data = self._forward(body)
            else:
                status, reason, hdrs, data = self._forward(jreq.body, jreq.path, jreq.headers)
        except (OSError, http.client.HTTPException) as e:
            st.count(info, "errors")
            msg = f"upstream {self.upstream}: {e!r}"
            if info.protocol == "rpcv2":
                ehdrs, ebody = _rpcv2_error("ProxyUpstreamError", msg, str(uuid.uuid4()))
                return self._send(502, ehdrs, ebody)
            ebody = json.dumps({"__type": "ProxyUpstreamError", "message": msg}).encode()
            return self._send(502, [("Content-Type", "application/json")], ebody)
        st.count(info, "forwarded")
        if info.service == "sts" and info.action == "AssumeRole" and status == 200:
            into = st.accounts.note_assume_role(body, data)
            if into is not None:
                with st.lock:
                    st.assumed[into] = st.assumed.get(into, 0) + 1
        if cfg.moto_compat and info.service == "ecs" and info.protocol == "json":
            data = st.compat.fix_answer(data)
            if status == 200:
                data = st.compat.fix_deployments(info.account, data)
            st.compat.remember(compat_key, status, hdrs, data)
        if jreq is not None:
            try:
                status, hdrs, data = st.translator().response(jreq, status, hdrs, data)
            except Exception as e:  # noqa: BLE001 - a bug here must not drop the connection
                hdrs, data = _rpcv2_error("ProxyTranslationError", f"{type(e).__name__}: {e}",
                                          str(uuid.uuid4()))
                status = 502
            reason = None
        if status >= 400:
            st.count(info, "errors")

        if drop:
            st.count(info, "dropped")
            self.close_connection = True
            if cfg.drop_mode == "reset":
                try:
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                               struct.pack("ii", 1, 0))
                    self.connection.close()
                except OSError:
                    pass
            return

        if half:
            time.sleep(half)
        self._send(status, hdrs, data, reason,
                   head_only=self.command == "HEAD" or status in (204, 304))

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = do_OPTIONS = _handle

    def setup(self):
        super().setup()
        try:
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass

    def handle_one_request(self):
        try:
            super().handle_one_request()
        except (ConnectionError, socket.timeout, TimeoutError):
            self.close_connection = True


class ProxyServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256


def make_server(upstream_url: str, cfg: Config, host: str = "127.0.0.1", port: int = 0,
                verbose: bool = False, idle_timeout: float = 120,
                violations_log: str | None = None) -> ProxyServer:
    u = urllib.parse.urlsplit(upstream_url if "://" in upstream_url
                              else "http://" + upstream_url)
    if u.scheme != "http":
        raise ValueError("only http:// upstreams are supported (moto's server)")
    state = State(cfg, violations_log)
    state.accounts.upstream = (u.hostname or "127.0.0.1", u.port or 80)
    handler = type("BoundProxyHandler", (ProxyHandler,), {
        "state": state,
        "upstream": (u.hostname or "127.0.0.1", u.port or 80),
        "verbose": verbose, "timeout": idle_timeout})
    return ProxyServer((host, port), handler)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--upstream", required=True, help="moto server URL, e.g. http://127.0.0.1:5000")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0 picks a free port")
    p.add_argument("--latency-ms", type=float, default=25.0, help="added per AWS call")
    p.add_argument("--no-throttle", action="store_true", help="disable ECS token buckets")
    p.add_argument("--fault-rate", type=float, default=0.0,
                   help="fraction of calls answered with an error without forwarding")
    p.add_argument("--fault-kinds", default="throttle,500,503",
                   help="comma list among throttle,500,503 (picked uniformly)")
    p.add_argument("--drop-after-forward-rate", type=float, default=0.0,
                   help="fraction of calls forwarded, then the connection closed unanswered")
    p.add_argument("--drop-mode", choices=("close", "reset"), default="close")
    p.add_argument("--seed", type=int, default=None, help="deterministic fault decisions")
    p.add_argument("--fault-key", choices=("sequence", "content"), default="sequence",
                   help="decide per (action, n-th call) or per (action, body, n-th repeat)")
    p.add_argument("--faults-for", default=None,
                   help="comma list of services/actions/@mutating that faults apply to")
    p.add_argument("--mutating-only", action="store_true",
                   help="faults and drops only for mutating actions (= --faults-for @mutating)")
    p.add_argument("--count-mutating", action="store_true",
                   help="accepted for compatibility: stats always classify mutating actions")
    p.add_argument("--upstream-timeout", type=float, default=30.0)
    p.add_argument("--idle-timeout", type=float, default=120.0,
                   help="close idle client connections after this many seconds")
    p.add_argument("--validate", choices=VALIDATE_MODES, default="off",
                   help="check each request against AWS's API model (botocore): record the "
                        "violations, or also refuse the request as AWS would (HTTP 400)")
    p.add_argument("--violations-log", metavar="FILE", default=None,
                   help="append each model violation to FILE as one JSON line")
    p.add_argument("--cbor-to-json", action="store_true",
                   help="forward Smithy RPC v2 CBOR calls to CloudWatch as AWS JSON 1.0 (what "
                        "moto serves) and answer them in CBOR (needs botocore and cbor2)")
    p.add_argument("--moto-compat", action="store_true",
                   help="correct moto's ECS answers the SDKs cannot parse (task containers' cpu and "
                        "memory as strings) and honour RunTask's clientToken as ECS does")
    p.add_argument("--verbose", action="store_true")
    a = p.parse_args(argv)

    cfg = Config()
    upd: dict = {"latency_ms": a.latency_ms, "throttle": not a.no_throttle,
                 "fault_rate": a.fault_rate, "drop_rate": a.drop_after_forward_rate,
                 "fault_kinds": [k for k in a.fault_kinds.split(",") if k],
                 "fault_key": a.fault_key, "drop_mode": a.drop_mode,
                 "upstream_timeout": a.upstream_timeout, "validate": a.validate,
                 "cbor_to_json": a.cbor_to_json, "moto_compat": a.moto_compat}
    if a.seed is not None:
        upd["seed"] = a.seed
    faults_for = [x for x in a.faults_for.split(",") if x] if a.faults_for else None
    if a.mutating_only:
        faults_for = (faults_for or []) + ["@mutating"]
    upd["faults_for"] = faults_for
    errs = validate_update(cfg, upd)
    if errs:
        p.error("; ".join(errs))

    srv = make_server(a.upstream, cfg, a.host, a.port, a.verbose, a.idle_timeout,
                      a.violations_log)
    if cfg.validate != "off":  # load the common models now rather than on the first calls
        checker = srv.RequestHandlerClass.state.checker()
        threading.Thread(target=checker.warm, daemon=True).start()
    if cfg.cbor_to_json:
        threading.Thread(target=srv.RequestHandlerClass.state.translator().warm,
                         daemon=True).start()

    def stop(*_):
        threading.Thread(target=srv.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    host, port = srv.server_address[:2]
    print(f"listening on {host}:{port}", flush=True)
    try:
        srv.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        srv.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
