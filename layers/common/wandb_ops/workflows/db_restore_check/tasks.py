"""What the restore check's steps take and return: the state machine's contract."""

from typing import Annotated, Literal

from pydantic import Field, RootModel

from wandb_ops.core.models import StrictModel
from wandb_ops.core.polling import Poll
from wandb_ops.core.steps import StepOutput

# With this stack's id; without one, as a run started before an update named it (refused clearly).
IDENTIFIER = Field(pattern=r"^wandb-ops-check-([0-9a-f]{8}-)?\d{12}$")


class RestoreCheckRequest(StrictModel):
    """Workflow input: ``slot`` names the run (and its temporary database); default: this minute."""

    slot: str | None = Field(default=None, pattern=r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}")
    source: Literal["schedule", "console", "demo", "test"] = "console"


class StartTask(StrictModel):
    action: Literal["start"]
    input: RestoreCheckRequest
    execution: str | None = None


class CheckTask(StrictModel):
    action: Literal["check"]
    identifier: Annotated[str, IDENTIFIER]
    attempt: int = Field(default=0, ge=0)
    execution: str | None = None


class QueryTask(StrictModel):
    action: Literal["query"]
    identifier: Annotated[str, IDENTIFIER]
    execution: str | None = None


class CleanupTask(StrictModel):
    action: Literal["cleanup"]
    identifier: Annotated[str, IDENTIFIER]
    execution: str | None = None


class RestoreTask(RootModel[Annotated[StartTask | CheckTask | QueryTask | CleanupTask, Field(discriminator="action")]]):
    pass


class StartOutput(StepOutput):
    """The temporary database, the snapshot restored into it, and the first check's attempt."""

    identifier: str
    snapshot: str
    snapshot_slot: str | None
    attempt: int


class CheckOutput(Poll):
    available: bool


class QueryOutput(StepOutput):
    """The sanity query's first value (at most 200 characters) and how long it took."""

    result: str | None
    seconds: float


class CleanupOutput(StepOutput):
    deleted: list[str]
