"""Retire a user W&B no longer uses (the old one after a switch, the unused new one after a
rollback), as the master user: wait for its sessions to end, then drop it, or lock it when it is
a DEFINER. Never W&B's user, the AWSCURRENT user, the master, or an account this run did not make."""

import contextlib
from typing import TYPE_CHECKING, Literal

from wandb_ops.access.mysql.accounts import AccountRetirer
from wandb_ops.core.polling import backoff
from wandb_ops.workflows.credential_rotation.app_secret import credentials, describe, master_user, read
from wandb_ops.workflows.credential_rotation.errors import CutoverError, DrainTimeoutError
from wandb_ops.workflows.credential_rotation.tasks import Plan, RetireOutput, SecretRef
from wandb_ops.workflows.secret_rotation.rotation import rotated_username

if TYPE_CHECKING:
    from wandb_ops.workflows.credential_rotation.steps import Deps


def retire_user(plan: Plan, which: Literal["old", "new"], attempt: int, deps: "Deps") -> RetireOutput:
    user = plan.old_user if which == "old" else plan.new_user
    ref = plan.new if which == "old" else plan.old  # a user that stays, whose secret names the master
    assert ref and user
    if which == "new" and not _made_by_this_run(plan, deps):
        return RetireOutput(done=True, user=user, action="kept", reason=f"'{user}' was not made by this run")
    keep = _users_in_use(plan, deps)
    if user in keep:
        return RetireOutput(done=True, user=user, action="kept", reason=f"'{user}' is still in use ({keep[user]})")
    staying = credentials(ref, plan, deps)
    master_arn = staying.masterarn or (plan.old.secret_arn if plan.mode == "onboard" and plan.old else None)
    if not master_arn:
        raise CutoverError("the application secret has no 'masterarn': cannot retire users without the master")
    master = deps.master.connection(master_arn, CutoverError).for_server_of(staying, "application secret", CutoverError)
    with deps.connector.connect(master) as connection:
        accounts = AccountRetirer(connection)
        if not accounts.hosts(user):
            return RetireOutput(done=True, user=user, action="absent", reason="already gone")
        sessions = accounts.sessions(user)
        if sessions:
            settings = deps.settings
            poll = backoff(attempt, settings.poll_base_seconds, settings.poll_max_seconds, settings.drain_max_attempts)
            if not poll.give_up:
                return RetireOutput.waiting(poll, user=user, sessions=sessions)
            raise DrainTimeoutError(
                f"'{user}' still has {sessions} session(s) after {attempt + 1} checks: kept as it is (not "
                "dropped, not locked, so whatever uses it keeps working). Find them in "
                "information_schema.PROCESSLIST, then drop the user by hand (docs/rotation.md)"
            )
        objects = accounts.definer_of(user)
        if objects:
            accounts.lock(user)
            return RetireOutput(
                done=True,
                user=user,
                action="locked",
                reason=f"DEFINER of {', '.join(objects)}: locked, not dropped (dropping it would break them); "
                "change their DEFINER, then drop it (docs/rotation.md)",
            )
        accounts.drop(user)
    return RetireOutput(done=True, user=user, action="dropped", reason="no sessions, not a DEFINER")


def _made_by_this_run(plan: Plan, deps: "Deps") -> bool:
    """The user a rollback would retire is one this product made for this run's version (never an
    account a secret's writer named)."""
    if not plan.new or not plan.new.version_id:
        return False
    if plan.mode == "onboard":
        app = read(plan.new, deps)
        return app.username == plan.new_user and deps.mint.is_ours(
            "onboarding", plan.new_user, plan.new.version_id, app.password
        )
    return plan.new_user == rotated_username(plan.old_user, plan.new.version_id)


def _users_in_use(plan: Plan, deps: "Deps") -> dict[str, str]:
    """Users that must never be dropped: W&B's, AWSCURRENT's and the master."""
    in_use = {deps.wandb().read().user: "W&B connects as it"}
    described = describe(deps.settings.database_secret, deps)
    if described is not None:
        current = read(SecretRef(secret_arn=described["ARN"]), deps)
        in_use.setdefault(current.username, "the AWSCURRENT user of the secret")
        with contextlib.suppress(CutoverError):  # no master recorded: nothing more to protect
            in_use.setdefault(master_user(current, deps), "the master user")
    if plan.mode == "onboard":
        in_use.setdefault(plan.old_user, "the master user")
    return in_use
