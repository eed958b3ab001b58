"""The W&B application secret as the cut-over reads it: its versions, their users, the master
user it names, and the version ids this workflow makes."""

import uuid
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from wandb_ops.access.mysql.connector import DbSecret, load_db_secret
from wandb_ops.core.aws import error_code
from wandb_ops.workflows.credential_rotation.errors import CutoverError
from wandb_ops.workflows.credential_rotation.tasks import Plan, SecretRef

if TYPE_CHECKING:
    from wandb_ops.workflows.credential_rotation.steps import Deps

VERSION_PREFIX = "wandb-ops-"  # the versions this workflow creates, recognisable in the secret's history


def rotation_token(execution: str) -> str:
    """The ClientRequestToken of this run's rotation: stable across retries, recognisable as ours."""
    return VERSION_PREFIX + str(uuid.uuid5(uuid.NAMESPACE_URL, execution))


def read(ref: SecretRef, deps: "Deps") -> DbSecret:
    """A version of the application secret (AWSCURRENT when the reference names none)."""
    version = {"VersionId": ref.version_id} if ref.version_id else {"VersionStage": "AWSCURRENT"}
    return load_db_secret(deps.secretsmanager, ref.secret_arn, "application", CutoverError, **version)


def describe(secret_id: str, deps: "Deps") -> dict[str, Any] | None:
    """DescribeSecret, or None when the secret does not exist."""
    try:
        described: dict[str, Any] = deps.secretsmanager.describe_secret(SecretId=secret_id)
    except ClientError as exc:
        if error_code(exc) == "ResourceNotFoundException":
            return None
        raise
    return described


def app_secret(deps: "Deps") -> dict[str, Any]:
    """DescribeSecret of the application secret, which must exist (onboarding creates it)."""
    described = describe(deps.settings.database_secret, deps)
    if described is None:
        raise CutoverError(
            f"the W&B application secret {deps.settings.database_secret} does not exist: run onboarding first "
            '(start the workflow with {"action": "onboard"}; docs/rotation.md)'
        )
    return described


def credentials(ref: SecretRef, plan: Plan, deps: "Deps") -> DbSecret:
    """A side of the switch: the application secret's version, or (onboarding) the master user on
    the server its credentials may go to (wandb_ops.access.mysql.master)."""
    if plan.mode == "onboard" and ref == plan.old:
        return deps.master.connection(ref.secret_arn, CutoverError).secret
    return read(ref, deps)


def master_user(app: DbSecret, deps: "Deps") -> str:
    """The master user the application secret names (its 'masterarn')."""
    if not app.masterarn:
        raise CutoverError(
            "the application secret has no 'masterarn': onboarding writes it; add the master secret's ARN"
        )
    return deps.master.load(app.masterarn, CutoverError).username


def version_with(stages: dict[str, list[str]], label: str) -> str:
    for version, labels in stages.items():
        if label in labels:
            return version
    return ""
