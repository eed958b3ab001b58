"""Terraform state restore helper: list a workspace's backups, or verify one serial before you fetch it."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from wandb_ops.core import aws
from wandb_ops.core.observability import logger, tracer
from wandb_ops.core.validation import parse_event
from wandb_ops.workflows.tfstate_backup.settings import TfStateSettings
from wandb_ops.workflows.tfstate_restore.restore import RestoreRequest, restore_plan


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request = parse_event(RestoreRequest, event)
    logger.set_correlation_id(context.aws_request_id)  # called by hand, not by a state machine
    settings = TfStateSettings.from_env()
    with aws.throttling_as_retryable():
        return restore_plan(aws.client("s3"), settings.backup_bucket, request).model_dump(mode="json")
