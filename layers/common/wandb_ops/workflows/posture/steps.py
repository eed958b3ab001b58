"""The posture report's one step: assess the deployment (read-only), store the report in the
work bucket, publish the numbers alarms follow, and return the report."""

from dataclasses import dataclass
from typing import Self

from aws_lambda_powertools.metrics import MetricUnit

from wandb_ops.core import aws
from wandb_ops.core.clock import utcnow
from wandb_ops.core.errors import ConfigurationError
from wandb_ops.core.observability import logger, metrics
from wandb_ops.core.settings import DeploymentSettings
from wandb_ops.core.steps import Steps
from wandb_ops.workflows.kms_rotation.discovery import Clients as RotationClients
from wandb_ops.workflows.kms_rotation.settings import RotationSettings
from wandb_ops.workflows.posture.assess import PostureSources, store
from wandb_ops.workflows.posture.assess import assess as assess_deployment
from wandb_ops.workflows.posture.records import RecordSources
from wandb_ops.workflows.posture.settings import PostureSettings
from wandb_ops.workflows.posture.tasks import PostureOutput, PostureTask


@dataclass(frozen=True)
class Deps:
    deployment: DeploymentSettings
    rotation: RotationSettings | ConfigurationError  # or why its parameters are unusable
    settings: PostureSettings
    sources: PostureSources

    @classmethod
    def from_env(cls) -> Self:
        deployment = DeploymentSettings.from_env()
        try:
            rotation: RotationSettings | ConfigurationError = RotationSettings.from_env()
        except ConfigurationError as exc:  # the report still runs; one item says what to fix
            rotation = exc
        settings = PostureSettings.from_env()
        client = aws.regional_clients()
        rotation_clients = RotationClients.from_factory(client, settings.region)
        sources = PostureSources(
            rds=rotation_clients.rds,
            s3=client("s3", settings.region),
            secretsmanager=aws.client("secretsmanager"),
            rotation=rotation_clients,
            records=RecordSources(
                stepfunctions=aws.client("stepfunctions"),
                dr_rds=client("rds", settings.dr_region) if settings.dr_region else None,
            ),
        )
        return cls(deployment, rotation, settings, sources)


def assess(task: PostureTask, deps: Deps) -> PostureOutput:
    report = assess_deployment(deps.deployment, deps.rotation, deps.sources, utcnow(), deps.settings)
    location = store(deps.sources.s3, deps.settings.report_bucket, report)
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
    return PostureOutput(
        generated_at=report.generated_at,
        namespace=report.namespace,
        summary=report.summary,
        items=report.items,
        text=f"{report.text}\n\nFull report: {location}",
        location=location,
    )


STEPS = Steps[Deps].of(assess)
