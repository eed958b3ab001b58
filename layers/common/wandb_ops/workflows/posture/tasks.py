"""What the posture step takes and returns: the state machine's contract. The report holds
account details (resource names, ARNs): the handler never hands it to the tracer."""

from datetime import datetime
from typing import Literal

from wandb_ops.core.models import StrictModel
from wandb_ops.core.steps import StepOutput
from wandb_ops.workflows.posture.items import PostureItem


class PostureRequest(StrictModel):
    """Workflow input. Nothing is required: the deployment comes from the stack parameters."""

    source: Literal["schedule", "console", "demo", "test"] = "console"


class PostureTask(StrictModel):
    action: Literal["assess"] = "assess"  # the only step; events/posture.json does not name it
    input: PostureRequest
    execution: str | None = None


class PostureSummary(StepOutput):
    ok: int
    warn: int
    fail: int


class PostureReport(StepOutput):
    """The report as stored in the work bucket."""

    generated_at: datetime
    namespace: str
    summary: PostureSummary
    items: list[PostureItem]
    text: str


class PostureOutput(PostureReport):
    """The report as the state machine gets it: where it is stored, and ``text`` ends saying so."""

    location: str
