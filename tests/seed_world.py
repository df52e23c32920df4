#!/usr/bin/env python3
"""Provision ecs-autopilot's seed world in one isolated account of a moto server.

    seed_world.py --endpoint URL --account 12DIGITS [--region us-east-1] [--summary]
                  [--json-file PATH] [--scenario seed]

The seed world is the one of /work/shared/DESIGN.md and the walkthrough
shared/seeds/000_17df82b674e5e303.txt: cluster `stage01` backed by the Auto Scaling group
`stage01-asg` (two EC2 container instances in us-east-1a / us-east-1b), an ALB `stage01` on :80
with target groups `auth` (/, default) and `random` (/random/*), services `auth` (2) and
`random` (4) with dynamic host ports, plus what the functions themselves need: ECR repositories
with an image `v1`, the SNS topic + an SQS inbox subscribed to it, the DynamoDB state table and
two CloudWatch alarms.

Account isolation: moto puts every request whose access key it doesn't know into 123456789012.
So we first create an IAM user and access key *in the wanted account* (IAM calls carry the
`x-moto-account-id` header) and sign every later call with that key; moto maps the key to the
account. STS GetCallerIdentity checks it.

Idempotent: a second run against the same account reuses every resource (no new task-definition
revision while the family's latest ACTIVE revision already runs the wanted image, no new service,
no second container-instance registration). Each run rotates the IAM access key (the previous
run's key stays valid for one more run: at most two keys per user).

stdout: one JSON object (default) or, with --summary, a readable summary of the world. Progress
goes to stderr. Exit status 0 on success, 1 with a message on stderr otherwise.

Scenarios are functions registered in SCENARIOS; `seed` is the base world every other scenario
starts from (later: push, recovery, scaling).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import sys
import time
from datetime import timezone
from typing import Any, Callable

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

CLUSTER = "stage01"
ASG = "stage01-asg"
LAUNCH_TEMPLATE = "stage01-ecs"
ALB = "stage01"
VPC_CIDR = "10.0.0.0/16"
SUBNETS = [("a", "10.0.1.0/24"), ("b", "10.0.2.0/24")]  # AZ suffix, CIDR
TOPIC = "autopilot-notifications"
QUEUE = "autopilot-notifications-inbox"
TABLE = "autopilot-state"
SEED_USER = "autopilot-seed"
SERVICE_ROLE = "ecsServiceRole"
SEED_TAG = {"Key": "autopilot:seed", "Value": "stage01"}

# The two applications of the walkthrough. Environment values that look like secrets are there so
# tests can check logs and notifications never carry them (DESIGN.md: never leak env values).
APPS: dict[str, dict[str, Any]] = {
    "auth": {
        "port": 10080,
        "desired": 2,
        "health_path": "/",
        "rule_path": None,  # listener default
        "env": {
            "LOG_LEVEL": "info",
            "DB_PASSWORD": "s3cr3t-auth-db-9f4c2e",
            "JWT_SIGNING_KEY": "s3cr3t-auth-jwt-51b7aa",
        },
        "tags": {
            "autopilot:deploy": "semver",
            "autopilot:rollback": "on",
            "autopilot:min": "1",
            "autopilot:max": "10",
        },
    },
    "random": {
        "port": 10081,
        "desired": 4,
        "health_path": "/random/",
        "rule_path": "/random/*",
        "env": {
            "LOG_LEVEL": "info",
            "DB_PASSWORD": "s3cr3t-random-db-3e81d0",
            "API_TOKEN": "s3cr3t-random-token-c07f19",
        },
        "tags": {
            "autopilot:deploy": "any",
            "autopilot:pin": "digest",
            "autopilot:min": "2",
            "autopilot:max": "12",
        },
    },
}
TASK_DEFINITION_TAGS = {"team": "platform", "app": "{app}"}

ALARMS: dict[str, dict[str, Any]] = {
    "random-cpu-high": {
        "metric": ("AWS/ECS", "CPUUtilization"),
        "dimensions": {"ClusterName": CLUSTER, "ServiceName": "random"},
        "statistic": "Average",
        "period": 60,
        "evaluation_periods": 2,
        "threshold": 70.0,
        "comparison": "GreaterThanThreshold",
        "tags": {
            "autopilot:scale": f"{CLUSTER}/random",
            "autopilot:steps": "0:15:+1 15::+2",
            "autopilot:cooldown": "120",
        },
    },
    # No autopilot tags: an alarm the scaler must ignore.
    "auth-latency-high": {
        "metric": ("AWS/ApplicationELB", "TargetResponseTime"),
        "dimensions": {"LoadBalancer": "{alb_dimension}", "TargetGroup": "{tg_auth_dimension}"},
        "statistic": "Average",
        "period": 60,
        "evaluation_periods": 3,
        "threshold": 0.5,
        "comparison": "GreaterThanThreshold",
        "tags": {"team": "platform"},
    },
}


def log(msg: str) -> None:
    print(f"seed_world: {msg}", file=sys.stderr, flush=True)


class SeedError(Exception):
    pass


def error_code(e: ClientError) -> str:
    return e.response.get("Error", {}).get("Code", "")


def tag_list(d: dict[str, str], key: str = "Key", value: str = "Value") -> list[dict[str, str]]:
    return [{key: k, value: v} for k, v in d.items()]


def image_manifest(repo: str, tag: str) -> str:
    """A small docker v2 (schema 2) manifest, deterministic per repo:tag (so the digest is too)."""

    def blob(kind: str) -> str:
        return "sha256:" + hashlib.sha256(f"{repo}:{tag}:{kind}".encode()).hexdigest()

    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": {
                "mediaType": "application/vnd.docker.container.image.v1+json",
                "size": 1469,
                "digest": blob("config"),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                    "size": 2811478,
                    "digest": blob("layer0"),
                },
                {
                    "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                    "size": 1024,
                    "digest": blob("layer1"),
                },
            ],
        },
        separators=(",", ":"),
    )


class World:
    """Clients for one account plus everything the provisioning found or created (self.out)."""

    def __init__(self, endpoint: str, account: str, region: str):
        self.endpoint = endpoint.rstrip("/")
        self.account = account
        self.region = region
        self.config = Config(
            retries={"max_attempts": 3, "mode": "standard"},
            connect_timeout=5,
            read_timeout=60,
        )
        self.session: boto3.session.Session | None = None
        self._clients: dict[str, Any] = {}
        self.out: dict[str, Any] = {
            "account": account,
            "region": region,
            "endpoint": self.endpoint,
        }

    # -- credentials ---------------------------------------------------------------------------
    def bootstrap_credentials(self) -> None:
        """IAM user + access key inside self.account; every later call is signed with that key."""
        boot = boto3.session.Session(
            aws_access_key_id="AKIAAUTOPILOTBOOTSTRAP",
            aws_secret_access_key="bootstrap",
            region_name=self.region,
        )
        iam = boot.client("iam", endpoint_url=self.endpoint, config=self.config)
        account = self.account

        def add_account_header(request: Any, **_: Any) -> None:
            request.headers["x-moto-account-id"] = account

        iam.meta.events.register("before-send.iam.*", add_account_header)
        try:
            iam.create_user(UserName=SEED_USER, Tags=[SEED_TAG])
        except ClientError as e:
            if error_code(e) != "EntityAlreadyExists":
                raise
        # Rotate: keep the newest existing key (a previous run's consumers may still use it),
        # delete older ones, then create this run's key.
        keys = iam.list_access_keys(UserName=SEED_USER)["AccessKeyMetadata"]
        keys.sort(key=lambda k: k["CreateDate"])
        for old in keys[:-1]:
            iam.delete_access_key(UserName=SEED_USER, AccessKeyId=old["AccessKeyId"])
        key = iam.create_access_key(UserName=SEED_USER)["AccessKey"]
        self.session = boto3.session.Session(
            aws_access_key_id=key["AccessKeyId"],
            aws_secret_access_key=key["SecretAccessKey"],
            region_name=self.region,
        )
        ident = self.client("sts").get_caller_identity()
        if ident["Account"] != self.account:
            raise SeedError(
                f"access key {key['AccessKeyId']} maps to account {ident['Account']}, not "
                f"{self.account}: this moto server does not honour x-moto-account-id "
                "(moto[server] 5.x is needed)"
            )
        self.out["access_key_id"] = key["AccessKeyId"]
        self.out["secret_access_key"] = key["SecretAccessKey"]
        self.out["iam_user"] = SEED_USER

    def client(self, name: str) -> Any:
        if self.session is None:
            raise SeedError("bootstrap_credentials() must run first")
        if name not in self._clients:
            self._clients[name] = self.session.client(
                name, endpoint_url=self.endpoint, config=self.config
            )
        return self._clients[name]

    @property
    def ec2(self) -> Any:
        return self.client("ec2")

    @property
    def ecs(self) -> Any:
        return self.client("ecs")

    @property
    def elbv2(self) -> Any:
        return self.client("elbv2")

    @property
    def autoscaling(self) -> Any:
        return self.client("autoscaling")


# ---------------------------------------------------------------------------------------------
# Provisioning steps. Each one is create-or-reuse and records what it has in w.out.
# ---------------------------------------------------------------------------------------------


def provision_network(w: World) -> None:
    ec2 = w.ec2
    vpcs = ec2.describe_vpcs(
        Filters=[{"Name": "tag:Name", "Values": [CLUSTER]}, {"Name": "cidr", "Values": [VPC_CIDR]}]
    )["Vpcs"]
    if vpcs:
        vpc_id = vpcs[0]["VpcId"]
    else:
        vpc_id = ec2.create_vpc(
            CidrBlock=VPC_CIDR,
            TagSpecifications=[
                {"ResourceType": "vpc", "Tags": [{"Key": "Name", "Value": CLUSTER}, SEED_TAG]}
            ],
        )["Vpc"]["VpcId"]
        log(f"created VPC {vpc_id}")
    subnets = []
    for suffix, cidr in SUBNETS:
        az = f"{w.region}{suffix}"
        found = ec2.describe_subnets(
            Filters=[
                {"Name": "vpc-id", "Values": [vpc_id]},
                {"Name": "availability-zone", "Values": [az]},
            ]
        )["Subnets"]
        if found:
            subnets.append(found[0]["SubnetId"])
            continue
        sid = ec2.create_subnet(
            VpcId=vpc_id,
            CidrBlock=cidr,
            AvailabilityZone=az,
            TagSpecifications=[
                {
                    "ResourceType": "subnet",
                    "Tags": [{"Key": "Name", "Value": f"{CLUSTER}-{suffix}"}, SEED_TAG],
                }
            ],
        )["Subnet"]["SubnetId"]
        subnets.append(sid)
    sgs: dict[str, str] = {}
    for name, desc in (
        (f"{CLUSTER}-alb", "stage01 load balancer: HTTP from anywhere"),
        (f"{CLUSTER}-ecs", "stage01 container instances: all from the load balancer"),
    ):
        found = ec2.describe_security_groups(
            Filters=[
                {"Name": "vpc-id", "Values": [vpc_id]},
                {"Name": "group-name", "Values": [name]},
            ]
        )["SecurityGroups"]
        if found:
            sgs[name] = found[0]["GroupId"]
        else:
            sgs[name] = ec2.create_security_group(
                GroupName=name,
                Description=desc,
                VpcId=vpc_id,
                TagSpecifications=[{"ResourceType": "security-group", "Tags": [SEED_TAG]}],
            )["GroupId"]
    ingress = {
        f"{CLUSTER}-alb": [
            {
                "IpProtocol": "tcp",
                "FromPort": 80,
                "ToPort": 80,
                "IpRanges": [{"CidrIp": "0.0.0.0/0", "Description": "HTTP"}],
            }
        ],
        f"{CLUSTER}-ecs": [
            {
                "IpProtocol": "-1",
                "UserIdGroupPairs": [
                    {"GroupId": sgs[f"{CLUSTER}-alb"], "Description": "from stage01-alb"}
                ],
            }
        ],
    }
    for name, perms in ingress.items():
        try:
            w.ec2.authorize_security_group_ingress(GroupId=sgs[name], IpPermissions=perms)
        except ClientError as e:
            if error_code(e) != "InvalidPermission.Duplicate":
                raise
    w.out["vpc_id"] = vpc_id
    w.out["subnets"] = subnets
    w.out["security_groups"] = sgs


def provision_load_balancer(w: World) -> None:
    elb = w.elbv2
    try:
        lb = elb.describe_load_balancers(Names=[ALB])["LoadBalancers"][0]
    except ClientError as e:
        if error_code(e) != "LoadBalancerNotFound":
            raise
        lb = elb.create_load_balancer(
            Name=ALB,
            Subnets=w.out["subnets"],
            SecurityGroups=[w.out["security_groups"][f"{CLUSTER}-alb"]],
            Scheme="internet-facing",
            Type="application",
            IpAddressType="ipv4",
            Tags=[SEED_TAG],
        )["LoadBalancers"][0]
        log(f"created load balancer {ALB}")
    lb_arn = lb["LoadBalancerArn"]
    tgs: dict[str, str] = {}
    for app, spec in APPS.items():
        try:
            tg = elb.describe_target_groups(Names=[app])["TargetGroups"][0]
        except ClientError as e:
            if error_code(e) != "TargetGroupNotFound":
                raise
            tg = elb.create_target_group(
                Name=app,
                Protocol="HTTP",
                Port=80,
                VpcId=w.out["vpc_id"],
                HealthCheckProtocol="HTTP",
                HealthCheckPort="traffic-port",
                HealthCheckPath=spec["health_path"],
                HealthCheckIntervalSeconds=5,
                HealthCheckTimeoutSeconds=2,
                HealthyThresholdCount=2,
                UnhealthyThresholdCount=2,
                Matcher={"HttpCode": "200"},
                TargetType="instance",
                Tags=[SEED_TAG],
            )["TargetGroups"][0]
        tgs[app] = tg["TargetGroupArn"]
    listeners = elb.describe_listeners(LoadBalancerArn=lb_arn)["Listeners"]
    listener = next((l for l in listeners if l["Port"] == 80), None)
    if listener is None:
        listener = elb.create_listener(
            LoadBalancerArn=lb_arn,
            Protocol="HTTP",
            Port=80,
            DefaultActions=[{"Type": "forward", "TargetGroupArn": tgs["auth"]}],
        )["Listeners"][0]
    listener_arn = listener["ListenerArn"]
    rules = elb.describe_rules(ListenerArn=listener_arn)["Rules"]
    rule_arns: dict[str, str] = {}
    priority = 10
    for app, spec in APPS.items():
        if not spec["rule_path"]:
            continue
        existing = None
        for r in rules:
            for c in r.get("Conditions", []):
                values = c.get("Values") or c.get("PathPatternConfig", {}).get("Values", [])
                if c.get("Field") == "path-pattern" and spec["rule_path"] in values:
                    existing = r
        if existing is None:
            existing = elb.create_rule(
                ListenerArn=listener_arn,
                Priority=priority,
                Conditions=[
                    {"Field": "path-pattern", "PathPatternConfig": {"Values": [spec["rule_path"]]}}
                ],
                Actions=[{"Type": "forward", "TargetGroupArn": tgs[app]}],
            )["Rules"][0]
        rule_arns[app] = existing["RuleArn"]
        priority += 10
    w.out["load_balancer_arn"] = lb_arn
    w.out["load_balancer_dns"] = lb.get("DNSName", "")
    w.out["listener_arn"] = listener_arn
    w.out["listener_rules"] = rule_arns
    w.out["target_groups"] = tgs


def ecs_ami(w: World) -> str:
    """The ECS-optimized AMI that SSM recommends (moto ships those parameters), else any Linux one."""
    try:
        return w.client("ssm").get_parameter(
            Name="/aws/service/ecs/optimized-ami/amazon-linux-2023/recommended/image_id"
        )["Parameter"]["Value"]
    except ClientError:
        images = w.ec2.describe_images(Owners=["amazon"])["Images"]
        for img in images:
            if img.get("Platform") != "windows":
                return img["ImageId"]
    raise SeedError("no Linux AMI found in this moto server")


def provision_auto_scaling(w: World) -> None:
    ec2, asg = w.ec2, w.autoscaling
    try:
        lt = ec2.describe_launch_templates(LaunchTemplateNames=[LAUNCH_TEMPLATE])[
            "LaunchTemplates"
        ][0]
    except ClientError as e:
        if error_code(e) not in ("InvalidLaunchTemplateName.NotFoundException",):
            raise
        user_data = f"#!/bin/bash\necho ECS_CLUSTER={CLUSTER} >> /etc/ecs/ecs.config\n"
        lt = ec2.create_launch_template(
            LaunchTemplateName=LAUNCH_TEMPLATE,
            LaunchTemplateData={
                "ImageId": ecs_ami(w),
                "InstanceType": "t3.medium",
                "SecurityGroupIds": [w.out["security_groups"][f"{CLUSTER}-ecs"]],
                "IamInstanceProfile": {"Name": "ecsInstanceRole"},
                "UserData": base64.b64encode(user_data.encode()).decode(),
            },
            TagSpecifications=[{"ResourceType": "launch-template", "Tags": [SEED_TAG]}],
        )["LaunchTemplate"]
        log(f"created launch template {LAUNCH_TEMPLATE}")
    groups = asg.describe_auto_scaling_groups(AutoScalingGroupNames=[ASG])["AutoScalingGroups"]
    if not groups:
        subnets = w.out["subnets"]
        # moto launches every instance of one scaling activity into the group's *first* subnet.
        # To get one instance per AZ as on AWS: start with one instance in subnet a, then grow to
        # two with subnet b listed first, then restore the subnet order (no instance changes).
        asg.create_auto_scaling_group(
            AutoScalingGroupName=ASG,
            LaunchTemplate={"LaunchTemplateId": lt["LaunchTemplateId"], "Version": "$Latest"},
            MinSize=1,
            MaxSize=6,
            DesiredCapacity=1,
            VPCZoneIdentifier=subnets[0],
            HealthCheckType="EC2",
            Tags=[
                {
                    "Key": "Name",
                    "Value": f"{CLUSTER}-ecs",
                    "PropagateAtLaunch": True,
                    "ResourceId": ASG,
                    "ResourceType": "auto-scaling-group",
                },
                {
                    "Key": "AmazonECSManaged",
                    "Value": "",
                    "PropagateAtLaunch": True,
                    "ResourceId": ASG,
                    "ResourceType": "auto-scaling-group",
                },
            ],
        )
        asg.update_auto_scaling_group(
            AutoScalingGroupName=ASG,
            MinSize=2,
            DesiredCapacity=2,
            VPCZoneIdentifier=",".join(list(reversed(subnets))),
        )
        asg.update_auto_scaling_group(
            AutoScalingGroupName=ASG, VPCZoneIdentifier=",".join(subnets)
        )
        log(f"created Auto Scaling group {ASG}")
        groups = asg.describe_auto_scaling_groups(AutoScalingGroupNames=[ASG])[
            "AutoScalingGroups"
        ]
    group = groups[0]
    w.out["asg_name"] = ASG
    w.out["asg_arn"] = group.get("AutoScalingGroupARN", "")
    w.out["launch_template_id"] = lt["LaunchTemplateId"]
    w.out["instance_ids"] = sorted(
        i["InstanceId"] for i in group["Instances"] if i["LifecycleState"] == "InService"
    )


def provision_cluster(w: World) -> None:
    ecs = w.ecs
    found = ecs.describe_clusters(clusters=[CLUSTER])["clusters"]
    active = [c for c in found if c.get("status") == "ACTIVE"]
    # moto's create_cluster replaces an existing cluster (losing its instance count): describe first.
    if active:
        cluster = active[0]
    else:
        cluster = ecs.create_cluster(clusterName=CLUSTER)["cluster"]
        log(f"created ECS cluster {CLUSTER}")
    ecs.tag_resource(
        resourceArn=cluster["clusterArn"],
        tags=[{"key": "autopilot:asg", "value": ASG}, {"key": "autopilot:seed", "value": CLUSTER}],
    )
    w.out["cluster"] = {"name": CLUSTER, "arn": cluster["clusterArn"]}


def register_container_instances(w: World) -> None:
    """What the ECS agent does on boot: register every InService instance of the group once."""
    ecs = w.ecs
    registered: dict[str, str] = {}  # ec2 instance id -> container instance arn
    arns = ecs.list_container_instances(cluster=CLUSTER)["containerInstanceArns"]
    if arns:
        for ci in ecs.describe_container_instances(cluster=CLUSTER, containerInstances=arns)[
            "containerInstances"
        ]:
            registered[ci["ec2InstanceId"]] = ci["containerInstanceArn"]
    missing = [i for i in w.out["instance_ids"] if i not in registered]
    if missing:
        reservations = w.ec2.describe_instances(InstanceIds=missing)["Reservations"]
        for inst in (i for r in reservations for i in r["Instances"]):
            doc = {
                "accountId": w.account,
                "architecture": "x86_64",
                "availabilityZone": inst["Placement"]["AvailabilityZone"],
                "imageId": inst["ImageId"],
                "instanceId": inst["InstanceId"],
                "instanceType": inst["InstanceType"],
                "pendingTime": inst["LaunchTime"].astimezone(timezone.utc).strftime(
                    "%Y-%m-%dT%H:%M:%SZ"
                ),
                "privateIp": inst.get("PrivateIpAddress", ""),
                "region": w.region,
                "version": "2017-09-30",
            }
            ci = ecs.register_container_instance(
                cluster=CLUSTER,
                instanceIdentityDocument=json.dumps(doc),
                instanceIdentityDocumentSignature="moto-does-not-check",
            )["containerInstance"]
            registered[inst["InstanceId"]] = ci["containerInstanceArn"]
            log(f"registered {inst['InstanceId']} ({doc['availabilityZone']}) with {CLUSTER}")
    w.out["container_instances"] = sorted(
        registered[i] for i in w.out["instance_ids"] if i in registered
    )


def push_image(w: World, repo: str, tag: str) -> str:
    """Put repo:tag into ECR (create-or-reuse); returns the image digest."""
    ecr = w.client("ecr")
    try:
        images = ecr.describe_images(repositoryName=repo, imageIds=[{"imageTag": tag}])[
            "imageDetails"
        ]
        if images:
            return images[0]["imageDigest"]
    except ClientError as e:
        if error_code(e) != "ImageNotFoundException":
            raise
    manifest = image_manifest(repo, tag)
    image = ecr.put_image(
        repositoryName=repo,
        imageManifest=manifest,
        imageManifestMediaType="application/vnd.docker.distribution.manifest.v2+json",
        imageTag=tag,
    )["image"]
    log(f"pushed {repo}:{tag} ({image['imageId']['imageDigest'][:19]}…)")
    return image["imageId"]["imageDigest"]


def provision_repositories(w: World) -> None:
    ecr = w.client("ecr")
    repos: dict[str, dict[str, str]] = {}
    for app in APPS:
        try:
            repo = ecr.create_repository(
                repositoryName=app,
                imageTagMutability="MUTABLE",
                tags=[SEED_TAG],
            )["repository"]
        except ClientError as e:
            if error_code(e) != "RepositoryAlreadyExistsException":
                raise
            repo = ecr.describe_repositories(repositoryNames=[app])["repositories"][0]
        digest = push_image(w, app, "v1")
        repos[app] = {"uri": repo["repositoryUri"], "arn": repo["repositoryArn"], "digest_v1": digest}
    w.out["repositories"] = repos


def task_definition_input(w: World, app: str, image: str) -> dict[str, Any]:
    spec = APPS[app]
    return {
        "family": app,
        "containerDefinitions": [
            {
                "name": app,
                "image": image,
                "cpu": 512,
                "memory": 512,
                "portMappings": [
                    {"protocol": "tcp", "containerPort": spec["port"], "hostPort": 0}
                ],
                "essential": True,
                "environment": [{"name": k, "value": v} for k, v in spec["env"].items()],
                "dockerLabels": {"service": app},
            }
        ],
        "requiresCompatibilities": ["EC2"],
        "tags": [
            {"key": k, "value": v.format(app=app)} for k, v in TASK_DEFINITION_TAGS.items()
        ],
    }


def ensure_task_definition(w: World, app: str, image: str) -> str:
    """The newest ACTIVE revision of the family whose container runs `image`, else a new one.

    Not just the latest revision: after a test deployed v2, a re-run must not register yet
    another v1 revision.
    """
    ecs = w.ecs
    arns = ecs.list_task_definitions(familyPrefix=app, status="ACTIVE", sort="DESC")[
        "taskDefinitionArns"
    ]
    # moto ignores sort=DESC: order by revision ourselves
    arns.sort(key=lambda a: int(a.rsplit(":", 1)[-1]), reverse=True)
    for arn in arns[:50]:
        # familyPrefix is a prefix: skip families like "auth-worker"
        if arn.rsplit("/", 1)[-1].rsplit(":", 1)[0] != app:
            continue
        td = ecs.describe_task_definition(taskDefinition=arn)["taskDefinition"]
        if any(c.get("name") == app and c.get("image") == image for c in td["containerDefinitions"]):
            return td["taskDefinitionArn"]
    td = ecs.register_task_definition(**task_definition_input(w, app, image))["taskDefinition"]
    log(f"registered task definition {app}:{td['revision']} ({image})")
    return td["taskDefinitionArn"]


def provision_task_definitions(w: World) -> None:
    tds = {}
    for app in APPS:
        image = f"{w.out['repositories'][app]['uri']}:v1"
        tds[app] = ensure_task_definition(w, app, image)
    w.out["task_definitions"] = tds
    w.out["images"] = {app: f"{w.out['repositories'][app]['uri']}:v1" for app in APPS}
    w.out["secret_values"] = sorted(
        v for spec in APPS.values() for k, v in spec["env"].items() if v.startswith("s3cr3t-")
    )


def provision_service_role(w: World) -> str:
    iam = w.client("iam")
    try:
        return iam.get_role(RoleName=SERVICE_ROLE)["Role"]["Arn"]
    except ClientError as e:
        if error_code(e) != "NoSuchEntity":
            raise
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "ecs.amazonaws.com"},
                "Action": "sts:AssumeRole",
            }
        ],
    }
    return iam.create_role(RoleName=SERVICE_ROLE, AssumeRolePolicyDocument=json.dumps(trust))[
        "Role"
    ]["Arn"]


DEPLOYMENT_CONFIGURATION = {
    "maximumPercent": 200,
    "minimumHealthyPercent": 50,
    "deploymentCircuitBreaker": {"enable": True, "rollback": True},
}
PLACEMENT_STRATEGY = [
    {"type": "spread", "field": "attribute:ecs.availability-zone"},
    {"type": "spread", "field": "instanceId"},
]


def provision_services(w: World) -> None:
    ecs = w.ecs
    role_arn = provision_service_role(w)
    services: dict[str, str] = {}
    for app, spec in APPS.items():
        found = ecs.describe_services(cluster=CLUSTER, services=[app])["services"]
        live = [s for s in found if s.get("status") == "ACTIVE"]
        if live:
            svc = live[0]
        else:
            svc = ecs.create_service(
                cluster=CLUSTER,
                serviceName=app,
                taskDefinition=w.out["task_definitions"][app],
                desiredCount=spec["desired"],
                launchType="EC2",
                role=role_arn,
                loadBalancers=[
                    {
                        "targetGroupArn": w.out["target_groups"][app],
                        "containerName": app,
                        "containerPort": spec["port"],
                    }
                ],
                deploymentConfiguration=DEPLOYMENT_CONFIGURATION,
                placementStrategy=PLACEMENT_STRATEGY,
                healthCheckGracePeriodSeconds=30,
                schedulingStrategy="REPLICA",
                deploymentController={"type": "ECS"},
                propagateTags="SERVICE",
                enableECSManagedTags=True,
                tags=[{"key": k, "value": v} for k, v in spec["tags"].items()],
            )["service"]
            log(f"created service {app} (desired {spec['desired']})")
            # moto 5.2.1 keeps neither deploymentConfiguration, placementStrategy nor the grace
            # period from create_service, and starts no task (runningCount 0). Its update_service
            # stores whatever fields it gets and sets runningCount to desiredCount: use it so the
            # world looks like the walkthrough's steady state (runningCount == desiredCount).
            svc = ecs.update_service(
                cluster=CLUSTER,
                service=app,
                desiredCount=spec["desired"],
                deploymentConfiguration=DEPLOYMENT_CONFIGURATION,
                placementStrategy=PLACEMENT_STRATEGY,
                healthCheckGracePeriodSeconds=30,
            )["service"]
        # Tags are the operator's opt-in: (re)apply them on every run.
        ecs.tag_resource(
            resourceArn=svc["serviceArn"],
            tags=[{"key": k, "value": v} for k, v in spec["tags"].items()],
        )
        services[app] = svc["serviceArn"]
    w.out["services"] = services


def provision_notifications(w: World) -> None:
    sns, sqs = w.client("sns"), w.client("sqs")
    topic_arn = sns.create_topic(Name=TOPIC, Tags=[SEED_TAG])["TopicArn"]
    queue_url = sqs.create_queue(QueueName=QUEUE)["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "autopilot-notifications",
                "Effect": "Allow",
                "Principal": {"Service": "sns.amazonaws.com"},
                "Action": "sqs:SendMessage",
                "Resource": queue_arn,
                "Condition": {"ArnEquals": {"aws:SourceArn": topic_arn}},
            }
        ],
    }
    sqs.set_queue_attributes(QueueUrl=queue_url, Attributes={"Policy": json.dumps(policy)})
    subs = sns.list_subscriptions_by_topic(TopicArn=topic_arn)["Subscriptions"]
    sub = next((s for s in subs if s["Protocol"] == "sqs" and s["Endpoint"] == queue_arn), None)
    if sub is None:
        # Not raw delivery: the inbox gets the SNS envelope (Type, Subject, Message, ...).
        sub_arn = sns.subscribe(
            TopicArn=topic_arn,
            Protocol="sqs",
            Endpoint=queue_arn,
            Attributes={"RawMessageDelivery": "false"},
            ReturnSubscriptionArn=True,
        )["SubscriptionArn"]
    else:
        sub_arn = sub["SubscriptionArn"]
    w.out["topic_arn"] = topic_arn
    w.out["queue_url"] = queue_url
    w.out["queue_arn"] = queue_arn
    w.out["subscription_arn"] = sub_arn


def provision_state_table(w: World) -> None:
    ddb = w.client("dynamodb")
    try:
        table = ddb.describe_table(TableName=TABLE)["Table"]
    except ClientError as e:
        if error_code(e) != "ResourceNotFoundException":
            raise
        table = ddb.create_table(
            TableName=TABLE,
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
            ],
            KeySchema=[
                {"AttributeName": "pk", "KeyType": "HASH"},
                {"AttributeName": "sk", "KeyType": "RANGE"},
            ],
            Tags=[SEED_TAG],
        )["TableDescription"]
    ttl = ddb.describe_time_to_live(TableName=TABLE)["TimeToLiveDescription"]
    if ttl.get("TimeToLiveStatus") not in ("ENABLED", "ENABLING"):
        ddb.update_time_to_live(
            TableName=TABLE,
            TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires_at"},
        )
    w.out["table_name"] = TABLE
    w.out["table_arn"] = table["TableArn"]


def provision_alarms(w: World) -> None:
    cw = w.client("cloudwatch")
    lb_arn, tg_auth = w.out["load_balancer_arn"], w.out["target_groups"]["auth"]
    subst = {
        "alb_dimension": lb_arn.split(":loadbalancer/", 1)[-1],
        "tg_auth_dimension": tg_auth.split(":", 5)[-1],
    }
    alarms: dict[str, str] = {}
    for name, spec in ALARMS.items():
        namespace, metric = spec["metric"]
        cw.put_metric_alarm(
            AlarmName=name,
            AlarmDescription=f"ecs-autopilot seed world: {name}",
            Namespace=namespace,
            MetricName=metric,
            Dimensions=[
                {"Name": k, "Value": v.format(**subst)} for k, v in spec["dimensions"].items()
            ],
            Statistic=spec["statistic"],
            Period=spec["period"],
            EvaluationPeriods=spec["evaluation_periods"],
            Threshold=spec["threshold"],
            ComparisonOperator=spec["comparison"],
            TreatMissingData="missing",
            ActionsEnabled=True,
            Tags=tag_list(spec["tags"]),
        )
        arn = cw.describe_alarms(AlarmNames=[name])["MetricAlarms"][0]["AlarmArn"]
        # PutMetricAlarm applies Tags only when it creates the alarm: tag explicitly too.
        cw.tag_resource(ResourceARN=arn, Tags=tag_list(spec["tags"]))
        alarms[name] = arn
    w.out["alarms"] = alarms


# ---------------------------------------------------------------------------------------------
# Scenarios
# ---------------------------------------------------------------------------------------------


def scenario_seed(w: World) -> None:
    steps: list[tuple[str, Callable[[World], None]]] = [
        ("network", provision_network),
        ("load balancer", provision_load_balancer),
        ("auto scaling", provision_auto_scaling),
        ("cluster", provision_cluster),
        ("container instances", register_container_instances),
        ("repositories", provision_repositories),
        ("task definitions", provision_task_definitions),
        ("services", provision_services),
        ("notifications", provision_notifications),
        ("state table", provision_state_table),
        ("alarms", provision_alarms),
    ]
    for name, step in steps:
        t0 = time.monotonic()
        step(w)
        log(f"{name}: ok ({time.monotonic() - t0:.2f}s)")


# Later scenarios (push, recovery, scaling) go here: each takes the World after the seed world
# exists, changes it and records what tests need in w.out (e.g. w.out["scenario"] = {...}).
SCENARIOS: dict[str, Callable[[World], None]] = {
    "seed": scenario_seed,
}


# ---------------------------------------------------------------------------------------------
# Summary for people
# ---------------------------------------------------------------------------------------------


def _resources(rs: list[dict[str, Any]]) -> dict[str, int]:
    return {r["name"]: r.get("integerValue", 0) for r in rs if r.get("type") == "INTEGER"}


def _tags(ts: list[dict[str, str]] | None, key: str = "key", value: str = "value") -> str:
    if not ts:
        return "-"
    return ", ".join(f"{t[key]}={t[value]}" for t in sorted(ts, key=lambda t: t[key]))


def summary(w: World) -> str:
    ecs, elb = w.ecs, w.elbv2
    o = w.out
    lines: list[str] = []
    add = lines.append
    add(f"ecs-autopilot seed world — account {w.account}, region {w.region}, endpoint {w.endpoint}")
    add("")
    cl = ecs.describe_clusters(clusters=[CLUSTER], include=["TAGS"])["clusters"][0]
    add(f"ECS cluster {cl['clusterName']}  ({cl['clusterArn']})")
    add(f"  tags: {_tags(cl.get('tags'))}")
    add(f"  registered container instances: {cl.get('registeredContainerInstancesCount')}")
    cis = ecs.describe_container_instances(cluster=CLUSTER, containerInstances=o["container_instances"])[
        "containerInstances"
    ] if o["container_instances"] else []
    for ci in cis:
        attrs = {a["name"]: a.get("value") for a in ci.get("attributes", [])}
        rem, reg = _resources(ci["remainingResources"]), _resources(ci["registeredResources"])
        add(
            f"  - {ci['ec2InstanceId']}  {attrs.get('ecs.availability-zone', '?'):<11} "
            f"{ci['status']:<8} cpu {rem.get('CPU')}/{reg.get('CPU')}  "
            f"memory {rem.get('MEMORY')}/{reg.get('MEMORY')} MiB remaining  "
            f"running tasks {ci.get('runningTasksCount', 0)}"
        )
    add("")
    add("Services")
    svcs = ecs.describe_services(cluster=CLUSTER, services=list(APPS), include=["TAGS"])["services"]
    for s in svcs:
        td_ref = s["taskDefinition"]
        td = ecs.describe_task_definition(taskDefinition=td_ref, include=["TAGS"])
        tdd = td["taskDefinition"]
        dc = s.get("deploymentConfiguration") or {}
        add(
            f"  {s['serviceName']}: desired {s['desiredCount']}, running {s['runningCount']}, "
            f"pending {s['pendingCount']}, launch type {s.get('launchType')}, "
            f"deployments {len(s.get('deployments', []))}"
        )
        add(f"    task definition {tdd['family']}:{tdd['revision']}  tags: {_tags(td.get('tags'))}")
        for c in tdd["containerDefinitions"]:
            ports = ", ".join(
                f"{p.get('containerPort')}->{p.get('hostPort', 0)}/{p.get('protocol', 'tcp')}"
                for p in c.get("portMappings", [])
            )
            env_names = ", ".join(e["name"] for e in c.get("environment", []))
            add(
                f"    container {c['name']}: image {c['image']}  cpu {c.get('cpu')} "
                f"memory {c.get('memory')}  ports {ports}  env names [{env_names}]"
            )
        for lb in s.get("loadBalancers", []):
            add(
                f"    load balancer: target group {lb['targetGroupArn'].split('/')[-2]} "
                f"-> {lb['containerName']}:{lb['containerPort']}"
            )
        if dc:
            cb = dc.get("deploymentCircuitBreaker", {})
            add(
                f"    deployment: max {dc.get('maximumPercent')}% / min "
                f"{dc.get('minimumHealthyPercent')}%  circuit breaker "
                f"enable={cb.get('enable')} rollback={cb.get('rollback')}"
            )
        ps = s.get("placementStrategy") or []
        if ps:
            add("    placement: " + ", ".join(f"{p['type']}({p.get('field', '')})" for p in ps))
        add(f"    tags: {_tags(s.get('tags'))}")
    add("")
    add("ECR")
    for app, r in o["repositories"].items():
        add(f"  {r['uri']}  v1 = {r['digest_v1']}")
    add("")
    lb = elb.describe_load_balancers(LoadBalancerArns=[o["load_balancer_arn"]])["LoadBalancers"][0]
    add(f"Load balancer {lb['LoadBalancerName']} ({lb.get('DNSName', '')})")
    tg_names = {}
    tgs = elb.describe_target_groups(TargetGroupArns=list(o["target_groups"].values()))[
        "TargetGroups"
    ]
    for tg in tgs:
        tg_names[tg["TargetGroupArn"]] = tg["TargetGroupName"]
    for l in elb.describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])["Listeners"]:
        add(f"  listener {l['Protocol']}:{l['Port']}")
        rules = elb.describe_rules(ListenerArn=l["ListenerArn"])["Rules"]
        for r in sorted(rules, key=lambda r: (r["Priority"] == "default", r["Priority"])):
            conds = []
            for c in r.get("Conditions", []):
                vals = c.get("Values") or c.get("PathPatternConfig", {}).get("Values", [])
                conds.append(f"{c.get('Field')} {','.join(vals)}")
            targets = [
                tg_names.get(a.get("TargetGroupArn", ""), a.get("TargetGroupArn", ""))
                for a in r.get("Actions", [])
            ]
            add(
                f"    rule {r['Priority']}: {' and '.join(conds) or '(default)'} "
                f"-> forward {', '.join(targets)}"
            )
    for tg in tgs:
        n = len(elb.describe_target_health(TargetGroupArn=tg["TargetGroupArn"])["TargetHealthDescriptions"])
        add(
            f"  target group {tg['TargetGroupName']}: {tg['Protocol']}:{tg['Port']} "
            f"health {tg.get('HealthCheckPath')} every {tg.get('HealthCheckIntervalSeconds')}s "
            f"(timeout {tg.get('HealthCheckTimeoutSeconds')}s, "
            f"{tg.get('HealthyThresholdCount')}/{tg.get('UnhealthyThresholdCount')}, "
            f"matcher {tg.get('Matcher', {}).get('HttpCode')}), targets {n}"
        )
    add("")
    g = w.autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[ASG])["AutoScalingGroups"][0]
    add(
        f"Auto Scaling group {ASG}: min {g['MinSize']}, max {g['MaxSize']}, desired "
        f"{g['DesiredCapacity']}, instances "
        + ", ".join(f"{i['InstanceId']} ({i['AvailabilityZone']}, {i['LifecycleState']})" for i in g["Instances"])
    )
    add("")
    add(f"SNS topic   {o['topic_arn']}")
    add(f"SQS inbox   {o['queue_url']} (subscribed, SNS envelope)")
    ddb = w.client("dynamodb")
    t = ddb.describe_table(TableName=TABLE)["Table"]
    ttl = ddb.describe_time_to_live(TableName=TABLE)["TimeToLiveDescription"]
    keys = " + ".join(f"{k['AttributeName']} ({k['KeyType']})" for k in t["KeySchema"])
    add(
        f"DynamoDB    {TABLE}: {keys}, "
        f"{t.get('BillingModeSummary', {}).get('BillingMode', 'PROVISIONED')}, "
        f"TTL {ttl.get('AttributeName')} {ttl.get('TimeToLiveStatus')}"
    )
    add("")
    add("CloudWatch alarms")
    cw = w.client("cloudwatch")
    for a in cw.describe_alarms(AlarmNames=list(o["alarms"]))["MetricAlarms"]:
        tags = cw.list_tags_for_resource(ResourceARN=a["AlarmArn"])["Tags"]
        dims = ",".join(f"{d['Name']}={d['Value']}" for d in a.get("Dimensions", []))
        add(
            f"  {a['AlarmName']}: {a['StateValue']}  {a['Namespace']} {a['MetricName']} [{dims}] "
            f"{a['Statistic']} {a['ComparisonOperator']} {a['Threshold']:g} "
            f"({a['EvaluationPeriods']} x {a['Period']}s)"
        )
        add(f"    tags: {_tags(tags, 'Key', 'Value')}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--endpoint", required=True, help="moto server URL, e.g. http://127.0.0.1:5055")
    ap.add_argument("--account", required=True, help="12-digit account id to provision in")
    ap.add_argument("--region", default="us-east-1")
    ap.add_argument("--summary", action="store_true", help="print a readable summary, not JSON")
    ap.add_argument(
        "--json-file",
        metavar="PATH",
        help="also write the JSON object to PATH (useful with --summary)",
    )
    ap.add_argument(
        "--scenario",
        default="seed",
        choices=sorted(SCENARIOS),
        help="what to provision on top of nothing (default: the seed world)",
    )
    args = ap.parse_args(argv)
    if not (len(args.account) == 12 and args.account.isdigit()):
        ap.error("--account must be 12 digits")
    # Credentials and endpoint are explicit; a profile from the caller's shell must not interfere.
    for var in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN"):
        os.environ.pop(var, None)
    t0 = time.monotonic()
    w = World(args.endpoint, args.account, args.region)
    try:
        w.bootstrap_credentials()
        if args.scenario != "seed":
            scenario_seed(w)
        SCENARIOS[args.scenario](w)
        w.out["scenario"] = args.scenario
        w.out["seconds"] = round(time.monotonic() - t0, 2)
        log(f"account {w.account}: {args.scenario} world ready in {w.out['seconds']}s")
        doc = json.dumps(w.out, indent=2, sort_keys=True, default=str)
        if args.json_file:
            with open(args.json_file, "w", encoding="utf-8") as f:
                f.write(doc + "\n")
        if args.summary:
            print(summary(w))
        else:
            print(doc)
    except SeedError as e:
        log(f"error: {e}")
        return 1
    except ClientError as e:
        op = e.operation_name
        log(f"error: {op} failed: {error_code(e)}: {e.response.get('Error', {}).get('Message', e)}")
        return 1
    except Exception as e:  # connection refused, moto 500s, ...
        log(f"error: {type(e).__name__}: {e}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
