"""KMS rotation function: one step of the KMS rotation workflow per call (per the task's action)."""

from typing import Annotated, Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import Field, RootModel

from wandb_ops.core import aws
from wandb_ops.core.clock import utcnow
from wandb_ops.core.observability import logger, metrics, tracer
from wandb_ops.core.validation import parse_event
from wandb_ops.workflows.kms_rotation.aurora_copy import CheckCopyTask, CopyTarget, PlanCopyTask, check_copy, plan_copy
from wandb_ops.workflows.kms_rotation.key_rotation import (
    AssessTask,
    Clients,
    DiscoverTask,
    RotationSettings,
    SummaryTask,
    assess,
    discover,
    summary,
)


class KmsTask(
    RootModel[
        Annotated[
            DiscoverTask | AssessTask | SummaryTask | PlanCopyTask | CheckCopyTask,
            Field(discriminator="action"),
        ]
    ]
):
    pass


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    task = parse_event(KmsTask, event).root
    settings = RotationSettings.from_env()
    client = aws.regional_clients()
    clients = Clients.from_factory(client, settings.region)
    logger.append_keys(action=task.action)
    with aws.throttling_as_retryable():
        if isinstance(task, DiscoverTask):
            logger.set_correlation_id(task.execution or context.aws_request_id)
            result = discover(settings, clients, task)
        elif isinstance(task, AssessTask):
            result = assess(settings, clients, task, utcnow())
        elif isinstance(task, SummaryTask):
            result = summary(task, utcnow())
            _publish_metrics(result)
        else:
            target = CopyTarget(settings.database_kind, settings.database_identifier, settings.region)
            if isinstance(task, PlanCopyTask):
                result = plan_copy(target, clients.rds, clients.kms(settings.region), task)
            else:
                result = check_copy(clients.rds, task)
    logger.info("step done", extra={"result": {k: v for k, v in result.items() if k != "text"}})
    return result


def _publish_metrics(result: dict[str, Any]) -> None:
    metrics.add_metric(name="KmsKeysAssessed", unit=MetricUnit.Count, value=len(result["keys"]))
    metrics.add_metric(name="KmsKeysFailing", unit=MetricUnit.Count, value=result["counts"]["fail"])
    metrics.add_metric(name="KmsRotationChanges", unit=MetricUnit.Count, value=result["changes"])
