"""Posture items read from what the other workflows leave behind: the newest DR copy of the
database, and the last runs of the replica sync, the credential rotation and the terraform state
backup (Step Functions keeps each run's input, status, error and output for 90 days). Read-only.

A run's output holds counts and keys, never a secret (every workflow is built that way), so
reading it here adds nothing the console does not already show.
"""

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from wandb_ops.access.rds_snapshots import SnapshotApi
from wandb_ops.workflows.posture.items import PostureItem, Status, by_age, days, guarded, hours, in_hours, item
from wandb_ops.workflows.posture.settings import RecordSettings

# The replica sync, the state backup sweep and the snapshot run daily: a day and two hours of slack.
DAILY_FRESH = timedelta(hours=26)
DAILY_STALE = timedelta(days=3)
ANOMALY_WINDOW = timedelta(days=7)
LISTED_RUNS = 1000  # one ListExecutions page; a daily workflow keeps about 90 runs
DESCRIBED_RUNS = 60  # at most this many runs are read per workflow (two months of daily runs)


@dataclass(frozen=True)
class RecordSources:
    stepfunctions: Any
    dr_rds: Any | None  # the RDS client of the DR region, when there is one


@dataclass(frozen=True)
class Run:
    name: str
    status: str  # RUNNING, SUCCEEDED, FAILED, TIMED_OUT, ABORTED
    started: datetime
    input: dict[str, Any]
    output: dict[str, Any] | None
    error: str | None


def recent_runs(stepfunctions: Any, machine_arn: str) -> Iterator[Run]:
    """The state machine's runs, newest first, each described only when the caller gets to it."""
    listed = stepfunctions.list_executions(stateMachineArn=machine_arn, maxResults=LISTED_RUNS)["executions"]
    newest = sorted(listed, key=lambda found: found["startDate"], reverse=True)[:DESCRIBED_RUNS]
    for execution in newest:
        described = stepfunctions.describe_execution(executionArn=execution["executionArn"])
        yield Run(
            name=execution["name"],
            status=described["status"],
            started=described["startDate"],
            input=_json_object(described.get("input")),
            output=_json_object(described["output"]) if described.get("output") else None,
            error=described.get("error"),
        )


def _json_object(text: str | None) -> dict[str, Any]:
    value = json.loads(text or "{}")
    return value if isinstance(value, dict) else {}


def record_items(settings: RecordSettings, sources: RecordSources, now: datetime) -> list[PostureItem]:
    sfn = sources.stepfunctions
    return [
        *_dr_copy_items(settings, sources.dr_rds, now),
        *guarded(
            "s3.replica",
            "states:ListExecutions",
            settings.s3_sync_machine,
            lambda: [replica_item(recent_runs(sfn, settings.s3_sync_machine), now)],
        ),
        *guarded(
            "credentials.last_rotation",
            "states:ListExecutions",
            settings.credential_rotation_machine,
            lambda: [rotation_item(recent_runs(sfn, settings.credential_rotation_machine), now)],
        ),
        *guarded(
            "tfstate.backup",
            "states:ListExecutions",
            settings.tfstate_machine,
            lambda: [tfstate_item(recent_runs(sfn, settings.tfstate_machine), now)],
        ),
    ]


# ---------------------------------------------------------------- DR copies


def _dr_copy_items(settings: RecordSettings, dr_rds: Any | None, now: datetime) -> list[PostureItem]:
    if settings.dr_region is None or dr_rds is None:
        return [
            item(
                "aurora.dr_copy",
                Status.WARN,
                "no DR region is set: every snapshot is in the database's own region",
                "set the stack parameters SnapshotDrRegion and SnapshotDrKmsKeyArn (a key in that region)",
            )
        ]
    region = settings.dr_region
    action = "rds:DescribeDBSnapshots" if settings.database_kind == "rds-instance" else "rds:DescribeDBClusterSnapshots"
    return guarded(
        "aurora.dr_copy",
        action,
        f"{region} snapshots",
        lambda: [dr_copy_item(SnapshotApi(settings.database_kind), dr_rds, settings, region, now)],
    )


def dr_copy_item(api: SnapshotApi, dr_rds: Any, settings: RecordSettings, region: str, now: datetime) -> PostureItem:
    database = settings.database
    copies = [  # this database's copies, not those of a same-named database of another region
        s
        for s in api.list_manual(dr_rds)
        if s.is_ours(database, settings.region, copy=True) and s.status == "available" and s.created
    ]
    if not copies:
        return item(
            "aurora.dr_copy",
            Status.FAIL,
            f"no DR copy of '{database}' in {region}",
            "check the database snapshot workflow's recent runs: its DR copy step names the problem",
        )
    newest = max(copies, key=lambda snapshot: snapshot.created or now)
    age = now - (newest.created or now)
    status = by_age(age, DAILY_FRESH, DAILY_STALE)
    return item(
        "aurora.dr_copy",
        status,
        f"newest DR copy {newest.identifier} in {region} is {hours(age)} old",
        "" if status is Status.OK else "check the database snapshot workflow's recent runs (DR copy step)",
        NewestDrCopyAgeHours=in_hours(age),
    )


# ---------------------------------------------------------------- the replica


def replica_item(runs: Iterator[Run], now: datetime) -> PostureItem:
    """Lag: since the newest complete sync (not a dry run, not one prefix) started. Drift: what
    the newest verify run found, when it is newer than that sync."""
    failed_since: list[Run] = []
    verify: Run | None = None
    for run in runs:
        mode = run.input.get("mode", "sync")
        complete = mode in ("sync", "mirror") and not run.input.get("dry_run") and not run.input.get("prefix")
        if mode == "verify" and run.status not in ("RUNNING", "ABORTED") and verify is None:
            verify = run
        if not complete:
            continue
        if run.status == "SUCCEEDED":
            return _replica_found(run, verify, failed_since, now)
        if run.status != "RUNNING":
            failed_since.append(run)
    return item(
        "s3.replica",
        Status.FAIL,
        "the replica has never been completely synced"
        + (f"; {len(failed_since)} sync runs failed, newest {_named(failed_since[0])}" if failed_since else ""),
        "start the S3 sync workflow by hand and watch it in the Step Functions console (docs/s3-sync.md)",
    )


def _replica_found(sync: Run, verify: Run | None, failed_since: list[Run], now: datetime) -> PostureItem:
    lag = now - sync.started
    status = by_age(lag, DAILY_FRESH, DAILY_STALE)
    copied = ((sync.output or {}).get("copied") or {}).get("objects", 0)
    evidence = [f"the replica holds the bucket as of {hours(lag)} ago (run {sync.name}, {copied} objects copied)"]
    fixes = []
    if failed_since:
        evidence.append(f"{len(failed_since)} sync runs failed since, newest {_named(failed_since[0])}")
        fixes.append("open the failed run in the Step Functions console; its notification names the error")
        status = _at_least_warn(status)
    drift = 0
    if verify is not None and verify.started > sync.started:
        ago = hours(now - verify.started)
        if verify.status != "SUCCEEDED":  # S3SyncIncomplete: a sampled object's bytes or metadata differ
            evidence.append(f"a verify run {ago} ago failed: {_named(verify)}")
            fixes.append("open the verify run in the Step Functions console: its summary names the objects")
        else:
            drift = int(((verify.output or {}).get("drift") or {}).get("objects", 0))
            evidence.append(f"a verify run {ago} ago found {drift} objects differing")
            if drift:
                fixes.append("run the S3 sync workflow (mode sync) to copy them, or mirror to also delete")
        if verify.status != "SUCCEEDED" or drift:
            status = _at_least_warn(status)
    if status is not Status.OK and not fixes:
        fixes.append("check the S3 sync schedule (S3SyncScheduleState) and its recent runs")
    return item(
        "s3.replica", status, "; ".join(evidence), "; ".join(fixes), ReplicaLagHours=in_hours(lag), ReplicaDrift=drift
    )


# ---------------------------------------------------------------- the credential rotation

ROTATION_FAILURES = {
    "RetireOldUserFailed": (Status.WARN, "W&B was switched and works; retiring the previous user failed"),
    "CredentialRotationFailed": (Status.FAIL, "it failed before W&B was changed"),
    "CredentialRotationRolledBack": (Status.FAIL, "W&B did not work on the new credentials and was rolled back"),
    "RollbackFailed": (Status.FAIL, "the cut-over and its rollback failed: W&B may be down"),
}


def rotation_item(runs: Iterator[Run], now: datetime) -> PostureItem:
    """The result of the newest rotation (a scheduled or manual rotate, or a switch after a
    Secrets Manager rotation). Dry runs, onboarding, and runs that found nothing to do do not
    count: every rotation makes Secrets Manager start a switch run, which finds W&B already
    switched (or the rotation still in the hands of the run that started it) and ends "nothing"."""
    for run in runs:
        if run.input.get("action", "rotate") not in ("rotate", "switch") or run.input.get("dry_run"):
            continue
        if run.status == "SUCCEEDED" and _rotation_outcome(run) == "nothing":
            continue
        when = f"{run.started:%Y-%m-%d} ({days(now - run.started)} ago, run {run.name})"
        if run.status == "RUNNING":
            return item("credentials.last_rotation", Status.OK, f"a rotation is running, started {when}")
        if run.status == "SUCCEEDED":
            return item("credentials.last_rotation", Status.OK, f"last rotation {when}: {_rotation_outcome(run)}")
        status, what = ROTATION_FAILURES.get(run.error or "", (Status.FAIL, f"it ended {run.status}"))
        return item(
            "credentials.last_rotation",
            status,
            f"last rotation {when}: {what}",
            f"open run {run.name} in the Step Functions console; docs/rotation.md says what to do after "
            f"{run.error or run.status}",
        )
    return item(
        "credentials.last_rotation",
        Status.WARN,
        "no credential rotation has run",
        "onboard W&B to its own database user, then let the 30-day schedule rotate it (docs/rotation.md)",
    )


def _rotation_outcome(run: Run) -> str:
    return str((((run.output or {}).get("report") or {}).get("Payload") or {}).get("outcome", "done"))


# ---------------------------------------------------------------- the terraform state backup


def tfstate_item(runs: Iterator[Run], now: datetime) -> PostureItem:
    """Age of the newest successful backup run, and the anomalies the runs of the last week set aside."""
    anomalies: list[Run] = []
    failed_since: list[Run] = []
    newest: Run | None = None
    for run in runs:
        if now - run.started > ANOMALY_WINDOW and newest is not None:
            break
        if run.status == "SUCCEEDED":
            newest = newest or run
            if int((run.output or {}).get("anomaly_count", 0)) and now - run.started <= ANOMALY_WINDOW:
                anomalies.append(run)
        elif run.status != "RUNNING" and newest is None:
            failed_since.append(run)
    if newest is None:
        return item(
            "tfstate.backup",
            Status.WARN,
            "no terraform state backup has completed"
            + (f"; newest failed run {_named(failed_since[0])}" if failed_since else ""),
            'start the terraform state backup workflow with {"sweep": true} (docs/tfstate-backup.md)',
        )
    age = now - newest.started
    status = by_age(age, DAILY_FRESH, DAILY_STALE)
    output = newest.output or {}
    evidence = [
        f"last backup run {hours(age)} ago (run {newest.name}: {output.get('stored', 0)} stored, "
        f"{output.get('duplicate', 0)} already backed up)"
    ]
    fixes = [] if status is Status.OK else ["check the terraform state backup schedule and its recent runs"]
    if not any(output.get(count, 0) for count in ("stored", "duplicate", "anomaly_count")):
        evidence.append("it found no state to back up")
        fixes.append("set TfStateBucketName and TfStateKey to the terraform backend, or upload states to intake/")
        status = _at_least_warn(status)
    if failed_since:
        evidence.append(f"{len(failed_since)} runs failed since, newest {_named(failed_since[0])}")
        fixes.append("open the failed run in the Step Functions console")
        status = _at_least_warn(status)
    if anomalies:
        count = sum(int((run.output or {}).get("anomaly_count", 0)) for run in anomalies)
        evidence.append(f"{count} anomalies set aside in the last 7 days (newest in run {anomalies[0].name})")
        fixes.append("look at each one: docs/tfstate-backup.md, 'Anomalies'")
        status = _at_least_warn(status)
    return item("tfstate.backup", status, "; ".join(evidence), "; ".join(fixes), TfStateBackupAgeHours=in_hours(age))


def _named(run: Run) -> str:
    return f"{run.name} ({run.error or run.status})"


def _at_least_warn(status: Status) -> Status:
    return Status.WARN if status is Status.OK else status
