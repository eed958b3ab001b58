"""The steps of the database snapshot workflow, one function action each; the state
machine only orders them, waits and loops (bounded), and notifies."""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Self

from aws_lambda_powertools.metrics import MetricUnit

from wandb_ops.access.rds_snapshots import (
    IN_PROGRESS,
    MAX_CONCURRENT_CROSS_REGION_COPIES,
    Snapshot,
    SnapshotApi,
    SnapshotFailedError,
    SnapshotQuotaError,
    SourceDatabaseError,
    dr_identifier,
    format_slot,
    parse_slot,
    quota,
    retention_plan,
    snapshot_identifier,
    snapshot_tags,
)
from wandb_ops.core import aws
from wandb_ops.core.clock import utcnow
from wandb_ops.core.observability import logger, metrics
from wandb_ops.core.polling import Poll, backoff
from wandb_ops.core.steps import StepOutput, Steps
from wandb_ops.workflows.db_snapshot.settings import SnapshotSettings
from wandb_ops.workflows.db_snapshot.tasks import (
    BriefSnapshot,
    CheckOutput,
    CheckTask,
    CopyOutput,
    CopyTask,
    CreateOutput,
    CreateTask,
    DeletionProtection,
    DescribedSnapshot,
    PreflightOutput,
    PreflightTask,
    Quota,
    RegionRetention,
    RetentionOutput,
    RetentionTask,
    SummaryOutput,
    SummaryTask,
)


@dataclass(frozen=True)
class Deps:
    settings: SnapshotSettings
    rds: Any
    dr_rds: Any | None
    now: Callable[[], datetime] = utcnow

    @classmethod
    def from_env(cls) -> Self:
        settings = SnapshotSettings.from_env()
        logger.append_keys(database=settings.source)  # every line of the invocation says which database
        dr_rds = aws.client("rds", region=settings.dr_region) if settings.dr_region else None
        return cls(settings, aws.client("rds"), dr_rds)

    @property
    def api(self) -> SnapshotApi:
        return SnapshotApi(self.settings.kind)


def _done[OutputT: StepOutput](deps: Deps, output: OutputT) -> OutputT:
    logger.info("step done", extra={"database": deps.settings.source, "result": output.model_dump(mode="json")})
    return output


def _poll(settings: SnapshotSettings, attempt: int, started: datetime | None, now: datetime) -> Poll:
    """The next wait, and whether to give up: after POLL_MAX_ATTEMPTS checks of this loop, or when
    the next wait would end past the run's budget (the loops together stay inside its timeout, so
    a slow run fails with a clear error and a notification instead of timing out)."""
    poll = backoff(attempt, settings.poll_base_seconds, settings.poll_max_seconds, settings.poll_max_attempts)
    if started is not None and (now - started).total_seconds() + poll.wait_seconds >= settings.run_budget_seconds:
        poll = poll.model_copy(update={"give_up": True})
    return poll


def preflight(task: PreflightTask, deps: Deps) -> PreflightOutput:
    settings, now = deps.settings, deps.now()
    slot = parse_slot(task.input.slot) if task.input.slot else now.astimezone(UTC).replace(second=0, microsecond=0)
    found = deps.api.describe_source(deps.rds, settings.source)
    status = deps.api.source_status(found)
    poll = _poll(settings, task.attempt, task.started, now)
    result = PreflightOutput(
        slot=format_slot(slot),
        snapshot_id=snapshot_identifier(settings.source, settings.region, slot),
        dry_run=task.input.dry_run,
        dr=settings.dr_region is not None,
        source_status=status,
        **poll.model_dump(),
        ready=False,
    )
    if status != "available":
        if poll.give_up:
            raise SourceDatabaseError(f"{settings.source} is still {status} after {task.attempt + 1} checks")
        return _done(deps, result)
    protected = bool(found.get("DeletionProtection"))
    enforced = False
    if not protected and settings.deletion_protection == "enforce" and not task.input.dry_run:
        deps.api.enable_deletion_protection(deps.rds, settings.source)
        enforced = True
    protection = DeletionProtection(was_on=protected, enforced=enforced, mode=settings.deletion_protection)
    headroom = _quota_headroom(deps, result.snapshot_id, task.input.dry_run)
    return _done(deps, result.model_copy(update={"deletion_protection": protection, "quota": headroom, "ready": True}))


def _quota_headroom(deps: Deps, snapshot_id: str, dry_run: bool) -> Quota:
    settings, api = deps.settings, deps.api
    if api.get(deps.rds, snapshot_id) is not None:
        return Quota(note="this slot's snapshot exists already")
    found = quota(deps.rds, api)
    if found is None:
        return Quota(note=f"{api.quota_name()} not reported by DescribeAccountAttributes")
    used, maximum = found
    if used < maximum:
        return Quota(used=used, max=maximum)
    advice = (
        f"the {api.quota_name()} quota is reached ({used} of {maximum}): raise it in Service Quotas, "
        "or delete manual snapshots you no longer need"
    )
    if settings.quota_action == "fail" or dry_run:
        raise SnapshotQuotaError(advice)
    # Only as many as the new snapshot needs, oldest first: the rest waits for retention, which runs
    # once the new snapshot is available, so a run that fails after this step has lost no more.
    needed = used - maximum + 1
    _, doomed = retention_plan(api, deps.rds, settings.source, settings.region, settings.policy)
    if len(doomed) < needed:
        raise SnapshotQuotaError(
            f"{advice}; retention may delete only {len(doomed)} of this product's snapshots and {needed} must go "
            "to make room (nothing was deleted; the newest available snapshot is always kept)"
        )
    pruned = doomed[:needed]
    for snapshot in pruned:
        api.delete(deps.rds, snapshot.identifier)
    return Quota(used=used - needed, max=maximum, pruned_first=[s.identifier for s in pruned])


def create(task: CreateTask, deps: Deps) -> CreateOutput:
    settings = deps.settings
    existing = deps.api.get(deps.rds, task.snapshot_id)
    if existing is None:
        tags = snapshot_tags(settings.source, settings.region, parse_slot(task.slot))
        deps.api.create(deps.rds, settings.source, task.snapshot_id, tags)
        return _done(deps, CreateOutput(snapshot_id=task.snapshot_id, created=True))
    if not existing.is_ours(settings.source, settings.region):
        raise SnapshotFailedError(
            f"a snapshot named {task.snapshot_id} exists but was not made by wandb-ops for {settings.source}"
        )
    return _done(deps, CreateOutput(snapshot_id=task.snapshot_id, created=False))


def check(task: CheckTask, deps: Deps) -> CheckOutput:
    settings = deps.settings
    rds = deps.rds if task.region == "source" else deps.dr_rds
    identifier = task.snapshot_id if task.region == "source" else dr_identifier(task.snapshot_id)
    snapshot = deps.api.get(rds, identifier)
    poll = _poll(settings, task.attempt, task.started, deps.now())
    where = "" if task.region == "source" else f" in {settings.dr_region}"
    if snapshot is None:
        raise SnapshotFailedError(f"snapshot {identifier}{where} disappeared")
    if snapshot.status == "available":
        return _done(deps, CheckOutput(**poll.model_dump(), available=True, status=snapshot.status))
    if snapshot.status not in IN_PROGRESS:
        raise SnapshotFailedError(f"snapshot {identifier}{where} is {snapshot.status}")
    if poll.give_up:
        raise SnapshotFailedError(
            f"snapshot {identifier}{where} still {snapshot.status} after {task.attempt + 1} checks; "
            "it may still complete: look in the RDS console before re-running"
        )
    return _done(deps, CheckOutput(**poll.model_dump(), available=False, status=snapshot.status))


def copy(task: CopyTask, deps: Deps) -> CopyOutput:
    settings, api = deps.settings, deps.api
    assert settings.dr_region and settings.dr_kms_key_arn and deps.dr_rds is not None
    target = dr_identifier(task.snapshot_id)
    poll = _poll(settings, task.attempt, task.started, deps.now())
    existing = api.get(deps.dr_rds, target)
    if existing is not None:
        if not existing.is_ours(settings.source, settings.region, copy=True):
            raise SnapshotFailedError(
                f"a snapshot named {target} exists in {settings.dr_region} but is not a wandb-ops copy of "
                f"{settings.source} in {settings.region}"
            )
        return _done(deps, CopyOutput(**poll.model_dump(), started=True, copy_id=target))
    in_flight = [s for s in api.list_manual(deps.dr_rds) if s.status in IN_PROGRESS]
    if len(in_flight) >= MAX_CONCURRENT_CROSS_REGION_COPIES:
        if poll.give_up:
            raise SnapshotFailedError(
                f"{len(in_flight)} snapshot copies are still in progress in {settings.dr_region} "
                f"(RDS allows {MAX_CONCURRENT_CROSS_REGION_COPIES} at once); the DR copy was not started"
            )
        return _done(deps, CopyOutput(**poll.model_dump(), started=False, in_flight=len(in_flight)))
    source = api.get(deps.rds, task.snapshot_id)
    if source is None:
        raise SnapshotFailedError(f"snapshot {task.snapshot_id} disappeared before its DR copy")
    api.copy(
        deps.dr_rds,
        source.arn,
        target,
        kms_key=settings.dr_kms_key_arn,
        source_region=settings.region,
        tags=snapshot_tags(settings.source, settings.region, parse_slot(task.slot)),
    )
    return _done(deps, CopyOutput(**poll.model_dump(), started=True, copy_id=target))


def retention(task: RetentionTask, deps: Deps) -> RetentionOutput:
    settings = deps.settings
    regions = [("source", deps.rds, task.snapshot_id)]
    if deps.dr_rds is not None:
        regions.append(("dr", deps.dr_rds, dr_identifier(task.snapshot_id)))
    report: dict[str, RegionRetention] = {}
    for name, rds, protect in regions:
        kept, doomed = retention_plan(
            deps.api, rds, settings.source, settings.region, settings.policy, protect=protect, copies=name == "dr"
        )
        if not task.dry_run:
            for snapshot in doomed:
                deps.api.delete(rds, snapshot.identifier)
        removed = [_brief(s) for s in doomed]
        report[name] = (
            RegionRetention(kept=len(kept), would_delete=removed)
            if task.dry_run
            else RegionRetention(kept=len(kept), deleted=removed)
        )
    return _done(deps, RetentionOutput(dry_run=task.dry_run, source=report["source"], dr=report.get("dr")))


def _brief(snapshot: Snapshot) -> BriefSnapshot:
    return BriefSnapshot(id=snapshot.identifier, slot=snapshot.tags.get("wandb-ops:slot"), size_gib=snapshot.size_gib)


def summary(task: SummaryTask, deps: Deps) -> SummaryOutput:
    run, settings = task.run, deps.settings
    created = deps.api.get(deps.rds, run.preflight.snapshot_id)
    copied = deps.api.get(deps.dr_rds, dr_identifier(created.identifier)) if created and deps.dr_rds else None
    removed = sum(len(region.removed()) for region in (run.retention.source, run.retention.dr) if region)
    result = SummaryOutput(
        database=settings.source,
        kind=settings.kind,
        slot=run.preflight.slot,
        snapshot=_described(created),
        dr_copy=_described(copied) if copied else None,
        deletion_protection=run.preflight.deletion_protection,
        quota=run.preflight.quota,
        retention=run.retention,
        deleted_count=0 if run.retention.dry_run else removed,
        would_delete_count=removed if run.retention.dry_run else 0,
    )
    metrics.add_metric(name="SnapshotCreated", unit=MetricUnit.Count, value=1 if result.snapshot else 0)
    metrics.add_metric(name="SnapshotsDeleted", unit=MetricUnit.Count, value=result.deleted_count)
    if result.snapshot:
        metrics.add_metric(name="SnapshotSizeGiB", unit=MetricUnit.Gigabytes, value=result.snapshot.size_gib)
    return _done(deps, result)


def _described(snapshot: Snapshot | None) -> DescribedSnapshot | None:
    if snapshot is None:
        return None
    return DescribedSnapshot(
        id=snapshot.identifier,
        arn=snapshot.arn,
        status=snapshot.status,
        size_gib=snapshot.size_gib,
        created=snapshot.created.isoformat() if snapshot.created else None,
    )


STEPS = Steps[Deps].of(preflight, create, check, copy, retention, summary)
