"""Secrets Manager rotation function for the W&B MySQL user (multi-user: a new user per rotation)."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from wandb_ops.core import aws
from wandb_ops.core.observability import logger, metrics, tracer
from wandb_ops.core.steps import correlate
from wandb_ops.core.validation import parse_event
from wandb_ops.workflows.secret_rotation.steps import Deps, rotate
from wandb_ops.workflows.secret_rotation.tasks import RotationEvent


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request = parse_event(RotationEvent, event)
    correlate(request, context.aws_request_id)  # the ClientRequestToken: one rotation's four steps
    with aws.throttling_as_retryable():
        return rotate(request, Deps.from_env()).model_dump(mode="json")
