"""The run's report: totals of the plans and of every batch result (a batch without a result
failed as a whole), its status, and the report file in the work bucket with every failed key."""

from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

from wandb_ops.workflows.s3_sync.purpose import Purpose
from wandb_ops.workflows.s3_sync.records import (
    EXAMPLES,
    Batch,
    BatchResult,
    Examples,
    PlanCounts,
    get_json,
    get_record,
    keys_under,
    put_json,
    result_key,
    shard_file,
)
from wandb_ops.workflows.s3_sync.runs import Clients
from wandb_ops.workflows.s3_sync.settings import S3SyncSettings
from wandb_ops.workflows.s3_sync.tasks import (
    Counted,
    CountedKeys,
    Deleted,
    Drift,
    Failed,
    FailedKey,
    Skipped,
    Status,
    SummaryOutput,
    SummaryTask,
)

SUMMARY_READERS = 32  # batch results read at once: 100,000 of them in about a minute


def _batch_results(clients: Clients, task: SummaryTask) -> list[BatchResult]:
    """Each batch's result; for a batch that left none, every one of its keys failed."""
    run = task.run
    batches = [item["batch"] for item in get_json(clients.work, run.work_bucket, run.key("manifest.json"))]
    done = set(keys_under(clients.work, run.work_bucket, run.key("results") + "/"))

    def outcome(batch: str) -> BatchResult:
        if result_key(run, batch) in done:
            return get_record(clients.work, run, result_key(run, batch), BatchResult)
        lost = get_record(clients.work, run, batch, Batch)
        keys = [item.key for item in lost.copies] + lost.delete
        return BatchResult(batch=batch, failed=[FailedKey(key=key, error="BatchFailed") for key in keys])

    with ThreadPoolExecutor(max_workers=SUMMARY_READERS) as pool:
        return list(pool.map(outcome, batches))


def summarize(
    settings: S3SyncSettings, clients: Clients, purpose: Purpose, task: SummaryTask, now: datetime
) -> SummaryOutput:
    run = task.run
    totals = PlanCounts.total(task.plans)
    batch_count = sum(plan.batches for plan in task.plans)
    examples = Examples()
    for shard in run.shards:
        found = shard_file(clients.work, run, shard).examples
        for name in Examples.model_fields:
            mine: list[str] = getattr(examples, name)
            mine.extend(getattr(found, name)[: EXAMPLES - len(mine)])
    copied = Counted(objects=0, bytes=0)
    vanished = changed_during_copy = deleted = 0
    archived_count = totals.archived
    failed: list[FailedKey] = []
    if run.copy_objects and batch_count:
        for result in _batch_results(clients, task):
            copied.objects += result.copied
            copied.bytes += result.copied_bytes
            vanished += result.vanished
            changed_during_copy += result.changed_during_copy
            deleted += result.deleted
            failed.extend(result.failed)
            archived_count += result.archived
            examples.archived.extend(result.archived_keys[: EXAMPLES - len(examples.archived)])
    drift = totals.new + totals.changed + (totals.replica_only if run.mode == "mirror" else 0)
    reasons = [
        f"{len(failed)} objects failed (tolerated {settings.tolerated_failures})"
        if len(failed) > settings.tolerated_failures
        else "",
        f"{task.verify.mismatched_count} sampled objects differ" if task.verify.mismatched_count else "",
        purpose.unfinished(archived_count),
    ]
    status: Status
    if any(reasons):
        status = "failed"
    elif run.mode == "verify" and drift:
        status = "drift"
    else:
        status = "ok"
    report_key = run.key("report.json")
    summary = SummaryOutput(
        run=run.id,
        mode=run.mode,
        dry_run=run.dry_run,
        source_bucket=run.source_bucket,
        replica_bucket=run.replica_bucket,
        prefix=run.prefix,
        status=status,
        reason="; ".join(filter(None, reasons)) or None,
        compared=Counted(objects=totals.compared_objects, bytes=totals.compared_bytes),
        to_copy=purpose.to_copy(totals),
        copied=copied,
        skipped=Skipped(in_sync=totals.in_sync, vanished=vanished),
        changed_during_copy=changed_during_copy,
        failed=Failed(objects=len(failed), tolerated=settings.tolerated_failures, keys=failed[:EXAMPLES]),
        replica_only=CountedKeys(objects=totals.replica_only, keys=examples.replica_only),
        deleted=Deleted(objects=deleted, planned=totals.to_delete),
        drift=Drift(objects=drift, new=examples.new, changed=examples.changed),
        archived=CountedKeys(objects=archived_count, keys=examples.archived),
        verify=task.verify,
        batches=batch_count,
        shards=len(run.shards),
        duration_seconds=round((now - datetime.fromisoformat(run.started_at)).total_seconds(), 1),
        report=f"s3://{run.work_bucket}/{report_key}",
    )
    summary = purpose.report(run, summary)
    everything: dict[str, Any] = summary.model_dump(mode="json")
    put_json(clients.work, run.work_bucket, report_key, everything | {"failed_keys": [f.model_dump() for f in failed]})
    return summary
