"""S3 replica sync function: one step of the sync workflow per call (per the task's action).
Deployed twice: for the replica sync, and (S3_SYNC_PURPOSE=reencrypt) for the re-encryption
of the W&B bucket, which copies the bucket onto itself."""

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from wandb_ops.core import aws
from wandb_ops.core.clock import utcnow
from wandb_ops.core.observability import logger, metrics, tracer
from wandb_ops.core.validation import parse_event
from wandb_ops.workflows.s3_sync.steps import (
    Clients,
    CopyTask,
    ManifestTask,
    PlanTask,
    PrepareTask,
    SummaryTask,
    SyncSettings,
    SyncTask,
    copy,
    manifest,
    plan,
    prepare,
    summary,
    verify,
)

PLAN_MARGIN_MS = 120_000  # a plan stops this long before the function's timeout, to record where it is


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    task = parse_event(SyncTask, event).root
    settings = SyncSettings.from_env()
    clients = Clients(
        source=aws.client("s3", connections=settings.copy_concurrency),
        replica=aws.client("s3", region=settings.replica_region, connections=settings.copy_concurrency),
        work=aws.client("s3"),
        cloudwatch=aws.client("cloudwatch"),
        kms=aws.client("kms"),
    )
    logger.append_keys(action=task.action, run=None if isinstance(task, PrepareTask) else task.run.id)
    with aws.throttling_as_retryable():
        if isinstance(task, PrepareTask):
            result = prepare(settings, clients, task, utcnow())
        elif isinstance(task, PlanTask):
            result = plan(settings, clients, task, lambda: context.get_remaining_time_in_millis() < PLAN_MARGIN_MS)
        elif isinstance(task, ManifestTask):
            result = manifest(clients, task)
        elif isinstance(task, CopyTask):
            result = copy(settings, clients, task)
        elif isinstance(task, SummaryTask):
            result = summary(settings, clients, task, utcnow())
            _publish_metrics("S3Sync" if settings.purpose == "replica" else "S3Reencrypt", result)
        else:
            result = verify(settings, clients, task)
    logger.info("step done", extra={"result": {k: v for k, v in result.items() if k != "shards"}})
    return result


def _publish_metrics(prefix: str, result: dict[str, Any]) -> None:
    counts = {
        "ObjectsCompared": result["compared"]["objects"],
        "ObjectsCopied": result["copied"]["objects"],
        "ObjectsFailed": result["failed"]["objects"],
        "ObjectsDeleted": result["deleted"]["objects"],
        "ObjectsArchived": result["archived"]["objects"],
        "DriftObjects": result["drift"]["objects"],
        "VerifyMismatches": result["verify"].get("mismatched_count", 0),
    }
    for name, value in counts.items():
        metrics.add_metric(name=f"{prefix}{name}", unit=MetricUnit.Count, value=value)
    metrics.add_metric(name=f"{prefix}BytesCopied", unit=MetricUnit.Bytes, value=result["copied"]["bytes"])
    metrics.add_metric(name=f"{prefix}Duration", unit=MetricUnit.Seconds, value=result["duration_seconds"])
