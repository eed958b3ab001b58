"""Terraform state backup: validate each new terraform.tfstate while streaming it,
store it once under a key that records workspace, lineage, serial and content hash,
and set anomalies aside (never overwriting history) so someone looks at them.

The state holds the deployment's credentials, and whoever can write the backend or the
intake prefix chooses its bytes: nothing here logs or returns its content. Only its hash and
size, and the serial and lineage once they have the shape Terraform writes, become keys,
metadata or messages; a field of any other shape is named with the shape it should have.
"""

import hashlib
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, BinaryIO, Protocol

import ijson
from botocore.exceptions import ClientError

from wandb_ops.core.aws import error_code
from wandb_ops.core.errors import InvalidInputError, WandbOpsError

STATE_FORMAT_VERSION = 4
TFLOCK_SUFFIX = ".tflock"
HISTORY_PREFIX = "states/"
QUARANTINE_PREFIX = "quarantine/"
_CHUNK = 1024 * 1024
# Matched with fullmatch: `$` would also accept a trailing newline, and `\d` any Unicode digit.
_WORKSPACE_NAME = re.compile(r"[A-Za-z0-9_.-]{1,90}")
_INTAKE_FILE = re.compile(r"[A-Za-z0-9_.-]{1,100}\.tfstate")
# What Terraform writes (a random UUID, lowercase); it becomes part of backup keys.
LINEAGE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_TERRAFORM_VERSION = re.compile(r"[0-9]{1,4}\.[0-9]{1,4}\.[0-9]{1,4}(-[0-9A-Za-z.-]{1,64})?(\+[0-9A-Za-z.-]{1,64})?")
_MAX_SERIAL = 2**64 - 1  # Terraform's serial is a uint64
# Each top-level field checked: (event, value) -> does it have the shape Terraform writes.
# A message names the field and the shape, never the value.
_FIELDS: dict[str, tuple[str, Callable[[str, Any], bool]]] = {
    "version": (
        f"the number {STATE_FORMAT_VERSION}",
        lambda _, value: type(value) is int and value == STATE_FORMAT_VERSION,  # 4.0 is not what Terraform writes
    ),
    "terraform_version": (
        "a Terraform version such as 1.9.8 or 1.10.0-beta1",
        lambda event, value: event == "string" and _TERRAFORM_VERSION.fullmatch(value) is not None,
    ),
    "serial": (
        "a non-negative integer (at most 2^64-1)",
        lambda _, value: type(value) is int and 0 <= value <= _MAX_SERIAL,
    ),
    "lineage": (
        "a lowercase UUID (8-4-4-4-12 hex digits, as Terraform writes it)",
        lambda event, value: event == "string" and LINEAGE.fullmatch(value) is not None,
    ),
    "resources": ("a JSON array of objects", lambda event, _: event == "start_array"),
    "outputs": ("a JSON object", lambda event, _: event == "start_map"),
}
_REQUIRED = ("version", "terraform_version", "serial", "lineage")
_VALUE_EVENTS = frozenset({"null", "boolean", "number", "string", "start_map", "start_array"})


class Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


class InvalidStateError(WandbOpsError):
    """The object is not a usable Terraform state (not JSON, truncated, a field not of the shape Terraform writes)."""


class SourceChangedError(WandbOpsError):
    """The state object changed while it was being backed up; the state machine retries."""


class IntegrityError(WandbOpsError):
    """A stored backup's content does not match the hash recorded with it."""


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
class StateSummary:
    sha256: str
    size: int
    version: int
    terraform_version: str
    serial: int
    lineage: str
    resources: int

    def metadata(self) -> dict[str, str]:
        return {
            "sha256": self.sha256,
            "serial": str(self.serial),
            "lineage": self.lineage,
            "terraform-version": self.terraform_version,
            "resources": str(self.resources),
        }


@dataclass(frozen=True)
class SourceConfig:
    """Where states come from: an S3 backend (key, and its workspaces) and the intake prefix."""

    backup_bucket: str
    kms_key_arn: str
    intake_prefix: str = "intake/"
    backend_bucket: str | None = None
    backend_key: str = "terraform.tfstate"
    workspace_key_prefix: str = "env:"


@dataclass(frozen=True)
class StateObject:
    bucket: str
    key: str
    workspace: str  # "backend/<name>" or "intake/<name>": the history it belongs to


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


@dataclass(frozen=True)
class BackupEntry:
    key: str
    serial: int
    lineage: str
    sha256_prefix: str
    size: int
    stored_at: datetime


# ---------------------------------------------------------------- reading a state


class _HashingReader:
    """A file-like view of a stream that hashes and counts every byte read through it."""

    def __init__(self, stream: Readable, copy_to: BinaryIO | None = None) -> None:
        self._stream = stream
        self._copy_to = copy_to
        self.digest = hashlib.sha256()
        self.size = 0

    def read(self, size: int = -1) -> bytes:
        chunk = self._stream.read(size)
        self.digest.update(chunk)
        self.size += len(chunk)
        if self._copy_to is not None:
            self._copy_to.write(chunk)
        return chunk

    def drain(self) -> None:
        while self.read(_CHUNK):
            pass


def inspect_state(stream: Readable, copy_to: BinaryIO | None = None) -> StateSummary:
    """Validate a state file in one streaming pass (constant memory, any size), optionally
    writing the bytes it reads to ``copy_to``."""
    reader = _HashingReader(stream, copy_to)
    fields: dict[str, tuple[str, Any]] = {}
    repeated: set[str] = set()
    resources = 0
    try:
        for prefix, event, value in ijson.parse(reader, use_float=True):
            if prefix == "" and event in _VALUE_EVENTS and event != "start_map":
                kind = {"start_array": "array"}.get(event, event)
                raise InvalidStateError(f"the top level is a JSON {kind}, not a state object")
            if prefix == "" and event == "map_key" and value in _FIELDS:
                if value in fields:
                    repeated.add(value)
            elif prefix in _FIELDS and event in _VALUE_EVENTS and prefix not in fields:
                fields[prefix] = (event, value)
            elif prefix == "resources.item" and event in _VALUE_EVENTS:
                resources += 1
                if event != "start_map":
                    fields["resources"] = (event, value)  # not an array of objects
    except UnicodeDecodeError:
        raise InvalidStateError("not valid JSON (not UTF-8 text)") from None
    except (ijson.common.JSONError, ValueError):  # ValueError: a number Python will not convert
        raise InvalidStateError("not valid JSON (corrupt or truncated)") from None
    reader.drain()
    problems = [f"field '{name}' appears more than once" for name in sorted(repeated)]
    problems += [
        f"field '{name}' must be {shape}"
        for name, (shape, has_shape) in _FIELDS.items()
        if not (has_shape(*fields[name]) if name in fields else name not in _REQUIRED)
    ]
    if problems:
        raise InvalidStateError("not a Terraform state: " + "; ".join(problems))
    return StateSummary(
        sha256=reader.digest.hexdigest(),
        size=reader.size,
        version=fields["version"][1],
        terraform_version=fields["terraform_version"][1],
        serial=fields["serial"][1],
        lineage=fields["lineage"][1],
        resources=resources,
    )


# ---------------------------------------------------------------- which objects are states


def classify_key(config: SourceConfig, bucket: str, key: str) -> tuple[str | None, str]:
    """The workspace history an object belongs to, or None and the reason it is not a state."""
    if key.endswith(TFLOCK_SUFFIX):
        return None, "a lock file (.tflock), not a state"
    if bucket == config.backup_bucket and key.startswith(config.intake_prefix):
        return _intake_workspace(config, key)
    if bucket == config.backend_bucket:
        return _backend_workspace(config, key)
    return None, f"bucket {bucket} is not a configured state source"


def _intake_workspace(config: SourceConfig, key: str) -> tuple[str | None, str]:
    parts = key[len(config.intake_prefix) :].split("/")
    if len(parts) == 2 and _WORKSPACE_NAME.fullmatch(parts[0]) and _INTAKE_FILE.fullmatch(parts[1]):
        return f"intake/{parts[0]}", ""
    return None, (
        f"intake uploads go to {config.intake_prefix}<workspace>/terraform.tfstate "
        "(workspace and file name: letters, digits, _ . -)"
    )


def _backend_workspace(config: SourceConfig, key: str) -> tuple[str | None, str]:
    if key == config.backend_key:
        return "backend/default", ""
    prefix = f"{config.workspace_key_prefix}/"
    if key.startswith(prefix) and key.endswith(f"/{config.backend_key}"):
        name = key[len(prefix) : -len(config.backend_key) - 1]
        if _WORKSPACE_NAME.fullmatch(name):
            return f"backend/{name}", ""
    return None, f"not the backend key {config.backend_key} or one of its workspaces"


def plan_sweep(config: SourceConfig, s3: Any) -> list[StateObject]:
    """Every state object in the configured sources (the daily sweep backs each one up)."""
    found: list[StateObject] = []
    sources = [(config.backup_bucket, config.intake_prefix)]
    if config.backend_bucket:
        sources += [
            (config.backend_bucket, config.backend_key),
            (config.backend_bucket, f"{config.workspace_key_prefix}/"),
        ]
    for bucket, prefix in sources:
        for key in _list_keys(s3, bucket, prefix):
            workspace, _ = classify_key(config, bucket, key)
            if workspace:
                found.append(StateObject(bucket, key, workspace))
    return found


def _list_keys(s3: Any, bucket: str, prefix: str) -> Iterator[str]:
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            yield item["Key"]


# ---------------------------------------------------------------- history


def history_key(workspace: str, summary: StateSummary) -> str:
    return f"{HISTORY_PREFIX}{workspace}/{summary.lineage}/{summary.serial:012d}-{summary.sha256[:16]}.tfstate"


def quarantine_key(workspace: str, anomaly: Anomaly, sha256: str) -> str:
    return f"{QUARANTINE_PREFIX}{workspace}/{anomaly.value}-{sha256[:16]}.tfstate"


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


def _exists(s3: Any, bucket: str, key: str) -> bool:
    try:
        s3.head_object(Bucket=bucket, Key=key)
        return True
    except ClientError as exc:
        if error_code(exc) in ("404", "NoSuchKey", "NotFound"):
            return False
        raise


# ---------------------------------------------------------------- backing up one object


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


# ---------------------------------------------------------------- restore


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
