"""What the terraform state backup's steps take and return: the state machine's contract."""

from typing import Annotated, Literal

from pydantic import Field, RootModel, model_validator

from wandb_ops.access.terraform_state.backup import Anomaly, Outcome
from wandb_ops.core.models import StrictModel
from wandb_ops.core.steps import StepOutput

# S3's characters (legacy us-east-1 names included): the name is echoed in the run's output.
_BUCKET_NAME = r"^[A-Za-z0-9._-]{3,63}$"


class BackupRequest(StrictModel):
    """Workflow input: one object (from the S3 event rule, or by hand), or a sweep of every source."""

    sweep: bool = False
    bucket: str | None = Field(default=None, pattern=_BUCKET_NAME)
    key: str | None = Field(default=None, min_length=1, max_length=1024)
    source: Literal["event", "schedule", "console", "demo", "test"] = "console"

    @model_validator(mode="after")
    def _one_target(self) -> "BackupRequest":
        if self.sweep == bool(self.bucket and self.key):
            raise ValueError('give either "sweep": true, or both "bucket" and "key" of one state object')
        return self


class StateObjectInput(StrictModel):
    bucket: str = Field(pattern=_BUCKET_NAME)
    key: str = Field(min_length=1, max_length=1024)
    workspace: str = Field(pattern=r"^(backend|intake)/[A-Za-z0-9_.-]{1,90}$")


class IgnoredKey(StrictModel):
    key: str
    reason: str


class PlanOutput(StepOutput):
    objects: list[StateObjectInput]
    ignored: list[IgnoredKey]


class BackupOutput(StepOutput):
    """One state object's outcome: never its content; the keys, serial and size only."""

    workspace: str
    source_key: str
    outcome: Outcome
    detail: str
    anomaly: Anomaly | None
    backup_key: str | None
    serial: int | None
    lineage: str | None
    size: int | None


class ReportOutput(StepOutput):
    stored: int
    duplicate: int
    anomaly_count: int
    ignored: list[IgnoredKey]
    results: list[BackupOutput]
    text: str


class PlanTask(StrictModel):
    action: Literal["plan"]
    input: BackupRequest
    execution: str | None = None


class BackupTask(StrictModel):
    action: Literal["backup"]
    object: StateObjectInput
    execution: str | None = None


class ReportTask(StrictModel):
    action: Literal["report"]
    results: list[BackupOutput]
    ignored: list[IgnoredKey] = Field(default_factory=list)
    execution: str | None = None


class TfStateTask(RootModel[Annotated[PlanTask | BackupTask | ReportTask, Field(discriminator="action")]]):
    pass
