"""Restore check function: restore the newest snapshot into a temporary database, query it, delete it."""

import os
from pathlib import Path
from typing import Annotated, Any, Literal

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import Field, RootModel

from wandb_ops.access.mysql.connector import DEFAULT_CA_BUNDLE, Connector
from wandb_ops.access.mysql.master import MasterAccess
from wandb_ops.access.rds_snapshots import SnapshotApi, format_slot
from wandb_ops.core import aws
from wandb_ops.core.clock import utcnow
from wandb_ops.core.errors import ConfigurationError
from wandb_ops.core.models import StrictModel
from wandb_ops.core.observability import logger, metrics, tracer
from wandb_ops.core.polling import backoff
from wandb_ops.core.validation import parse_event
from wandb_ops.workflows.db_restore_check.restore import (
    STACK_ID,
    RestoreCheckError,
    RestoreCheckRequest,
    RestoreCheckSettings,
    cleanup,
    endpoint,
    run_query,
    start,
)

# With this stack's id; without one, as a run started before an update named it (refused clearly).
IDENTIFIER = Field(pattern=r"^wandb-ops-check-([0-9a-f]{8}-)?\d{12}$")


class StartTask(StrictModel):
    action: Literal["start"]
    input: RestoreCheckRequest


class CheckTask(StrictModel):
    action: Literal["check"]
    identifier: Annotated[str, IDENTIFIER]
    attempt: int = Field(default=0, ge=0)


class QueryTask(StrictModel):
    action: Literal["query"]
    identifier: Annotated[str, IDENTIFIER]


class CleanupTask(StrictModel):
    action: Literal["cleanup"]
    identifier: Annotated[str, IDENTIFIER]


class RestoreTask(RootModel[Annotated[StartTask | CheckTask | QueryTask | CleanupTask, Field(discriminator="action")]]):
    pass


def _env(name: str, parameter: str) -> str:
    value = os.environ.get(name, "").strip()
    if not value:
        raise ConfigurationError(f"{name} is empty: set the stack parameter {parameter}")
    return value


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    task = parse_event(RestoreTask, event).root
    kind = _env("SNAPSHOT_KIND", "DatabaseKind")
    if kind not in ("aurora-cluster", "rds-instance"):
        raise ConfigurationError("SNAPSHOT_KIND must be aurora-cluster or rds-instance: set DatabaseKind")
    stack_id = _env("STACK_SHORT_ID", "(template)")
    if not STACK_ID.match(stack_id):
        raise ConfigurationError(f"STACK_SHORT_ID={stack_id!r} is not 8 hex digits: redeploy the stack's template")
    settings = RestoreCheckSettings(
        api=SnapshotApi(kind),  # type: ignore[arg-type]
        source=_env("SNAPSHOT_SOURCE", "Namespace / DatabaseIdentifier"),
        region=os.environ.get("AWS_REGION", "us-east-1"),
        stack_id=stack_id,
        instance_class=_env("RESTORE_CHECK_INSTANCE_CLASS", "RestoreCheckInstanceClass"),
        query=_env("RESTORE_CHECK_QUERY", "RestoreCheckQuery"),
    )
    rds = aws.client("rds")
    logger.append_keys(action=task.action)
    with aws.throttling_as_retryable():
        if isinstance(task, StartTask):
            slot = task.input.slot or format_slot(utcnow())
            return {**start(settings, rds, slot), "attempt": 0}
        if isinstance(task, CheckTask):
            found = endpoint(settings, rds, task.identifier)
            poll = backoff(
                task.attempt,
                int(os.environ.get("POLL_BASE_SECONDS", "30")),
                int(os.environ.get("POLL_MAX_SECONDS", "300")),
                int(os.environ.get("POLL_MAX_ATTEMPTS", "60")),
            )
            if found is None and poll["give_up"]:
                raise RestoreCheckError(f"{task.identifier} did not become available after {task.attempt + 1} checks")
            return {**poll, "available": found is not None}
        if isinstance(task, QueryTask):
            found = endpoint(settings, rds, task.identifier)
            if found is None:
                raise RestoreCheckError(f"{task.identifier} is not available")
            master_arn = _env("MASTER_SECRET_ARN", "MasterSecretArn")
            master = MasterAccess(aws.client("secretsmanager")).at_restored_copy(master_arn, *found, RestoreCheckError)
            connector = Connector(ca_bundle=Path(os.environ.get("DB_CA_BUNDLE") or DEFAULT_CA_BUNDLE))
            result = run_query(settings, connector, master, *found)
            metrics.add_metric(name="RestoreCheckSeconds", unit=MetricUnit.Seconds, value=result["seconds"])
            logger.info("sanity query answered", extra={"seconds": result["seconds"]})
            return result
        deleted = cleanup(settings, rds, task.identifier)
        logger.info("temporary database deleted", extra={"deleted": deleted})
        return {"deleted": deleted}
