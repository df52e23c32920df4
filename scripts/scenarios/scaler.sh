#!/usr/bin/env bash
# Scaling, told as a story: stage01's instances are full, then the CPU alarm on random fires
# (85, 90 > 70): random 4 → 6 (step +2) and stage01-asg 2 → 3 because the new tasks no longer fit;
# the same transition delivered again changes nothing; then the alarm returns to OK.
set -euo pipefail
py=.venv/bin/python
story() { "$py" scripts/scenarios/story.py "$@"; }
account=$("$py" -c 'import boto3; print(boto3.client("sts").get_caller_identity()["Account"])')
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

story inbox --quiet # start from an empty inbox
story chapter "scaler: random's CPU alarm fires while stage01's instances are full"
tags=$("$py" - <<'PY'
import boto3
ecs = boto3.client("ecs")
ecs.register_task_definition(family="filler", containerDefinitions=[{"name": "filler", "image": "busybox", "cpu": 2048, "memory": 256, "essential": True}])
ecs.run_task(cluster="stage01", taskDefinition="filler", count=4)
cw = boto3.client("cloudwatch")
arn = cw.describe_alarms(AlarmNames=["random-cpu-high"])["MetricAlarms"][0]["AlarmArn"]
print(" ".join(f"{t['Key']}={t['Value']!r}" for t in cw.list_tags_for_resource(ResourceARN=arn)["Tags"]))
PY
)
story say "standalone 'filler' tasks take the instances' CPU; random-cpu-high is tagged $tags"
story world scaling
sed "s/123456789012/$account/g" events/cloudwatch-alarm-ok-to-alarm.json | "$py" -c '
import json, sys, uuid
e = json.load(sys.stdin); e["id"] = str(uuid.uuid4()); print(json.dumps(e))' >"$work/alarm.json"
story step scaler "$work/alarm.json"
story world scaling

story chapter "scaler: the same transition delivered again under a new event id"
"$py" -c '
import json, sys, uuid
e = json.load(open(sys.argv[1])); e["id"] = str(uuid.uuid4()); print(json.dumps(e))' "$work/alarm.json" >"$work/again.json"
story step scaler "$work/again.json"
story world scaling

story chapter "scaler: the alarm returns to OK"
sed "s/123456789012/$account/g" events/cloudwatch-alarm-alarm-to-ok.json | "$py" -c '
import json, sys, uuid
e = json.load(sys.stdin); e["id"] = str(uuid.uuid4()); print(json.dumps(e))' >"$work/ok.json"
story step scaler "$work/ok.json"
story world scaling
