"""W&B credential cut-over: one step of the credential rotation workflow per call (per the task's action)."""

import os
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from wandb_ops.access.kubernetes.api import ClientKubernetesApi, KubernetesApi, describe_cluster, eks_token
from wandb_ops.access.mysql.connector import Connector
from wandb_ops.access.mysql.master import MasterAccess, database_from_env
from wandb_ops.access.password_proof import PasswordMint
from wandb_ops.core import aws
from wandb_ops.core.clock import utcnow
from wandb_ops.core.observability import logger, metrics, tracer
from wandb_ops.core.validation import parse_event
from wandb_ops.workflows.credential_rotation.cutover import (
    Cutover,
    CutoverDeps,
    CutoverSettings,
    CutoverTask,
    PlanTask,
    PollTask,
    PreflightTask,
    RetireTask,
    SwitchTask,
    report,
    urllib3_http,
)
from wandb_ops.workflows.credential_rotation.wandb_config import target_for


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    task = parse_event(CutoverTask, event).root
    settings = CutoverSettings.from_env()
    logger.append_keys(action=task.action, secret=settings.database_secret)
    if not isinstance(task, PreflightTask | PlanTask | PollTask | SwitchTask | RetireTask):
        result = report(task.outcome, task.run)
        metrics.add_metric(name="RollbackFailed", unit=MetricUnit.Count, value=int(task.outcome == "rollback_failed"))
        metrics.add_metric(name="CredentialsSwitched", unit=MetricUnit.Count, value=int(task.outcome == "switched"))
        logger.info("report", extra={"outcome": task.outcome})
        return result

    def kubernetes() -> KubernetesApi:
        endpoint = describe_cluster(aws.client("eks"), settings.eks_cluster_name)
        return ClientKubernetesApi(endpoint, eks_token(aws.client("sts"), settings.eks_cluster_name))

    secretsmanager = aws.client("secretsmanager")
    cutover = Cutover(
        settings,
        CutoverDeps(
            secretsmanager=secretsmanager,
            stepfunctions=aws.client("stepfunctions"),
            kubernetes=kubernetes,
            target=lambda api: target_for(settings.target, api, settings.kubernetes_namespace, settings.resource_name),
            connector=Connector(ca_bundle=settings.ca_bundle),
            master=MasterAccess(secretsmanager, database_from_env(lambda: aws.client("rds"), os.environ)),
            mint=PasswordMint(aws.client("kms"), settings.mac_key_arn, settings.password_length),
            http=urllib3_http,
            now=utcnow,
        ),
    )
    with aws.throttling_as_retryable():
        if isinstance(task, PreflightTask):
            result = cutover.preflight(task)
        elif isinstance(task, PlanTask):
            if task.action == "rotate":
                result = cutover.rotate(task.plan)
            elif task.action == "onboard":
                result = cutover.onboard(task.plan, task.execution)
            else:
                result = cutover.restore_current(task.plan)
        elif isinstance(task, PollTask):
            poll = cutover.rotation_status if task.action == "rotation_status" else cutover.rollout_status
            result = poll(task.plan, task.attempt)
        elif isinstance(task, SwitchTask):
            if task.action == "restart":
                result = cutover.restart(task.plan, task.to, task.execution)
            else:
                result = (cutover.apply if task.action == "apply" else cutover.confirm)(task.plan, task.to)
        else:
            result = cutover.retire(task.plan, task.which, task.attempt)
    logger.info("step done", extra={"result": result})
    return result
