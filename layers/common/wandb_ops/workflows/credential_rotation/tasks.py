"""What the cut-over's steps take and return: the state machine's contract.

The state carries a ``Plan``: secret ARNs, version ids and user names, never a password; no
output model has a field that could hold one (tests/unit/test_cutover_rules.py checks)."""

from typing import Annotated, Any, Literal, Self

from pydantic import ConfigDict, Field, RootModel

from wandb_ops.core.models import StrictModel
from wandb_ops.core.polling import Poll
from wandb_ops.core.steps import SparseOutput, StepOutput


class CutoverRequest(StrictModel):
    """Workflow input. ``rotate``: rotate the secret, then switch W&B. ``switch``: the secret was
    rotated elsewhere (Secrets Manager's schedule, the RotationSucceeded event): switch W&B to it.
    ``onboard``: move W&B off the master user onto a new application user (run once).
    ``dry_run``: check everything and report the plan; change nothing."""

    action: Literal["rotate", "switch", "onboard"] = "rotate"
    dry_run: bool = False
    source: Literal["schedule", "console", "event", "demo", "test"] = "console"


class SecretRef(StrictModel):
    secret_arn: str
    version_id: str | None = None  # None: whatever is AWSCURRENT when read (an RDS-managed master secret)


class Plan(StepOutput):
    """What preflight decided, carried through the run (rotate and onboard fill in the new side)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mode: Literal["rotate", "switch", "onboard", "nothing"]
    dry_run: bool = False
    reason: str = ""
    old: SecretRef | None = None
    new: SecretRef | None = None
    old_user: str = ""
    new_user: str = ""
    restore_current_on_rollback: bool = False
    retire_old: bool = False
    deployments: list[str] = Field(default_factory=list)

    def side(self, to: Literal["new", "old"]) -> SecretRef:
        ref = self.new if to == "new" else self.old
        assert ref, f"the plan has no {to} side"
        return ref


# ---------------------------------------------------------------- outputs


class _LoopOutput(SparseOutput):
    """A step of a wait loop: ``done``, or else the next wait (``backoff``'s Poll, which the state
    machine's Wait state reads). A done step has no next wait and says nothing of it, so this is not
    a Poll (whose fields are always there) but carries a Poll's fields while it waits."""

    ABSENT_WHEN_NONE = frozenset(Poll.model_fields)

    done: bool
    attempt: int | None = None
    wait_seconds: int | None = None
    give_up: bool | None = None

    @classmethod
    def waiting(cls, poll: Poll, **fields: Any) -> Self:
        """Not done yet: check again after ``poll.wait_seconds`` (or give up, as ``poll`` says)."""
        return cls(done=False, **poll.model_dump(), **fields)


class RotationStatusOutput(_LoopOutput):
    pass


class RolloutStatusOutput(_LoopOutput):
    ABSENT_WHEN_NONE = _LoopOutput.ABSENT_WHEN_NONE | {"pending"}

    pending: list[str] | None = None  # "<deployment>: <what it waits for>"


class RestoreCurrentOutput(SparseOutput):
    ABSENT_WHEN_NONE = frozenset({"reason", "current_version"})

    moved: bool
    reason: str | None = None
    current_version: str | None = None


class ApplyOutput(StepOutput):
    user: str
    changed: bool
    target: str  # where W&B reads its credentials, e.g. "WeightsAndBiases default/wandb (...)"


class RestartOutput(StepOutput):
    restarted: list[str]


class ConfirmOutput(StepOutput):
    user: str
    checks: list[str]


class RetireOutput(_LoopOutput):
    """``done``: the user was dropped, locked, kept or already gone (``action``, ``reason``); else it
    still has ``sessions`` and the drain waits ``wait_seconds``."""

    ABSENT_WHEN_NONE = _LoopOutput.ABSENT_WHEN_NONE | {"action", "reason", "sessions"}

    user: str
    action: Literal["dropped", "locked", "kept", "absent"] | None = None
    reason: str | None = None
    sessions: int | None = None


Outcome = Literal["switched", "retire_failed", "nothing", "dry_run", "failed", "rolled_back", "rollback_failed"]


class ReportOutput(StepOutput):
    """The notification: names, ARNs and version ids only."""

    outcome: Outcome
    subject: str
    message: str


# ---------------------------------------------------------------- inputs


class PreflightTask(StrictModel):
    action: Literal["preflight"]
    input: CutoverRequest
    execution: str = Field(min_length=1)


class _PlanStep(StrictModel):
    plan: Plan
    execution: str = ""


class RotateTask(_PlanStep):
    action: Literal["rotate"]


class OnboardTask(_PlanStep):
    action: Literal["onboard"]


class RestoreCurrentTask(_PlanStep):
    action: Literal["restore_current"]


class _PollStep(_PlanStep):
    attempt: int = Field(default=0, ge=0)


class RotationStatusTask(_PollStep):
    action: Literal["rotation_status"]


class RolloutStatusTask(_PollStep):
    action: Literal["rollout_status"]


class _SwitchStep(_PlanStep):
    to: Literal["new", "old"]


class ApplyTask(_SwitchStep):
    action: Literal["apply"]


class RestartTask(_SwitchStep):
    action: Literal["restart"]


class ConfirmTask(_SwitchStep):
    action: Literal["confirm"]


class RetireTask(_PollStep):
    action: Literal["retire"]
    which: Literal["old", "new"]


class ReportTask(StrictModel):
    action: Literal["report"]
    outcome: Outcome
    run: dict[str, Any]  # the execution's state: the report reads what it finds, a missing part included
    execution: str = ""


class CutoverTask(
    RootModel[
        Annotated[
            PreflightTask
            | RotateTask
            | OnboardTask
            | RestoreCurrentTask
            | RotationStatusTask
            | RolloutStatusTask
            | ApplyTask
            | RestartTask
            | ConfirmTask
            | RetireTask
            | ReportTask,
            Field(discriminator="action"),
        ]
    ]
):
    pass
