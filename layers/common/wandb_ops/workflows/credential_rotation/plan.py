"""Preflight: what this run will do (rotate, switch, onboard or nothing), or why it must not start.

Nothing here changes anything; every refusal says what was found and what to do."""

from typing import TYPE_CHECKING, Any

from wandb_ops.access.mysql.connector import DbSecret
from wandb_ops.core.errors import ConfigurationError
from wandb_ops.workflows.credential_rotation.app_secret import (
    app_secret,
    describe,
    master_user,
    read,
    rotation_token,
    version_with,
)
from wandb_ops.workflows.credential_rotation.errors import CutoverError
from wandb_ops.workflows.credential_rotation.onboarding import refuse_unless_wandb_holds_the_master_password
from wandb_ops.workflows.credential_rotation.rollout import refuse_paused
from wandb_ops.workflows.credential_rotation.tasks import CutoverRequest, Plan, SecretRef
from wandb_ops.workflows.credential_rotation.wandb_config import WandbTarget
from wandb_ops.workflows.secret_rotation.rotation import rotated_username

if TYPE_CHECKING:
    from wandb_ops.workflows.credential_rotation.steps import Deps


def preflight(request: CutoverRequest, execution: str, deps: "Deps") -> Plan:
    # A RotationSucceeded event arrives while the run that rotated is still switching W&B: that
    # event's run must end quietly ("nothing to do"), so a switch checks for other runs only
    # once it has found work.
    if request.action != "switch":
        refuse_concurrent_run(execution, deps)
    target = deps.wandb()
    wandb = target.read()
    deployments = _deployments(deps)
    if request.action == "onboard":
        plan = _plan_onboarding(target, wandb.user, deps)
    else:
        plan = _plan_switch(request.action, wandb.user, target.description, execution, deps)
    plan = plan.model_copy(
        update={"dry_run": request.dry_run, "deployments": [d["metadata"]["name"] for d in deployments]}
    )
    if plan.mode == "nothing":
        return plan
    if request.action == "switch":
        refuse_concurrent_run(execution, deps)
    refuse_paused(deployments)
    if not deps.settings.wandb_url:
        raise ConfigurationError(
            "WANDB_URL is empty: set the stack parameter WandbUrl so the cut-over can confirm W&B works"
        )
    return plan


def other_runs(execution: str, deps: "Deps") -> list[str]:
    """The other running executions of this state machine."""
    parts = execution.split(":")
    if len(parts) != 8 or parts[5] != "execution":
        raise CutoverError(f"'execution' must be the execution ARN ($$.Execution.Id), got {execution!r}")
    machine = ":".join([*parts[:5], "stateMachine", parts[6]])
    running = deps.stepfunctions.list_executions(stateMachineArn=machine, statusFilter="RUNNING")
    return [e["executionArn"] for e in running.get("executions", []) if e["executionArn"] != execution]


def refuse_concurrent_run(execution: str, deps: "Deps") -> None:
    """Two cut-overs at once would rotate from, switch to and drop each other's users."""
    others = other_runs(execution, deps)
    if others:
        raise CutoverError(
            f"another credential rotation run is in progress ({others[0]}): wait for it to end, then re-run"
        )


def _deployments(deps: "Deps") -> list[dict[str, Any]]:
    api, namespace, wanted = deps.api(), deps.settings.kubernetes_namespace, deps.settings.deployments
    if "=" in wanted:
        found = api.list_deployments(namespace, wanted)
        if not found:
            raise ConfigurationError(
                f"no deployment in namespace {namespace} matches {wanted!r}: set the stack parameter WandbDeployments"
            )
        # Read each one as the restart will: a deployment the Role does not name fails here, not mid-switch.
        return [api.get_deployment(namespace, d["metadata"]["name"]) for d in found]
    return [api.get_deployment(namespace, name.strip()) for name in wanted.split(",") if name.strip()]


def _plan_switch(action: str, wandb_user: str, where: str, execution: str, deps: "Deps") -> Plan:
    described = app_secret(deps)
    arn = described["ARN"]
    stages: dict[str, list[str]] = described.get("VersionIdsToStages", {})
    current_version = version_with(stages, "AWSCURRENT")
    if not current_version:
        raise CutoverError(f"{arn} has no AWSCURRENT version: restore one (docs/rotation.md) before rotating")
    current = read(SecretRef(secret_arn=arn, version_id=current_version), deps)
    master = master_user(current, deps)
    if current.username == master:
        raise CutoverError(
            f"{arn} holds the master user '{master}': never rotate it by cloning (it would copy "
            "rds_superuser_role). Run onboarding to create an application user; rotate the master with "
            "RDS-managed rotation (docs/rotation.md)"
        )
    previous_version = version_with(stages, "AWSPREVIOUS")
    previous = read(SecretRef(secret_arn=arn, version_id=previous_version), deps) if previous_version else None
    if action == "switch":
        if wandb_user == current.username:
            return Plan(mode="nothing", reason=f"W&B already uses '{wandb_user}', the AWSCURRENT user of {arn}")
        rotating = [run for run in other_runs(execution, deps) if rotation_token(run) == current_version]
        if rotating:  # its own RotationSucceeded event; if that run is gone, switching is this run's job
            return Plan(
                mode="nothing",
                reason=f"version {current_version} was made by the running {rotating[0]}, which switches W&B",
            )
        if previous is None or wandb_user != previous.username:
            raise _drift(wandb_user, where, arn, current.username)
        if not _made_by_rotation(current_version, previous.username, current, deps):
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
    pending = [version for version, labels in stages.items() if "AWSPENDING" in labels and "AWSCURRENT" not in labels]
    if pending:
        raise CutoverError(
            f"{arn} has an unfinished rotation (version {pending[0]} is AWSPENDING): Secrets Manager is still "
            "rotating or a rotation failed half-way. Read the rotation function's log, then follow "
            "'A rotation failed' in docs/rotation.md before starting another"
        )
    if wandb_user != current.username:
        if wandb_user == master:
            raise CutoverError(
                f"W&B connects as the master user '{master}', not as '{current.username}' of {arn}: "
                'either onboarding did not finish (re-run it: {"action": "onboard"}) or a terraform apply '
                "put the master user back (docs/rotation.md, 'Keep terraform in step'). Nothing was changed"
            )
        if previous is not None and wandb_user == previous.username:
            raise CutoverError(
                f"W&B still uses '{wandb_user}' of the previous version: the secret was rotated without switching "
                'W&B. Start the workflow with {"action": "switch"} first'
            )
        raise _drift(wandb_user, where, arn, current.username)
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


def _made_by_rotation(version: str, previous_user: str, secret: DbSecret, deps: "Deps") -> bool:
    """Whether the rotation function made this version: the user name it derives for the token from the
    user before, and the password it made for that user and version."""
    return secret.username == rotated_username(previous_user, version) and deps.mint.is_ours(
        "rotation", secret.username, version, secret.password
    )


def _drift(wandb_user: str, where: str, arn: str, current_user: str) -> CutoverError:
    return CutoverError(
        f"W&B connects as '{wandb_user}' ({where}), but the AWSCURRENT user of {arn} is '{current_user}': "
        "something else changed W&B's settings, most likely a terraform apply that put its own values back. "
        "Nothing was changed. Make terraform take the user and password from the secret "
        "(docs/rotation.md, 'Keep terraform in step'), then re-run"
    )


def _plan_onboarding(target: WandbTarget, wandb_user: str, deps: "Deps") -> Plan:
    settings = deps.settings
    master_arn = settings.master_secret_arn
    if not master_arn:
        raise ConfigurationError(
            "onboarding needs the master secret: set the stack parameter MasterSecretArn (the Aurora master "
            "user's secret) and redeploy"
        )
    master = deps.master.load(master_arn, CutoverError)
    master_name = master.username
    existing = describe(settings.database_secret, deps)
    app_user = settings.app_username
    if existing is not None:
        current = read(SecretRef(secret_arn=existing["ARN"]), deps)
        if wandb_user == current.username:
            return Plan(mode="nothing", reason=f"already onboarded: W&B uses '{wandb_user}' of {existing['ARN']}")
    if app_user == master_name:
        raise ConfigurationError(
            f"ApplicationUserName is '{app_user}', the master user's name: onboarding creates a new user and never "
            "touches the master. Set the stack parameter ApplicationUserName to another name (default wandb_app)"
        )
    if wandb_user != master_name:
        raise CutoverError(
            f"W&B connects as '{wandb_user}', not as the master user '{master_name}' of {master_arn}: onboarding "
            "only moves W&B off the master user. If W&B already has its own user, store it in "
            f"{settings.database_secret} with a 'masterarn' instead (docs/rotation.md)"
        )
    refuse_unless_wandb_holds_the_master_password(target, master.password)
    return Plan(
        mode="onboard",
        old=SecretRef(secret_arn=master_arn),
        new=SecretRef(secret_arn=existing["ARN"] if existing else settings.database_secret, version_id=None),
        old_user=master_name,
        new_user=app_user,
        restore_current_on_rollback=False,
        retire_old=False,
    )
