"""Worlds the benchmarks provision straight into moto (boto3, no proxy, so no latency or
throttling is spent on set-up), each in an account of its own (tests/seed_world.py's IAM-key
trick), so every measured run starts with full ECS token buckets in the proxy.

- fanout_world: one cluster of N services; K of them (2 per family, F families) run the pushed
  repository and are tagged autopilot:deploy=any; the rest run other families, untagged.
- peer_world: one cluster of n services, one family each, all tagged autopilot:deploy=any, for
  ecs-autopilot vs fabfuel's ecs-deploy.
- org_world: an Organization (issue 16): a central account (the functions' own: state table,
  topic) and M member accounts, each with one cluster of N services, K of them (2 per family)
  opted in to ONE repository, the rest on other repositories; each member holds that repository
  in its own registry, and the new image arrives there by ECR replication from the central
  account (same digest everywhere). Members are provisioned in parallel, one thread per account.
- push_image / push_event / replication_event: a new image in ECR and the EventBridge event ECR
  sends for it (a push, or a replication into a member's registry).
- burst_events / inbox: 500 tasks of a few services stopped by one lost EC2 instance, and the
  notifications they produced (the seed world's SQS inbox).
"""

from __future__ import annotations

import json
import os
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "tests"))

import seed_world  # noqa: E402  (tests/seed_world.py: World, image_manifest, state table, topic)

REGION = "us-east-1"


def account_world(endpoint: str, account: str) -> seed_world.World:
    w = seed_world.World(endpoint, account, REGION)
    w.bootstrap_credentials()
    return w


def push_image(w: seed_world.World, repo: str, tag: str) -> str:
    """Put repo:tag into ECR (a fresh manifest per tag); returns its digest."""
    return seed_world.push_image(w, repo, tag)


def ensure_repository(w: seed_world.World, repo: str) -> str:
    ecr = w.client("ecr")
    try:
        return ecr.create_repository(repositoryName=repo)["repository"]["repositoryUri"]
    except ecr.exceptions.RepositoryAlreadyExistsException:
        return ecr.describe_repositories(repositoryNames=[repo])["repositories"][0]["repositoryUri"]


def _ecr_event(detail_type: str, account: str, resources: list[str], detail: dict[str, Any],
               event_id: str | None) -> dict[str, Any]:
    """An aws.ecr event as EventBridge delivers it, in `account` and REGION."""
    return {
        "version": "0",
        "id": event_id or str(uuid.uuid4()),
        "detail-type": detail_type,
        "source": "aws.ecr",
        "account": account,
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "region": REGION,
        "resources": resources,
        "detail": detail,
    }


def push_event(account: str, repo: str, tag: str, digest: str, event_id: str | None = None) -> dict[str, Any]:
    return _ecr_event("ECR Image Action", account, [], {
        "result": "SUCCESS",
        "repository-name": repo,
        "image-digest": digest,
        "action-type": "PUSH",
        "image-tag": tag,
        "manifest-media-type": "application/vnd.docker.distribution.manifest.v2+json",
    }, event_id)


def replication_event(account: str, repo: str, tag: str, digest: str, source_account: str,
                      source_region: str = REGION, event_id: str | None = None) -> dict[str, Any]:
    """What the destination registry's account gets when ECR replicates an image into it
    (detail-type "ECR Replication Action", docs.aws.amazon.com/AmazonECR/latest/userguide/
    ecr-eventbridge.html): `account`/`region` are the destination's, detail.source-* the origin."""
    return _ecr_event("ECR Replication Action", account, [f"arn:aws:ecr:{REGION}:{account}:repository/{repo}"], {
        "result": "SUCCESS",
        "repository-name": repo,
        "image-digest": digest,
        "action-type": "REPLICATE",
        "image-tag": tag,
        "source-account": source_account,
        "source-region": source_region,
    }, event_id)


def _task_definition(family: str, image: str) -> dict[str, Any]:
    return {
        "family": family,
        "containerDefinitions": [
            {
                "name": "app",
                "image": image,
                "cpu": 128,
                "memory": 256,
                "essential": True,
                "portMappings": [{"containerPort": 8080, "hostPort": 0, "protocol": "tcp"}],
                "environment": [{"name": "LOG_LEVEL", "value": "info"}],
            },
            # A sidecar from another repository: must stay as it is.
            {"name": "log-router", "image": "public.ecr.aws/aws-observability/aws-for-fluent-bit:2.32.0",
             "cpu": 32, "memory": 64, "essential": False},
        ],
        "requiresCompatibilities": ["EC2"],
    }


def _common(w: seed_world.World, cluster: str) -> dict[str, Any]:
    seed_world.provision_state_table(w)
    seed_world.provision_notifications(w)
    ecs = w.ecs
    arn = ecs.create_cluster(clusterName=cluster)["cluster"]["clusterArn"]
    return {
        "account": w.account,
        "region": REGION,
        "endpoint": w.endpoint,
        "access_key_id": w.out["access_key_id"],
        "secret_access_key": w.out["secret_access_key"],
        "table_name": w.out["table_name"],
        "topic_arn": w.out["topic_arn"],
        "queue_url": w.out["queue_url"],
        "cluster": cluster,
        "cluster_arn": arn,
    }


def _services(ecs, cluster: str, prefix: str, uri: str, other_uri: str, services: int, deployed: int, families: int,
              other_families: int) -> int:
    """`deployed` services opted in (`autopilot:deploy=any`) over `families` task-definition
    families running `uri`, and the rest running `other_uri`; how many services were created."""
    per_family = deployed // families
    if per_family * families != deployed:
        raise SystemExit("deployed must be a multiple of families")
    created = 0
    for f in range(families):
        td = ecs.register_task_definition(**_task_definition(f"{prefix}-{f:02d}", f"{uri}:v1"))["taskDefinition"]["taskDefinitionArn"]
        for i in range(per_family):
            ecs.create_service(cluster=cluster, serviceName=f"{prefix}-{f:02d}-{i}", taskDefinition=td, desiredCount=1,
                               launchType="EC2", tags=[{"key": "autopilot:deploy", "value": "any"}])
            created += 1
    other_tds = [ecs.register_task_definition(**_task_definition(f"other-{g:02d}", f"{other_uri}:v1"))["taskDefinition"]["taskDefinitionArn"]
                 for g in range(other_families)]
    for i in range(services - deployed):
        ecs.create_service(cluster=cluster, serviceName=f"other-{i:03d}", taskDefinition=other_tds[i % other_families],
                           desiredCount=1, launchType="EC2", tags=[{"key": "team", "value": "other"}])
        created += 1
    return created


def fanout_world(endpoint: str, account: str, services: int = 500, deployed: int = 100, families: int = 50,
                 other_families: int = 40, repo: str = "fanout-app", cluster: str = "fanout01") -> dict[str, Any]:
    t0 = time.monotonic()
    w = account_world(endpoint, account)
    out = _common(w, cluster)
    ecs = w.ecs
    uri = ensure_repository(w, repo)
    other_uri = ensure_repository(w, "other-app")
    push_image(w, repo, "v1")
    push_image(w, "other-app", "v1")
    created = _services(ecs, cluster, "fan", uri, other_uri, services, deployed, families, other_families)
    digest = push_image(w, repo, "v2")
    out.update({
        "services": created, "deployed": deployed, "families": families, "repository": repo,
        "tag": "v2", "digest": digest, "event": push_event(account, repo, "v2", digest),
        "provision_seconds": round(time.monotonic() - t0, 1),
    })
    return out


def peer_world(endpoint: str, account: str, n: int = 20, repo: str = "peer-app", cluster: str = "peer01") -> dict[str, Any]:
    t0 = time.monotonic()
    w = account_world(endpoint, account)
    out = _common(w, cluster)
    ecs = w.ecs
    uri = ensure_repository(w, repo)
    push_image(w, repo, "v1")
    names = []
    for i in range(n):
        td = ecs.register_task_definition(**_task_definition(f"peer-{i:02d}", f"{uri}:v1"))["taskDefinition"]["taskDefinitionArn"]
        name = f"peer-{i:02d}"
        # autopilot:pin=tag: the same image reference ecs-deploy --tag v2 writes.
        ecs.create_service(cluster=cluster, serviceName=name, taskDefinition=td, desiredCount=1, launchType="EC2",
                           tags=[{"key": "autopilot:deploy", "value": "any"}, {"key": "autopilot:pin", "value": "tag"}])
        names.append(name)
    digest = push_image(w, repo, "v2")
    out.update({"services": names, "repository": repo, "repository_uri": uri, "tag": "v2", "digest": digest,
                "event": push_event(account, repo, "v2", digest), "provision_seconds": round(time.monotonic() - t0, 1)})
    return out


def central_world(endpoint: str, account: str, repo: str = "org-app") -> dict[str, Any]:
    """The Organization's tooling account: the functions' credentials, state table and topic,
    and the central registry the image is pushed to before ECR replicates it."""
    w = account_world(endpoint, account)
    seed_world.provision_state_table(w)
    seed_world.provision_notifications(w)
    ensure_repository(w, repo)
    digest = push_image(w, repo, "v2")
    return {"account": account, "region": REGION, "endpoint": w.endpoint,
            "access_key_id": w.out["access_key_id"], "secret_access_key": w.out["secret_access_key"],
            "table_name": w.out["table_name"], "topic_arn": w.out["topic_arn"], "queue_url": w.out["queue_url"],
            "repository": repo, "tag": "v2", "digest": digest}


def member_world(endpoint: str, account: str, central: str, services: int = 200, deployed: int = 20, families: int = 10,
                 other_families: int = 20, repo: str = "org-app", cluster: str = "stage01", state: bool = False) -> dict[str, Any]:
    """One member account: cluster `cluster` of `services` services, `deployed` of them (2 per
    family) running `repo` and tagged autopilot:deploy=any, the rest on other repositories,
    untagged; then v2 of `repo` arrives by replication (the same digest as in the central
    registry: the manifest is the same). `state`: a state table and topic of its own too, for a
    deployer that runs with the member's own key (the single-account form)."""
    t0 = time.monotonic()
    w = account_world(endpoint, account)
    if state:
        seed_world.provision_state_table(w)
        seed_world.provision_notifications(w)
    ecs = w.ecs
    arn = ecs.create_cluster(clusterName=cluster)["cluster"]["clusterArn"]
    uri = ensure_repository(w, repo)
    other_uri = ensure_repository(w, "other-app")
    push_image(w, repo, "v1")
    push_image(w, "other-app", "v1")
    created = _services(ecs, cluster, "org", uri, other_uri, services, deployed, families, other_families)
    digest = push_image(w, repo, "v2")  # the replicated image
    return {
        **({"table_name": w.out["table_name"], "topic_arn": w.out["topic_arn"]} if state else {}),
        "account": account, "region": REGION, "access_key_id": w.out["access_key_id"],
        "secret_access_key": w.out["secret_access_key"], "cluster": cluster, "cluster_arn": arn, "services": created,
        "deployed": deployed, "families": families, "repository": repo, "repository_uri": uri, "tag": "v2",
        "digest": digest, "event": replication_event(account, repo, "v2", digest, central),
        "push_event": push_event(account, repo, "v2", digest),
        "provision_seconds": round(time.monotonic() - t0, 1),
    }


def org_world(endpoint: str, central: str, members: list[str], services: int = 200, deployed: int = 20, families: int = 10,
              other_families: int = 20, repo: str = "org-app", cluster: str = "stage01", workers: int = 8,
              member_state: bool = False) -> dict[str, Any]:
    """The central account and every member, members `workers` at a time (moto's server is one
    process: more threads only queue there)."""
    t0 = time.monotonic()
    c = central_world(endpoint, central, repo)
    with ThreadPoolExecutor(max(1, workers)) as ex:
        ms = list(ex.map(lambda a: member_world(endpoint, a, central, services, deployed, families, other_families, repo, cluster,
                                                   member_state),
                         members))
    digests = {m["digest"] for m in ms}
    if digests != {c["digest"]}:
        raise SystemExit(f"replicated digests differ from the central one: {digests} vs {c['digest']}")
    return {"central": c, "members": ms, "services": services, "deployed": deployed, "families": families,
            "repository": repo, "cluster": cluster, "provision_seconds": round(time.monotonic() - t0, 1)}


def service_images(endpoint: str, creds: dict[str, Any], cluster: str, names: list[str]) -> dict[str, list[str]]:
    """service name -> images of the task definition it now runs (to check a deploy happened)."""
    import boto3

    s = boto3.session.Session(aws_access_key_id=creds["access_key_id"], aws_secret_access_key=creds["secret_access_key"],
                              region_name=REGION)
    ecs = s.client("ecs", endpoint_url=endpoint)
    out: dict[str, list[str]] = {}
    for i in range(0, len(names), 10):
        for svc in ecs.describe_services(cluster=cluster, services=names[i:i + 10])["services"]:
            td = ecs.describe_task_definition(taskDefinition=svc["taskDefinition"])["taskDefinition"]
            out[svc["serviceName"]] = [c["image"] for c in td["containerDefinitions"]]
    return out


# ------------------------------------------------------------------ burst (issue 17, item 6)

BURST_SERVICES = ("auth", "random", "web", "api", "worker")


def burst_events(account: str, cluster: str = "stage01", tasks: int = 500, services: tuple[str, ...] = BURST_SERVICES,
                 instance: str = "i-0f9e8d7c6b5a49382") -> list[dict[str, Any]]:
    """`tasks` STOPPED events of the services' tasks (round robin), all for one lost EC2 instance
    (stopCode TerminationNotice, the same stoppedReason: events/ecs-task-stopped-instance-gone.json),
    each with an event id and a task of its own. Recovery settles their class from the event
    alone: no task needs to exist in ECS."""
    with open(os.path.join(REPO, "events", "ecs-task-stopped-instance-gone.json"), encoding="utf-8") as f:
        sample = json.load(f)
    events = []
    for n in range(tasks):
        svc = services[n % len(services)]
        task_id = uuid.uuid4().hex
        task_arn = f"arn:aws:ecs:{REGION}:{account}:task/{cluster}/{task_id}"
        e = json.loads(json.dumps(sample).replace("123456789012", account))
        e["id"] = str(uuid.uuid4())
        e["account"], e["region"] = account, REGION
        e["resources"] = [task_arn]
        d = e["detail"]
        d["clusterArn"] = f"arn:aws:ecs:{REGION}:{account}:cluster/{cluster}"
        d["taskArn"] = task_arn
        d["group"] = f"service:{svc}"
        d["taskDefinitionArn"] = f"arn:aws:ecs:{REGION}:{account}:task-definition/{svc}:1"
        d["stoppedReason"] = f"Host EC2 (instance {instance}) terminated."
        for c in d.get("containers", []):
            c["name"], c["taskArn"] = svc, task_arn
        events.append(e)
    return events


def inbox(endpoint: str, creds: dict[str, Any]) -> list[dict[str, Any]]:
    """Every notification in the seed world's SQS inbox (subscribed to the topic), drained:
    the SNS envelopes' Subject and parsed Message."""
    import boto3

    s = boto3.session.Session(aws_access_key_id=creds["access_key_id"], aws_secret_access_key=creds["secret_access_key"],
                              region_name=REGION)
    sqs = s.client("sqs", endpoint_url=endpoint)
    out = []
    while True:
        got = sqs.receive_message(QueueUrl=creds["queue_url"], MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", [])
        if not got:
            return out
        for m in got:
            envelope = json.loads(m["Body"])
            out.append({"subject": envelope.get("Subject", ""), "message": json.loads(envelope.get("Message", "{}"))})
        sqs.delete_message_batch(QueueUrl=creds["queue_url"], Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(got)])


if __name__ == "__main__":  # manual use: worlds.py fanout|peer ENDPOINT ACCOUNT, or org ENDPOINT CENTRAL MEMBER...
    kind, endpoint, account = sys.argv[1:4]
    if kind == "org":
        world = org_world(endpoint, account, sys.argv[4:])
        print(f"org world: {len(world['members'])} members in {world['provision_seconds']} s", file=sys.stderr)
    else:
        world = fanout_world(endpoint, account) if kind == "fanout" else peer_world(endpoint, account)
    print(json.dumps(world, indent=2, default=str))


def big_world(endpoint: str, account: str, clusters: int = 20, per_cluster: int = 500, running: int = 10,
              running_clusters: int = 5, other_families: int = 40, repo: str = "big-app",
              workers: int = 8) -> dict[str, Any]:
    """Issue 17's big account: `clusters` × `per_cluster` services, all opted in
    (`autopilot:deploy=any`). `running` of them, each of its own family, run `repo`, two by two in
    the first `running_clusters` clusters; the rest run `other-app` over `other_families` families.
    `repo:v2` is pushed later, once reconcile has built the repository index (`push_later`)."""
    t0 = time.monotonic()
    w = account_world(endpoint, account)
    out = _common(w, "big00")
    ecs = w.ecs
    uri = ensure_repository(w, repo)
    other_uri = ensure_repository(w, "other-app")
    push_image(w, repo, "v1")
    push_image(w, "other-app", "v1")
    names = [f"big{c:02d}" for c in range(clusters)]
    for name in names[1:]:
        ecs.create_cluster(clusterName=name)
    other_tds = [ecs.register_task_definition(**_task_definition(f"other-{g:02d}", f"{other_uri}:v1"))["taskDefinition"]["taskDefinitionArn"]
                 for g in range(other_families)]
    per = max(1, running // max(1, running_clusters))
    jobs = []  # (cluster, service, task definition)
    for i in range(running):
        td = ecs.register_task_definition(**_task_definition(f"{repo}-{i:02d}", f"{uri}:v1"))["taskDefinition"]["taskDefinitionArn"]
        jobs.append((names[min(i // per, clusters - 1)], f"{repo}-{i:02d}", td))
    for c, name in enumerate(names):
        taken = sum(1 for j in jobs if j[0] == name)
        for i in range(per_cluster - taken):
            jobs.append((name, f"other-{c:02d}-{i:03d}", other_tds[(c * per_cluster + i) % other_families]))

    def create(job):
        cluster, service, td = job
        ecs.create_service(cluster=cluster, serviceName=service, taskDefinition=td, desiredCount=1, launchType="EC2",
                           tags=[{"key": "autopilot:deploy", "value": "any"}])

    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(create, jobs))
    out.update({
        "services": len(jobs), "clusters": clusters, "running": running, "running_clusters": min(running_clusters, clusters),
        "repository": repo, "provision_seconds": round(time.monotonic() - t0, 1),
    })
    return out


def push_later(endpoint: str, account: str, repo: str, tag: str) -> dict[str, Any]:
    """Push `repo:tag` into a world built before; its push event, and one for a repository no
    service runs (same digest)."""
    w = account_world(endpoint, account)
    digest = push_image(w, repo, tag)
    return {"tag": tag, "digest": digest, "event": push_event(account, repo, tag, digest),
            "unused_event": push_event(account, "nothing-runs-this", tag, digest)}
