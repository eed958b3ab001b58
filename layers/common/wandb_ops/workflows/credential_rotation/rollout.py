"""`kubectl rollout restart` and `kubectl rollout status`, on Deployment JSON (docs/rotation.md)."""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from wandb_ops.core.errors import WandbOpsError

RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
RESTART_FOR = "wandb-ops/restart-for"  # the secret version a restart switched to: makes a retried restart a no-op


class PausedDeploymentError(WandbOpsError):
    """A paused Deployment would not roll out: refuse before changing anything."""


class RolloutFailedError(WandbOpsError):
    """A rollout hit its progress deadline or did not finish within the workflow's bound."""


@dataclass(frozen=True)
class RolloutStatus:
    name: str
    complete: bool
    detail: str


def refuse_paused(deployments: list[dict[str, Any]]) -> None:
    paused = [d["metadata"]["name"] for d in deployments if d.get("spec", {}).get("paused")]
    if paused:
        names = ", ".join(paused)
        raise PausedDeploymentError(
            f"deployment(s) {names} are paused: a restart would not roll out. Resume them "
            f"(kubectl rollout resume deployment/<name>) or finish what paused them, then re-run"
        )


def restarted_for(deployment: dict[str, Any]) -> str | None:
    annotations = deployment.get("spec", {}).get("template", {}).get("metadata", {}).get("annotations") or {}
    value = annotations.get(RESTART_FOR)
    return str(value) if value is not None else None


def restart_patch(now: datetime, restart_for: str) -> dict[str, Any]:
    """The patch `kubectl rollout restart` applies, plus which switch it was for."""
    annotations = {RESTARTED_AT: now.isoformat(timespec="seconds").replace("+00:00", "Z"), RESTART_FOR: restart_for}
    return {"spec": {"template": {"metadata": {"annotations": annotations}}}}


def rollout_status(deployment: dict[str, Any]) -> RolloutStatus:
    """kubectl's completion rules; a progress deadline exceeded is a failure, not a wait."""
    name = deployment["metadata"]["name"]
    spec, status = deployment.get("spec", {}), deployment.get("status", {})
    # Until the controller has seen the newest spec, its conditions describe an older rollout
    # (a stale ProgressDeadlineExceeded right after a rollback's restart, for instance).
    if status.get("observedGeneration", 0) < deployment["metadata"].get("generation", 0):
        return RolloutStatus(name, False, "waiting for the rollout to be observed")
    for condition in status.get("conditions") or []:
        if condition.get("type") == "Progressing" and condition.get("reason") == "ProgressDeadlineExceeded":
            raise RolloutFailedError(
                f"deployment {name} exceeded its progress deadline: {condition.get('message', '')}"
            )
    wanted = spec.get("replicas", 1)
    updated = status.get("updatedReplicas", 0)
    replicas = status.get("replicas", 0)
    available = status.get("availableReplicas", 0)
    if updated < wanted:
        return RolloutStatus(name, False, f"{updated} of {wanted} new replicas updated")
    if replicas > updated:
        return RolloutStatus(name, False, f"{replicas - updated} old replicas pending termination")
    if available < updated:
        return RolloutStatus(name, False, f"{available} of {updated} updated replicas available")
    return RolloutStatus(name, True, f"successfully rolled out ({updated} replicas)")
