#!/usr/bin/env bash
# Scaling, told as a story: stage01's instances are full, then the CPU alarm on random fires
# (85, 90 > 70): random 4 → 6 (step +2) and stage01-asg 2 → 3 because the new tasks no longer fit;
# the same transition delivered again changes nothing; then the alarm returns to OK.
set -euo pipefail
# shellcheck source=scripts/scenarios/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

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
event cloudwatch-alarm-ok-to-alarm.json >"$work/alarm.json"
story step scaler "$work/alarm.json"
story world scaling

story chapter "scaler: the same transition delivered again under a new event id"
event cloudwatch-alarm-ok-to-alarm.json >"$work/again.json" # the same transition, another id
story step scaler "$work/again.json"
story world scaling

story chapter "scaler: the alarm returns to OK"
event cloudwatch-alarm-alarm-to-ok.json >"$work/ok.json"
story step scaler "$work/ok.json"
story world scaling
