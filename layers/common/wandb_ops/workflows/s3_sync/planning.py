"""The plan of one key range: compare what the purpose lists, count, keep a sample of what is in
sync and a few example keys, and cut the work into batch files of bounded objects and bytes."""

import random
from collections.abc import Callable
from typing import Any

from wandb_ops.access.s3_copy import DELETE_OBJECTS_LIMIT, CopyItem
from wandb_ops.access.s3_listing import Entry, in_archive_tier
from wandb_ops.workflows.s3_sync.purpose import Kind, Purpose
from wandb_ops.workflows.s3_sync.records import (
    Batch,
    BatchItem,
    Examples,
    Sampled,
    note,
    progress_of,
    put_record,
    shard_key,
)
from wandb_ops.workflows.s3_sync.runs import Clients, SyncRefusedError
from wandb_ops.workflows.s3_sync.settings import CHECK_TIME_EVERY, S3SyncSettings
from wandb_ops.workflows.s3_sync.tasks import PlanOutput, Run, Shard

MAX_PLAN_INVOCATIONS = 100  # of about 13 minutes each, per key range


class BatchWriter:
    """Cuts the work of one shard into batch files of bounded objects and bytes."""

    def __init__(self, s3: Any, run: Run, shard: int, settings: S3SyncSettings, first_batch: int) -> None:
        self._s3, self._run, self._shard = s3, run, shard
        self._max_objects, self._max_bytes = settings.batch_objects, settings.batch_bytes
        self._next = first_batch
        self._copy: list[BatchItem] = []
        self._delete: list[str] = []
        self._bytes = 0
        self.written: list[str] = []

    def copy(self, item: CopyItem) -> None:
        if self._copy and (len(self._copy) >= self._max_objects or self._bytes + item.size > self._max_bytes):
            self._flush_copies()
        self._copy.append(BatchItem(key=item.key, size=item.size, etag=item.etag, storage_class=item.storage_class))
        self._bytes += item.size

    def delete(self, key: str) -> None:
        if len(self._delete) >= min(self._max_objects, DELETE_OBJECTS_LIMIT):
            self._flush_deletes()
        self._delete.append(key)

    def _flush_copies(self) -> None:
        self._write(Batch(copy=self._copy, delete=[]))
        self._copy, self._bytes = [], 0

    def _flush_deletes(self) -> None:
        self._write(Batch(copy=[], delete=self._delete))
        self._delete = []

    def _write(self, batch: Batch) -> None:
        key = self._run.key("batches", f"{self._shard:04d}-{self._next:06d}.json")
        put_record(self._s3, self._run, key, batch)
        self.written.append(key)
        self._next += 1

    def close(self) -> None:
        if self._copy:
            self._flush_copies()
        if self._delete:
            self._flush_deletes()


def planned_kind(
    clients: Clients, run: Run, classify: Callable[[Entry, Entry | None], Kind], source: Entry, replica: Entry | None
) -> Kind:
    """``classify``, and for Intelligent-Tiering objects the listing cannot judge: in a run that
    copies, a copy refused with InvalidObjectState finds an archive tier at no extra request; a run
    that copies nothing (verify, dry run) asks HeadObject, only for the INTELLIGENT_TIERING objects
    it would otherwise report as missing or changed."""
    kind = classify(source, replica)
    if (
        kind in ("new", "changed")
        and not run.copy_objects
        and source.storage_class == "INTELLIGENT_TIERING"
        and in_archive_tier(clients.source, run.source_bucket, source.key)
    ):
        return "archived"
    return kind


def plan_shard(
    settings: S3SyncSettings,
    clients: Clients,
    purpose: Purpose,
    run: Run,
    shard: Shard,
    *,
    out_of_time: Callable[[], bool],
) -> PlanOutput:
    """Compare the entries of one key range; write the work as batch files. A range too big for
    one invocation is planned in several: before ``out_of_time`` (or after ``plan_chunk_objects``)
    the plan records where it is and returns ``done: false``, and the state machine calls it
    again; a retried invocation also goes on from the last record."""
    progress = progress_of(clients.work, run, shard)
    if progress.done:
        return _output(shard, progress.stats.model_dump(), done=True, batches=len(progress.batches))
    progress.invocations += 1
    if progress.invocations > MAX_PLAN_INVOCATIONS:
        raise SyncRefusedError(
            f"shard {shard.index} is still not planned after {MAX_PLAN_INVOCATIONS} invocations: "
            "raise S3SyncPlanShards so each key range is smaller"
        )
    stats, examples, sample = progress.stats, progress.examples, progress.sample
    writer = BatchWriter(clients.work, run, shard.index, settings, first_batch=len(progress.batches))
    sampler = random.Random(f"{run.id}/{shard.index}/{progress.invocations}")  # noqa: S311 - a sample, not a secret
    classify = purpose.classifier(run)
    finished = True
    for seen, (source, replica) in enumerate(purpose.pairs(clients, run, shard, progress.after)):
        # Every CHECK_TIME_EVERY keys, before taking the next: ``after`` is the last key planned.
        if seen and seen % CHECK_TIME_EVERY == 0 and (seen >= settings.plan_chunk_objects or out_of_time()):
            finished = False
            break
        if source is None:
            assert replica is not None  # a pair has at least one side
            progress.after = replica.key
            stats.replica_only += 1
            note(examples.replica_only, replica.key)
            if run.mode == "mirror":
                stats.to_delete += 1
                writer.delete(replica.key)
            continue
        progress.after = source.key
        stats.compared_objects += 1
        stats.compared_bytes += source.size
        kind = planned_kind(clients, run, classify, source, replica)
        if kind == "in_sync":
            stats.in_sync += 1
            # Reservoir sampling: a uniform sample of the objects found in sync, in constant memory.
            chosen = Sampled(key=source.key, etag=source.etag)
            if len(sample) < settings.verify_sample:
                sample.append(chosen)
            elif (slot := sampler.randrange(stats.in_sync)) < settings.verify_sample:
                sample[slot] = chosen
        else:
            setattr(stats, kind, getattr(stats, kind) + 1)
            if kind in Examples.model_fields:
                note(getattr(examples, kind), source.key)
            if kind != "archived":
                stats.to_copy_bytes += source.size
                writer.copy(CopyItem(source.key, source.size, source.etag, source.storage_class))
    writer.close()
    progress.batches.extend(writer.written)
    progress.done = finished
    put_record(clients.work, run, shard_key(run, shard), progress)
    return _output(shard, stats.model_dump(), done=finished, batches=len(progress.batches))


def _output(shard: Shard, counts: dict[str, int], *, done: bool, batches: int) -> PlanOutput:
    return PlanOutput(shard=shard.index, done=done, **counts, batches=batches)
