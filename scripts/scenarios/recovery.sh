#!/usr/bin/env bash
# Recovery, told as a story, on the seed world:
#   1. a standalone job tagged autopilot:restart=on-failure:2 crashes (exit 1): re-run once with
#      its overrides and tags; the same event again re-runs nothing;
#   2. random is "deployed" onto random:2 (records as the deployer writes them), tagged
#      autopilot:rollback=on, and three random:2 tasks crash: the service rolls back to random:1;
#   3. a random task fails its ELB health checks: the notification names the target group health;
#   4. a scale-in stop: silent.
# Each step shows the event, what recovery decided and did, and the notification as chat shows it.
set -euo pipefail
# shellcheck source=scripts/scenarios/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

show_service() {
    "$py" - <<'PY'
import boto3, sys
ecs = boto3.client("ecs")
s = ecs.describe_services(cluster="stage01", services=["random"], include=["TAGS"])["services"][0]
tags = {t["key"]: t["value"] for t in s.get("tags", [])}
print(f"  world    random runs {s['taskDefinition'].rsplit('/', 1)[-1]}, desired {s['desiredCount']}, autopilot:rollback={tags.get('autopilot:rollback', '(none)')}")
PY
}

story inbox --quiet # start from an empty inbox

story chapter "recovery: a nightly job tagged autopilot:restart=on-failure:2 crashes"
read -r job_td job_task < <("$py" - <<'PY'
import boto3
ecs = boto3.client("ecs")
image = boto3.client("ecr").describe_repositories(repositoryNames=["random"])["repositories"][0]["repositoryUri"] + ":v1"
td = ecs.register_task_definition(family="nightly-report", containerDefinitions=[{
    "name": "nightly-report", "image": image, "memory": 128, "essential": True,
    "environment": [{"name": "REPORT_DB_PASSWORD", "value": "s3cr3t-job-env-b2c4e6"}]}])["taskDefinition"]["taskDefinitionArn"]
t = ecs.run_task(cluster="stage01", taskDefinition=td, launchType="EC2", group="batch:reports", startedBy="events-rule/nightly",
                 overrides={"containerOverrides": [{"name": "nightly-report", "command": ["php", "/var/www/bin/report.php", "--nightly"],
                                                    "environment": [{"name": "REPORT_TOKEN", "value": "s3cr3t-override-7d1f0a"}]}]},
                 tags=[{"key": "autopilot:restart", "value": "on-failure:2"}, {"key": "team", "value": "data"}])["tasks"][0]
ecs.stop_task(cluster="stage01", task=t["taskArn"], reason="Essential container in task exited")
print(td, t["taskArn"])
PY
)
story say "the job ran as task ${job_task##*/} and exited 1"
event ecs-task-stopped-crash.json "taskArn=\"$job_task\"" "taskDefinitionArn=\"$job_td\"" 'group="batch:reports"' \
    'attachments=[]' >"$work/job.json"
story step recovery "$work/job.json"
"$py" - "$job_task" <<'PY'
import boto3, sys
ecs = boto3.client("ecs")
arns = ecs.list_tasks(cluster="stage01", family="nightly-report", desiredStatus="RUNNING")["taskArns"]
for t in ecs.describe_tasks(cluster="stage01", tasks=arns, include=["TAGS"])["tasks"] if arns else []:
    if t["taskArn"] == sys.argv[1]:
        continue
    o = t["overrides"]["containerOverrides"][0]
    tags = ", ".join(x["key"] + "=" + x["value"] for x in t["tags"])
    names = ", ".join(e["name"] for e in o.get("environment", []))
    print(f"  world    re-run {t['taskArn'].rsplit('/', 1)[-1][:8]} {t['lastStatus']}, group {t['group']}, startedBy {t['startedBy']}")
    print(f"           tags {tags}; overrides: command {' '.join(o['command'])}, environment {names} (values not shown)")
PY
story chapter "recovery: EventBridge delivers the same stopped task again"
story step recovery "$work/job.json"

story chapter "recovery: random is deployed onto a revision that crash-loops (tagged autopilot:rollback=on)"
v2=$("$py" - <<'PY'
import boto3, json, time
ecs, ddb = boto3.client("ecs"), boto3.client("dynamodb")
svc = ecs.describe_services(cluster="stage01", services=["random"])["services"][0]
v1 = ecs.describe_task_definition(taskDefinition=svc["taskDefinition"])["taskDefinition"]
c = dict(v1["containerDefinitions"][0]); c["image"] = c["image"].rsplit(":", 1)[0] + ":v2"
v2 = ecs.register_task_definition(family="random", containerDefinitions=[c],
                                  requiresCompatibilities=v1.get("requiresCompatibilities", []))["taskDefinition"]["taskDefinitionArn"]
ecs.update_service(cluster="stage01", service="random", taskDefinition=v2)
ecs.tag_resource(resourceArn=svc["serviceArn"], tags=[{"key": "autopilot:rollback", "value": "on"}])
now = int(time.time())
# the records the deployer writes: the revision it deployed, and the last stable one
for pk, data in (("deployed", {"taskDefinition": v2, "previous": v1["taskDefinitionArn"], "at": now - 60}),
                 ("stable", {"taskDefinition": v1["taskDefinitionArn"], "at": now - 86400})):
    ddb.put_item(TableName="autopilot-state", Item={"pk": {"S": pk}, "sk": {"S": "stage01/random"}, "data": {"S": json.dumps(data)},
                                                    "version": {"N": "1"}, "expires_at": {"N": str(now + 86400)}})
print(v2)
PY
)
show_service
for n in 1 2 3; do
    task="arn:aws:ecs:us-east-1:123456789012:task/stage01/c0ffee00000000000000000000000${n}"
    event ecs-task-stopped-crash.json "taskArn=\"$task\"" "taskDefinitionArn=\"$v2\"" 'group="service:random"' \
        'startedBy="ecs-svc/5372941065883264127"' 'attachments=[]' 'containers=[{"name": "random", "exitCode": 1}]' >"$work/crash$n.json"
    story step recovery "$work/crash$n.json"
done
show_service

story chapter "recovery: a random task fails its ELB health checks"
tg=$("$py" -c 'import boto3; print(boto3.client("elbv2").describe_target_groups(Names=["random"])["TargetGroups"][0]["TargetGroupArn"])')
event ecs-task-stopped-elb-health.json "stoppedReason=\"Task failed ELB health checks in (target-group $tg)\"" >"$work/elb.json"
story step recovery "$work/elb.json"
story say "(moto's targets are always healthy: the unhealthy reason is shown by a mocked test in functions/recovery)"

story chapter "recovery: a task stopped by a scale-in (normal: silent)"
event ecs-task-stopped-scale-in.json >"$work/scale-in.json"
story step recovery "$work/scale-in.json"
