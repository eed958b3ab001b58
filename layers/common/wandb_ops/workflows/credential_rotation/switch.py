"""Switching W&B (either way: to the new user, or back to the old one): write the credentials into
W&B's settings, restart its deployments, wait for the rollout (kubectl's rules, rollout.py)."""

from typing import TYPE_CHECKING, Literal

from wandb_ops.core.polling import backoff
from wandb_ops.workflows.credential_rotation.app_secret import credentials
from wandb_ops.workflows.credential_rotation.errors import OperatorNotReconciledError
from wandb_ops.workflows.credential_rotation.rollout import (
    RolloutFailedError,
    refuse_paused,
    restart_patch,
    restarted_for,
    rollout_status,
)
from wandb_ops.workflows.credential_rotation.tasks import ApplyOutput, Plan, RestartOutput, RolloutStatusOutput

if TYPE_CHECKING:
    from wandb_ops.workflows.credential_rotation.steps import Deps


def apply_credentials(plan: Plan, to: Literal["new", "old"], deps: "Deps") -> ApplyOutput:
    """Point W&B's settings at one side of the plan (the password goes to Kubernetes, nowhere else)."""
    secret = credentials(plan.side(to), plan, deps)
    target = deps.wandb()
    changed = target.apply(secret.username, secret.password)
    return ApplyOutput(user=secret.username, changed=changed, target=target.description)


def restart_deployments(plan: Plan, to: Literal["new", "old"], execution: str, deps: "Deps") -> RestartOutput:
    """`kubectl rollout restart` of the plan's deployments, once W&B's pods would start on ``to``."""
    api, namespace = deps.api(), deps.settings.kubernetes_namespace
    secret = credentials(plan.side(to), plan, deps)
    target = deps.wandb()
    if not target.rendered(secret.password):
        raise OperatorNotReconciledError(
            f"{target.description}: the operator has not yet rendered the new settings into the Secret the "
            "pods read; restarting now would start them on the old password"
        )
    # Marks which switch of which run restarted the pods: a retry of this step is a no-op, another run's is not.
    marker = f"{to}:{execution.rsplit(':', 1)[-1]}"
    deployments = [api.get_deployment(namespace, name) for name in plan.deployments]
    refuse_paused(deployments)
    restarted = []
    for deployment in deployments:
        if restarted_for(deployment) != marker:
            api.patch_deployment(namespace, deployment["metadata"]["name"], restart_patch(deps.now(), marker))
            restarted.append(deployment["metadata"]["name"])
    return RestartOutput(restarted=restarted)


def rollout_progress(plan: Plan, attempt: int, deps: "Deps") -> RolloutStatusOutput:
    api, namespace = deps.api(), deps.settings.kubernetes_namespace
    statuses = [rollout_status(api.get_deployment(namespace, name)) for name in plan.deployments]
    pending = [f"{s.name}: {s.detail}" for s in statuses if not s.complete]
    if not pending:
        return RolloutStatusOutput(done=True)
    settings = deps.settings
    poll = backoff(attempt, settings.poll_base_seconds, settings.poll_max_seconds, settings.poll_max_attempts)
    if poll.give_up:
        raise RolloutFailedError(f"rollout not complete after {attempt + 1} checks: {'; '.join(pending)}")
    return RolloutStatusOutput.waiting(poll, pending=pending)
