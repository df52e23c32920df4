# shellcheck shell=bash
# What the scenario scripts share; each sources it after `set -euo pipefail`. They run from the
# repository root with .playground/env sourced (scripts/playground does both), so boto3 and the
# functions talk to the playground. Not a scenario itself (it is not executable).
#
#   $py            the virtualenv's python (boto3)
#   story ARGS     scripts/scenarios/story.py: chapters, narration, steps, the world, the inbox
#   $account       the playground's account (the sample events' 123456789012 is rewritten to it)
#   $work          a scratch directory for the events, removed on exit
#   event FILE KEY=JSON...   events/FILE with a fresh id in $account, the given detail fields set

py=.venv/bin/python
story() { "$py" scripts/scenarios/story.py "$@"; }
account=$("$py" -c 'import boto3; print(boto3.client("sts").get_caller_identity()["Account"])')
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# event FILE KEY=JSON...: a sample event with a fresh id and the given detail fields; a task's
# event names its task in `resources`, as ECS's do.
event() {
    local file=$1
    shift
    "$py" - "events/$file" "$account" "$@" <<'PY'
import json, sys, uuid
e = json.loads(open(sys.argv[1]).read().replace("123456789012", sys.argv[2]))
e["id"] = str(uuid.uuid4())
for kv in sys.argv[3:]:
    k, v = kv.split("=", 1)
    e["detail"][k] = json.loads(v)
if "taskArn" in e["detail"]:
    e["resources"] = [e["detail"]["taskArn"]]
print(json.dumps(e))
PY
}
