"""KMS key rotation policy for the keys that protect W&B data.

discover -> assess (one call per key) -> summary. Discovery reads which keys protect the
W&B bucket, the database, this stack's backups and replica (plus any the customer lists)
and resolves aliases to key ARNs. Assessment reads each key's rotation state and, in
``enforce`` mode, turns automatic rotation on with the chosen period and rotates on demand
when the customer's schedule says a rotation is due, never past the on-demand quota.

terraform-aws-wandb creates its key with rotation off and a key policy that lets only the
terraform caller change it (docs/kms-rotation.md): a denied call becomes the exact key policy
statement to add, not an error.
"""

import json
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from botocore.exceptions import ClientError
from pydantic import BaseModel, Field

from wandb_ops.access.encryption import KEY_REFERENCE, bucket_default_key
from wandb_ops.core.aws import ACCESS_DENIED_CODES, error_code
from wandb_ops.core.errors import ConfigurationError, InvalidInputError
from wandb_ops.core.models import StrictModel
from wandb_ops.core.settings import DeploymentSettings, whole_number

MIN_PERIOD_DAYS, MAX_PERIOD_DAYS = 90, 2560  # EnableKeyRotation's RotationPeriodInDays
# On-demand rotations per key: 10 in the API reference, 25 in the newer quota page; not adjustable.
MAX_ON_DEMAND_LIMIT = 25
RECENT_ROTATIONS = 5
READ_ACTIONS = ("kms:DescribeKey", "kms:GetKeyRotationStatus", "kms:ListKeyRotations")
CHANGE_ACTIONS = ("kms:EnableKeyRotation", "kms:RotateKeyOnDemand")
KEY_ARN = re.compile(r"^arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key/[A-Za-z0-9-]+$")
ARN_REGION = re.compile(r"^arn:aws[a-z-]*:kms:([a-z0-9-]+):")

Mode = Literal["report", "enforce"]
Status = Literal["ok", "warn", "fail"]


@dataclass(frozen=True)
class RotationSettings:
    mode: Mode
    period_days: int
    on_demand_every_days: int  # 0: the customer's schedule is automatic rotation alone
    on_demand_limit: int
    on_demand_reserve: int  # kept for a by-hand rotation after a suspected compromise
    region: str
    namespace: str
    database_kind: str
    database_identifier: str
    bucket_name: str
    wandb_key: str
    stack_key: str
    replica_bucket: str
    replica_region: str
    replica_key: str | None
    dr_key: str | None
    extra_keys: tuple[str, ...]
    role_arn: str

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "RotationSettings":
        env = os.environ if environ is None else environ
        deployment = DeploymentSettings.from_env(env)
        mode = env.get("KMS_ROTATION_MODE", "")
        if mode not in ("report", "enforce"):
            raise ConfigurationError(
                f"KMS_ROTATION_MODE={mode!r}: set the stack parameter KmsRotationMode to report or enforce"
            )
        limit = whole_number(env, "KMS_ON_DEMAND_LIMIT", "KmsOnDemandRotationLimit", 1, MAX_ON_DEMAND_LIMIT)
        extra = tuple(part.strip() for part in env.get("KMS_ROTATION_EXTRA_KEYS", "").split(",") if part.strip())
        for reference in extra:
            if not KEY_ARN.match(reference):
                raise ConfigurationError(
                    f"KmsRotationKeyArns holds {reference!r}: give key ARNs (IAM grants by key ARN, not alias), "
                    "comma-separated"
                )
        region = env.get("AWS_REGION", "us-east-1")
        return cls(
            mode=mode,  # type: ignore[arg-type]
            period_days=whole_number(
                env, "KMS_ROTATION_PERIOD_DAYS", "KmsRotationPeriodDays", MIN_PERIOD_DAYS, MAX_PERIOD_DAYS
            ),
            on_demand_every_days=whole_number(env, "KMS_ON_DEMAND_EVERY_DAYS", "KmsOnDemandRotationDays", 0, 2560),
            on_demand_limit=limit,
            on_demand_reserve=whole_number(env, "KMS_ON_DEMAND_RESERVE", "KmsOnDemandRotationReserve", 0, limit),
            region=region,
            namespace=deployment.namespace,
            database_kind=env.get("KMS_DATABASE_KIND", "aurora-cluster"),
            database_identifier=env.get("KMS_DATABASE_IDENTIFIER", "").strip() or deployment.namespace,
            bucket_name=deployment.bucket_name,
            wandb_key=deployment.kms_key_arn,
            stack_key=env.get("KMS_STACK_KEY_ARN", "").strip(),
            replica_bucket=env.get("KMS_REPLICA_BUCKET", "").strip(),
            replica_region=env.get("KMS_REPLICA_REGION", "").strip() or region,
            replica_key=env.get("KMS_REPLICA_KEY_ARN", "").strip() or None,
            dr_key=env.get("KMS_DR_KEY_ARN", "").strip() or None,
            extra_keys=extra,
            role_arn=env.get("KMS_ROTATION_ROLE_ARN", "").strip(),
        )


@dataclass(frozen=True)
class Clients:
    kms: Callable[[str], Any]  # region -> KMS client: keys live in the region of their ARN
    s3: Callable[[str], Any]
    rds: Any

    @classmethod
    def from_factory(cls, client: Callable[[str, str], Any], region: str) -> "Clients":
        """From a (service, region) -> client factory; RDS in the deployment's region."""
        return cls(kms=lambda at: client("kms", at), s3=lambda at: client("s3", at), rds=client("rds", region))


# ---------------------------------------------------------------- inputs


class RotationRequest(StrictModel):
    """Workflow input. ``mode`` overrides the stack's KmsRotationMode for this run.
    ``rotate_now`` lists keys (ARN or alias) to rotate on demand at once, for a suspected
    compromise: it may use the reserved on-demand rotations, and needs mode enforce."""

    action: Literal["policy"] = "policy"
    mode: Mode | None = None
    rotate_now: list[str] = Field(default_factory=list, max_length=20)
    source: Literal["schedule", "console", "demo", "test"] = "console"


class KeyPlace(StrictModel):
    """A key as discovery found it: its ARN and what it protects."""

    arn: str
    region: str
    protects: list[str]


class Problem(BaseModel):
    """Something discovery could not read or resolve, with the fix."""

    where: str
    status: Status
    evidence: str
    fix: str


class DiscoverTask(StrictModel):
    action: Literal["discover"]
    input: RotationRequest
    execution: str | None = None


class AssessTask(StrictModel):
    action: Literal["assess"]
    key: KeyPlace
    mode: Mode
    rotate_now: bool = False


class SummaryTask(StrictModel):
    action: Literal["summary"]
    discovery: dict[str, Any]
    findings: list[dict[str, Any]]


# ---------------------------------------------------------------- discovery


def region_of(reference: str, default: str) -> str:
    found = ARN_REGION.match(reference)
    return found.group(1) if found else default


def _database_key(rds: Any, kind: str, identifier: str) -> str | None:
    if kind == "aurora-cluster":
        found = rds.describe_db_clusters(DBClusterIdentifier=identifier)["DBClusters"][0]
    else:
        found = rds.describe_db_instances(DBInstanceIdentifier=identifier)["DBInstances"][0]
    return found.get("KmsKeyId") if found.get("StorageEncrypted") else None


def _read(where: str, problems: list[Problem], read: Callable[[], str | None], action: str) -> str | None:
    """A discovery read; what fails becomes a problem in the report rather than a failed run."""
    try:
        return read()
    except ClientError as exc:
        code = error_code(exc)
        if code in ACCESS_DENIED_CODES:
            problems.append(
                Problem(
                    where=where,
                    status="warn",
                    evidence=f"{action} was denied, so the key that protects it is unknown",
                    fix=f"allow {action} for this stack's KMS rotation role (docs/kms-rotation.md)",
                )
            )
        else:
            problems.append(Problem(where=where, status="fail", evidence=f"{action} failed: {code}", fix=str(exc)))
        return None


def discover(settings: RotationSettings, clients: Clients, task: DiscoverTask) -> dict[str, Any]:
    """Which keys protect W&B data, each once, by ARN, with everything it protects."""
    request = task.input
    mode = request.mode or settings.mode
    if request.rotate_now and mode != "enforce":
        raise InvalidInputError(
            'field \'rotate_now\' rotates keys: add "mode": "enforce" to the input to confirm, or drop it'
        )
    for reference in request.rotate_now:
        if not KEY_REFERENCE.match(reference):
            raise InvalidInputError(
                f"field 'rotate_now' holds {reference!r}: give a key ARN, alias ARN or alias/<name>"
            )
    problems: list[Problem] = []
    s3_here = clients.s3(settings.region)
    named: list[tuple[str, str | None, str]] = [
        ("the W&B key (stack parameter KmsKeyArn)", settings.wandb_key, settings.region),
        (
            f"W&B bucket {settings.bucket_name} (default encryption)",
            _read(
                f"W&B bucket {settings.bucket_name}",
                problems,
                lambda: bucket_default_key(s3_here, settings.bucket_name),
                "s3:GetEncryptionConfiguration",
            ),
            settings.region,
        ),
        (
            f"database {settings.database_identifier} (storage encryption)",
            _read(
                f"database {settings.database_identifier}",
                problems,
                lambda: _database_key(clients.rds, settings.database_kind, settings.database_identifier),
                "rds:DescribeDBClusters" if settings.database_kind == "aurora-cluster" else "rds:DescribeDBInstances",
            ),
            settings.region,
        ),
        ("this stack's key (tfstate backups, logs, work files)", settings.stack_key or None, settings.region),
        ("S3 replica copies (stack parameter S3ReplicaKmsKeyArn)", settings.replica_key, settings.replica_region),
        ("database DR snapshot copies (stack parameter SnapshotDrKmsKeyArn)", settings.dr_key, settings.region),
        *(("listed in stack parameter KmsRotationKeyArns", key, settings.region) for key in settings.extra_keys),
    ]
    if settings.replica_bucket and not settings.replica_key:
        s3_replica = clients.s3(settings.replica_region)
        replica_default = _read(
            f"replica bucket {settings.replica_bucket}",
            problems,
            lambda: bucket_default_key(s3_replica, settings.replica_bucket),
            "s3:GetEncryptionConfiguration",
        )
        named.append(
            (f"replica bucket {settings.replica_bucket} (default encryption)", replica_default, settings.replica_region)
        )
    keys: dict[str, KeyPlace] = {}
    for protects, configured, default_region in named:
        if not configured:
            continue
        region = region_of(configured, default_region)
        arn = _resolve(clients.kms(region), configured, protects, problems, settings.role_arn)
        if arn is None:
            continue
        place = keys.setdefault(arn, KeyPlace(arn=arn, region=region, protects=[]))
        if protects not in place.protects:
            place.protects.append(protects)
    rotate_now: list[str] = []
    for reference in request.rotate_now:
        unresolved: list[Problem] = []
        kms = clients.kms(region_of(reference, settings.region))
        arn = _resolve(kms, reference, "rotate_now", unresolved, settings.role_arn)
        if arn is None:
            raise InvalidInputError(f"field 'rotate_now': {unresolved[0].evidence}; {unresolved[0].fix}")
        if arn not in keys:
            raise InvalidInputError(
                f"field 'rotate_now' names {reference}, which protects no W&B data this stack knows of: "
                "add it to the stack parameter KmsRotationKeyArns first"
            )
        rotate_now.append(arn)
    return {
        "mode": mode,
        "keys": [
            {
                "key": place.model_dump(),
                # A rotate_now run changes only the keys it names; the others get the stack's mode.
                "mode": mode if not rotate_now or place.arn in rotate_now else settings.mode,
                "rotate_now": place.arn in rotate_now,
                "action": "assess",
            }
            for place in keys.values()
        ],
        "problems": [problem.model_dump() for problem in problems],
    }


def _resolve(kms: Any, reference: str, protects: str, problems: list[Problem], role_arn: str) -> str | None:
    """The key ARN behind an ARN, key id or alias (DescribeKey resolves aliases)."""
    try:
        return str(kms.describe_key(KeyId=reference)["KeyMetadata"]["Arn"])
    except ClientError as exc:
        code = error_code(exc)
        if code == "NotFoundException":
            problems.append(
                Problem(
                    where=protects,
                    status="fail",
                    evidence=f"key {reference} does not exist",
                    fix="correct the stack parameter that names it, or restore the key if it was deleted",
                )
            )
            return None
        if code in ACCESS_DENIED_CODES:
            problems.append(
                Problem(
                    where=protects,
                    status="warn",
                    evidence=f"kms:DescribeKey on {reference} was denied, so the key is not assessed",
                    fix=_denied_fix(exc, reference, ("kms:DescribeKey",), key_policy_statement(role_arn, READ_ACTIONS)),
                )
            )
            return None
        raise


# ---------------------------------------------------------------- assessment


class Guidance(BaseModel):
    """The key policy statement the customer must add before this stack may act on the key."""

    key_arn: str
    denied_action: str
    statement: dict[str, Any]
    how: str


class Finding(BaseModel):
    key_arn: str
    protects: list[str]
    manager: str
    state: str
    status: Status
    rotation_enabled: bool | None = None
    period_days: int | None = None
    next_rotation: datetime | None = None
    last_rotation: datetime | None = None
    recent_rotations: list[dict[str, str]] = Field(default_factory=list)
    on_demand_used: int | None = None
    on_demand_limit: int | None = None
    on_demand_due: bool = False
    changes: list[str] = Field(default_factory=list)
    problems: list[str] = Field(default_factory=list)
    guidance: list[Guidance] = Field(default_factory=list)


class _Denied(Exception):
    def __init__(self, action: str, error: ClientError) -> None:
        super().__init__(action)
        self.action, self.error = action, error


def key_policy_statement(role_arn: str, actions: tuple[str, ...]) -> dict[str, Any]:
    return {
        "Sid": "AllowWandbOpsKeyRotation",
        "Effect": "Allow",
        "Principal": {"AWS": role_arn or "<the KmsRotationFunctionRoleArn stack output>"},
        "Action": list(actions),
        "Resource": "*",  # in a key policy, "*" is the key itself
    }


def _denied_fix(error: ClientError, key: str, actions: tuple[str, ...], statement: dict[str, Any] | None = None) -> str:
    message = str(error.response.get("Error", {}).get("Message", ""))
    if "identity-based policy" in message:
        return (
            f"this stack's role is not granted {', '.join(actions)} on {key}: add the key ARN to the stack parameter "
            "KmsRotationKeyArns and redeploy"
        )
    what = f"this statement: {json.dumps(statement)}" if statement else "the statement in 'guidance'"
    return (
        f"the key policy of {key} does not let this stack's role use {', '.join(actions)}: add {what} to the key "
        "policy (docs/kms-rotation.md)"
    )


def _guidance(settings: RotationSettings, key: str, denied: _Denied, mode: Mode) -> Guidance:
    actions = READ_ACTIONS + (CHANGE_ACTIONS if mode == "enforce" else ())
    fix = _denied_fix(denied.error, key, (denied.action,))
    return Guidance(
        key_arn=key,
        denied_action=denied.action,
        statement=key_policy_statement(settings.role_arn, actions),
        how=(
            f"{fix}. With terraform-aws-wandb only the terraform caller may edit the key policy: "
            f"aws kms get-key-policy --key-id {key} --policy-name default --query Policy --output text > policy.json, "
            "add the statement to its Statement list, then aws kms put-key-policy --key-id "
            f"{key} --policy-name default --policy file://policy.json"
        ),
    )


def _call(action: str, call: Callable[[], Any]) -> Any:
    try:
        return call()
    except ClientError as exc:
        if error_code(exc) in ACCESS_DENIED_CODES:
            raise _Denied(action, exc) from exc
        raise


def _rotatable(metadata: dict[str, Any]) -> str | None:
    """Why the key's material cannot rotate (KMS developer guide, "Rotating AWS KMS keys"), or None."""
    if metadata.get("KeySpec", "SYMMETRIC_DEFAULT") != "SYMMETRIC_DEFAULT":
        return f"it is a {metadata['KeySpec']} key; only symmetric encryption keys rotate"
    if metadata.get("Origin", "AWS_KMS") != "AWS_KMS":
        return f"its key material comes from {metadata['Origin']}; rotate by moving to a new key"
    if metadata.get("MultiRegionConfiguration", {}).get("MultiRegionKeyType") == "REPLICA":
        primary = metadata["MultiRegionConfiguration"]["PrimaryKey"]["Arn"]
        return f"it is a multi-Region replica; rotation is set on the primary key {primary}"
    return None


def assess(settings: RotationSettings, clients: Clients, task: AssessTask, now: datetime) -> dict[str, Any]:
    """Read one key's rotation state; in enforce mode, bring it to the policy."""
    place = task.key
    kms = clients.kms(place.region)
    try:
        metadata = _call("kms:DescribeKey", lambda: kms.describe_key(KeyId=place.arn)["KeyMetadata"])
    except _Denied as denied:
        finding = Finding(key_arn=place.arn, protects=place.protects, manager="unknown", state="unknown", status="warn")
        return _denied_finding(settings, finding, denied, task.mode)
    finding = Finding(
        key_arn=place.arn,
        protects=place.protects,
        manager=metadata.get("KeyManager", "CUSTOMER"),
        state=metadata.get("KeyState", "unknown"),
        status="ok",
    )
    if finding.manager == "AWS":
        finding.rotation_enabled, finding.period_days = True, 365
        finding.problems.append(
            "AWS-managed key: AWS rotates it every year and nobody can change that; "
            "for a rotation schedule of your own, use a customer-managed key (kms_key_alias in terraform-aws-wandb)"
        )
        return finding.model_dump(mode="json")
    if finding.state != "Enabled":
        finding.status = "fail"
        finding.problems.append(
            f"the key is {finding.state}: data encrypted with it cannot be read, and it cannot rotate; "
            "enable it (aws kms enable-key) or cancel its deletion (aws kms cancel-key-deletion)"
        )
        return finding.model_dump(mode="json")
    if (reason := _rotatable(metadata)) is not None:
        finding.status = "warn"
        finding.problems.append(f"the key cannot rotate: {reason}")
        return finding.model_dump(mode="json")
    try:
        _assess_rotation(settings, kms, task, finding, created=metadata.get("CreationDate"), now=now)
    except _Denied as denied:
        return _denied_finding(settings, finding, denied, task.mode)
    return finding.model_dump(mode="json")


def _denied_finding(settings: RotationSettings, finding: Finding, denied: _Denied, mode: Mode) -> dict[str, Any]:
    _note_denied(settings, finding, denied, mode)
    return finding.model_dump(mode="json")


def _note_denied(settings: RotationSettings, finding: Finding, denied: _Denied, mode: Mode) -> None:
    finding.status = _worse(finding.status, "fail" if denied.action in CHANGE_ACTIONS else "warn")
    finding.problems.append(f"{denied.action} was denied on this key")
    finding.guidance.append(_guidance(settings, finding.key_arn, denied, mode))


def _rotations(kms: Any, key: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for page in kms.get_paginator("list_key_rotations").paginate(KeyId=key):
        found.extend(page.get("Rotations", []))
    return sorted(found, key=lambda rotation: rotation["RotationDate"])


def _assess_rotation(
    settings: RotationSettings, kms: Any, task: AssessTask, finding: Finding, *, created: datetime | None, now: datetime
) -> None:
    key = finding.key_arn
    status = _call("kms:GetKeyRotationStatus", lambda: kms.get_key_rotation_status(KeyId=key))
    rotations = _call("kms:ListKeyRotations", lambda: _rotations(kms, key))
    finding.rotation_enabled = bool(status.get("KeyRotationEnabled"))
    finding.period_days = status.get("RotationPeriodInDays")
    finding.next_rotation = status.get("NextRotationDate")
    finding.recent_rotations = [
        {"date": r["RotationDate"].isoformat(), "type": r["RotationType"]} for r in rotations[-RECENT_ROTATIONS:]
    ]
    finding.on_demand_used = sum(1 for r in rotations if r["RotationType"] == "ON_DEMAND")
    finding.on_demand_limit = settings.on_demand_limit
    finding.last_rotation = rotations[-1]["RotationDate"] if rotations else created
    in_progress = status.get("OnDemandRotationStartDate")
    if task.rotate_now:
        # An emergency rotation comes first: a denied policy change must not stop it.
        if in_progress is None:
            _rotate_on_demand(
                kms, finding, settings.on_demand_limit, allowed=settings.on_demand_limit, why="rotate_now"
            )
        try:
            _apply_automatic_rotation(settings, kms, task.mode, finding)
        except _Denied as denied:
            _note_denied(settings, finding, denied, task.mode)
    else:
        _apply_automatic_rotation(settings, kms, task.mode, finding)
    if in_progress is not None:
        finding.problems.append(f"an on-demand rotation started {in_progress.isoformat()} is still in progress")
        return
    if task.rotate_now:
        return
    if not settings.on_demand_every_days or finding.last_rotation is None:
        return
    age = now - finding.last_rotation
    if age < timedelta(days=settings.on_demand_every_days):
        return
    finding.on_demand_due = True
    every = settings.on_demand_every_days
    why = f"the last rotation was {age.days} days ago and the schedule asks for one every {every}"
    if task.mode == "report":
        finding.status = _worse(finding.status, "warn")
        finding.problems.append(f"an on-demand rotation is due: {why}; enforce mode would rotate now")
        return
    allowed = settings.on_demand_limit - settings.on_demand_reserve
    _rotate_on_demand(kms, finding, settings.on_demand_limit, allowed=allowed, why=why)


def _apply_automatic_rotation(settings: RotationSettings, kms: Any, mode: Mode, finding: Finding) -> None:
    wanted = settings.period_days
    if finding.rotation_enabled and finding.period_days == wanted:
        return
    if finding.rotation_enabled:
        gap = f"automatic rotation runs every {finding.period_days} days, the policy says {wanted}"
    else:
        gap = "automatic rotation is off (terraform-aws-wandb creates its key that way)"
    if mode == "report":
        finding.status = _worse(finding.status, "warn" if finding.rotation_enabled else "fail")
        finding.problems.append(f"{gap}; enforce mode would set it to every {wanted} days")
        return
    _call(
        "kms:EnableKeyRotation",
        lambda: kms.enable_key_rotation(KeyId=finding.key_arn, RotationPeriodInDays=wanted),
    )
    finding.changes.append(f"{gap}: automatic rotation set to every {wanted} days")
    finding.rotation_enabled, finding.period_days = True, wanted
    refreshed = kms.get_key_rotation_status(KeyId=finding.key_arn)
    finding.next_rotation = refreshed.get("NextRotationDate")


def _rotate_on_demand(kms: Any, finding: Finding, limit: int, *, allowed: int, why: str) -> None:
    """Rotate unless that would use more than ``allowed`` of the key's on-demand rotations."""
    used = finding.on_demand_used or 0
    if used >= allowed:
        finding.status = "fail"
        finding.problems.append(
            f"an on-demand rotation is wanted ({why}) but refused: {used} of the key's {limit} "
            f"on-demand rotations are used and {limit - allowed} are kept for a suspected "
            "compromise (KmsOnDemandRotationReserve); KMS never allows more per key. Lengthen "
            "KmsOnDemandRotationDays or set it to 0 to rely on automatic rotation, or move W&B to a new key "
            "and re-encrypt (docs/kms-rotation.md)"
        )
        return
    try:
        _call("kms:RotateKeyOnDemand", lambda: kms.rotate_key_on_demand(KeyId=finding.key_arn))
    except ClientError as exc:
        if error_code(exc) not in ("LimitExceededException", "ConflictException"):
            raise
        finding.status = "fail"
        finding.problems.append(f"KMS refused the on-demand rotation ({error_code(exc)}): {exc}")
        return
    finding.changes.append(f"rotated on demand: {why} ({used + 1} of {limit} used)")
    finding.on_demand_used = used + 1
    finding.on_demand_due = False


def _worse(current: Status, other: Status) -> Status:
    order: list[Status] = ["ok", "warn", "fail"]
    return max(current, other, key=order.index)


# ---------------------------------------------------------------- summary


def summary(task: SummaryTask, now: datetime) -> dict[str, Any]:
    findings = [Finding.model_validate(f) for f in task.findings]
    problems = [Problem.model_validate(p) for p in task.discovery.get("problems", [])]
    statuses = [f.status for f in findings] + [p.status for p in problems]
    counts = {status: statuses.count(status) for status in ("ok", "warn", "fail")}
    changes = sum(len(f.changes) for f in findings)
    mode = task.discovery["mode"]
    lines = [
        f"KMS rotation ({mode}): {len(findings)} keys, {counts['fail']} fail, {counts['warn']} warn, {changes} changes",
        "",
    ]
    for finding in findings:
        lines.append(f"[{finding.status.upper()}] {finding.key_arn} ({'; '.join(finding.protects)})")
        lines += [f"    changed: {change}" for change in finding.changes]
        lines += [f"    {problem}" for problem in finding.problems]
        lines += [f"    add to the key policy: {guidance.statement}" for guidance in finding.guidance]
    for problem in problems:
        lines.append(f"[{problem.status.upper()}] {problem.where}: {problem.evidence}\n    fix: {problem.fix}")
    return {
        "generated_at": now.isoformat(),
        "mode": mode,
        "status": "attention" if counts["fail"] or counts["warn"] else "ok",
        "notify": bool(counts["fail"] or changes),
        "counts": counts,
        "changes": changes,
        "keys": [f.model_dump(mode="json") for f in findings],
        "problems": [p.model_dump() for p in problems],
        "text": "\n".join(lines),
    }
