"""The steps of the S3 sync: prepare -> plan (one per key-range shard, in parallel) -> manifest ->
copy (one per batch, a Distributed Map) -> verify (a sample) -> summary. The same steps serve the
replica sync and, deployed a second time, the re-encryption of the W&B bucket onto itself
(docs/kms-rotation.md): the function's purpose (S3_SYNC_PURPOSE) is what differs."""

import random
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Self

from aws_lambda_powertools.metrics import MetricUnit

from wandb_ops.access.s3_copy import CopyItem, CopyOptions, copy_all, delete_keys, versioning_enabled
from wandb_ops.core import aws
from wandb_ops.core.clock import utcnow
from wandb_ops.core.observability import logger, metrics
from wandb_ops.core.steps import StepOutput, Steps
from wandb_ops.workflows.s3_sync.planning import plan_shard
from wandb_ops.workflows.s3_sync.purpose import Purpose
from wandb_ops.workflows.s3_sync.records import (
    EXAMPLES,
    Batch,
    BatchResult,
    CopiedVersion,
    get_record,
    keys_under,
    put_json,
    put_record,
    result_key,
    shard_file,
)
from wandb_ops.workflows.s3_sync.reencrypt import REENCRYPT
from wandb_ops.workflows.s3_sync.replica import REPLICA
from wandb_ops.workflows.s3_sync.report import summarize
from wandb_ops.workflows.s3_sync.runs import Clients, SyncRefusedError, new_run
from wandb_ops.workflows.s3_sync.settings import PurposeName, S3SyncSettings
from wandb_ops.workflows.s3_sync.tasks import (
    CopyOutput,
    CopyTask,
    FailedKey,
    ManifestOutput,
    ManifestTask,
    Mismatch,
    PlanOutput,
    PlanTask,
    PrepareTask,
    Run,
    SummaryOutput,
    SummaryTask,
    VerifyOutput,
    VerifyTask,
)

PURPOSES: Mapping[PurposeName, Purpose] = {"replica": REPLICA, "reencrypt": REENCRYPT}
PLAN_MARGIN_MS = 120_000  # a plan stops this long before the function's timeout, to record where it is
VERIFY_READERS = 8  # sampled objects checked at once


@dataclass(frozen=True)
class Deps:
    settings: S3SyncSettings
    purpose: Purpose
    clients: Clients
    out_of_time: Callable[[], bool]  # the plan's time budget: whether to record where it is and stop

    @classmethod
    def from_env(cls, remaining_ms: Callable[[], int]) -> Self:
        """``remaining_ms``: the invocation's remaining time (the Lambda context's)."""
        settings = S3SyncSettings.from_env()
        clients = Clients(
            source=aws.client("s3", connections=settings.copy_concurrency),
            replica=aws.client("s3", region=settings.replica_region, connections=settings.copy_concurrency),
            work=aws.client("s3"),
            cloudwatch=aws.client("cloudwatch"),
            kms=aws.client("kms"),
        )
        return cls(settings, PURPOSES[settings.purpose], clients, lambda: remaining_ms() < PLAN_MARGIN_MS)


def prepare(task: PrepareTask, deps: Deps) -> Run:
    """Check the buckets and the input, and cut the key space into shards. Changes nothing."""
    now = utcnow()
    spec = deps.purpose.prepare(task.input, deps.settings, deps.clients, now)
    return _done(new_run(spec, deps.settings, deps.clients, task.execution, now))


def plan(task: PlanTask, deps: Deps) -> PlanOutput:
    """Plan one key range (or as much of it as the invocation's time allows: ``done``)."""
    _for_run(task.run)
    planned = plan_shard(deps.settings, deps.clients, deps.purpose, task.run, task.shard, out_of_time=deps.out_of_time)
    return _done(planned)


def manifest(task: ManifestTask, deps: Deps) -> ManifestOutput:
    """One JSON array of batch keys, in shard order: the Distributed Map's item reader input."""
    run = _for_run(task.run)
    if not sum(plan.batches for plan in task.plans):
        return _done(ManifestOutput(key=None, batches=0))
    batches: list[str] = []
    for shard in run.shards:
        batches.extend(shard_file(deps.clients.work, run, shard).batches)
    key = run.key("manifest.json")
    put_json(deps.clients.work, run.work_bucket, key, [{"batch": batch} for batch in batches])
    return _done(ManifestOutput(key=key, batches=len(batches)))


def copy(task: CopyTask, deps: Deps) -> CopyOutput:
    """Copy and delete one batch. A retry repeats it: each copy and delete is idempotent."""
    run, clients = _for_run(task.run), deps.clients
    if not task.batch.startswith(run.key("batches") + "/"):
        raise SyncRefusedError(f"field 'batch' is not a batch of run {run.id}: start the workflow, not this step")
    batch = get_record(clients.work, run, task.batch, Batch)
    items = [CopyItem(i.key, i.size, i.etag, i.storage_class) for i in batch.copies]
    options = _copy_options(deps.settings, run)
    results = copy_all(clients.source, clients.replica, options, items) if run.copy_objects else []
    deleted: list[str] = []
    failed = [FailedKey(key=r.key, error=r.error or "Error") for r in results if r.outcome == "failed"]
    if batch.delete and run.delete_objects:
        if not versioning_enabled(clients.replica, run.replica_bucket):
            raise SyncRefusedError(
                f"versioning is no longer enabled on the replica {run.replica_bucket}: refusing to delete; "
                "enable it again and re-run"
            )
        deleted, delete_failures = delete_keys(clients.replica, run.replica_bucket, batch.delete)
        failed.extend(FailedKey(**failure) for failure in delete_failures)
    copied = [r for r in results if r.outcome == "copied"]
    archived_now = [r.key for r in results if r.outcome == "archived"]
    sample = []
    for r in copied[:EXAMPLES]:
        assert r.etag is not None and r.written_etag is not None  # a copy has both
        sample.append(CopiedVersion(key=r.key, etag=r.etag, written_etag=r.written_etag))
    outcome = BatchResult(
        batch=task.batch,
        copied=len(copied),
        copied_bytes=sum(r.size for r in copied),
        copied_sample=sample,
        vanished=sum(1 for r in results if r.outcome == "vanished"),
        archived=len(archived_now),
        archived_keys=archived_now[:EXAMPLES],
        changed_during_copy=sum(r.retried_changed for r in results),
        deleted=len(deleted),
        failed=failed,
    )
    put_record(clients.work, run, result_key(run, task.batch), outcome)
    return _done(CopyOutput(batch=task.batch, copied=outcome.copied, failed=len(failed)))


def verify(task: VerifyTask, deps: Deps) -> VerifyOutput:
    """Deep-compare a sample: versions the plan found in sync and versions just copied; the
    purpose says what to check of each."""
    run, clients, purpose = _for_run(task.run), deps.clients, deps.purpose
    candidates: dict[str, tuple[str, bool]] = {}  # key -> (ETag of the version to check, copied now)
    for shard in run.shards:
        for chosen in shard_file(clients.work, run, shard).sample:
            candidates[chosen.key] = (chosen.etag, False)
    if run.copy_objects:
        result_keys = keys_under(clients.work, run.work_bucket, run.key("results") + "/")
        sampler = random.Random(run.id)  # noqa: S311 - picks a verification sample, not a secret
        for found in sampler.sample(result_keys, min(4, len(result_keys))):
            for copied in get_record(clients.work, run, found, BatchResult).copied_sample:
                candidates[copied.key] = (purpose.version_to_check(copied), True)
    keys = sorted(candidates)
    random.Random(run.id).shuffle(keys)  # noqa: S311 - picks a verification sample, not a secret
    keys = keys[: deps.settings.verify_sample]
    options = _copy_options(deps.settings, run)

    def check(key: str) -> list[str]:
        etag, copied_now = candidates[key]
        return purpose.check(clients, run, options, key, etag=etag, copied_now=copied_now)

    with ThreadPoolExecutor(max_workers=VERIFY_READERS) as pool:
        problems = list(pool.map(check, keys))
    mismatched = [Mismatch(key=key, differs=found) for key, found in zip(keys, problems, strict=True) if found]
    return _done(VerifyOutput(checked=len(keys), mismatched=mismatched[:EXAMPLES], mismatched_count=len(mismatched)))


def summary(task: SummaryTask, deps: Deps) -> SummaryOutput:
    """Totals, status and the report; the run's metrics."""
    _for_run(task.run)
    report = summarize(deps.settings, deps.clients, deps.purpose, task, utcnow())
    _publish_metrics(deps.purpose.metric_prefix, report)
    return _done(report)


STEPS = Steps[Deps].of(prepare, plan, manifest, copy, verify, summary)


def _copy_options(settings: S3SyncSettings, run: Run) -> CopyOptions:
    return CopyOptions(
        source_bucket=run.source_bucket,
        replica_bucket=run.replica_bucket,
        replica_kms_key_arn=run.kms_key_arn,
        multipart_threshold=settings.multipart_threshold,
        part_size=settings.part_size,
        concurrency=settings.copy_concurrency,
        sse_algorithm=run.sse_algorithm,
    )


def _for_run(run: Run) -> Run:
    """Every log line of the step names the run."""
    logger.append_keys(run=run.id)
    return run


def _done[OutputT: StepOutput](output: OutputT) -> OutputT:
    logger.info("step done", extra={"result": output.model_dump(mode="json", exclude={"shards"})})
    return output


def _publish_metrics(prefix: str, report: SummaryOutput) -> None:
    counts = {
        "ObjectsCompared": report.compared.objects,
        "ObjectsCopied": report.copied.objects,
        "ObjectsFailed": report.failed.objects,
        "ObjectsDeleted": report.deleted.objects,
        "ObjectsArchived": report.archived.objects,
        "DriftObjects": report.drift.objects,
        "VerifyMismatches": report.verify.mismatched_count,
    }
    for name, value in counts.items():
        metrics.add_metric(name=f"{prefix}{name}", unit=MetricUnit.Count, value=value)
    metrics.add_metric(name=f"{prefix}BytesCopied", unit=MetricUnit.Bytes, value=report.copied.bytes)
    metrics.add_metric(name=f"{prefix}Duration", unit=MetricUnit.Seconds, value=report.duration_seconds)
