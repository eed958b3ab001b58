"""The replica sync: copy the W&B bucket to a replica bucket (sync), also delete what the source no
longer has (mirror), or only compare (verify). The two listings are merge-joined."""

from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

from wandb_ops.access.s3_copy import CopyOptions, versioning_enabled
from wandb_ops.access.s3_listing import Entry, archived, differs, merge_join, read_ahead
from wandb_ops.access.s3_verify import verify_object
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
from wandb_ops.workflows.s3_sync.tasks import ReplicaToCopy, Run, Shard, SummaryOutput, SyncRequest


def kind(source: Entry, replica: Entry | None) -> Kind:
    """new / changed / in_sync / archived. An archived object already in the replica is in sync;
    one the replica lacks (or holds in an older version) cannot be copied until it is restored."""
    if replica is not None and not differs(source, replica):
        return "in_sync"
    if archived(source):
        return "archived"
    return "new" if replica is None else "changed"


class Replica:
    metric_prefix = "S3Sync"

    def prepare(self, request: dict[str, Any], settings: S3SyncSettings, clients: Clients, now: datetime) -> RunSpec:
        """Check the buckets and the mode. Changes nothing."""
        asked = parse_event(SyncRequest, request, within="input")
        source_bucket = asked.source_bucket or settings.source_bucket
        replica_bucket = asked.replica_bucket or settings.replica_bucket
        if source_bucket == replica_bucket:
            raise SyncRefusedError(f"source and replica are the same bucket ({source_bucket}): name another replica")
        refuse_leading_slash(asked.prefix)
        with refusing_unreachable(replica_bucket, "replica", "S3ReplicaBucketName"):
            clients.replica.head_bucket(Bucket=replica_bucket)
        if asked.mode == "mirror" and not asked.dry_run and not versioning_enabled(clients.replica, replica_bucket):
            raise SyncRefusedError(
                f"mode 'mirror' deletes replica objects the source no longer has, so the replica {replica_bucket} "
                "must keep old versions: enable versioning on it (aws s3api put-bucket-versioning "
                "--versioning-configuration Status=Enabled), or run mode 'sync', which never deletes; "
                "a dry run lists the deletes without versioning"
            )
        return RunSpec(
            mode=asked.mode,
            dry_run=asked.dry_run,
            prefix=asked.prefix,
            source_bucket=source_bucket,
            replica_bucket=replica_bucket,
            kms_key_arn=settings.replica_kms_key_arn,
        )

    def pairs(self, clients: Clients, run: Run, shard: Shard, after: str | None) -> Iterator[Pair]:
        """Both listings at once (read ahead), merge-joined by key."""
        source = shard_listing(clients.source, run.source_bucket, run, shard, after, restore_status=True)
        replica = shard_listing(clients.replica, run.replica_bucket, run, shard, after)
        return merge_join(read_ahead(source), read_ahead(replica))

    def classifier(self, run: Run) -> Callable[[Entry, Entry | None], Kind]:
        return kind

    def version_to_check(self, copied: CopiedVersion) -> str:
        return copied.etag  # the source version copied, compared with its replica

    def check(
        self, clients: Clients, run: Run, options: CopyOptions, key: str, *, etag: str, copied_now: bool
    ) -> list[str]:
        """The replica against the source. Copies made now must be under the replica key; older ones
        may predate a change of key."""
        expected_key = run.kms_key_arn if copied_now else None
        return verify_object(clients.source, clients.replica, options, key, etag=etag, expected_kms_key=expected_key)

    def to_copy(self, totals: PlanCounts) -> ReplicaToCopy:
        return ReplicaToCopy(
            objects=totals.new + totals.changed, bytes=totals.to_copy_bytes, new=totals.new, changed=totals.changed
        )

    def unfinished(self, archived: int) -> str:
        return ""  # archived objects wait for a restore: the source keeps them meanwhile

    def report(self, run: Run, summary: SummaryOutput) -> SummaryOutput:
        return summary


REPLICA = Replica()
