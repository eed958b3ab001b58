"""Posture items for the KMS keys protecting W&B data: the KMS rotation policy's discovery and
assessment, in report mode (read-only: report mode never changes a key)."""

from datetime import datetime

from wandb_ops.core.errors import ConfigurationError
from wandb_ops.workflows.kms_rotation.assessment import assess_key
from wandb_ops.workflows.kms_rotation.discovery import Clients as RotationClients
from wandb_ops.workflows.kms_rotation.discovery import discover
from wandb_ops.workflows.kms_rotation.settings import RotationSettings
from wandb_ops.workflows.kms_rotation.tasks import Finding, RotationRequest
from wandb_ops.workflows.posture.items import PostureItem, Status, item


def key_items(
    settings: RotationSettings | ConfigurationError, clients: RotationClients, now: datetime
) -> list[PostureItem]:
    """One item per key protecting W&B data, or one failing item when the policy's parameters are
    unusable (the rest of the report still runs)."""
    if isinstance(settings, ConfigurationError):
        return [item("kms.policy", Status.FAIL, str(settings), "correct the stack parameter it names and redeploy")]
    discovery = discover(settings, clients, RotationRequest(mode="report"))
    items = [
        item("kms.discovery", Status(problem.status), f"{problem.where}: {problem.evidence}", problem.fix)
        for problem in discovery.problems
    ]
    for entry in discovery.keys:
        finding = assess_key(settings, clients, entry.key, "report", rotate_now=False, now=now)
        fixes = finding.problems + [guidance.how for guidance in finding.guidance]
        items.append(
            item(
                f"kms.rotation:{finding.key_arn.rsplit('/', 1)[-1]}",
                Status(finding.status),
                f"{finding.key_arn} ({'; '.join(finding.protects)}): {_rotation_state(finding)}",
                "; ".join(fixes) if finding.status != "ok" else "",
            )
        )
    return items


def _rotation_state(finding: Finding) -> str:
    if finding.manager == "AWS":
        return "AWS-managed, rotated by AWS every year"
    if finding.state != "Enabled":
        return f"key {finding.state}"
    if finding.rotation_enabled is None:
        return "rotation state unknown"
    if not finding.rotation_enabled:
        state = "automatic rotation off"
    else:
        state = f"automatic rotation every {finding.period_days} days"
        if finding.next_rotation:
            state += f", next {finding.next_rotation:%Y-%m-%d}"
    if finding.on_demand_used:
        state += f"; {finding.on_demand_used} of {finding.on_demand_limit} on-demand rotations used"
    return state
