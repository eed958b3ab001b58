"""The KMS rotation policy's settings, from the function environment (the posture report reads
the same variables, with the mode fixed to report)."""

import re
from typing import Any, Literal, Self

from pydantic import field_validator, model_validator

from wandb_ops.access.rds_snapshots import Kind
from wandb_ops.core.settings import DeploymentSettings, from_stack

MIN_PERIOD_DAYS, MAX_PERIOD_DAYS = 90, 2560  # EnableKeyRotation's RotationPeriodInDays
# On-demand rotations per key: 10 in the API reference, 25 in the newer quota page; not adjustable.
MAX_ON_DEMAND_LIMIT = 25
KEY_ARN = re.compile(r"^arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key/[A-Za-z0-9-]+$")

Mode = Literal["report", "enforce"]


class RotationSettings(DeploymentSettings):
    """The deployment (its namespace, bucket and key: ``kms_key_arn`` is the W&B key) and the policy."""

    mode: Mode = from_stack("KMS_ROTATION_MODE", "KmsRotationMode")
    period_days: int = from_stack(
        "KMS_ROTATION_PERIOD_DAYS", "KmsRotationPeriodDays", ge=MIN_PERIOD_DAYS, le=MAX_PERIOD_DAYS
    )
    # 0: the customer's schedule is automatic rotation alone
    on_demand_every_days: int = from_stack("KMS_ON_DEMAND_EVERY_DAYS", "KmsOnDemandRotationDays", ge=0, le=2560)
    on_demand_limit: int = from_stack("KMS_ON_DEMAND_LIMIT", "KmsOnDemandRotationLimit", ge=1, le=MAX_ON_DEMAND_LIMIT)
    # kept for a by-hand rotation after a suspected compromise
    on_demand_reserve: int = from_stack("KMS_ON_DEMAND_RESERVE", "KmsOnDemandRotationReserve", ge=0)
    region: str = from_stack("AWS_REGION", default="us-east-1")  # Lambda sets it
    database_kind: Kind = from_stack("KMS_DATABASE_KIND", "DatabaseKind", "aurora-cluster")
    database_identifier_setting: str | None = from_stack("KMS_DATABASE_IDENTIFIER", "DatabaseIdentifier", None)
    stack_key: str | None = from_stack("KMS_STACK_KEY_ARN", default=None)
    replica_bucket: str | None = from_stack("KMS_REPLICA_BUCKET", "S3ReplicaBucketName", None)
    replica_region_setting: str | None = from_stack("KMS_REPLICA_REGION", "S3ReplicaRegion", None)
    replica_key: str | None = from_stack("KMS_REPLICA_KEY_ARN", "S3ReplicaKmsKeyArn", None)
    dr_key: str | None = from_stack("KMS_DR_KEY_ARN", "SnapshotDrKmsKeyArn", None)
    extra_keys: tuple[str, ...] = from_stack("KMS_ROTATION_EXTRA_KEYS", "KmsRotationKeyArns", ())
    role_arn: str = from_stack("KMS_ROTATION_ROLE_ARN", default="")

    @property
    def database_identifier(self) -> str:
        """terraform-aws-wandb names the database after the namespace unless told otherwise."""
        return self.database_identifier_setting or self.namespace

    @property
    def replica_region(self) -> str:
        return self.replica_region_setting or self.region

    @field_validator("extra_keys", mode="before")
    @classmethod
    def _key_arns(cls, value: Any) -> Any:
        """Comma-separated key ARNs: IAM grants by key ARN, so an alias would be a key it may not touch."""
        if not isinstance(value, str):
            return value
        keys = tuple(part.strip() for part in value.split(",") if part.strip())
        for reference in keys:
            if not KEY_ARN.match(reference):
                raise ValueError(
                    f"give key ARNs (IAM grants by key ARN, not alias), comma-separated: {reference!r} is not one"
                )
        return keys

    @model_validator(mode="after")
    def _reserve_within_limit(self) -> Self:
        if self.on_demand_reserve > self.on_demand_limit:
            raise ValueError(  # the reserve is a share of KmsOnDemandRotationLimit
                f"KMS_ON_DEMAND_RESERVE='{self.on_demand_reserve}': set the stack parameter "
                f"KmsOnDemandRotationReserve to a whole number, 0-{self.on_demand_limit}"
            )
        return self
