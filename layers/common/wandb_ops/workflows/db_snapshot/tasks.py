"""What the database snapshot workflow's steps take and return: the state machine's contract."""

from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field, RootModel

from wandb_ops.access.rds_snapshots import Kind
from wandb_ops.core.models import StrictModel
from wandb_ops.core.polling import Poll
from wandb_ops.core.steps import SparseOutput, StepOutput

SNAPSHOT_ID = Field(min_length=1, max_length=63)

# ---------------------------------------------------------------- outputs


class DeletionProtection(StepOutput):
    was_on: bool
    enforced: bool
    mode: Literal["report", "enforce"]


class Quota(SparseOutput):
    """The manual snapshot quota before the new snapshot: a note when it cannot be known or does
    not matter, else what is used of it, and what was pruned first to make room."""

    ABSENT_WHEN_NONE = frozenset({"note", "used", "max", "pruned_first"})

    note: str | None = None
    used: int | None = None
    max: int | None = None
    pruned_first: list[str] | None = None


class PreflightOutput(SparseOutput):
    """The run's slot and snapshot name, and whether the database is ready; once it is, what
    deletion protection and the quota looked like."""

    ABSENT_WHEN_NONE = frozenset({"deletion_protection", "quota"})

    slot: str
    snapshot_id: str
    dry_run: bool
    dr: bool
    source_status: str
    attempt: int
    wait_seconds: int
    give_up: bool
    deletion_protection: DeletionProtection | None = None
    quota: Quota | None = None
    ready: bool


class CreateOutput(StepOutput):
    snapshot_id: str
    created: bool


class CheckOutput(Poll):
    available: bool
    status: str


class CopyOutput(Poll):
    """The DR copy started (``copy_id``), or waits for a free copy slot (``in_flight`` copies)."""

    ABSENT_WHEN_NONE = frozenset({"copy_id", "in_flight"})

    started: bool
    copy_id: str | None = None
    in_flight: int | None = None


class BriefSnapshot(StepOutput):
    id: str
    slot: str | None
    size_gib: int


class RegionRetention(SparseOutput):
    """What retention kept and deleted in one region (``would_delete`` in a dry run)."""

    ABSENT_WHEN_NONE = frozenset({"deleted", "would_delete"})

    kept: int
    deleted: list[BriefSnapshot] | None = None
    would_delete: list[BriefSnapshot] | None = None

    def removed(self) -> list[BriefSnapshot]:
        return self.deleted or self.would_delete or []


class RetentionOutput(SparseOutput):
    ABSENT_WHEN_NONE = frozenset({"dr"})

    dry_run: bool
    source: RegionRetention
    dr: RegionRetention | None = None


class DescribedSnapshot(StepOutput):
    id: str
    arn: str
    status: str
    size_gib: int
    created: str | None


class SummaryOutput(StepOutput):
    database: str
    kind: Kind
    slot: str
    snapshot: DescribedSnapshot | None
    dr_copy: DescribedSnapshot | None
    deletion_protection: DeletionProtection | None
    quota: Quota | None
    retention: RetentionOutput
    deleted_count: int
    would_delete_count: int


# ---------------------------------------------------------------- inputs


class SnapshotRequest(StrictModel):
    """Workflow input. ``slot`` (ISO 8601) names the run; a schedule passes its scheduled time,
    a manual run defaults to the current minute. ``dry_run`` lists what retention would delete."""

    slot: str | None = Field(
        default=None, pattern=r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?$"
    )
    dry_run: bool = False
    source: Literal["schedule", "console", "demo", "test"] = "console"


class PreflightTask(StrictModel):
    action: Literal["preflight"]
    input: SnapshotRequest
    attempt: int = Field(default=0, ge=0)
    started: datetime | None = None  # the run's start ($$.Execution.StartTime): bounds all its waits
    execution: str | None = None


class CreateTask(StrictModel):
    action: Literal["create"]
    snapshot_id: Annotated[str, SNAPSHOT_ID]
    slot: str
    execution: str | None = None


class CheckTask(StrictModel):
    action: Literal["check"]
    snapshot_id: Annotated[str, SNAPSHOT_ID]
    region: Literal["source", "dr"] = "source"
    attempt: int = Field(default=0, ge=0)
    started: datetime | None = None
    execution: str | None = None


class CopyTask(StrictModel):
    action: Literal["copy"]
    snapshot_id: Annotated[str, SNAPSHOT_ID]
    slot: str
    attempt: int = Field(default=0, ge=0)
    started: datetime | None = None
    execution: str | None = None


class RetentionTask(StrictModel):
    action: Literal["retention"]
    snapshot_id: Annotated[str, SNAPSHOT_ID]
    dry_run: bool = False
    execution: str | None = None


class SummaryRun(StrictModel):
    """What the run's earlier steps returned."""

    preflight: PreflightOutput
    retention: RetentionOutput


class SummaryTask(StrictModel):
    action: Literal["summary"]
    run: SummaryRun
    execution: str | None = None


class SnapshotTask(
    RootModel[
        Annotated[
            PreflightTask | CreateTask | CheckTask | CopyTask | RetentionTask | SummaryTask,
            Field(discriminator="action"),
        ]
    ]
):
    pass
