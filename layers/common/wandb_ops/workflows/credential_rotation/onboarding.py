"""Onboarding: a new application user, created as the master user, and its secret. Only ever a new
account: one that exists already is refused unless this run made it (a retry finds this run's
secret version, whose password logs in)."""

import json
from typing import TYPE_CHECKING, Any

import pymysql

from wandb_ops.access.mysql.accounts import AccountRetirer, database_grant_name, database_wildcards_apply
from wandb_ops.access.mysql.connector import DbSecret, logged_in_account, logs_in_as_itself
from wandb_ops.workflows.credential_rotation.app_secret import (
    app_secret,
    describe,
    read,
    rotation_token,
    version_with,
)
from wandb_ops.workflows.credential_rotation.errors import CutoverError
from wandb_ops.workflows.credential_rotation.tasks import Plan, SecretRef
from wandb_ops.workflows.credential_rotation.wandb_config import WandbTarget

if TYPE_CHECKING:
    from wandb_ops.workflows.credential_rotation.steps import Deps

SYSTEM_SCHEMAS = frozenset({"mysql", "sys", "performance_schema", "information_schema"})


def onboard(plan: Plan, execution: str, deps: "Deps") -> Plan:
    """Create the application user and its secret; the plan's new side becomes this run's version."""
    assert plan.old and plan.new
    wandb = deps.wandb().read()
    master_connection = deps.master.connection(plan.old.secret_arn, CutoverError)
    if not master_connection.is_this_database(wandb.host, wandb.port):
        raise CutoverError(
            f"W&B connects to {wandb.host}:{wandb.port}, which is not {master_connection.where}: onboarding only "
            "creates users on that database (the master password goes nowhere else). Nothing was changed"
        )
    master, user, token = master_connection.secret, plan.new_user, rotation_token(execution)
    refuse_unless_wandb_holds_the_master_password(deps.wandb(), master.password)
    _refuse_another_database(wandb.database, deps)
    existing = describe(deps.settings.database_secret, deps)
    ours = _onboarding_version(existing, user, deps)
    try:
        with deps.connector.connect(master) as connection:
            if user == logged_in_account(connection)[0]:
                raise CutoverError(f"'{user}' is the master user: onboarding never touches it. Nothing was changed")
            exists = bool(AccountRetirer(connection).hosts(user))
            wildcards = database_wildcards_apply(connection)
    except pymysql.MySQLError as exc:
        raise _master_failed(master, "reading the accounts", exc) from None
    if exists and ours is None:
        raise CutoverError(
            f"a database user '{user}' exists already and was not created by this onboarding run: onboarding never "
            "gives an existing account a password or privileges. Drop it if it is a leftover of an earlier "
            "onboarding, or set the stack parameter ApplicationUserName to a new name; nothing was changed"
        )
    if ours is None:
        server = {"engine": master.engine, "host": wandb.host, "port": wandb.port, "ssl": master.ssl}
        _write_application_secret(
            existing,
            token,
            {**server, "username": user, "dbname": wandb.database, "masterarn": plan.old.secret_arn},
            deps,
        )
    app_ref = SecretRef(secret_arn=app_secret(deps)["ARN"], version_id=ours or token)
    app = read(app_ref, deps)
    if exists:
        _prove_login(app, deps)
    try:
        with deps.connector.connect(master) as connection, connection.cursor() as cursor:
            if not exists:
                cursor.execute("CREATE USER %s@'%%' IDENTIFIED BY %s", (user, app.password))
            database = database_grant_name(wandb.database, wildcards)
            cursor.execute(f"GRANT {deps.settings.app_privileges} ON {database}.* TO %s@'%%'", (user,))
    except pymysql.MySQLError as exc:
        raise _master_failed(master, f"creating '{user}'", exc) from None
    return plan.model_copy(update={"new": app_ref, "new_user": user})


def refuse_unless_wandb_holds_the_master_password(target: WandbTarget, password: str) -> None:
    """Onboarding's rollback puts the master user back into W&B's settings: only ever what W&B already
    holds, never a master password W&B's settings do not carry (RDS may have rotated it since)."""
    if not target.holds(password):
        raise CutoverError(
            f"{target.description} does not hold the master secret's current password: W&B is on a master password "
            "that has changed since (RDS-managed rotation?). Onboarding's rollback would write the current one into "
            "W&B's settings, so it is refused; put W&B on the current master password first (docs/rotation.md)"
        )


def _onboarding_version(existing: dict[str, Any] | None, user: str, deps: "Deps") -> str | None:
    """The AWSCURRENT version of the application secret if an onboarding run of this stack wrote it for
    ``user`` (its password is one this product made for that user and version): then the user it names,
    if it exists, is that run's. A retry, or a re-run after a failed onboarding, continues with it."""
    if existing is None:
        return None
    version = version_with(existing.get("VersionIdsToStages", {}), "AWSCURRENT")
    if not version:
        return None
    current = read(SecretRef(secret_arn=existing["ARN"], version_id=version), deps)
    if current.username == user and deps.mint.is_ours("onboarding", user, version, current.password):
        return version
    return None


def _refuse_another_database(database: str, deps: "Deps") -> None:
    """Onboarding grants on the database W&B's settings name: only ever the W&B database RDS created."""
    expected = deps.master.database_name()
    if database.lower() in SYSTEM_SCHEMAS or (expected and database != expected):
        raise CutoverError(
            f"W&B's settings name the database '{database}', not the W&B database"
            f"{f' {expected!r} (from RDS)' if expected else ''}: onboarding grants only on that one. Fix W&B's "
            "database setting; nothing was changed"
        )


def _write_application_secret(
    existing: dict[str, Any] | None, token: str, fields: dict[str, Any], deps: "Deps"
) -> None:
    """This run's version of the application secret, AWSCURRENT: a password this product made (provably,
    wandb_ops.access.password_proof), never one found in a secret someone else may have written."""
    settings = deps.settings
    password = deps.mint.password("onboarding", fields["username"], token)
    value = json.dumps({**fields, "password": password})
    if existing is None:
        deps.secretsmanager.create_secret(
            Name=settings.database_secret,
            ClientRequestToken=token,
            Description=f"W&B application database user of {settings.namespace}, rotated by wandb-ops",
            SecretString=value,
            Tags=[{"Key": "managed-by", "Value": "wandb-ops"}],
        )
    else:
        deps.secretsmanager.put_secret_value(
            SecretId=existing["ARN"], ClientRequestToken=token, SecretString=value, VersionStages=["AWSCURRENT"]
        )


def _prove_login(app: DbSecret, deps: "Deps") -> None:
    if logs_in_as_itself(deps.connector, app):
        return
    raise CutoverError(
        f"a database user '{app.username}' exists and this run's password does not log in as it: it was not "
        "created by this onboarding run and is left alone. Drop it or choose another ApplicationUserName"
    )


def _master_failed(master: DbSecret, action: str, exc: pymysql.MySQLError) -> CutoverError:
    return CutoverError(
        f"{action} as master user '{master.username}' on {master.host}:{master.port} failed "
        f"(MySQL error {exc.args[0] if exc.args else '?'}). Nothing was changed in W&B"
    )
