"""Posture items read from the other workflows' runs and the DR copies: each item's ok, warn and
fail cases, with runs as Step Functions reports them (the workflow tests run the real ones)."""

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.unit.snapshot_pages import FakeRds
from wandb_ops.workflows.posture.items import Status
from wandb_ops.workflows.posture.records import (
    DESCRIBED_RUNS,
    RecordSources,
    Run,
    recent_runs,
    record_items,
    replica_item,
    rotation_item,
    tfstate_item,
)
from wandb_ops.workflows.posture.settings import RecordSettings

NOW = datetime(2026, 11, 27, 6, 0, tzinfo=UTC)
COUNTER = iter(range(10_000))


def run(
    hours_ago: float,
    status: str = "SUCCEEDED",
    error: str | None = None,
    output: dict[str, Any] | None = None,
    **workflow_input: Any,
) -> Run:
    return Run(
        name=f"run-{next(COUNTER)}",
        status=status,
        started=NOW - timedelta(hours=hours_ago),
        input=workflow_input,
        output=output,
        error=error,
    )


# ---------------------------------------------------------------- the replica


def test_a_replica_never_synced_fails() -> None:
    found = replica_item(iter([run(1, mode="sync", dry_run=True), run(2, "FAILED", "S3SyncFailed", mode="sync")]), NOW)
    assert found.status is Status.FAIL
    assert "never been completely synced" in found.evidence and "S3SyncFailed" in found.evidence


@pytest.mark.parametrize(("hours_ago", "expected"), [(3.5, Status.OK), (30, Status.WARN), (100, Status.FAIL)])
def test_replica_lag_is_the_age_of_the_newest_complete_sync(hours_ago: float, expected: Status) -> None:
    runs = [
        run(1, mode="sync", prefix="wandb/one-project/"),  # one prefix: not the whole bucket
        run(2, mode="sync", dry_run=True),
        run(2.5, "RUNNING", mode="sync"),
        run(hours_ago, output={"copied": {"objects": 12}}, mode="sync", source="schedule"),
    ]
    found = replica_item(iter(runs), NOW)
    assert found.status is expected
    assert found.metrics["ReplicaLagHours"] == hours_ago
    assert "12 objects copied" in found.evidence


def test_failed_syncs_since_the_last_good_one_warn() -> None:
    found = replica_item(iter([run(1, "FAILED", "S3SyncIncomplete", mode="sync"), run(3, mode="sync")]), NOW)
    assert found.status is Status.WARN
    assert "1 sync runs failed since" in found.evidence and "S3SyncIncomplete" in found.evidence


def test_a_failed_verify_run_after_the_sync_warns() -> None:
    runs = [run(1, "FAILED", "S3SyncIncomplete", mode="verify"), run(3, mode="sync")]
    found = replica_item(iter(runs), NOW)
    assert found.status is Status.WARN and "S3SyncIncomplete" in found.evidence


def test_drift_found_by_a_verify_run_after_the_sync_warns() -> None:
    runs = [run(1, output={"drift": {"objects": 4}}, mode="verify"), run(3, mode="sync")]
    found = replica_item(iter(runs), NOW)
    assert found.status is Status.WARN and found.metrics["ReplicaDrift"] == 4
    # The same drift before the sync was copied by it.
    older = replica_item(iter([run(1, mode="sync"), run(3, output={"drift": {"objects": 4}}, mode="verify")]), NOW)
    assert older.status is Status.OK and older.metrics["ReplicaDrift"] == 0


# ---------------------------------------------------------------- the credential rotation


def test_no_rotation_yet_warns() -> None:
    runs = [run(1, action="rotate", dry_run=True), run(2, action="onboard")]
    assert rotation_item(iter(runs), NOW).status is Status.WARN


def test_a_successful_rotation_reports_its_outcome() -> None:
    found = rotation_item(
        iter([run(48, output={"report": {"Payload": {"outcome": "switched"}}}, action="rotate")]), NOW
    )
    assert found.status is Status.OK and "switched" in found.evidence and "2 days ago" in found.evidence


def test_the_switch_run_each_rotation_starts_does_not_hide_its_result() -> None:
    """Secrets Manager's RotationSucceeded starts a switch run that ends "nothing" after the
    rotate run has done the work (or while it still does): the rotate run's result counts."""
    nothing = {"report": {"Payload": {"outcome": "nothing"}}}
    rolled_back = run(2, "FAILED", "CredentialRotationRolledBack")  # a manual run: {} means rotate
    found = rotation_item(iter([run(1, output=nothing, action="switch", source="event"), rolled_back]), NOW)
    assert found.status is Status.FAIL and "rolled back" in found.evidence
    switched = run(2, output={"report": {"Payload": {"outcome": "switched"}}}, action="rotate")
    found = rotation_item(iter([run(1, output=nothing, action="switch", source="event"), switched]), NOW)
    assert found.status is Status.OK and "switched" in found.evidence


def test_a_running_rotation_is_ok() -> None:
    assert rotation_item(iter([run(0.1, "RUNNING", action="switch")]), NOW).status is Status.OK


@pytest.mark.parametrize(
    ("status", "error", "expected", "said"),
    [
        ("FAILED", "RetireOldUserFailed", Status.WARN, "retiring the previous user failed"),
        ("FAILED", "CredentialRotationFailed", Status.FAIL, "before W&B was changed"),
        ("FAILED", "CredentialRotationRolledBack", Status.FAIL, "rolled back"),
        ("FAILED", "RollbackFailed", Status.FAIL, "W&B may be down"),
        ("TIMED_OUT", None, Status.FAIL, "ended TIMED_OUT"),
    ],
)
def test_a_failed_rotation_says_what_happened(status: str, error: str | None, expected: Status, said: str) -> None:
    found = rotation_item(iter([run(5, status, error, action="rotate"), run(800, action="rotate")]), NOW)
    assert found.status is expected and said in found.evidence
    assert "docs/rotation.md" in found.fix


# ---------------------------------------------------------------- the terraform state backup


def test_no_state_backup_yet_warns() -> None:
    found = tfstate_item(iter([run(1, "FAILED", "TfStateBackupFailed", sweep=True)]), NOW)
    assert found.status is Status.WARN and "TfStateBackupFailed" in found.evidence


@pytest.mark.parametrize(("hours_ago", "expected"), [(3.5, Status.OK), (30, Status.WARN), (100, Status.FAIL)])
def test_state_backup_age(hours_ago: float, expected: Status) -> None:
    found = tfstate_item(iter([run(hours_ago, output={"stored": 1, "duplicate": 2, "anomaly_count": 0})]), NOW)
    assert found.status is expected and found.metrics["TfStateBackupAgeHours"] == hours_ago
    assert "1 stored, 2 already backed up" in found.evidence


def test_a_backup_run_that_found_no_state_warns() -> None:
    found = tfstate_item(iter([run(2, output={"stored": 0, "duplicate": 0, "anomaly_count": 0})]), NOW)
    assert found.status is Status.WARN and "no state to back up" in found.evidence and "TfStateBucketName" in found.fix


def test_anomalies_of_the_last_week_warn_and_older_ones_do_not() -> None:
    runs = [
        run(2, output={"stored": 1, "anomaly_count": 0}),
        run(30, output={"stored": 1, "anomaly_count": 1}),
        run(24 * 9, output={"stored": 1, "anomaly_count": 5}),
    ]
    found = tfstate_item(iter(runs), NOW)
    assert found.status is Status.WARN
    assert "1 anomalies set aside in the last 7 days" in found.evidence and "Anomalies" in found.fix


def test_a_failed_backup_since_the_last_good_one_warns() -> None:
    found = tfstate_item(iter([run(1, "FAILED", "TfStateBackupFailed"), run(3, output={"duplicate": 1})]), NOW)
    assert found.status is Status.WARN and "1 runs failed since" in found.evidence


# ---------------------------------------------------------------- reading the runs


class FakeStepFunctions:
    def __init__(self, runs: list[Run]) -> None:
        self.runs = {f"arn:execution:{r.name}": r for r in runs}
        self.described: list[str] = []

    def list_executions(self, **_: Any) -> dict[str, Any]:
        # Oldest first, as moto lists them; AWS lists newest first. Either way the newest comes first out.
        listed = sorted(self.runs.items(), key=lambda pair: pair[1].started)
        return {"executions": [{"executionArn": arn, "name": r.name, "startDate": r.started} for arn, r in listed]}

    def describe_execution(self, executionArn: str) -> dict[str, Any]:
        self.described.append(executionArn)
        found = self.runs[executionArn]
        return {
            "status": found.status,
            "startDate": found.started,
            "input": json.dumps(found.input),
            **({"output": json.dumps(found.output)} if found.output is not None else {}),
            **({"error": found.error} if found.error else {}),
        }


def test_runs_are_read_newest_first_and_only_as_far_as_needed() -> None:
    runs = [run(hours, output={"stored": 1}) for hours in (50, 2, 26, 80)]
    sfn = FakeStepFunctions(runs)
    newest = next(recent_runs(sfn, "arn:machine"))
    assert newest.started == NOW - timedelta(hours=2) and newest.output == {"stored": 1}
    assert len(sfn.described) == 1


def test_no_more_than_two_months_of_runs_are_read() -> None:
    sfn = FakeStepFunctions([run(hours, "FAILED", "S3SyncFailed", mode="sync") for hours in range(100)])
    found = replica_item(recent_runs(sfn, "arn:machine"), NOW)
    assert found.status is Status.FAIL and len(sfn.described) == DESCRIBED_RUNS


class DeniedStepFunctions:
    def list_executions(self, **_: Any) -> dict[str, Any]:
        raise ClientError({"Error": {"Code": "AccessDeniedException", "Message": "no"}}, "ListExecutions")


def _copy(database: str, hours_ago: float, status: str = "available", ours: bool = True) -> dict[str, Any]:
    tags = [{"Key": "managed-by", "Value": "wandb-ops"}, {"Key": "wandb-ops:source", "Value": database}]
    tags += [{"Key": "wandb-ops:slot", "Value": "2026-11-26T03:00Z"}]
    return {
        "DBClusterSnapshotIdentifier": f"wandb-ops-{database}-{next(COUNTER)}-dr",
        "DBClusterSnapshotArn": "arn:aws:rds:eu-west-1:111122223333:cluster-snapshot:x",
        "Status": status,
        "SnapshotType": "manual",
        "SnapshotCreateTime": NOW - timedelta(hours=hours_ago),
        "AllocatedStorage": 1,
        "TagList": tags if ours else [],
    }


SETTINGS = RecordSettings.from_env(
    {
        "POSTURE_DATABASE_KIND": "aurora-cluster",
        "POSTURE_DATABASE": "wandb",
        "POSTURE_DR_REGION": "eu-west-1",
        "POSTURE_S3_SYNC_STATE_MACHINE": "arn:sync",
        "POSTURE_CREDENTIAL_ROTATION_STATE_MACHINE": "arn:rotation",
        "POSTURE_TFSTATE_STATE_MACHINE": "arn:tfstate",
    }
)


def _items(rds: Any, sfn: Any = None, settings: RecordSettings = SETTINGS) -> dict[str, Any]:
    found = record_items(settings, RecordSources(stepfunctions=sfn or FakeStepFunctions([]), dr_rds=rds), NOW)
    return {entry.id: entry for entry in found}


@pytest.mark.parametrize(("hours_ago", "expected"), [(3, Status.OK), (40, Status.WARN), (100, Status.FAIL)])
def test_dr_copy_age_counts_only_this_databases_available_copies(hours_ago: float, expected: Status) -> None:
    rds = FakeRds(
        [
            _copy("wandb", hours_ago),
            _copy("wandb", 1, status="copying"),
            _copy("other-database", 1),
            _copy("wandb", 1, ours=False),
        ]
    )
    found = _items(rds)["aurora.dr_copy"]
    assert found.status is expected and found.metrics["NewestDrCopyAgeHours"] == hours_ago
    assert "eu-west-1" in found.evidence


def test_copies_of_a_same_named_database_of_another_region_are_not_this_databases() -> None:
    """A stack in another region, for a database of the same name, may copy its snapshots here too."""
    theirs = _copy("wandb", 1)
    theirs["TagList"] = [*theirs["TagList"], {"Key": "wandb-ops:source-region", "Value": "us-west-2"}]
    assert _items(FakeRds([theirs]))["aurora.dr_copy"].status is Status.FAIL
    ours = _copy("wandb", 1)
    ours["TagList"] = [*ours["TagList"], {"Key": "wandb-ops:source-region", "Value": "us-east-1"}]
    assert _items(FakeRds([theirs, ours]))["aurora.dr_copy"].status is Status.OK


def test_no_dr_copy_fails_and_no_dr_region_warns() -> None:
    assert _items(FakeRds([_copy("other-database", 1)]))["aurora.dr_copy"].status is Status.FAIL
    without = RecordSettings.from_env({"POSTURE_DATABASE": "wandb"})
    found = _items(None, settings=without)["aurora.dr_copy"]
    assert found.status is Status.WARN and "SnapshotDrRegion" in found.fix


def test_a_denied_read_is_a_warning_that_names_the_permission() -> None:
    found = _items(FakeRds([]), DeniedStepFunctions())
    for name in ("s3.replica", "credentials.last_rotation", "tfstate.backup"):
        assert found[name].status is Status.WARN and "states:ListExecutions" in found[name].fix
