"""Secrets Manager rotation of a MySQL / MariaDB user, multi-user style: each rotation
creates a new user (name derived from the base name and the token), makes it an exact
clone of the current one as the master user, proves it, then moves AWSCURRENT to it.
The old user stays: the cut-over workflow removes it once W&B no longer uses it.

The application secret is not trusted (anyone allowed to write it must gain nothing): the
master password goes only to this database (``wandb_ops.access.mysql.master``), the current credentials
must log in before anything is done, the master user is never cloned, and an account that
exists already is never given a password or grants.

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

from wandb_ops.access.mysql.accounts import AccountCloner
from wandb_ops.access.mysql.connector import Connector, DbSecret, load_db_secret, logged_in_account, logs_in_as_itself
from wandb_ops.access.mysql.grammar import GrammarError
from wandb_ops.access.mysql.master import MasterAccess
from wandb_ops.access.password_proof import PasswordMint
from wandb_ops.core.aws import error_code
from wandb_ops.core.errors import WandbOpsError
from wandb_ops.core.observability import logger

STEPS = ("createSecret", "setSecret", "testSecret", "finishSecret")
MAX_USERNAME = 32  # MySQL's limit (MariaDB allows 80)
_ROTATION_SUFFIX = re.compile(r"_r[0-9a-f]{8}$")


class RotationError(WandbOpsError):
    """A rotation step cannot complete; the message names the step, the user and the cause."""


@dataclass(frozen=True)
class RotationDeps:
    secretsmanager: Any
    connector: Connector
    master: MasterAccess
    mint: PasswordMint  # the new user's password, provably this function's (wandb_ops.access.password_proof)


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


def _load(deps: RotationDeps, secret_id: str, what: str, **version: str) -> DbSecret:
    return load_db_secret(deps.secretsmanager, secret_id, what, RotationError, **version)


def _pending(deps: RotationDeps, secret_id: str, token: str) -> DbSecret:
    return _load(deps, secret_id, "pending", VersionId=token, VersionStage="AWSPENDING")


def _current(deps: RotationDeps, secret_id: str) -> DbSecret:
    return _load(deps, secret_id, "current", VersionStage="AWSCURRENT")


def _master(deps: RotationDeps, step: str, secret_id: str, current: DbSecret) -> DbSecret:
    """The master connection for the current user's server, refused unless that server is this database."""
    if not current.masterarn:
        raise RotationError(
            f"{step}: secret {secret_id} has no 'masterarn': add the ARN of the secret of a user "
            "that may create users and grant (the Aurora master user)"
        )
    try:
        master = deps.master.connection(current.masterarn, RotationError, current.engine)
        return master.for_server_of(current, "application secret", RotationError)
    except RotationError as exc:
        raise RotationError(f"{step}: {exc}") from None


def _vetted_master(deps: RotationDeps, step: str, secret_id: str, current: DbSecret) -> DbSecret:
    """Before anything is created: the master connection, once the current credentials are proven
    (they log in as the user they name, whose every host entry has that one password) and that user
    is not the master user."""
    master = _master(deps, step, secret_id, current)
    if current.username == master.username:
        raise _master_refused(step, current.username)
    try:
        with deps.connector.connect(current) as connection:
            current_account = logged_in_account(connection)
    except pymysql.MySQLError as exc:
        raise _login_refused(deps, step, current, master, exc) from None
    if current_account[0] != current.username:
        raise RotationError(
            f"{step}: the AWSCURRENT credentials of '{current.username}' log in as '{current_account[0]}'@"
            f"'{current_account[1]}' (an anonymous or proxied account), not as that user: refused, nothing was created"
        )
    try:
        with deps.connector.connect(master) as connection:
            master_account = logged_in_account(connection)
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT COUNT(DISTINCT authentication_string), COUNT(DISTINCT plugin) FROM mysql.user "
                    "WHERE User = %s",
                    (current.username,),
                )
                passwords, plugins = cursor.fetchone()
    except pymysql.MySQLError as exc:
        action = f"reading the accounts of '{current.username}' as master user '{master.username}'"
        raise _mysql_error(step, action, exc, current, master) from None
    if master_account[0] == current_account[0]:
        raise _master_refused(step, current.username)
    if passwords > 1 or plugins > 1:
        # The clone copies every host entry; the login proved the password of one. Entries with another
        # password are separate accounts whose privileges the secret's writer may not have.
        raise RotationError(
            f"{step}: '{current.username}' has host entries with different passwords or authentication plugins: "
            "the secret's password proves only one of them, so they are not cloned. Give every entry the same "
            "password (or keep one entry); nothing was created"
        )
    return master


def _master_refused(step: str, user: str) -> RotationError:
    return RotationError(
        f"{step}: the AWSCURRENT user '{user}' is the master user: it is never cloned (the clone would get the "
        "master's power). Move W&B onto an application user first (onboarding, docs/rotation.md) and rotate the "
        "master with RDS-managed rotation (ManageMasterUserPassword); nothing was created"
    )


def _login_refused(
    deps: RotationDeps, step: str, current: DbSecret, master: DbSecret, exc: pymysql.MySQLError
) -> RotationError:
    """Why the current credentials do not log in, in words: a missing client certificate or TLS
    setting the account requires, or a password that does not work."""
    code = exc.args[0] if exc.args else "?"
    reason = f"the password in AWSCURRENT does not log in as '{current.username}' (MySQL error {code})"
    try:
        with deps.connector.connect(master) as connection:
            cloner = AccountCloner(connection)
            required = {cloner.tls(current.username, host).ssl_type for host in cloner.hosts(current.username)}
    except (pymysql.MySQLError, LookupError, ValueError):
        required = set()
    if required & {"X509", "SPECIFIED"} and not (current.ssl_cert and current.ssl_key):
        reason = (
            f"'{current.username}' requires a client certificate (REQUIRE X509 / SUBJECT / ISSUER) and the secret "
            "has none: add 'ssl_cert' and 'ssl_key' (PEM) to it"
        )
    elif required - {""} and not current.ssl:
        reason = f"'{current.username}' requires TLS and the secret says \"ssl\": false: set it to true"
    return RotationError(f"{step}: {reason}. The secret is refused; nothing was created")


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
    _vetted_master(deps, "createSecret", secret_id, current)
    username = rotated_username(current.username, token)
    password = deps.mint.password("rotation", username, token)
    pending = {**current.model_dump(exclude_none=True), "username": username, "password": password}
    deps.secretsmanager.put_secret_value(
        SecretId=secret_id, ClientRequestToken=token, SecretString=json.dumps(pending), VersionStages=["AWSPENDING"]
    )
    logger.info("pending version created", extra={"version": token, "new_user": username})
    return f"created pending user name {username}"


def _set_secret(deps: RotationDeps, secret_id: str, token: str, stages: dict[str, list[str]]) -> str:
    current = _current(deps, secret_id)
    pending = _pending(deps, secret_id, token)
    _refuse_unexpected_pending(deps, current, pending, token)
    master = _vetted_master(deps, "setSecret", secret_id, current)
    try:
        with deps.connector.connect(master) as connection:
            cloner = AccountCloner(connection)
            if cloner.hosts(pending.username):
                _refuse_foreign_account(deps, pending)  # a retry after a crash: only our own half-made clone
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


def _refuse_unexpected_pending(deps: RotationDeps, current: DbSecret, pending: DbSecret, token: str) -> None:
    """The pending version may differ from AWSCURRENT only by the user createSecret names for this
    token and the password it made for it: anything else was written by someone else."""
    expected = rotated_username(current.username, token)
    if pending.username != expected:
        raise RotationError(
            f"setSecret: the pending version names user '{pending.username}', not '{expected}' (the name this "
            "rotation derives from the current user and the token): refused, nothing was changed"
        )
    if not deps.mint.is_ours("rotation", pending.username, token, pending.password):
        raise RotationError(
            "setSecret: the pending version's password was not made by this stack's rotation function (someone "
            "else wrote the version): refused, nothing was changed. Cancel this rotation (docs/rotation.md)"
        )
    changed = sorted(
        key
        for key in {*current.model_dump(), *pending.model_dump()} - {"username", "password"}
        if current.model_dump().get(key) != pending.model_dump().get(key)
    )
    if changed:
        raise RotationError(
            f"setSecret: the pending version changes {', '.join(changed)} of the current one: only the user name and "
            "password may change in a rotation; refused, nothing was changed"
        )


def _refuse_foreign_account(deps: RotationDeps, pending: DbSecret) -> None:
    """The pending user exists already: finish it only if the pending password logs in as it (this
    rotation made it and crashed); never give an account that was already there a password or grants."""
    if logs_in_as_itself(deps.connector, pending):
        return
    raise RotationError(
        f"setSecret: user '{pending.username}' exists already and the pending password does not log in as it: "
        "it was not made by this rotation, so it is left alone. Cancel this rotation (docs/rotation.md, "
        "'A rotation failed') and find out who created that user"
    )


def _test_secret(deps: RotationDeps, secret_id: str, token: str, stages: dict[str, list[str]]) -> str:
    current = _current(deps, secret_id)
    pending = _pending(deps, secret_id, token)
    _refuse_unexpected_pending(deps, current, pending, token)
    master = _master(deps, "testSecret", secret_id, current)
    try:
        with deps.connector.connect(pending, database=pending.dbname) as connection, connection.cursor() as cursor:
            cursor.execute("SELECT CURRENT_USER()")
            logged_in_as = str(cursor.fetchone()[0])
    except pymysql.MySQLError as exc:
        raise _mysql_error("testSecret", f"login as '{pending.username}'", exc, current, pending, master) from None
    if logged_in_as.rpartition("@")[0] != pending.username:
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
