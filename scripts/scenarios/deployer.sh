#!/usr/bin/env bash
# Push-to-deploy, told as a story: auth:v2 is pushed to ECR; the deployer registers one new
# revision pinned to the pushed digest and rolls auth onto it (random runs another repository and
# stays); EventBridge delivers the event again; ECS reports the rollout completed.
set -euo pipefail
# shellcheck source=scripts/scenarios/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

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
event ecr-push-tagged.json "image-digest=\"$digest\"" 'image-tag="v2"' >"$work/push.json"
story say "auth is tagged autopilot:deploy=semver, random autopilot:deploy=any; both run their own repository"
story step deployer "$work/push.json"
story world services

story chapter "deployer: EventBridge delivers the same push again"
story step deployer "$work/push.json"

story chapter "deployer: cosign signs the image (a signature is pushed as a tag of its own)"
event ecr-push-cosign-signature.json "image-tag=\"sha256-${digest#sha256:}.sig\"" >"$work/sig.json"
story step deployer "$work/sig.json"

story chapter "deployer: ECS reports auth's rollout COMPLETED"
deployment=$("$py" -c 'import boto3; print(boto3.client("ecs").describe_services(cluster="stage01", services=["auth"])["services"][0]["deployments"][0]["id"])')
event ecs-deployment-completed.json "deploymentId=\"$deployment\"" >"$work/done.json"
story step deployer "$work/done.json"
