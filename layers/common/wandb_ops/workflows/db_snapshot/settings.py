"""The database snapshot workflow's settings, from the function environment."""

from typing import Literal, Self

from pydantic import model_validator

from wandb_ops.access.rds_snapshots import Kind, RetentionPolicy
from wandb_ops.core.settings import StackSettings, from_stack


class SnapshotSettings(StackSettings):
    kind: Kind = from_stack("SNAPSHOT_KIND", "DatabaseKind")
    source: str = from_stack("SNAPSHOT_SOURCE", "Namespace / DatabaseIdentifier")
    region: str = from_stack("AWS_REGION", default="us-east-1")  # Lambda sets it
    deletion_protection: Literal["report", "enforce"] = from_stack("DELETION_PROTECTION_MODE", "DeletionProtectionMode")
    retain_newest: int = from_stack("RETAIN_NEWEST", "SnapshotRetainNewest", ge=0)
    retain_daily: int = from_stack("RETAIN_DAILY", "SnapshotRetainDaily", ge=0)
    retain_weekly: int = from_stack("RETAIN_WEEKLY", "SnapshotRetainWeekly", ge=0)
    retain_monthly: int = from_stack("RETAIN_MONTHLY", "SnapshotRetainMonthly", ge=0)
    quota_action: Literal["prune", "fail"] = from_stack("QUOTA_ACTION", "SnapshotQuotaAction")
    dr_region: str | None = from_stack("SNAPSHOT_DR_REGION", "SnapshotDrRegion", None)
    dr_kms_key_arn: str | None = from_stack("SNAPSHOT_DR_KMS_KEY_ARN", "SnapshotDrKmsKeyArn", None)
    poll_base_seconds: int = from_stack("POLL_BASE_SECONDS", ge=0)
    poll_max_seconds: int = from_stack("POLL_MAX_SECONDS", ge=0)
    poll_max_attempts: int = from_stack("POLL_MAX_ATTEMPTS", ge=0)
    # Every wait loop of a run ends by then (inside the state machine's timeout).
    run_budget_seconds: int = from_stack("POLL_RUN_BUDGET_SECONDS", ge=0)

    @model_validator(mode="after")
    def _dr_copies_need_a_key(self) -> Self:
        if self.dr_region and not self.dr_kms_key_arn:
            raise ValueError("SnapshotDrRegion is set but SnapshotDrKmsKeyArn is empty: give a key in that region")
        return self

    @property
    def policy(self) -> RetentionPolicy:
        return RetentionPolicy(
            newest=self.retain_newest, daily=self.retain_daily, weekly=self.retain_weekly, monthly=self.retain_monthly
        )
