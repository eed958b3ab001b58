"""The W&B credential cut-over, one function action per state-machine step (docs/rotation.md,
"What happens, in order"):

preflight -> rotate (Secrets Manager, multi-user) | onboard -> apply the new user to W&B ->
restart its deployments -> wait for the rollout -> confirm W&B works -> retire the old user;
on a failure in apply..confirm, the same steps back to the old user, AWSCURRENT moved back.

The state carries a ``Plan``: secret ARNs, version ids and user names, never a password.
Every action can be retried: each one first looks at what is already done.
"""

import base64
import contextlib
import json
import os
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import pymysql
import urllib3
from botocore.exceptions import ClientError
from pydantic import Field, RootModel

from wandb_ops.access.kubernetes.api import KubernetesApi
from wandb_ops.access.mysql.accounts import AccountRetirer, database_grant_name, database_wildcards_apply
from wandb_ops.access.mysql.connector import (
    DEFAULT_CA_BUNDLE,
    Connector,
    DbSecret,
    load_db_secret,
    logged_in_account,
    logs_in_as_itself,
)
from wandb_ops.access.mysql.master import MasterAccess
from wandb_ops.access.password_proof import PasswordMint
from wandb_ops.core.aws import error_code
from wandb_ops.core.errors import ConfigurationError, WandbOpsError
from wandb_ops.core.models import StrictModel
from wandb_ops.core.polling import backoff
from wandb_ops.core.settings import whole_number
from wandb_ops.workflows.credential_rotation.rollout import (
    RolloutFailedError,
    refuse_paused,
    restart_patch,
    restarted_for,
    rollout_status,
)
from wandb_ops.workflows.credential_rotation.wandb_config import TargetKind, WandbTarget
from wandb_ops.workflows.secret_rotation.rotation import rotated_username

VERSION_PREFIX = "wandb-ops-"  # the versions this workflow creates, recognisable in the secret's history
SYSTEM_SCHEMAS = frozenset({"mysql", "sys", "performance_schema", "information_schema"})
PRIVILEGES = frozenset(
    {
        "ALL PRIVILEGES", "ALTER", "ALTER ROUTINE", "CREATE", "CREATE ROUTINE", "CREATE TEMPORARY TABLES",
        "CREATE VIEW", "DELETE", "DROP", "EVENT", "EXECUTE", "INDEX", "INSERT", "LOCK TABLES", "REFERENCES",
        "SELECT", "SHOW VIEW", "TRIGGER", "UPDATE",
    }
)  # fmt: skip


class CutoverError(WandbOpsError):
    """The cut-over cannot go on; the message says what was found and what to do."""


class RotationFailedError(WandbOpsError):
    """The Secrets Manager rotation failed or did not finish in time; W&B was not touched."""


class OperatorNotReconciledError(WandbOpsError):
    """The W&B operator has not caught up with the resource yet; the state machine retries."""


class DrainTimeoutError(WandbOpsError):
    """The old user still has sessions after the drain's bound; it is kept as it is."""


class HealthCheckFailedError(WandbOpsError):
    """W&B does not work on the credentials it was just given (the state machine rolls back)."""


# ---------------------------------------------------------------- settings


@dataclass(frozen=True)
class CutoverSettings:
    namespace: str
    database_secret: str
    master_secret_arn: str | None
    rotation_function_arn: str
    rotation_days: int
    eks_cluster_name: str
    target: TargetKind
    kubernetes_namespace: str
    resource_name: str
    deployments: str
    wandb_url: str | None
    api_key_secret_arn: str | None
    app_username: str
    app_privileges: str
    password_length: int
    mac_key_arn: str
    ca_bundle: Path
    poll_base_seconds: int
    poll_max_seconds: int
    poll_max_attempts: int
    drain_max_attempts: int

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "CutoverSettings":
        env = os.environ if environ is None else environ

        def text(name: str, default: str = "") -> str:
            return env.get(name, default).strip() or default

        namespace = text("WANDB_NAMESPACE")
        if not namespace:
            raise ConfigurationError("WANDB_NAMESPACE is empty: set the stack parameter Namespace")
        target = text("WANDB_TARGET", "operator")
        if target not in ("operator", "legacy-secret"):
            raise ConfigurationError(
                f"WANDB_TARGET={target!r}: set the stack parameter WandbTarget to operator or legacy-secret"
            )
        rotation_function = text("ROTATION_FUNCTION_ARN")
        if not rotation_function:
            raise ConfigurationError("ROTATION_FUNCTION_ARN is empty: the template sets it; redeploy the stack")
        privileges = text("APP_DB_PRIVILEGES", "ALL PRIVILEGES").upper()
        unknown = [p for p in (part.strip() for part in privileges.split(",")) if p not in PRIVILEGES]
        if unknown:
            raise ConfigurationError(
                f"ApplicationUserPrivileges names unknown privileges {unknown}: "
                f"use a comma list of {sorted(PRIVILEGES)}"
            )
        username = text("APP_DB_USERNAME", "wandb_app")
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]{0,22}", username):
            raise ConfigurationError(
                "ApplicationUserName must be a letter then up to 22 letters, digits or underscores "
                "(rotation appends 10 characters within MySQL's 32)"
            )
        return cls(
            namespace=namespace,
            database_secret=text("WANDB_DATABASE_SECRET_ARN") or f"wandb-ops/{namespace}/mysql-app",
            master_secret_arn=text("MASTER_SECRET_ARN") or None,
            rotation_function_arn=rotation_function,
            rotation_days=whole_number(env, "ROTATION_DAYS", "(template)", 1, 1000),
            eks_cluster_name=text("WANDB_EKS_CLUSTER_NAME") or namespace,
            target=target,  # type: ignore[arg-type]
            kubernetes_namespace=text("WANDB_K8S_NAMESPACE", "default"),
            resource_name=text("WANDB_RESOURCE_NAME", "wandb"),
            deployments=text("WANDB_DEPLOYMENTS", "app.kubernetes.io/instance=wandb"),
            wandb_url=text("WANDB_URL").rstrip("/") or None,
            api_key_secret_arn=text("WANDB_API_KEY_SECRET_ARN") or None,
            app_username=username,
            app_privileges=privileges,
            password_length=whole_number(env, "ROTATION_PASSWORD_LENGTH", "RotationPasswordLength", 16, 128),
            mac_key_arn=_required(text("CREDENTIAL_MAC_KEY_ARN"), "CREDENTIAL_MAC_KEY_ARN"),
            ca_bundle=Path(text("DB_CA_BUNDLE") or DEFAULT_CA_BUNDLE),
            poll_base_seconds=whole_number(env, "POLL_BASE_SECONDS", "(template)", 0, 3600),
            poll_max_seconds=whole_number(env, "POLL_MAX_SECONDS", "(template)", 0, 3600),
            poll_max_attempts=whole_number(env, "POLL_MAX_ATTEMPTS", "(template)", 1, 1000),
            drain_max_attempts=whole_number(env, "DRAIN_MAX_ATTEMPTS", "DrainMaxChecks", 1, 1000),
        )


def _required(value: str, name: str) -> str:
    if not value:
        raise ConfigurationError(f"{name} is empty: the template sets it; redeploy the stack")
    return value


# ---------------------------------------------------------------- state shapes


class CutoverRequest(StrictModel):
    """Workflow input. ``rotate``: rotate the secret, then switch W&B. ``switch``: the secret was
    rotated elsewhere (Secrets Manager's schedule, the RotationSucceeded event): switch W&B to it.
    ``onboard``: move W&B off the master user onto a new application user (run once).
    ``dry_run``: check everything and report the plan; change nothing."""

    action: Literal["rotate", "switch", "onboard"] = "rotate"
    dry_run: bool = False
    source: Literal["schedule", "console", "event", "demo", "test"] = "console"


class SecretRef(StrictModel):
    secret_arn: str
    version_id: str | None = None  # None: whatever is AWSCURRENT when read (an RDS-managed master secret)


class Plan(StrictModel):
    mode: Literal["rotate", "switch", "onboard", "nothing"]
    dry_run: bool = False
    reason: str = ""
    old: SecretRef | None = None
    new: SecretRef | None = None
    old_user: str = ""
    new_user: str = ""
    restore_current_on_rollback: bool = False
    retire_old: bool = False
    deployments: list[str] = Field(default_factory=list)


class PreflightTask(StrictModel):
    action: Literal["preflight"]
    input: CutoverRequest
    execution: str = Field(min_length=1)


class PlanTask(StrictModel):
    action: Literal["rotate", "onboard", "restore_current"]
    plan: Plan
    execution: str = ""


class PollTask(StrictModel):
    action: Literal["rotation_status", "rollout_status"]
    plan: Plan
    attempt: int = Field(default=0, ge=0)


class SwitchTask(StrictModel):
    action: Literal["apply", "restart", "confirm"]
    plan: Plan
    to: Literal["new", "old"]
    execution: str = ""


class RetireTask(StrictModel):
    action: Literal["retire"]
    plan: Plan
    which: Literal["old", "new"]
    attempt: int = Field(default=0, ge=0)


Outcome = Literal["switched", "retire_failed", "nothing", "dry_run", "failed", "rolled_back", "rollback_failed"]


class ReportTask(StrictModel):
    action: Literal["report"]
    outcome: Outcome
    run: dict[str, Any]


class CutoverTask(
    RootModel[
        Annotated[
            PreflightTask | PlanTask | PollTask | SwitchTask | RetireTask | ReportTask, Field(discriminator="action")
        ]
    ]
):
    pass


# ---------------------------------------------------------------- dependencies


@dataclass(frozen=True)
class HttpResponse:
    status: int
    body: bytes


@dataclass
class CutoverDeps:
    secretsmanager: Any
    stepfunctions: Any
    kubernetes: Callable[[], KubernetesApi]
    target: Callable[[KubernetesApi], WandbTarget]
    connector: Connector
    master: MasterAccess
    mint: PasswordMint  # passwords this product makes, and the proof that it made them
    http: Callable[[str, str, dict[str, str], bytes | None], HttpResponse]  # method, url, headers, body
    now: Callable[[], datetime]
    _api: KubernetesApi | None = None

    def api(self) -> KubernetesApi:
        if self._api is None:
            self._api = self.kubernetes()
        return self._api

    def wandb(self) -> WandbTarget:
        return self.target(self.api())


class Cutover:
    def __init__(self, settings: CutoverSettings, deps: CutoverDeps) -> None:
        self.settings, self.deps = settings, deps

    # ------------------------------------------------------------ secrets

    def _read(self, ref: SecretRef, what: str) -> DbSecret:
        version = {"VersionId": ref.version_id} if ref.version_id else {"VersionStage": "AWSCURRENT"}
        return load_db_secret(self.deps.secretsmanager, ref.secret_arn, what, CutoverError, **version)

    def _describe(self, secret_id: str) -> dict[str, Any] | None:
        try:
            described: dict[str, Any] = self.deps.secretsmanager.describe_secret(SecretId=secret_id)
        except ClientError as exc:
            if error_code(exc) == "ResourceNotFoundException":
                return None
            raise
        return described

    def _app_secret(self) -> dict[str, Any]:
        described = self._describe(self.settings.database_secret)
        if described is None:
            raise CutoverError(
                f"the W&B application secret {self.settings.database_secret} does not exist: run onboarding first "
                '(start the workflow with {"action": "onboard"}; docs/rotation.md)'
            )
        return described

    def _credentials(self, ref: SecretRef, plan: Plan) -> DbSecret:
        """A side of the switch: the application secret's version, or (onboarding) the master user on
        the server its credentials may go to (wandb_ops.access.mysql.master)."""
        if plan.mode == "onboard" and ref == plan.old:
            return self.deps.master.connection(ref.secret_arn, CutoverError).secret
        return self._read(ref, "application")

    # ------------------------------------------------------------ preflight

    def preflight(self, task: PreflightTask) -> dict[str, Any]:
        request = task.input
        # A RotationSucceeded event arrives while the run that rotated is still switching W&B: that
        # event's run must end quietly ("nothing to do"), so a switch checks for other runs only
        # once it has found work.
        if request.action != "switch":
            self._refuse_concurrent_run(task.execution)
        target = self.deps.wandb()
        wandb = target.read()
        deployments = self._deployments()
        if request.action == "onboard":
            plan = self._plan_onboarding(target, wandb.user)
        else:
            plan = self._plan_switch(request.action, wandb.user, target.description, task.execution)
        plan = plan.model_copy(
            update={"dry_run": request.dry_run, "deployments": [d["metadata"]["name"] for d in deployments]}
        )
        if plan.mode == "nothing":
            return plan.model_dump()
        if request.action == "switch":
            self._refuse_concurrent_run(task.execution)
        refuse_paused(deployments)
        if not self.settings.wandb_url:
            raise ConfigurationError(
                "WANDB_URL is empty: set the stack parameter WandbUrl so the cut-over can confirm W&B works"
            )
        return plan.model_dump()

    def _other_runs(self, execution: str) -> list[str]:
        parts = execution.split(":")
        if len(parts) != 8 or parts[5] != "execution":
            raise CutoverError(f"'execution' must be the execution ARN ($$.Execution.Id), got {execution!r}")
        machine = ":".join([*parts[:5], "stateMachine", parts[6]])
        running = self.deps.stepfunctions.list_executions(stateMachineArn=machine, statusFilter="RUNNING")
        return [e["executionArn"] for e in running.get("executions", []) if e["executionArn"] != execution]

    def _refuse_concurrent_run(self, execution: str) -> None:
        """Two cut-overs at once would rotate from, switch to and drop each other's users."""
        others = self._other_runs(execution)
        if others:
            raise CutoverError(
                f"another credential rotation run is in progress ({others[0]}): wait for it to end, then re-run"
            )

    def _deployments(self) -> list[dict[str, Any]]:
        api, namespace, wanted = self.deps.api(), self.settings.kubernetes_namespace, self.settings.deployments
        if "=" in wanted:
            found = api.list_deployments(namespace, wanted)
            if not found:
                raise ConfigurationError(
                    f"no deployment in namespace {namespace} matches {wanted!r}: "
                    "set the stack parameter WandbDeployments"
                )
            # Read each one as the restart will: a deployment the Role does not name fails here, not mid-switch.
            return [api.get_deployment(namespace, d["metadata"]["name"]) for d in found]
        return [api.get_deployment(namespace, name.strip()) for name in wanted.split(",") if name.strip()]

    def _plan_switch(self, action: str, wandb_user: str, where: str, execution: str) -> Plan:
        described = self._app_secret()
        arn = described["ARN"]
        stages: dict[str, list[str]] = described.get("VersionIdsToStages", {})
        current_version = _version_with(stages, "AWSCURRENT")
        if not current_version:
            raise CutoverError(f"{arn} has no AWSCURRENT version: restore one (docs/rotation.md) before rotating")
        current = self._read(SecretRef(secret_arn=arn, version_id=current_version), "application")
        master_user = self._master_user(current)
        if current.username == master_user:
            raise CutoverError(
                f"{arn} holds the master user '{master_user}': never rotate it by cloning (it would copy "
                "rds_superuser_role). Run onboarding to create an application user; rotate the master with "
                "RDS-managed rotation (docs/rotation.md)"
            )
        previous_version = _version_with(stages, "AWSPREVIOUS")
        previous = (
            self._read(SecretRef(secret_arn=arn, version_id=previous_version), "application")
            if previous_version
            else None
        )
        if action == "switch":
            if wandb_user == current.username:
                return Plan(mode="nothing", reason=f"W&B already uses '{wandb_user}', the AWSCURRENT user of {arn}")
            rotating = [run for run in self._other_runs(execution) if rotation_token(run) == current_version]
            if rotating:  # its own RotationSucceeded event; if that run is gone, switching is this run's job
                return Plan(
                    mode="nothing",
                    reason=f"version {current_version} was made by the running {rotating[0]}, which switches W&B",
                )
            if previous is None or wandb_user != previous.username:
                raise self._drift(wandb_user, where, arn, current.username)
            if not self._made_by_rotation(current_version, previous.username, current):
                raise CutoverError(
                    f"the AWSCURRENT version {current_version} of {arn} was not made by this stack's rotation function "
                    "(its user name or password is not one it makes): W&B is not switched to it. Find out who wrote "
                    "it; nothing was changed"
                )
            return Plan(
                mode="switch",
                old=SecretRef(secret_arn=arn, version_id=previous_version),
                new=SecretRef(secret_arn=arn, version_id=current_version),
                old_user=previous.username,
                new_user=current.username,
                restore_current_on_rollback=True,
                retire_old=True,
            )
        pending = [
            version for version, labels in stages.items() if "AWSPENDING" in labels and "AWSCURRENT" not in labels
        ]
        if pending:
            raise CutoverError(
                f"{arn} has an unfinished rotation (version {pending[0]} is AWSPENDING): Secrets Manager is still "
                "rotating or a rotation failed half-way. Read the rotation function's log, then follow "
                "'A rotation failed' in docs/rotation.md before starting another"
            )
        if wandb_user != current.username:
            if wandb_user == master_user:
                raise CutoverError(
                    f"W&B connects as the master user '{master_user}', not as '{current.username}' of {arn}: "
                    'either onboarding did not finish (re-run it: {"action": "onboard"}) or a terraform apply '
                    "put the master user back (docs/rotation.md, 'Keep terraform in step'). Nothing was changed"
                )
            if previous is not None and wandb_user == previous.username:
                raise CutoverError(
                    f"W&B still uses '{wandb_user}' of the previous version: the secret was rotated without switching "
                    'W&B. Start the workflow with {"action": "switch"} first'
                )
            raise self._drift(wandb_user, where, arn, current.username)
        token = rotation_token(execution)
        return Plan(
            mode="rotate",
            old=SecretRef(secret_arn=arn, version_id=current_version),
            new=SecretRef(secret_arn=arn, version_id=token),
            old_user=current.username,
            new_user=rotated_username(current.username, token),
            restore_current_on_rollback=True,
            retire_old=True,
        )

    def _made_by_rotation(self, version: str, previous_user: str, secret: DbSecret) -> bool:
        """Whether the rotation function made this version: the user name it derives for the token from the
        user before, and the password it made for that user and version."""
        return secret.username == rotated_username(previous_user, version) and self.deps.mint.is_ours(
            "rotation", secret.username, version, secret.password
        )

    def _drift(self, wandb_user: str, where: str, arn: str, current_user: str) -> CutoverError:
        return CutoverError(
            f"W&B connects as '{wandb_user}' ({where}), but the AWSCURRENT user of {arn} is '{current_user}': "
            "something else changed W&B's settings, most likely a terraform apply that put its own values back. "
            "Nothing was changed. Make terraform take the user and password from the secret "
            "(docs/rotation.md, 'Keep terraform in step'), then re-run"
        )

    def _master_user(self, app: DbSecret) -> str:
        if not app.masterarn:
            raise CutoverError(
                "the application secret has no 'masterarn': onboarding writes it; add the master secret's ARN"
            )
        return self.deps.master.load(app.masterarn, CutoverError).username

    def _plan_onboarding(self, target: WandbTarget, wandb_user: str) -> Plan:
        master_arn = self.settings.master_secret_arn
        if not master_arn:
            raise ConfigurationError(
                "onboarding needs the master secret: set the stack parameter MasterSecretArn (the Aurora master "
                "user's secret) and redeploy"
            )
        master = self.deps.master.load(master_arn, CutoverError)
        master_user = master.username
        existing = self._describe(self.settings.database_secret)
        app_user = self.settings.app_username
        if existing is not None:
            current = self._read(SecretRef(secret_arn=existing["ARN"]), "application")
            if wandb_user == current.username:
                return Plan(mode="nothing", reason=f"already onboarded: W&B uses '{wandb_user}' of {existing['ARN']}")
        if app_user == master_user:
            raise ConfigurationError(
                f"ApplicationUserName is '{app_user}', the master user's name: onboarding creates a new user and never "
                "touches the master. Set the stack parameter ApplicationUserName to another name (default wandb_app)"
            )
        if wandb_user != master_user:
            raise CutoverError(
                f"W&B connects as '{wandb_user}', not as the master user '{master_user}' of {master_arn}: onboarding "
                "only moves W&B off the master user. If W&B already has its own user, store it in "
                f"{self.settings.database_secret} with a 'masterarn' instead (docs/rotation.md)"
            )
        _refuse_unless_wandb_holds_the_master_password(target, master.password)
        return Plan(
            mode="onboard",
            old=SecretRef(secret_arn=master_arn),
            new=SecretRef(
                secret_arn=existing["ARN"] if existing else self.settings.database_secret,
                version_id=None,
            ),
            old_user=master_user,
            new_user=app_user,
            restore_current_on_rollback=False,
            retire_old=False,
        )

    # ------------------------------------------------------------ rotate

    def rotate(self, plan: Plan) -> dict[str, Any]:
        assert plan.old and plan.new and plan.new.version_id
        described = self._app_secret()
        token = plan.new.version_id
        if token in described.get("VersionIdsToStages", {}):
            return plan.model_dump()  # a retry: the rotation was started already
        # Name the function every time (AWS accepts the one already configured; the emulator forgets
        # it otherwise); set a schedule only when rotation is off (AWS needs one to turn it on).
        extra: dict[str, Any] = {"RotationLambdaARN": self.settings.rotation_function_arn}
        if not described.get("RotationEnabled"):
            extra["RotationRules"] = {"AutomaticallyAfterDays": self.settings.rotation_days}
        try:
            self.deps.secretsmanager.rotate_secret(
                SecretId=plan.old.secret_arn, ClientRequestToken=token, RotateImmediately=True, **extra
            )
        except ClientError as exc:
            raise RotationFailedError(
                f"Secrets Manager did not rotate {plan.old.secret_arn}: {error_code(exc)}: "
                f"{exc.response.get('Error', {}).get('Message', '')}. W&B was not changed"
            ) from None
        return plan.model_dump()

    def rotation_status(self, plan: Plan, attempt: int) -> dict[str, Any]:
        assert plan.new and plan.new.version_id
        stages = self._app_secret().get("VersionIdsToStages", {})
        labels = stages.get(plan.new.version_id)
        if labels is None:
            raise RotationFailedError(f"version {plan.new.version_id} does not exist: the rotation did not start")
        if "AWSCURRENT" in labels:
            return {"done": True}
        poll = backoff(
            attempt, self.settings.poll_base_seconds, self.settings.poll_max_seconds, self.settings.poll_max_attempts
        )
        if poll["give_up"]:
            raise RotationFailedError(
                f"version {plan.new.version_id} is still {labels} after {attempt + 1} checks: the rotation failed or "
                "hangs. Read the rotation function's log; W&B was not changed (docs/rotation.md, 'A rotation failed')"
            )
        return {"done": False, **poll}

    # ------------------------------------------------------------ onboard

    def onboard(self, plan: Plan, execution: str) -> dict[str, Any]:
        """Create the application user and its secret. Only ever a new account: one that exists already is
        refused unless this run made it (a retry finds this run's secret version, whose password logs in)."""
        assert plan.old and plan.new
        wandb = self.deps.wandb().read()
        master_connection = self.deps.master.connection(plan.old.secret_arn, CutoverError)
        if not master_connection.is_this_database(wandb.host, wandb.port):
            raise CutoverError(
                f"W&B connects to {wandb.host}:{wandb.port}, which is not {master_connection.where}: onboarding only "
                "creates users on that database (the master password goes nowhere else). Nothing was changed"
            )
        master, user, token = master_connection.secret, plan.new_user, rotation_token(execution)
        _refuse_unless_wandb_holds_the_master_password(self.deps.wandb(), master.password)
        self._refuse_another_database(wandb.database)
        existing = self._describe(self.settings.database_secret)
        ours = self._onboarding_version(existing, user)
        try:
            with self.deps.connector.connect(master) as connection:
                if user == logged_in_account(connection)[0]:
                    raise CutoverError(f"'{user}' is the master user: onboarding never touches it. Nothing was changed")
                exists = bool(AccountRetirer(connection).hosts(user))
                wildcards = database_wildcards_apply(connection)
        except pymysql.MySQLError as exc:
            raise self._master_failed(master, "reading the accounts", exc) from None
        if exists and ours is None:
            raise CutoverError(
                f"a database user '{user}' exists already and was not created by this onboarding run: onboarding never "
                "gives an existing account a password or privileges. Drop it if it is a leftover of an earlier "
                "onboarding, or set the stack parameter ApplicationUserName to a new name; nothing was changed"
            )
        if ours is None:
            server = {"engine": master.engine, "host": wandb.host, "port": wandb.port, "ssl": master.ssl}
            self._write_application_secret(
                existing,
                token,
                {**server, "username": user, "dbname": wandb.database, "masterarn": plan.old.secret_arn},
            )
        app_ref = SecretRef(secret_arn=self._app_secret()["ARN"], version_id=ours or token)
        app = self._read(app_ref, "application")
        if exists:
            self._prove_login(app)
        try:
            with self.deps.connector.connect(master) as connection, connection.cursor() as cursor:
                if not exists:
                    cursor.execute("CREATE USER %s@'%%' IDENTIFIED BY %s", (user, app.password))
                database = database_grant_name(wandb.database, wildcards)
                cursor.execute(f"GRANT {self.settings.app_privileges} ON {database}.* TO %s@'%%'", (user,))
        except pymysql.MySQLError as exc:
            raise self._master_failed(master, f"creating '{user}'", exc) from None
        return plan.model_copy(update={"new": app_ref, "new_user": user}).model_dump()

    def _onboarding_version(self, existing: dict[str, Any] | None, user: str) -> str | None:
        """The AWSCURRENT version of the application secret if an onboarding run of this stack wrote it for
        ``user`` (its password is one this product made for that user and version): then the user it names,
        if it exists, is that run's. A retry, or a re-run after a failed onboarding, continues with it."""
        if existing is None:
            return None
        version = _version_with(existing.get("VersionIdsToStages", {}), "AWSCURRENT")
        if not version:
            return None
        current = self._read(SecretRef(secret_arn=existing["ARN"], version_id=version), "application")
        if current.username == user and self.deps.mint.is_ours("onboarding", user, version, current.password):
            return version
        return None

    def _refuse_another_database(self, database: str) -> None:
        """Onboarding grants on the database W&B's settings name: only ever the W&B database RDS created."""
        expected = self.deps.master.database_name()
        if database.lower() in SYSTEM_SCHEMAS or (expected and database != expected):
            raise CutoverError(
                f"W&B's settings name the database '{database}', not the W&B database"
                f"{f' {expected!r} (from RDS)' if expected else ''}: onboarding grants only on that one. Fix W&B's "
                "database setting; nothing was changed"
            )

    def _write_application_secret(self, existing: dict[str, Any] | None, token: str, fields: dict[str, Any]) -> None:
        """This run's version of the application secret, AWSCURRENT: a password this product made (provably,
        wandb_ops.access.password_proof), never one found in a secret someone else may have written."""
        password = self.deps.mint.password("onboarding", fields["username"], token)
        value = json.dumps({**fields, "password": password})
        if existing is None:
            self.deps.secretsmanager.create_secret(
                Name=self.settings.database_secret,
                ClientRequestToken=token,
                Description=f"W&B application database user of {self.settings.namespace}, rotated by wandb-ops",
                SecretString=value,
                Tags=[{"Key": "managed-by", "Value": "wandb-ops"}],
            )
        else:
            self.deps.secretsmanager.put_secret_value(
                SecretId=existing["ARN"], ClientRequestToken=token, SecretString=value, VersionStages=["AWSCURRENT"]
            )

    def _prove_login(self, app: DbSecret) -> None:
        if logs_in_as_itself(self.deps.connector, app):
            return
        raise CutoverError(
            f"a database user '{app.username}' exists and this run's password does not log in as it: it was not "
            "created by this onboarding run and is left alone. Drop it or choose another ApplicationUserName"
        )

    def _master_failed(self, master: DbSecret, action: str, exc: pymysql.MySQLError) -> CutoverError:
        return CutoverError(
            f"{action} as master user '{master.username}' on {master.host}:{master.port} failed "
            f"(MySQL error {exc.args[0] if exc.args else '?'}). Nothing was changed in W&B"
        )

    # ------------------------------------------------------------ switch W&B

    def apply(self, plan: Plan, to: Literal["new", "old"]) -> dict[str, Any]:
        ref = plan.new if to == "new" else plan.old
        assert ref
        credentials = self._credentials(ref, plan)
        target = self.deps.wandb()
        changed = target.apply(credentials.username, credentials.password)
        return {"user": credentials.username, "changed": changed, "target": target.description}

    def restart(self, plan: Plan, to: Literal["new", "old"], execution: str) -> dict[str, Any]:
        api, namespace = self.deps.api(), self.settings.kubernetes_namespace
        ref = plan.new if to == "new" else plan.old
        assert ref
        credentials = self._credentials(ref, plan)
        target = self.deps.wandb()
        if not target.rendered(credentials.password):
            raise OperatorNotReconciledError(
                f"{target.description}: the operator has not yet rendered the new settings into the Secret the "
                "pods read; restarting now would start them on the old password"
            )
        # Marks which switch of which run restarted the pods: a retry of this step is a no-op, another run's is not.
        marker = f"{to}:{execution.rsplit(':', 1)[-1]}"
        deployments = [api.get_deployment(namespace, name) for name in plan.deployments]
        refuse_paused(deployments)
        restarted = []
        for deployment in deployments:
            if restarted_for(deployment) != marker:
                api.patch_deployment(namespace, deployment["metadata"]["name"], restart_patch(self.deps.now(), marker))
                restarted.append(deployment["metadata"]["name"])
        return {"restarted": restarted}

    def rollout_status(self, plan: Plan, attempt: int) -> dict[str, Any]:
        api, namespace = self.deps.api(), self.settings.kubernetes_namespace
        statuses = [rollout_status(api.get_deployment(namespace, name)) for name in plan.deployments]
        pending = [f"{s.name}: {s.detail}" for s in statuses if not s.complete]
        if not pending:
            return {"done": True}
        poll = backoff(
            attempt, self.settings.poll_base_seconds, self.settings.poll_max_seconds, self.settings.poll_max_attempts
        )
        if poll["give_up"]:
            raise RolloutFailedError(f"rollout not complete after {attempt + 1} checks: {'; '.join(pending)}")
        return {"done": False, "pending": pending, **poll}

    def confirm(self, plan: Plan, to: Literal["new", "old"]) -> dict[str, Any]:
        ref = plan.new if to == "new" else plan.old
        assert ref and self.settings.wandb_url
        credentials = self._credentials(ref, plan)
        target = self.deps.wandb()
        configured = target.read().user
        if configured != credentials.username or not target.rendered(credentials.password):
            raise HealthCheckFailedError(
                f"W&B is configured with '{configured}' (expected '{credentials.username}') or its pods would not "
                "get the new password"
            )
        checks = []
        for path in ("/healthz", "/ready"):
            response = self._http("GET", path)
            if response.status != 200:
                raise HealthCheckFailedError(
                    f"W&B {path} answered HTTP {response.status} after the switch to '{credentials.username}'"
                )
            checks.append(f"{path} 200")
        try:
            with (
                self.deps.connector.connect(credentials, database=credentials.dbname) as connection,
                connection.cursor() as cursor,
            ):
                cursor.execute("SELECT CURRENT_USER()")
                logged_in = str(cursor.fetchone()[0])
        except pymysql.MySQLError as exc:
            raise HealthCheckFailedError(
                f"login as '{credentials.username}' failed (MySQL error {exc.args[0] if exc.args else '?'})"
            ) from None
        checks.append(f"login as {logged_in}")
        if self.settings.api_key_secret_arn:
            checks.append(self._api_call())
        return {"user": credentials.username, "checks": checks}

    def _http(
        self, method: str, path: str, headers: dict[str, str] | None = None, body: bytes | None = None
    ) -> HttpResponse:
        url = f"{self.settings.wandb_url}{path}"
        try:
            return self.deps.http(method, url, headers or {}, body)
        except OSError as exc:
            raise HealthCheckFailedError(f"W&B at {url} did not answer ({type(exc).__name__})") from None

    def _api_call(self) -> str:
        assert self.settings.api_key_secret_arn
        raw = self.deps.secretsmanager.get_secret_value(SecretId=self.settings.api_key_secret_arn)["SecretString"]
        try:
            key = str(json.loads(raw)["api_key"])
        except (json.JSONDecodeError, KeyError, TypeError):
            key = raw.strip()
        auth = base64.b64encode(f"api:{key}".encode()).decode()
        response = self._http(
            "POST",
            "/graphql",
            {"Authorization": f"Basic {auth}", "Content-Type": "application/json"},
            json.dumps({"query": "{ viewer { username } }"}).encode(),
        )
        viewer = None
        if response.status == 200:
            try:
                viewer = json.loads(response.body)["data"]["viewer"]["username"]
            except (json.JSONDecodeError, KeyError, TypeError):
                viewer = None
        if not viewer:
            raise HealthCheckFailedError(
                f"W&B's API (POST /graphql, viewer) answered HTTP {response.status} without a viewer"
            )
        return "api call as viewer ok"

    # ------------------------------------------------------------ retire and roll back

    def retire(self, plan: Plan, which: Literal["old", "new"], attempt: int) -> dict[str, Any]:
        user = plan.old_user if which == "old" else plan.new_user
        ref = plan.new if which == "old" else plan.old  # a user that stays, whose secret names the master
        assert ref and user
        if which == "new" and not self._made_by_this_run(plan):
            return {"done": True, "user": user, "action": "kept", "reason": f"'{user}' was not made by this run"}
        keep = self._users_in_use(plan)
        if user in keep:
            return {"done": True, "user": user, "action": "kept", "reason": f"'{user}' is still in use ({keep[user]})"}
        staying = self._credentials(ref, plan)
        master_arn = staying.masterarn or (plan.old.secret_arn if plan.mode == "onboard" and plan.old else None)
        if not master_arn:
            raise CutoverError("the application secret has no 'masterarn': cannot retire users without the master")
        master = self.deps.master.connection(master_arn, CutoverError).for_server_of(
            staying, "application secret", CutoverError
        )
        with self.deps.connector.connect(master) as connection:
            accounts = AccountRetirer(connection)
            if not accounts.hosts(user):
                return {"done": True, "user": user, "action": "absent", "reason": "already gone"}
            sessions = accounts.sessions(user)
            if sessions:
                poll = backoff(
                    attempt,
                    self.settings.poll_base_seconds,
                    self.settings.poll_max_seconds,
                    self.settings.drain_max_attempts,
                )
                if not poll["give_up"]:
                    return {"done": False, "user": user, "sessions": sessions, **poll}
                raise DrainTimeoutError(
                    f"'{user}' still has {sessions} session(s) after {attempt + 1} checks: kept as it is (not "
                    "dropped, not locked, so whatever uses it keeps working). Find them in "
                    "information_schema.PROCESSLIST, then drop the user by hand (docs/rotation.md)"
                )
            objects = accounts.definer_of(user)
            if objects:
                accounts.lock(user)
                return {
                    "done": True,
                    "user": user,
                    "action": "locked",
                    "reason": f"DEFINER of {', '.join(objects)}: locked, not dropped (dropping it would break them); "
                    "change their DEFINER, then drop it (docs/rotation.md)",
                }
            accounts.drop(user)
        return {"done": True, "user": user, "action": "dropped", "reason": "no sessions, not a DEFINER"}

    def _made_by_this_run(self, plan: Plan) -> bool:
        """The user a rollback would retire is one this product made for this run's version (never an
        account a secret's writer named)."""
        if not plan.new or not plan.new.version_id:
            return False
        if plan.mode == "onboard":
            app = self._read(plan.new, "application")
            return app.username == plan.new_user and self.deps.mint.is_ours(
                "onboarding", plan.new_user, plan.new.version_id, app.password
            )
        return plan.new_user == rotated_username(plan.old_user, plan.new.version_id)

    def _users_in_use(self, plan: Plan) -> dict[str, str]:
        """Users that must never be dropped: W&B's, AWSCURRENT's and the master."""
        in_use = {self.deps.wandb().read().user: "W&B connects as it"}
        described = self._describe(self.settings.database_secret)
        if described is not None:
            current = self._read(SecretRef(secret_arn=described["ARN"]), "application")
            in_use.setdefault(current.username, "the AWSCURRENT user of the secret")
            with contextlib.suppress(CutoverError):  # no master recorded: nothing more to protect
                in_use.setdefault(self._master_user(current), "the master user")
        if plan.mode == "onboard":
            in_use.setdefault(plan.old_user, "the master user")
        return in_use

    def restore_current(self, plan: Plan) -> dict[str, Any]:
        """Roll back Secrets Manager: AWSCURRENT on the old version again (W&B is back on it)."""
        if not plan.restore_current_on_rollback or not plan.old or not plan.new or not plan.new.version_id:
            return {"moved": False, "reason": "this run did not change AWSCURRENT"}
        stages = self._app_secret().get("VersionIdsToStages", {})
        new_labels = stages.get(plan.new.version_id, [])
        moved = False
        if "AWSCURRENT" in new_labels:
            self.deps.secretsmanager.update_secret_version_stage(
                SecretId=plan.old.secret_arn,
                VersionStage="AWSCURRENT",
                MoveToVersionId=plan.old.version_id,
                RemoveFromVersionId=plan.new.version_id,
            )
            moved = True
        if "AWSPENDING" in new_labels:
            self.deps.secretsmanager.update_secret_version_stage(
                SecretId=plan.old.secret_arn, VersionStage="AWSPENDING", RemoveFromVersionId=plan.new.version_id
            )
        return {"moved": moved, "current_version": plan.old.version_id}


def rotation_token(execution: str) -> str:
    """The ClientRequestToken of this run's rotation: stable across retries, recognisable as ours."""
    return VERSION_PREFIX + str(uuid.uuid5(uuid.NAMESPACE_URL, execution))


def _refuse_unless_wandb_holds_the_master_password(target: WandbTarget, password: str) -> None:
    """Onboarding's rollback puts the master user back into W&B's settings: only ever what W&B already
    holds, never a master password W&B's settings do not carry (RDS may have rotated it since)."""
    if not target.holds(password):
        raise CutoverError(
            f"{target.description} does not hold the master secret's current password: W&B is on a master password "
            "that has changed since (RDS-managed rotation?). Onboarding's rollback would write the current one into "
            "W&B's settings, so it is refused; put W&B on the current master password first (docs/rotation.md)"
        )


def _version_with(stages: dict[str, list[str]], label: str) -> str:
    for version, labels in stages.items():
        if label in labels:
            return version
    return ""


_POOL = urllib3.PoolManager(timeout=urllib3.Timeout(connect=5, read=10), retries=False)


def urllib3_http(method: str, url: str, headers: dict[str, str], body: bytes | None) -> HttpResponse:
    """The real HTTP client of the health checks; connection failures become OSError."""
    try:
        response = _POOL.request(method, url, headers=headers, body=body, redirect=False)
    except urllib3.exceptions.HTTPError as exc:
        raise ConnectionError(str(exc)) from None
    return HttpResponse(response.status, response.data)


# ---------------------------------------------------------------- notification


def report(outcome: Outcome, run: dict[str, Any]) -> dict[str, Any]:
    """Subject and text of the notification, from the run's state (names, ARNs and version ids only)."""
    plan = Plan.model_validate(run.get("plan", {}).get("Payload") or {"mode": "nothing"})
    retired = (run.get("retire") or {}).get("Payload") or {}
    error = _error_text(run.get("error"))
    step = run.get("failed_step", "")
    new = plan.new.version_id if plan.new else None
    old = plan.old.version_id if plan.old else None
    secret = plan.old.secret_arn if plan.old else ""
    deployments = ", ".join(plan.deployments)
    subjects = {
        "switched": "W&B database credentials rotated",
        "retire_failed": "W&B credentials rotated; retiring the previous user failed",
        "nothing": "W&B credential rotation: nothing to do",
        "dry_run": "W&B credential rotation: dry run",
        "failed": "W&B credential rotation failed (W&B unchanged)",
        "rolled_back": "W&B credential rotation rolled back",
        "rollback_failed": "URGENT: W&B credential rollback failed",
    }
    if outcome == "switched":
        text = (
            f"W&B now connects as '{plan.new_user}' ({plan.mode}; secret {plan.new.secret_arn if plan.new else ''}, "
            f"version {new or 'AWSCURRENT'}). Deployments restarted: {deployments}. "
        )
        if retired.get("user"):
            text += f"Previous user '{retired.get('user')}': {retired.get('action')} ({retired.get('reason')})."
        elif plan.mode == "onboard":
            text += (
                f"The master user '{plan.old_user}' is kept for administration: turn on RDS-managed rotation for it "
                "(docs/rotation.md)."
            )
    elif outcome == "retire_failed":
        text = (
            f"W&B now connects as '{plan.new_user}' and works. Retiring the previous user '{plan.old_user}' failed: "
            f"{error}. It still exists: drop it by hand once unused (docs/rotation.md, 'Retire a user by hand')."
        )
    elif outcome == "nothing":
        text = f"Nothing to do: {plan.reason}."
    elif outcome == "dry_run":
        text = (
            f"Dry run, nothing changed. Would {plan.mode}: "
            f"W&B from '{plan.old_user}' to '{plan.new_user or '(new user)'}' "
            f"(secret {secret}), then restart {deployments}, confirm W&B at its /ready and /healthz, and "
            f"{'retire the old user' if plan.retire_old else 'keep the old user'}."
        )
    elif outcome == "failed":
        text = f"Failed before W&B was changed: {error}." + (
            f" W&B still uses '{plan.old_user}'." if plan.old_user else ""
        )
    elif outcome == "rolled_back":
        text = (
            f"Step {step} failed: {error}. Rolled back: W&B is on '{plan.old_user}' again and answers /ready"
            f"{f', AWSCURRENT of {secret} is version {old} again' if plan.restore_current_on_rollback else ''}. "
        )
        if retired.get("user"):
            text += f"Unused new user '{retired.get('user')}': {retired.get('action')} ({retired.get('reason')})."
        elif run.get("retire_error"):
            text += (
                f"Retiring the unused new user '{plan.new_user}' failed: {_error_text(run.get('retire_error'))}; "
                "drop it by hand (docs/rotation.md)."
            )
    else:
        text = (
            f"Step {step or 'of the cut-over'} failed ({error}) and so did the rollback: "
            f"{_error_text(run.get('rollback_error'))}. W&B may be down or on "
            f"'{plan.new_user}'. Act now: docs/rotation.md, 'The rollback failed'. Secret {secret}: old version {old}, "
            f"new version {new}; deployments {deployments}."
        )
    return {"outcome": outcome, "subject": subjects[outcome], "message": text}


def _error_text(error: Any) -> str:
    if not isinstance(error, dict):
        return "unknown error"
    cause = error.get("Cause") or ""
    try:
        parsed = json.loads(cause)
        cause = parsed.get("errorMessage", cause) if isinstance(parsed, dict) else cause
    except (TypeError, ValueError):
        pass
    return f"{error.get('Error', 'Error')}: {cause}"[:1500].rstrip(".")
