"""The monthly restore check end to end: the emulator restores the snapshot, and the sanity
query really runs, as the master user, on a real MySQL-compatible engine standing in for the
restored copy (the rig resolves the emulator's RDS endpoints to it)."""

import json

import boto3
import pytest

from tests.rig.engines import Engine
from tests.rig.local_cloud import Execution, LocalCloud
from tests.rig.stack import DeployedStack
from tests.rig.wandb_deployment import SimulatedWandb, seed_wandb
from tests.workflows.notifications import TopicInbox
from wandb_ops.access.rds_snapshots import parse_slot, snapshot_identifier, snapshot_tags

MASTER_PASSWORD = "RestoreCheckMaster0"


def _setup(cloud: LocalCloud, engine: Engine, **parameters: str) -> tuple[SimulatedWandb, DeployedStack]:
    with engine.connect(autocommit=True) as root, root.cursor() as cursor:
        cursor.execute(f"CREATE USER IF NOT EXISTS 'wandb_restore_master'@'%' IDENTIFIED BY '{MASTER_PASSWORD}'")
        cursor.execute("GRANT SELECT ON *.* TO 'wandb_restore_master'@'%'")
        cursor.execute("CREATE DATABASE IF NOT EXISTS wandb_local")
        # The columns every test on this shared engine gives it, whichever runs first.
        cursor.execute(
            "CREATE TABLE IF NOT EXISTS wandb_local.runs (id INT PRIMARY KEY, name VARCHAR(64), owner VARCHAR(64))"
        )
    wandb = seed_wandb(port=engine.port)
    master = boto3.client("secretsmanager").create_secret(
        Name="wandb-ops/wandb/restore-master",
        # ssl false: the engine's certificate names 127.0.0.1, not the emulator's endpoint names (local only).
        SecretString=json.dumps({"username": "wandb_restore_master", "password": MASTER_PASSWORD, "ssl": False}),
    )["ARN"]
    stack = cloud.deploy({**wandb.stack_parameters(), "MasterSecretArn": master, **parameters})
    stack.set_function_environment("DbRestoreCheckFunction", POLL_BASE_SECONDS="0")
    return wandb, stack


def _snapshot(slot: str) -> str:
    identifier = snapshot_identifier("wandb", "us-east-1", parse_slot(slot))
    boto3.client("rds").create_db_cluster_snapshot(
        DBClusterIdentifier="wandb",
        DBClusterSnapshotIdentifier=identifier,
        Tags=snapshot_tags("wandb", "us-east-1", parse_slot(slot)),
    )
    return identifier


def stack_short_id(stack: DeployedStack) -> str:
    """What the template gives the function: the first 8 hex digits of the stack's UUID."""
    stack_id = boto3.client("cloudformation").describe_stacks(StackName=stack.name)["Stacks"][0]["StackId"]
    variables = boto3.client("lambda").get_function_configuration(
        FunctionName=stack.function_name("DbRestoreCheckFunction")
    )["Environment"]["Variables"]
    assert variables["STACK_SHORT_ID"] == stack_id.rsplit("/", 1)[1][:8]
    return str(variables["STACK_SHORT_ID"])


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
    newest = _snapshot("2026-11-30T03:00Z")
    execution = _run(cloud, stack)
    assert execution.status == "SUCCEEDED", execution.cause
    output = execution.output
    check = f"wandb-ops-check-{stack_short_id(stack)}-202612010500"
    assert output["snapshot"] == newest and output["restored_as"] == check
    assert output["query_result"] == "1"  # one table in wandb_local, counted on the engine
    assert sorted(output["deleted"]) == [check, f"{check}-1"]
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


def test_a_check_database_named_before_an_update_is_refused_clearly_and_left_alone(
    cloud: LocalCloud, mysql_engine: Engine
) -> None:
    """A run in flight across a stack update hands the new function the old name, which carries
    no stack id (and which the new role may not touch): each step says what to delete by hand."""
    _, stack = _setup(cloud, mysql_engine)
    legacy = "wandb-ops-check-202612010500"
    boto3.client("rds").create_db_cluster(
        DBClusterIdentifier=legacy,
        Engine="aurora-mysql",
        MasterUsername="wandb",
        MasterUserPassword="x" * 16,
        Tags=[{"Key": "managed-by", "Value": "wandb-ops"}, {"Key": "wandb-ops:purpose", "Value": "restore-check"}],
    )
    function = stack.function_name("DbRestoreCheckFunction")
    for action in ("check", "query", "cleanup"):
        answer = boto3.client("lambda").invoke(
            FunctionName=function, Payload=json.dumps({"action": action, "identifier": legacy}).encode()
        )
        error = json.loads(answer["Payload"].read())
        assert answer.get("FunctionError") and error["errorType"] == "RestoreCheckError", error
        assert f"delete {legacy} (cluster and instance) by hand" in error["errorMessage"]
    assert _check_databases() == [legacy]


def test_cleanup_deletes_nothing_without_this_stacks_tag(cloud: LocalCloud, mysql_engine: Engine) -> None:
    """Named like this stack's check database, but tagged with another stack's id (or none)."""
    _, stack = _setup(cloud, mysql_engine)
    name = f"wandb-ops-check-{stack_short_id(stack)}-202612010500"
    tags = [{"Key": "managed-by", "Value": "wandb-ops"}, {"Key": "wandb-ops:purpose", "Value": "restore-check"}]
    rds = boto3.client("rds")
    rds.create_db_cluster(
        DBClusterIdentifier=name,
        Engine="aurora-mysql",
        MasterUsername="wandb",
        MasterUserPassword="x" * 16,
        Tags=[*tags, {"Key": "wandb-ops:stack", "Value": "0badc0de"}],
    )
    answer = boto3.client("lambda").invoke(
        FunctionName=stack.function_name("DbRestoreCheckFunction"),
        Payload=json.dumps({"action": "cleanup", "identifier": name}).encode(),
    )
    error = json.loads(answer["Payload"].read())
    assert error["errorType"] == "RestoreCheckError" and "not a restore-check database of this" in error["errorMessage"]
    assert _check_databases() == [name]
