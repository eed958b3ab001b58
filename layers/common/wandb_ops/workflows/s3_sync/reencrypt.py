"""The re-encryption of the W&B bucket (docs/kms-rotation.md): every object last written before
the run's ``modified_before`` is copied onto itself under the bucket's default KMS key. Only the
source is listed; the object's age, not a replica, says whether it is to copy."""

import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from wandb_ops.access.encryption import bucket_default_encryption
from wandb_ops.access.s3_copy import CopyOptions
from wandb_ops.access.s3_listing import Entry, archived, read_ahead
from wandb_ops.access.s3_verify import verify_reencrypted
from wandb_ops.core.aws import ACCESS_DENIED_CODES, error_code
from wandb_ops.core.validation import parse_event
from wandb_ops.workflows.s3_sync.purpose import Kind, Pair
from wandb_ops.workflows.s3_sync.records import CopiedVersion, PlanCounts
from wandb_ops.workflows.s3_sync.runs import (
    Clients,
    RunSpec,
    SyncRefusedError,
    refuse_leading_slash,
    refusing_unreachable,
    shard_listing,
)
from wandb_ops.workflows.s3_sync.settings import S3SyncSettings
from wandb_ops.workflows.s3_sync.tasks import (
    ReencryptRequest,
    ReencryptSummaryOutput,
    ReencryptToCopy,
    ResumeInput,
    Run,
    Shard,
    SummaryOutput,
)


def kind(source: Entry, cutoff: datetime) -> Kind:
    """outdated / in_sync / archived: an object written since the cutoff is under the key already;
    an archived one cannot be copied until it is restored."""
    if source.last_modified >= cutoff:
        return "in_sync"
    return "archived" if archived(source) else "outdated"


def _described_key(kms: Any, key: str) -> dict[str, Any]:
    try:
        metadata: dict[str, Any] = kms.describe_key(KeyId=key)["KeyMetadata"]
    except ClientError as exc:
        if error_code(exc) in ACCESS_DENIED_CODES:
            raise SyncRefusedError(
                f"the re-encryption role may not use the key {key}: it is granted the W&B key (KmsKeyArn) and the "
                "keys in KmsRotationKeyArns; add this key there and redeploy"
            ) from None
        if error_code(exc) == "NotFoundException":
            raise SyncRefusedError(
                f"no KMS key {key}: check the bucket's default encryption or field 'kms_key'"
            ) from None
        raise
    return metadata


class Reencrypt:
    metric_prefix = "S3Reencrypt"

    def prepare(self, request: dict[str, Any], settings: S3SyncSettings, clients: Clients, now: datetime) -> RunSpec:
        """Re-encryption copies the bucket onto itself under the key new W&B writes use: the bucket's
        default. Another key would leave everything written during and after the run under the old one."""
        asked = parse_event(ReencryptRequest, request, within="input")
        bucket = settings.source_bucket
        refuse_leading_slash(asked.prefix)
        cutoff = self._cutoff(asked.modified_before or now, now)
        with refusing_unreachable(bucket, "W&B", "FileStorageBucketName"):
            encryption = bucket_default_encryption(clients.source, bucket)
        if encryption is None:
            raise SyncRefusedError(
                f"bucket {bucket} has no SSE-KMS default encryption: set its default to the KMS key to re-encrypt "
                "with (terraform-aws-wandb does), then re-run"
            )
        algorithm, default_key = encryption
        default = _described_key(clients.kms, default_key)
        target = _described_key(clients.kms, asked.kms_key) if asked.kms_key else default
        if target["Arn"] != default["Arn"]:
            raise SyncRefusedError(
                f"field 'kms_key': {target['Arn']} is not the default key of {bucket} ({default['Arn']}). W&B writes "
                "new objects with the default key, so make the new key the bucket's default first (kms_key_alias in "
                "terraform-aws-wandb, or the bucket's encryption settings), then re-run"
            )
        if target.get("KeyState") != "Enabled":
            raise SyncRefusedError(f"the key {target['Arn']} is {target.get('KeyState')}: enable it first")
        return RunSpec(
            mode="reencrypt",
            dry_run=asked.dry_run,
            prefix=asked.prefix,
            source_bucket=bucket,
            replica_bucket=bucket,
            kms_key_arn=target["Arn"],
            modified_before=cutoff.isoformat(),
            sse_algorithm=algorithm,
        )

    @staticmethod
    def _cutoff(asked: datetime, now: datetime) -> datetime:
        if asked.tzinfo is None:
            raise SyncRefusedError("field 'modified_before' has no time zone: give it as in a report, e.g. ...+00:00")
        if asked > now:
            raise SyncRefusedError("field 'modified_before' is in the future: give the start of the run to resume")
        # S3 lists LastModified to the second. Rounding up copies everything written in the run's first
        # second (rounding down would skip some); waiting for the cutoff before any copy starts makes
        # every copy of this run newer than it, so a resume with this cutoff copies none of them again.
        cutoff = asked if not asked.microsecond else asked.replace(microsecond=0) + timedelta(seconds=1)
        if cutoff > now:
            time.sleep((cutoff - now).total_seconds())
        return cutoff

    def pairs(self, clients: Clients, run: Run, shard: Shard, after: str | None) -> Iterator[Pair]:
        """The source alone: the object is its own destination."""
        source = shard_listing(clients.source, run.source_bucket, run, shard, after, restore_status=True)
        return ((entry, None) for entry in read_ahead(source))

    def classifier(self, run: Run) -> Callable[[Entry, Entry | None], Kind]:
        assert run.modified_before is not None  # prepare sets it
        cutoff = datetime.fromisoformat(run.modified_before)
        return lambda source, _: kind(source, cutoff)

    def version_to_check(self, copied: CopiedVersion) -> str:
        return copied.written_etag  # a copy onto the object itself replaced that version: the one it wrote

    def check(
        self, clients: Clients, run: Run, options: CopyOptions, key: str, *, etag: str, copied_now: bool
    ) -> list[str]:
        """Versions found in sync and versions just copied must both be under the run's key."""
        return verify_reencrypted(clients.source, run.source_bucket, key, etag=etag, kms_key=run.kms_key_arn)

    def to_copy(self, totals: PlanCounts) -> ReencryptToCopy:
        return ReencryptToCopy(objects=totals.outdated, bytes=totals.to_copy_bytes, outdated=totals.outdated)

    def unfinished(self, archived: int) -> str:
        # A replica can wait for a restore (the source keeps the object); a re-encryption leaves
        # archived objects under the old key, which must then stay usable.
        return f"{archived} archived objects need a restore first" if archived else ""

    def report(self, run: Run, summary: SummaryOutput) -> ReencryptSummaryOutput:
        # Objects this run copied are newer than modified_before: the same input skips them.
        return ReencryptSummaryOutput(
            **dict(summary),
            kms_key=run.kms_key_arn,
            modified_before=run.modified_before,
            resume_input=ResumeInput(dry_run=False, kms_key=run.kms_key_arn, modified_before=run.modified_before),
        )


REENCRYPT = Reencrypt()
