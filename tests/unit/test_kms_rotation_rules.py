"""Rules of the KMS rotation policy and the re-encrypted snapshot copy that need no emulator."""

from datetime import UTC, datetime
from typing import Any

import pytest

from wandb_ops.access.rds_snapshots import MAX_IDENTIFIER
from wandb_ops.core.errors import ConfigurationError
from wandb_ops.core.polling import backoff
from wandb_ops.workflows.kms_rotation.aurora_copy import check_copy, target_identifier
from wandb_ops.workflows.kms_rotation.discovery import region_of
from wandb_ops.workflows.kms_rotation.key_policy import key_policy_statement
from wandb_ops.workflows.kms_rotation.settings import RotationSettings

ENVIRONMENT = {
    "WANDB_NAMESPACE": "wandb",
    "WANDB_BUCKET_NAME": "wandb-file-storage-1a2b",
    "WANDB_KMS_KEY_ARN": "arn:aws:kms:us-east-1:111122223333:key/k",
    "KMS_ROTATION_MODE": "report",
    "KMS_ROTATION_PERIOD_DAYS": "365",
    "KMS_ON_DEMAND_EVERY_DAYS": "0",
    "KMS_ON_DEMAND_LIMIT": "10",
    "KMS_ON_DEMAND_RESERVE": "2",
}


@pytest.mark.parametrize("cluster", ["wandb", "a" * 63, "my-team-wandb-production-cluster-eu-west-1"])
def test_the_copy_name_is_a_valid_rds_identifier_for_any_cluster(cluster: str) -> None:
    name = target_identifier(cluster, "us-east-1", datetime(2026, 11, 27, 3, 0, tzinfo=UTC), "0499b247-a440-4f8c")
    assert name.startswith("wandb-ops-reenc-202611270300-0499b247-") and len(name) <= MAX_IDENTIFIER
    assert "--" not in name and not name.endswith("-") and name[0].isalpha()


def test_clusters_whose_names_differ_only_past_the_cut_get_distinct_copy_names() -> None:
    """Two stacks' snapshots of the same minute, copied under one new key: each finds its own copy."""
    created = datetime(2026, 11, 27, 3, 0, tzinfo=UTC)
    first, second = (
        target_identifier(f"wandb-research-platform-production-eu-0{n}", "us-east-1", created, "0499b247-a440")
        for n in (1, 2)
    )
    assert first != second


@pytest.mark.parametrize(
    ("variable", "value", "parameter"),
    [
        ("KMS_ROTATION_MODE", "sometimes", "KmsRotationMode"),
        ("KMS_ROTATION_PERIOD_DAYS", "30", "KmsRotationPeriodDays"),
        ("KMS_ON_DEMAND_LIMIT", "26", "KmsOnDemandRotationLimit"),
        ("KMS_ON_DEMAND_RESERVE", "11", "KmsOnDemandRotationReserve"),
        ("KMS_ROTATION_EXTRA_KEYS", "alias/wandb", "KmsRotationKeyArns"),
    ],
)
def test_unusable_parameters_are_named(variable: str, value: str, parameter: str) -> None:
    with pytest.raises(ConfigurationError, match=parameter):
        RotationSettings.from_env({**ENVIRONMENT, variable: value})


def test_keys_live_in_the_region_of_their_arn() -> None:
    assert region_of("arn:aws:kms:eu-west-1:111122223333:key/k", "us-east-1") == "eu-west-1"
    assert region_of("alias/wandb-kms-alias", "us-east-1") == "us-east-1"


def test_the_statement_names_the_role_or_says_where_to_find_it() -> None:
    assert key_policy_statement("arn:aws:iam::1:role/r", ("kms:DescribeKey",))["Principal"] == {
        "AWS": "arn:aws:iam::1:role/r"
    }
    assert "KmsRotationFunctionRoleArn" in key_policy_statement("", ())["Principal"]["AWS"]


class _OneSnapshot:
    """describe_db_cluster_snapshots of an RDS that holds one snapshot, as it is now."""

    def __init__(self, **snapshot: str) -> None:
        self.snapshot = snapshot

    def describe_db_cluster_snapshots(self, **_: Any) -> dict[str, Any]:
        return {"DBClusterSnapshots": [self.snapshot]}


def test_the_copy_check_names_the_key_only_once_the_copy_is_available() -> None:
    """The JSON the state machine gets: no ``kms_key`` (not even null) while the copy is being made."""
    poll = backoff(0, 60, 900, 120).model_dump()
    copying = check_copy(_OneSnapshot(Status="copying", KmsKeyId="arn:aws:kms:us-east-1:1:key/new"), "copy", 0)
    assert copying.model_dump(mode="json") == {**poll, "available": False, "status": "copying"}
    available = check_copy(_OneSnapshot(Status="available", KmsKeyId="arn:aws:kms:us-east-1:1:key/new"), "copy", 0)
    assert available.model_dump(mode="json") == {
        **poll,
        "available": True,
        "status": "available",
        "kms_key": "arn:aws:kms:us-east-1:1:key/new",
    }
