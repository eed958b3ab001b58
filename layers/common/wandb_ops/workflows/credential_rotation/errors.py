"""The cut-over's errors: the state machine retries or catches them by these class names."""

from wandb_ops.core.errors import WandbOpsError


class CutoverError(WandbOpsError):
    """The cut-over cannot go on; the message says what was found and what to do."""


class RotationFailedError(WandbOpsError):
    """The Secrets Manager rotation failed or did not finish in time; W&B was not touched."""


class OperatorNotReconciledError(WandbOpsError):
    """The W&B operator has not caught up with the resource yet; the state machine retries."""


class DrainTimeoutError(WandbOpsError):
    """The old user still has sessions after the drain's bound; it is kept as it is."""


class HealthCheckFailedError(WandbOpsError):
    """W&B does not work on the credentials it was just given (the state machine rolls back)."""
