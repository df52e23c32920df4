#!/usr/bin/env python3
"""The playground's storyteller: runs one function on one event and tells what happened as a
person reads it — the event, what the function decided and did, the notification as it appears
in chat — with the function's own log lines kept in .playground/logs/ instead of on screen.

    story.py step FUNCTION EVENT.json   invoke FUNCTION (target/debug/invoke) on the event
    story.py world services|scaling     the part of the world a story changes
    story.py chapter TITLE              a heading
    story.py say TEXT                   an indented line of narration
    story.py inbox --quiet              empty the notification inbox without printing it

Run from the repository root with .playground/env sourced (scripts/playground does both).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import boto3

REPO = Path(__file__).resolve().parents[2]
LOGS = REPO / ".playground" / "logs"
WIDTH = 100
LABEL = 9  # width of the left column ("event", "decided", ...)


def line(label: str, text: str) -> None:
    """`label  text`, the text wrapped under itself."""
    wrapped = textwrap.wrap(text, WIDTH - LABEL - 2, break_on_hyphens=False) or [""]
    print(f"  {label:<{LABEL}}{wrapped[0]}")
    for more in wrapped[1:]:
        print(f"  {'':<{LABEL}}{more}")


def short(digest: str | None) -> str:
    return (digest[:19] + "…") if digest and len(digest) > 20 else (digest or "")


def short_image(reference: str) -> str:
    """`123….amazonaws.com/auth@sha256:18af…` → `auth@sha256:18af823df318…`"""
    name = reference.rsplit("/", 1)[-1]
    if "@" in name:
        repo, digest = name.split("@", 1)
        return f"{repo}@{short(digest)}"
    return name


def revision(arn: str | None) -> str:
    return (arn or "").rsplit("/", 1)[-1]


# ------------------------------------------------------------------ the event, in one sentence
def describe_event(e: dict) -> str:
    kind, d = e.get("detail-type"), e.get("detail") or {}
    if kind == "ECR Image Action":
        tag = d.get("image-tag")
        what = f"{d.get('repository-name')}:{tag}" if tag else f"{d.get('repository-name')} (untagged)"
        return f"ECR {d.get('action-type')} {d.get('result')}: {what} {short(d.get('image-digest'))}"
    if kind == "ECS Task State Change":
        exits = ", ".join(f"{c.get('name')} exit {c.get('exitCode')}" for c in d.get("containers", []) if "exitCode" in c)
        task = d.get("taskArn", "").rsplit("/", 1)[-1][:8]
        return (f"ECS task {task} ({revision(d.get('taskDefinitionArn'))}, {d.get('group')}) {d.get('lastStatus')}: "
                f"{d.get('stopCode')}, \"{d.get('stoppedReason')}\"" + (f"; {exits}" if exits else ""))
    if kind == "ECS Deployment State Change":
        service = (e.get("resources") or [""])[0].rsplit("/", 1)[-1]
        return f"ECS {d.get('eventName')} for service {service} (deployment {d.get('deploymentId')})"
    if kind == "CloudWatch Alarm State Change":
        state, previous = d.get("state") or {}, d.get("previousState") or {}
        why = state.get("reason", "")
        try:
            data = json.loads(state.get("reasonData") or "{}")
            points = ", ".join(f"{p:g}" for p in data.get("recentDatapoints", []))
            if points and "threshold" in data:
                why = f"datapoints {points}, threshold {data['threshold']:g}"
        except (ValueError, TypeError):
            pass
        return f"CloudWatch alarm {d.get('alarmName')}: {previous.get('value')} → {state.get('value')} ({why})"
    if kind == "Scheduled Event":
        return f"schedule {revision((e.get('resources') or [''])[0])}"
    return f"{e.get('source')} {kind}"


# ------------------------------------------------------------------ what the function decided
def describe_outcome(function: str, o: dict) -> list[tuple[str, str]]:
    """(label, text) lines for an outcome: 'decided' for the decision, 'did' for the changes."""
    status = o.get("status") or o.get("action")
    if status == "replay" and "transition" in o:
        return [("decided", f"alarm {o.get('alarm')}: this transition was already acted on (the same change under a new event id): nothing done")]
    if status == "replay":
        return [("decided", "the same event id again (EventBridge delivers at least once): recognised as a replay, nothing done")]
    if status == "ignored":
        return [("decided", f"nothing to do: {o.get('reason')}")]
    if status == "rejected":
        return [("decided", f"rejected the event: {(o.get('error') or {}).get('message')}")]
    if function == "deployer":
        return deployer(o)
    if function == "recovery":
        out = [("decided", f"{o.get('detail') or o.get('class')} → {o.get('action')}: {o.get('reason')}")]
        if o.get("newTask"):
            out.append(("did", f"RunTask started {revision(o['newTask'])} (restart {o.get('restart')} of {o.get('restartLimit')})"))
        if o.get("action") == "rolled-back":
            out.append(("did", "UpdateService: the service is back on its last stable revision"))
        return out
    if function == "scaler":
        return scaler(o)
    return [("decided", json.dumps(o))]


def deployer(o: dict) -> list[tuple[str, str]]:
    out = []
    if "image" in o:  # a push (or one image of the reconcile pass)
        for fam in o.get("plan", []):
            what = f"reuse {fam['reuse']}" if fam.get("reuse") else f"register a copy of {fam['base']}"
            images = ", ".join(f"{c['container']} → {short_image(c['to'])}" for c in fam.get("images", []))
            out.append(("decided", f"{what} with {images}; roll {', '.join(fam['services'])} onto it"))
        for s in o.get("skipped", []):
            out.append(("decided", f"leave {s['cluster']}/{s['service']} alone: {s['reason']}"))
            if s.get("fix"):
                out.append(("fix", s["fix"]))
        for d in o.get("deployed", []):
            out.append(("did", f"UpdateService {d['cluster']}/{d['service']}: {revision(d['previous'])} → {revision(d['taskDefinition'])}"))
        for f in o.get("failed", []):
            out.append(("failed", f"{f['service']}: {f['error']}"))
        if o.get("status") == "dry-run":
            out.append(("did", "nothing: dry run (AUTOPILOT_DRY_RUN=true)"))
        return out or [("decided", "nothing to do: no opted-in service runs this repository")]
    if "images" in o:  # the reconcile pass
        for image in o["images"]:
            out += deployer(image)
        return out or [("decided", f"everything is {o.get('status')}")]
    return [("decided", f"{o.get('service')} is {o.get('status')} on {revision(o.get('taskDefinition'))}"
             + ("; recorded as its last stable revision" if o.get("status") == "stable" else ""))]


def scaler(o: dict) -> list[tuple[str, str]]:
    action = o.get("action")
    if action == "scaled":
        out = [("decided", f"alarm {o.get('alarm')}: step {o.get('step')} → {o.get('cluster')}/{o.get('service')} {o.get('from')} → {o.get('to')}")]
        out.append(("did", f"UpdateService desiredCount {o.get('from')} → {o.get('to')}" + (" (dry run: not sent)" if o.get("dryRun") else "")))
        cap = o.get("capacity") or {}
        if cap.get("action") == "grown":
            out.append(("did", f"SetDesiredCapacity {cap.get('group')} {cap.get('desired')} → {cap.get('to')}: "
                               f"{cap.get('toPlace')} task(s) need room, the instances fit {cap.get('fitNow')}"))
        elif cap:
            out.append(("decided", f"capacity: {cap.get('action')} ({cap.get('group')})"))
        return out
    fields = ", ".join(f"{k}={v}" for k, v in o.items() if k != "action" and not isinstance(v, (dict, list)))
    return [("decided", f"{action}: {fields}")]


# ------------------------------------------------------------------ the notifications, as chat shows them
def inbox(print_them: bool = True) -> int:
    sqs = boto3.client("sqs")
    url = os.environ.get("AUTOPILOT_PLAYGROUND_INBOX_URL") or sqs.get_queue_url(QueueName="autopilot-notifications-inbox")["QueueUrl"]
    n = 0
    while True:
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", [])
        if not messages:
            return n
        for m in messages:
            n += 1
            if print_them:
                envelope = json.loads(m["Body"])
                chat(json.loads(envelope["Message"]))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])


def chat(body: dict) -> None:
    """An AWS Chatbot custom notification, roughly as Slack shows it: bold title, description."""
    content, meta = body.get("content", {}), body.get("metadata", {})
    inner = WIDTH - LABEL - 4
    print(f"  {'chat':<{LABEL}}╭─ {content.get('title', '')}")
    for para in (content.get("description") or "").splitlines():
        if para.strip() in ("```", ""):
            continue
        for piece in textwrap.wrap(para, inner, break_on_hyphens=False) or [""]:
            print(f"  {'':<{LABEL}}│ {piece}")
    context = meta.get("additionalContext", {})
    tags = " ".join(f"{k}={context[k]}" for k in ("cluster", "service", "revision") if context.get(k))
    print(f"  {'':<{LABEL}}╰─ {meta.get('eventType', '')}  {tags}")


# ------------------------------------------------------------------ the world
def world(view: str) -> None:
    ecs = boto3.client("ecs")
    if view == "services":
        for s in ecs.describe_services(cluster="stage01", services=["auth", "random"])["services"]:
            td = ecs.describe_task_definition(taskDefinition=s["taskDefinition"])["taskDefinition"]
            images = ", ".join(c["image"].split("/", 1)[-1].replace("@sha256:", "@") [:40] for c in td["containerDefinitions"])
            line("world", f"{s['serviceName']:<7} {td['family']}:{td['revision']:<3} desired {s['desiredCount']}  {images}")
    elif view == "scaling":
        s = ecs.describe_services(cluster="stage01", services=["random"])["services"][0]
        g = boto3.client("autoscaling").describe_auto_scaling_groups(AutoScalingGroupNames=["stage01-asg"])["AutoScalingGroups"][0]
        line("world", f"random desired {s['desiredCount']}; stage01-asg desired {g['DesiredCapacity']} (min {g['MinSize']}, max {g['MaxSize']})")


# ------------------------------------------------------------------ commands
def step(function: str, event_file: str) -> int:
    event = json.loads(Path(event_file).read_text())
    line("event", describe_event(event))
    LOGS.mkdir(parents=True, exist_ok=True)
    log = LOGS / f"{function}.log"
    with open(log, "a") as f:
        f.write(f"\n# {function} on {event.get('detail-type')} {event.get('id')}\n")
        f.flush()
        run = subprocess.run([str(REPO / "target/debug/invoke"), function, event_file], stdout=subprocess.PIPE, stderr=f, text=True)
    # invoke prints the function's log lines, then the outcome as pretty JSON (from a line "{").
    lines = run.stdout.splitlines()
    start = max((i for i, l in enumerate(lines) if l == "{"), default=None)
    with open(log, "a") as f:
        f.write("\n".join(lines[:start] if start is not None else lines) + "\n")
    if run.returncode != 0 or start is None:
        line("failed", f"the invocation failed (exit {run.returncode}); see .playground/logs/{function}.log")
        inbox()
        return 0
    outcome = json.loads("\n".join(lines[start:]))
    for label, text in describe_outcome(function, outcome):
        line(label, text)
    inbox()
    return 0


def main(argv: list[str]) -> int:
    if len(argv) >= 3 and argv[0] == "step":
        return step(argv[1], argv[2])
    if len(argv) == 2 and argv[0] == "world":
        world(argv[1])
        return 0
    if len(argv) == 2 and argv[0] == "chapter":
        print(f"\n━━ {argv[1]} " + "━" * max(3, WIDTH - len(argv[1]) - 4))
        return 0
    if len(argv) == 2 and argv[0] == "say":
        line("", argv[1])
        return 0
    if argv[:1] == ["inbox"]:
        inbox(print_them="--quiet" not in argv)
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
