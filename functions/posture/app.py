"""Posture report function: assess the W&B deployment (read-only) and return the report."""

import os
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from wandb_ops.core import aws
from wandb_ops.core.clock import utcnow
from wandb_ops.core.errors import ConfigurationError
from wandb_ops.core.models import TaskEvent
from wandb_ops.core.observability import logger, metrics, tracer
from wandb_ops.core.settings import DeploymentSettings
from wandb_ops.core.validation import parse_event
from wandb_ops.workflows.kms_rotation.key_rotation import Clients as RotationClients
from wandb_ops.workflows.kms_rotation.key_rotation import RotationSettings
from wandb_ops.workflows.posture.assess import PostureRequest, PostureSources, assess, store
from wandb_ops.workflows.posture.records import RecordSettings, RecordSources


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    task = parse_event(TaskEvent[PostureRequest], event)
    logger.set_correlation_id(task.execution or context.aws_request_id)
    settings = DeploymentSettings.from_env()
    try:
        rotation: RotationSettings | ConfigurationError = RotationSettings.from_env()
    except ConfigurationError as exc:  # the report still runs; one item says what to fix
        rotation = exc
    client = aws.regional_clients()
    region = os.environ.get("AWS_REGION", "us-east-1")
    rotation_clients = RotationClients.from_factory(client, region)
    records = RecordSettings.from_env()
    report_bucket = os.environ.get("POSTURE_REPORT_BUCKET", "").strip()
    if not report_bucket:
        raise ConfigurationError("POSTURE_REPORT_BUCKET is empty: redeploy the stack (it names its work bucket)")
    sources = PostureSources(
        rds=rotation_clients.rds,
        s3=client("s3", region),
        secretsmanager=aws.client("secretsmanager"),
        rotation=rotation_clients,
        records=RecordSources(
            stepfunctions=aws.client("stepfunctions"),
            dr_rds=client("rds", records.dr_region) if records.dr_region else None,
        ),
    )
    with aws.throttling_as_retryable():
        report = assess(settings, rotation, sources, utcnow(), records)
        location = store(sources.s3, report_bucket, report)
    metrics.add_metric(name="PostureFail", unit=MetricUnit.Count, value=report.summary.fail)
    metrics.add_metric(name="PostureWarn", unit=MetricUnit.Count, value=report.summary.warn)
    for entry in report.items:
        for name, value in entry.metrics.items():  # ages in hours or days, counts: alarms follow them
            metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)
        # One line per item, so a Logs Insights query (the dashboard's posture table) can list them.
        logger.info("posture item", extra={"item": entry.id, "status": entry.status, "evidence": entry.evidence})
    logger.info(
        "posture assessed",
        # "location" is one of Powertools' own log keys: it would be dropped.
        extra={"summary": report.summary.model_dump(), "source": task.input.source, "report_location": location},
    )
    return {**report.model_dump(mode="json"), "location": location, "text": f"{report.text}\n\nFull report: {location}"}
