"""Confirm W&B works on the side it was just switched to: its settings name that user (and its pods
would get that password), it answers /healthz and /ready, the user logs in, optionally an API call."""

from typing import TYPE_CHECKING, Literal

import pymysql

from wandb_ops.workflows.credential_rotation.app_secret import credentials
from wandb_ops.workflows.credential_rotation.errors import HealthCheckFailedError
from wandb_ops.workflows.credential_rotation.health import api_call, endpoints_answer
from wandb_ops.workflows.credential_rotation.tasks import ConfirmOutput, Plan

if TYPE_CHECKING:
    from wandb_ops.workflows.credential_rotation.steps import Deps


def confirm_wandb_works(plan: Plan, to: Literal["new", "old"], deps: "Deps") -> ConfirmOutput:
    assert deps.settings.wandb_url
    secret = credentials(plan.side(to), plan, deps)
    target = deps.wandb()
    configured = target.read().user
    if configured != secret.username or not target.rendered(secret.password):
        raise HealthCheckFailedError(
            f"W&B is configured with '{configured}' (expected '{secret.username}') or its pods would not "
            "get the new password"
        )
    checks = endpoints_answer(secret.username, deps)
    try:
        with (
            deps.connector.connect(secret, database=secret.dbname) as connection,
            connection.cursor() as cursor,
        ):
            cursor.execute("SELECT CURRENT_USER()")
            logged_in = str(cursor.fetchone()[0])
    except pymysql.MySQLError as exc:
        raise HealthCheckFailedError(
            f"login as '{secret.username}' failed (MySQL error {exc.args[0] if exc.args else '?'})"
        ) from None
    checks.append(f"login as {logged_in}")
    if deps.settings.api_key_secret_arn:
        checks.append(api_call(deps.settings.api_key_secret_arn, deps))
    return ConfirmOutput(user=secret.username, checks=checks)
