"""Posture rules the emulator cannot stage: snapshot ages, access denied, disabled keys."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError

from wandb_ops.core.errors import ConfigurationError
from wandb_ops.core.settings import DeploymentSettings
from wandb_ops.workflows.kms_rotation.discovery import Clients as RotationClients
from wandb_ops.workflows.kms_rotation.settings import RotationSettings
from wandb_ops.workflows.posture.assess import PostureSources, assess
from wandb_ops.workflows.posture.items import Status

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
KEY = "arn:aws:kms:us-east-1:111122223333:key/k"
ENVIRONMENT = {
    "WANDB_NAMESPACE": "wandb",
    "WANDB_BUCKET_NAME": "wandb-file-storage-1a2b",
    "WANDB_KMS_KEY_ARN": KEY,
    "KMS_ROTATION_MODE": "report",
    "KMS_ROTATION_PERIOD_DAYS": "180",
    "KMS_ON_DEMAND_EVERY_DAYS": "0",
    "KMS_ON_DEMAND_LIMIT": "10",
    "KMS_ON_DEMAND_RESERVE": "2",
}
SETTINGS = DeploymentSettings.from_env(ENVIRONMENT)
ROTATION = RotationSettings.from_env(ENVIRONMENT)


def _denied(operation: str) -> ClientError:
    return ClientError({"Error": {"Code": "AccessDeniedException", "Message": "denied"}}, operation)


class FakeRds:
    def __init__(self, snapshot_times: list[datetime]) -> None:
        self.snapshot_times = snapshot_times

    def describe_db_clusters(self, **_: Any) -> dict[str, Any]:
        return {
            "DBClusters": [
                {
                    "Status": "available",
                    "DeletionProtection": True,
                    "BackupRetentionPeriod": 14,
                    "StorageEncrypted": True,
                }
            ]
        }

    def get_paginator(self, _: str) -> "FakeRds":
        return self

    def paginate(self, **_: Any) -> list[dict[str, Any]]:
        return [{"DBClusterSnapshots": [{"SnapshotCreateTime": t} for t in self.snapshot_times]}]


class FakeS3:
    def get_bucket_versioning(self, **_: Any) -> dict[str, Any]:
        return {"Status": "Enabled"}

    def get_bucket_encryption(self, **_: Any) -> dict[str, Any]:
        raise _denied("GetBucketEncryption")


class FakeKms:
    def __init__(self, state: str = "Enabled", deny_rotation_status: bool = False) -> None:
        self.state = state
        self.deny_rotation_status = deny_rotation_status

    def describe_key(self, **_: Any) -> dict[str, Any]:
        return {"KeyMetadata": {"Arn": KEY, "KeyState": self.state, "KeyManager": "CUSTOMER", "CreationDate": NOW}}

    def get_key_rotation_status(self, **_: Any) -> dict[str, Any]:
        if self.deny_rotation_status:
            raise _denied("GetKeyRotationStatus")
        return {"KeyRotationEnabled": True, "RotationPeriodInDays": 180}

    def get_paginator(self, _: str) -> "FakeKms":
        return self

    def paginate(self, **_: Any) -> list[dict[str, Any]]:
        return [{"Rotations": []}]


def _statuses(rds: Any = None, kms: Any = None) -> dict[str, Any]:
    rds, kms = rds or FakeRds([]), kms or FakeKms()
    rotation = RotationClients(kms=lambda _: kms, s3=lambda _: FakeS3(), rds=rds)
    sources = PostureSources(rds=rds, s3=FakeS3(), secretsmanager=None, rotation=rotation)
    return {item.id: item for item in assess(SETTINGS, ROTATION, sources, NOW).items}


@pytest.mark.parametrize(
    ("age", "expected"),
    [(timedelta(hours=3), Status.OK), (timedelta(hours=40), Status.WARN), (timedelta(days=5), Status.FAIL)],
)
def test_snapshot_age_thresholds(age: timedelta, expected: Status) -> None:
    items = _statuses(rds=FakeRds([NOW - timedelta(days=30), NOW - age]))
    assert items["aurora.newest_snapshot"].status is expected


def test_access_denied_is_a_warning_that_names_the_permission() -> None:
    items = _statuses(kms=FakeKms(deny_rotation_status=True))
    assert items["kms.rotation:k"].status is Status.WARN
    assert "kms:GetKeyRotationStatus was denied" in items["kms.rotation:k"].fix
    assert "put-key-policy" in items["kms.rotation:k"].fix
    assert items["s3.encryption"].status is Status.WARN
    assert "s3:GetEncryptionConfiguration" in items["s3.encryption"].fix
    assert items["kms.discovery"].status is Status.WARN  # the bucket's key could not be read either


def test_a_disabled_key_fails_with_the_way_back() -> None:
    items = _statuses(kms=FakeKms(state="PendingDeletion"))
    assert items["kms.rotation:k"].status is Status.FAIL and "cancel-key-deletion" in items["kms.rotation:k"].fix
    assert items["kms.rotation:k"].evidence.endswith("key PendingDeletion")


def test_rotation_period_is_reported() -> None:
    assert "every 180 days" in _statuses()["kms.rotation:k"].evidence


def test_unusable_rotation_parameters_fail_one_item_and_the_report_still_runs() -> None:
    with pytest.raises(ConfigurationError) as refused:
        RotationSettings.from_env({**ENVIRONMENT, "KMS_ON_DEMAND_LIMIT": "10", "KMS_ON_DEMAND_RESERVE": "12"})
    rds, kms = FakeRds([]), FakeKms()
    rotation = RotationClients(kms=lambda _: kms, s3=lambda _: FakeS3(), rds=rds)
    sources = PostureSources(rds=rds, s3=FakeS3(), secretsmanager=None, rotation=rotation)
    items = {item.id: item for item in assess(SETTINGS, refused.value, sources, NOW).items}
    assert items["kms.policy"].status is Status.FAIL and "KmsOnDemandRotationReserve" in items["kms.policy"].evidence
    assert items["aurora.cluster"].status is Status.OK
