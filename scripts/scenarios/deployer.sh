#!/usr/bin/env bash
# Push-to-deploy scenario: push auth:v2 to ECR, deliver the "ECR Image Action" event to the
# deployer, and show auth moving onto a new revision pinned to the pushed digest (random stays),
# then the rollout's completion event, a replay, and the notifications.
set -euo pipefail
py=.venv/bin/python
invoke=target/debug/invoke

show() {
    "$py" - "$1" <<'PY'
import boto3, sys
ecs = boto3.client("ecs")
print(f"-- {sys.argv[1]}")
for s in ecs.describe_services(cluster="stage01", services=["auth", "random"])["services"]:
    td = ecs.describe_task_definition(taskDefinition=s["taskDefinition"])["taskDefinition"]
    images = ", ".join(f"{c['name']}={c['image']}" for c in td["containerDefinitions"])
    print(f"  {s['serviceName']:<7} {td['family']}:{td['revision']:<3} desired {s['desiredCount']}  {images}")
PY
}

inbox() {
    "$py" - <<'PY'
import boto3, json
sqs = boto3.client("sqs")
url = sqs.get_queue_url(QueueName="autopilot-notifications-inbox")["QueueUrl"]
while True:
    ms = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])
    if not ms:
        break
    for m in ms:
        env = json.loads(m["Body"]); body = json.loads(env["Message"])
        print(f"  subject: {env.get('Subject')}")
        print(f"  fields:  {json.dumps(body['metadata']['additionalContext'], sort_keys=True)}")
        sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
PY
}

inbox >/dev/null # start from an empty inbox
show before

echo "== docker push auth:v2 (ECR PutImage with a fresh manifest)"
digest=$("$py" - <<'PY'
import boto3, hashlib, json, time
layer = "sha256:" + hashlib.sha256(f"auth:v2:{time.time()}".encode()).hexdigest()
manifest = {"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": 1469, "digest": layer},
            "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": 2811478, "digest": layer}]}
r = boto3.client("ecr").put_image(repositoryName="auth", imageManifest=json.dumps(manifest), imageTag="v2",
                                   imageManifestMediaType=manifest["mediaType"])
print(r["image"]["imageId"]["imageDigest"])
PY
)
echo "   pushed $digest"
account=$("$py" -c 'import boto3; print(boto3.client("sts").get_caller_identity()["Account"])')

event=$(mktemp)
trap 'rm -f "$event"' EXIT
sed "s/123456789012/$account/g" events/ecr-push-tagged.json | "$py" -c '
import json, sys, uuid
e = json.load(sys.stdin); e["id"] = str(uuid.uuid4())
e["detail"]["image-digest"] = sys.argv[1]; e["detail"]["image-tag"] = "v2"
print(json.dumps(e))' "$digest" > "$event"

echo "== invoke deployer on the ECR push event"
"$invoke" deployer "$event"
show after

echo "== the same event delivered again (EventBridge is at-least-once)"
"$invoke" deployer "$event"

echo "== ECS reports the rollout COMPLETED"
done_event=$(mktemp)
"$py" - "$account" > "$done_event" <<'PY'
import boto3, json, sys, uuid
s = boto3.client("ecs").describe_services(cluster="stage01", services=["auth"])["services"][0]
e = json.load(open("events/ecs-deployment-completed.json"))
e = json.loads(json.dumps(e).replace("123456789012", sys.argv[1]))
e["id"] = str(uuid.uuid4()); e["detail"]["deploymentId"] = s["deployments"][0]["id"]
print(json.dumps(e))
PY
"$invoke" deployer "$done_event"
rm -f "$done_event"

echo "== notifications (SQS autopilot-notifications-inbox)"
inbox
