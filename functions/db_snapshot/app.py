"""Database snapshot function: one step of the snapshot workflow per call (per the task's action)."""

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from wandb_ops.core import aws
from wandb_ops.core.clock import utcnow
from wandb_ops.core.observability import logger, metrics, tracer
from wandb_ops.core.validation import parse_event
from wandb_ops.workflows.db_snapshot.steps import (
    CheckTask,
    Clients,
    CopyTask,
    CreateTask,
    PreflightTask,
    RetentionTask,
    SnapshotSettings,
    SnapshotTask,
    check,
    copy,
    create,
    preflight,
    retention,
    summary,
)


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    task = parse_event(SnapshotTask, event).root
    settings = SnapshotSettings.from_env()
    clients = Clients(
        rds=aws.client("rds"),
        dr_rds=aws.client("rds", region=settings.dr_region) if settings.dr_region else None,
    )
    logger.append_keys(action=task.action, database=settings.source)
    with aws.throttling_as_retryable():
        if isinstance(task, PreflightTask):
            result = preflight(settings, clients, task, utcnow())
        elif isinstance(task, CreateTask):
            result = create(settings, clients, task)
        elif isinstance(task, CheckTask):
            result = check(settings, clients, task, utcnow())
        elif isinstance(task, CopyTask):
            result = copy(settings, clients, task, utcnow())
        elif isinstance(task, RetentionTask):
            result = retention(settings, clients, task)
        else:
            result = summary(settings, clients, task)
            metrics.add_metric(name="SnapshotCreated", unit=MetricUnit.Count, value=1 if result["snapshot"] else 0)
            metrics.add_metric(name="SnapshotsDeleted", unit=MetricUnit.Count, value=result["deleted_count"])
            if result["snapshot"]:
                metrics.add_metric(
                    name="SnapshotSizeGiB", unit=MetricUnit.Gigabytes, value=result["snapshot"]["size_gib"]
                )
    logger.info("step done", extra={"result": result})
    return result
