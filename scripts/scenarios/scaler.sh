#!/usr/bin/env bash
# Scaling scenario: fill stage01's instances, then the CPU alarm on random fires (85, 90 > 70):
# random 4 → 6 (step +2) and stage01-asg 2 → 3 because the new tasks no longer fit.
set -euo pipefail
py=.venv/bin/python
show() {
    "$py" - "$@" <<'PY'
import boto3, sys
ecs, asg = boto3.client("ecs"), boto3.client("autoscaling")
s = ecs.describe_services(cluster="stage01", services=["random"])["services"][0]
g = asg.describe_auto_scaling_groups(AutoScalingGroupNames=["stage01-asg"])["AutoScalingGroups"][0]
print(f"  {sys.argv[1]}: random desired {s['desiredCount']}, stage01-asg desired {g['DesiredCapacity']} (max {g['MaxSize']})")
PY
}
echo "== filling the container instances with standalone tasks (moto never starts service tasks)"
"$py" - <<'PY'
import boto3
ecs = boto3.client("ecs")
ecs.register_task_definition(family="filler", containerDefinitions=[{"name": "filler", "image": "busybox", "cpu": 2048, "memory": 256, "essential": True}])
ecs.run_task(cluster="stage01", taskDefinition="filler", count=4)
PY
show before
account=$("$py" -c 'import boto3; print(boto3.client("sts").get_caller_identity()["Account"])')
event=$(mktemp)
sed "s/123456789012/$account/g" events/cloudwatch-alarm-ok-to-alarm.json | "$py" -c '
import json, sys, uuid
e = json.load(sys.stdin); e["id"] = str(uuid.uuid4())
print(json.dumps(e))' > "$event"
echo "== alarm random-cpu-high tags (the scaler reads them with ListTagsForResource):"
"$py" - <<'PY'
import boto3
cw = boto3.client("cloudwatch")
arn = cw.describe_alarms(AlarmNames=["random-cpu-high"])["MetricAlarms"][0]["AlarmArn"]
for t in cw.list_tags_for_resource(ResourceARN=arn)["Tags"]:
    print(f"  {t['Key']}={t['Value']}")
PY
echo "== invoke scaler on 'random-cpu-high' OK -> ALARM (datapoints 85, 90; threshold 70)"
target/debug/invoke scaler "$event"
show after
echo "== notification (SQS autopilot-notifications-inbox)"
"$py" - <<'PY'
import boto3, json
sqs = boto3.client("sqs")
url = sqs.get_queue_url(QueueName="autopilot-notifications-inbox")["QueueUrl"]
for m in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", []):
    env = json.loads(m["Body"]); body = json.loads(env["Message"])
    print("  subject:", env.get("Subject")); print("  ", body["content"]["description"])
    sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
PY
echo "== the same transition delivered again (new event id): nothing changes"
"$py" -c '
import json, sys, uuid
e = json.load(open(sys.argv[1])); e["id"] = str(uuid.uuid4()); print(json.dumps(e))' "$event" | target/debug/invoke scaler -
show "after replay"
rm -f "$event"
