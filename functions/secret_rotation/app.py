"""Secrets Manager rotation function for the W&B MySQL user (multi-user: a new user per rotation)."""

import os
from pathlib import Path
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, ConfigDict, Field

from wandb_ops.access.mysql.connector import DEFAULT_CA_BUNDLE, Connector
from wandb_ops.access.mysql.master import MasterAccess, database_from_env
from wandb_ops.access.password_proof import MAX_LENGTH, MIN_LENGTH, PasswordMint
from wandb_ops.core import aws
from wandb_ops.core.errors import ConfigurationError
from wandb_ops.core.observability import logger, metrics, tracer
from wandb_ops.core.validation import parse_event
from wandb_ops.workflows.secret_rotation.rotation import RotationDeps, rotate


class RotationEvent(BaseModel):
    """What Secrets Manager sends; it may add fields over time, so unknown ones are ignored."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    Step: str = Field(min_length=1)
    SecretId: str = Field(min_length=1)
    ClientRequestToken: str = Field(min_length=32, max_length=64)


def _password_mint() -> PasswordMint:
    raw = os.environ.get("ROTATION_PASSWORD_LENGTH", "32")
    if not raw.isdigit() or not MIN_LENGTH <= int(raw) <= MAX_LENGTH:
        raise ConfigurationError(
            "ROTATION_PASSWORD_LENGTH must be 16-128: set the stack parameter RotationPasswordLength"
        )
    key = os.environ.get("CREDENTIAL_MAC_KEY_ARN", "").strip()
    if not key:
        raise ConfigurationError("CREDENTIAL_MAC_KEY_ARN is empty: the template sets it; redeploy the stack")
    return PasswordMint(aws.client("kms"), key, int(raw))


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request = parse_event(RotationEvent, event)
    logger.append_keys(step=request.Step, secret=request.SecretId, version=request.ClientRequestToken)
    secretsmanager = aws.client("secretsmanager")
    deps = RotationDeps(
        secretsmanager=secretsmanager,
        connector=Connector(ca_bundle=Path(os.environ.get("DB_CA_BUNDLE") or DEFAULT_CA_BUNDLE)),
        master=MasterAccess(secretsmanager, database_from_env(lambda: aws.client("rds"), os.environ)),
        mint=_password_mint(),
    )
    with aws.throttling_as_retryable():
        result = rotate(deps, request.Step, request.SecretId, request.ClientRequestToken)
    logger.info("rotation step done", extra={"result": result})
    return {"step": request.Step, "result": result}
