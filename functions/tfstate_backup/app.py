"""Terraform state backup function: plan, back up one state object, or report (per the task's action)."""

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from wandb_ops.access.terraform_state import StateObject, backup_state
from wandb_ops.core import aws
from wandb_ops.core.observability import logger, metrics, tracer
from wandb_ops.core.validation import parse_event
from wandb_ops.workflows.tfstate_backup.steps import (
    BackupTask,
    PlanTask,
    TfStateTask,
    plan,
    report,
    source_config_from_env,
)


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    task = parse_event(TfStateTask, event).root
    logger.set_correlation_id(task.execution or context.aws_request_id)
    config = source_config_from_env()
    s3 = aws.client("s3")
    with aws.throttling_as_retryable():
        if isinstance(task, PlanTask):
            planned = plan(config, s3, task.input)
            logger.info("planned", extra={"objects": len(planned["objects"]), "ignored": planned["ignored"]})
            return planned
        if isinstance(task, BackupTask):
            result = backup_state(config, s3, StateObject(**task.object.model_dump()))
            # Never the content: the outcome, the keys, serial and size only.
            logger.info("state object handled", extra=result.as_dict())
            metrics.add_metric(name=f"TfState{result.outcome.value.title()}", unit=MetricUnit.Count, value=1)
            return result.as_dict()
        summary = report(task.results, task.ignored)
        metrics.add_metric(name="TfStateAnomalies", unit=MetricUnit.Count, value=summary["anomaly_count"])
        return summary
