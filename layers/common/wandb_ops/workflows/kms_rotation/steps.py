"""The KMS rotation steps: discover (which keys protect W&B data), assess (one key against the
policy, changing it in enforce mode), summary (the report the state machine notifies); and the
re-encrypted Aurora snapshot copy: plan (and start) it, check until it is available."""

from dataclasses import dataclass
from typing import Self

from aws_lambda_powertools.metrics import MetricUnit

from wandb_ops.core import aws
from wandb_ops.core.clock import utcnow
from wandb_ops.core.observability import logger, metrics
from wandb_ops.core.steps import Steps
from wandb_ops.workflows.kms_rotation.assessment import assess_key
from wandb_ops.workflows.kms_rotation.aurora_copy import CopyTarget, check_copy, plan_copy
from wandb_ops.workflows.kms_rotation.discovery import Clients, discover
from wandb_ops.workflows.kms_rotation.settings import RotationSettings
from wandb_ops.workflows.kms_rotation.tasks import (
    AssessTask,
    CheckCopyTask,
    CopyCheck,
    CopyPlan,
    Counts,
    DiscoverOutput,
    DiscoverTask,
    Finding,
    PlanCopyTask,
    SummaryOutput,
    SummaryTask,
)


@dataclass(frozen=True)
class Deps:
    settings: RotationSettings
    clients: Clients

    @classmethod
    def from_env(cls) -> Self:
        settings = RotationSettings.from_env()
        return cls(settings, Clients.from_factory(aws.regional_clients(), settings.region))


def discover_keys(task: DiscoverTask, deps: Deps) -> DiscoverOutput:
    discovery = discover(deps.settings, deps.clients, task.input)
    logger.info(
        "keys discovered",
        extra={
            "mode": discovery.mode,
            "keys": [entry.key.arn for entry in discovery.keys],
            "problems": len(discovery.problems),
        },
    )
    return discovery


def assess(task: AssessTask, deps: Deps) -> Finding:
    finding = assess_key(deps.settings, deps.clients, task.key, task.mode, rotate_now=task.rotate_now, now=utcnow())
    logger.info(
        "key assessed",
        extra={"key_arn": finding.key_arn, "status": finding.status, "changes": finding.changes},
    )
    return finding


def summary(task: SummaryTask, deps: Deps) -> SummaryOutput:
    findings, problems = task.findings, task.discovery.problems
    statuses = [f.status for f in findings] + [p.status for p in problems]
    counts = Counts(ok=statuses.count("ok"), warn=statuses.count("warn"), fail=statuses.count("fail"))
    changes = sum(len(f.changes) for f in findings)
    mode = task.discovery.mode
    lines = [
        f"KMS rotation ({mode}): {len(findings)} keys, {counts.fail} fail, {counts.warn} warn, {changes} changes",
        "",
    ]
    for finding in findings:
        lines.append(f"[{finding.status.upper()}] {finding.key_arn} ({'; '.join(finding.protects)})")
        lines += [f"    changed: {change}" for change in finding.changes]
        lines += [f"    {problem}" for problem in finding.problems]
        lines += [f"    add to the key policy: {guidance.statement.model_dump()}" for guidance in finding.guidance]
    for problem in problems:
        lines.append(f"[{problem.status.upper()}] {problem.where}: {problem.evidence}\n    fix: {problem.fix}")
    metrics.add_metric(name="KmsKeysAssessed", unit=MetricUnit.Count, value=len(findings))
    metrics.add_metric(name="KmsKeysFailing", unit=MetricUnit.Count, value=counts.fail)
    metrics.add_metric(name="KmsRotationChanges", unit=MetricUnit.Count, value=changes)
    report = SummaryOutput(
        generated_at=utcnow().isoformat(),
        mode=mode,
        status="attention" if counts.fail or counts.warn else "ok",
        notify=bool(counts.fail or changes),
        counts=counts,
        changes=changes,
        keys=findings,
        problems=problems,
        text="\n".join(lines),
    )
    logger.info("summary", extra={"status": report.status, "counts": counts.model_dump(), "changes": changes})
    return report


def plan_snapshot_copy(task: PlanCopyTask, deps: Deps) -> CopyPlan:
    settings = deps.settings
    target = CopyTarget(settings.database_kind, settings.database_identifier, settings.region)
    plan = plan_copy(target, deps.clients.rds, deps.clients.kms(settings.region), task.input)
    logger.info("snapshot copy planned", extra={"plan": plan.model_dump()})
    return plan


def check_snapshot_copy(task: CheckCopyTask, deps: Deps) -> CopyCheck:
    check = check_copy(deps.clients.rds, task.target, task.attempt)
    logger.info("snapshot copy checked", extra={"check": check.model_dump()})
    return check


STEPS = Steps[Deps].of(discover_keys, assess, summary, plan_snapshot_copy, check_snapshot_copy)
