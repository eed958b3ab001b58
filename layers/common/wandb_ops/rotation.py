"""Secrets Manager rotation of a MySQL / MariaDB user, multi-user style: each rotation
creates a new user (name derived from the base name and the token), makes it an exact
clone of the current one as the master user, proves it, then moves AWSCURRENT to it.
The old user stays: the cut-over workflow removes it once W&B no longer uses it.

Every step is idempotent and may be retried at any point (Secrets Manager retries).
Passwords never reach a log line or an error message.
"""

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

import pymysql
from botocore.exceptions import ClientError

from wandb_ops.aws import error_code
from wandb_ops.errors import WandbOpsError
from wandb_ops.mysql_accounts import AccountCloner, Connector, DbSecret, load_db_secret
from wandb_ops.mysql_grammar import GrammarError
from wandb_ops.observability import logger

STEPS = ("createSecret", "setSecret", "testSecret", "finishSecret")
MAX_USERNAME = 32  # MySQL's limit (MariaDB allows 80)
_ROTATION_SUFFIX = re.compile(r"_r[0-9a-f]{8}$")


class RotationError(WandbOpsError):
    """A rotation step cannot complete; the message names the step, the user and the cause."""


@dataclass(frozen=True)
class RotationDeps:
    secretsmanager: Any
    connector: Connector
    password_length: int = 32


def rotated_username(current: str, token: str) -> str:
    """A new name each rotation, stable for a token, derived from the base name, at most 32 characters."""
    base = _ROTATION_SUFFIX.sub("", current)
    suffix = "_r" + hashlib.sha256(token.encode()).hexdigest()[:8]
    return base[: MAX_USERNAME - len(suffix)] + suffix


def rotate(deps: RotationDeps, step: str, secret_id: str, token: str) -> str:
    if step not in STEPS:
        raise RotationError(f"unknown rotation step {step!r}; expected one of {', '.join(STEPS)}")
    metadata = deps.secretsmanager.describe_secret(SecretId=secret_id)
    if not metadata.get("RotationEnabled"):
        raise RotationError(f"{step}: rotation is not enabled for secret {secret_id}")
    stages = metadata.get("VersionIdsToStages", {})
    if token not in stages:
        raise RotationError(f"{step}: secret version {token} does not exist: it was not staged for rotation")
    if "AWSCURRENT" in stages[token]:
        if step == "finishSecret" and "AWSPENDING" in stages[token]:
            _clear_pending(deps, secret_id, token)  # a retried finish that stopped before this
        logger.info("version already current: nothing to do", extra={"step": step, "version": token})
        return "already current"
    if "AWSPENDING" not in stages[token]:
        raise RotationError(f"{step}: secret version {token} is not staged AWSPENDING")
    handlers = {
        "createSecret": _create_secret,
        "setSecret": _set_secret,
        "testSecret": _test_secret,
        "finishSecret": _finish_secret,
    }
    return handlers[step](deps, secret_id, token, stages)


# ---------------------------------------------------------------- reading secrets


def _load(
    deps: RotationDeps, secret_id: str, what: str, defaults: dict[str, Any] | None = None, **version: str
) -> DbSecret:
    return load_db_secret(deps.secretsmanager, secret_id, what, RotationError, defaults, **version)


def _pending(deps: RotationDeps, secret_id: str, token: str) -> DbSecret:
    return _load(deps, secret_id, "pending", VersionId=token, VersionStage="AWSPENDING")


def _current(deps: RotationDeps, secret_id: str) -> DbSecret:
    return _load(deps, secret_id, "current", VersionStage="AWSCURRENT")


def _master(deps: RotationDeps, secret_id: str, current: DbSecret) -> DbSecret:
    if not current.masterarn:
        raise RotationError(
            f"setSecret: secret {secret_id} has no 'masterarn': add the ARN of the secret of a user "
            "that may create users and grant (the Aurora master user)"
        )
    # An RDS-managed master secret holds only username and password: the server is the current user's.
    return _load(deps, current.masterarn, "master", defaults=current.server(), VersionStage="AWSCURRENT")


def _mysql_error(step: str, action: str, exc: pymysql.MySQLError, *secrets: DbSecret) -> RotationError:
    code = exc.args[0] if exc.args else "?"
    message = str(exc.args[1]) if len(exc.args) > 1 else str(exc)
    for secret in secrets:  # a server error can quote a statement back: never let a password through
        message = message.replace(secret.password, "***")
    return RotationError(f"{step}: {action} failed (MySQL error {code}): {message}")


# ---------------------------------------------------------------- the four steps


def _create_secret(deps: RotationDeps, secret_id: str, token: str, stages: dict[str, list[str]]) -> str:
    current = _current(deps, secret_id)
    try:
        existing = deps.secretsmanager.get_secret_value(SecretId=secret_id, VersionId=token, VersionStage="AWSPENDING")
        if existing.get("SecretString"):
            logger.info("pending version exists already", extra={"version": token})
            return "pending exists"
    except ClientError as exc:
        if error_code(exc) != "ResourceNotFoundException":
            raise
    username = rotated_username(current.username, token)
    password = deps.secretsmanager.get_random_password(
        PasswordLength=deps.password_length, ExcludePunctuation=True, IncludeSpace=False
    )["RandomPassword"]
    pending = {**current.model_dump(exclude_none=True), "username": username, "password": password}
    deps.secretsmanager.put_secret_value(
        SecretId=secret_id, ClientRequestToken=token, SecretString=json.dumps(pending), VersionStages=["AWSPENDING"]
    )
    logger.info("pending version created", extra={"version": token, "new_user": username})
    return f"created pending user name {username}"


def _set_secret(deps: RotationDeps, secret_id: str, token: str, stages: dict[str, list[str]]) -> str:
    current = _current(deps, secret_id)
    pending = _pending(deps, secret_id, token)
    master = _master(deps, secret_id, current)
    if (pending.host, pending.port) != (current.host, current.port):
        raise RotationError("setSecret: the pending secret points at another server than the current one")
    if (master.host, master.port) != (current.host, current.port):
        raise RotationError(
            f"setSecret: the master secret {current.masterarn} is for {master.host}:{master.port}, "
            f"but the application user is on {current.host}:{current.port}: point 'masterarn' at that server's master"
        )
    try:
        with deps.connector.connect(master) as connection:
            cloner = AccountCloner(connection)
            applied = cloner.clone(current.username, pending.username, pending.password)
    except pymysql.MySQLError as exc:
        raise _mysql_error(
            "setSecret",
            f"cloning '{current.username}' to '{pending.username}' as master user '{master.username}' "
            f"on {master.host}:{master.port}",
            exc,
            current,
            pending,
            master,
        ) from None
    except (LookupError, ValueError, GrammarError) as exc:
        raise RotationError(f"setSecret: cannot clone '{current.username}' to '{pending.username}': {exc}") from None
    logger.info("clone converged", extra={"new_user": pending.username, "applied": applied})
    return f"{pending.username} is a clone of {current.username} ({len(applied)} statements applied)"


def _test_secret(deps: RotationDeps, secret_id: str, token: str, stages: dict[str, list[str]]) -> str:
    current = _current(deps, secret_id)
    pending = _pending(deps, secret_id, token)
    master = _master(deps, secret_id, current)
    try:
        with deps.connector.connect(pending, database=pending.dbname) as connection, connection.cursor() as cursor:
            cursor.execute("SELECT CURRENT_USER()")
            logged_in_as = str(cursor.fetchone()[0])
    except pymysql.MySQLError as exc:
        raise _mysql_error("testSecret", f"login as '{pending.username}'", exc, current, pending, master) from None
    if logged_in_as.rsplit("@", 1)[0] != pending.username:
        raise RotationError(f"testSecret: logged in as {logged_in_as}, not '{pending.username}'")
    try:
        with deps.connector.connect(master) as connection:
            differences = AccountCloner(connection).differences(current.username, pending.username)
    except pymysql.MySQLError as exc:
        raise _mysql_error("testSecret", "comparing the users as master", exc, current, pending, master) from None
    if differences:
        raise RotationError(
            f"testSecret: '{pending.username}' is not an exact clone of '{current.username}': " + "; ".join(differences)
        )
    return f"{pending.username} logs in and has exactly the grants and options of {current.username}"


def _finish_secret(deps: RotationDeps, secret_id: str, token: str, stages: dict[str, list[str]]) -> str:
    current_version = next((version for version, labels in stages.items() if "AWSCURRENT" in labels), None)
    deps.secretsmanager.update_secret_version_stage(
        SecretId=secret_id, VersionStage="AWSCURRENT", MoveToVersionId=token, RemoveFromVersionId=current_version
    )
    _clear_pending(deps, secret_id, token)
    logger.info("AWSCURRENT moved", extra={"from_version": current_version, "to_version": token})
    return f"AWSCURRENT moved to {token}"


def _clear_pending(deps: RotationDeps, secret_id: str, token: str) -> None:
    """End the rotation with no AWSPENDING label anywhere, a state every rotation client reads as finished."""
    deps.secretsmanager.update_secret_version_stage(
        SecretId=secret_id, VersionStage="AWSPENDING", RemoveFromVersionId=token
    )
