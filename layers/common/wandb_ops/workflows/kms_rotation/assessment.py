"""One key against the rotation policy: read its rotation state and, in ``enforce`` mode, turn
automatic rotation on with the chosen period and rotate on demand when the customer's schedule
says a rotation is due, never past the on-demand quota. A denied call becomes guidance (the key
policy statement to add), not an error."""

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from wandb_ops.core.aws import ACCESS_DENIED_CODES, error_code
from wandb_ops.workflows.kms_rotation.discovery import Clients
from wandb_ops.workflows.kms_rotation.key_policy import CHANGE_ACTIONS, READ_ACTIONS, denied_fix, key_policy_statement
from wandb_ops.workflows.kms_rotation.settings import Mode, RotationSettings
from wandb_ops.workflows.kms_rotation.tasks import Finding, Guidance, KeyPlace, KeyPolicyStatement, Rotation, Status

RECENT_ROTATIONS = 5


class _Denied(Exception):
    def __init__(self, action: str, error: ClientError) -> None:
        super().__init__(action)
        self.action, self.error = action, error


def _guidance(settings: RotationSettings, key: str, denied: _Denied, mode: Mode) -> Guidance:
    actions = READ_ACTIONS + (CHANGE_ACTIONS if mode == "enforce" else ())
    fix = denied_fix(denied.error, key, (denied.action,))
    return Guidance(
        key_arn=key,
        denied_action=denied.action,
        statement=KeyPolicyStatement.model_validate(key_policy_statement(settings.role_arn, actions)),
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


def assess_key(
    settings: RotationSettings, clients: Clients, place: KeyPlace, mode: Mode, *, rotate_now: bool, now: datetime
) -> Finding:
    """Read one key's rotation state; in enforce mode, bring it to the policy."""
    kms = clients.kms(place.region)
    try:
        metadata = _call("kms:DescribeKey", lambda: kms.describe_key(KeyId=place.arn)["KeyMetadata"])
    except _Denied as denied:
        finding = Finding(key_arn=place.arn, protects=place.protects, manager="unknown", state="unknown", status="warn")
        _note_denied(settings, finding, denied, mode)
        return finding
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
        return finding
    if finding.state != "Enabled":
        finding.status = "fail"
        finding.problems.append(
            f"the key is {finding.state}: data encrypted with it cannot be read, and it cannot rotate; "
            "enable it (aws kms enable-key) or cancel its deletion (aws kms cancel-key-deletion)"
        )
        return finding
    if (reason := _rotatable(metadata)) is not None:
        finding.status = "warn"
        finding.problems.append(f"the key cannot rotate: {reason}")
        return finding
    try:
        _assess_rotation(
            settings, kms, finding, mode, rotate_now=rotate_now, created=metadata.get("CreationDate"), now=now
        )
    except _Denied as denied:
        _note_denied(settings, finding, denied, mode)
    return finding


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
    settings: RotationSettings,
    kms: Any,
    finding: Finding,
    mode: Mode,
    *,
    rotate_now: bool,
    created: datetime | None,
    now: datetime,
) -> None:
    key = finding.key_arn
    status = _call("kms:GetKeyRotationStatus", lambda: kms.get_key_rotation_status(KeyId=key))
    rotations = _call("kms:ListKeyRotations", lambda: _rotations(kms, key))
    finding.rotation_enabled = bool(status.get("KeyRotationEnabled"))
    finding.period_days = status.get("RotationPeriodInDays")
    finding.next_rotation = status.get("NextRotationDate")
    finding.recent_rotations = [
        Rotation(date=r["RotationDate"].isoformat(), type=r["RotationType"]) for r in rotations[-RECENT_ROTATIONS:]
    ]
    finding.on_demand_used = sum(1 for r in rotations if r["RotationType"] == "ON_DEMAND")
    finding.on_demand_limit = settings.on_demand_limit
    finding.last_rotation = rotations[-1]["RotationDate"] if rotations else created
    in_progress = status.get("OnDemandRotationStartDate")
    if rotate_now:
        # An emergency rotation comes first: a denied policy change must not stop it.
        if in_progress is None:
            _rotate_on_demand(
                kms, finding, settings.on_demand_limit, allowed=settings.on_demand_limit, why="rotate_now"
            )
        try:
            _apply_automatic_rotation(settings, kms, mode, finding)
        except _Denied as denied:
            _note_denied(settings, finding, denied, mode)
    else:
        _apply_automatic_rotation(settings, kms, mode, finding)
    if in_progress is not None:
        finding.problems.append(f"an on-demand rotation started {in_progress.isoformat()} is still in progress")
        return
    if rotate_now:
        return
    if not settings.on_demand_every_days or finding.last_rotation is None:
        return
    age = now - finding.last_rotation
    if age < timedelta(days=settings.on_demand_every_days):
        return
    finding.on_demand_due = True
    every = settings.on_demand_every_days
    why = f"the last rotation was {age.days} days ago and the schedule asks for one every {every}"
    if mode == "report":
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
