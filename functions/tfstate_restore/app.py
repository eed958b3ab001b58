"""Terraform state restore helper: list a workspace's backups, or verify one serial before you fetch it."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from wandb_ops.core import aws
from wandb_ops.core.observability import logger, tracer
from wandb_ops.core.validation import parse_event
from wandb_ops.workflows.tfstate_backup.steps import source_config_from_env
from wandb_ops.workflows.tfstate_restore.restore import RestoreRequest, restore_plan


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request = parse_event(RestoreRequest, event)
    config = source_config_from_env()
    with aws.throttling_as_retryable():
        return restore_plan(aws.client("s3"), config.backup_bucket, request)
