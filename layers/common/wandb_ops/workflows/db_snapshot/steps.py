"""The steps of the database snapshot workflow, one function action each; the state
machine only orders them, waits and loops (bounded), and notifies."""

import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import Field, RootModel

from wandb_ops.access.rds_snapshots import (
    IN_PROGRESS,
    MAX_CONCURRENT_CROSS_REGION_COPIES,
    Kind,
    RetentionPolicy,
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
from wandb_ops.core.errors import ConfigurationError
from wandb_ops.core.models import StrictModel
from wandb_ops.core.polling import backoff
from wandb_ops.core.settings import whole_number


@dataclass(frozen=True)
class SnapshotSettings:
    kind: Kind
    source: str
    region: str
    deletion_protection: Literal["report", "enforce"]
    policy: RetentionPolicy
    quota_action: Literal["prune", "fail"]
    dr_region: str | None
    dr_kms_key_arn: str | None
    poll_base_seconds: int
    poll_max_seconds: int
    poll_max_attempts: int
    run_budget_seconds: int  # every wait loop of a run ends by then (inside the state machine's timeout)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "SnapshotSettings":
        env = os.environ if environ is None else environ

        def choice(name: str, allowed: tuple[str, ...], parameter: str) -> str:
            value = env.get(name, "")
            if value not in allowed:
                raise ConfigurationError(f"{name}={value!r}: set the stack parameter {parameter} to one of {allowed}")
            return value

        dr_region = env.get("SNAPSHOT_DR_REGION", "").strip() or None
        dr_key = env.get("SNAPSHOT_DR_KMS_KEY_ARN", "").strip() or None
        if dr_region and not dr_key:
            raise ConfigurationError(
                "SnapshotDrRegion is set but SnapshotDrKmsKeyArn is empty: give a key in that region"
            )
        source = env.get("SNAPSHOT_SOURCE", "").strip()
        if not source:
            raise ConfigurationError(
                "SNAPSHOT_SOURCE is empty: set the stack parameter Namespace or DatabaseIdentifier"
            )
        return cls(
            kind=choice("SNAPSHOT_KIND", ("aurora-cluster", "rds-instance"), "DatabaseKind"),  # type: ignore[arg-type]
            source=source,
            region=env.get("AWS_REGION", "us-east-1"),
            deletion_protection=choice(  # type: ignore[arg-type]
                "DELETION_PROTECTION_MODE", ("report", "enforce"), "DeletionProtectionMode"
            ),
            policy=RetentionPolicy(
                newest=whole_number(env, "RETAIN_NEWEST", "SnapshotRetainNewest"),
                daily=whole_number(env, "RETAIN_DAILY", "SnapshotRetainDaily"),
                weekly=whole_number(env, "RETAIN_WEEKLY", "SnapshotRetainWeekly"),
                monthly=whole_number(env, "RETAIN_MONTHLY", "SnapshotRetainMonthly"),
            ),
            quota_action=choice("QUOTA_ACTION", ("prune", "fail"), "SnapshotQuotaAction"),  # type: ignore[arg-type]
            dr_region=dr_region,
            dr_kms_key_arn=dr_key,
            poll_base_seconds=whole_number(env, "POLL_BASE_SECONDS", "(template)"),
            poll_max_seconds=whole_number(env, "POLL_MAX_SECONDS", "(template)"),
            poll_max_attempts=whole_number(env, "POLL_MAX_ATTEMPTS", "(template)"),
            run_budget_seconds=whole_number(env, "POLL_RUN_BUDGET_SECONDS", "(template)"),
        )


# ---------------------------------------------------------------- inputs


class SnapshotRequest(StrictModel):
    """Workflow input. ``slot`` (ISO 8601) names the run; a schedule passes its scheduled time,
    a manual run defaults to the current minute. ``dry_run`` lists what retention would delete."""

    slot: str | None = Field(
        default=None, pattern=r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?$"
    )
    dry_run: bool = False
    source: Literal["schedule", "console", "demo", "test"] = "console"


class PreflightTask(StrictModel):
    action: Literal["preflight"]
    input: SnapshotRequest
    attempt: int = Field(default=0, ge=0)
    started: datetime | None = None  # the run's start ($$.Execution.StartTime): bounds all its waits


class CreateTask(StrictModel):
    action: Literal["create"]
    snapshot_id: str = Field(min_length=1, max_length=63)
    slot: str


class CheckTask(StrictModel):
    action: Literal["check"]
    snapshot_id: str = Field(min_length=1, max_length=63)
    region: Literal["source", "dr"] = "source"
    attempt: int = Field(default=0, ge=0)
    started: datetime | None = None


class CopyTask(StrictModel):
    action: Literal["copy"]
    snapshot_id: str = Field(min_length=1, max_length=63)
    slot: str
    attempt: int = Field(default=0, ge=0)
    started: datetime | None = None


class RetentionTask(StrictModel):
    action: Literal["retention"]
    snapshot_id: str = Field(min_length=1, max_length=63)
    dry_run: bool = False


class SummaryTask(StrictModel):
    action: Literal["summary"]
    run: dict[str, Any]


class SnapshotTask(
    RootModel[
        Annotated[
            PreflightTask | CreateTask | CheckTask | CopyTask | RetentionTask | SummaryTask,
            Field(discriminator="action"),
        ]
    ]
):
    pass


# ---------------------------------------------------------------- steps


@dataclass(frozen=True)
class Clients:
    rds: Any
    dr_rds: Any | None


def _poll(settings: SnapshotSettings, attempt: int, started: datetime | None, now: datetime) -> dict[str, Any]:
    """The next wait, and whether to give up: after POLL_MAX_ATTEMPTS checks of this loop, or when
    the next wait would end past the run's budget (the loops together stay inside its timeout, so
    a slow run fails with a clear error and a notification instead of timing out)."""
    poll = backoff(attempt, settings.poll_base_seconds, settings.poll_max_seconds, settings.poll_max_attempts)
    if started is not None and (now - started).total_seconds() + poll["wait_seconds"] >= settings.run_budget_seconds:
        poll["give_up"] = True
    return poll


def preflight(settings: SnapshotSettings, clients: Clients, task: PreflightTask, now: datetime) -> dict[str, Any]:
    api = SnapshotApi(settings.kind)
    slot = parse_slot(task.input.slot) if task.input.slot else now.astimezone(UTC).replace(second=0, microsecond=0)
    found = api.describe_source(clients.rds, settings.source)
    status = api.source_status(found)
    result: dict[str, Any] = {
        "slot": format_slot(slot),
        "snapshot_id": snapshot_identifier(settings.source, settings.region, slot),
        "dry_run": task.input.dry_run,
        "dr": settings.dr_region is not None,
        "source_status": status,
        **_poll(settings, task.attempt, task.started, now),
    }
    if status != "available":
        if result["give_up"]:
            raise SourceDatabaseError(f"{settings.source} is still {status} after {task.attempt + 1} checks")
        return {**result, "ready": False}
    protected = bool(found.get("DeletionProtection"))
    enforced = False
    if not protected and settings.deletion_protection == "enforce" and not task.input.dry_run:
        api.enable_deletion_protection(clients.rds, settings.source)
        enforced = True
    result["deletion_protection"] = {"was_on": protected, "enforced": enforced, "mode": settings.deletion_protection}
    result["quota"] = _quota_headroom(settings, clients, api, result["snapshot_id"], task.input.dry_run)
    return {**result, "ready": True}


def _quota_headroom(
    settings: SnapshotSettings, clients: Clients, api: SnapshotApi, snapshot_id: str, dry_run: bool
) -> dict[str, Any]:
    if api.get(clients.rds, snapshot_id) is not None:
        return {"note": "this slot's snapshot exists already"}
    found = quota(clients.rds, api)
    if found is None:
        return {"note": f"{api.quota_name()} not reported by DescribeAccountAttributes"}
    used, maximum = found
    if used < maximum:
        return {"used": used, "max": maximum}
    advice = (
        f"the {api.quota_name()} quota is reached ({used} of {maximum}): raise it in Service Quotas, "
        "or delete manual snapshots you no longer need"
    )
    if settings.quota_action == "fail" or dry_run:
        raise SnapshotQuotaError(advice)
    # Only as many as the new snapshot needs, oldest first: the rest waits for retention, which runs
    # once the new snapshot is available, so a run that fails after this step has lost no more.
    needed = used - maximum + 1
    _, doomed = retention_plan(api, clients.rds, settings.source, settings.region, settings.policy)
    if len(doomed) < needed:
        raise SnapshotQuotaError(
            f"{advice}; retention may delete only {len(doomed)} of this product's snapshots and {needed} must go "
            "to make room (nothing was deleted; the newest available snapshot is always kept)"
        )
    pruned = doomed[:needed]
    for snapshot in pruned:
        api.delete(clients.rds, snapshot.identifier)
    return {"used": used - needed, "max": maximum, "pruned_first": [s.identifier for s in pruned]}


def create(settings: SnapshotSettings, clients: Clients, task: CreateTask) -> dict[str, Any]:
    api = SnapshotApi(settings.kind)
    existing = api.get(clients.rds, task.snapshot_id)
    if existing is None:
        tags = snapshot_tags(settings.source, settings.region, parse_slot(task.slot))
        api.create(clients.rds, settings.source, task.snapshot_id, tags)
        return {"snapshot_id": task.snapshot_id, "created": True}
    if not existing.is_ours(settings.source, settings.region):
        raise SnapshotFailedError(
            f"a snapshot named {task.snapshot_id} exists but was not made by wandb-ops for {settings.source}"
        )
    return {"snapshot_id": task.snapshot_id, "created": False}


def check(settings: SnapshotSettings, clients: Clients, task: CheckTask, now: datetime) -> dict[str, Any]:
    api = SnapshotApi(settings.kind)
    rds = clients.rds if task.region == "source" else clients.dr_rds
    identifier = task.snapshot_id if task.region == "source" else dr_identifier(task.snapshot_id)
    snapshot = api.get(rds, identifier)
    poll = _poll(settings, task.attempt, task.started, now)
    where = "" if task.region == "source" else f" in {settings.dr_region}"
    if snapshot is None:
        raise SnapshotFailedError(f"snapshot {identifier}{where} disappeared")
    if snapshot.status == "available":
        return {**poll, "available": True, "status": snapshot.status}
    if snapshot.status not in IN_PROGRESS:
        raise SnapshotFailedError(f"snapshot {identifier}{where} is {snapshot.status}")
    if poll["give_up"]:
        raise SnapshotFailedError(
            f"snapshot {identifier}{where} still {snapshot.status} after {task.attempt + 1} checks; "
            "it may still complete: look in the RDS console before re-running"
        )
    return {**poll, "available": False, "status": snapshot.status}


def copy(settings: SnapshotSettings, clients: Clients, task: CopyTask, now: datetime) -> dict[str, Any]:
    assert settings.dr_region and settings.dr_kms_key_arn and clients.dr_rds is not None
    api = SnapshotApi(settings.kind)
    target = dr_identifier(task.snapshot_id)
    poll = _poll(settings, task.attempt, task.started, now)
    existing = api.get(clients.dr_rds, target)
    if existing is not None:
        if not existing.is_ours(settings.source, settings.region, copy=True):
            raise SnapshotFailedError(
                f"a snapshot named {target} exists in {settings.dr_region} but is not a wandb-ops copy of "
                f"{settings.source} in {settings.region}"
            )
        return {**poll, "started": True, "copy_id": target}
    in_flight = [s for s in api.list_manual(clients.dr_rds) if s.status in IN_PROGRESS]
    if len(in_flight) >= MAX_CONCURRENT_CROSS_REGION_COPIES:
        if poll["give_up"]:
            raise SnapshotFailedError(
                f"{len(in_flight)} snapshot copies are still in progress in {settings.dr_region} "
                f"(RDS allows {MAX_CONCURRENT_CROSS_REGION_COPIES} at once); the DR copy was not started"
            )
        return {**poll, "started": False, "in_flight": len(in_flight)}
    source = api.get(clients.rds, task.snapshot_id)
    if source is None:
        raise SnapshotFailedError(f"snapshot {task.snapshot_id} disappeared before its DR copy")
    api.copy(
        clients.dr_rds,
        source.arn,
        target,
        kms_key=settings.dr_kms_key_arn,
        source_region=settings.region,
        tags=snapshot_tags(settings.source, settings.region, parse_slot(task.slot)),
    )
    return {**poll, "started": True, "copy_id": target}


def retention(settings: SnapshotSettings, clients: Clients, task: RetentionTask) -> dict[str, Any]:
    api = SnapshotApi(settings.kind)
    regions = [("source", clients.rds, task.snapshot_id)]
    if clients.dr_rds is not None:
        regions.append(("dr", clients.dr_rds, dr_identifier(task.snapshot_id)))
    report: dict[str, Any] = {"dry_run": task.dry_run}
    for name, rds, protect in regions:
        kept, doomed = retention_plan(
            api, rds, settings.source, settings.region, settings.policy, protect=protect, copies=name == "dr"
        )
        if not task.dry_run:
            for snapshot in doomed:
                api.delete(rds, snapshot.identifier)
        report[name] = {
            "kept": len(kept),
            "deleted" if not task.dry_run else "would_delete": [_brief(s) for s in doomed],
        }
    return report


def _brief(snapshot: Snapshot) -> dict[str, Any]:
    return {"id": snapshot.identifier, "slot": snapshot.tags.get("wandb-ops:slot"), "size_gib": snapshot.size_gib}


def summary(settings: SnapshotSettings, clients: Clients, task: SummaryTask) -> dict[str, Any]:
    run = task.run
    api = SnapshotApi(settings.kind)
    created = api.get(clients.rds, run["preflight"]["snapshot_id"])
    copied = api.get(clients.dr_rds, dr_identifier(created.identifier)) if created and clients.dr_rds else None
    retention_report = run.get("retention", {})
    deleted_key = "would_delete" if retention_report.get("dry_run") else "deleted"
    deleted = sum(len(retention_report.get(region, {}).get(deleted_key, [])) for region in ("source", "dr"))
    return {
        "database": settings.source,
        "kind": settings.kind,
        "slot": run["preflight"]["slot"],
        "snapshot": _described(created),
        "dr_copy": _described(copied) if copied else None,
        "deletion_protection": run["preflight"].get("deletion_protection"),
        "quota": run["preflight"].get("quota"),
        "retention": retention_report,
        "deleted_count": 0 if retention_report.get("dry_run") else deleted,
        "would_delete_count": deleted if retention_report.get("dry_run") else 0,
    }


def _described(snapshot: Snapshot | None) -> dict[str, Any] | None:
    if snapshot is None:
        return None
    return {
        "id": snapshot.identifier,
        "arn": snapshot.arn,
        "status": snapshot.status,
        "size_gib": snapshot.size_gib,
        "created": snapshot.created.isoformat() if snapshot.created else None,
    }
