"""The database snapshot workflow end to end: the real definition in the interpreter, the
real handler for every task, the emulator's RDS (with the rig's account quota)."""

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from moto.rds.exceptions import RDSClientError
from moto.rds.models import RDSBackend, rds_backends

from tests.rig.emulator import ACCOUNT_ID
from tests.rig.local_cloud import Execution, LocalCloud
from tests.rig.stack import DeployedStack
from tests.rig.wandb_deployment import SimulatedWandb, seed_wandb
from tests.workflows.notifications import TopicInbox
from wandb_ops.access.rds_snapshots import (
    RetentionPolicy,
    format_slot,
    parse_slot,
    snapshot_identifier,
    snapshot_tags,
    to_keep,
)

SLOT = "2026-11-26T03:00Z"
SNAPSHOT_ID = "wandb-ops-wandb-7fcdc09e-202611260300"


def _legacy(slot: datetime) -> tuple[str, list[dict[str, str]]]:
    """The name and tags of a snapshot made before names carried a digest and tags the region."""
    tags = [t for t in snapshot_tags("wandb", "us-east-1", slot) if t["Key"] != "wandb-ops:source-region"]
    return f"wandb-ops-wandb-{slot:%Y%m%d%H%M}", tags


def _deploy(cloud: LocalCloud, wandb: SimulatedWandb, **parameters: str) -> DeployedStack:
    stack = cloud.deploy({**wandb.stack_parameters(), **parameters})
    # Poll without sleeping in tests; the backoff arithmetic is the function's, unchanged.
    stack.set_function_environment("DbSnapshotFunction", POLL_BASE_SECONDS="0", POLL_MAX_ATTEMPTS="6")
    return stack


@pytest.fixture
def snap_stack(cloud: LocalCloud, wandb: SimulatedWandb) -> DeployedStack:
    return _deploy(cloud, wandb)


def _run(cloud: LocalCloud, stack: DeployedStack, **workflow_input: Any) -> Execution:
    return cloud.run(
        stack.state_machine_arns["DbSnapshotStateMachine"], {"slot": SLOT, "source": "test", **workflow_input}
    )


def _ours(region: str = "us-east-1", cluster: str = "wandb") -> list[dict[str, Any]]:
    return [
        s
        for s in boto3.client("rds", region_name=region).describe_db_cluster_snapshots(
            DBClusterIdentifier=cluster, SnapshotType="manual"
        )["DBClusterSnapshots"]
        if {"Key": "managed-by", "Value": "wandb-ops"} in s.get("TagList", [])
    ]


def test_a_run_creates_one_tagged_verified_snapshot(cloud: LocalCloud, snap_stack: DeployedStack) -> None:
    execution = _run(cloud, snap_stack)
    assert execution.status == "SUCCEEDED", execution.cause
    [snapshot] = _ours()
    assert snapshot["DBClusterSnapshotIdentifier"] == SNAPSHOT_ID and snapshot["Status"] == "available"
    tags = {t["Key"]: t["Value"] for t in snapshot["TagList"]}
    assert tags == {
        "managed-by": "wandb-ops",
        "wandb-ops:slot": SLOT,
        "wandb-ops:source": "wandb",
        "wandb-ops:source-region": "us-east-1",
    }
    summary = execution.output
    assert summary["snapshot"]["id"] == SNAPSHOT_ID and summary["snapshot"]["status"] == "available"
    assert summary["deletion_protection"] == {"was_on": True, "enforced": False, "mode": "report"}
    assert summary["retention"]["source"] == {"kept": 1, "deleted": []}
    assert "WantDrCopy" in execution.states_entered() and "CopyToDr" not in execution.states_entered()


def test_the_same_slot_twice_makes_one_snapshot(cloud: LocalCloud, snap_stack: DeployedStack) -> None:
    first, second = _run(cloud, snap_stack), _run(cloud, snap_stack)
    assert first.status == second.status == "SUCCEEDED"
    assert [s["DBClusterSnapshotIdentifier"] for s in _ours()] == [SNAPSHOT_ID]
    creates = [i.result for i in cloud.runtime.invocations_of("DbSnapshotFunction") if i.event["action"] == "create"]
    assert [c["created"] for c in creates] == [True, False]


def _backend(region: str = "us-east-1") -> RDSBackend:
    backend: RDSBackend = rds_backends[ACCOUNT_ID][region]
    return backend


def _seed_snapshot(
    identifier: str, tags: list[dict[str, str]] | None = None, cluster: str = "wandb", region: str = "us-east-1"
) -> None:
    boto3.client("rds", region_name=region).create_db_cluster_snapshot(
        DBClusterIdentifier=cluster, DBClusterSnapshotIdentifier=identifier, Tags=tags or []
    )


def _used_quota() -> int:
    """ManualClusterSnapshots used (the rig counts every cluster snapshot, as moto's limit does)."""
    quotas = boto3.client("rds").describe_account_attributes()["AccountQuotas"]
    [used] = [q["Used"] for q in quotas if q["AccountQuotaName"] == "ManualClusterSnapshots"]
    return int(used)


def _seed(slot: datetime) -> str:
    identifier = snapshot_identifier("wandb", "us-east-1", slot)
    _seed_snapshot(identifier, snapshot_tags("wandb", "us-east-1", slot))
    return identifier


def test_retention_over_a_simulated_year_deletes_only_ours_and_keeps_the_policy(
    cloud: LocalCloud, snap_stack: DeployedStack
) -> None:
    newest = datetime(2026, 11, 26, 3, 0, tzinfo=UTC)
    year = [newest - timedelta(days=day) for day in range(1, 366)]
    for slot in year:  # made before this version's names and region tag: still managed
        _seed_snapshot(*_legacy(slot))
    _seed_snapshot("manual-before-upgrade")  # a person's snapshot: untagged
    _seed_snapshot("someone-elses", tags=[{"Key": "managed-by", "Value": "another-tool"}])
    _seed_snapshot("rds:wandb-2026-11-25-03-10")
    _backend().cluster_snapshots["rds:wandb-2026-11-25-03-10"].snapshot_type = "automated"
    _seed_snapshot("awsbackup:job-1234", tags=snapshot_tags("wandb", "us-east-1", year[-1]))
    _backend().cluster_snapshots["awsbackup:job-1234"].snapshot_type = "awsbackup"
    expected = {_legacy(s)[0] for s in to_keep([newest, *year], RetentionPolicy()) if s != newest} | {SNAPSHOT_ID}

    dry = _run(cloud, snap_stack, dry_run=True)
    assert dry.status == "SUCCEEDED", dry.cause
    assert len(dry.output["retention"]["source"]["would_delete"]) == 366 - len(expected)
    assert len(_ours()) == 366  # the dry run deleted nothing

    real = _run(cloud, snap_stack)
    assert real.status == "SUCCEEDED", real.cause
    assert {s["DBClusterSnapshotIdentifier"] for s in _ours()} == expected
    assert real.output["deleted_count"] == 366 - len(expected)
    remaining = set(_backend().cluster_snapshots)
    assert {"manual-before-upgrade", "someone-elses", "rds:wandb-2026-11-25-03-10", "awsbackup:job-1234"} <= remaining


def test_at_the_quota_retention_prunes_first(
    cloud: LocalCloud, snap_stack: DeployedStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    start = datetime(2026, 11, 1, 3, 0, tzinfo=UTC)
    seeded = [_seed(start + timedelta(days=day)) for day in range(20)]
    monkeypatch.setenv("MOTO_RDS_SNAPSHOT_LIMIT", "20")
    used = _used_quota()
    execution = _run(cloud, snap_stack)
    assert execution.status == "SUCCEEDED", execution.cause
    quota = execution.output["quota"]
    # Only what makes room for the new snapshot; retention deletes the rest once that exists.
    assert quota["max"] == 20 and quota["used"] == 19 and len(quota["pruned_first"]) == used - 19
    assert set(quota["pruned_first"]) <= set(seeded) and execution.output["retention"]["source"]["deleted"]
    assert SNAPSHOT_ID in {s["DBClusterSnapshotIdentifier"] for s in _ours()}


NOTHING = {f"SnapshotRetain{tier}": "0" for tier in ("Newest", "Daily", "Weekly", "Monthly")}


@pytest.mark.filterwarnings("ignore:Exception\\(RDSClientError\\) with code InvalidDBClusterStateFault")
def test_at_the_quota_with_retention_at_zero_a_failed_create_still_leaves_the_newest_snapshots(
    cloud: LocalCloud, wandb: SimulatedWandb, monkeypatch: pytest.MonkeyPatch
) -> None:
    stack = _deploy(cloud, wandb, **NOTHING)
    seeded = [_seed(parse_slot(SLOT) - timedelta(days=day)) for day in (3, 2, 1)]
    monkeypatch.setenv("MOTO_RDS_SNAPSHOT_LIMIT", str(_used_quota()))

    def refused(self: RDSBackend, *args: Any, **kwargs: Any) -> Any:
        raise RDSClientError("InvalidDBClusterStateFault", "the cluster is being modified")

    monkeypatch.setattr(RDSBackend, "create_db_cluster_snapshot", refused)
    execution = _run(cloud, stack)
    assert execution.status == "FAILED"
    # Room for one was made, from the oldest; the newer two, and above all the newest, are still there.
    assert sorted(s["DBClusterSnapshotIdentifier"] for s in _ours()) == sorted(seeded[1:])


def test_at_the_quota_nothing_is_pruned_when_it_would_not_make_room(
    cloud: LocalCloud, wandb: SimulatedWandb, monkeypatch: pytest.MonkeyPatch
) -> None:
    stack = _deploy(cloud, wandb, **NOTHING)
    inbox = TopicInbox(stack.outputs["NotificationsTopicArn"])
    only = _seed(parse_slot(SLOT) - timedelta(days=1))
    _seed_snapshot("manual-before-upgrade")
    monkeypatch.setenv("MOTO_RDS_SNAPSHOT_LIMIT", str(_used_quota()))
    execution = _run(cloud, stack)
    assert execution.status == "FAILED"
    [notification] = inbox.received()
    assert "retention may delete only 0 of this product's snapshots and 1 must go" in notification.message
    assert [s["DBClusterSnapshotIdentifier"] for s in _ours()] == [only]  # the only backup was not given up


def test_retention_at_zero_keeps_the_newest_snapshot_in_both_regions(cloud: LocalCloud, wandb: SimulatedWandb) -> None:
    """A re-run for an earlier slot (yesterday's failed run, after today's): the run's own snapshot
    is kept, and so is the newest one, here and in the DR region."""
    dr_key = boto3.client("kms", region_name="us-west-2").create_key()["KeyMetadata"]["Arn"]
    stack = _deploy(cloud, wandb, SnapshotDrRegion="us-west-2", SnapshotDrKmsKeyArn=dr_key, **NOTHING)
    dr = boto3.client("rds", region_name="us-west-2")
    seeded = []
    for day in (-1, 1):  # the day before the run's slot, and the day after
        slot = parse_slot(SLOT) + timedelta(days=day)
        identifier = _seed(slot)
        arn = boto3.client("rds").describe_db_cluster_snapshots(DBClusterSnapshotIdentifier=identifier)[
            "DBClusterSnapshots"
        ][0]["DBClusterSnapshotArn"]
        dr.copy_db_cluster_snapshot(
            SourceDBClusterSnapshotIdentifier=arn,
            TargetDBClusterSnapshotIdentifier=f"{identifier}-dr",
            SourceRegion="us-east-1",
            Tags=snapshot_tags("wandb", "us-east-1", slot),
        )
        seeded.append(identifier)
    execution = _run(cloud, stack)
    assert execution.status == "SUCCEEDED", execution.cause
    assert {s["DBClusterSnapshotIdentifier"] for s in _ours()} == {SNAPSHOT_ID, seeded[1]}
    assert {s["DBClusterSnapshotIdentifier"] for s in _ours(region="us-west-2")} == {
        f"{SNAPSHOT_ID}-dr",
        f"{seeded[1]}-dr",
    }


def test_at_the_quota_with_fail_the_run_fails_clearly(
    cloud: LocalCloud, wandb: SimulatedWandb, monkeypatch: pytest.MonkeyPatch
) -> None:
    stack = _deploy(cloud, wandb, SnapshotQuotaAction="fail")
    inbox = TopicInbox(stack.outputs["NotificationsTopicArn"])
    _seed_snapshot("manual-before-upgrade")
    monkeypatch.setenv("MOTO_RDS_SNAPSHOT_LIMIT", "1")
    execution = _run(cloud, stack)
    assert execution.status == "FAILED"
    [notification] = inbox.received()
    assert "SnapshotQuotaError" in notification.message
    assert "ManualClusterSnapshots quota is reached" in notification.message and "of 1)" in notification.message
    assert _ours() == []


def test_a_missing_cluster_fails_with_the_parameter_to_fix(cloud: LocalCloud, wandb: SimulatedWandb) -> None:
    stack = _deploy(cloud, wandb, DatabaseIdentifier="not-wandb")
    inbox = TopicInbox(stack.outputs["NotificationsTopicArn"])
    execution = _run(cloud, stack)
    assert execution.status == "FAILED" and execution.error == "DbSnapshotFailed"
    [notification] = inbox.received()
    assert "no Aurora cluster 'not-wandb'" in notification.message and "DatabaseIdentifier" in notification.message


def test_dr_copy_is_encrypted_with_the_dr_key_and_tagged(cloud: LocalCloud, wandb: SimulatedWandb) -> None:
    dr_key = boto3.client("kms", region_name="us-west-2").create_key()["KeyMetadata"]["Arn"]
    stack = _deploy(cloud, wandb, SnapshotDrRegion="us-west-2", SnapshotDrKmsKeyArn=dr_key)
    execution = _run(cloud, stack)
    assert execution.status == "SUCCEEDED", execution.cause
    [copy] = _ours(region="us-west-2")
    assert copy["DBClusterSnapshotIdentifier"] == f"{SNAPSHOT_ID}-dr" and copy["KmsKeyId"] == dr_key
    assert {"Key": "wandb-ops:slot", "Value": SLOT} in copy["TagList"]
    assert execution.output["dr_copy"]["id"] == f"{SNAPSHOT_ID}-dr"
    assert execution.output["retention"]["dr"] == {"kept": 1, "deleted": []}


def test_dr_copy_waits_while_five_copies_are_in_flight(cloud: LocalCloud, wandb: SimulatedWandb) -> None:
    dr_key = boto3.client("kms", region_name="us-west-2").create_key()["KeyMetadata"]["Arn"]
    stack = _deploy(cloud, wandb, SnapshotDrRegion="us-west-2", SnapshotDrKmsKeyArn=dr_key)
    source = boto3.client("rds")
    source.create_db_cluster_snapshot(DBClusterIdentifier="wandb", DBClusterSnapshotIdentifier="other-copy-source")
    arn = source.describe_db_cluster_snapshots(DBClusterSnapshotIdentifier="other-copy-source")["DBClusterSnapshots"][
        0
    ]["DBClusterSnapshotArn"]
    dr = boto3.client("rds", region_name="us-west-2")
    for index in range(5):
        dr.copy_db_cluster_snapshot(
            SourceDBClusterSnapshotIdentifier=arn,
            TargetDBClusterSnapshotIdentifier=f"busy-{index}",
            SourceRegion="us-east-1",
        )
        _backend("us-west-2").cluster_snapshots[f"busy-{index}"].status = "copying"
    execution = _run(cloud, stack)
    assert execution.status == "FAILED"
    assert execution.states_entered().count("WaitForCopySlot") == 5  # POLL_MAX_ATTEMPTS=6, then it gives up
    assert _ours(region="us-west-2") == []
    _backend("us-west-2").cluster_snapshots["busy-0"].status = "available"
    assert _run(cloud, stack).status == "SUCCEEDED"


@pytest.mark.parametrize(("mode", "protected_after"), [("report", False), ("enforce", True)])
def test_deletion_protection_report_and_enforce(cloud: LocalCloud, mode: str, protected_after: bool) -> None:
    wandb = seed_wandb(deletion_protection=False)
    stack = _deploy(cloud, wandb, DeletionProtectionMode=mode)
    execution = _run(cloud, stack)
    assert execution.status == "SUCCEEDED", execution.cause
    assert execution.output["deletion_protection"] == {"was_on": False, "enforced": protected_after, "mode": mode}
    cluster = boto3.client("rds").describe_db_clusters(DBClusterIdentifier="wandb")["DBClusters"][0]
    assert cluster["DeletionProtection"] is protected_after


@pytest.fixture
def throttled(monkeypatch: pytest.MonkeyPatch) -> Callable[[str, int], None]:
    def inject(method: str, times: int) -> None:
        original = getattr(RDSBackend, method)
        remaining = {"count": times}

        def throttling(self: RDSBackend, *args: Any, **kwargs: Any) -> Any:
            if remaining["count"] > 0:
                remaining["count"] -= 1
                raise RDSClientError("Throttling", "Rate exceeded")
            return original(self, *args, **kwargs)

        monkeypatch.setattr(RDSBackend, method, throttling)

    return inject


@pytest.mark.filterwarnings("ignore:Exception\\(RDSClientError\\) with code Throttling")
def test_throttling_on_create_and_describe_is_retried(
    cloud: LocalCloud, snap_stack: DeployedStack, throttled: Callable[[str, int], None]
) -> None:
    throttled("create_db_cluster_snapshot", 7)  # more than the SDK's own 5 attempts
    throttled("describe_db_cluster_snapshots", 3)
    execution = _run(cloud, snap_stack)
    assert execution.status == "SUCCEEDED", execution.cause
    assert [s["DBClusterSnapshotIdentifier"] for s in _ours()] == [SNAPSHOT_ID]
    failed_tasks = [e for e in execution.history if e["type"] == "TaskFailed"]
    assert failed_tasks and all("AwsThrottledError" in json.dumps(e, default=str) for e in failed_tasks)


def test_a_slow_snapshot_is_polled_with_backoff_until_available(
    cloud: LocalCloud, snap_stack: DeployedStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = RDSBackend.create_db_cluster_snapshot
    polls = {"left": 3}

    def creating(self: RDSBackend, *args: Any, **kwargs: Any) -> Any:
        snapshot = original(self, *args, **kwargs)
        snapshot.status = "creating"
        return snapshot

    describe = RDSBackend.describe_db_cluster_snapshots

    def finishing(self: RDSBackend, *args: Any, **kwargs: Any) -> Any:
        found = describe(self, *args, **kwargs)
        for snapshot in found:
            if snapshot.status == "creating":
                polls["left"] -= 1
                if polls["left"] < 0:
                    snapshot.status = "available"
        return found

    monkeypatch.setattr(RDSBackend, "create_db_cluster_snapshot", creating)
    monkeypatch.setattr(RDSBackend, "describe_db_cluster_snapshots", finishing)
    execution = _run(cloud, snap_stack)
    assert execution.status == "SUCCEEDED", execution.cause
    assert execution.states_entered().count("WaitForSnapshot") >= 2
    waits = [
        i.result["wait_seconds"]
        for i in cloud.runtime.invocations_of("DbSnapshotFunction")
        if i.event["action"] == "check"
    ]
    assert waits == [0] * len(waits)  # base 0 in tests; the doubling is checked in test_snapshot_retention.py


def test_an_rds_instance_is_snapshotted_with_the_instance_apis(cloud: LocalCloud, wandb: SimulatedWandb) -> None:
    boto3.client("rds").create_db_instance(
        DBInstanceIdentifier="wandb-mysql",
        Engine="mysql",
        DBInstanceClass="db.t4g.medium",
        AllocatedStorage=20,
        MasterUsername="wandb",
        MasterUserPassword="x" * 16,
    )
    stack = _deploy(cloud, wandb, DatabaseKind="rds-instance", DatabaseIdentifier="wandb-mysql")
    execution = _run(cloud, stack)
    assert execution.status == "SUCCEEDED", execution.cause
    [snapshot] = boto3.client("rds").describe_db_snapshots(DBInstanceIdentifier="wandb-mysql", SnapshotType="manual")[
        "DBSnapshots"
    ]
    assert snapshot["DBSnapshotIdentifier"] == "wandb-ops-wandb-mysql-046a0db9-202611260300"
    assert execution.output["snapshot"]["size_gib"] == 20


def test_slot_tags_use_the_formatted_slot() -> None:
    assert format_slot(datetime(2026, 11, 26, 3, 0, 59, tzinfo=UTC)) == SLOT


@pytest.fixture(autouse=True)
def _no_leftover_quota(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("MOTO_RDS_SNAPSHOT_LIMIT", raising=False)
    yield
