"""Restore check function: restore the newest snapshot into a temporary database, query it, delete it."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from wandb_ops.core import aws
from wandb_ops.core.observability import logger, metrics, tracer
from wandb_ops.core.steps import correlate
from wandb_ops.core.validation import parse_event
from wandb_ops.workflows.db_restore_check.steps import STEPS, Deps
from wandb_ops.workflows.db_restore_check.tasks import RestoreTask


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    task = parse_event(RestoreTask, event).root
    correlate(task, context.aws_request_id)
    with aws.throttling_as_retryable():
        return STEPS.run(task, Deps.from_env())
