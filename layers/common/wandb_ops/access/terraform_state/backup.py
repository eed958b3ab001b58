"""Backing up one state object: validated while streaming, stored once in the history (a server-side
copy of exactly the bytes validated), or set aside in quarantine when it is invalid or does not
follow the history (an older serial, a conflicting serial, a new lineage), never overwriting
history, so someone looks at it. Only the hash, size, serial and lineage become keys, metadata
or messages, never the content (it holds the deployment's credentials)."""

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from botocore.exceptions import ClientError

from wandb_ops.access.terraform_state.history import history_key, list_backups
from wandb_ops.access.terraform_state.sources import SourceConfig, StateObject, classify_key
from wandb_ops.access.terraform_state.state_file import InvalidStateError, StateSummary, inspect_state
from wandb_ops.core.aws import error_code
from wandb_ops.core.errors import InvalidInputError, WandbOpsError

QUARANTINE_PREFIX = "quarantine/"


class SourceChangedError(WandbOpsError):
    """The state object changed while it was being backed up; the state machine retries."""


class Outcome(StrEnum):
    STORED = "stored"
    DUPLICATE = "duplicate"
    IGNORED = "ignored"
    ANOMALY = "anomaly"


class Anomaly(StrEnum):
    INVALID = "invalid_state"
    SERIAL_REGRESSED = "serial_regressed"
    SERIAL_CONFLICT = "serial_conflict"
    NEW_LINEAGE = "new_lineage"
    EMPTIED = "emptied"


@dataclass(frozen=True)
class BackupResult:
    workspace: str
    source_key: str
    outcome: Outcome
    detail: str
    anomaly: Anomaly | None = None
    backup_key: str | None = None
    serial: int | None = None
    lineage: str | None = None
    size: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "workspace": self.workspace,
            "source_key": self.source_key,
            "outcome": self.outcome.value,
            "detail": self.detail,
            "anomaly": self.anomaly.value if self.anomaly else None,
            "backup_key": self.backup_key,
            "serial": self.serial,
            "lineage": self.lineage,
            "size": self.size,
        }


def quarantine_key(workspace: str, anomaly: Anomaly, sha256: str) -> str:
    return f"{QUARANTINE_PREFIX}{workspace}/{anomaly.value}-{sha256[:16]}.tfstate"


def _exists(s3: Any, bucket: str, key: str) -> bool:
    try:
        s3.head_object(Bucket=bucket, Key=key)
        return True
    except ClientError as exc:
        if error_code(exc) in ("404", "NoSuchKey", "NotFound"):
            return False
        raise


def backup_state(config: SourceConfig, s3: Any, source: StateObject) -> BackupResult:
    """Back up one state object. Idempotent: a re-run finds its own copy and reports a duplicate."""
    if classify_key(config, source.bucket, source.key)[0] != source.workspace:
        # A task given by hand: only what plan would have chosen, so every key echoed is a state key.
        raise InvalidInputError(
            "field 'object': bucket and key are not a state object of that workspace; "
            'start the workflow with {"bucket": ..., "key": ...} and let it plan'
        )
    with _source_unchanged(source):
        etag = s3.head_object(Bucket=source.bucket, Key=source.key)["ETag"]
        body = s3.get_object(Bucket=source.bucket, Key=source.key, IfMatch=etag)["Body"]
        try:
            summary = inspect_state(body)
        except InvalidStateError as exc:
            return _set_aside_invalid(config, s3, source, etag, str(exc))
        finally:
            body.close()
        return _store(config, s3, source, etag, summary)


@contextmanager
def _source_unchanged(source: StateObject) -> Iterator[None]:
    try:
        yield
    except ClientError as exc:
        if error_code(exc) in ("PreconditionFailed", "412"):
            raise SourceChangedError(f"{source.key} changed while it was being backed up") from None
        raise


def _store(config: SourceConfig, s3: Any, source: StateObject, etag: str, summary: StateSummary) -> BackupResult:

    history = list_backups(s3, config.backup_bucket, source.workspace)
    target = history_key(source.workspace, summary)
    lineages = {entry.lineage for entry in history}
    same_lineage = [entry for entry in history if entry.lineage == summary.lineage]
    latest = same_lineage[-1] if same_lineage else None
    anomaly: Anomaly | None = None
    detail = ""
    if lineages and summary.lineage not in lineages:
        anomaly = Anomaly.NEW_LINEAGE
        detail = (
            f"lineage {summary.lineage} is new for a workspace whose history has {sorted(lineages)}: "
            "a different or re-initialised state was pushed"
        )
    elif latest and summary.serial < latest.serial:
        # Even when identical to an older backup: the live state went back in time.
        anomaly = Anomaly.SERIAL_REGRESSED
        detail = f"serial {summary.serial} is lower than the last backup's {latest.serial}: a rollback or a stale push"
    elif latest and latest.key == target:
        return _result(
            source,
            outcome=Outcome.DUPLICATE,
            detail="this exact state is already backed up",
            summary=summary,
            key=target,
        )
    elif latest and summary.serial == latest.serial:
        anomaly = Anomaly.SERIAL_CONFLICT
        detail = f"serial {summary.serial} was already backed up with different content"
    if anomaly is not None:
        key = quarantine_key(source.workspace, anomaly, summary.sha256)
        if not _exists(s3, config.backup_bucket, key):
            _copy(config, s3, source, etag=etag, key=key, metadata=summary.metadata())
        return _result(source, outcome=Outcome.ANOMALY, detail=detail, summary=summary, key=key, anomaly=anomaly)

    _copy(config, s3, source, etag=etag, key=target, metadata=summary.metadata())
    if latest and summary.resources == 0 and _resources_of(s3, config.backup_bucket, latest.key) > 0:
        detail = (
            f"serial {summary.serial} has no resources where serial {latest.serial} had some: "
            "a destroy, or an emptied state; stored, and the previous serial is kept"
        )
        return _result(
            source, outcome=Outcome.ANOMALY, detail=detail, summary=summary, key=target, anomaly=Anomaly.EMPTIED
        )
    return _result(
        source, outcome=Outcome.STORED, detail=f"stored serial {summary.serial}", summary=summary, key=target
    )


def _result(
    source: StateObject,
    *,
    outcome: Outcome,
    detail: str,
    summary: StateSummary,
    key: str,
    anomaly: Anomaly | None = None,
) -> BackupResult:
    return BackupResult(
        workspace=source.workspace,
        source_key=source.key,
        outcome=outcome,
        detail=detail,
        anomaly=anomaly,
        backup_key=key,
        serial=summary.serial,
        lineage=summary.lineage,
        size=summary.size,
    )


def _set_aside_invalid(config: SourceConfig, s3: Any, source: StateObject, etag: str, reason: str) -> BackupResult:
    # No hash of the content was completed for a broken stream: key the quarantine copy by ETag.
    key = f"{QUARANTINE_PREFIX}{source.workspace}/{Anomaly.INVALID.value}-{etag.strip(chr(34))[:16]}.tfstate"
    if not _exists(s3, config.backup_bucket, key):
        _copy(config, s3, source, etag=etag, key=key, metadata={"reason": reason[:200]})
    return BackupResult(
        workspace=source.workspace,
        source_key=source.key,
        outcome=Outcome.ANOMALY,
        detail=f"not a valid state: {reason}",
        anomaly=Anomaly.INVALID,
        backup_key=key,
    )


def _copy(config: SourceConfig, s3: Any, source: StateObject, *, etag: str, key: str, metadata: dict[str, str]) -> None:
    """Server-side copy of exactly the bytes that were validated (CopySourceIfMatch on the ETag)."""
    s3.copy_object(
        Bucket=config.backup_bucket,
        Key=key,
        CopySource={"Bucket": source.bucket, "Key": source.key},
        CopySourceIfMatch=etag,
        MetadataDirective="REPLACE",
        Metadata={**metadata, "source": f"s3://{source.bucket}/{source.key}"},
        ServerSideEncryption="aws:kms",
        SSEKMSKeyId=config.kms_key_arn,
        ChecksumAlgorithm="SHA256",  # Object Lock requires a checksum on every write
    )


def _resources_of(s3: Any, bucket: str, key: str) -> int:
    return int(s3.head_object(Bucket=bucket, Key=key)["Metadata"].get("resources", "0"))
