#!/usr/bin/env bash
# Push-to-deploy, told as a story: auth:v2 is pushed to ECR; the deployer registers one new
# revision pinned to the pushed digest and rolls auth onto it (random runs another repository and
# stays); EventBridge delivers the event again; ECS reports the rollout completed.
set -euo pipefail
py=.venv/bin/python
story() { "$py" scripts/scenarios/story.py "$@"; }
account=$("$py" -c 'import boto3; print(boto3.client("sts").get_caller_identity()["Account"])')
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

story inbox --quiet # start from an empty inbox
story chapter "deployer: a CI pipeline pushes auth:v2"
story world services
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
sed "s/123456789012/$account/g" events/ecr-push-tagged.json | "$py" -c '
import json, sys, uuid
e = json.load(sys.stdin); e["id"] = str(uuid.uuid4())
e["detail"]["image-digest"] = sys.argv[1]; e["detail"]["image-tag"] = "v2"
print(json.dumps(e))' "$digest" >"$work/push.json"
story say "auth is tagged autopilot:deploy=semver, random autopilot:deploy=any; both run their own repository"
story step deployer "$work/push.json"
story world services

story chapter "deployer: EventBridge delivers the same push again"
story step deployer "$work/push.json"

story chapter "deployer: cosign signs the image (a signature is pushed as a tag of its own)"
sed "s/123456789012/$account/g" events/ecr-push-cosign-signature.json | "$py" -c '
import json, sys, uuid
e = json.load(sys.stdin); e["id"] = str(uuid.uuid4())
e["detail"]["image-tag"] = "sha256-" + sys.argv[1].split(":")[1] + ".sig"
print(json.dumps(e))' "$digest" >"$work/sig.json"
story step deployer "$work/sig.json"

story chapter "deployer: ECS reports auth's rollout COMPLETED"
"$py" - "$account" >"$work/done.json" <<'PY'
import boto3, json, sys, uuid
s = boto3.client("ecs").describe_services(cluster="stage01", services=["auth"])["services"][0]
e = json.load(open("events/ecs-deployment-completed.json"))
e = json.loads(json.dumps(e).replace("123456789012", sys.argv[1]))
e["id"] = str(uuid.uuid4()); e["detail"]["deploymentId"] = s["deployments"][0]["id"]
print(json.dumps(e))
PY
story step deployer "$work/done.json"
