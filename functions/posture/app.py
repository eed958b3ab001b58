"""Posture report function: assess the W&B deployment (read-only) and return the report."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from wandb_ops.core import aws
from wandb_ops.core.observability import logger, metrics, tracer
from wandb_ops.core.steps import correlate
from wandb_ops.core.validation import parse_event
from wandb_ops.workflows.posture.steps import STEPS, Deps
from wandb_ops.workflows.posture.tasks import PostureTask


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    task = parse_event(PostureTask, event)
    correlate(task, context.aws_request_id)
    with aws.throttling_as_retryable():
        return STEPS.run(task, Deps.from_env())
