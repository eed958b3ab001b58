"""The Secrets Manager side: start this run's rotation, wait for its version to become AWSCURRENT,
and (rolling back) move AWSCURRENT back to the version W&B is on again."""

from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from wandb_ops.core.aws import error_code
from wandb_ops.core.polling import backoff
from wandb_ops.workflows.credential_rotation.app_secret import app_secret
from wandb_ops.workflows.credential_rotation.errors import RotationFailedError
from wandb_ops.workflows.credential_rotation.tasks import Plan, RestoreCurrentOutput, RotationStatusOutput

if TYPE_CHECKING:
    from wandb_ops.workflows.credential_rotation.steps import Deps


def start_rotation(plan: Plan, deps: "Deps") -> Plan:
    assert plan.old and plan.new and plan.new.version_id
    described = app_secret(deps)
    token = plan.new.version_id
    if token in described.get("VersionIdsToStages", {}):
        return plan  # a retry: the rotation was started already
    # Name the function every time (AWS accepts the one already configured; the emulator forgets
    # it otherwise); set a schedule only when rotation is off (AWS needs one to turn it on).
    extra: dict[str, Any] = {"RotationLambdaARN": deps.settings.rotation_function_arn}
    if not described.get("RotationEnabled"):
        extra["RotationRules"] = {"AutomaticallyAfterDays": deps.settings.rotation_days}
    try:
        deps.secretsmanager.rotate_secret(
            SecretId=plan.old.secret_arn, ClientRequestToken=token, RotateImmediately=True, **extra
        )
    except ClientError as exc:
        raise RotationFailedError(
            f"Secrets Manager did not rotate {plan.old.secret_arn}: {error_code(exc)}: "
            f"{exc.response.get('Error', {}).get('Message', '')}. W&B was not changed"
        ) from None
    return plan


def rotation_progress(plan: Plan, attempt: int, deps: "Deps") -> RotationStatusOutput:
    assert plan.new and plan.new.version_id
    stages = app_secret(deps).get("VersionIdsToStages", {})
    labels = stages.get(plan.new.version_id)
    if labels is None:
        raise RotationFailedError(f"version {plan.new.version_id} does not exist: the rotation did not start")
    if "AWSCURRENT" in labels:
        return RotationStatusOutput(done=True)
    settings = deps.settings
    poll = backoff(attempt, settings.poll_base_seconds, settings.poll_max_seconds, settings.poll_max_attempts)
    if poll.give_up:
        raise RotationFailedError(
            f"version {plan.new.version_id} is still {labels} after {attempt + 1} checks: the rotation failed or "
            "hangs. Read the rotation function's log; W&B was not changed (docs/rotation.md, 'A rotation failed')"
        )
    return RotationStatusOutput.waiting(poll)


def move_current_back(plan: Plan, deps: "Deps") -> RestoreCurrentOutput:
    """Roll back Secrets Manager: AWSCURRENT on the old version again (W&B is back on it)."""
    if not plan.restore_current_on_rollback or not plan.old or not plan.new or not plan.new.version_id:
        return RestoreCurrentOutput(moved=False, reason="this run did not change AWSCURRENT")
    stages = app_secret(deps).get("VersionIdsToStages", {})
    new_labels = stages.get(plan.new.version_id, [])
    moved = False
    if "AWSCURRENT" in new_labels:
        deps.secretsmanager.update_secret_version_stage(
            SecretId=plan.old.secret_arn,
            VersionStage="AWSCURRENT",
            MoveToVersionId=plan.old.version_id,
            RemoveFromVersionId=plan.new.version_id,
        )
        moved = True
    if "AWSPENDING" in new_labels:
        deps.secretsmanager.update_secret_version_stage(
            SecretId=plan.old.secret_arn, VersionStage="AWSPENDING", RemoveFromVersionId=plan.new.version_id
        )
    return RestoreCurrentOutput(moved=moved, current_version=plan.old.version_id)
