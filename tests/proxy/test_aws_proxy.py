"""Tests of tests/proxy/aws_proxy.py against a real moto server (both run as subprocesses).

Run: .venv/bin/python -m pytest tests/proxy -q
"""

from __future__ import annotations

import datetime as dt
import http.client
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import boto3
import botocore.exceptions
import botocore.model
import cbor2
import pytest
from botocore.config import Config
from botocore.retries.standard import ThrottledRetryableChecker

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import aws_proxy  # noqa: E402
REPO = HERE.parent.parent
PROXY = HERE / "aws_proxy.py"
REGION = "us-east-1"
NO_RETRY = Config(retries={"total_max_attempts": 1}, max_pool_connections=32)


# ---------------------------------------------------------------------------------------------
# processes
# ---------------------------------------------------------------------------------------------
def _moto_cmd() -> list[str]:
    local = REPO / ".venv" / "bin" / "moto_server"
    if local.exists():
        return [str(local)]
    found = shutil.which("moto_server")
    if not found:
        pytest.skip("moto_server not found (.venv/bin/moto_server or PATH)")
    return [found]


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@pytest.fixture(scope="session")
def moto_url():
    log = tempfile.NamedTemporaryFile(prefix="moto-", suffix=".log", delete=False)
    proc = subprocess.Popen(_moto_cmd() + ["-H", "127.0.0.1", "-p", "0"],
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 20
        port = None
        while time.monotonic() < deadline and proc.poll() is None:
            m = re.search(r"Running on http://127\.0\.0\.1:(\d+)", Path(log.name).read_text())
            if m:
                port = int(m.group(1))
                break
            time.sleep(0.05)
        assert port, "moto_server did not start: " + Path(log.name).read_text()[-2000:]
        url = f"http://127.0.0.1:{port}"
        while time.monotonic() < deadline:  # wait until it answers
            try:
                urllib.request.urlopen(url + "/moto-api/data.json", timeout=2).read()
                break
            except OSError:
                time.sleep(0.05)
        yield url
    finally:
        proc.kill()  # werkzeug takes 1-2 s to honour SIGTERM; moto keeps nothing worth saving
        proc.wait(5)
        os.unlink(log.name)


def start_proxy(upstream: str, *args: str):
    """Starts the proxy; returns (process, url). Its stderr goes to proc.log_path."""
    log = tempfile.NamedTemporaryFile(prefix="aws-proxy-", suffix=".log", delete=False)
    proc = subprocess.Popen([sys.executable, str(PROXY), "--upstream", upstream, "--port", "0",
                             *args], stdout=subprocess.PIPE, stderr=log, text=True)
    proc.log_path = log.name
    line: list[str] = []
    t = threading.Thread(target=lambda: line.append(proc.stdout.readline()), daemon=True)
    t.start()
    t.join(10)
    if not line or not line[0].startswith("listening on "):
        _stop(proc)
        raise AssertionError(f"proxy did not start: {line!r} {Path(log.name).read_text()}")
    return proc, "http://" + line[0].split("listening on ", 1)[1].strip()


def stop_proxy(proc) -> str:
    """Stops the proxy and returns what it wrote to stderr."""
    _stop(proc)
    text = Path(proc.log_path).read_text()
    os.unlink(proc.log_path)
    return text


@pytest.fixture(scope="session")
def proxy_proc(moto_url):
    proc, url = start_proxy(moto_url, "--seed", "7")
    yield url
    errors = stop_proxy(proc)
    assert "Traceback" not in errors, errors


def control(url: str, path: str, body: dict | None = None) -> dict:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url + path, data=data, method="GET" if body is None else "POST")
    with urllib.request.urlopen(req, timeout=5) as r:
        return json.load(r)


DEFAULTS = {"latency_ms": 25, "throttle": True, "fault_rate": 0.0, "drop_rate": 0.0,
            "seed": 7, "faults_for": None, "drops_for": None,
            "fault_kinds": ["throttle", "500", "503"], "fault_key": "sequence",
            "drop_mode": "close", "buckets": aws_proxy.DEFAULT_BUCKETS, "cbor_to_json": False,
            "moto_compat": False}


@pytest.fixture
def proxy(proxy_proc):
    """The shared proxy, back to its defaults with zeroed stats and full buckets."""
    control(proxy_proc, "/__proxy/config", DEFAULTS)
    control(proxy_proc, "/__proxy/reset", {})
    return proxy_proc


def client(url: str, service: str = "ecs", key: str | None = None, config: Config = NO_RETRY):
    return boto3.client(service, endpoint_url=url, region_name=REGION,
                        aws_access_key_id=key or "AKID" + uuid.uuid4().hex[:12].upper(),
                        aws_secret_access_key="secret", config=config)


def register(ecs, family: str):
    return ecs.register_task_definition(
        family=family, containerDefinitions=[{"name": "app", "image": "nginx", "memory": 64}])


def uniq(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


# ---------------------------------------------------------------------------------------------
# tests
# ---------------------------------------------------------------------------------------------
def test_pass_through(proxy, moto_url):
    ecs = client(proxy)
    name = uniq("pass")
    arn = ecs.create_cluster(clusterName=name)["cluster"]["clusterArn"]
    assert arn in ecs.list_clusters()["clusterArns"]
    # the change really is in moto
    direct = client(moto_url)
    assert arn in direct.list_clusters()["clusterArns"]
    # a Query-protocol service and a JSON 1.0 one pass through too
    sns = client(proxy, "sns")
    topic = sns.create_topic(Name=uniq("t"))["TopicArn"]
    assert topic in [t["TopicArn"] for t in sns.list_topics()["Topics"]]
    ddb = client(proxy, "dynamodb")
    assert "TableNames" in ddb.list_tables()


def test_keep_alive_raw_http(proxy):
    """Several requests on one persistent HTTP/1.1 connection, content-length bodies."""
    host, port = proxy.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    hdrs = {"X-Amz-Target": "AmazonEC2ContainerServiceV20141113.ListClusters",
            "Content-Type": "application/x-amz-json-1.1",
            "Authorization": "AWS4-HMAC-SHA256 Credential=AKIARAW/20250101/us-east-1/ecs/"
                             "aws4_request, SignedHeaders=host, Signature=00"}
    socks = set()
    for _ in range(3):
        conn.request("POST", "/", body=b"{}", headers=hdrs)
        r = conn.getresponse()
        body = r.read()
        assert r.status == 200, body
        assert "clusterArns" in json.loads(body)
        assert r.getheader("Connection") != "close"
        socks.add(id(conn.sock))
    assert len(socks) == 1
    conn.close()
    assert control(proxy, "/__proxy/stats")["actions"]["ecs:ListClusters"]["calls"] == 3


def test_latency_added(proxy):
    ecs = client(proxy)
    ecs.list_clusters()  # warm the connection
    times = []
    for _ in range(10):
        t = time.perf_counter()
        ecs.list_clusters()
        times.append(time.perf_counter() - t)
    assert statistics.median(times) >= 0.025

    control(proxy, "/__proxy/config", {"latency_ms": 200})
    t = time.perf_counter()
    ecs.list_clusters()
    assert time.perf_counter() - t >= 0.2


def test_register_burst_of_25_gives_20_then_throttling(proxy, moto_url):
    """25 RegisterTaskDefinition at once: exactly 20 pass, 5 get ECS's ThrottlingException.

    Sent concurrently: the proxy takes tokens on arrival (before forwarding), so the count is
    exact however slow moto is; the sequential "20 then throttled" order is checked in
    test_bucket_refills_about_one_per_second.
    """
    control(proxy, "/__proxy/config", {"latency_ms": 0})
    ecs = client(proxy)
    family = uniq("burst")

    def one(_):
        try:
            register(ecs, family)
            return "ok"
        except botocore.exceptions.ClientError as e:
            return e

    t0 = time.monotonic()
    with ThreadPoolExecutor(25) as ex:
        outcomes = list(ex.map(one, range(25)))
    elapsed = time.monotonic() - t0
    errors = [o for o in outcomes if o != "ok"]
    assert outcomes.count("ok") == 20, (elapsed, errors)
    assert len(errors) == 5

    e = errors[0]
    assert e.response["Error"]["Code"] == "ThrottlingException"
    assert e.response["Error"]["Message"] == "Rate exceeded"
    assert e.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert e.response["ResponseMetadata"]["HTTPHeaders"]["x-amzn-errortype"] == \
        "ThrottlingException"
    # botocore classifies it as a throttling error (what its retry strategies key on)
    assert "ThrottlingException" in ThrottledRetryableChecker._THROTTLED_ERROR_CODES
    assert "ThrottlingException" in str(e)

    # moto saw exactly the 20 that passed
    arns = client(moto_url).list_task_definitions(familyPrefix=family)["taskDefinitionArns"]
    assert len(arns) == 20
    st = control(proxy, "/__proxy/stats")["actions"]["ecs:RegisterTaskDefinition"]
    assert (st["calls"], st["forwarded"], st["throttled"], st["faults"]) == (25, 20, 5, 0)


def test_throttle_body_is_ecs_json(proxy):
    control(proxy, "/__proxy/config", {"latency_ms": 0, "buckets": {
        "task-definition-modify": {"burst": 0, "rate": 0}}})
    host, port = proxy.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    conn.request("POST", "/", body=b"{}", headers={
        "X-Amz-Target": "AmazonEC2ContainerServiceV20141113.RegisterTaskDefinition",
        "Content-Type": "application/x-amz-json-1.1",
        "Authorization": "AWS4-HMAC-SHA256 Credential=AKIABODY/20250101/us-east-1/ecs/"
                         "aws4_request, SignedHeaders=host, Signature=00"})
    r = conn.getresponse()
    assert r.status == 400
    assert json.loads(r.read()) == {"__type": "ThrottlingException", "message": "Rate exceeded"}
    assert r.getheader("x-amzn-ErrorType") == "ThrottlingException"
    assert r.getheader("Content-Type") == "application/x-amz-json-1.1"
    conn.close()


def test_bucket_refills_about_one_per_second(proxy):
    control(proxy, "/__proxy/config", {"latency_ms": 0})
    ecs = client(proxy)
    family = uniq("refill")
    t0 = time.monotonic()
    for _ in range(20):
        register(ecs, family)  # the first 20 in a row pass
    if time.monotonic() - t0 > 0.9:  # a token may have come back meanwhile
        pytest.skip("20 registrations took > 0.9 s: machine too slow for this check")
    with pytest.raises(botocore.exceptions.ClientError, match="ThrottlingException"):
        register(ecs, family)  # the 21st is refused
    time.sleep(1.05)
    register(ecs, family)  # one token came back
    with pytest.raises(botocore.exceptions.ClientError, match="ThrottlingException"):
        register(ecs, family)  # and only one


def test_access_keys_have_separate_buckets(proxy):
    """Keys moto does not know (all in its default account) each stand for an account of their
    own, as before buckets went per account: tests sharing the proxy keep their own buckets."""
    control(proxy, "/__proxy/config", {"latency_ms": 0})
    a, b = client(proxy, key="AKIAACCOUNTA" + uuid.uuid4().hex[:6]), \
        client(proxy, key="AKIAACCOUNTB" + uuid.uuid4().hex[:6])
    family = uniq("keys")
    for _ in range(20):
        register(a, family)
    with pytest.raises(botocore.exceptions.ClientError, match="ThrottlingException"):
        register(a, family)
    register(b, family)  # b's bucket is full
    buckets = control(proxy, "/__proxy/stats")["buckets"]
    levels = {k.split("/")[0][:12]: v["task-definition-modify"] for k, v in buckets.items()}
    assert levels["AKIAACCOUNTA"] < 1 and levels["AKIAACCOUNTB"] >= 18


def member_key(moto_url: str, account: str) -> str:
    """An access key of a new IAM user in ``account`` (moto's x-moto-account-id trick, as
    tests/seed_world.py makes them): calls signed with it act in that account."""
    iam = boto3.client("iam", endpoint_url=moto_url, region_name=REGION, aws_access_key_id="AKIDSETUP",
                       aws_secret_access_key="secret")
    iam.meta.events.register("before-sign.iam.*",
                             lambda request, **_: request.headers.__setitem__("x-moto-account-id", account))
    user = uniq("member")
    iam.create_user(UserName=user)
    return iam.create_access_key(UserName=user)["AccessKey"]["AccessKeyId"]


def new_account() -> str:
    return "7" + str(uuid.uuid4().int)[:11]


def test_buckets_are_per_account_not_per_key(proxy, moto_url):
    """Two accounts, one drained: the other is untouched, and a second key of the drained account
    finds the same empty bucket (ECS throttles per account and Region, whatever the caller)."""
    control(proxy, "/__proxy/config", {"latency_ms": 0})
    acct_a, acct_b = new_account(), new_account()
    a1, a2, b = (client(proxy, key=member_key(moto_url, acct_a)),
                 client(proxy, key=member_key(moto_url, acct_a)),
                 client(proxy, key=member_key(moto_url, acct_b)))
    family = uniq("acct")
    for _ in range(20):
        register(a1, family)
    with pytest.raises(botocore.exceptions.ClientError, match="ThrottlingException"):
        register(a1, family)
    with pytest.raises(botocore.exceptions.ClientError, match="ThrottlingException"):
        register(a2, family)  # another key, same account: same bucket
    for _ in range(20):
        register(b, family)  # b's account has a full bucket of its own
    buckets = control(proxy, "/__proxy/stats")["buckets"]
    assert buckets[f"{acct_a}/{REGION}"]["task-definition-modify"] < 1
    assert buckets[f"{acct_b}/{REGION}"]["task-definition-modify"] < 1
    calls = control(proxy, "/__proxy/calls?by=account")
    assert calls["by"] == "account"
    ca, cb = calls["accounts"][acct_a], calls["accounts"][acct_b]
    assert (ca["calls"], ca["forwarded"], ca["throttled"]) == (22, 20, 2)
    assert (cb["calls"], cb["forwarded"], cb["throttled"]) == (20, 20, 0)
    assert ca["services"]["ecs"]["throttled"] == 2
    assert ca["actions"]["ecs:RegisterTaskDefinition"]["calls"] == 22
    assert len(ca["keys"]) == 2 and len(cb["keys"]) == 1
    g = ca["buckets"][f"{REGION}/task-definition-modify"]
    assert (g["admitted"], g["throttled"], g["unexplained"], g["burst"]) == (20, 2, 0, 20)
    assert calls["totals"]["unexplained_throttles"] == 0
    keys = control(proxy, "/__proxy/accounts")["keys"]
    assert {keys[k]["account"] for k in ca["keys"]} == {acct_a}
    assert {keys[k]["source"] for k in ca["keys"]} == {"caller-identity"}
    # reset zeroes the counts and refills, but keys stay in their accounts
    control(proxy, "/__proxy/reset", {})
    assert control(proxy, "/__proxy/calls?by=account")["accounts"] == {}
    register(a2, family)
    assert control(proxy, "/__proxy/accounts")["keys"][ca["keys"][0]]["account"] == acct_a


def test_assume_role_keys_act_in_the_role_account(proxy, moto_url):
    """A key that STS AssumeRole hands out through the proxy is in the role's account: the
    central caller's AssumeRole counts for the central account, the assumed key's ECS calls for
    the member's, and two sessions in one member share its buckets."""
    control(proxy, "/__proxy/config", {"latency_ms": 0})
    central, member = new_account(), new_account()
    sts = client(proxy, "sts", key=member_key(moto_url, central))
    role = f"arn:aws:iam::{member}:role/ecs-autopilot/ecs-autopilot-deployer"
    creds = [sts.assume_role(RoleArn=role, RoleSessionName=f"s{i}")["Credentials"] for i in range(2)]
    keys = control(proxy, "/__proxy/accounts")["keys"]
    for c in creds:
        assert keys[c["AccessKeyId"]] == {"account": member, "source": "assume-role"}
    e1, e2 = (boto3.client("ecs", endpoint_url=proxy, region_name=REGION, config=NO_RETRY,
                           aws_access_key_id=c["AccessKeyId"], aws_secret_access_key=c["SecretAccessKey"],
                           aws_session_token=c["SessionToken"]) for c in creds)
    family = uniq("assumed")
    for _ in range(20):
        register(e1, family)
    with pytest.raises(botocore.exceptions.ClientError, match="ThrottlingException"):
        register(e2, family)
    # moto agrees: the task definitions are in the member account
    arns = e1.list_task_definitions(familyPrefix=family)["taskDefinitionArns"]
    assert len(arns) == 20 and all(f":{member}:" in a for a in arns)
    calls = control(proxy, "/__proxy/calls?by=account")["accounts"]
    assert calls[central]["actions"]["sts:AssumeRole"]["calls"] == 2
    assert calls[member]["assume_role_sessions"] == 2 and calls[central]["assume_role_sessions"] == 0
    assert "ecs" not in calls[central]["services"]
    assert calls[member]["services"]["ecs"]["throttled"] == 1
    assert sorted(calls[member]["keys"]) == sorted(c["AccessKeyId"] for c in creds)


def test_unexplained_throttles_catch_a_bucket_drained_by_someone_else():
    """The guard behind "throttles crossing accounts": an account throttled before its own calls
    could have emptied its bucket is counted (here its bucket is emptied behind its back, as a
    bucket shared with another account would be); one that spent its own burst is not."""
    st = aws_proxy.State(aws_proxy.Config(latency_ms=0))
    a = aws_proxy.CallInfo("ecs", "RegisterTaskDefinition", "json", "AKIDA", REGION, owner="111111111111")
    b = aws_proxy.CallInfo("ecs", "RegisterTaskDefinition", "json", "AKIDB", REGION, owner="222222222222")
    assert all(st.take_token(a) for _ in range(20)) and not st.take_token(a)
    st.buckets[("222222222222", REGION, "task-definition-modify")] = [0.0, time.monotonic()]
    assert not st.take_token(b)
    accts = st.calls_by_account()["accounts"]
    assert accts["111111111111"]["buckets"][f"{REGION}/task-definition-modify"]["unexplained"] == 0
    assert accts["222222222222"]["unexplained_throttles"] == 1


def test_accounts_endpoint_and_unknown_keys(proxy):
    """Keys moto does not know stay accounts of their own (named by the key); a set-up may name
    a key's account itself; bad bodies get HTTP 400."""
    control(proxy, "/__proxy/config", {"latency_ms": 0})
    key = "AKIDUNKNOWN" + uuid.uuid4().hex[:8].upper()
    client(proxy, key=key).list_clusters()
    assert control(proxy, "/__proxy/accounts")["keys"][key] == {"account": key, "source": "caller-identity"}
    given = "AKIDGIVEN" + uuid.uuid4().hex[:8].upper()
    control(proxy, "/__proxy/accounts", {"keys": {given: "210987654321"}})
    client(proxy, key=given).list_clusters()
    assert control(proxy, "/__proxy/calls?by=account")["accounts"]["210987654321"]["calls"] == 1
    for bad in ({"keys": {given: "12"}}, {"keys": []}, {}):
        with pytest.raises(urllib.error.HTTPError) as e:
            control(proxy, "/__proxy/accounts", bad)
        assert e.value.code == 400
    with pytest.raises(urllib.error.HTTPError) as e:
        control(proxy, "/__proxy/calls?by=key")
    assert e.value.code == 400


def test_other_ecs_buckets_and_no_throttle(proxy):
    control(proxy, "/__proxy/config", {"latency_ms": 0, "buckets": {
        "service-read": {"burst": 3, "rate": 0}}})
    ecs = client(proxy)
    cluster = uniq("c")
    ecs.create_cluster(clusterName=cluster)
    # DescribeServices and ListServices share the service-read bucket
    ecs.list_services(cluster=cluster)
    ecs.describe_services(cluster=cluster, services=["x"])
    ecs.list_services(cluster=cluster)
    with pytest.raises(botocore.exceptions.ClientError, match="ThrottlingException"):
        ecs.describe_services(cluster=cluster, services=["x"])
    ecs.list_clusters()  # not in any bucket
    control(proxy, "/__proxy/config", {"throttle": False})
    for _ in range(5):
        ecs.list_services(cluster=cluster)


def test_stats_count_per_action_and_service(proxy):
    ecs, sns, ddb, asg = (client(proxy), client(proxy, "sns"), client(proxy, "dynamodb"),
                          client(proxy, "autoscaling"))
    control(proxy, "/__proxy/config", {"latency_ms": 0})
    for _ in range(3):
        ecs.list_clusters()
    ecs.describe_clusters(clusters=["nope"])
    sns.create_topic(Name=uniq("stats"))
    ddb.list_tables()
    asg.describe_auto_scaling_groups()
    st = control(proxy, "/__proxy/stats")
    acts = st["actions"]
    assert acts["ecs:ListClusters"]["calls"] == 3
    assert acts["ecs:ListClusters"]["mutating"] is False
    assert acts["ecs:DescribeClusters"]["calls"] == 1
    assert acts["sns:CreateTopic"] == {
        "service": "sns", "action": "CreateTopic", "mutating": True, "calls": 1,
        "forwarded": 1, "throttled": 0, "faults": 0, "dropped": 0, "errors": 0}
    assert acts["dynamodb:ListTables"]["calls"] == 1
    assert acts["autoscaling:DescribeAutoScalingGroups"]["calls"] == 1
    assert st["by_action"]["ListClusters"]["calls"] == 3
    assert st["mutating"] == {k: k == "sns:CreateTopic" for k in acts}
    assert st["services"]["ecs"]["calls"] == 4
    assert st["services"]["ecs"]["mutating_calls"] == 0
    assert st["services"]["sns"]["mutating_calls"] == 1
    assert st["totals"]["calls"] == 7 and st["totals"]["mutating_calls"] == 1

    control(proxy, "/__proxy/reset", {})
    st = control(proxy, "/__proxy/stats")
    assert st["actions"] == {} and st["totals"]["calls"] == 0


def test_fault_rate_one_answers_500_and_moto_is_untouched(proxy, moto_url):
    control(proxy, "/__proxy/config", {"latency_ms": 0, "fault_rate": 1.0,
                                       "fault_kinds": ["500"]})
    ecs = client(proxy)
    name = uniq("fault")
    with pytest.raises(botocore.exceptions.ClientError) as ei:
        ecs.create_cluster(clusterName=name)
    assert ei.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500
    assert ei.value.response["Error"]["Code"] == "InternalFailure"
    direct = client(moto_url)
    assert not any(a.endswith("/" + name) for a in direct.list_clusters()["clusterArns"])
    st = control(proxy, "/__proxy/stats")
    assert st["actions"]["ecs:CreateCluster"]["faults"] == 1
    assert st["actions"]["ecs:CreateCluster"]["forwarded"] == 0
    assert st["totals"]["faults_by_kind"]["500"] == 1

    # the other kinds, and the Query protocol's XML errors
    for kind, status, code in (("503", 503, "ServiceUnavailable"),
                               ("throttle", 400, "ThrottlingException")):
        control(proxy, "/__proxy/config", {"fault_kinds": [kind]})
        with pytest.raises(botocore.exceptions.ClientError) as ei:
            ecs.create_cluster(clusterName=name)
        assert ei.value.response["ResponseMetadata"]["HTTPStatusCode"] == status
        assert ei.value.response["Error"]["Code"] == code
    with pytest.raises(botocore.exceptions.ClientError) as ei:
        client(proxy, "autoscaling").describe_auto_scaling_groups()
    assert ei.value.response["Error"]["Code"] == "Throttling"
    assert not any(a.endswith("/" + name) for a in direct.list_clusters()["clusterArns"])


def test_fault_filter_and_determinism(proxy):
    control(proxy, "/__proxy/config", {"latency_ms": 0, "fault_rate": 1.0,
                                       "faults_for": ["@mutating"]})
    ecs = client(proxy)
    ecs.list_clusters()  # reads pass
    with pytest.raises(botocore.exceptions.ClientError):
        ecs.create_cluster(clusterName=uniq("filtered"))

    def pattern(seed):
        control(proxy, "/__proxy/config", {"fault_rate": 0.5, "faults_for": None, "seed": seed})
        out = []
        for _ in range(16):
            try:
                ecs.list_clusters()
                out.append(".")
            except botocore.exceptions.ClientError as e:
                out.append(str(e.response["ResponseMetadata"]["HTTPStatusCode"]))
        return out

    p1, p2, p3 = pattern(11), pattern(11), pattern(12)
    assert p1 == p2
    assert p1 != p3
    assert 2 <= sum(c != "." for c in p1) <= 14
    assert set(p1) <= {".", "400", "500", "503"}


def test_drop_after_forward_loses_response_but_moto_changed(proxy, moto_url):
    control(proxy, "/__proxy/config", {"latency_ms": 0, "drop_rate": 1.0})
    ecs = client(proxy)
    direct = client(moto_url)
    for mode in ("close", "reset"):
        control(proxy, "/__proxy/config", {"drop_mode": mode})
        name = uniq("drop-" + mode)
        t = time.monotonic()
        with pytest.raises((botocore.exceptions.ConnectionClosedError,
                            botocore.exceptions.ConnectionError,
                            botocore.exceptions.HTTPClientError)):
            ecs.create_cluster(clusterName=name)
        assert time.monotonic() - t < 5
        assert any(a.endswith("/" + name) for a in direct.list_clusters()["clusterArns"])
    st = control(proxy, "/__proxy/stats")["actions"]["ecs:CreateCluster"]
    assert (st["calls"], st["forwarded"], st["dropped"]) == (2, 2, 2)
    # the client recovers on a fresh connection once drops stop
    control(proxy, "/__proxy/config", {"drop_rate": 0.0})
    ecs.list_clusters()


def test_hold_delays_then_forwards_even_when_the_caller_gave_up(proxy, moto_url):
    control(proxy, "/__proxy/config", {"latency_ms": 0, "holds": {"ecs:CreateCluster": 1500}})
    ecs = client(proxy, config=NO_RETRY.merge(Config(read_timeout=0.3)))
    name = uniq("held")
    with pytest.raises(botocore.exceptions.ReadTimeoutError):
        ecs.create_cluster(clusterName=name)
    direct = client(moto_url)
    assert not any(a.endswith("/" + name) for a in direct.list_clusters()["clusterArns"]), "still held"
    time.sleep(1.6)
    assert any(a.endswith("/" + name) for a in direct.list_clusters()["clusterArns"]), "forwarded after the hold"
    t = time.monotonic()
    client(proxy).list_clusters()
    assert time.monotonic() - t < 1.0, "other calls are not held"
    assert control(proxy, "/__proxy/config")["holds"] == {"ecs:CreateCluster": 1500.0}
    control(proxy, "/__proxy/config", {"holds": {}})


def test_concurrent_requests(proxy):
    control(proxy, "/__proxy/config", {"latency_ms": 200})
    ecs = client(proxy)
    ecs.list_clusters()
    t = time.perf_counter()
    with ThreadPoolExecutor(16) as ex:
        list(ex.map(lambda _: ecs.list_clusters(), range(16)))
    # 16 calls of >= 200 ms each: one at a time would take >= 3.2 s
    assert time.perf_counter() - t < 1.6


def test_config_endpoint_validates(proxy):
    for bad in ({"nope": 1}, {"fault_rate": 2}, {"fault_kinds": ["418"]}, {"throttle": "yes"}, {"holds": {"RunTask": -1}}, {"holds": []}):
        req = urllib.request.Request(proxy + "/__proxy/config", data=json.dumps(bad).encode(),
                                     method="POST")
        with pytest.raises(urllib.error.HTTPError) as ei:
            urllib.request.urlopen(req, timeout=5)
        assert ei.value.code == 400
    cfg = control(proxy, "/__proxy/config")
    assert cfg["fault_rate"] == 0.0 and cfg["latency_ms"] == 25
    assert cfg["buckets"]["task-definition-modify"]["burst"] == 20


def test_upstream_down_answers_502_quickly(moto_url):
    proc, url = start_proxy("http://127.0.0.1:9", "--latency-ms", "0",
                            "--upstream-timeout", "2")
    try:
        t = time.monotonic()
        with pytest.raises(botocore.exceptions.ClientError) as ei:
            client(url).list_clusters()
        assert ei.value.response["ResponseMetadata"]["HTTPStatusCode"] == 502
        assert time.monotonic() - t < 3
    finally:
        stop_proxy(proc)


# ---------------------------------------------------------------------------------------------
# --validate: requests checked against AWS's API model (model_check.py)
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def validating(moto_url):
    """A proxy of its own with --validate refuse and a violations log: (url, log path)."""
    log = tempfile.NamedTemporaryFile(prefix="violations-", suffix=".jsonl", delete=False)
    log.close()
    proc, url = start_proxy(moto_url, "--validate", "refuse", "--latency-ms", "0",
                            "--violations-log", log.name)
    yield url, log.name
    errors = stop_proxy(proc)
    os.unlink(log.name)
    assert "Traceback" not in errors, errors


def _tags(ecs, arn: str) -> dict:
    out = ecs.list_tags_for_resource(resourceArn=arn).get("tags", [])  # moto omits an empty list
    return {t["key"]: t.get("value") for t in out}


def test_validate_refuse_answers_like_aws_and_records(validating, moto_url):
    url, log = validating
    control(url, "/__proxy/config", {"validate": "refuse"})
    key = "AKIAREFUSE" + uuid.uuid4().hex[:8].upper()
    ecs, direct = client(url, key=key), client(moto_url, key=key)
    arn = ecs.create_cluster(clusterName=uniq("validate"))["cluster"]["clusterArn"]
    assert control(url, f"/__proxy/violations?account={key}")["count"] == 0

    # botocore's own validation lets it through (it does not check patterns)
    with pytest.raises(botocore.exceptions.ClientError) as ei:
        ecs.tag_resource(resourceArn=arn, tags=[{"key": "autopilot:deploy", "value": "v*"}])
    err = ei.value.response
    assert err["Error"]["Code"] == "ValidationException"
    assert err["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert err["ResponseMetadata"]["HTTPHeaders"]["x-amzn-errortype"] == "ValidationException"
    assert err["Error"]["Message"].startswith("ecs TagResource: tags[0].value='v*' does not match")
    assert "autopilot:deploy" not in _tags(direct, arn)  # never reached moto

    found = control(url, f"/__proxy/violations?account={key}")
    assert found["count"] == 1
    v = found["violations"][0]
    assert (v["account"], v["service"], v["operation"], v["member"], v["value"], v["refused"]) \
        == (key, "ecs", "TagResource", "tags[0].value", "'v*'", True)
    assert v["rule"].startswith("pattern ") and v["region"] == REGION and v["time"] > 0
    assert control(url, "/__proxy/violations?account=AKIAOTHER")["count"] == 0
    assert "unchecked" in found and found["uncompilable"] == []

    # a valid value goes through and adds nothing
    ecs.tag_resource(resourceArn=arn, tags=[{"key": "autopilot:deploy",
                                             "value": "semver:2 prefix:release-"}])
    assert _tags(direct, arn)["autopilot:deploy"] == "semver:2 prefix:release-"
    assert control(url, f"/__proxy/violations?account={key}")["count"] == 1

    st = control(url, "/__proxy/stats")
    assert st["totals"]["violations"] >= 1
    # counted as a call that was not forwarded
    tr = st["actions"]["ecs:TagResource"]
    assert tr["calls"] - tr["forwarded"] >= 1 and tr["errors"] == 0
    # reset keeps the violations; the log has one JSON line per violation
    control(url, "/__proxy/reset", {})
    assert control(url, f"/__proxy/violations?account={key}")["count"] == 1
    assert control(url, "/__proxy/stats")["totals"]["violations"] >= 1
    lines = [json.loads(x) for x in Path(log).read_text().splitlines()]
    assert any(x["account"] == key and x["member"] == "tags[0].value" for x in lines)


def test_validate_refuse_query_protocol(validating):
    url, _ = validating
    control(url, "/__proxy/config", {"validate": "refuse"})
    key = "AKIAQUERY" + uuid.uuid4().hex[:8].upper()
    sns = client(url, "sns", key=key)
    topic = sns.create_topic(Name=uniq("validate"))["TopicArn"]
    sns.publish(TopicArn=topic, Subject="deploy done", Message="m",
                MessageAttributes={"k": {"DataType": "String", "StringValue": "v"}})
    with pytest.raises(botocore.exceptions.ClientError) as ei:
        sns.publish(TopicArn=topic, Subject="a\nb <&>", Message="m")
    err = ei.value.response
    assert err["Error"]["Code"] == "ValidationError"
    assert err["Error"]["Type"] == "Sender"
    assert err["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert err["Error"]["Message"] == (
        "sns Publish: Subject='a\\nb <&>' contains a line break or control character")
    found = control(url, f"/__proxy/violations?account={key}")
    assert [v["member"] for v in found["violations"]] == ["Subject"]


def test_validate_record_forwards_and_records(validating, moto_url):
    url, _ = validating
    key = "AKIARECORD" + uuid.uuid4().hex[:8].upper()
    ecs, direct = client(url, key=key), client(moto_url, key=key)
    arn = ecs.create_cluster(clusterName=uniq("record"))["cluster"]["clusterArn"]
    try:
        assert control(url, "/__proxy/config", {"validate": "record"})["validate"] == "record"
        ecs.tag_resource(resourceArn=arn, tags=[{"key": "autopilot:deploy", "value": "v*"}])
        assert _tags(direct, arn)["autopilot:deploy"] == "v*"  # moto applied it
        found = control(url, f"/__proxy/violations?account={key}")
        assert [(v["member"], v["refused"]) for v in found["violations"]] == [
            ("tags[0].value", False)]
    finally:
        control(url, "/__proxy/config", {"validate": "refuse"})


def test_validate_config_and_clear(validating, proxy):
    url, _ = validating
    for bad in ({"validate": "yes"}, {"validate": True}):
        req = urllib.request.Request(url + "/__proxy/config", data=json.dumps(bad).encode(),
                                     method="POST")
        with pytest.raises(urllib.error.HTTPError) as ei:
            urllib.request.urlopen(req, timeout=5)
        assert ei.value.code == 400
    assert control(url, "/__proxy/config")["validate"] == "refuse"
    # EC2 is not checked, only counted
    client(url, "ec2").describe_vpcs()
    assert control(url, "/__proxy/violations")["unchecked"].get("ec2:DescribeVpcs", 0) >= 1
    client(url).list_clusters()
    cleared = control(url, "/__proxy/violations/clear", {})["cleared"]
    assert cleared >= 0
    after = control(url, "/__proxy/violations")
    assert after["count"] == 0 and after["violations"] == [] and after["unchecked"] == {}
    assert control(url, "/__proxy/stats")["totals"]["violations"] == 0

    # the shared proxy runs with validation off: nothing is checked or recorded
    assert control(proxy, "/__proxy/config")["validate"] == "off"
    ecs = client(proxy)
    arn = ecs.create_cluster(clusterName=uniq("off"))["cluster"]["clusterArn"]
    ecs.tag_resource(resourceArn=arn, tags=[{"key": "k", "value": "v*"}])
    assert control(proxy, "/__proxy/violations") == {
        "count": 0, "violations": [], "unchecked": {}, "uncompilable": [], "rewritten": [],
        "checker_errors": {}}
    assert control(proxy, "/__proxy/stats")["totals"]["violations"] == 0


# ---------------------------------------------------------------------------------------------
# --cbor-to-json: Smithy RPC v2 CBOR (the Rust aws-sdk-cloudwatch) in front of moto's JSON 1.0
# ---------------------------------------------------------------------------------------------
CW = "GraniteServiceVersion20100801"


@pytest.fixture
def cbor_client(monkeypatch):
    """make(url, key=None, validation=True): a botocore CloudWatch client that speaks Smithy RPC
    v2 CBOR, as aws-sdk-cloudwatch does (botocore 1.44.8 can, and prefers JSON 1.0 unless told
    otherwise: the protocol is picked when the client is made). ``client.sent`` lists the
    (path, headers) of what it sent."""
    def make(url: str, key: str | None = None, validation: bool = True, **config):
        cfg = Config(retries={"total_max_attempts": 1}, parameter_validation=validation, **config)
        with monkeypatch.context() as m:
            m.setattr(botocore.model, "PRIORITY_ORDERED_SUPPORTED_PROTOCOLS",
                      ("smithy-rpc-v2-cbor", *botocore.model.PRIORITY_ORDERED_SUPPORTED_PROTOCOLS))
            c = boto3.session.Session().client(
                "cloudwatch", endpoint_url=url, region_name=REGION,
                aws_secret_access_key="secret", config=cfg,
                aws_access_key_id=key or "AKIDCBOR" + uuid.uuid4().hex[:8].upper())
        assert c.meta.service_model.resolved_protocol == "smithy-rpc-v2-cbor"
        c.sent = []
        c.meta.events.register("before-send", lambda request, **_: c.sent.append(
            (urllib.parse.urlsplit(request.url).path,
             {k: v.decode() if isinstance(v, bytes) else v for k, v in request.headers.items()})))
        return c
    return make


@pytest.fixture(scope="module")
def cbor_proxy(moto_url):
    """A proxy of its own as scripts/test's suite proxy will run: --cbor-to-json, --validate
    refuse, no latency."""
    proc, url = start_proxy(moto_url, "--cbor-to-json", "--validate", "refuse",
                            "--latency-ms", "0", "--no-throttle")
    yield url
    errors = stop_proxy(proc)
    assert "Traceback" not in errors, errors


@pytest.fixture
def cbor(cbor_proxy):
    control(cbor_proxy, "/__proxy/config", {"fault_rate": 0.0, "drop_rate": 0.0,
                                            "validate": "refuse", "cbor_to_json": True})
    control(cbor_proxy, "/__proxy/reset", {})
    return cbor_proxy


def raw_cbor(url: str, op: str, params: dict | bytes, key: str = "AKIDRAWCBOR",
             service: str = CW, headers: dict | None = None):
    """A hand-made rpc-v2-cbor call (signed in form only: moto reads the credential scope and
    never checks the signature). Returns (status, headers, body decoded with tags kept)."""
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    body = params if isinstance(params, bytes) else cbor2.dumps(params)
    conn.request("POST", f"/service/{service}/operation/{op}", body=body, headers={
        "smithy-protocol": "rpc-v2-cbor", "Content-Type": "application/cbor",
        "Accept": "application/cbor", "X-Amz-Date": "20260101T000000Z",
        "Authorization": f"AWS4-HMAC-SHA256 Credential={key}/20260101/{REGION}/monitoring/"
                         "aws4_request, SignedHeaders=host;x-amz-date, Signature=00",
        **(headers or {})})
    r = conn.getresponse()
    data = r.read()
    conn.close()
    hdrs = {k.lower(): v for k, v in r.getheaders()}
    value = cbor2.loads(data, semantic_decoders={1: lambda v, _i: cbor2.CBORTag(1, v)}) \
        if data and "cbor" in hdrs.get("content-type", "") else data
    return r.status, hdrs, value


def alarm_args(name: str, **extra) -> dict:
    return {"AlarmName": name, "MetricName": "CPUUtilization", "Namespace": "AWS/ECS",
            "Statistic": "Average", "Period": 60, "EvaluationPeriods": 1, "Threshold": 70,
            "ComparisonOperator": "GreaterThanThreshold", **extra}


def test_cbor_client_creates_describes_and_lists_tags(cbor, cbor_client):
    cw = cbor_client(cbor)
    name = uniq("cbor-alarm")
    cw.put_metric_alarm(**alarm_args(name, Tags=[{"Key": "autopilot:scale",
                                                  "Value": "stage01/api"}]))
    path, hdrs = cw.sent[-1]
    assert path == f"/service/{CW}/operation/PutMetricAlarm"
    assert hdrs["smithy-protocol"] == "rpc-v2-cbor" and "X-Amz-Target" not in hdrs

    alarms = cw.describe_alarms(AlarmNames=[name])["MetricAlarms"]
    assert [a["AlarmName"] for a in alarms] == [name]
    a = alarms[0]
    assert a["Threshold"] == 70.0 and a["EvaluationPeriods"] == 1
    assert a["StateValue"] == "INSUFFICIENT_DATA" or a["StateValue"] == "OK"
    assert isinstance(a["StateUpdatedTimestamp"], dt.datetime)
    assert abs(a["StateUpdatedTimestamp"].timestamp() - time.time()) < 3600 * 24 * 366

    tags = cw.list_tags_for_resource(ResourceARN=a["AlarmArn"])["Tags"]
    assert tags == [{"Key": "autopilot:scale", "Value": "stage01/api"}]

    # counted as the CloudWatch operations, forwarded once each
    acts = control(cbor, "/__proxy/stats")["actions"]
    for op in ("PutMetricAlarm", "DescribeAlarms", "ListTagsForResource"):
        assert (acts[f"monitoring:{op}"]["calls"], acts[f"monitoring:{op}"]["forwarded"],
                acts[f"monitoring:{op}"]["errors"]) == (1, 1, 0), op
    assert acts["monitoring:PutMetricAlarm"]["mutating"] is True
    # and checked against the model, not counted unchecked
    assert not any(k.startswith("monitoring:")
                   for k in control(cbor, "/__proxy/violations")["unchecked"])


def test_cbor_answers_on_the_wire(cbor, cbor_client):
    key = "AKIDWIRE" + uuid.uuid4().hex[:8].upper()
    name = uniq("cbor-wire")
    cbor_client(cbor, key=key).put_metric_alarm(**alarm_args(name))
    status, hdrs, body = raw_cbor(cbor, "DescribeAlarms", {"AlarmNames": [name]}, key=key)
    assert status == 200
    assert hdrs["content-type"] == "application/cbor"
    assert hdrs["smithy-protocol"] == "rpc-v2-cbor"
    assert "x-amzn-requestid" in hdrs and "x-amzn-errortype" not in hdrs
    a = body["MetricAlarms"][0]
    ts = a["StateUpdatedTimestamp"]
    assert isinstance(ts, cbor2.CBORTag) and ts.tag == 1 and isinstance(ts.value, (int, float))
    assert isinstance(a["Threshold"], float) and isinstance(a["Period"], int)
    assert None not in a.values()

    # a Unit output: no body, no Content-Type
    status, hdrs, body = raw_cbor(cbor, "SetAlarmState", {
        "AlarmName": name, "StateValue": "ALARM", "StateReason": "test"}, key=key)
    assert (status, body) == (200, b"")
    assert "content-type" not in hdrs and hdrs["smithy-protocol"] == "rpc-v2-cbor"


def test_cbor_get_metric_data_timestamps(cbor, cbor_client):
    cw = cbor_client(cbor)
    ns = uniq("Autopilot")
    t0 = dt.datetime.now(dt.timezone.utc).replace(second=0, microsecond=0) - dt.timedelta(
        minutes=5)
    cw.put_metric_data(Namespace=ns, MetricData=[
        {"MetricName": "m", "Value": 2, "Timestamp": t0},
        {"MetricName": "m", "Value": 3.5, "Timestamp": t0 + dt.timedelta(minutes=1)}])
    query = {"MetricDataQueries": [{"Id": "q", "MetricStat": {
        "Metric": {"Namespace": ns, "MetricName": "m"}, "Period": 60, "Stat": "Sum"}}],
        "StartTime": t0 - dt.timedelta(minutes=1), "EndTime": t0 + dt.timedelta(minutes=3),
        "ScanBy": "TimestampAscending"}
    r = cw.get_metric_data(**query)["MetricDataResults"][0]
    assert r["Timestamps"] == [t0, t0 + dt.timedelta(minutes=1)]
    assert r["Values"] == [2.0, 3.5]
    # on the wire: each timestamp a tag 1
    wire = {**query, "StartTime": cbor2.CBORTag(1, int(query["StartTime"].timestamp())),
            "EndTime": cbor2.CBORTag(1, query["EndTime"].timestamp() + 0.5)}
    status, _, body = raw_cbor(cbor, "GetMetricData", wire)
    assert status == 200
    stamps = body["MetricDataResults"][0]["Timestamps"]
    assert stamps == [cbor2.CBORTag(1, int(t0.timestamp())),
                      cbor2.CBORTag(1, int(t0.timestamp()) + 60)]


def test_cbor_errors(cbor, cbor_client):
    cw = cbor_client(cbor)
    missing = f"arn:aws:cloudwatch:{REGION}:123456789012:alarm:{uniq('missing')}"
    # TagResource on a missing alarm: moto's ResourceNotFoundException, in CBOR
    with pytest.raises(botocore.exceptions.ClientError) as ei:
        cw.tag_resource(ResourceARN=missing, Tags=[{"Key": "k", "Value": "v"}])
    err = ei.value.response
    assert err["Error"]["Code"] == "ResourceNotFoundException"
    assert err["ResponseMetadata"]["HTTPStatusCode"] == 404
    status, hdrs, body = raw_cbor(cbor, "TagResource", {"ResourceARN": missing,
                                                         "Tags": [{"Key": "k", "Value": "v"}]})
    assert status == 404 and hdrs["content-type"] == "application/cbor"
    assert body["__type"] == "com.amazonaws.cloudwatch#ResourceNotFoundException"
    assert isinstance(body["message"], str)
    assert hdrs["x-amzn-query-error"] == "ResourceNotFoundException;Sender"

    # SetAlarmState on a missing alarm: the code the SDKs take from x-amzn-query-error
    with pytest.raises(botocore.exceptions.ClientError) as ei:
        cw.set_alarm_state(AlarmName=uniq("missing"), StateValue="ALARM", StateReason="x")
    assert ei.value.response["Error"]["Code"] == "ResourceNotFound"
    assert ei.value.response["Error"]["Type"] == "Sender"

    # moto answers ListTagsForResource for a missing alarm with no tags (AWS: 404
    # ResourceNotFoundException); the proxy passes on what moto says
    assert cw.list_tags_for_resource(ResourceARN=missing)["Tags"] == []

    # an operation moto lacks (HTML 500) and a body that is not CBOR
    with pytest.raises(botocore.exceptions.ClientError) as ei:
        cw.describe_alarm_history()
    assert ei.value.response["Error"]["Code"] == "ProxyTranslationError"
    assert ei.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500
    # a body that is not CBOR: with --validate refuse the model check refuses it first (AWS
    # validates before anything else), else the translation answers SerializationException
    status, _, body = raw_cbor(cbor, "DescribeAlarms", b"\xa1")
    assert status == 400 and body["__type"] == "ValidationException"
    assert "cannot be parsed as CBOR" in body["message"]
    control(cbor, "/__proxy/config", {"validate": "off"})
    status, _, body = raw_cbor(cbor, "DescribeAlarms", b"\xa1")
    assert status == 400 and body["__type"] == "SerializationException"
    acts = control(cbor, "/__proxy/stats")["actions"]
    assert acts["monitoring:DescribeAlarms"]["forwarded"] == 0  # never reached moto
    assert acts["monitoring:DescribeAlarms"]["errors"] == 1  # the SerializationException
    assert acts["monitoring:TagResource"]["errors"] == 2


def test_cbor_validation_refuse_answers_in_cbor(cbor, cbor_client):
    key = "AKIACBORREFUSE" + uuid.uuid4().hex[:6].upper()
    cw = cbor_client(cbor, key=key, validation=False)  # botocore would refuse MaxRecords 0
    with pytest.raises(botocore.exceptions.ClientError) as ei:
        cw.describe_alarms(StateValue="NOPE", MaxRecords=0)
    err = ei.value.response
    assert err["ResponseMetadata"]["HTTPStatusCode"] == 400
    # CloudWatch's model: ValidationException, query code ValidationError
    assert err["Error"]["Code"] == "ValidationError"
    assert err["Error"]["QueryErrorCode"] == "ValidationException"
    assert err["Error"]["Message"].startswith("cloudwatch DescribeAlarms: ")
    found = control(cbor, f"/__proxy/violations?account={key}")
    assert sorted(v["member"] for v in found["violations"]) == ["MaxRecords", "StateValue"]
    assert all(v["refused"] and v["service"] == "cloudwatch" for v in found["violations"])
    st = control(cbor, "/__proxy/stats")["actions"]["monitoring:DescribeAlarms"]
    assert (st["calls"], st["forwarded"]) == (1, 0)

    status, hdrs, body = raw_cbor(cbor, "ListTagsForResource", {"ResourceARN": ""}, key=key)
    assert status == 400 and hdrs["smithy-protocol"] == "rpc-v2-cbor"
    assert body["__type"] == "ValidationException" and "ResourceARN" in body["message"]


def test_cbor_faults_drops_and_throttles_answer_in_cbor(cbor, cbor_client, moto_url):
    cw = cbor_client(cbor)
    control(cbor, "/__proxy/config", {"fault_rate": 1.0, "fault_kinds": ["500"]})
    name = uniq("cbor-fault")
    with pytest.raises(botocore.exceptions.ClientError) as ei:
        cw.put_metric_alarm(**alarm_args(name))
    assert ei.value.response["Error"]["Code"] == "InternalFailure"
    assert ei.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500
    control(cbor, "/__proxy/config", {"fault_kinds": ["throttle"]})
    status, hdrs, body = raw_cbor(cbor, "DescribeAlarms", {})
    assert (status, body["__type"]) == (400, "ThrottlingException")
    assert hdrs["content-type"] == "application/cbor" and "x-amzn-errortype" not in hdrs
    with pytest.raises(botocore.exceptions.ClientError) as ei:
        cw.describe_alarms()
    assert ei.value.response["Error"]["Code"] == "ThrottlingException"
    # nothing reached moto
    direct = client(moto_url, "cloudwatch")  # botocore's JSON 1.0, straight to moto
    assert direct.describe_alarms(AlarmNames=[name])["MetricAlarms"] == []

    # a drop after forwarding: moto has the alarm, the client no answer
    control(cbor, "/__proxy/config", {"fault_rate": 0.0, "drop_rate": 1.0,
                                      "drops_for": ["PutMetricAlarm"]})
    with pytest.raises((botocore.exceptions.ConnectionClosedError,
                        botocore.exceptions.ConnectionError,
                        botocore.exceptions.HTTPClientError)):
        cw.put_metric_alarm(**alarm_args(name))
    assert [a["AlarmName"] for a in direct.describe_alarms(AlarmNames=[name])["MetricAlarms"]] \
        == [name]
    acts = control(cbor, "/__proxy/stats")["actions"]
    assert acts["monitoring:PutMetricAlarm"]["faults"] == 1
    assert acts["monitoring:PutMetricAlarm"]["dropped"] == 1
    assert acts["monitoring:DescribeAlarms"]["faults"] == 2
    control(cbor, "/__proxy/config", {"drop_rate": 0.0, "drops_for": None})


def test_cbor_gzip_body(cbor, cbor_client):
    cw = cbor_client(cbor, request_min_compression_size_bytes=1)
    ns = uniq("Gzip")
    cw.put_metric_data(Namespace=ns, MetricData=[{"MetricName": "m", "Value": 1.0}])
    assert cw.sent[-1][1].get("Content-Encoding") == "gzip"
    assert {"Namespace": ns, "MetricName": "m", "Dimensions": []} in cw.list_metrics(
        Namespace=ns)["Metrics"]


def test_cbor_chain_only_the_last_hop_translates(cbor, cbor_client, moto_url):
    """SDK -> aws_proxy (faults) -> aws_proxy --cbor-to-json --validate refuse -> moto, as in
    the Rust tests (with moto_compat between them, which passes CBOR bodies through)."""
    proc, front = start_proxy(cbor, "--latency-ms", "0", "--validate", "record")
    try:
        cw = cbor_client(front)
        name = uniq("cbor-chain")
        cw.put_metric_alarm(**alarm_args(name))
        assert [a["AlarmName"] for a in cw.describe_alarms(AlarmNames=[name])["MetricAlarms"]] \
            == [name]
        control(front, "/__proxy/config", {"fault_rate": 1.0, "fault_kinds": ["503"]})
        with pytest.raises(botocore.exceptions.ClientError) as ei:
            cw.describe_alarms(AlarmNames=[name])
        assert ei.value.response["Error"]["Code"] == "ServiceUnavailable"
        for url in (front, cbor):
            acts = control(url, "/__proxy/stats")["actions"]
            assert acts["monitoring:PutMetricAlarm"]["forwarded"] == 1, url
        assert control(front, "/__proxy/stats")["actions"]["monitoring:DescribeAlarms"][
            "calls"] == 2
        assert control(cbor, "/__proxy/stats")["actions"]["monitoring:DescribeAlarms"][
            "calls"] == 1
        # the front hop checks CBOR too (record) without translating it
        assert control(front, "/__proxy/config")["cbor_to_json"] is False
        assert control(front, "/__proxy/violations")["count"] == 0
    finally:
        errors = stop_proxy(proc)
    assert "Traceback" not in errors, errors


def test_cbor_to_json_off_passes_cbor_through(proxy, cbor_client):
    """The default: rpc-v2-cbor goes to moto unchanged (which answers 404), and it can be turned
    on at run time."""
    control(proxy, "/__proxy/config", {"latency_ms": 0})
    assert control(proxy, "/__proxy/config")["cbor_to_json"] is False
    status, _, _ = raw_cbor(proxy, "DescribeAlarms", {})
    assert status == 404
    assert control(proxy, "/__proxy/config", {"cbor_to_json": True})["cbor_to_json"] is True
    status, hdrs, body = raw_cbor(proxy, "DescribeAlarms", {})
    assert status == 200 and "MetricAlarms" in body
    # the absolute shape id form of {serviceName} is accepted too
    status, _, body = raw_cbor(proxy, "DescribeAlarms", {},
                               service="com.amazonaws.cloudwatch." + CW)
    assert status == 200 and "MetricAlarms" in body
    acts = control(proxy, "/__proxy/stats")["actions"]
    assert acts["monitoring:DescribeAlarms"]["calls"] == 3
    for bad in ({"cbor_to_json": "yes"}, {"cbor_to_json": 1}):
        req = urllib.request.Request(proxy + "/__proxy/config", data=json.dumps(bad).encode(),
                                     method="POST")
        with pytest.raises(urllib.error.HTTPError) as ei:
            urllib.request.urlopen(req, timeout=5)
        assert ei.value.code == 400


def test_cbor_upstream_down_answers_in_cbor():
    proc, url = start_proxy("http://127.0.0.1:9", "--latency-ms", "0", "--cbor-to-json",
                            "--upstream-timeout", "2")
    try:
        status, hdrs, body = raw_cbor(url, "DescribeAlarms", {})
        assert status == 502 and body["__type"] == "ProxyUpstreamError"
        assert hdrs["smithy-protocol"] == "rpc-v2-cbor"
    finally:
        stop_proxy(proc)


# ---------------------------------------------------------------------------------------------
# --moto-compat (moto_compat.py)
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def compat_proxy(moto_url):
    proc, url = start_proxy(moto_url, "--latency-ms", "0", "--no-throttle", "--moto-compat")
    yield url
    errors = stop_proxy(proc)
    assert "Traceback" not in errors, errors


def _cluster_with_instance(ecs, name: str) -> None:
    ecs.create_cluster(clusterName=name)
    ec2 = boto3.client("ec2", endpoint_url=ecs.meta.endpoint_url, region_name=REGION,
                       aws_access_key_id="AKIDCOMPAT", aws_secret_access_key="s")
    image = ec2.describe_images()["Images"][0]["ImageId"]
    instance = ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1)["Instances"][0]
    doc = json.dumps({"instanceId": instance["InstanceId"], "region": REGION,
                      "availabilityZone": "us-east-1a", "imageId": image})
    ecs.register_container_instance(cluster=name, instanceIdentityDocument=doc)


def test_moto_compat_strings_for_task_container_numbers_and_run_task_idempotency(compat_proxy, moto_url):
    ecs = client(compat_proxy, key="AKIDCOMPAT")
    cluster = uniq("compat")
    _cluster_with_instance(ecs, cluster)
    ecs.register_task_definition(family=cluster, containerDefinitions=[
        {"name": "app", "image": "busybox", "memory": 64, "cpu": 10}])
    first = ecs.run_task(cluster=cluster, taskDefinition=cluster, clientToken="token-1")
    again = ecs.run_task(cluster=cluster, taskDefinition=cluster, clientToken="token-1")
    assert first["tasks"][0]["taskArn"] == again["tasks"][0]["taskArn"], "ECS answers a repeated token with the first answer"
    other = ecs.run_task(cluster=cluster, taskDefinition=cluster, clientToken="token-2")
    assert other["tasks"][0]["taskArn"] != first["tasks"][0]["taskArn"]
    direct = client(moto_url, key="AKIDCOMPAT")
    assert len(direct.list_tasks(cluster=cluster)["taskArns"]) == 2, "the repeat started nothing in moto"
    # ECS sends the containers' cpu and memory as strings; moto as numbers, which the Rust SDK refuses.
    body = json.dumps({"cluster": cluster, "tasks": [first["tasks"][0]["taskArn"]]}).encode()
    raw = {}
    for name, url in (("moto", moto_url), ("proxy", compat_proxy)):
        req = urllib.request.Request(url + "/", data=body, method="POST", headers={
            "X-Amz-Target": "AmazonEC2ContainerServiceV20141113.DescribeTasks",
            "Content-Type": "application/x-amz-json-1.1",
            "Authorization": f"AWS4-HMAC-SHA256 Credential=AKIDCOMPAT/20260101/{REGION}/ecs/aws4_request, SignedHeaders=host, Signature=x"})
        with urllib.request.urlopen(req, timeout=10) as r:
            raw[name] = json.load(r)["tasks"][0]["containers"][0]
    assert isinstance(raw["moto"]["memory"], int), raw["moto"]
    assert raw["proxy"]["memory"] == "64" and isinstance(raw["proxy"]["cpu"], str), raw["proxy"]


def test_moto_compat_deployments_read_as_ecs_reports_them(compat_proxy, moto_url, proxy):
    """moto keeps one PRIMARY deployment IN_PROGRESS for ever; ECS says COMPLETED once the
    service is steady (ECS API reference, Deployment.rolloutState), and a test can ask for the
    rollouts ECS would report (POST /__proxy/ecs/rollouts)."""
    key = "AKIDROLL" + uuid.uuid4().hex[:8].upper()
    ecs = client(compat_proxy, key=key)
    cluster = uniq("rollout")
    ecs.create_cluster(clusterName=cluster)
    register(ecs, cluster)
    created = ecs.create_service(cluster=cluster, serviceName="web", taskDefinition=cluster, desiredCount=2)["service"]
    # Just created, no task running yet: ECS too reports the first deployment IN_PROGRESS.
    assert [(d["status"], d["rolloutState"]) for d in created["deployments"]] == [("PRIMARY", "IN_PROGRESS")]
    steady = ecs.update_service(cluster=cluster, service="web", desiredCount=3)["service"]
    assert (steady["runningCount"], steady["desiredCount"]) == (3, 3)
    (d,) = steady["deployments"]
    assert (d["rolloutState"], d["desiredCount"], d["runningCount"], d["pendingCount"]) == ("COMPLETED", 3, 3, 0), d
    assert d["rolloutStateReason"] == f"ECS deployment {d['id']} completed."
    raw = client(moto_url, key=key).describe_services(cluster=cluster, services=["web"])["services"][0]
    assert raw["deployments"][0]["rolloutState"] == "IN_PROGRESS", "moto itself is untouched"

    def deployments():
        svc = ecs.describe_services(cluster=cluster, services=["web"])["services"][0]
        return [(x["status"], x["rolloutState"]) for x in svc["deployments"]], svc

    # A rolling update still replacing old tasks: PRIMARY IN_PROGRESS beside an ACTIVE one.
    cluster_arn = steady["clusterArn"]
    shown = control(compat_proxy, "/__proxy/ecs/rollouts", {"account": key, "cluster": cluster_arn, "service": "web", "rolloutState": "IN_PROGRESS", "activeDeployments": 1})
    assert shown["rollouts"] == [{"account": key, "cluster": cluster, "service": "web", "rolloutState": "IN_PROGRESS", "activeDeployments": 1}]
    listed, svc = deployments()
    assert listed == [("PRIMARY", "IN_PROGRESS"), ("ACTIVE", "COMPLETED")], svc
    assert svc["deployments"][1]["id"] != svc["deployments"][0]["id"]
    # Every task running but not yet healthy (or a blue/green bake): PRIMARY alone, IN_PROGRESS.
    control(compat_proxy, "/__proxy/ecs/rollouts", {"account": key, "cluster": cluster, "service": "web", "rolloutState": "IN_PROGRESS"})
    assert deployments()[0] == [("PRIMARY", "IN_PROGRESS")]
    # Another caller's view of a service of the same name is its own.
    other = client(compat_proxy, key="AKIDOTHER" + uuid.uuid4().hex[:6].upper())
    other.create_cluster(clusterName=cluster)
    register(other, cluster)
    other.create_service(cluster=cluster, serviceName="web", taskDefinition=cluster, desiredCount=1)
    other.update_service(cluster=cluster, service="web", desiredCount=1)
    assert other.describe_services(cluster=cluster, services=["web"])["services"][0]["deployments"][0]["rolloutState"] == "COMPLETED"
    # Done: back to what a steady service shows.
    control(compat_proxy, "/__proxy/ecs/rollouts", {"account": key, "cluster": cluster, "service": "web", "rolloutState": None})
    assert deployments()[0] == [("PRIMARY", "COMPLETED")]
    assert control(compat_proxy, "/__proxy/ecs/rollouts")["rollouts"] == []
    # Bad requests are refused, naming what is wrong; without --moto-compat nothing would show them.
    for bad, word in [({"account": key, "cluster": cluster, "service": "web", "rolloutState": "DONE"}, "rolloutState"),
                      ({"account": key, "cluster": cluster, "rolloutState": "IN_PROGRESS"}, "service"),
                      ({"account": key, "cluster": cluster, "service": "web", "rolloutState": "IN_PROGRESS", "activeDeployments": 9}, "activeDeployments"),
                      ({"account": key, "cluster": cluster, "service": "web", "state": "IN_PROGRESS"}, "unknown")]:
        with pytest.raises(urllib.error.HTTPError) as e:
            control(compat_proxy, "/__proxy/ecs/rollouts", bad)
        assert e.value.code == 400 and word in e.value.read().decode(), bad
    with pytest.raises(urllib.error.HTTPError) as e:
        control(proxy, "/__proxy/ecs/rollouts", {"account": key, "cluster": cluster, "service": "web", "rolloutState": "IN_PROGRESS"})
    assert e.value.code == 400


def test_moto_compat_answers_service_deployment_records(compat_proxy, proxy):
    """ECS keeps a record per service deployment (API_ServiceDeployment); moto keeps none. The
    compat proxy answers ListServiceDeployments and DescribeServiceDeployments from what a test
    gives, and boto3 parses the answers with ECS's model."""
    acct = "arn:aws:ecs:us-east-1:123456789012"
    older = {"serviceDeploymentArn": f"{acct}:service-deployment/stage01/auth/aaa", "serviceArn": f"{acct}:service/stage01/auth",
             "clusterArn": f"{acct}:cluster/stage01", "createdAt": 1700000000, "startedAt": 1700000001, "finishedAt": 1700000100,
             "status": "SUCCESSFUL", "targetServiceRevision": {"arn": f"{acct}:service-revision/stage01/auth/1", "runningTaskCount": 2}}
    newer = {**older, "serviceDeploymentArn": f"{acct}:service-deployment/stage01/auth/bbb", "createdAt": 1700001000,
             "startedAt": 1700001001, "finishedAt": 1700001300, "status": "ROLLBACK_SUCCESSFUL", "lifecycleStage": "CLEAN_UP",
             "rollback": {"reason": "circuit breaker", "serviceRevisionArn": older["targetServiceRevision"]["arn"], "startedAt": 1700001200}}
    assert control(compat_proxy, "/__proxy/ecs/service-deployments", {"account": "AKIDDEPLOYS", "cluster": "stage01", "service": "auth",
                                                                       "serviceDeployments": [older, newer]})["services"] >= 1
    ecs = client(compat_proxy, key="AKIDDEPLOYS")
    listed = ecs.list_service_deployments(cluster="stage01", service="auth")["serviceDeployments"]
    assert [d["status"] for d in listed] == ["ROLLBACK_SUCCESSFUL", "SUCCESSFUL"], "newest first"
    assert listed[0]["targetServiceRevisionArn"].endswith("/auth/1")
    described = ecs.describe_service_deployments(serviceDeploymentArns=[newer["serviceDeploymentArn"], f"{acct}:service-deployment/stage01/auth/zzz"])
    assert described["serviceDeployments"][0]["rollback"]["reason"] == "circuit breaker"
    assert described["failures"][0]["arn"].endswith("/zzz")
    assert client(compat_proxy, key="AKIDOTHER").list_service_deployments(cluster="stage01", service="auth")["serviceDeployments"] == [], \
        "another account's records are its own"
    ecs.stop_service_deployment(serviceDeploymentArn=older["serviceDeploymentArn"], stopType="ROLLBACK")
    assert ecs.list_service_deployments(cluster="stage01", service="auth", status=["ROLLBACK_REQUESTED"])["serviceDeployments"][0]["serviceDeploymentArn"] == older["serviceDeploymentArn"]
    with pytest.raises(botocore.exceptions.ClientError) as e:
        client(compat_proxy, key="AKIDOTHER").stop_service_deployment(serviceDeploymentArn=older["serviceDeploymentArn"])
    assert e.value.response["Error"]["Code"] == "ServiceDeploymentNotFoundException"
    with pytest.raises(urllib.error.HTTPError):
        control(proxy, "/__proxy/ecs/service-deployments", {"account": "A", "cluster": "c", "service": "s", "serviceDeployments": []})


def test_moto_compat_answers_task_protection(compat_proxy, proxy):
    """moto has no GetTaskProtection: the compat proxy answers it from what a test gives
    (ProtectedTask: taskArn, protectionEnabled, expirationDate), a task given by id included;
    other tasks read unprotected, and boto3 parses the answer with ECS's model."""
    acct = "arn:aws:ecs:us-east-1:123456789012"
    kept = {"taskArn": f"{acct}:task/stage01/aaa", "protectionEnabled": True, "expirationDate": 1700007200}
    assert control(compat_proxy, "/__proxy/ecs/task-protection", {"account": "AKIDPROTECT", "cluster": "stage01", "protectedTasks": [kept]})["clusters"] >= 1
    ecs = client(compat_proxy, key="AKIDPROTECT")
    got = ecs.get_task_protection(cluster="stage01", tasks=["aaa", f"{acct}:task/stage01/bbb"])["protectedTasks"]
    assert [(t["taskArn"].rsplit("/", 1)[-1], t["protectionEnabled"]) for t in got] == [("aaa", True), ("bbb", False)]
    assert got[0]["expirationDate"].timestamp() == 1700007200
    other = client(compat_proxy, key="AKIDOTHER").get_task_protection(cluster="stage01", tasks=["aaa"])["protectedTasks"]
    assert other[0]["protectionEnabled"] is False, "another account's protection is its own"
    for bad, word in [({"account": "A", "cluster": "c", "protectedTasks": [{"taskArn": "t"}]}, "protectionEnabled"),
                      ({"account": "A", "protectedTasks": []}, "cluster"),
                      ({"account": "A", "cluster": "c", "tasks": []}, "unknown")]:
        with pytest.raises(urllib.error.HTTPError) as e:
            control(compat_proxy, "/__proxy/ecs/task-protection", bad)
        assert e.value.code == 400 and word in e.value.read().decode(), bad
    with pytest.raises(urllib.error.HTTPError):
        control(proxy, "/__proxy/ecs/task-protection", {"account": "A", "cluster": "c", "protectedTasks": []})


def test_moto_compat_answers_managed_instances_capacity_providers(compat_proxy, proxy):
    """moto cannot create an ECS Managed Instances capacity provider: the compat proxy answers
    DescribeCapacityProviders from the providers a test gives (by name or ARN; others MISSING), and
    boto3 parses the answer with ECS's model."""
    acct = "arn:aws:ecs:us-east-1:123456789012"
    mi = {"capacityProviderArn": f"{acct}:capacity-provider/stage01-mi", "name": "stage01-mi", "cluster": "stage01", "status": "ACTIVE",
          "type": "MANAGED_INSTANCES", "managedInstancesProvider": {"infrastructureRoleArn": "arn:aws:iam::123456789012:role/ecsInfrastructure"}}
    key = "AKIDPROVIDERS" + uuid.uuid4().hex[:6].upper()
    control(compat_proxy, "/__proxy/ecs/capacity-providers", {"account": key, "capacityProviders": [mi]})
    got = client(compat_proxy, key=key).describe_capacity_providers(capacityProviders=[mi["capacityProviderArn"], "gone"])
    assert [(p["name"], p["type"]) for p in got["capacityProviders"]] == [("stage01-mi", "MANAGED_INSTANCES")]
    assert got["failures"] == [{"arn": "gone", "reason": "MISSING"}]
    control(compat_proxy, "/__proxy/ecs/capacity-providers", {"account": key, "capacityProviders": []})
    assert client(compat_proxy, key=key).describe_capacity_providers(capacityProviders=["stage01-mi"])["capacityProviders"] == [], \
        "taken away: moto answers again"
    with pytest.raises(urllib.error.HTTPError) as e:
        control(compat_proxy, "/__proxy/ecs/capacity-providers", {"account": key, "capacityProviders": [{"type": "FARGATE"}]})
    assert e.value.code == 400 and "name" in e.value.read().decode()
    with pytest.raises(urllib.error.HTTPError):
        control(proxy, "/__proxy/ecs/capacity-providers", {"account": "A", "capacityProviders": []})


def test_moto_compat_shows_a_deployment_configuration_moto_drops(compat_proxy, moto_url):
    """moto drops deploymentConfiguration (strategy, bake time): the compat proxy shows the one a
    test gives, on every service answer, until told to stop."""
    ecs = client(compat_proxy, key="AKIDSTRATEGY")
    cluster = uniq("strategy")
    ecs.create_cluster(clusterName=cluster)
    ecs.register_task_definition(family=cluster, containerDefinitions=[{"name": "app", "image": "nginx", "memory": 64}])
    ecs.create_service(cluster=cluster, serviceName="bg", taskDefinition=cluster, desiredCount=0)
    config = {"strategy": "BLUE_GREEN", "bakeTimeInMinutes": 5, "maximumPercent": 200, "minimumHealthyPercent": 100}
    control(compat_proxy, "/__proxy/ecs/service-configuration", {"account": "AKIDSTRATEGY", "cluster": cluster, "service": "bg", "deploymentConfiguration": config})
    assert ecs.describe_services(cluster=cluster, services=["bg"])["services"][0]["deploymentConfiguration"] == config
    assert ecs.update_service(cluster=cluster, service="bg", taskDefinition=cluster)["service"]["deploymentConfiguration"]["strategy"] == "BLUE_GREEN"
    assert "deploymentConfiguration" not in client(moto_url, key="AKIDSTRATEGY").describe_services(cluster=cluster, services=["bg"])["services"][0]
    control(compat_proxy, "/__proxy/ecs/service-configuration", {"account": "AKIDSTRATEGY", "cluster": cluster, "service": "bg", "deploymentConfiguration": None})
    assert "deploymentConfiguration" not in ecs.describe_services(cluster=cluster, services=["bg"])["services"][0]


def test_moto_compat_express_services(compat_proxy, moto_url):
    """An Express Mode service (resourceManagementType ECS) reads with an empty taskDefinition, and
    UpdateExpressGatewayService with a taskDefinitionArn moves it as UpdateService would."""
    ecs = client(compat_proxy, key="AKIDEXPRESS")
    cluster = uniq("express")
    ecs.create_cluster(clusterName=cluster)
    td1 = ecs.register_task_definition(family=cluster, containerDefinitions=[{"name": "Main", "image": "nginx", "memory": 64}])["taskDefinition"]["taskDefinitionArn"]
    td2 = ecs.register_task_definition(family=cluster, containerDefinitions=[{"name": "Main", "image": "nginx:2", "memory": 64}])["taskDefinition"]["taskDefinitionArn"]
    arn = ecs.create_service(cluster=cluster, serviceName="web", taskDefinition=td1, desiredCount=0)["service"]["serviceArn"]
    control(compat_proxy, "/__proxy/ecs/service-configuration", {"account": "AKIDEXPRESS", "cluster": cluster, "service": "web", "resourceManagementType": "ECS"})
    svc = ecs.describe_services(cluster=cluster, services=["web"])["services"][0]
    assert (svc["resourceManagementType"], svc["taskDefinition"]) == ("ECS", "")
    assert svc["deployments"][0]["taskDefinition"] == td1
    out = ecs.update_express_gateway_service(serviceArn=arn, taskDefinitionArn=td2)
    assert out["service"]["serviceArn"] == arn
    assert client(moto_url, key="AKIDEXPRESS").describe_services(cluster=cluster, services=["web"])["services"][0]["taskDefinition"] == td2
