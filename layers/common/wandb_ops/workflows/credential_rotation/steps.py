"""The W&B credential cut-over, one step per state-machine task (docs/rotation.md, "What happens,
in order"):

preflight -> rotate (Secrets Manager, multi-user) | onboard -> apply the new user to W&B ->
restart its deployments -> wait for the rollout -> confirm W&B works -> retire the old user;
on a failure in apply..confirm, the same steps back to the old user, AWSCURRENT moved back;
then report (the notification's subject and text; the state machine publishes it).

Every step can be retried: each one first looks at what is already done."""

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Self

from aws_lambda_powertools.metrics import MetricUnit

from wandb_ops.access.kubernetes.api import KubernetesApi, connect, describe_cluster, eks_token
from wandb_ops.access.mysql.connector import Connector
from wandb_ops.access.mysql.master import MasterAccess, database_from_env
from wandb_ops.access.password_proof import PasswordMint
from wandb_ops.core import aws
from wandb_ops.core.clock import utcnow
from wandb_ops.core.observability import logger, metrics
from wandb_ops.core.steps import StepOutput, Steps
from wandb_ops.workflows.credential_rotation import notify
from wandb_ops.workflows.credential_rotation.confirm import confirm_wandb_works
from wandb_ops.workflows.credential_rotation.health import HttpClient, urllib3_http
from wandb_ops.workflows.credential_rotation.onboarding import onboard as onboard_application_user
from wandb_ops.workflows.credential_rotation.plan import preflight as plan_cutover
from wandb_ops.workflows.credential_rotation.retire import retire_user
from wandb_ops.workflows.credential_rotation.rotation import move_current_back, rotation_progress, start_rotation
from wandb_ops.workflows.credential_rotation.settings import CutoverSettings
from wandb_ops.workflows.credential_rotation.switch import apply_credentials, restart_deployments, rollout_progress
from wandb_ops.workflows.credential_rotation.tasks import (
    ApplyOutput,
    ApplyTask,
    ConfirmOutput,
    ConfirmTask,
    OnboardTask,
    Plan,
    PreflightTask,
    ReportOutput,
    ReportTask,
    RestartOutput,
    RestartTask,
    RestoreCurrentOutput,
    RestoreCurrentTask,
    RetireOutput,
    RetireTask,
    RolloutStatusOutput,
    RolloutStatusTask,
    RotateTask,
    RotationStatusOutput,
    RotationStatusTask,
)
from wandb_ops.workflows.credential_rotation.wandb_config import WandbTarget, target_for


def kubernetes_api(cluster_name: str) -> KubernetesApi:
    """The EKS cluster's API, as this function's IAM role (an EKS token; no kubeconfig)."""
    endpoint = describe_cluster(aws.client("eks"), cluster_name)
    return connect(endpoint, eks_token(aws.client("sts"), cluster_name))


@dataclass
class Deps:
    settings: CutoverSettings
    secretsmanager: Any
    stepfunctions: Any
    connector: Connector
    master: MasterAccess
    mint: PasswordMint  # passwords this product makes, and the proof that it made them
    http: HttpClient
    now: Callable[[], datetime]
    kubernetes: Callable[[], KubernetesApi]  # called once, when a step first talks to the cluster
    _api: KubernetesApi | None = field(default=None, init=False)

    @classmethod
    def from_env(cls) -> Self:
        settings = CutoverSettings.from_env()
        logger.append_keys(secret=settings.database_secret)
        secretsmanager = aws.client("secretsmanager")
        return cls(
            settings=settings,
            secretsmanager=secretsmanager,
            stepfunctions=aws.client("stepfunctions"),
            connector=Connector(ca_bundle=settings.ca_bundle),
            master=MasterAccess(secretsmanager, database_from_env(lambda: aws.client("rds"), os.environ)),
            mint=PasswordMint(aws.client("kms"), settings.mac_key_arn, settings.password_length),
            http=urllib3_http,
            now=utcnow,
            kubernetes=lambda: kubernetes_api(settings.eks_cluster_name),
        )

    def api(self) -> KubernetesApi:
        if self._api is None:
            self._api = self.kubernetes()
        return self._api

    def wandb(self) -> WandbTarget:
        """Where W&B reads its database credentials (wandb_config.py)."""
        settings = self.settings
        return target_for(settings.target, self.api(), settings.kubernetes_namespace, settings.resource_name)


def _done[OutputT: StepOutput](output: OutputT) -> OutputT:
    """One log line per step with its result: names, ARNs, version ids and counts, never a password
    (no output model has a field for one)."""
    logger.info("step done", extra={"result": output.model_dump(mode="json")})
    return output


def preflight(task: PreflightTask, deps: Deps) -> Plan:
    return _done(plan_cutover(task.input, task.execution, deps))


def rotate(task: RotateTask, deps: Deps) -> Plan:
    return _done(start_rotation(task.plan, deps))


def rotation_status(task: RotationStatusTask, deps: Deps) -> RotationStatusOutput:
    return _done(rotation_progress(task.plan, task.attempt, deps))


def onboard(task: OnboardTask, deps: Deps) -> Plan:
    return _done(onboard_application_user(task.plan, task.execution, deps))


def apply(task: ApplyTask, deps: Deps) -> ApplyOutput:
    return _done(apply_credentials(task.plan, task.to, deps))


def restart(task: RestartTask, deps: Deps) -> RestartOutput:
    return _done(restart_deployments(task.plan, task.to, task.execution, deps))


def rollout_status(task: RolloutStatusTask, deps: Deps) -> RolloutStatusOutput:
    return _done(rollout_progress(task.plan, task.attempt, deps))


def confirm(task: ConfirmTask, deps: Deps) -> ConfirmOutput:
    return _done(confirm_wandb_works(task.plan, task.to, deps))


def retire(task: RetireTask, deps: Deps) -> RetireOutput:
    return _done(retire_user(task.plan, task.which, task.attempt, deps))


def restore_current(task: RestoreCurrentTask, deps: Deps) -> RestoreCurrentOutput:
    return _done(move_current_back(task.plan, deps))


def report(task: ReportTask, deps: Deps) -> ReportOutput:
    reported = notify.report(task.outcome, task.run)
    metrics.add_metric(name="RollbackFailed", unit=MetricUnit.Count, value=int(task.outcome == "rollback_failed"))
    metrics.add_metric(name="CredentialsSwitched", unit=MetricUnit.Count, value=int(task.outcome == "switched"))
    logger.info("report", extra={"outcome": task.outcome})
    return reported


STEPS = Steps[Deps].of(
    preflight,
    rotate,
    rotation_status,
    onboard,
    apply,
    restart,
    rollout_status,
    confirm,
    retire,
    restore_current,
    report,
)
