"""moto_compat: the places where moto 5.2.1's ECS differs from ECS in a way that breaks the
SDKs or changes what a test shows, corrected on the way through aws_proxy.py (--moto-compat).

* A task's containers come back with ``cpu``, ``memory`` and ``memoryReservation`` as JSON
  numbers; ECS sends strings (the ``Container`` shape in ECS's model), and the Rust SDK refuses
  numbers ("expected string"), so DescribeTasks and RunTask answers could not be parsed at all.
  They are turned into strings.
* RunTask ignores ``clientToken``; ECS honours it ("Ensuring idempotency" in the ECS API
  reference: a repeated request with a token already answered gets the first answer and starts
  nothing). Without this, a RunTask whose answer is lost starts a second task in moto where ECS
  would not. The first successful answer (HTTP 200) per (access key, token) is kept and
  replayed, one that started nothing (``tasks`` empty, ``failures``) included: ECS documents the
  replay for requests that succeeded and is silent on those, and replaying them is the case a
  caller retrying with the same token could not get past.
* A service's deployments: moto keeps one PRIMARY deployment IN_PROGRESS for ever, with the
  counts it had when the service was created. ECS reports the deployment COMPLETED once the
  service is steady ("When the service reaches a steady state, the deployment transitions to a
  COMPLETED state", ECS API reference, Deployment.rolloutState), with the service's counts. So a
  service that runs what it wants (runningCount >= desiredCount, nothing pending) with a lone
  PRIMARY deployment is answered that way; a service that is still starting its tasks keeps
  IN_PROGRESS, as on ECS. A test that needs a rollout ECS would report (tasks running but not
  yet healthy behind the load balancer, a blue/green bake, a rolling update still replacing old
  tasks) asks for it per (access key, cluster, service) with ``POST /__proxy/ecs/rollouts``:
  the PRIMARY deployment then reads the rolloutState asked for, with ``activeDeployments`` ACTIVE
  deployments beside it (the ones ECS lists while their tasks are being replaced). Services with
  a CODE_DEPLOY or EXTERNAL controller are left as moto answers them.
* Service deployment records (ListServiceDeployments, DescribeServiceDeployments): moto has
  none. ECS keeps one per deployment since 25 October 2024 ("View service history using Amazon
  ECS service deployments"). The proxy answers both operations itself, after its model check,
  from records a test gives per (access key, cluster, service) with ``POST
  /__proxy/ecs/service-deployments`` (``{"account", "cluster", "service", "serviceDeployments":
  [ServiceDeployment as DescribeServiceDeployments answers it, timestamps in epoch seconds]}``);
  a service without records is answered with none, as ECS answers for a service whose history
  predates them. StopServiceDeployment moves a given record to ROLLBACK_REQUESTED (or
  STOP_REQUESTED for stopType ABORT), as ECS does.
* A service's ``deploymentConfiguration``: moto drops it (strategy, bake times and all). A test
  gives one per (access key, cluster, service) with ``POST /__proxy/ecs/service-configuration``
  (``{"account", "cluster", "service", "deploymentConfiguration"}``, null to stop) and service
  answers carry it, as ECS's would for a BLUE_GREEN, LINEAR or CANARY service.
* Express Mode services: moto has none. The same control with ``"resourceManagementType": "ECS"``
  makes a service read as one (its ``taskDefinition`` empty, the revision on its PRIMARY
  deployment: the Express Mode docs). UpdateExpressGatewayService with ``taskDefinitionArn`` is
  carried out as the UpdateService moto knows, and answered with the Express service's ARN and
  cluster (ECSExpressGatewayService's members that moto can tell).
* Task scale-in protection (GetTaskProtection): moto has no such operation. The proxy answers
  it itself, after its model check, from what a test gives per (access key, cluster) with ``POST
  /__proxy/ecs/task-protection`` (``{"account", "cluster", "protectedTasks": [ProtectedTask as
  GetTaskProtection answers it, expirationDate in epoch seconds]}``, replacing what was given
  before); every other task asked about reads ``protectionEnabled`` false, as ECS answers for a
  task nobody protected ("Protect your Amazon ECS tasks from being terminated by scale-in
  events", https://docs.aws.amazon.com/AmazonECS/latest/developerguide/task-scale-in-protection.html).
* ECS Managed Instances capacity providers: moto's CreateCapacityProvider knows only
  ``autoScalingGroupProvider`` (and fails without one), and answers no ``type``. A test gives an
  account's capacity providers as DescribeCapacityProviders answers them (``type``
  MANAGED_INSTANCES with a ``managedInstancesProvider``, say) with ``POST
  /__proxy/ecs/capacity-providers`` (``{"account", "capacityProviders": [CapacityProvider]}``);
  from then on the proxy answers that account's DescribeCapacityProviders itself, after its model
  check: the named providers it was given, the others as MISSING failures, as ECS answers a name
  it does not know. The cluster lists them with moto's PutClusterCapacityProviders.

* STS AssumeRole: moto lets any caller assume any role (it never evaluates a trust policy), so
  the refusal a member account gives when its role is missing or does not trust the caller
  cannot happen. A test names the role ARNs to refuse with ``POST /__proxy/sts/refused-roles``
  (``{"roleArns": [ARN, ..]}``), and AssumeRole of those is answered as STS answers a refused
  one: HTTP 403, ``AccessDenied`` ("not authorized to perform: sts:AssumeRole on resource").

Python 3.11 standard library only.
"""

from __future__ import annotations

import hashlib
import json
import threading
import urllib.parse
import uuid

CONTAINER_NUMBERS = ("cpu", "memory", "memoryReservation")
# DeploymentRolloutState in ECS's model.
ROLLOUT_STATES = ("COMPLETED", "FAILED", "IN_PROGRESS")
MAX_ACTIVE_DEPLOYMENTS = 5


def _cluster_name(arn: str) -> str:
    return arn.rsplit("/", 1)[-1] if arn else "default"


def _request(body: bytes) -> dict:
    """An ECS JSON request body as an object; {} when it is not one (the SDK under test sent
    something else, which the model check reports)."""
    try:
        req = json.loads(body or b"{}")
    except ValueError:
        return {}
    return req if isinstance(req, dict) else {}


def _service_key(spec, allowed: set[str]) -> tuple[str, str, str]:
    """(access key, cluster name, service name) of a control request naming one service; raises
    ValueError naming what is wrong (not an object, a key not in ``allowed``, a missing name)."""
    if not isinstance(spec, dict):
        raise ValueError("body must be a JSON object")
    unknown = set(spec) - {"account", "cluster", "service"} - allowed
    if unknown:
        raise ValueError(f"unknown keys {sorted(unknown)}")
    key = []
    for k in ("account", "cluster", "service"):
        v = spec.get(k)
        if not isinstance(v, str) or not v:
            raise ValueError(f"{k} must be a non-empty string")
        key.append(_cluster_name(v) if k == "cluster" else v)
    return key[0], key[1], key[2]


def _service_name(arn_or_name: str) -> str:
    """`arn:aws:ecs:R:A:service/CLUSTER/NAME` or NAME -> NAME."""
    return arn_or_name.rsplit("/", 1)[-1]


def _reason(deployment_id: str, state: str) -> str:
    # The rolloutStateReason texts ECS writes (and moto copies).
    return {
        "COMPLETED": f"ECS deployment {deployment_id} completed.",
        "IN_PROGRESS": f"ECS deployment {deployment_id} in progress.",
        "FAILED": f"ECS deployment {deployment_id} failed.",
    }[state]


def _active_deployment(primary: dict, service: dict, n: int) -> dict:
    """An older deployment whose tasks the PRIMARY one is replacing, as DescribeServices lists it."""
    digest = hashlib.sha256(f"{primary.get('id')}#{n}".encode()).hexdigest()
    dep_id = "ecs-svc/" + str(int(digest[:15], 16))
    created = primary.get("createdAt")
    old = created - 3600 * (n + 1) if isinstance(created, (int, float)) and not isinstance(created, bool) else created
    running = service.get("runningCount", 0)
    d = {k: v for k, v in primary.items() if k not in ("id", "status", "rolloutState", "rolloutStateReason")}
    d.update({"id": dep_id, "status": "ACTIVE", "desiredCount": running, "runningCount": running, "pendingCount": 0,
              "failedTasks": 0, "rolloutState": "COMPLETED", "rolloutStateReason": _reason(dep_id, "COMPLETED")})
    if old is not None:
        d["createdAt"] = d["updatedAt"] = old
    return d


def stringify_container_numbers(doc) -> bool:
    """Turn the numeric fields of every ``containers`` item into strings, in place; True if any."""
    changed = False
    if isinstance(doc, dict):
        for key, child in doc.items():
            if key == "containers" and isinstance(child, list):
                for c in child:
                    if isinstance(c, dict):
                        for f in CONTAINER_NUMBERS:
                            v = c.get(f)
                            if isinstance(v, (int, float)) and not isinstance(v, bool):
                                c[f] = str(v)
                                changed = True
            changed = stringify_container_numbers(child) or changed
    elif isinstance(doc, list):
        for child in doc:
            changed = stringify_container_numbers(child) or changed
    return changed


class MotoCompat:
    """Thread-safe; one per proxy."""

    def __init__(self):
        self._lock = threading.Lock()
        self._run_task_answers: dict[tuple[str, str], tuple[int, list, bytes]] = {}
        # (access key, cluster name, service name) -> {"rolloutState": .., "activeDeployments": n}
        self._rollouts: dict[tuple[str, str, str], dict] = {}
        # (access key, cluster name, service name) -> [ServiceDeployment], as a test gave them
        self._service_deployments: dict[tuple[str, str, str], list] = {}
        # (access key, cluster name, service name) -> deploymentConfiguration, as a test gave it
        self._configurations: dict[tuple[str, str, str], dict] = {}
        # (access key, cluster name) -> {task ARN: ProtectedTask}, as a test gave them
        self._task_protection: dict[tuple[str, str], dict[str, dict]] = {}
        # access key -> {name: CapacityProvider}, as a test gave them
        self._capacity_providers: dict[str, dict[str, dict]] = {}
        # role ARNs whose AssumeRole is refused, as a test gave them
        self._refused_roles: set[str] = set()

    # -- STS: roles whose trust refuses the caller ------------------------------------------
    def set_refused_roles(self, spec) -> dict:
        arns = spec.get("roleArns") if isinstance(spec, dict) else None
        if not isinstance(arns, list) or not all(isinstance(a, str) and a.startswith("arn:") and ":role/" in a for a in arns):
            raise ValueError("roleArns: a list of IAM role ARNs")
        with self._lock:
            self._refused_roles.update(arns)
            return {"refusedRoles": sorted(self._refused_roles)}

    def refused_assume_role(self, body: bytes) -> bytes | None:
        """STS's answer to an AssumeRole of a refused role (query protocol, XML), or None."""
        try:
            form = urllib.parse.parse_qs(body.decode("utf-8"))
        except UnicodeDecodeError:
            return None
        arn = (form.get("RoleArn") or [""])[0]
        with self._lock:
            if arn not in self._refused_roles:
                return None
        return (
            '<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type>'
            "<Code>AccessDenied</Code><Message>User: the caller is not authorized to perform: "
            f"sts:AssumeRole on resource: {arn}</Message></Error><RequestId>{uuid.uuid4()}</RequestId></ErrorResponse>"
        ).encode()

    # -- rollouts a test asks for -------------------------------------------------------------
    def set_rollout(self, spec) -> dict:
        """Show (or, with ``rolloutState`` null, stop showing) a rollout of one service.
        Raises ValueError naming what is wrong."""
        key = _service_key(spec, {"rolloutState", "activeDeployments"})
        state = spec.get("rolloutState")
        active = spec.get("activeDeployments", 0)
        if state is not None and state not in ROLLOUT_STATES:
            raise ValueError(f"rolloutState must be one of {list(ROLLOUT_STATES)} or null")
        if not isinstance(active, int) or isinstance(active, bool) or not 0 <= active <= MAX_ACTIVE_DEPLOYMENTS:
            raise ValueError(f"activeDeployments must be a whole number from 0 to {MAX_ACTIVE_DEPLOYMENTS}")
        with self._lock:
            if state is None:
                self._rollouts.pop(key, None)
            else:
                self._rollouts[key] = {"rolloutState": state, "activeDeployments": active}
        return self.rollouts()

    def rollouts(self) -> dict:
        with self._lock:
            items = sorted(self._rollouts.items())
        return {"rollouts": [{"account": a, "cluster": c, "service": s, **v} for (a, c, s), v in items]}

    # -- service deployment records a test gives ----------------------------------------------
    def set_service_deployments(self, spec) -> dict:
        """Give (or, with an empty list, take away) the deployment records of one service.
        Raises ValueError naming what is wrong."""
        key = _service_key(spec, {"serviceDeployments"})
        records = spec.get("serviceDeployments")
        if not isinstance(records, list) or not all(
                isinstance(r, dict) and isinstance(r.get("serviceDeploymentArn"), str) for r in records):
            raise ValueError("serviceDeployments must be a list of objects with a serviceDeploymentArn")
        with self._lock:
            self._service_deployments[key] = records
        return {"services": len(self._service_deployments)}

    def set_configuration(self, spec) -> dict:
        """Show (or, with ``deploymentConfiguration`` null, stop showing) a service's
        deploymentConfiguration. Raises ValueError naming what is wrong."""
        key = _service_key(spec, {"deploymentConfiguration", "resourceManagementType"})
        config = spec.get("deploymentConfiguration")
        if config is not None and not isinstance(config, dict):
            raise ValueError("deploymentConfiguration must be an object or null")
        managed = spec.get("resourceManagementType")
        if managed not in (None, "ECS", "CUSTOMER"):
            raise ValueError("resourceManagementType must be ECS, CUSTOMER or absent")
        shown = {k: v for k, v in (("deploymentConfiguration", config), ("resourceManagementType", managed)) if v is not None}
        with self._lock:
            if not shown:
                self._configurations.pop(key, None)
            else:
                self._configurations[key] = shown
        return {"services": len(self._configurations)}

    @staticmethod
    def express_update(body: bytes) -> tuple[str, bytes] | None:
        """UpdateExpressGatewayService with a taskDefinitionArn, as the UpdateService moto knows:
        (X-Amz-Target, body), or None when the request is not one this can carry out."""
        req = _request(body)
        arn, td = req.get("serviceArn"), req.get("taskDefinitionArn")
        if not isinstance(arn, str) or not isinstance(td, str) or arn.count("/") != 2:
            return None
        _, cluster, service = arn.split("/")
        return ("AmazonEC2ContainerServiceV20141113.UpdateService",
                json.dumps({"cluster": cluster, "service": service, "taskDefinition": td}).encode())

    @staticmethod
    def express_answer(body: bytes, data: bytes) -> bytes:
        """moto's UpdateService answer as UpdateExpressGatewayService's: the service's ARN and
        cluster (its other members have shapes moto cannot fill)."""
        try:
            svc = json.loads(data).get("service") or {}
        except (ValueError, AttributeError):
            svc = {}
        arn = _request(body).get("serviceArn")
        return json.dumps({"service": {"serviceArn": svc.get("serviceArn", arn), "cluster": svc.get("clusterArn", "")}}).encode()

    # -- task scale-in protection a test gives --------------------------------------------------
    def set_task_protection(self, spec) -> dict:
        """Give (or, with an empty list, take away) the protected tasks of one cluster. Raises
        ValueError naming what is wrong."""
        if not isinstance(spec, dict):
            raise ValueError("body must be a JSON object")
        unknown = set(spec) - {"account", "cluster", "protectedTasks"}
        if unknown:
            raise ValueError(f"unknown keys {sorted(unknown)}")
        for k in ("account", "cluster"):
            if not isinstance(spec.get(k), str) or not spec[k]:
                raise ValueError(f"{k} must be a non-empty string")
        tasks = spec.get("protectedTasks")
        if not isinstance(tasks, list) or not all(
                isinstance(t, dict) and isinstance(t.get("taskArn"), str) and isinstance(t.get("protectionEnabled"), bool)
                for t in tasks):
            raise ValueError("protectedTasks must be a list of objects with a taskArn and a boolean protectionEnabled")
        with self._lock:
            self._task_protection[(spec["account"], _cluster_name(spec["cluster"]))] = {t["taskArn"]: t for t in tasks}
        return {"clusters": len(self._task_protection)}

    def answer_task_protection(self, account: str, action: str, body: bytes) -> bytes | None:
        """The answer to GetTaskProtection from what a test gave (a task given by id matches its
        ARN's last part), or None for other actions."""
        if action != "GetTaskProtection":
            return None
        req = _request(body)
        with self._lock:
            given = dict(self._task_protection.get((account, _cluster_name(req.get("cluster") or "default")), {}))
        by_id = {arn.rsplit("/", 1)[-1]: t for arn, t in given.items()}
        answer = []
        for task in req.get("tasks") or []:
            t = given.get(task) or by_id.get(task.rsplit("/", 1)[-1])
            answer.append(t if t is not None else {"taskArn": task, "protectionEnabled": False})
        return json.dumps({"protectedTasks": answer, "failures": []}).encode()

    # -- capacity providers a test gives --------------------------------------------------------
    def set_capacity_providers(self, spec) -> dict:
        """Give (or, with an empty list, take away) an account's capacity providers. Raises
        ValueError naming what is wrong."""
        if not isinstance(spec, dict):
            raise ValueError("body must be a JSON object")
        unknown = set(spec) - {"account", "capacityProviders"}
        if unknown:
            raise ValueError(f"unknown keys {sorted(unknown)}")
        if not isinstance(spec.get("account"), str) or not spec["account"]:
            raise ValueError("account must be a non-empty string")
        providers = spec.get("capacityProviders")
        if not isinstance(providers, list) or not all(isinstance(p, dict) and isinstance(p.get("name"), str) for p in providers):
            raise ValueError("capacityProviders must be a list of objects with a name")
        with self._lock:
            if providers:
                self._capacity_providers[spec["account"]] = {p["name"]: p for p in providers}
            else:
                self._capacity_providers.pop(spec["account"], None)
        return {"accounts": len(self._capacity_providers)}

    def answer_capacity_providers(self, account: str, action: str, body: bytes) -> bytes | None:
        """The answer to DescribeCapacityProviders from the providers a test gave this account
        (by name or ARN), or None: another action, or an account that gave none (moto answers)."""
        if action != "DescribeCapacityProviders":
            return None
        with self._lock:
            given = dict(self._capacity_providers.get(account, {}))
        if not given:
            return None
        req = _request(body)
        names = req.get("capacityProviders") or list(given)
        found, failures = [], []
        for name in names:
            p = given.get(name) or next((p for p in given.values() if p.get("capacityProviderArn") == name), None)
            if p is None:
                failures.append({"arn": name, "reason": "MISSING"})
            else:
                found.append(p)
        return json.dumps({"capacityProviders": found, "failures": failures}).encode()

    def answer_service_deployments(self, account: str, action: str, body: bytes) -> tuple[int, bytes] | None:
        """(HTTP status, answer) to ListServiceDeployments, DescribeServiceDeployments or
        StopServiceDeployment from the records a test gave (ECS's JSON: newest first for the
        list), or None for other actions."""
        if action not in ("ListServiceDeployments", "DescribeServiceDeployments", "StopServiceDeployment"):
            return None
        req = _request(body)
        with self._lock:
            mine = {k: v for k, v in self._service_deployments.items() if k[0] == account}
        if action == "ListServiceDeployments":
            key = (account, _cluster_name(req.get("cluster") or "default"), _service_name(req.get("service", "")))
            records = sorted(mine.get(key, []), key=lambda r: r.get("createdAt", 0), reverse=True)
            wanted = req.get("status")
            briefs = [{
                "serviceDeploymentArn": r["serviceDeploymentArn"],
                **{k: r[k] for k in ("serviceArn", "clusterArn", "startedAt", "createdAt", "finishedAt",
                                     "status", "statusReason") if k in r},
                **({"targetServiceRevisionArn": r["targetServiceRevision"]["arn"]}
                   if isinstance(r.get("targetServiceRevision"), dict) and "arn" in r["targetServiceRevision"] else {}),
            } for r in records if not wanted or r.get("status") in wanted]
            limit = req.get("maxResults") or 20
            return 200, json.dumps({"serviceDeployments": briefs[:limit]}).encode()
        if action == "StopServiceDeployment":
            # ECS moves the deployment to ROLLBACK_REQUESTED (stopType ROLLBACK, the default) or
            # STOP_REQUESTED (ABORT) (ServiceDeploymentStatus, API reference).
            arn = req.get("serviceDeploymentArn")
            with self._lock:
                found = next((r for records in mine.values() for r in records if r["serviceDeploymentArn"] == arn), None)
                if found is None:
                    return 400, json.dumps({"__type": "ServiceDeploymentNotFoundException",
                                            "message": f"The service deployment {arn} does not exist."}).encode()
                found["status"] = "STOP_REQUESTED" if req.get("stopType") == "ABORT" else "ROLLBACK_REQUESTED"
            return 200, json.dumps({"serviceDeploymentArn": arn}).encode()
        arns = req.get("serviceDeploymentArns") or []
        found = [r for records in mine.values() for r in records if r["serviceDeploymentArn"] in arns]
        missing = [a for a in arns if a not in {r["serviceDeploymentArn"] for r in found}]
        return 200, json.dumps({"serviceDeployments": found, "failures": [
            {"arn": a, "reason": "MISSING", "detail": "service deployment not found"} for a in missing]}).encode()

    def _fix_service(self, account: str, svc) -> bool:
        if not isinstance(svc, dict):
            return False
        with self._lock:
            config = self._configurations.get((account, _cluster_name(svc.get("clusterArn", "")), svc.get("serviceName", "")))
        if config is not None:
            svc.update(config)
            if config.get("resourceManagementType") == "ECS":
                # An Express service reads with an empty taskDefinition (its revision is on its
                # deployments).
                svc["taskDefinition"] = ""
            self._fix_rollout(account, svc)
            return True
        return self._fix_rollout(account, svc)

    def _fix_rollout(self, account: str, svc) -> bool:
        deps = svc.get("deployments")
        controller = (svc.get("deploymentController") or {}).get("type", "ECS")
        if not isinstance(deps, list) or controller != "ECS":
            return False
        primary = next((d for d in deps if isinstance(d, dict) and d.get("status") == "PRIMARY"), None)
        if primary is None:
            return False
        key = (account, _cluster_name(svc.get("clusterArn", "")), svc.get("serviceName", ""))
        with self._lock:
            asked = self._rollouts.get(key)
        if asked is not None:
            state = asked["rolloutState"]
            primary["rolloutState"] = state
            primary["rolloutStateReason"] = _reason(primary.get("id", ""), state)
            deps[:] = [primary] + [_active_deployment(primary, svc, n) for n in range(asked["activeDeployments"])]
            return True
        desired, running, pending = (svc.get(k, 0) for k in ("desiredCount", "runningCount", "pendingCount"))
        steady = len(deps) == 1 and running >= desired and not pending
        if not steady or primary.get("rolloutState") != "IN_PROGRESS":
            return False
        primary["rolloutState"] = "COMPLETED"
        primary["rolloutStateReason"] = _reason(primary.get("id", ""), "COMPLETED")
        primary.update({"desiredCount": desired, "runningCount": running, "pendingCount": 0})
        return True

    def fix_deployments(self, account: str, body: bytes) -> bytes:
        """An ECS JSON answer carrying services (DescribeServices; Create/Update/DeleteService)
        with their deployments as ECS would report them (unchanged otherwise)."""
        if b'"deployments"' not in body:
            return body
        try:
            doc = json.loads(body)
        except ValueError:
            return body
        if not isinstance(doc, dict):
            return body
        services = doc.get("services") if isinstance(doc.get("services"), list) else [doc.get("service")]
        changed = False
        for svc in services:
            changed = self._fix_service(account, svc) or changed
        return json.dumps(doc).encode() if changed else body

    @staticmethod
    def run_task_key(account: str, body: bytes) -> tuple[str, str] | None:
        """(caller, clientToken) of a RunTask request, or None without a token."""
        token = _request(body).get("clientToken")
        return (account, token) if isinstance(token, str) and token else None

    def replay(self, key: tuple[str, str] | None) -> tuple[int, list, bytes] | None:
        if key is None:
            return None
        with self._lock:
            return self._run_task_answers.get(key)

    def remember(self, key: tuple[str, str] | None, status: int, headers: list, body: bytes) -> None:
        if key is not None and status == 200:
            with self._lock:
                self._run_task_answers.setdefault(key, (status, headers, body))

    @staticmethod
    def fix_answer(body: bytes) -> bytes:
        """An ECS JSON answer with its task containers' numbers as strings (unchanged otherwise)."""
        if b'"containers"' not in body:
            return body
        try:
            doc = json.loads(body)
        except ValueError:
            return body
        return json.dumps(doc).encode() if stringify_container_numbers(doc) else body
