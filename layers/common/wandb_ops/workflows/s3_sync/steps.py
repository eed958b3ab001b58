"""The steps of the S3 replica sync workflow, one function action each. The same steps,
deployed a second time with purpose ``reencrypt``, copy every object of the W&B bucket onto
itself under the bucket's current KMS key (re-encryption, docs/kms-rotation.md).

prepare -> plan (one per key-range shard, in parallel) -> manifest -> copy (one per batch,
a Distributed Map) -> verify (a sample) -> summary. Plans, batches and results live in the
stack's work bucket under ``s3-sync/<run>/``; the state carries only their keys and counts,
so a bucket of any size fits Step Functions' 256 KiB state limit.
"""

import json
import math
import os
import random
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from botocore.exceptions import ClientError
from pydantic import Field, RootModel

from wandb_ops.access.encryption import KEY_REFERENCE, bucket_default_encryption
from wandb_ops.access.s3_copy import (
    DELETE_OBJECTS_LIMIT,
    CopyItem,
    CopyOptions,
    copy_all,
    delete_keys,
    versioning_enabled,
)
from wandb_ops.access.s3_listing import (
    NOT_FOUND,
    Entry,
    archived,
    differs,
    in_archive_tier,
    listing,
    merge_join,
    ranges,
    read_ahead,
    shard_boundaries,
)
from wandb_ops.access.s3_verify import verify_object, verify_reencrypted
from wandb_ops.core.aws import ACCESS_DENIED_CODES, error_code
from wandb_ops.core.errors import ConfigurationError, WandbOpsError
from wandb_ops.core.models import StrictModel
from wandb_ops.core.settings import whole_number
from wandb_ops.core.validation import parse_event

EXAMPLES = 20  # keys listed in the output per category; the report in S3 has them all
CHECK_TIME_EVERY = 100  # objects compared between two looks at the clock
MAX_PLAN_INVOCATIONS = 100  # of about 13 minutes each, per key range
SUMMARY_READERS = 32  # batch results read at once: 100,000 of them in about a minute
WORK_PREFIX = "s3-sync"


class SyncRefusedError(WandbOpsError):
    """The run cannot start as asked (a bucket is unreachable, mirror mode without versioning...)."""


Purpose = Literal["replica", "reencrypt"]


@dataclass(frozen=True)
class SyncSettings:
    purpose: Purpose
    source_bucket: str
    replica_bucket: str
    replica_region: str
    replica_kms_key_arn: str | None
    work_bucket: str
    work_prefix: str
    plan_shards: int
    objects_per_shard: int
    plan_chunk_objects: int
    batch_objects: int
    batch_bytes: int
    copy_concurrency: int
    multipart_threshold: int
    part_size: int
    tolerated_failures: int
    verify_sample: int

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "SyncSettings":
        env = os.environ if environ is None else environ

        def text(name: str, parameter: str, required: bool = True) -> str:
            value = env.get(name, "").strip()
            if required and not value:
                raise ConfigurationError(f"{name} is empty: set the stack parameter {parameter} and redeploy")
            return value

        purpose = env.get("S3_SYNC_PURPOSE", "replica")
        if purpose not in ("replica", "reencrypt"):
            raise ConfigurationError(f"S3_SYNC_PURPOSE={purpose!r}: the template sets replica or reencrypt")
        return cls(
            purpose=purpose,  # type: ignore[arg-type]
            source_bucket=text("S3_SYNC_SOURCE_BUCKET", "FileStorageBucketName"),
            replica_bucket=text("S3_SYNC_REPLICA_BUCKET", "S3ReplicaBucketName"),
            replica_region=text("S3_SYNC_REPLICA_REGION", "S3ReplicaRegion", required=False)
            or env.get("AWS_REGION", "us-east-1"),
            replica_kms_key_arn=text("S3_SYNC_REPLICA_KMS_KEY_ARN", "S3ReplicaKmsKeyArn", required=False) or None,
            work_bucket=text("S3_SYNC_WORK_BUCKET", "(template)"),
            work_prefix=env.get("S3_SYNC_WORK_PREFIX", "").strip() or WORK_PREFIX,
            plan_shards=whole_number(env, "S3_SYNC_PLAN_SHARDS", "S3SyncPlanShards", 1, 256),
            objects_per_shard=whole_number(env, "S3_SYNC_OBJECTS_PER_SHARD", "(template)", 1),
            plan_chunk_objects=whole_number(env, "S3_SYNC_PLAN_CHUNK_OBJECTS", "(template)", CHECK_TIME_EVERY),
            batch_objects=whole_number(env, "S3_SYNC_BATCH_OBJECTS", "S3SyncBatchObjects", 1, 100_000),
            batch_bytes=whole_number(env, "S3_SYNC_BATCH_BYTES", "(template)", 1),
            copy_concurrency=whole_number(env, "S3_SYNC_COPY_CONCURRENCY", "S3SyncCopyConcurrency", 1, 256),
            multipart_threshold=whole_number(env, "S3_SYNC_MULTIPART_THRESHOLD", "(template)", 1, 5 * 1024**3),
            part_size=whole_number(env, "S3_SYNC_PART_SIZE", "(template)", 5 * 1024**2, 5 * 1024**3),
            tolerated_failures=whole_number(env, "S3_SYNC_TOLERATED_FAILURES", "S3SyncToleratedFailures"),
            verify_sample=whole_number(env, "S3_SYNC_VERIFY_SAMPLE", "S3SyncVerifySample", 0, 1000),
        )


@dataclass(frozen=True)
class Clients:
    source: Any
    replica: Any  # in the replica's region: CopyObject runs where the destination bucket is
    work: Any
    cloudwatch: Any
    kms: Any  # resolves the re-encryption key


# ---------------------------------------------------------------- inputs

BucketName = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")]


class SyncRequest(StrictModel):
    """Workflow input. ``mode``: sync (copy what is missing or differs, never delete), mirror
    (also delete replica objects the source no longer has; needs versioning on the replica),
    verify (compare and report drift, copy nothing). ``dry_run`` plans and lists, changes nothing.
    The buckets default to the stack's; the stack's role may only reach those."""

    mode: Literal["sync", "mirror", "verify"] = "sync"
    prefix: str = Field(default="", max_length=1024)
    dry_run: bool = False
    source_bucket: BucketName | None = None
    replica_bucket: BucketName | None = None
    source: Literal["schedule", "console", "demo", "test"] = "console"


class ReencryptRequest(StrictModel):
    """Workflow input of the re-encryption. Every object last written before ``modified_before``
    (default: the start of the run) is copied onto itself under the bucket's default KMS key,
    keeping metadata and tags. ``kms_key`` (optional) must be that default key: it guards against
    re-encrypting under a key that new W&B writes do not use. To resume a failed run, start again
    with its ``modified_before``: what it copied is newer and is skipped. ``dry_run`` (the default)
    counts what would be copied."""

    mode: Literal["reencrypt"] = "reencrypt"
    kms_key: str | None = Field(default=None, pattern=KEY_REFERENCE.pattern)
    modified_before: datetime | None = None
    prefix: str = Field(default="", max_length=1024)
    dry_run: bool = True
    source: Literal["console", "demo", "test"] = "console"


Mode = Literal["sync", "mirror", "verify", "reencrypt"]


class Shard(StrictModel):
    index: int = Field(ge=0)
    start: str | None
    end: str | None


class Run(StrictModel):
    """What prepare decided; every later step gets it back from the state."""

    id: str
    mode: Mode
    dry_run: bool
    prefix: str
    source_bucket: str
    replica_bucket: str
    work_bucket: str
    started_at: str
    copy_objects: bool
    delete_objects: bool
    shards: list[Shard]
    kms_key_arn: str | None = None  # what copies are encrypted with; None: the destination's default
    modified_before: str | None = None  # reencrypt: objects written since are under the key already
    sse_algorithm: str = "aws:kms"
    work_prefix: str = WORK_PREFIX

    def key(self, *parts: str) -> str:
        return "/".join((self.work_prefix, self.id, *parts))


class PrepareTask(StrictModel):
    action: Literal["prepare"]
    input: dict[str, Any]  # a SyncRequest, or a ReencryptRequest for the re-encryption (per purpose)
    execution: str | None = None


class PlanTask(StrictModel):
    action: Literal["plan"]
    run: Run
    shard: Shard


class ManifestTask(StrictModel):
    action: Literal["manifest"]
    run: Run
    plans: list[dict[str, Any]]


class CopyTask(StrictModel):
    action: Literal["copy"]
    run: Run
    batch: str = Field(min_length=1)


class VerifyTask(StrictModel):
    action: Literal["verify"]
    run: Run


class SummaryTask(StrictModel):
    action: Literal["summary"]
    run: Run
    plans: list[dict[str, Any]]
    verify: dict[str, Any]


class SyncTask(
    RootModel[
        Annotated[
            PrepareTask | PlanTask | ManifestTask | CopyTask | VerifyTask | SummaryTask,
            Field(discriminator="action"),
        ]
    ]
):
    pass


# ---------------------------------------------------------------- work bucket


def _put_json(s3: Any, bucket: str, key: str, body: Any) -> None:
    s3.put_object(Bucket=bucket, Key=key, Body=json.dumps(body).encode(), ContentType="application/json")


def _get_json(s3: Any, bucket: str, key: str) -> Any:
    return json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())


def _keys_under(s3: Any, bucket: str, prefix: str) -> list[str]:
    return [e.key for e in listing(s3, bucket, prefix)]


def _copy_options(settings: SyncSettings, run: Run) -> CopyOptions:
    return CopyOptions(
        source_bucket=run.source_bucket,
        replica_bucket=run.replica_bucket,
        replica_kms_key_arn=run.kms_key_arn,
        multipart_threshold=settings.multipart_threshold,
        part_size=settings.part_size,
        concurrency=settings.copy_concurrency,
        sse_algorithm=run.sse_algorithm,
    )


# ---------------------------------------------------------------- steps


@contextmanager
def _refusing_unreachable(bucket: str, role: str, parameter: str) -> Iterator[None]:
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


def shard_count(clients: Clients, settings: SyncSettings, bucket: str, prefix: str, now: datetime) -> int:
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


def prepare(settings: SyncSettings, clients: Clients, task: PrepareTask, now: datetime) -> dict[str, Any]:
    """Check the buckets and the mode, and cut the key space into shards. Changes nothing."""
    if settings.purpose == "reencrypt":
        return _prepare_reencrypt(settings, clients, task, now)
    request = parse_event(SyncRequest, task.input, within="input")
    source_bucket = request.source_bucket or settings.source_bucket
    replica_bucket = request.replica_bucket or settings.replica_bucket
    if source_bucket == replica_bucket:
        raise SyncRefusedError(f"source and replica are the same bucket ({source_bucket}): name another replica")
    _refuse_leading_slash(request.prefix)
    with _refusing_unreachable(replica_bucket, "replica", "S3ReplicaBucketName"):
        clients.replica.head_bucket(Bucket=replica_bucket)
    if request.mode == "mirror" and not request.dry_run and not versioning_enabled(clients.replica, replica_bucket):
        raise SyncRefusedError(
            f"mode 'mirror' deletes replica objects the source no longer has, so the replica {replica_bucket} "
            "must keep old versions: enable versioning on it (aws s3api put-bucket-versioning "
            "--versioning-configuration Status=Enabled), or run mode 'sync', which never deletes; "
            "a dry run lists the deletes without versioning"
        )
    run = _new_run(
        settings,
        clients,
        task,
        now,
        mode=request.mode,
        dry_run=request.dry_run,
        prefix=request.prefix,
        buckets=(source_bucket, replica_bucket),
        kms_key_arn=settings.replica_kms_key_arn,
    )
    return run.model_dump()


def _refuse_leading_slash(prefix: str) -> None:
    if prefix.startswith("/"):
        raise SyncRefusedError("field 'prefix' starts with '/': S3 keys have no leading slash; drop it")


def _prepare_reencrypt(settings: SyncSettings, clients: Clients, task: PrepareTask, now: datetime) -> dict[str, Any]:
    """Re-encryption copies the bucket onto itself under the key new W&B writes use: the bucket's
    default. Another key would leave everything written during and after the run under the old one."""
    request = parse_event(ReencryptRequest, task.input, within="input")
    bucket = settings.source_bucket
    _refuse_leading_slash(request.prefix)
    asked = request.modified_before or now
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
    with _refusing_unreachable(bucket, "W&B", "FileStorageBucketName"):
        encryption = bucket_default_encryption(clients.source, bucket)
    if encryption is None:
        raise SyncRefusedError(
            f"bucket {bucket} has no SSE-KMS default encryption: set its default to the KMS key to re-encrypt "
            "with (terraform-aws-wandb does), then re-run"
        )
    algorithm, default_key = encryption
    default = _described_key(clients.kms, default_key)
    target = _described_key(clients.kms, request.kms_key) if request.kms_key else default
    if target["Arn"] != default["Arn"]:
        raise SyncRefusedError(
            f"field 'kms_key': {target['Arn']} is not the default key of {bucket} ({default['Arn']}). W&B writes "
            "new objects with the default key, so make the new key the bucket's default first (kms_key_alias in "
            "terraform-aws-wandb, or the bucket's encryption settings), then re-run"
        )
    if target.get("KeyState") != "Enabled":
        raise SyncRefusedError(f"the key {target['Arn']} is {target.get('KeyState')}: enable it first")
    run = _new_run(
        settings,
        clients,
        task,
        now,
        mode="reencrypt",
        dry_run=request.dry_run,
        prefix=request.prefix,
        buckets=(bucket, bucket),
        kms_key_arn=target["Arn"],
        modified_before=cutoff.isoformat(),
        sse_algorithm=algorithm,
    )
    return run.model_dump()


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


def _new_run(
    settings: SyncSettings,
    clients: Clients,
    task: PrepareTask,
    now: datetime,
    *,
    mode: Mode,
    dry_run: bool,
    prefix: str,
    buckets: tuple[str, str],
    kms_key_arn: str | None,
    modified_before: str | None = None,
    sse_algorithm: str = "aws:kms",
) -> Run:
    source_bucket, replica_bucket = buckets
    seed = task.execution or uuid.uuid4().hex
    run_id = f"{now:%Y%m%dT%H%M%SZ}-{uuid.uuid5(uuid.NAMESPACE_URL, seed).hex[:8]}"
    with _refusing_unreachable(source_bucket, "source", "FileStorageBucketName"):
        wanted = shard_count(clients, settings, source_bucket, prefix, now)
    boundaries = shard_boundaries(clients.source, source_bucket, prefix, wanted)
    return Run(
        id=run_id,
        mode=mode,
        dry_run=dry_run,
        prefix=prefix,
        source_bucket=source_bucket,
        replica_bucket=replica_bucket,
        work_bucket=settings.work_bucket,
        started_at=now.isoformat(),
        copy_objects=mode != "verify" and not dry_run,
        delete_objects=mode == "mirror" and not dry_run,
        shards=[Shard(index=i, start=start, end=end) for i, (start, end) in enumerate(ranges(boundaries))],
        kms_key_arn=kms_key_arn,
        modified_before=modified_before,
        sse_algorithm=sse_algorithm,
        work_prefix=settings.work_prefix,
    )


class _BatchWriter:
    """Cuts the work of one shard into batch files of bounded objects and bytes."""

    def __init__(self, s3: Any, run: Run, shard: int, settings: SyncSettings, first_batch: int) -> None:
        self._s3, self._run, self._shard = s3, run, shard
        self._max_objects, self._max_bytes = settings.batch_objects, settings.batch_bytes
        self._next = first_batch
        self._copy: list[dict[str, Any]] = []
        self._delete: list[str] = []
        self._bytes = 0
        self.written: list[str] = []

    def copy(self, item: CopyItem) -> None:
        if self._copy and (len(self._copy) >= self._max_objects or self._bytes + item.size > self._max_bytes):
            self._flush_copies()
        self._copy.append({"key": item.key, "size": item.size, "etag": item.etag, "storage_class": item.storage_class})
        self._bytes += item.size

    def delete(self, key: str) -> None:
        if len(self._delete) >= min(self._max_objects, DELETE_OBJECTS_LIMIT):
            self._flush_deletes()
        self._delete.append(key)

    def _flush_copies(self) -> None:
        self._write({"copy": self._copy, "delete": []})
        self._copy, self._bytes = [], 0

    def _flush_deletes(self) -> None:
        self._write({"copy": [], "delete": self._delete})
        self._delete = []

    def _write(self, body: dict[str, Any]) -> None:
        key = self._run.key("batches", f"{self._shard:04d}-{self._next:06d}.json")
        _put_json(self._s3, self._run.work_bucket, key, body)
        self.written.append(key)
        self._next += 1

    def close(self) -> None:
        if self._copy:
            self._flush_copies()
        if self._delete:
            self._flush_deletes()


@dataclass
class ShardProgress:
    """A plan's state in its shard file: complete when ``done``, otherwise where to go on from."""

    done: bool = False
    after: str | None = None  # the last key compared; the next invocation lists from after it
    invocations: int = 0
    stats: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(
            (
                "compared_objects",
                "compared_bytes",
                "new",
                "changed",
                "to_copy_bytes",
                "in_sync",
                "outdated",  # reencrypt: last written before the run's modified_before
                "archived",  # to copy, but in Glacier Flexible Retrieval or Deep Archive, not restored
                "replica_only",
                "to_delete",
            ),
            0,
        )
    )
    batches: list[str] = field(default_factory=list)
    sample: list[dict[str, str]] = field(default_factory=list)  # {"key", "etag"} the plan found in sync
    examples: dict[str, list[str]] = field(
        default_factory=lambda: {"new": [], "changed": [], "replica_only": [], "archived": []}
    )


def plan(settings: SyncSettings, clients: Clients, task: PlanTask, out_of_time: Callable[[], bool]) -> dict[str, Any]:
    """Merge-join the two listings of one key range; write the work as batch files. A range too
    big for one invocation is planned in several: before ``out_of_time`` (or after
    ``plan_chunk_objects``) the plan records where it is and returns ``done: false``, and the state
    machine calls it again; a retried invocation also goes on from the last record."""
    run, shard = task.run, task.shard
    progress = _progress(clients, run, shard)
    if progress.done:
        return {"shard": shard.index, "done": True, **progress.stats, "batches": len(progress.batches)}
    progress.invocations += 1
    if progress.invocations > MAX_PLAN_INVOCATIONS:
        raise SyncRefusedError(
            f"shard {shard.index} is still not planned after {MAX_PLAN_INVOCATIONS} invocations: "
            "raise S3SyncPlanShards so each key range is smaller"
        )
    stats, examples, sample = progress.stats, progress.examples, progress.sample
    writer = _BatchWriter(clients.work, run, shard.index, settings, first_batch=len(progress.batches))
    sampler = random.Random(f"{run.id}/{shard.index}/{progress.invocations}")  # noqa: S311 - a sample, not a secret
    pairs = _pairs(clients, run, shard, progress.after)
    cutoff = datetime.fromisoformat(run.modified_before) if run.modified_before else None
    finished = True
    for seen, (source, replica) in enumerate(pairs):
        # Every CHECK_TIME_EVERY keys, before taking the next: ``after`` is the last key planned.
        if seen and seen % CHECK_TIME_EVERY == 0 and (seen >= settings.plan_chunk_objects or out_of_time()):
            finished = False
            break
        progress.after = (source or replica).key  # type: ignore[union-attr]
        if source is None:
            assert replica is not None
            stats["replica_only"] += 1
            _note(examples["replica_only"], replica.key)
            if run.mode == "mirror":
                stats["to_delete"] += 1
                writer.delete(replica.key)
            continue
        stats["compared_objects"] += 1
        stats["compared_bytes"] += source.size
        kind = _planned_kind(clients, run, source, replica, cutoff)
        if kind == "in_sync":
            stats["in_sync"] += 1
            # Reservoir sampling: a uniform sample of the objects found in sync, in constant memory.
            chosen = {"key": source.key, "etag": source.etag}
            if len(sample) < settings.verify_sample:
                sample.append(chosen)
            elif (slot := sampler.randrange(stats["in_sync"])) < settings.verify_sample:
                sample[slot] = chosen
        else:
            stats[kind] += 1
            if kind in examples:
                _note(examples[kind], source.key)
            if kind != "archived":
                stats["to_copy_bytes"] += source.size
                writer.copy(CopyItem(source.key, source.size, source.etag, source.storage_class))
    writer.close()
    progress.batches.extend(writer.written)
    progress.done = finished
    _put_json(clients.work, run.work_bucket, _shard_key(run, shard), asdict(progress))
    return {"shard": shard.index, "done": finished, **stats, "batches": len(progress.batches)}


def _pairs(clients: Clients, run: Run, shard: Shard, after: str | None) -> Iterator[tuple[Entry | None, Entry | None]]:
    """(source, replica) entries of the key range in key order; a re-encryption lists only the source."""
    bounds: dict[str, Any] = {"start": shard.start, "end": shard.end, "after": after}
    source = read_ahead(listing(clients.source, run.source_bucket, run.prefix, **bounds, restore_status=True))
    if run.mode == "reencrypt":
        return ((entry, None) for entry in source)
    return merge_join(source, read_ahead(listing(clients.replica, run.replica_bucket, run.prefix, **bounds)))


def _kind(source: Entry, replica: Entry | None, cutoff: datetime | None) -> str:
    """new / changed / in_sync / archived for a replica; with a re-encryption cutoff, outdated /
    in_sync / archived. An archived object already in the replica is in sync; one the replica
    lacks (or holds in an older version) cannot be copied until it is restored."""
    if cutoff is not None:
        if source.last_modified >= cutoff:
            return "in_sync"
        return "archived" if archived(source) else "outdated"
    if replica is not None and not differs(source, replica):
        return "in_sync"
    if archived(source):
        return "archived"
    return "new" if replica is None else "changed"


def _planned_kind(clients: Clients, run: Run, source: Entry, replica: Entry | None, cutoff: datetime | None) -> str:
    """``_kind``, and for Intelligent-Tiering objects the listing cannot judge: in a run that
    copies, a copy refused with InvalidObjectState finds an archive tier at no extra request; a run
    that copies nothing (verify, dry run) asks HeadObject, only for the INTELLIGENT_TIERING objects
    it would otherwise report as missing or changed."""
    kind = _kind(source, replica, cutoff)
    if (
        kind in ("new", "changed")
        and not run.copy_objects
        and source.storage_class == "INTELLIGENT_TIERING"
        and in_archive_tier(clients.source, run.source_bucket, source.key)
    ):
        return "archived"
    return kind


def _note(examples: list[str], key: str) -> None:
    if len(examples) < EXAMPLES:
        examples.append(key)


def _progress(clients: Clients, run: Run, shard: Shard) -> ShardProgress:
    try:
        return ShardProgress(**_get_json(clients.work, run.work_bucket, _shard_key(run, shard)))
    except ClientError as exc:
        if error_code(exc) in NOT_FOUND:
            return ShardProgress()
        raise


def _shard_key(run: Run, shard: Shard) -> str:
    return run.key("shards", f"{shard.index:04d}.json")


def _shard_file(clients: Clients, run: Run, shard: Shard) -> dict[str, Any]:
    """What a plan left for the later steps: its batch keys, a verification sample, example keys."""
    found: dict[str, Any] = _get_json(clients.work, run.work_bucket, _shard_key(run, shard))
    return found


def manifest(clients: Clients, task: ManifestTask) -> dict[str, Any]:
    """One JSON array of batch keys, in shard order: the Distributed Map's item reader input."""
    run = task.run
    if not sum(plan["batches"] for plan in task.plans):
        return {"key": None, "batches": 0}
    batches: list[str] = []
    for shard in run.shards:
        batches.extend(_shard_file(clients, run, shard)["batches"])
    key = run.key("manifest.json")
    _put_json(clients.work, run.work_bucket, key, [{"batch": batch} for batch in batches])
    return {"key": key, "batches": len(batches)}


def _result_key(run: Run, batch: str) -> str:
    return run.key("results", batch.rsplit("/", 1)[-1])


def copy(settings: SyncSettings, clients: Clients, task: CopyTask) -> dict[str, Any]:
    """Copy and delete one batch. A retry repeats it: each copy and delete is idempotent."""
    run = task.run
    if not task.batch.startswith(run.key("batches") + "/"):
        raise SyncRefusedError(f"field 'batch' is not a batch of run {run.id}: start the workflow, not this step")
    batch = _get_json(clients.work, run.work_bucket, task.batch)
    items = [CopyItem(i["key"], i["size"], i["etag"], i.get("storage_class", "STANDARD")) for i in batch["copy"]]
    results = copy_all(clients.source, clients.replica, _copy_options(settings, run), items) if run.copy_objects else []
    deleted: list[str] = []
    failed = [{"key": r.key, "error": r.error or "Error"} for r in results if r.outcome == "failed"]
    if batch["delete"] and run.delete_objects:
        if not versioning_enabled(clients.replica, run.replica_bucket):
            raise SyncRefusedError(
                f"versioning is no longer enabled on the replica {run.replica_bucket}: refusing to delete; "
                "enable it again and re-run"
            )
        deleted, delete_failures = delete_keys(clients.replica, run.replica_bucket, batch["delete"])
        failed.extend(delete_failures)
    copied = [r for r in results if r.outcome == "copied"]
    archived_now = [r.key for r in results if r.outcome == "archived"]
    outcome = {
        "batch": task.batch,
        "copied": len(copied),
        "copied_bytes": sum(r.size for r in copied),
        # A few of the versions just copied, for the sample check; all keys would make 100 KB per batch.
        "copied_sample": [{"key": r.key, "etag": r.etag, "written_etag": r.written_etag} for r in copied[:EXAMPLES]],
        "vanished": sum(1 for r in results if r.outcome == "vanished"),
        # Refused as archived (Intelligent-Tiering archive tiers; archived since the plan): not failures.
        "archived": len(archived_now),
        "archived_keys": archived_now[:EXAMPLES],
        "changed_during_copy": sum(r.retried_changed for r in results),
        "deleted": len(deleted),
        "failed": failed,
    }
    _put_json(clients.work, run.work_bucket, _result_key(run, task.batch), outcome)
    return {"batch": task.batch, "copied": outcome["copied"], "failed": len(failed)}


def verify(settings: SyncSettings, clients: Clients, task: VerifyTask) -> dict[str, Any]:
    """Deep-compare a sample: versions the plan found in sync and versions just copied (those
    are also checked for the replica key; older copies may predate a change of key). After a
    re-encryption, both kinds must be under the run's key."""
    run = task.run
    candidates: dict[str, tuple[str, bool]] = {}  # key -> (ETag of the version to check, copied now)
    for shard in run.shards:
        for chosen in _shard_file(clients, run, shard)["sample"]:
            candidates[chosen["key"]] = (chosen["etag"], False)
    if run.copy_objects:
        result_keys = _keys_under(clients.work, run.work_bucket, run.key("results") + "/")
        sampler = random.Random(run.id)  # noqa: S311 - picks a verification sample, not a secret
        for result_key in sampler.sample(result_keys, min(4, len(result_keys))):
            for chosen in _get_json(clients.work, run.work_bucket, result_key)["copied_sample"]:
                # A copy onto the object itself replaced that version: check the one it wrote.
                etag = chosen["written_etag"] if run.mode == "reencrypt" else chosen["etag"]
                candidates[chosen["key"]] = (etag, True)
    keys = sorted(candidates)
    random.Random(run.id).shuffle(keys)  # noqa: S311 - picks a verification sample, not a secret
    keys = keys[: settings.verify_sample]
    options = _copy_options(settings, run)

    def check(key: str) -> list[str]:
        etag, copied_now = candidates[key]
        if run.mode == "reencrypt":
            return verify_reencrypted(clients.source, run.source_bucket, key, etag=etag, kms_key=run.kms_key_arn)
        expected_key = run.kms_key_arn if copied_now else None
        return verify_object(clients.source, clients.replica, options, key, etag=etag, expected_kms_key=expected_key)

    with ThreadPoolExecutor(max_workers=8) as pool:
        problems = list(pool.map(check, keys))
    mismatched = [{"key": key, "differs": found} for key, found in zip(keys, problems, strict=True) if found]
    return {"checked": len(keys), "mismatched": mismatched[:EXAMPLES], "mismatched_count": len(mismatched)}


def summary(settings: SyncSettings, clients: Clients, task: SummaryTask, now: datetime) -> dict[str, Any]:
    """Totals of the plans and of every batch result; a batch without a result failed as a whole."""
    run = task.run
    totals = {name: sum(p[name] for p in task.plans) for name in task.plans[0] if name not in ("shard", "done")}
    examples: dict[str, list[str]] = {"new": [], "changed": [], "replica_only": [], "archived": []}
    for shard in run.shards:
        for name, keys in _shard_file(clients, run, shard)["examples"].items():
            examples[name].extend(keys[: EXAMPLES - len(examples[name])])
    copied = {"objects": 0, "bytes": 0}
    vanished = changed_during_copy = deleted = 0
    archived_count = totals["archived"]
    failed: list[dict[str, str]] = []
    if run.copy_objects and totals["batches"]:
        batches = [i["batch"] for i in _get_json(clients.work, run.work_bucket, run.key("manifest.json"))]
        done = set(_keys_under(clients.work, run.work_bucket, run.key("results") + "/"))

        def outcome(batch: str) -> dict[str, Any]:
            result_key = _result_key(run, batch)
            if result_key in done:
                found: dict[str, Any] = _get_json(clients.work, run.work_bucket, result_key)
                return found
            lost = _get_json(clients.work, run.work_bucket, batch)
            keys = [i["key"] for i in lost["copy"]] + lost["delete"]
            return {"failed": [{"key": key, "error": "BatchFailed"} for key in keys]}

        with ThreadPoolExecutor(max_workers=SUMMARY_READERS) as pool:
            for result in pool.map(outcome, batches):
                copied["objects"] += result.get("copied", 0)
                copied["bytes"] += result.get("copied_bytes", 0)
                vanished += result.get("vanished", 0)
                changed_during_copy += result.get("changed_during_copy", 0)
                deleted += result.get("deleted", 0)
                failed.extend(result["failed"])
                archived_count += result.get("archived", 0)
                examples["archived"].extend(result.get("archived_keys", [])[: EXAMPLES - len(examples["archived"])])
    kinds = {"outdated": totals["outdated"]} if run.mode == "reencrypt" else {n: totals[n] for n in ("new", "changed")}
    drift = totals["new"] + totals["changed"] + (totals["replica_only"] if run.mode == "mirror" else 0)
    reasons = [
        f"{len(failed)} objects failed (tolerated {settings.tolerated_failures})"
        if len(failed) > settings.tolerated_failures
        else "",
        f"{task.verify['mismatched_count']} sampled objects differ" if task.verify.get("mismatched_count") else "",
        # A replica can wait for a restore (the source keeps the object); a re-encryption leaves
        # archived objects under the old key, which must then stay usable.
        f"{archived_count} archived objects need a restore first" if run.mode == "reencrypt" and archived_count else "",
    ]
    if any(reasons):
        status = "failed"
    elif run.mode == "verify" and drift:
        status = "drift"
    else:
        status = "ok"
    report_key = run.key("report.json")
    report = {
        "run": run.id,
        "mode": run.mode,
        "dry_run": run.dry_run,
        "source_bucket": run.source_bucket,
        "replica_bucket": run.replica_bucket,
        "prefix": run.prefix,
        "status": status,
        "reason": "; ".join(filter(None, reasons)) or None,
        "compared": {"objects": totals["compared_objects"], "bytes": totals["compared_bytes"]},
        "to_copy": {"objects": sum(kinds.values()), "bytes": totals["to_copy_bytes"]} | kinds,
        "copied": copied,
        "skipped": {"in_sync": totals["in_sync"], "vanished": vanished},
        "changed_during_copy": changed_during_copy,
        "failed": {"objects": len(failed), "tolerated": settings.tolerated_failures, "keys": failed[:EXAMPLES]},
        "replica_only": {"objects": totals["replica_only"], "keys": examples["replica_only"]},
        "deleted": {"objects": deleted, "planned": totals["to_delete"]},
        "drift": {"objects": drift, "new": examples["new"], "changed": examples["changed"]},
        "archived": {"objects": archived_count, "keys": examples["archived"]},
        "verify": task.verify,
        "batches": totals["batches"],
        "shards": len(run.shards),
        "duration_seconds": round((now - datetime.fromisoformat(run.started_at)).total_seconds(), 1),
        "report": f"s3://{run.work_bucket}/{report_key}",
    }
    if run.mode == "reencrypt":
        report["kms_key"] = run.kms_key_arn
        report["modified_before"] = run.modified_before
        # Objects this run copied are newer than modified_before: the same input skips them.
        report["resume_input"] = {"dry_run": False, "kms_key": run.kms_key_arn, "modified_before": run.modified_before}
    _put_json(clients.work, run.work_bucket, report_key, report | {"failed_keys": failed})
    return report
