"""Posture report function: assess the W&B deployment (read-only) and return the report."""

import os
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from wandb_ops import aws
from wandb_ops.clock import utcnow
from wandb_ops.errors import ConfigurationError
from wandb_ops.kms_rotation import Clients as RotationClients
from wandb_ops.kms_rotation import RotationSettings
from wandb_ops.models import TaskEvent
from wandb_ops.observability import logger, metrics, tracer
from wandb_ops.posture import PostureRequest, PostureSources, assess
from wandb_ops.settings import DeploymentSettings
from wandb_ops.validation import parse_event


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    task = parse_event(TaskEvent[PostureRequest], event)
    logger.set_correlation_id(task.execution or context.aws_request_id)
    settings = DeploymentSettings.from_env()
    try:
        rotation: RotationSettings | ConfigurationError = RotationSettings.from_env()
    except ConfigurationError as exc:  # the report still runs; one item says what to fix
        rotation = exc
    client = aws.regional_clients()
    region = os.environ.get("AWS_REGION", "us-east-1")
    rotation_clients = RotationClients.from_factory(client, region)
    sources = PostureSources(
        rds=rotation_clients.rds,
        s3=client("s3", region),
        secretsmanager=aws.client("secretsmanager"),
        rotation=rotation_clients,
    )
    with aws.throttling_as_retryable():
        report = assess(settings, rotation, sources, utcnow())
    metrics.add_metric(name="PostureFail", unit=MetricUnit.Count, value=report.summary.fail)
    metrics.add_metric(name="PostureWarn", unit=MetricUnit.Count, value=report.summary.warn)
    logger.info("posture assessed", extra={"summary": report.summary.model_dump(), "source": task.input.source})
    return report.model_dump(mode="json")
