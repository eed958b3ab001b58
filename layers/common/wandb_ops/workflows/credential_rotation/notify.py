"""The notification of a run's outcome, from the run's state: names, ARNs and version ids only."""

import json
from typing import Any

from wandb_ops.workflows.credential_rotation.tasks import Outcome, Plan, ReportOutput

SUBJECTS: dict[Outcome, str] = {
    "switched": "W&B database credentials rotated",
    "retire_failed": "W&B credentials rotated; retiring the previous user failed",
    "nothing": "W&B credential rotation: nothing to do",
    "dry_run": "W&B credential rotation: dry run",
    "failed": "W&B credential rotation failed (W&B unchanged)",
    "rolled_back": "W&B credential rotation rolled back",
    "rollback_failed": "URGENT: W&B credential rollback failed",
}


def report(outcome: Outcome, run: dict[str, Any]) -> ReportOutput:
    """Subject and text of the notification. ``run`` is the execution's state as it reached the
    report: any part may be missing (a run that failed before its plan, say)."""
    plan = Plan.model_validate(run.get("plan", {}).get("Payload") or {"mode": "nothing"})
    retired = (run.get("retire") or {}).get("Payload") or {}
    error = _error_text(run.get("error"))
    step = run.get("failed_step", "")
    new = plan.new.version_id if plan.new else None
    old = plan.old.version_id if plan.old else None
    secret = plan.old.secret_arn if plan.old else ""
    deployments = ", ".join(plan.deployments)
    if outcome == "switched":
        text = (
            f"W&B now connects as '{plan.new_user}' ({plan.mode}; secret {plan.new.secret_arn if plan.new else ''}, "
            f"version {new or 'AWSCURRENT'}). Deployments restarted: {deployments}. "
        )
        if retired.get("user"):
            text += f"Previous user '{retired.get('user')}': {retired.get('action')} ({retired.get('reason')})."
        elif plan.mode == "onboard":
            text += (
                f"The master user '{plan.old_user}' is kept for administration: turn on RDS-managed rotation for it "
                "(docs/rotation.md)."
            )
    elif outcome == "retire_failed":
        text = (
            f"W&B now connects as '{plan.new_user}' and works. Retiring the previous user '{plan.old_user}' failed: "
            f"{error}. It still exists: drop it by hand once unused (docs/rotation.md, 'Retire a user by hand')."
        )
    elif outcome == "nothing":
        text = f"Nothing to do: {plan.reason}."
    elif outcome == "dry_run":
        text = (
            f"Dry run, nothing changed. Would {plan.mode}: "
            f"W&B from '{plan.old_user}' to '{plan.new_user or '(new user)'}' "
            f"(secret {secret}), then restart {deployments}, confirm W&B at its /ready and /healthz, and "
            f"{'retire the old user' if plan.retire_old else 'keep the old user'}."
        )
    elif outcome == "failed":
        text = f"Failed before W&B was changed: {error}." + (
            f" W&B still uses '{plan.old_user}'." if plan.old_user else ""
        )
    elif outcome == "rolled_back":
        text = (
            f"Step {step} failed: {error}. Rolled back: W&B is on '{plan.old_user}' again and answers /ready"
            f"{f', AWSCURRENT of {secret} is version {old} again' if plan.restore_current_on_rollback else ''}. "
        )
        if retired.get("user"):
            text += f"Unused new user '{retired.get('user')}': {retired.get('action')} ({retired.get('reason')})."
        elif run.get("retire_error"):
            text += (
                f"Retiring the unused new user '{plan.new_user}' failed: {_error_text(run.get('retire_error'))}; "
                "drop it by hand (docs/rotation.md)."
            )
    else:
        text = (
            f"Step {step or 'of the cut-over'} failed ({error}) and so did the rollback: "
            f"{_error_text(run.get('rollback_error'))}. W&B may be down or on "
            f"'{plan.new_user}'. Act now: docs/rotation.md, 'The rollback failed'. Secret {secret}: old version {old}, "
            f"new version {new}; deployments {deployments}."
        )
    return ReportOutput(outcome=outcome, subject=SUBJECTS[outcome], message=text)


def _error_text(error: Any) -> str:
    if not isinstance(error, dict):
        return "unknown error"
    cause = error.get("Cause") or ""
    try:
        parsed = json.loads(cause)
        cause = parsed.get("errorMessage", cause) if isinstance(parsed, dict) else cause
    except (TypeError, ValueError):
        pass
    return f"{error.get('Error', 'Error')}: {cause}"[:1500].rstrip(".")
