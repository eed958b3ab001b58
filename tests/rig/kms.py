"""KMS rotation behaviour the emulator lacks, added to the in-process moto server, as the
AWS KMS API reference describes it (EnableKeyRotation, GetKeyRotationStatus,
RotateKeyOnDemand, ListKeyRotations; developer guide "Rotating AWS KMS keys"):

- EnableKeyRotation takes ``RotationPeriodInDays`` (90-2560, default 365); moto drops it.
  GetKeyRotationStatus answers the period and ``NextRotationDate``; moto answers only
  whether rotation is on.
- Neither call works on an AWS-managed key (AWS rotates those yearly; the status says so),
  nor on a key that is not Enabled, nor on keys that cannot rotate (asymmetric, HMAC,
  imported material, custom key store).
- A key created by CloudFormation keeps its KeyPolicy as a dict, on which every later call
  fails (moto's policy check parses a string); it is stored as JSON, as KMS does, with the
  template's RotationPeriodInDays. moto also makes every such key a symmetric encryption key:
  it gets the template's KeySpec and KeyUsage (an HMAC key generates MACs).
- RotateKeyOnDemand is limited per key (``ON_DEMAND_ROTATION_QUOTA``: 10 in the API
  reference, 25 in the newer quota page; not adjustable) and refuses a key whose previous
  on-demand rotation is still in progress; moto allows any number.

The emulator has no clock of its own, so tests move a key through time with ``age_key``
and mark AWS-managed keys with ``make_aws_managed`` (only AWS services create those).
"""

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from moto.core.exceptions import JsonRESTError
from moto.kms.models import Key, kms_backends
from moto.kms.responses import KmsResponse

ON_DEMAND_ROTATION_QUOTA = 10
DEFAULT_PERIOD_DAYS = 365
_ROTATABLE_ORIGIN = "AWS_KMS"


def _key(response: KmsResponse) -> Key:
    return response.kms_backend.describe_key(response._get_param("KeyId"))


def _refuse_unless_rotatable(key: Key, action: str) -> None:
    if key.key_manager == "AWS":
        raise JsonRESTError("UnsupportedOperationException", f"{action} is not supported on AWS managed key {key.arn}")
    if key.key_state != "Enabled":
        error = "DisabledException" if key.key_state == "Disabled" else "KMSInvalidStateException"
        raise JsonRESTError(error, f"{key.arn} is {key.key_state}")
    if key.key_spec != "SYMMETRIC_DEFAULT" or key.origin != _ROTATABLE_ORIGIN:
        raise JsonRESTError("UnsupportedOperationException", f"{key.arn} does not support rotation")


def _now() -> datetime:
    return datetime.now(UTC)


def _enabled_at(key: Key) -> datetime:
    return getattr(key, "rotation_enabled_at", None) or _now()


def _enable_key_rotation(self: KmsResponse) -> str:
    key = _key(self)
    _refuse_unless_rotatable(key, "EnableKeyRotation")
    period = self._get_param("RotationPeriodInDays", DEFAULT_PERIOD_DAYS)
    if not 90 <= int(period) <= 2560:
        raise JsonRESTError(
            "ValidationException", f"RotationPeriodInDays {period} is not within 90 and 2560 (inclusive)"
        )
    if not key.key_rotation_status:
        key.rotation_enabled_at = _now()  # type: ignore[attr-defined]
    key.key_rotation_status = True
    key.rotation_period_days = int(period)  # type: ignore[attr-defined]
    return json.dumps(None)


def _get_key_rotation_status(self: KmsResponse) -> str:
    key = _key(self)
    if key.key_manager == "AWS":
        return json.dumps({"KeyId": key.arn, "KeyRotationEnabled": True, "RotationPeriodInDays": 365})
    status: dict[str, Any] = {"KeyId": key.arn, "KeyRotationEnabled": bool(key.key_rotation_status)}
    if key.key_rotation_status:
        period = getattr(key, "rotation_period_days", DEFAULT_PERIOD_DAYS)
        automatic = [r["RotationDate"] for r in key.rotations if r["RotationType"] == "AUTOMATIC"]
        last = max([_enabled_at(key).timestamp(), *automatic])
        status["RotationPeriodInDays"] = period
        status["NextRotationDate"] = (datetime.fromtimestamp(last, UTC) + timedelta(days=period)).timestamp()
    started = getattr(key, "on_demand_started", None)
    if started is not None:
        status["OnDemandRotationStartDate"] = started
    return json.dumps(status)


def _rotate_key_on_demand(self: KmsResponse) -> str:
    key = _key(self)
    _refuse_unless_rotatable(key, "RotateKeyOnDemand")
    if getattr(key, "on_demand_started", None) is not None:
        raise JsonRESTError("ConflictException", f"an on-demand rotation of {key.arn} is already in progress")
    used = sum(1 for r in key.rotations if r["RotationType"] == "ON_DEMAND")
    if used >= ON_DEMAND_ROTATION_QUOTA:
        raise JsonRESTError(
            "LimitExceededException",
            f"{key.arn} has been rotated on demand {used} times, the maximum ({ON_DEMAND_ROTATION_QUOTA})",
        )
    # The emulator completes the rotation at once (AWS takes a short while).
    key.rotations.append({"KeyId": key.id, "RotationDate": _now().timestamp(), "RotationType": "ON_DEMAND"})
    return json.dumps({"KeyId": key.id})


_original_create_from_cloudformation = Key.create_from_cloudformation_json.__func__  # type: ignore[attr-defined]


@classmethod  # type: ignore[misc]
def _create_from_cloudformation(
    cls: type[Key], resource_name: str, cloudformation_json: Any, *args: Any, **kwargs: Any
) -> Key:
    key: Key = _original_create_from_cloudformation(cls, resource_name, cloudformation_json, *args, **kwargs)
    properties = cloudformation_json["Properties"]
    if isinstance(key.policy, dict):
        key.policy = json.dumps(key.policy)
    # moto makes every CloudFormation key a symmetric encryption key; KMS honours KeySpec and KeyUsage.
    key.key_spec = properties.get("KeySpec", key.key_spec)
    key.key_usage = properties.get("KeyUsage", key.key_usage)
    if key.key_rotation_status:
        key.rotation_enabled_at = _now()  # type: ignore[attr-defined]
        key.rotation_period_days = int(properties.get("RotationPeriodInDays", DEFAULT_PERIOD_DAYS))  # type: ignore[attr-defined]
    return key


def install() -> None:
    Key.create_from_cloudformation_json = _create_from_cloudformation  # type: ignore[method-assign,assignment]
    KmsResponse.enable_key_rotation = _enable_key_rotation  # type: ignore[method-assign]
    KmsResponse.get_key_rotation_status = _get_key_rotation_status  # type: ignore[method-assign]
    KmsResponse.rotate_key_on_demand = _rotate_key_on_demand  # type: ignore[method-assign]


# ---------------------------------------------------------------- test controls


def backend_key(key_arn: str) -> Key:
    _, _, _, region, account, resource = key_arn.split(":", 5)
    return kms_backends[account][region].describe_key(resource.split("/", 1)[1])


def make_aws_managed(key_arn: str) -> None:
    backend_key(key_arn).key_manager = "AWS"


def age_key(key_arn: str, days: float) -> None:
    """Move the key's creation, rotation enablement and past rotations ``days`` into the past."""
    key = backend_key(key_arn)
    shift = timedelta(days=days).total_seconds()
    key.creation_date -= shift
    if getattr(key, "rotation_enabled_at", None) is not None:
        key.rotation_enabled_at -= timedelta(days=days)  # type: ignore[attr-defined]
    for rotation in key.rotations:
        rotation["RotationDate"] -= shift


def add_past_rotations(key_arn: str, rotation_type: str, count: int) -> None:
    """Rotations of ``rotation_type`` (AUTOMATIC or ON_DEMAND) done before now, one a day."""
    key = backend_key(key_arn)
    start = _now() - timedelta(days=count + 1)
    for day in range(count):
        date = (start + timedelta(days=day)).timestamp()
        key.rotations.append({"KeyId": key.id, "RotationDate": date, "RotationType": rotation_type})
