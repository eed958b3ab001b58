"""The restore check's steps: start (restore the newest snapshot), check (until the copy is
available), query (the sanity query, as the master user), cleanup (always, also after a failure)."""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Self

from aws_lambda_powertools.metrics import MetricUnit

from wandb_ops.access.mysql.connector import Connector
from wandb_ops.access.mysql.master import MasterAccess
from wandb_ops.access.rds_snapshots import format_slot
from wandb_ops.core import aws
from wandb_ops.core.clock import utcnow
from wandb_ops.core.errors import ConfigurationError
from wandb_ops.core.observability import logger, metrics
from wandb_ops.core.polling import backoff
from wandb_ops.core.steps import Steps
from wandb_ops.workflows.db_restore_check import restore
from wandb_ops.workflows.db_restore_check.restore import RestoreCheckError
from wandb_ops.workflows.db_restore_check.settings import RestoreCheckSettings
from wandb_ops.workflows.db_restore_check.tasks import (
    CheckOutput,
    CheckTask,
    CleanupOutput,
    CleanupTask,
    QueryOutput,
    QueryTask,
    StartOutput,
    StartTask,
)


@dataclass(frozen=True)
class Deps:
    settings: RestoreCheckSettings
    rds: Any
    master: Callable[[], MasterAccess]  # only the query step reads a secret
    connector: Connector

    @classmethod
    def from_env(cls) -> Self:
        settings = RestoreCheckSettings.from_env()
        return cls(
            settings,
            aws.client("rds"),
            lambda: MasterAccess(aws.client("secretsmanager")),
            Connector(ca_bundle=settings.ca_bundle),
        )


def start(task: StartTask, deps: Deps) -> StartOutput:
    restored = restore.start(deps.settings, deps.rds, task.input.slot or format_slot(utcnow()))
    return StartOutput(
        identifier=restored.identifier, snapshot=restored.snapshot, snapshot_slot=restored.snapshot_slot, attempt=0
    )


def check(task: CheckTask, deps: Deps) -> CheckOutput:
    settings = deps.settings
    found = restore.endpoint(settings, deps.rds, task.identifier)
    poll = backoff(task.attempt, settings.poll_base_seconds, settings.poll_max_seconds, settings.poll_max_attempts)
    if found is None and poll.give_up:
        raise RestoreCheckError(f"{task.identifier} did not become available after {task.attempt + 1} checks")
    return CheckOutput(**poll.model_dump(), available=found is not None)


def query(task: QueryTask, deps: Deps) -> QueryOutput:
    found = restore.endpoint(deps.settings, deps.rds, task.identifier)
    if found is None:
        raise RestoreCheckError(f"{task.identifier} is not available")
    if deps.settings.master_secret_arn is None:
        raise ConfigurationError("MASTER_SECRET_ARN is empty: set the stack parameter MasterSecretArn")
    master = deps.master().at_restored_copy(deps.settings.master_secret_arn, *found, RestoreCheckError)
    answer = restore.run_query(deps.settings, deps.connector, master, *found)
    metrics.add_metric(name="RestoreCheckSeconds", unit=MetricUnit.Seconds, value=answer.seconds)
    logger.info("sanity query answered", extra={"seconds": answer.seconds})
    return answer


def cleanup(task: CleanupTask, deps: Deps) -> CleanupOutput:
    deleted = restore.cleanup(deps.settings, deps.rds, task.identifier)
    logger.info("temporary database deleted", extra={"deleted": deleted})
    return CleanupOutput(deleted=deleted)


STEPS = Steps[Deps].of(start, check, query, cleanup)
