"""The terraform state backup's steps: plan (which objects to back up), backup (one object),
report (what happened). The state machine only orders them and notifies."""

from collections import Counter
from dataclasses import dataclass
from typing import Any, Self

from aws_lambda_powertools.metrics import MetricUnit

from wandb_ops.access.terraform_state.backup import backup_state
from wandb_ops.access.terraform_state.sources import SourceConfig, StateObject, classify_key, plan_sweep
from wandb_ops.core import aws
from wandb_ops.core.observability import logger, metrics
from wandb_ops.core.steps import Steps
from wandb_ops.workflows.tfstate_backup.settings import TfStateSettings
from wandb_ops.workflows.tfstate_backup.tasks import (
    BackupOutput,
    BackupTask,
    IgnoredKey,
    PlanOutput,
    PlanTask,
    ReportOutput,
    ReportTask,
    StateObjectInput,
)


@dataclass(frozen=True)
class Deps:
    config: SourceConfig
    s3: Any

    @classmethod
    def from_env(cls) -> Self:
        return cls(TfStateSettings.from_env().source_config(), aws.client("s3"))


def plan(task: PlanTask, deps: Deps) -> PlanOutput:
    request = task.input
    if request.sweep:
        objects = [StateObjectInput(**vars(obj)) for obj in plan_sweep(deps.config, deps.s3)]
        planned = PlanOutput(objects=objects, ignored=[])
    else:
        assert request.bucket and request.key  # guaranteed by BackupRequest
        workspace, reason = classify_key(deps.config, request.bucket, request.key)
        if workspace is None:
            planned = PlanOutput(objects=[], ignored=[IgnoredKey(key=request.key, reason=reason)])
        else:
            planned = PlanOutput(
                objects=[StateObjectInput(bucket=request.bucket, key=request.key, workspace=workspace)], ignored=[]
            )
    logger.info("planned", extra={"objects": len(planned.objects), "ignored": planned.model_dump()["ignored"]})
    return planned


def backup(task: BackupTask, deps: Deps) -> BackupOutput:
    result = backup_state(deps.config, deps.s3, StateObject(**task.object.model_dump()))
    # Never the content: the outcome, the keys, serial and size only.
    logger.info("state object handled", extra=result.as_dict())
    metrics.add_metric(name=f"TfState{result.outcome.value.title()}", unit=MetricUnit.Count, value=1)
    return BackupOutput(**result.as_dict())


def report(task: ReportTask, deps: Deps) -> ReportOutput:
    outcomes = Counter(result.outcome.value for result in task.results)
    anomalies = [result for result in task.results if result.outcome == "anomaly"]
    lines = [
        f"Terraform state backup: {outcomes['stored']} stored, {outcomes['duplicate']} already backed up, "
        f"{len(anomalies)} anomalies, {len(task.ignored)} ignored."
    ]
    for anomaly in anomalies:
        lines.append(f"- {anomaly.workspace} ({anomaly.source_key}): {anomaly.anomaly}: {anomaly.detail}")
        lines.append(f"  kept at {anomaly.backup_key}; the backup history was not changed")
    if anomalies:
        lines.append("Runbook: docs/tfstate-backup.md, section 'Anomalies'.")
    metrics.add_metric(name="TfStateAnomalies", unit=MetricUnit.Count, value=len(anomalies))
    return ReportOutput(
        stored=outcomes["stored"],
        duplicate=outcomes["duplicate"],
        anomaly_count=len(anomalies),
        ignored=task.ignored,
        results=task.results,
        text="\n".join(lines),
    )


STEPS = Steps[Deps].of(plan, backup, report)
