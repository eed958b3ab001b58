"""The monthly restore check end to end: the emulator restores the snapshot, and the sanity
query really runs, as the master user, on a real MySQL-compatible engine standing in for the
restored copy (the rig resolves the emulator's RDS endpoints to it)."""

import json
import socket
from typing import Any

import boto3
import pytest

from tests.rig.engines import Engine
from tests.rig.local_cloud import Execution, LocalCloud
from tests.rig.stack import DeployedStack
from tests.rig.wandb_deployment import SimulatedWandb, seed_wandb
from tests.workflows.notifications import TopicInbox
from wandb_ops.snapshots import parse_slot, snapshot_tags

MASTER_PASSWORD = "RestoreCheckMaster0"


@pytest.fixture
def restored_copies_resolve_to(monkeypatch: pytest.MonkeyPatch) -> None:
    """The emulator's RDS endpoints (*.rds.amazonaws.com) resolve to the local engine."""
    original = socket.getaddrinfo

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(host, str) and host.endswith(".rds.amazonaws.com"):
            host = "127.0.0.1"
        return original(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


def _setup(cloud: LocalCloud, engine: Engine, **parameters: str) -> tuple[SimulatedWandb, DeployedStack]:
    with engine.connect(autocommit=True) as root, root.cursor() as cursor:
        cursor.execute(f"CREATE USER IF NOT EXISTS 'wandb_restore_master'@'%' IDENTIFIED BY '{MASTER_PASSWORD}'")
        cursor.execute("GRANT SELECT ON *.* TO 'wandb_restore_master'@'%'")
        cursor.execute("CREATE DATABASE IF NOT EXISTS wandb_local")
        cursor.execute("CREATE TABLE IF NOT EXISTS wandb_local.runs (id INT PRIMARY KEY)")
    wandb = seed_wandb(port=engine.port)
    master = boto3.client("secretsmanager").create_secret(
        Name="wandb-ops/wandb/restore-master",
        # ssl false: the engine's certificate names 127.0.0.1, not the emulator's endpoint names (local only).
        SecretString=json.dumps({"username": "wandb_restore_master", "password": MASTER_PASSWORD, "ssl": False}),
    )["ARN"]
    stack = cloud.deploy({**wandb.stack_parameters(), "MasterSecretArn": master, **parameters})
    stack.set_function_environment("DbRestoreCheckFunction", POLL_BASE_SECONDS="0")
    return wandb, stack


def _snapshot(slot: str) -> None:
    boto3.client("rds").create_db_cluster_snapshot(
        DBClusterIdentifier="wandb",
        DBClusterSnapshotIdentifier=f"wandb-ops-wandb-{parse_slot(slot):%Y%m%d%H%M}",
        Tags=snapshot_tags("wandb", parse_slot(slot)),
    )


def _run(cloud: LocalCloud, stack: DeployedStack) -> Execution:
    return cloud.run(
        stack.state_machine_arns["DbRestoreCheckStateMachine"], {"slot": "2026-12-01T05:00Z", "source": "test"}
    )


def _check_databases() -> list[str]:
    rds = boto3.client("rds")
    clusters = [c["DBClusterIdentifier"] for c in rds.describe_db_clusters()["DBClusters"]]
    instances = [i["DBInstanceIdentifier"] for i in rds.describe_db_instances()["DBInstances"]]
    return [name for name in clusters + instances if name.startswith("wandb-ops-check-")]


@pytest.mark.usefixtures("restored_copies_resolve_to")
def test_the_newest_snapshot_is_restored_queried_and_deleted(cloud: LocalCloud, mysql_engine: Engine) -> None:
    _, stack = _setup(cloud, mysql_engine)
    _snapshot("2026-11-29T03:00Z")
    _snapshot("2026-11-30T03:00Z")
    execution = _run(cloud, stack)
    assert execution.status == "SUCCEEDED", execution.cause
    output = execution.output
    assert (
        output["snapshot"] == "wandb-ops-wandb-202611300300" and output["restored_as"] == "wandb-ops-check-202612010500"
    )
    assert output["query_result"] == "1"  # one table in wandb_local, counted on the engine
    assert sorted(output["deleted"]) == ["wandb-ops-check-202612010500", "wandb-ops-check-202612010500-1"]
    assert _check_databases() == []


@pytest.mark.usefixtures("restored_copies_resolve_to")
def test_a_failing_query_notifies_and_still_deletes_the_copy(cloud: LocalCloud, mysql_engine: Engine) -> None:
    _, stack = _setup(cloud, mysql_engine, RestoreCheckQuery="SELECT COUNT(*) FROM wandb_local.no_such_table")
    inbox = TopicInbox(stack.outputs["NotificationsTopicArn"])
    _snapshot("2026-11-30T03:00Z")
    execution = _run(cloud, stack)
    assert execution.status == "FAILED"
    assert "CleanupAfterFailure" in execution.states_entered()
    [notification] = inbox.received()
    assert "MySQL error 1146" in notification.message and "the temporary database was deleted" in notification.message
    assert _check_databases() == []


def test_without_a_snapshot_it_fails_clearly_and_creates_nothing(cloud: LocalCloud, mysql_engine: Engine) -> None:
    _, stack = _setup(cloud, mysql_engine)
    inbox = TopicInbox(stack.outputs["NotificationsTopicArn"])
    execution = _run(cloud, stack)
    assert execution.status == "FAILED"
    [notification] = inbox.received()
    assert "no available snapshot of wandb made by wandb-ops" in notification.message
    assert _check_databases() == []
