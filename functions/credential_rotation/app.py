"""W&B credential cut-over: one step of the credential rotation workflow per call (per the task's action)."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from wandb_ops.core import aws
from wandb_ops.core.observability import logger, metrics, tracer
from wandb_ops.core.steps import correlate
from wandb_ops.core.validation import parse_event
from wandb_ops.workflows.credential_rotation.steps import STEPS, Deps
from wandb_ops.workflows.credential_rotation.tasks import CutoverTask


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    task = parse_event(CutoverTask, event).root
    correlate(task, context.aws_request_id)
    with aws.throttling_as_retryable():
        return STEPS.run(task, Deps.from_env())
