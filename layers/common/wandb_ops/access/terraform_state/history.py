"""The backup history: each stored state under a key that records its workspace, lineage, serial
and content hash; listing a workspace's backups, and reading one back verified against its hash."""

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any, BinaryIO

from wandb_ops.access.terraform_state.state_file import LINEAGE, StateSummary, inspect_state
from wandb_ops.core.errors import WandbOpsError

HISTORY_PREFIX = "states/"


class IntegrityError(WandbOpsError):
    """A stored backup's content does not match the hash recorded with it."""


@dataclass(frozen=True)
class BackupEntry:
    key: str
    serial: int
    lineage: str
    sha256_prefix: str
    size: int
    stored_at: datetime


def history_key(workspace: str, summary: StateSummary) -> str:
    return f"{HISTORY_PREFIX}{workspace}/{summary.lineage}/{summary.serial:012d}-{summary.sha256[:16]}.tfstate"


# Only names this module writes: a key with any other lineage (stored by hand, or by an earlier
# version that did not check it) is never listed, so never offered for restore.
_HISTORY_NAME = re.compile(
    rf"(?P<lineage>{LINEAGE.pattern})/(?P<serial>[0-9]{{12,20}})-(?P<sha>[0-9a-f]{{16}})\.tfstate"
)


def list_backups(s3: Any, bucket: str, workspace: str) -> list[BackupEntry]:
    """The backups of one workspace, oldest serial first."""
    prefix = f"{HISTORY_PREFIX}{workspace}/"
    entries = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            match = _HISTORY_NAME.fullmatch(item["Key"][len(prefix) :])
            if match:
                entries.append(
                    BackupEntry(
                        key=item["Key"],
                        serial=int(match["serial"]),
                        lineage=match["lineage"],
                        sha256_prefix=match["sha"],
                        size=int(item["Size"]),
                        stored_at=item["LastModified"],
                    )
                )
    return sorted(entries, key=lambda entry: (entry.serial, entry.stored_at))


def verify_backup(s3: Any, bucket: str, key: str, out: BinaryIO | None = None) -> StateSummary:
    """Stream a backup (to ``out`` if given), checking it against the hash it was stored with."""
    head = s3.head_object(Bucket=bucket, Key=key)
    recorded = head["Metadata"].get("sha256", "")
    body = s3.get_object(Bucket=bucket, Key=key, IfMatch=head["ETag"])["Body"]
    try:
        summary = inspect_state(body, copy_to=out)
    finally:
        body.close()
    if summary.sha256 != recorded:
        raise IntegrityError(f"{key}: content hash {summary.sha256[:16]}… does not match the recorded one")
    return summary
