"""Posture report function: assess the W&B deployment (read-only) and return the report."""

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from wandb_ops import aws
from wandb_ops.models import TaskEvent
from wandb_ops.observability import logger, metrics, tracer
from wandb_ops.posture import PostureRequest, PostureSources, assess, utcnow
from wandb_ops.settings import DeploymentSettings
from wandb_ops.validation import parse_event


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    task = parse_event(TaskEvent[PostureRequest], event)
    logger.set_correlation_id(task.execution or context.aws_request_id)
    settings = DeploymentSettings.from_env()
    sources = PostureSources(
        rds=aws.client("rds"), s3=aws.client("s3"), kms=aws.client("kms"), secretsmanager=aws.client("secretsmanager")
    )
    with aws.throttling_as_retryable():
        report = assess(settings, sources, utcnow())
    metrics.add_metric(name="PostureFail", unit=MetricUnit.Count, value=report.summary.fail)
    metrics.add_metric(name="PostureWarn", unit=MetricUnit.Count, value=report.summary.warn)
    logger.info("posture assessed", extra={"summary": report.summary.model_dump(), "source": task.input.source})
    return report.model_dump(mode="json")
