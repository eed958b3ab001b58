"""What the KMS rotation steps take and return: the state machine's contract.

discover -> assess (one call per key) -> summary, or, for action copy_aurora_snapshot,
plan_snapshot_copy -> check_snapshot_copy (until the copy is available)."""

from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field, RootModel

from wandb_ops.access.encryption import KEY_REFERENCE
from wandb_ops.core.models import StrictModel
from wandb_ops.core.polling import Poll
from wandb_ops.core.steps import StepOutput
from wandb_ops.workflows.kms_rotation.settings import Mode

Status = Literal["ok", "warn", "fail"]

# ---------------------------------------------------------------- the rotation policy


class RotationRequest(StrictModel):
    """Workflow input. ``mode`` overrides the stack's KmsRotationMode for this run.
    ``rotate_now`` lists keys (ARN or alias) to rotate on demand at once, for a suspected
    compromise: it may use the reserved on-demand rotations, and needs mode enforce."""

    action: Literal["policy"] = "policy"
    mode: Mode | None = None
    rotate_now: list[str] = Field(default_factory=list, max_length=20)
    source: Literal["schedule", "console", "demo", "test"] = "console"


class KeyPlace(StrictModel):
    """A key as discovery found it: its ARN and what it protects."""

    arn: str
    region: str
    protects: list[str]


class Problem(StepOutput):
    """Something discovery could not read or resolve, with the fix."""

    where: str
    status: Status
    evidence: str
    fix: str


class KeyToAssess(StepOutput):
    """One item of the assessment Map: what its assess task is sent (with the execution id)."""

    key: KeyPlace
    mode: Mode
    rotate_now: bool
    action: Literal["assess"] = "assess"


class DiscoverOutput(StepOutput):
    mode: Mode
    keys: list[KeyToAssess]
    problems: list[Problem]


class StatementPrincipal(StepOutput):
    AWS: str


class KeyPolicyStatement(StepOutput):
    """A statement of a key policy, in IAM's own field names."""

    Sid: str
    Effect: str
    Principal: StatementPrincipal
    Action: list[str]
    Resource: str


class Guidance(StepOutput):
    """The key policy statement the customer must add before this stack may act on the key."""

    key_arn: str
    denied_action: str
    statement: KeyPolicyStatement
    how: str


class Rotation(StepOutput):
    date: str
    type: str


class Finding(StepOutput):
    """One key's rotation state, and what enforce mode changed."""

    key_arn: str
    protects: list[str]
    manager: str
    state: str
    status: Status
    rotation_enabled: bool | None = None
    period_days: int | None = None
    next_rotation: datetime | None = None
    last_rotation: datetime | None = None
    recent_rotations: list[Rotation] = Field(default_factory=list)
    on_demand_used: int | None = None
    on_demand_limit: int | None = None
    on_demand_due: bool = False
    changes: list[str] = Field(default_factory=list)
    problems: list[str] = Field(default_factory=list)
    guidance: list[Guidance] = Field(default_factory=list)


class Counts(StepOutput):
    ok: int
    warn: int
    fail: int


class SummaryOutput(StepOutput):
    generated_at: str  # datetime.isoformat(): "+00:00", as the notification and past runs show it
    mode: Mode
    status: Literal["ok", "attention"]
    notify: bool
    counts: Counts
    changes: int
    keys: list[Finding]
    problems: list[Problem]
    text: str


class DiscoverTask(StrictModel):
    action: Literal["discover"]
    input: RotationRequest
    execution: str | None = None


class AssessTask(StrictModel):
    action: Literal["assess"]
    key: KeyPlace
    mode: Mode
    rotate_now: bool = False
    execution: str | None = None


class SummaryTask(StrictModel):
    action: Literal["summary"]
    discovery: DiscoverOutput
    findings: list[Finding]
    execution: str | None = None


# ---------------------------------------------------------------- the re-encrypted Aurora snapshot copy


class SnapshotCopyRequest(StrictModel):
    """Workflow input for the re-encrypted copy: ``kms_key`` (ARN or alias) is the new key.
    ``dry_run`` (the default) only says what would be copied."""

    action: Literal["copy_aurora_snapshot"]
    kms_key: str = Field(pattern=KEY_REFERENCE.pattern)
    dry_run: bool = True
    source: Literal["schedule", "console", "demo", "test"] = "console"


class CopyPlan(StepOutput):
    source_snapshot: str
    source_created: str
    source_key: str | None
    target: str
    kms_key: str
    dry_run: bool


class CopyCheck(Poll):
    ABSENT_WHEN_NONE = frozenset({"kms_key"})

    available: bool
    status: str
    kms_key: str | None = None  # the copy's key: check_copy sets it once the copy is available


class PlanCopyTask(StrictModel):
    action: Literal["plan_snapshot_copy"]
    input: SnapshotCopyRequest
    execution: str | None = None


class CheckCopyTask(StrictModel):
    action: Literal["check_snapshot_copy"]
    target: str = Field(min_length=1, max_length=255)
    attempt: int = Field(default=0, ge=0)
    execution: str | None = None


class KmsTask(
    RootModel[
        Annotated[
            DiscoverTask | AssessTask | SummaryTask | PlanCopyTask | CheckCopyTask,
            Field(discriminator="action"),
        ]
    ]
):
    pass
