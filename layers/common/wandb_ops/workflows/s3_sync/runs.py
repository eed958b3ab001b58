"""The start of a run: the clients it works with, the checks that refuse it, and the Run that
prepare hands every later step (its id, buckets, mode and key-range shards)."""

import math
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from wandb_ops.access.s3_listing import Entry, listing, ranges, shard_boundaries
from wandb_ops.core.aws import error_code
from wandb_ops.core.errors import WandbOpsError
from wandb_ops.workflows.s3_sync.settings import S3SyncSettings
from wandb_ops.workflows.s3_sync.tasks import Mode, Run, Shard


class SyncRefusedError(WandbOpsError):
    """The run cannot start as asked (a bucket is unreachable, mirror mode without versioning...)."""


@dataclass(frozen=True)
class Clients:
    source: Any
    replica: Any  # in the replica's region: CopyObject runs where the destination bucket is
    work: Any
    cloudwatch: Any
    kms: Any  # resolves the re-encryption key


@dataclass(frozen=True)
class RunSpec:
    """What a purpose's prepare decided from the workflow input: the rest of the Run is common."""

    mode: Mode
    dry_run: bool
    prefix: str
    source_bucket: str
    replica_bucket: str
    kms_key_arn: str | None
    modified_before: str | None = None
    sse_algorithm: str = "aws:kms"


@contextmanager
def refusing_unreachable(bucket: str, role: str, parameter: str) -> Iterator[None]:
    """Turn S3's answer for a missing or forbidden bucket into an error that says what to fix."""
    try:
        yield
    except ClientError as exc:
        code = error_code(exc)
        if code in ("404", "NoSuchBucket"):
            raise SyncRefusedError(
                f"the {role} bucket {bucket} does not exist: check the stack parameter {parameter}"
            ) from None
        if code in ("403", "AccessDenied"):
            raise SyncRefusedError(
                f"the stack's role may not reach the {role} bucket {bucket}: only the bucket named by the stack "
                f"parameter {parameter} is granted; redeploy with it to sync another bucket"
            ) from None
        raise


def refuse_leading_slash(prefix: str) -> None:
    if prefix.startswith("/"):
        raise SyncRefusedError("field 'prefix' starts with '/': S3 keys have no leading slash; drop it")


def estimated_objects(cloudwatch: Any, bucket: str, now: datetime) -> int | None:
    """S3's daily storage metric NumberOfObjects (free, for every bucket), or None before it exists."""
    datapoints = cloudwatch.get_metric_statistics(
        Namespace="AWS/S3",
        MetricName="NumberOfObjects",
        Dimensions=[{"Name": "BucketName", "Value": bucket}, {"Name": "StorageType", "Value": "AllStorageTypes"}],
        StartTime=now - timedelta(days=3),
        EndTime=now,
        Period=86400,
        Statistics=["Average"],
    )["Datapoints"]
    if not datapoints:
        return None
    return int(max(datapoints, key=lambda point: point["Timestamp"])["Average"])


def shard_count(clients: Clients, settings: S3SyncSettings, bucket: str, prefix: str, now: datetime) -> int:
    """One shard when the first page holds every key; otherwise enough shards for about
    ``objects_per_shard`` objects each (so each plan ends well within a function's 15 minutes),
    from S3's own object count; the maximum when S3 has not counted the bucket yet."""
    first_page = clients.source.list_objects_v2(Bucket=bucket, Prefix=prefix, MaxKeys=1000)
    if not first_page.get("IsTruncated"):
        return 1
    estimate = estimated_objects(clients.cloudwatch, bucket, now)
    if estimate is None:
        return settings.plan_shards
    return max(1, min(settings.plan_shards, math.ceil(estimate / settings.objects_per_shard)))


def new_run(spec: RunSpec, settings: S3SyncSettings, clients: Clients, execution: str | None, now: datetime) -> Run:
    """The run's id (from the execution, so a retried prepare names the same run) and its shards."""
    seed = execution or uuid.uuid4().hex
    run_id = f"{now:%Y%m%dT%H%M%SZ}-{uuid.uuid5(uuid.NAMESPACE_URL, seed).hex[:8]}"
    with refusing_unreachable(spec.source_bucket, "source", "FileStorageBucketName"):
        wanted = shard_count(clients, settings, spec.source_bucket, spec.prefix, now)
    boundaries = shard_boundaries(clients.source, spec.source_bucket, spec.prefix, wanted)
    return Run(
        id=run_id,
        mode=spec.mode,
        dry_run=spec.dry_run,
        prefix=spec.prefix,
        source_bucket=spec.source_bucket,
        replica_bucket=spec.replica_bucket,
        work_bucket=settings.work_bucket,
        started_at=now.isoformat(),
        copy_objects=spec.mode != "verify" and not spec.dry_run,
        delete_objects=spec.mode == "mirror" and not spec.dry_run,
        shards=[Shard(index=i, start=start, end=end) for i, (start, end) in enumerate(ranges(boundaries))],
        kms_key_arn=spec.kms_key_arn,
        modified_before=spec.modified_before,
        sse_algorithm=spec.sse_algorithm,
        work_prefix=settings.work_prefix,
    )


def shard_listing(
    s3: Any, bucket: str, run: Run, shard: Shard, after: str | None, *, restore_status: bool = False
) -> Iterator[Entry]:
    """The objects of the shard's key range under the run's prefix, from after ``after``."""
    return listing(s3, bucket, run.prefix, start=shard.start, end=shard.end, after=after, restore_status=restore_status)
