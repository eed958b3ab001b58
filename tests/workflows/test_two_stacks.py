"""Two wandb-ops stacks in one account and region, for two W&B deployments whose namespaces are
long and differ only at the end, on the same schedule slot: each stack's snapshots, retention,
restore check and posture report touch only its own deployment."""

import json
from typing import Any

import boto3
import pytest

from tests.rig.engines import Engine
from tests.rig.local_cloud import LocalCloud
from tests.rig.stack import DeployedStack
from tests.rig.wandb_deployment import SimulatedWandb, seed_wandb
from tests.workflows.test_db_restore_check_workflow import MASTER_PASSWORD, stack_short_id
from wandb_ops.access.rds_snapshots import parse_slot, snapshot_identifier, snapshot_tags

SLOT = "2026-11-26T03:00Z"
CHECK_SLOT = "2026-12-01T05:00Z"
NAMESPACES = ("wandb-research-platform-production-eu-01", "wandb-research-platform-production-eu-02")
KEEP_ONLY_THE_NEWEST = {f"SnapshotRetain{tier}": "0" for tier in ("Newest", "Daily", "Weekly", "Monthly")}


def _deploy(cloud: LocalCloud, engine: Engine, namespace: str, stack_name: str) -> tuple[SimulatedWandb, DeployedStack]:
    wandb = seed_wandb(namespace, port=engine.port)
    master = boto3.client("secretsmanager").create_secret(
        Name=f"wandb-ops/{namespace}/restore-master",
        # ssl false: the engine's certificate names 127.0.0.1, not the emulator's endpoint names (local only).
        SecretString=json.dumps({"username": "wandb_restore_master", "password": MASTER_PASSWORD, "ssl": False}),
    )["ARN"]
    parameters = {**wandb.stack_parameters(), "MasterSecretArn": master, **KEEP_ONLY_THE_NEWEST}
    stack = cloud.deploy(parameters, stack_name=stack_name)
    stack.set_function_environment("DbSnapshotFunction", POLL_BASE_SECONDS="0", POLL_MAX_ATTEMPTS="6")
    stack.set_function_environment("DbRestoreCheckFunction", POLL_BASE_SECONDS="0")
    return wandb, stack


def _snapshots(namespace: str) -> set[str]:
    found = boto3.client("rds").describe_db_cluster_snapshots(DBClusterIdentifier=namespace, SnapshotType="manual")
    return {s["DBClusterSnapshotIdentifier"] for s in found["DBClusterSnapshots"]}


def _check_databases() -> set[str]:
    rds = boto3.client("rds")
    clusters = [c["DBClusterIdentifier"] for c in rds.describe_db_clusters()["DBClusters"]]
    instances = [i["DBInstanceIdentifier"] for i in rds.describe_db_instances()["DBInstances"]]
    return {name for name in clusters + instances if name.startswith("wandb-ops-check-")}


def _invoke(stack: DeployedStack, event: dict[str, Any]) -> dict[str, Any]:
    answer = boto3.client("lambda").invoke(
        FunctionName=stack.function_name("DbRestoreCheckFunction"), Payload=json.dumps(event).encode()
    )
    result: dict[str, Any] = json.loads(answer["Payload"].read())
    return {"error": result} if answer.get("FunctionError") else result


@pytest.mark.usefixtures("restored_copies_resolve_to")
@pytest.mark.parametrize("mysql_engine", ["mariadb"], indirect=True)  # the query's engines are covered elsewhere
def test_two_stacks_never_act_on_each_others_snapshots_or_check_databases(
    cloud: LocalCloud, mysql_engine: Engine
) -> None:
    with mysql_engine.connect(autocommit=True) as root, root.cursor() as cursor:
        cursor.execute(f"CREATE USER IF NOT EXISTS 'wandb_restore_master'@'%' IDENTIFIED BY '{MASTER_PASSWORD}'")
        cursor.execute("GRANT SELECT ON *.* TO 'wandb_restore_master'@'%'")
        cursor.execute("CREATE DATABASE IF NOT EXISTS wandb_local")
    (first, first_stack), (second, second_stack) = (
        _deploy(cloud, mysql_engine, namespace, f"wandb-ops-eu-0{number}")
        for number, namespace in enumerate(NAMESPACES, start=1)
    )
    # A day-old snapshot of each, which each stack's retention (keep only the newest) deletes.
    older = {}
    for wandb in (first, second):
        slot = parse_slot("2026-11-25T03:00Z")
        older[wandb.namespace] = snapshot_identifier(wandb.namespace, "us-east-1", slot)
        boto3.client("rds").create_db_cluster_snapshot(
            DBClusterIdentifier=wandb.namespace,
            DBClusterSnapshotIdentifier=older[wandb.namespace],
            Tags=snapshot_tags(wandb.namespace, "us-east-1", slot),
        )

    # Snapshots: the same slot for both; the first stack's retention runs before the second's run.
    made = {}
    for wandb, stack in ((first, first_stack), (second, second_stack)):
        execution = cloud.run(stack.state_machine_arns["DbSnapshotStateMachine"], {"slot": SLOT, "source": "test"})
        assert execution.status == "SUCCEEDED", execution.cause
        made[wandb.namespace] = execution.output["snapshot"]["id"]
        if wandb is first:
            assert _snapshots(second.namespace) == {older[second.namespace]}  # the other's, untouched
    assert made[first.namespace] != made[second.namespace]
    for wandb in (first, second):
        assert _snapshots(wandb.namespace) == {made[wandb.namespace]}

    # Restore check, same slot: the second stack's check database exists while the first stack's
    # whole check runs, and is neither used nor deleted by it.
    started = _invoke(second_stack, {"action": "start", "input": {"slot": CHECK_SLOT, "source": "test"}})
    assert started["snapshot"] == made[second.namespace], started
    second_check = started["identifier"]
    assert second_check == f"wandb-ops-check-{stack_short_id(second_stack)}-202612010500"
    execution = cloud.run(
        first_stack.state_machine_arns["DbRestoreCheckStateMachine"], {"slot": CHECK_SLOT, "source": "test"}
    )
    assert execution.status == "SUCCEEDED", execution.cause
    output = execution.output
    assert output["snapshot"] == made[first.namespace] and output["restored_as"] != second_check
    assert second_check not in output["deleted"] and _check_databases() == {second_check, f"{second_check}-1"}
    # Handed the other stack's name, the first stack's function refuses it and deletes nothing.
    refused = _invoke(first_stack, {"action": "cleanup", "identifier": second_check})
    assert refused["error"]["errorType"] == "RestoreCheckError"
    assert _check_databases() == {second_check, f"{second_check}-1"}
    # The second stack's own run for the slot finds its check database, checks it and deletes it.
    execution = cloud.run(
        second_stack.state_machine_arns["DbRestoreCheckStateMachine"], {"slot": CHECK_SLOT, "source": "test"}
    )
    assert execution.status == "SUCCEEDED", execution.cause
    assert execution.output["snapshot"] == made[second.namespace]
    assert sorted(execution.output["deleted"]) == [second_check, f"{second_check}-1"] and _check_databases() == set()

    # Posture: each report is about its own deployment only.
    reports = {}
    for wandb, stack in ((first, first_stack), (second, second_stack)):
        execution = cloud.run(stack.state_machine_arns["PostureStateMachine"], {"source": "test"})
        assert execution.status == "SUCCEEDED", execution.cause
        reports[wandb.namespace] = json.dumps(execution.output)
    for wandb, other in ((first, second), (second, first)):
        report = reports[wandb.namespace]
        assert wandb.namespace in report
        for foreign in (other.namespace, other.bucket_name, other.kms_key_arn, made[other.namespace]):
            assert foreign not in report, foreign
