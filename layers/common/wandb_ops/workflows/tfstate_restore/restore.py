"""Restore helper: list the backups of a workspace, and verify a chosen serial against
its recorded hash. The function never returns the state itself (it is a secret and
Lambda output is logged by callers); it returns the exact object version to fetch and
the command that fetches it, and `scripts/tfstate_restore.py` fetches and re-verifies."""

import shlex
from typing import Any

from pydantic import Field

from wandb_ops.access.terraform_state.history import list_backups, verify_backup
from wandb_ops.access.terraform_state.state_file import LINEAGE
from wandb_ops.core.errors import InvalidInputError
from wandb_ops.core.models import StrictModel
from wandb_ops.core.steps import StepOutput


class RestoreRequest(StrictModel):
    workspace: str = Field(pattern=r"^(backend|intake)/[A-Za-z0-9_.-]{1,90}$")
    serial: int | None = Field(default=None, ge=0)
    lineage: str | None = Field(default=None, pattern=f"^{LINEAGE.pattern}$")


class ListedBackup(StepOutput):
    serial: int
    lineage: str
    size: int
    stored_at: str
    key: str


class VerifiedBackup(StepOutput):
    key: str
    version_id: str | None
    serial: int
    lineage: str
    sha256: str
    size: int


class BackupListing(StepOutput):
    workspace: str
    backups: list[ListedBackup]


class VerifiedRestore(StepOutput):
    """The exact object version to fetch, and the command that fetches it (never the state)."""

    workspace: str
    verified: VerifiedBackup
    fetch: str


def restore_plan(s3: Any, bucket: str, request: RestoreRequest) -> BackupListing | VerifiedRestore:
    backups = list_backups(s3, bucket, request.workspace)
    if request.serial is None:
        listing = [
            ListedBackup(serial=b.serial, lineage=b.lineage, size=b.size, stored_at=b.stored_at.isoformat(), key=b.key)
            for b in backups
        ]
        return BackupListing(workspace=request.workspace, backups=listing)
    chosen = [
        b for b in backups if b.serial == request.serial and (request.lineage is None or b.lineage == request.lineage)
    ]
    if not chosen:
        raise InvalidInputError(
            f"field 'serial': workspace {request.workspace} has no backup with serial {request.serial}"
            + (f" in lineage {request.lineage}" if request.lineage else "")
            + "; call without 'serial' to list what there is"
        )
    if len({b.lineage for b in chosen}) > 1:
        raise InvalidInputError("field 'lineage': several lineages have this serial; give the lineage to choose one")
    entry = chosen[-1]
    summary = verify_backup(s3, bucket, entry.key)
    version_id = s3.head_object(Bucket=bucket, Key=entry.key).get("VersionId")
    return VerifiedRestore(
        workspace=request.workspace,
        verified=VerifiedBackup(
            key=entry.key,
            version_id=version_id,
            serial=summary.serial,
            lineage=summary.lineage,
            sha256=summary.sha256,
            size=summary.size,
        ),
        fetch=fetch_command(bucket, entry.key),
    )


def fetch_command(bucket: str, key: str) -> str:
    """The command an operator pastes into a shell: every argument quoted for it."""
    return shlex.join(
        [
            "python",
            "scripts/tfstate_restore.py",
            "fetch",
            "--bucket",
            bucket,
            "--key",
            key,
            "--out",
            "terraform.tfstate",
        ]
    )
