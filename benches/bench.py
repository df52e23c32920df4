#!/usr/bin/env python3
"""ecs-autopilot's benchmarks (issue 7). Run through scripts/bench, which builds the release
artifacts and starts moto and the AWS proxy (tests/proxy) first; this file only measures.

    bench.py --moto URL --proxy URL [--runs 30] [--deploy-runs 10] [--fanout-runs 1]
             [--peer-runs 1] [--only cold,sizes,fanout,peer,alarm,org,big,burst] [--org-accounts 50]
             [--org-services 200] [--org-event replicate|push] [--org-plumbing] [--out benches/results.md]

Figures and how each is taken:
- sizes: bootstrap.zip of `cargo lambda build --release --output-format zip`, arm64 and x86_64.
- cold start / first event / RSS: target/release/{deployer,recovery,scaler} (host x86_64, glibc,
  `cargo build --release --workspace --bins`) started --runs times under target/release/coldstart
  (a fake Lambda Runtime API). No-op events: deployer a FAILED ECR push, recovery a RUNNING task,
  scaler an INSUFFICIENT_DATA alarm; without a state table (0 AWS calls, checked through the
  proxy's counters) and with one (2 DynamoDB calls to moto directly).
- RSS after real work: deployer a real push (new tag per start) that deploys `random` in the seed
  world; recovery a failed service task; scaler an OK→ALARM alarm (straight to moto, through a
  hop of its own: see below).
- fan-out: 500 services, 100 (over 50 families) running the pushed repository; one push event
  through target/release/invoke against the proxy (25 ms per call, ECS token buckets).
- peer: one tag to 20 services, ecs-autopilot (one event) vs `ecs deploy CLUSTER SERVICE --tag v2
  --timeout -1` per service; each side in its own account (full token buckets), same proxy.
- alarm: calls an OK→ALARM transition costs the scaler in the seed world (proxy counters).
- org (issue 16): an Organization of --org-accounts member accounts × --org-services services
  (one cluster `stage01` each, 10% opted in to one repository, 2 services per family); one ECR
  replication of a new image into every member, delivered as that many concurrent invocations of
  target/release/invoke deployer (one per account, as Lambda runs concurrent events), all signed
  with the central account's key and acting through AUTOPILOT_MEMBER_ROLE; through the proxy
  (25 ms per call, ECS buckets per caller account: tests/proxy/README.md). Skipped, with the
  reason, when the deployer acts in no member account (no organization mode in the binary).
  --org-plumbing runs the same world as today's deployer can: each invocation with its member's
  own key and a PUSH event (no AssumeRole), to check the seeding, invocation and counting.

- burst (issue 17, item 6): --burst-tasks (500) tasks of 5 services stopped by one lost EC2 instance,
  delivered to target/release/invoke recovery as --burst-concurrency (20) concurrent invocations
  through the proxy; after the notification window (--burst-window) closes, the summary schedule
  twice. Failed invocations, messages vs expected (read from the seed world's SQS inbox),
  state-table calls per event and conditional-check failures (the proxy's counters).

CloudWatch: the scaler's aws-sdk-cloudwatch speaks only Smithy RPC v2 CBOR, which moto does not
serve, so every aws_proxy.py the functions reach moto through must translate it (--cbor-to-json).
At start bench.py turns that on in the proxy (--proxy) and, through the TLS front, in the plain
proxy behind it (--tls); the runs that go "straight to moto" use a proxy bench.py starts itself
(no latency, no throttling, --cbor-to-json). Each endpoint must then answer a CloudWatch call in
CBOR, or bench.py stops before measuring anything. The Python side (seed_world.py, worlds.py,
boto3) speaks JSON 1.0 and keeps talking to moto itself. `--preflight-only` stops after that check.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import shutil
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import zipfile
from concurrent.futures import ThreadPoolExecutor
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)

import worlds  # noqa: E402

FUNCTIONS = ("deployer", "recovery", "scaler")
NOOP_EVENTS = {
    "deployer": "ecr-push-failed.json",
    "recovery": "ecs-task-running.json",
    "scaler": "cloudwatch-alarm-insufficient-data.json",
}
# Events that need AWS (the event-id claim first): the first HTTPS call of a cold start.
AWS_EVENTS = {
    "deployer": "ecs-deployment-completed.json",
    "recovery": "ecs-task-stopped-crash.json",
    "scaler": "cloudwatch-alarm-ok-to-alarm.json",
}
WORK_EVENTS = {  # deployer's is a real push made per start (see rss_after_work)
    "recovery": "ecs-task-stopped-container-health.json",
    "scaler": "cloudwatch-alarm-ok-to-alarm.json",
}
MB = 1_000_000
# The scaler's follow-up after a scale-out on an EC2 cluster tagged autopilot:asg: do the new tasks
# fit on the instances, or must the Auto Scaling group grow?
CAPACITY_ACTIONS = {"DescribeClusters", "ListContainerInstances", "DescribeContainerInstances", "DescribeTaskDefinition",
                    "DescribeAutoScalingGroups", "SetDesiredCapacity"}

TARGETS = {
    "cold_ms": 3.0,
    "first_event_ms": 10.0,
    "rss_mb": 20.0,
    "zip_mb": 6.0,
    "fanout_ratio": 1.1,
    "peer_ratio": 20.0,
    "alarm_calls": 4,
    "org_ratio": 1.2,
    # Issue 17: a push in a big account costs what its repository is used for.
    "big_calls_per_service": 3,
    "big_calls_constant": 10,
    "big_ratio": 1.5,
}
# The deployer's organization-mode contract (shared/DESIGN.md): the role it assumes in a member.
MEMBER_ROLE = "ecs-autopilot/ecs-autopilot-deployer"


def log(msg: str) -> None:
    print(f"bench: {msg}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------ helpers


class Proxy:
    def __init__(self, url: str):
        self.url = url.rstrip("/")

    def _call(self, method: str, path: str, body: dict | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else (b"" if method == "POST" else None)
        req = urllib.request.Request(self.url + path, data=data, method=method, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as r:
            text = r.read().decode()
        return json.loads(text) if text else None

    def reset(self) -> None:
        self._call("POST", "/__proxy/reset")

    def stats(self) -> dict:
        return self._call("GET", "/__proxy/stats")

    def configure(self, **cfg: Any) -> None:
        self._call("POST", "/__proxy/config", cfg)

    def config(self) -> dict:
        return self._call("GET", "/__proxy/config")

    def calls_by_account(self) -> dict:
        return self._call("GET", "/__proxy/calls?by=account")


# ------------------------------------------------------------------ CloudWatch's CBOR through the proxies

CW_SERVICE = "GraniteServiceVersion20100801"
AWS_PROXY = os.path.join(REPO, "tests/proxy/aws_proxy.py")


def _open(url: str, data: bytes | None, headers: dict, cafile: str | None, method: str = "POST"):
    ctx = ssl.create_default_context(cafile=cafile) if url.startswith("https://") else None
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=30, context=ctx) as r:
            return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read()


def cbor_ready(url: str, cafile: str | None = None) -> None:
    """Turns on --cbor-to-json in the aws_proxy.py at URL (also through the TLS front, which
    relays bytes), then checks that a CloudWatch call in Smithy RPC v2 CBOR, as the scaler's
    aws-sdk-cloudwatch sends it, is answered in CBOR. Raises SystemExit otherwise."""
    url = url.rstrip("/")
    status, _, body = _open(url + "/__proxy/config", json.dumps({"cbor_to_json": True}).encode(),
                            {"Content-Type": "application/json"}, cafile)
    if status != 200:
        raise SystemExit(f"bench: {url} cannot translate CloudWatch's CBOR (POST /__proxy/config "
                         f"cbor_to_json answered {status}: {body[:300]!r}); is tests/proxy/aws_proxy.py "
                         "current and cbor2 installed (tests/requirements.txt)?")
    # an empty CBOR map: DescribeAlarms without filters; signed in form only (moto reads the scope)
    status, hdrs, body = _open(f"{url}/service/{CW_SERVICE}/operation/DescribeAlarms", b"\xa0", {
        "smithy-protocol": "rpc-v2-cbor", "Content-Type": "application/cbor", "Accept": "application/cbor",
        "X-Amz-Date": "20260101T000000Z",
        "Authorization": "AWS4-HMAC-SHA256 Credential=AKIDBENCHPREFLIGHT/20260101/us-east-1/monitoring/aws4_request, "
                         "SignedHeaders=host;x-amz-date, Signature=00"}, cafile)
    if status != 200 or hdrs.get("content-type") != "application/cbor" or hdrs.get("smithy-protocol") != "rpc-v2-cbor":
        raise SystemExit(f"bench: a CBOR DescribeAlarms through {url} got HTTP {status} {hdrs.get('content-type')!r}: "
                         f"{body[:300]!r}")


class DirectHop:
    """aws_proxy.py in front of moto with no latency and no throttling, only --cbor-to-json: the
    endpoint of the function runs that go straight to moto."""

    def __init__(self, python: str, moto: str, log_path: str):
        self.log = open(log_path, "w", encoding="utf-8")
        self.proc = subprocess.Popen([python, AWS_PROXY, "--upstream", moto, "--port", "0", "--latency-ms", "0",
                                      "--no-throttle", "--cbor-to-json"],
                                     stdout=subprocess.PIPE, stderr=self.log, text=True)
        line: list[str] = []
        reader = threading.Thread(target=lambda: line.append(self.proc.stdout.readline()), daemon=True)
        reader.start()
        reader.join(30)
        if not line or not line[0].startswith("listening on "):
            self.stop()
            raise SystemExit(f"bench: the direct hop (aws_proxy.py --cbor-to-json) did not start: {line!r}; see {log_path}")
        self.url = "http://" + line[0].split("listening on ", 1)[1].strip()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.log.close()


def preflight(args: argparse.Namespace) -> None:
    """Every endpoint a function reaches moto through translates CloudWatch's CBOR."""
    cbor_ready(args.proxy)
    cbor_ready(args.moto_fn)
    if args.tls:
        cbor_ready(args.tls, args.tls_roots)
    log(f"CloudWatch CBOR answered through the proxy {args.proxy}, the direct hop {args.moto_fn}"
        + (f" and the TLS front {args.tls}" if args.tls else ""))


def counts(stats: dict) -> dict[str, dict[str, int]]:
    """service:Action -> {calls, throttled, errors, forwarded} without moto-api."""
    out = {}
    for key, a in stats.get("actions", {}).items():
        if a.get("service") == "moto-api":
            continue
        out[key] = {k: a.get(k, 0) for k in ("calls", "forwarded", "throttled", "errors", "faults")}
    return out


def by_service(c: dict[str, dict[str, int]], field: str = "calls") -> dict[str, int]:
    out: dict[str, int] = {}
    for key, v in c.items():
        svc = key.split(":", 1)[0]
        out[svc] = out.get(svc, 0) + v[field]
    return out


def summary(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    v = sorted(values)
    n = len(v)
    return {"n": n, "median": statistics.median(v), "p90": v[max(1, math.ceil(0.9 * n)) - 1], "min": v[0], "max": v[-1]}


def unique_account() -> str:
    return "8" + "".join(random.choice("0123456789") for _ in range(11))


def event_file(name: str) -> dict:
    with open(os.path.join(REPO, "events", name), encoding="utf-8") as f:
        return json.load(f)


def for_account(event: dict, account: str | None, event_id: str = "@ID@") -> dict:
    if account:
        event = json.loads(json.dumps(event).replace("123456789012", account))
        event["account"] = account
    event["id"] = event_id
    return event


def write_json(path: str, value: Any) -> str:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(value, f)
    return path


def last_json_object(text: str) -> Any:
    """invoke prints log lines, then the outcome as pretty JSON ("{" alone on a line)."""
    lines = text.splitlines()
    for i in range(len(lines) - 1, -1, -1):
        if lines[i] == "{":
            try:
                return json.loads("\n".join(lines[i:]))
            except json.JSONDecodeError:
                return None
    return None


def seed(args: argparse.Namespace) -> dict:
    account = unique_account()
    out = subprocess.run([args.python, os.path.join(REPO, "tests/seed_world.py"), "--endpoint", args.moto, "--account", account],
                         capture_output=True, text=True, timeout=300)
    if out.returncode != 0:
        raise SystemExit(f"seed_world.py failed:\n{out.stderr}")
    return json.loads(out.stdout)


def world_env(w: dict, endpoint: str, clusters: str, state: bool = True) -> dict[str, str]:
    env = {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_REGION": w.get("region", "us-east-1"),
        "AWS_ACCESS_KEY_ID": w["access_key_id"],
        "AWS_SECRET_ACCESS_KEY": w["secret_access_key"],
        "AUTOPILOT_CLUSTERS": clusters,
    }
    if state:
        env["AUTOPILOT_STATE_TABLE"] = w["table_name"]
        env["AUTOPILOT_TOPIC_ARN"] = w["topic_arn"]
    return env


def run_invoke(args: argparse.Namespace, function: str, event: dict, env: dict[str, str], logname: str) -> dict:
    """target/release/invoke FUNCTION EVENT: wall time (process start → exit), outcome, log."""
    path = write_json(os.path.join(args.work, f"{logname}.event.json"), event)
    full_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "AWS_LAMBDA_LOG_FORMAT": "JSON", **env, **args.invoke_env}
    t0 = time.perf_counter()
    p = subprocess.run([os.path.join(args.release, "invoke"), function, path], env=full_env, capture_output=True, text=True, timeout=900)
    wall = time.perf_counter() - t0
    with open(os.path.join(args.work, f"{logname}.log"), "w", encoding="utf-8") as f:
        f.write(p.stdout)
        f.write(p.stderr)
    return {"wall_s": wall, "rc": p.returncode, "outcome": last_json_object(p.stdout), "stderr": p.stderr.strip()[-2000:]}


def realtime(args: argparse.Namespace) -> list[str]:
    """`chrt -f 50` for the cold-start tool and the function it starts (the policy is inherited):
    on a machine shared with compile jobs, the figures then show the binary, not the neighbours."""
    if args.no_rt or os.geteuid() != 0 or not shutil.which("chrt"):
        return []
    return ["chrt", "-f", "50"]


def coldstart(args: argparse.Namespace, function: str, events: list[str], env: dict[str, str], runs: int, endpoint: str | None,
              logname: str) -> dict:
    cmd = realtime(args) + [os.path.join(args.release, "coldstart"), os.path.join(args.release, function), "--runs", str(runs), "--name", function,
           "--log", os.path.join(args.work, f"{logname}.log")]
    for e in events:
        cmd += ["--event", e]
    if endpoint:
        cmd += ["--endpoint", endpoint]
    for k, v in env.items():
        if k != "AWS_ENDPOINT_URL":
            cmd += ["--env", f"{k}={v}"]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    if p.returncode != 0 or not p.stdout.strip():
        raise SystemExit(f"coldstart failed ({p.returncode}): {p.stderr}")
    result = json.loads(p.stdout)
    result.pop("per_run", None) if not args.keep_per_run else None
    if p.stderr.strip():
        result["stderr"] = p.stderr.strip()[-2000:]
    return result


# ------------------------------------------------------------------ figures


def sizes(args: argparse.Namespace) -> dict:
    out: dict[str, dict[str, Any]] = {}
    for arch in ("arm64", "x86_64"):
        for fn in FUNCTIONS:
            z = os.path.join(args.lambda_dir, arch, fn, "bootstrap.zip")
            if not os.path.exists(z):
                out.setdefault(arch, {})[fn] = None
                continue
            with zipfile.ZipFile(z) as zf:
                raw = sum(i.file_size for i in zf.infolist())
            out.setdefault(arch, {})[fn] = {"zip_bytes": os.path.getsize(z), "bootstrap_bytes": raw}
    return out


def cold(args: argparse.Namespace, proxy: Proxy, world: dict) -> dict:
    """Cold start, first no-op event and RSS per function, without and with a state table."""
    res: dict[str, Any] = {}
    for fn in FUNCTIONS:
        noop = write_json(os.path.join(args.work, f"noop-{fn}.json"), for_account(event_file(NOOP_EVENTS[fn]), None))
        # No state table: the function must not call AWS at all; the proxy is the endpoint, so
        # its counters prove it.
        proxy.reset()
        bare = coldstart(args, fn, [noop, noop], {"AUTOPILOT_CLUSTERS": "stage01"}, args.runs, args.proxy, f"cold-{fn}-nostate")
        bare["aws_calls"] = sum(v["calls"] for v in counts(proxy.stats()).values())
        noop_w = write_json(os.path.join(args.work, f"noop-{fn}-world.json"), for_account(event_file(NOOP_EVENTS[fn]), world["account"]))
        # Configured as deployed (state table, topic): a no-op is still settled without AWS.
        proxy.reset()
        with_state = coldstart(args, fn, [noop_w, noop_w], world_env(world, args.proxy, "stage01"), args.runs, args.proxy,
                               f"cold-{fn}-state")
        with_state["aws_calls"] = sum(v["calls"] for v in counts(proxy.stats()).values())
        res[fn] = {"nostate": bare, "state": with_state}
        if args.tls:
            # An event that needs AWS, over HTTPS: the TLS handshake of the first call (aws-lc's
            # first randomness) and a full system root bundle to parse, as a deployed function
            # pays them. The first start does the work; the others find the event id claimed.
            aws_ev = write_json(os.path.join(args.work, f"aws-{fn}-world.json"), for_account(event_file(AWS_EVENTS[fn]), world["account"]))
            env = {**world_env(world, args.tls, "stage01"), "SSL_CERT_FILE": args.tls_roots}
            res[fn]["tls"] = coldstart(args, fn, [aws_ev, aws_ev], env, args.runs, args.tls, f"cold-{fn}-tls")
        log(f"{fn}: cold {bare['cold_ms']['median']:.2f} ms, first no-op event {bare['first_event_ms']['median']:.2f} ms "
            f"(0 calls: {bare['aws_calls']}), with state table {with_state['first_event_ms']['median']:.2f} ms, "
            f"RSS {bare['peak_rss_kb']['median'] / 1024:.1f} MiB")
    return res


def variants(args: argparse.Namespace) -> dict:
    """Start-up costs that need no rebuild to measure: the deployer with log variants."""
    noop = os.path.join(args.work, "noop-deployer.json")
    base = {"AUTOPILOT_CLUSTERS": "stage01"}
    out = {}
    for name, extra in (("json-logs", {}), ("text-logs", {"AWS_LAMBDA_LOG_FORMAT": "Text"}),
                        ("logs-off", {"AWS_LAMBDA_LOG_LEVEL": "off"}),
                        # This host keeps its roots twice: a bundle and a directory of ~150 files,
                        # which rustls-native-certs both reads; provided.al2023 has bundles only.
                        ("roots-bundle-only", {"SSL_CERT_FILE": "/etc/ssl/certs/ca-certificates.crt"}),
                        ("roots-one-cert", {"SSL_CERT_FILE": os.path.join(args.work, "one-root.pem")})):
        if name == "roots-one-cert":
            with open("/etc/ssl/certs/ca-certificates.crt", encoding="utf-8") as f:
                pem = f.read()
            end = pem.index("-----END CERTIFICATE-----") + len("-----END CERTIFICATE-----")
            with open(extra["SSL_CERT_FILE"], "w", encoding="utf-8") as f:
                f.write(pem[pem.index("-----BEGIN CERTIFICATE-----"):end] + "\n")
        out[name] = coldstart(args, "deployer", [noop, noop], {**base, **extra}, args.runs, None, f"variant-{name}")
        by = out[name]["handle_ms_by_event"]
        log(f"deployer {name}: cold {out[name]['cold_ms']['median']:.2f} ms, first event {out[name]['first_event_ms']['median']:.2f} ms, "
            f"lazy init {by[0]['median'] - by[1]['median']:.2f} ms")
    return out


def rss_after_work(args: argparse.Namespace, world: dict) -> dict:
    """Peak RSS after a real event per function (deployer: a push that really deploys)."""
    res: dict[str, Any] = {}
    w = worlds.seed_world.World(args.moto, world["account"], world.get("region", "us-east-1"))
    import boto3

    w.session = boto3.session.Session(aws_access_key_id=world["access_key_id"], aws_secret_access_key=world["secret_access_key"],
                                      region_name=w.region)
    pattern = os.path.join(args.work, "deploy-{run}.json")
    for run in range(args.deploy_runs):
        tag = f"v2.{run}.{int(time.time())}"
        digest = worlds.push_image(w, "random", tag)
        ev = worlds.push_event(world["account"], "random", tag, digest, event_id="@ID@")
        write_json(pattern.replace("{run}", str(run)), ev)
    env = world_env(world, args.moto_fn, "stage01")
    r = coldstart(args, "deployer", [pattern], env, args.deploy_runs, args.moto_fn, "rss-deployer")
    r["deployed_runs"] = None
    res["deployer"] = r
    for fn, name in WORK_EVENTS.items():
        ev = write_json(os.path.join(args.work, f"work-{fn}.json"), for_account(event_file(name), world["account"]))
        res[fn] = coldstart(args, fn, [ev], env, args.deploy_runs, args.moto_fn, f"rss-{fn}")
    for fn, r in res.items():
        log(f"{fn}: peak RSS after real work {r['peak_rss_kb']['median'] / 1024:.1f} MiB "
            f"(invocation errors {r['invocation_errors']}; sample {str(r.get('sample_outcome'))[:120]})")
    return res


def fanout(args: argparse.Namespace, proxy: Proxy) -> dict:
    runs = []
    for i in range(args.fanout_runs):
        account = unique_account()
        log(f"fan-out {i + 1}/{args.fanout_runs}: provisioning 500 services in account {account} (moto directly)")
        w = worlds.fanout_world(args.moto, account)
        log(f"fan-out: provisioned in {w['provision_seconds']} s; pushing {w['repository']}:{w['tag']} through the proxy")
        proxy.reset()
        r = run_invoke(args, "deployer", w["event"], world_env(w, args.proxy, w["cluster"]), f"fanout-{i}")
        c = counts(proxy.stats())
        outcome = r["outcome"] or {}
        deployed = len(outcome.get("deployed", []))
        failed = len(outcome.get("failed", []))
        n, f, k = w["services"], w["families"], deployed
        ecs_ecr = sum(v["calls"] for key, v in c.items() if key.split(":")[0] in ("ecs", "ecr"))
        ecs_ecr_throttled = sum(v["throttled"] for key, v in c.items() if key.split(":")[0] in ("ecs", "ecr"))
        total = sum(v["calls"] for v in c.values())
        throttled = sum(v["throttled"] for v in c.values())
        latency_s = args.latency_ms / 1000
        bound = max(0, f - 20) * 1.0 + latency_s * total
        budget = math.ceil(n / 100) + math.ceil(n / 10) + 2 * f + k + args.budget_constant
        run = {
            "account": account, "services": n, "families": f, "expected_deployed": w["deployed"], "deployed": deployed,
            "failed": failed, "rc": r["rc"], "wall_s": r["wall_s"], "bound_s": bound, "ratio": r["wall_s"] / bound,
            "calls_total": total, "calls_ecs_ecr": ecs_ecr, "calls_ecs_ecr_throttled": ecs_ecr_throttled, "throttled": throttled, "budget": budget,
            "by_service": by_service(c), "by_action": {k2: v for k2, v in sorted(c.items())}, "status": outcome.get("status"),
            "stderr": r["stderr"] if r["rc"] else "",
        }
        runs.append(run)
        log(f"fan-out: {deployed}/{w['deployed']} deployed, {failed} failed, wall {r['wall_s']:.1f} s vs bound {bound:.1f} s "
            f"({run['ratio']:.2f}x), calls {total} (ECS+ECR {ecs_ecr}, budget {budget}), throttled {throttled}")
    return {"runs": runs}


def _why(outcome: Any) -> str:
    """The reason an outcome gives: an ignored event's, or a rejected one's error."""
    if not isinstance(outcome, dict):
        return ""
    err = outcome.get("error")
    why = outcome.get("reason") or (err.get("message") if isinstance(err, dict) else err) or ""
    return str(why)[:200]


def _spread(values: list[int]) -> dict[str, float]:
    v = sorted(values) or [0]
    return {"min": v[0], "median": statistics.median(v), "max": v[-1], "total": sum(v)}


def cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU seconds process `pid` has used so far (/proc), None when unknown."""
    if not pid:
        return None
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def bed_throughput(url: str, key: str, threads: int, per_thread: int = 10) -> float:
    """Calls per second the proxy and moto carry with `threads` callers at once: ECS ListClusters
    (in no bucket) signed in form only, so the callers cost next to nothing. The organization
    row's calls come from that many processes at once, and this is the ceiling they share."""
    host, port = url.removeprefix("http://").rstrip("/").split(":")
    headers = {"X-Amz-Target": "AmazonEC2ContainerServiceV20141113.ListClusters",
               "Content-Type": "application/x-amz-json-1.1", "X-Amz-Date": "20260101T000000Z",
               "Authorization": f"AWS4-HMAC-SHA256 Credential={key}/20260101/us-east-1/ecs/aws4_request, "
                                "SignedHeaders=host;x-amz-date, Signature=00"}

    def caller(_):
        import http.client
        conn = http.client.HTTPConnection(host, int(port), timeout=60)
        for _ in range(per_thread):
            conn.request("POST", "/", body=b"{}", headers=headers)
            conn.getresponse().read()
        conn.close()

    t0 = time.perf_counter()
    with ThreadPoolExecutor(threads) as ex:
        list(ex.map(caller, range(threads)))
    return threads * per_thread / (time.perf_counter() - t0)


def _org_opted_in(args: argparse.Namespace) -> int:
    """10% of each member's services, 2 per family."""
    return max(2, round(args.org_services * 0.1) // 2 * 2)


def _org_invocation(args: argparse.Namespace, w: dict, mw: dict, members: list[str]) -> tuple[dict, dict]:
    """(environment, event) of the invocation that handles member `mw`'s event."""
    if args.org_plumbing:  # today's single-account deployer: the member's own key, a push
        env = world_env(mw, args.proxy, w["cluster"])
        event = mw["push_event"]
    else:
        env = world_env(w["central"], args.proxy, w["cluster"])
        env["AUTOPILOT_MEMBER_ROLE"] = MEMBER_ROLE
        env["AUTOPILOT_ACCOUNTS"] = " ".join(members)
        event = mw["event"] if args.org_event == "replicate" else mw["push_event"]
    env.pop("AUTOPILOT_QUEUE_URL", None)  # each invocation handles its account's event itself
    return env, event


def org_probe(args: argparse.Namespace, proxy: Proxy) -> str | None:
    """Before 50 accounts are seeded: does this deployer act in a member account at all? One
    member with 2 services, one event. None if it does, else why the row is skipped."""
    central, member = unique_account(), unique_account()
    w = worlds.org_world(args.moto, central, [member], services=2, deployed=2, families=1, workers=1)
    env, event = _org_invocation(args, w, w["members"][0], [member])
    proxy.reset()
    r = run_invoke(args, "deployer", event, env, f"org-probe-{member}")
    accts = proxy.calls_by_account()["accounts"]
    a, ca = accts.get(member, {}), accts.get(central, {})
    if a.get("calls", 0) or a.get("assume_role_sessions", 0):
        return None
    outcome = r["outcome"] or {}
    why = _why(outcome) or next((l for l in reversed(r["stderr"].splitlines()) if l.strip()), "")[:200]
    central_ecs = ca.get("services", {}).get("ecs", {}).get("calls", 0)
    return (f"the deployer acted in no member account (probe: 1 member, 2 services; AssumeRole sessions 0): this binary "
            f"has no organization mode (AUTOPILOT_MEMBER_ROLE){' and acted in the central account' if central_ecs else ''}; "
            f"status {outcome.get('status')!r}, {why!r}"
            + ("; --org-event push sends ECR Image Action PUSH events instead" if args.org_event == "replicate" else ""))


def organization(args: argparse.Namespace, proxy: Proxy) -> dict:
    """One replicated image into every member account of an Organization, each account's event
    an invocation of its own, all at once; per-account figures from the proxy."""
    m = args.org_accounts
    if not args.org_plumbing:
        probe = org_probe(args, proxy)
        if probe:
            log(f"organization: SKIPPED: {probe}")
            return {"accounts": m, "services": args.org_services, "opted_in": _org_opted_in(args), "event": args.org_event,
                    "plumbing": False, "skipped": probe}
    deployed = _org_opted_in(args)
    central = unique_account()
    members = sorted({unique_account() for _ in range(m * 2)} - {central})[:m]
    log(f"organization: provisioning {m} member accounts x {args.org_services} services ({deployed} opted in) and "
        f"central account {central} (moto directly, {args.org_workers} accounts at a time)")
    w = worlds.org_world(args.moto, central, members, services=args.org_services, deployed=deployed,
                         families=deployed // 2, workers=args.org_workers, member_state=args.org_plumbing)
    c = w["central"]
    log(f"organization: provisioned in {w['provision_seconds']} s; {m} concurrent deployer invocations through the proxy")
    jobs = [(mw, *_org_invocation(args, w, mw, members)) for mw in w["members"]]
    callers = max(m, 50)
    capacity = bed_throughput(args.proxy, c["access_key_id"], callers)
    log(f"organization: the proxy and moto carry {capacity:.0f} calls/s with {callers} callers at once")
    proxy.reset()
    cpu0 = {"moto": cpu_seconds(args.moto_pid), "proxy": cpu_seconds(args.proxy_pid)}
    kids0 = os.times()
    t0 = time.perf_counter()

    def one(job):
        mw, env, event = job
        r = run_invoke(args, "deployer", event, env, f"org-{mw['account']}")
        r["end_s"] = time.perf_counter() - t0
        return r

    with ThreadPoolExecutor(len(jobs)) as ex:
        results = list(ex.map(one, jobs))
    wall = max(r["end_s"] for r in results)
    kids1 = os.times()
    # CPU the test bed spent on the run: moto and the proxy are each one Python process (one
    # core at most, under the GIL), so the run cannot be shorter than either's CPU time.
    cpu = {k: (None if v is None or cpu_seconds(getattr(args, f"{k}_pid")) is None
               else round(cpu_seconds(getattr(args, f"{k}_pid")) - v, 2)) for k, v in cpu0.items()}
    cpu["deployers"] = round((kids1.children_user + kids1.children_system) - (kids0.children_user + kids0.children_system), 2)
    calls = proxy.calls_by_account()
    accts = calls["accounts"]
    latency_s = args.latency_ms / 1000
    per: list[dict] = []
    for (mw, _, _), r in zip(jobs, results):
        a = accts.get(mw["account"], {})
        svc = a.get("services", {})
        outcome = r["outcome"] or {}
        per.append({
            "account": mw["account"], "rc": r["rc"], "wall_s": r["end_s"], "status": outcome.get("status"),
            "deployed": len(outcome.get("deployed", []) or []), "failed": len(outcome.get("failed", []) or []),
            "calls": a.get("calls", 0), "calls_ecs_ecr": sum(svc.get(x, {}).get("calls", 0) for x in ("ecs", "ecr")),
            "by_service": {k: v["calls"] for k, v in sorted(svc.items())}, "throttled": a.get("throttled", 0),
            "unexplained_throttles": a.get("unexplained_throttles", 0), "assume_role": a.get("assume_role_sessions", 0),
            "reason": _why(outcome),
            "stderr": r["stderr"][-500:] if r["rc"] else "",
        })
        if not per[-1]["reason"] and r["rc"]:  # a failed invocation: its last line says why
            per[-1]["reason"] = next((l for l in reversed(r["stderr"].splitlines()) if l.strip()), "")[:200]
    acted = [p for p in per if p["calls_ecs_ecr"] > 0]
    ca = accts.get(c["account"], {})
    res: dict[str, Any] = {
        "accounts": m, "services": args.org_services, "opted_in": deployed, "families": deployed // 2,
        "event": "push (plumbing: member keys)" if args.org_plumbing else args.org_event,
        "plumbing": args.org_plumbing, "central": c["account"], "provision_s": w["provision_seconds"], "wall_s": wall,
        "members": per, "central_calls": ca.get("calls", 0), "bed_calls_per_s": capacity, "cpu_s": cpu,
        "central_by_service": {k: v["calls"] for k, v in sorted(ca.get("services", {}).items())},
        "totals": calls["totals"],
    }
    central_ecs = ca.get("services", {}).get("ecs", {}).get("calls", 0)
    # No organization mode at all: no session into any member and no call in one. (A binary that
    # has it but fails some accounts is measured, and those failures show.)
    if not acted and not calls["totals"].get("assume_role_sessions", 0) and not args.org_plumbing:
        sample = next((p for p in per if not p["calls_ecs_ecr"]), per[0])
        res["skipped"] = (f"the deployer acted in {len(acted)}/{m} member accounts (AssumeRole sessions: "
                          f"{calls['totals'].get('assume_role_sessions', 0)}): this binary has no organization mode "
                          f"(AUTOPILOT_MEMBER_ROLE){' and acted in the central account' if central_ecs else ''}; e.g. "
                          f"account {sample['account']}: status {sample['status']!r}, {sample['reason']!r}"
                          + ("; --org-event push sends ECR Image Action PUSH events instead" if args.org_event == "replicate" else ""))
        log(f"organization: SKIPPED: {res['skipped']}")
        return res
    # The single-account bound of the busiest account, as the fan-out row computes its own: the
    # register bucket's refill beyond its burst of 20, plus 25 ms per call made one after the
    # other, counting the account's own calls and its share of the central account's (state
    # table, notifications, STS).
    busiest = max(per, key=lambda p: p["calls"])
    share = math.ceil(res["central_calls"] / max(1, m))
    bound = max(0, res["families"] - 20) * 1.0 + latency_s * (busiest["calls"] + share)
    res.update({
        "busiest": busiest["account"], "busiest_calls": busiest["calls"], "central_share": share, "bound_s": bound,
        "ratio": wall / bound if bound else math.inf,
        "deployed": sum(p["deployed"] for p in per), "expected_deployed": deployed * m,
        "failed": sum(p["failed"] for p in per), "failed_invocations": sum(1 for p in per if p["rc"] != 0),
        "throttled": sum(p["throttled"] for p in per), "unexplained_throttles": calls["totals"].get("unexplained_throttles", 0),
        "assume_role": _spread([p["assume_role"] for p in per]), "calls": _spread([p["calls"] for p in per]),
        "calls_ecs_ecr": _spread([p["calls_ecs_ecr"] for p in per]), "throttles": _spread([p["throttled"] for p in per]),
        "calls_total": calls["totals"].get("calls", 0),
        # What the test bed itself allowed: every call of the run goes through one proxy and one
        # moto process on this machine's cores, so the run cannot end before all its calls fit
        # through them; against AWS that floor is not there.
        "throughput_per_s": calls["totals"].get("calls", 0) / wall if wall else 0.0,
        "bed_floor_s": max([calls["totals"].get("calls", 0) / capacity if capacity else 0.0]
                           + [v for k, v in cpu.items() if k != "deployers" and v is not None]),
    })
    res["bed_bound_s"] = max(bound, res["bed_floor_s"])
    res["bed_ratio"] = wall / res["bed_bound_s"] if res["bed_bound_s"] else math.inf
    log(f"organization: wall {wall:.1f} s vs bound {bound:.2f} s ({res['ratio']:.2f}x; busiest account {busiest['account']}: "
        f"{busiest['calls']} calls + {share} central); {res['deployed']}/{res['expected_deployed']} deployed, {res['failed']} failed, "
        f"{res['failed_invocations']} failed invocations; throttled {res['throttled']} (crossing accounts "
        f"{res['unexplained_throttles']}); AssumeRole per account {res['assume_role']}; calls per account {res['calls']} "
        f"(ECS+ECR {res['calls_ecs_ecr']}); central {res['central_calls']} {res['central_by_service']}; "
        f"{res['throughput_per_s']:.0f} calls/s through the proxy; the test bed's floor for {res['calls_total']} calls at "
        f"{capacity:.0f} calls/s, or moto's / the proxy's CPU time, is {res['bed_floor_s']:.1f} s "
        f"({res['bed_ratio']:.2f}x of max(bound, floor)); CPU seconds {cpu}")
    return res


def peer(args: argparse.Namespace, proxy: Proxy) -> dict:
    runs = []
    ecs_cli = os.path.join(args.peer_venv, "bin", "ecs")
    for i in range(args.peer_runs):
        # ecs-autopilot: one event
        wa = worlds.peer_world(args.moto, unique_account())
        proxy.reset()
        ra = run_invoke(args, "deployer", wa["event"], world_env(wa, args.proxy, wa["cluster"]), f"peer-autopilot-{i}")
        ca = counts(proxy.stats())
        imgs = worlds.service_images(args.moto, wa, wa["cluster"], wa["services"])
        ok_a = sum(1 for v in imgs.values() if any(x.endswith(":v2") or wa["digest"] in x for x in v))
        # ecs-deploy: one CLI run per service, as users script it
        wb = worlds.peer_world(args.moto, unique_account())
        proxy.reset()
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": args.work, "AWS_ENDPOINT_URL": args.proxy,
               "AWS_ACCESS_KEY_ID": wb["access_key_id"], "AWS_SECRET_ACCESS_KEY": wb["secret_access_key"],
               "AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1"}
        rcs = []
        t0 = time.perf_counter()
        with open(os.path.join(args.work, f"peer-ecs-deploy-{i}.log"), "w", encoding="utf-8") as logf:
            for svc in wb["services"]:
                p = subprocess.run([ecs_cli, "deploy", wb["cluster"], svc, "--tag", "v2", "--timeout", "-1"], env=env,
                                   stdout=logf, stderr=subprocess.STDOUT, timeout=600)
                rcs.append(p.returncode)
        wall_b = time.perf_counter() - t0
        cb = counts(proxy.stats())
        imgs_b = worlds.service_images(args.moto, wb, wb["cluster"], wb["services"])
        ok_b = sum(1 for v in imgs_b.values() if any(x.endswith(":v2") for x in v))
        run = {
            "services": len(wa["services"]),
            "autopilot": {"wall_s": ra["wall_s"], "rc": ra["rc"], "deployed": ok_a, "calls": sum(v["calls"] for v in ca.values()),
                          "throttled": sum(v["throttled"] for v in ca.values()), "by_service": by_service(ca)},
            "ecs_deploy": {"wall_s": wall_b, "failed_runs": sum(1 for x in rcs if x != 0), "deployed": ok_b,
                           "calls": sum(v["calls"] for v in cb.values()), "throttled": sum(v["throttled"] for v in cb.values()),
                           "by_action": {k: v["calls"] for k, v in sorted(cb.items())}},
        }
        run["ratio"] = wall_b / ra["wall_s"]
        runs.append(run)
        log(f"peer {i + 1}/{args.peer_runs}: ecs-autopilot {ra['wall_s']:.2f} s ({ok_a}/20 on v2), ecs-deploy {wall_b:.2f} s "
            f"({ok_b}/20 on v2, {run['ecs_deploy']['failed_runs']} CLI runs failed): {run['ratio']:.1f}x")
    return {"runs": runs}


def alarm(args: argparse.Namespace, proxy: Proxy) -> dict:
    w = seed(args)
    ev = for_account(event_file("cloudwatch-alarm-ok-to-alarm.json"), w["account"], event_id=f"bench-alarm-{w['account']}")
    proxy.reset()
    r = run_invoke(args, "scaler", ev, world_env(w, args.proxy, "stage01"), "alarm")
    c = counts(proxy.stats())
    control = {k: v["calls"] for k, v in c.items() if k.split(":")[0] in ("ecs", "cloudwatch", "monitoring", "autoscaling", "application-autoscaling")}
    other = {k: v["calls"] for k, v in c.items() if k not in control}
    capacity = {k: v for k, v in control.items() if k.split(":")[1] in CAPACITY_ACTIONS}
    decision = {k: v for k, v in control.items() if k not in capacity}
    res = {"rc": r["rc"], "outcome": r["outcome"], "control_calls": sum(control.values()), "control": control, "other": other,
           "decision_calls": sum(decision.values()), "decision": decision, "capacity_calls": sum(capacity.values()),
           "capacity": capacity, "wall_s": r["wall_s"]}
    log(f"alarm: {res['control_calls']} ECS/CloudWatch/Auto Scaling calls {control}; state/notify {other}; "
        f"outcome {json.dumps(r['outcome'])[:200]}")
    return res


def _ecs_ecr_actions(by_action: dict[str, int]) -> str:
    return ", ".join(f"{k.split(':')[1]} {v}" for k, v in by_action.items() if k.split(":")[0] in ("ecs", "ecr"))


def big_account(args: argparse.Namespace, proxy: Proxy) -> dict:
    """Issue 17: one push in an account of `--big-clusters` × `--big-services` services, `running`
    of which run the pushed repository, against the same push in a 100-service account. Reconcile
    builds the repository index first (as its schedule does every 10 minutes)."""
    res: dict[str, Any] = {}
    for label, clusters, per_cluster in (("small", 1, 100), ("big", args.big_clusters, args.big_services)):
        account = unique_account()
        log(f"big account ({label}): provisioning {clusters} × {per_cluster} services in account {account} (moto directly)")
        w = worlds.big_world(args.moto, account, clusters=clusters, per_cluster=per_cluster, running=10,
                             running_clusters=min(5, clusters))
        env = world_env(w, args.proxy, "")
        log(f"big account ({label}): provisioned {w['services']} services in {w['provision_seconds']} s; reconcile builds the index")
        proxy.reset()
        rec = run_invoke(args, "deployer", for_account(event_file("schedule-reconcile.json"), account, f"bench-big-rec-{account}"), env,
                         f"big-{label}-reconcile")
        rc = counts(proxy.stats())
        w.update(worlds.push_later(args.moto, account, w["repository"], "v2"))
        proxy.reset()
        unused = run_invoke(args, "deployer", w["unused_event"], env, f"big-{label}-unused")
        uc = counts(proxy.stats())
        proxy.reset()
        r = run_invoke(args, "deployer", w["event"], env, f"big-{label}-push")
        c = counts(proxy.stats())
        outcome = r["outcome"] or {}
        ecs_ecr = lambda cc: sum(v["calls"] for k, v in cc.items() if k.split(":")[0] in ("ecs", "ecr"))  # noqa: E731
        run = {
            "account": account, "services": w["services"], "clusters": clusters, "running": w["running"],
            "running_clusters": w["running_clusters"],
            "deployed": len(outcome.get("deployed", [])), "failed": len(outcome.get("failed", [])), "rc": r["rc"],
            "status": outcome.get("status"), "wall_s": r["wall_s"], "calls_ecs_ecr": ecs_ecr(c), "calls_total": sum(v["calls"] for v in c.values()),
            "by_action": {k: v["calls"] for k, v in sorted(c.items())},
            "unused_calls_ecs_ecr": ecs_ecr(uc), "unused_wall_s": unused["wall_s"], "unused_status": (unused["outcome"] or {}).get("status"),
            "reconcile_wall_s": rec["wall_s"], "reconcile_rc": rec["rc"], "reconcile_calls_ecs_ecr": ecs_ecr(rc),
            "reconcile_calls_total": sum(v["calls"] for v in rc.values()),
            "stderr": r["stderr"] if r["rc"] else "",
        }
        res[label] = run
        log(f"big account ({label}): push deployed {run['deployed']}/{run['running']}, {run['failed']} failed, wall {r['wall_s']:.2f} s, "
            f"ECS+ECR calls {run['calls_ecs_ecr']} {run['by_action']}; unused repository: {run['unused_calls_ecs_ecr']} ECS+ECR calls; "
            f"reconcile {rec['wall_s']:.1f} s, {run['reconcile_calls_ecs_ecr']} ECS+ECR calls")
    res["ratio"] = res["big"]["wall_s"] / res["small"]["wall_s"]
    res["budget"] = TARGETS["big_calls_per_service"] * res["big"]["running"] + TARGETS["big_calls_constant"]
    return res


# ------------------------------------------------------------------ burst (issue 17, item 6)


def burst(args: argparse.Namespace, proxy: Proxy) -> dict:
    """--burst-tasks tasks of a few services stopped by one lost EC2 instance, delivered to
    target/release/invoke recovery as --burst-concurrency concurrent invocations (one process per
    event, as Lambda runs concurrent events) through the proxy; then, once the notification window
    (--burst-window seconds, from the burst's start) has closed, the summary schedule twice.
    Expected: per service exactly one first message, then exactly one summary whose moreTasks is
    that service's stopped tasks minus the first; no failed invocation."""
    w = seed(args)
    account = w["account"]
    events = worlds.burst_events(account, tasks=args.burst_tasks)
    per_service: dict[str, int] = {}
    for e in events:
        svc = e["detail"]["group"].split(":", 1)[1]
        per_service[svc] = per_service.get(svc, 0) + 1
    worlds.inbox(args.moto, w)
    env = world_env(w, args.proxy, "stage01")
    env["AUTOPILOT_NOTIFICATION_WINDOW_SECONDS"] = str(args.burst_window)
    log(f"burst: {len(events)} stopped tasks of {len(per_service)} services in account {account}, "
        f"{args.burst_concurrency} concurrent invocations through the proxy ({args.latency_ms} ms per call)")
    proxy.reset()
    t0 = time.perf_counter()

    def one(job):
        i, e = job
        return run_invoke(args, "recovery", e, env, f"burst-{i}")

    with ThreadPoolExecutor(args.burst_concurrency) as ex:
        results = list(ex.map(one, enumerate(events)))
    burst_s = time.perf_counter() - t0
    c = counts(proxy.stats())
    closes = args.burst_window + 2 - (time.perf_counter() - t0)
    if closes > 0:
        log(f"burst: delivered in {burst_s:.1f} s; waiting {closes:.0f} s for the window to close")
        time.sleep(closes)
    proxy.reset()
    ticks = []
    for k in (1, 2):
        tick = for_account(event_file("schedule-recovery-summary.json"), account, event_id=f"bench-burst-tick-{account}-{k}")
        ticks.append(run_invoke(args, "recovery", tick, env, f"burst-tick-{k}"))
    ct = counts(proxy.stats())
    notes = worlds.inbox(args.moto, w)

    def kind(n: dict) -> str:
        return (n["message"].get("metadata") or {}).get("eventType", "?")

    def ctx(n: dict) -> dict:
        return (n["message"].get("metadata") or {}).get("additionalContext") or {}

    firsts = {svc: [n for n in notes if kind(n) == "recovery.task-failed" and ctx(n).get("service") == svc] for svc in per_service}
    summaries = {svc: [n for n in notes if kind(n) == "recovery.summary" and ctx(n).get("service") == svc] for svc in per_service}
    def thread(n: dict) -> str | None:
        return (n["message"].get("metadata") or {}).get("threadId")

    # additionalContext values are strings (the custom-notification schema); a summary answers in
    # its incident's thread.
    exact = all(len(firsts[s]) == 1 and len(summaries[s]) == 1 and str(ctx(summaries[s][0]).get("moreTasks")) == str(per_service[s] - 1)
                and thread(summaries[s][0]) is not None and thread(summaries[s][0]) == thread(firsts[s][0])
                for s in per_service)
    expected = 2 * len(per_service)
    state = {k.split(":", 1)[1]: v["calls"] for k, v in c.items() if k.startswith("dynamodb:")}
    conflicts = {k.split(":", 1)[1]: v["errors"] for k, v in c.items() if k.startswith("dynamodb:") and v["errors"]}
    failed = [r for r in results if r["rc"] != 0]
    res = {
        "account": account, "tasks": len(events), "services": per_service, "concurrency": args.burst_concurrency,
        "window_s": args.burst_window, "burst_s": burst_s, "invocations": len(results), "failed_invocations": len(failed),
        "failed_reasons": sorted({_why(r["outcome"]) or r["stderr"][-200:] for r in failed})[:5],
        "messages": len(notes), "expected_messages": expected, "exact": exact,
        "firsts": {s: len(v) for s, v in firsts.items()},
        "summaries": {s: [ctx(n).get("moreTasks") for n in v] for s, v in summaries.items()},
        "subjects": sorted(n["subject"] for n in notes),
        "state_calls": sum(state.values()), "state_calls_per_event": sum(state.values()) / max(1, len(events)),
        "state_by_action": state, "conflicts": sum(conflicts.values()), "conflicts_by_action": conflicts,
        "sns_publish_burst": c.get("sns:Publish", {}).get("calls", 0), "throttled": sum(v["throttled"] for v in c.values()),
        "ticks": [{"rc": t["rc"], "outcome": t["outcome"]} for t in ticks],
        "tick_state_calls": {k.split(":", 1)[1]: v["calls"] for k, v in ct.items() if k.startswith("dynamodb:")},
        "tick_sns_publish": ct.get("sns:Publish", {}).get("calls", 0),
    }
    log(f"burst: {res['invocations']} invocations in {burst_s:.1f} s, {res['failed_invocations']} failed; messages "
        f"{res['messages']} (expected {expected}: one first + one summary per service; exact: {exact}; summaries' "
        f"moreTasks {res['summaries']} for {per_service}); state-table calls {res['state_calls']} = "
        f"{res['state_calls_per_event']:.2f} per event {state}; conditional-check failures {res['conflicts']} {conflicts}; "
        f"ticks {[t['outcome'] for t in res['ticks']]} with state calls {res['tick_state_calls']}")
    return res


def burst_rows(r: dict) -> list[tuple[str, str, str, str]]:
    """The report's rows of the burst figure."""
    b = r.get("burst")
    if not b:
        return []
    what = f"burst: {b['tasks']} tasks of {len(b['services'])} services stopped by one lost instance, {b['concurrency']} concurrent invocations"
    return [
        (what + ": failed invocations", "0", f"{b['failed_invocations']} of {b['invocations']} ({b['burst_s']:.1f} s)",
         verdict(b["failed_invocations"] == 0)),
        ("burst: messages (one first per incident, then one summary with the true count when the window closes)",
         f"exactly {b['expected_messages']}", f"{b['messages']}; summaries' moreTasks {b['summaries']} for tasks {b['services']}",
         verdict(b["exact"] and b["messages"] == b["expected_messages"])),
        ("burst: state-table calls per event (conditional-check failures)", "(for scale)",
         f"{b['state_calls_per_event']:.2f} ({', '.join(f'{k} {v}' for k, v in sorted(b['state_by_action'].items()))}); "
         f"{b['conflicts']} conflicts; the two schedule ticks: {b['tick_state_calls']}", "—"),
    ]


# ------------------------------------------------------------------ report


def fmt_ms(s: dict | None) -> str:
    return "-" if not s else f"{s['median']:.2f} ms (p90 {s['p90']:.2f})"


def verdict(ok: bool | None) -> str:
    return {True: "pass", False: "**FAIL**", None: "n/a"}[ok]


def machine() -> dict:
    model = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            model = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), "")
    except OSError:
        pass
    rustc = subprocess.run(["rustc", "--version"], capture_output=True, text=True).stdout.strip()
    commit = subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", REPO, "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True).stdout.strip()
    load = os.getloadavg()
    return {"cores": os.cpu_count(), "load": f"{load[0]:.1f}/{load[1]:.1f}/{load[2]:.1f}", "cpu": model, "kernel": platform.release(), "rustc": rustc,
            "commit": commit + ("+changes" if dirty else ""), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}


def report(args: argparse.Namespace, r: dict) -> str:
    m = r["machine"]
    rows: list[tuple[str, str, str, str]] = []
    if "cold" in r:
        for fn in FUNCTIONS:
            c = r["cold"][fn]["nostate"]
            rows.append((f"cold start `{fn}` (exec → first `next`)", "≤ 3 ms", fmt_ms(c["cold_ms"]),
                         verdict(c["cold_ms"]["median"] <= TARGETS["cold_ms"])))
        for fn in FUNCTIONS:
            c = r["cold"][fn]["nostate"]
            ok = c["first_event_ms"]["median"] <= TARGETS["first_event_ms"] and c["aws_calls"] == 0 and c["invocation_errors"] == 0
            rows.append((f"first no-op event `{fn}`, no state table ({c['aws_calls']} AWS calls)", "≤ 10 ms", fmt_ms(c["first_event_ms"]),
                         verdict(ok)))
        for fn in FUNCTIONS:
            c = r["cold"][fn]["state"]
            ok = c["first_event_ms"]["median"] <= TARGETS["first_event_ms"] and c.get("aws_calls", 0) == 0 and c["invocation_errors"] == 0
            rows.append((f"first no-op event `{fn}`, configured as deployed: state table, topic ({c.get('aws_calls', '?')} AWS calls)", "≤ 10 ms",
                         fmt_ms(c["first_event_ms"]), verdict(ok)))
        if all("tls" in r["cold"][fn] for fn in FUNCTIONS):
            for fn in FUNCTIONS:
                c = r["cold"][fn]["tls"]
                rows.append((f"first event that needs AWS `{fn}` ({AWS_EVENTS[fn]}), over HTTPS: SDK set-up, first TLS handshake, event-id claim",
                             "(for scale)", fmt_ms(c["first_event_ms"]), "—"))
    if "rss" in r:
        for fn in FUNCTIONS:
            x = r["rss"][fn]
            mb = x["peak_rss_kb"]["median"] * 1024 / MB
            what = "a push that deploys" if fn == "deployer" else ("a failed service task" if fn == "recovery" else "an OK→ALARM alarm")
            rows.append((f"peak RSS `{fn}` after {what}", "≤ 20 MB", f"{mb:.1f} MB (max {x['peak_rss_kb']['max'] * 1024 / MB:.1f})",
                         verdict(mb <= TARGETS["rss_mb"])))
    if "sizes" in r:
        for arch in ("arm64", "x86_64"):
            for fn in FUNCTIONS:
                s = r["sizes"].get(arch, {}).get(fn)
                if s is None:
                    rows.append((f"zip `{fn}` {arch}", "≤ 6 MB", "not built", verdict(None)))
                    continue
                rows.append((f"zip `{fn}` {arch}", "≤ 6 MB", f"{s['zip_bytes'] / MB:.2f} MB (bootstrap {s['bootstrap_bytes'] / MB:.1f} MB)",
                             verdict(s["zip_bytes"] / MB <= TARGETS["zip_mb"])))
    if "fanout" in r and r["fanout"]["runs"]:
        runs = r["fanout"]["runs"]
        x = runs[len(runs) // 2] if len(runs) == 1 else sorted(runs, key=lambda q: q["wall_s"])[len(runs) // 2]
        rows.append((f"fan-out wall time: push used by {x['expected_deployed']} services / {x['families']} families in a {x['services']}-service cluster",
                     "≤ 1.1 × bound", f"{x['wall_s']:.1f} s = {x['ratio']:.2f} × bound {x['bound_s']:.1f} s "
                     f"(30 s register refill + 25 ms × {x['calls_total']} sequential calls)",
                     verdict(x["ratio"] <= TARGETS["fanout_ratio"])))
        rows.append(("fan-out failed services", "0", f"{x['failed']} failed, {x['deployed']}/{x['expected_deployed']} deployed, "
                     f"{x['throttled']} throttled answers absorbed", verdict(x["failed"] == 0 and x["deployed"] == x["expected_deployed"])))
        rows.append(("fan-out API calls, ECS + ECR", f"≤ {x['budget']} (⌈N/100⌉+⌈N/10⌉+2F+K+{args.budget_constant})",
                     f"{x['calls_ecs_ecr']} ({x['calls_ecs_ecr'] - x['calls_ecs_ecr_throttled']} answered + "
                     f"{x['calls_ecs_ecr_throttled']} throttled and retried)", verdict(x["calls_ecs_ecr"] <= x["budget"])))
        rows.append(("fan-out API calls, all (with DynamoDB state + SNS)", f"≤ {x['budget']}",
                     f"{x['calls_total']} ({', '.join(f'{k} {v}' for k, v in sorted(x['by_service'].items()))})",
                     verdict(x["calls_total"] <= x["budget"])))
    if "peer" in r and r["peer"]["runs"]:
        runs = r["peer"]["runs"]
        ratios = sorted(q["ratio"] for q in runs)
        x = sorted(runs, key=lambda q: q["ratio"])[len(runs) // 2]
        ok = x["autopilot"]["deployed"] == x["services"]
        rows.append((f"one tag to {x['services']} services vs fabfuel ecs-deploy (`ecs deploy … --timeout -1` × {x['services']})",
                     "≥ 20× faster", f"{x['ratio']:.1f}× ({x['autopilot']['wall_s']:.2f} s vs {x['ecs_deploy']['wall_s']:.1f} s; "
                     f"{x['autopilot']['deployed']}/{x['services']} vs {x['ecs_deploy']['deployed']}/{x['services']} on v2)",
                     verdict(ok and x["ratio"] >= TARGETS["peer_ratio"])))
    if "alarm" in r:
        a = r["alarm"]
        action = (a.get("outcome") or {}).get("action", "?")
        rows.append(("API calls, alarm → scale decision for one service (CloudWatch/ECS)", "≤ 4",
                     f"{a['decision_calls']} ({', '.join(k.split(':')[1] for k in a['decision'])}; outcome: {action})",
                     verdict(a["decision_calls"] <= TARGETS["alarm_calls"] and a["rc"] == 0)))
        rows.append(("… plus the capacity check that follows a scale-out on an `autopilot:asg` EC2 cluster", "≤ 4",
                     f"{a['control_calls']} (+ {', '.join(k.split(':')[1] for k in a['capacity'])})",
                     verdict(a["control_calls"] <= TARGETS["alarm_calls"] and a["rc"] == 0)))
    if "org" in r:
        o = r["org"]
        what = (f"organization: one replicated image into {o['accounts']} member accounts × {o['services']} services "
                f"({o['opted_in']} opted in each), {o['accounts']} concurrent invocations")
        if o.get("plumbing"):
            what += " — plumbing run: member keys and PUSH events, no AssumeRole"
        if o.get("skipped"):
            rows.append((what, "≤ 1.2 × bound", f"skipped: {o['skipped']}", verdict(None)))
        else:
            rows.append((what + " (wall time)", "≤ 1.2 × bound",
                         f"{o['wall_s']:.1f} s = {o['ratio']:.2f} × bound {o['bound_s']:.2f} s (busiest account: 25 ms × "
                         f"({o['busiest_calls']} + {o['central_share']} central) calls); test-bed floor {o['bed_floor_s']:.1f} s "
                         f"({o['calls_total']} calls through one moto and one proxy process here: {o['bed_calls_per_s']:.0f} "
                         f"ListClusters/s at most; CPU s moto {o['cpu_s'].get('moto')}, proxy {o['cpu_s'].get('proxy')}, "
                         f"deployers {o['cpu_s'].get('deployers')}): {o['bed_ratio']:.2f} × max(bound, floor)",
                         verdict(o["ratio"] <= TARGETS["org_ratio"])))
            rows.append(("organization failed services", "0",
                         f"{o['failed']} failed, {o['deployed']}/{o['expected_deployed']} deployed, "
                         f"{o['failed_invocations']} failed invocations",
                         verdict(o["failed"] == 0 and o["failed_invocations"] == 0 and o["deployed"] == o["expected_deployed"])))
            rows.append(("organization throttles crossing accounts (ECS buckets per account and Region)", "0",
                         f"{o['unexplained_throttles']} ({o['throttled']} throttled answers in all; per account "
                         f"min/median/max {o['throttles']['min']}/{o['throttles']['median']:g}/{o['throttles']['max']})",
                         verdict(o["unexplained_throttles"] == 0)))
            ar = o["assume_role"]
            rows.append(("organization AssumeRole per member account", "≤ 1",
                         f"min/median/max {ar['min']}/{ar['median']:g}/{ar['max']} (total {ar['total']})",
                         verdict(None) if o.get("plumbing") else verdict(ar["max"] <= 1 and ar["min"] >= 1)))
            cc, ce = o["calls"], o["calls_ecs_ecr"]
            rows.append(("organization calls per member account (all; ECS + ECR)", "(for scale)",
                         f"min/median/max {cc['min']}/{cc['median']:g}/{cc['max']}, total {cc['total']}; ECS + ECR "
                         f"{ce['min']}/{ce['median']:g}/{ce['max']}, total {ce['total']}; central account {o['central_calls']} "
                         f"({', '.join(f'{k} {v}' for k, v in o['central_by_service'].items())})", "—"))
    if "big" in r:
        b = r["big"]
        g, sm = b["big"], b["small"]
        what = (f"big account: one push in {g['clusters']} clusters × {g['services'] // g['clusters']} services, {g['running']} of them "
                f"(in {g['running_clusters']} clusters) running the pushed repository, after reconcile built the repository index")
        rows.append((what + ": ECS + ECR calls", f"≤ {b['budget']}",
                     f"{g['calls_ecs_ecr']} ({_ecs_ecr_actions(g['by_action'])}); "
                     f"{g['deployed']}/{g['running']} deployed, {g['failed']} failed",
                     verdict(g["calls_ecs_ecr"] <= b["budget"] and g["deployed"] == g["running"] and g["failed"] == 0)))
        rows.append(("big account: wall time of that push ÷ the same push in a 100-service account", f"≤ {TARGETS['big_ratio']}",
                     f"{g['wall_s']:.2f} s ÷ {sm['wall_s']:.2f} s = {b['ratio']:.2f}", verdict(b["ratio"] <= TARGETS["big_ratio"])))
        rows.append(("big account: a push to a repository no service runs (ECS + ECR calls)", "0",
                     f"{g['unused_calls_ecs_ecr']} ({g['unused_status']}, {g['unused_wall_s']:.2f} s)", verdict(g["unused_calls_ecs_ecr"] == 0)))
        rows.append(("big account: the reconcile pass that builds the index (for scale)", "—",
                     f"{g['reconcile_wall_s']:.1f} s, {g['reconcile_calls_ecs_ecr']} ECS + ECR calls "
                     f"({g['reconcile_calls_total']} in all); 100-service account: {sm['reconcile_wall_s']:.1f} s, "
                     f"{sm['reconcile_calls_ecs_ecr']} ECS + ECR calls", "—"))
    rows += burst_rows(r)
    lines = [
        f"ecs-autopilot benchmarks — {m['date']}, {m['cores']} cores ({m['cpu']}), load average at start {m['load']}, "
        f"commit {m['commit']}, {m['rustc']}",
        "",
        "| figure | target | measured | result |",
        "|---|---|---|---|",
    ]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
    lines += [
        "",
        f"Cold start, first event and RSS: host x86_64 glibc release binaries (`cargo build --release --workspace --bins`), "
        f"medians of {args.runs} starts ({args.deploy_runs} for RSS after real work) under a fake Lambda Runtime API "
        f"(`target/release/coldstart`{', run with `chrt -f 50` so concurrent compile jobs on this shared machine stay out of the figures' if realtime(args) else ''}), "
        f"256 MB memory setting, JSON logs. Zips: `cargo lambda build --release --output-format zip` "
        f"(cargo-lambda adds panic=abort and, on arm64, target-cpu=neoverse-n1). Fan-out, peer and alarm: through "
        f"tests/proxy/aws_proxy.py in front of moto, {args.latency_ms} ms per call and ECS token buckets on.",
    ]
    lines += findings(r)
    return "\n".join(lines) + "\n"


def findings(r: dict) -> list[str]:
    """What the first event pays that the second does not, and the log variants."""
    if "cold" not in r:
        return []
    out = ["", "Start-up work, medians in ms: *first − second* is the first event's handling time minus the second's in the same "
           "process. A no-op is settled from the event alone, so its first handling builds nothing; an event that needs AWS "
           "builds the SDK configuration, clients and HTTP connector, and makes the process's first TLS handshake.", "",
           "| function | exec → `next` | no-op, first − second | no-op configured as deployed | event that needs AWS, over HTTPS | "
           "peak RSS after no-op |", "|---|---|---|---|---|---|"]

    def lazy(c: dict | None) -> str:
        if not c or not c.get("handle_ms_by_event") or len(c["handle_ms_by_event"]) < 2:
            return "-"
        a, b = c["handle_ms_by_event"][0], c["handle_ms_by_event"][1]
        return f"{a['median'] - b['median']:.2f} ({a['median']:.2f} − {b['median']:.2f})"

    for fn in FUNCTIONS:
        c = r["cold"][fn]
        out.append(f"| `{fn}` | {c['nostate']['cold_ms']['median']:.2f} | {lazy(c['nostate'])} | {lazy(c['state'])} | "
                   f"{lazy(c.get('tls'))} | {c['nostate']['peak_rss_kb']['median'] * 1024 / MB:.1f} MB |")
    if "variants" in r:
        out += ["", "`deployer` variants (no state table; log controls, and where the root certificates come from): " + "; ".join(
            f"{k}: exec → `next` {v['cold_ms']['median']:.2f} ms, first event {v['first_event_ms']['median']:.2f} ms, lazy init "
            f"{v['handle_ms_by_event'][0]['median'] - v['handle_ms_by_event'][1]['median']:.2f} ms"
            for k, v in r["variants"].items()) + "."]
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--moto", required=True)
    ap.add_argument("--proxy", required=True)
    ap.add_argument("--python", default=os.path.join(REPO, ".venv/bin/python"))
    ap.add_argument("--release", default=os.path.join(REPO, "target/release"))
    ap.add_argument("--lambda-dir", default=os.path.join(REPO, "target/bench/lambda"))
    ap.add_argument("--peer-venv", default=os.path.join(REPO, "target/bench/venv"))
    ap.add_argument("--work", default=None, help="logs and event files (default: a new temporary directory)")
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--deploy-runs", type=int, default=10)
    ap.add_argument("--fanout-runs", type=int, default=1)
    ap.add_argument("--peer-runs", type=int, default=1)
    ap.add_argument("--latency-ms", type=int, default=25)
    ap.add_argument("--budget-constant", type=int, default=5,
                    help="the budget's constant: ECR look-ups of the pushed and the running image, slack")
    ap.add_argument("--only", default="sizes,cold,variants,rss,fanout,peer,alarm,org,big,burst",
                    help="rows to measure, comma-separated: sizes,cold,variants,rss,fanout,peer,alarm,org,big,burst")
    ap.add_argument("--big-clusters", type=int, default=20, help="big-account row: clusters")
    ap.add_argument("--big-services", type=int, default=500, help="big-account row: services per cluster")
    ap.add_argument("--burst-tasks", type=int, default=500, help="burst row: stopped tasks")
    ap.add_argument("--burst-concurrency", type=int, default=20, help="burst row: concurrent recovery invocations")
    ap.add_argument("--burst-window", type=int, default=120,
                    help="burst row: the notification window (s), longer than the burst; the schedule runs after it")
    ap.add_argument("--org-accounts", type=int, default=50, help="organization row: member accounts")
    ap.add_argument("--org-services", type=int, default=200, help="organization row: services per member account (10%% opted in)")
    ap.add_argument("--org-event", choices=("replicate", "push"), default="replicate",
                    help="organization row: an ECR Replication Action (default) or an ECR Image Action PUSH in each member")
    ap.add_argument("--org-plumbing", action="store_true",
                    help="organization row as today's single-account deployer runs it: each member's own key and a PUSH event")
    ap.add_argument("--org-workers", type=int, default=8, help="organization row: member accounts provisioned at a time")
    ap.add_argument("--moto-pid", type=int, default=None, help="moto's pid: the organization row reports its CPU time")
    ap.add_argument("--proxy-pid", type=int, default=None, help="the proxy's pid: the organization row reports its CPU time")
    ap.add_argument("--tls", default=None, help="URL of a TLS front for moto (benches/tls_relay.py)")
    ap.add_argument("--tls-roots", default=None, help="root bundle that trusts the TLS front (SSL_CERT_FILE)")
    ap.add_argument("--out", default=os.path.join(REPO, "benches/results.md"))
    ap.add_argument("--json", default=os.path.join(REPO, "target/bench/results.json"))
    ap.add_argument("--keep-per-run", action="store_true")
    ap.add_argument("--no-rt", action="store_true", help="run the cold-start tool at normal priority (default: chrt -f 50 when root)")
    ap.add_argument("--invoke-env", action="append", default=[], metavar="K=V",
                    help="extra environment for the invoke runs (fan-out, peer, alarm), e.g. an experiment's switch")
    ap.add_argument("--preflight-only", action="store_true",
                    help="set up the proxies for CloudWatch's CBOR, check every endpoint, and stop (measures nothing)")
    args = ap.parse_args()
    args.invoke_env = dict(kv.split("=", 1) for kv in args.invoke_env)
    args.work = args.work or tempfile.mkdtemp(prefix="ecs-autopilot-bench.")
    os.makedirs(args.work, exist_ok=True)
    log(f"work directory {args.work}")
    hop = DirectHop(args.python, args.moto, os.path.join(args.work, "direct-hop.log"))
    try:
        args.moto_fn = hop.url
        preflight(args)
        if args.preflight_only:
            return 0
        return measure(args)
    finally:
        hop.stop()


def measure(args: argparse.Namespace) -> int:
    only = set(args.only.split(","))
    proxy = Proxy(args.proxy)
    proxy.configure(latency_ms=args.latency_ms, throttle=True, fault_rate=0, drop_rate=0)
    r: dict[str, Any] = {"machine": machine()}
    t0 = time.monotonic()
    if "sizes" in only:
        r["sizes"] = sizes(args)
    if only & {"cold", "rss"}:
        world = seed(args)
        log(f"seed world in account {world['account']}")
        if "cold" in only:
            r["cold"] = cold(args, proxy, world)
        if "rss" in only:
            r["rss"] = rss_after_work(args, world)
    if "variants" in only and "cold" in only:
        r["variants"] = variants(args)
    if "alarm" in only:
        r["alarm"] = alarm(args, proxy)
    if "peer" in only:
        r["peer"] = peer(args, proxy)
    if "fanout" in only:
        r["fanout"] = fanout(args, proxy)
    if "org" in only:
        r["org"] = organization(args, proxy)
    if "big" in only:
        r["big"] = big_account(args, proxy)
    if "burst" in only:
        r["burst"] = burst(args, proxy)
    r["seconds"] = round(time.monotonic() - t0, 1)
    os.makedirs(os.path.dirname(args.json), exist_ok=True)
    with open(args.json, "w", encoding="utf-8") as f:
        json.dump(r, f, indent=2, default=str)
    md = report(args, r)
    with open(args.out, "w", encoding="utf-8") as f:
        f.write(md)
    print(md)
    log(f"done in {r['seconds']} s; details in {args.json}, logs in {args.work}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
