"""The KMS rotation policy end to end: the real definition in the interpreter, the real handler
for every task, the emulator's KMS (with the rotation behaviour of tests/rig/kms.py), S3 and RDS."""

import json
from collections.abc import Callable
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse

from tests.conftest import AwsHook
from tests.rig import kms as rig_kms
from tests.rig.local_cloud import Execution, LocalCloud
from tests.rig.stack import DeployedStack
from tests.rig.wandb_deployment import SimulatedWandb
from tests.workflows.notifications import TopicInbox
from wandb_ops.access.rds_snapshots import dr_identifier, parse_slot, snapshot_identifier, snapshot_tags

MACHINE = "KmsRotationStateMachine"
FUNCTION = "KmsRotationFunction"


def _deploy(cloud: LocalCloud, wandb: SimulatedWandb, **parameters: str) -> DeployedStack:
    return cloud.deploy({**wandb.stack_parameters(), **parameters})


def _run(cloud: LocalCloud, stack: DeployedStack, **workflow_input: Any) -> Execution:
    return cloud.run(stack.state_machine_arns[MACHINE], {"source": "test", **workflow_input}, timeout_s=120)


def _finding(execution: Execution, key_arn: str) -> dict[str, Any]:
    [found] = [key for key in execution.output["keys"] if key["key_arn"] == key_arn]
    return dict(found)


def _rotation(key_arn: str) -> dict[str, Any]:
    status: dict[str, Any] = boto3.client("kms").get_key_rotation_status(KeyId=key_arn)
    return status


def _on_demand_rotations(key_arn: str) -> int:
    rotations = boto3.client("kms").list_key_rotations(KeyId=key_arn)["Rotations"]
    return sum(1 for r in rotations if r["RotationType"] == "ON_DEMAND")


def _new_key(description: str) -> str:
    return str(boto3.client("kms").create_key(Description=description)["KeyMetadata"]["Arn"])


@pytest.fixture
def kms_calls(aws_hook: AwsHook) -> list[tuple[str, str]]:
    """(operation, key) of every KMS call that changes a key's rotation."""
    seen: list[tuple[str, str]] = []

    def record(operation: str) -> Callable[..., None]:
        return lambda params, **_: seen.append((operation, json.loads(params["body"])["KeyId"]))

    for operation in ("EnableKeyRotation", "RotateKeyOnDemand"):
        aws_hook("kms", operation, record(operation))
    return seen


def test_report_finds_every_key_and_changes_nothing_enforce_turns_rotation_on(
    cloud: LocalCloud, wandb: SimulatedWandb, kms_calls: list[tuple[str, str]]
) -> None:
    stack = _deploy(cloud, wandb)
    inbox = TopicInbox(stack.outputs["NotificationsTopicArn"])

    report = _run(cloud, stack)
    assert report.status == "SUCCEEDED", report.cause
    wandb_key = _finding(report, wandb.kms_key_arn)
    assert wandb_key["protects"] == [
        "the W&B key (stack parameter KmsKeyArn)",
        f"W&B bucket {wandb.bucket_name} (default encryption)",
        f"database {wandb.namespace} (storage encryption)",
    ]
    assert wandb_key["status"] == "fail" and wandb_key["rotation_enabled"] is False
    assert "automatic rotation is off" in wandb_key["problems"][0]
    assert len(report.output["keys"]) == 2  # and this stack's own key, which also protects the replica
    assert kms_calls == [] and _rotation(wandb.kms_key_arn)["KeyRotationEnabled"] is False
    [notification] = inbox.received()
    assert wandb.kms_key_arn in notification.message and "[FAIL]" in notification.message

    enforced = _run(cloud, stack, mode="enforce")
    assert enforced.status == "SUCCEEDED", enforced.cause
    finding = _finding(enforced, wandb.kms_key_arn)
    assert finding["status"] == "ok" and finding["period_days"] == 365 and finding["next_rotation"]
    assert finding["changes"] == [
        "automatic rotation is off (terraform-aws-wandb creates its key that way): "
        "automatic rotation set to every 365 days"
    ]
    assert _rotation(wandb.kms_key_arn)["RotationPeriodInDays"] == 365

    kms_calls.clear()
    again = _run(cloud, stack, mode="enforce")
    assert again.status == "SUCCEEDED" and again.output["changes"] == 0 and again.output["status"] == "ok"
    assert kms_calls == []


def test_a_period_other_than_the_policy_is_reported_then_changed(cloud: LocalCloud, wandb: SimulatedWandb) -> None:
    boto3.client("kms").enable_key_rotation(KeyId=wandb.kms_key_arn, RotationPeriodInDays=730)
    stack = _deploy(cloud, wandb, KmsRotationPeriodDays="180")

    report = _run(cloud, stack)
    finding = _finding(report, wandb.kms_key_arn)
    assert finding["status"] == "warn" and finding["period_days"] == 730
    assert "every 730 days, the policy says 180" in finding["problems"][0]

    enforced = _run(cloud, stack, mode="enforce")
    assert _finding(enforced, wandb.kms_key_arn)["period_days"] == 180
    assert _rotation(wandb.kms_key_arn)["RotationPeriodInDays"] == 180


def test_on_demand_rotation_when_due_and_not_before(
    cloud: LocalCloud, wandb: SimulatedWandb, kms_calls: list[tuple[str, str]]
) -> None:
    stack = _deploy(cloud, wandb, KmsRotationMode="enforce", KmsOnDemandRotationDays="30")
    rig_kms.age_key(wandb.kms_key_arn, days=20)

    not_due = _run(cloud, stack)
    assert not_due.status == "SUCCEEDED", not_due.cause
    assert _finding(not_due, wandb.kms_key_arn)["on_demand_due"] is False
    assert ("RotateKeyOnDemand", wandb.kms_key_arn) not in kms_calls

    rig_kms.age_key(wandb.kms_key_arn, days=15)  # 35 days since creation: due
    due = _run(cloud, stack)
    finding = _finding(due, wandb.kms_key_arn)
    assert finding["changes"][-1].startswith("rotated on demand: the last rotation was 35 days ago")
    assert finding["on_demand_used"] == 1 and _on_demand_rotations(wandb.kms_key_arn) == 1

    after = _run(cloud, stack)  # the rotation just made is the newest: nothing is due
    assert _finding(after, wandb.kms_key_arn)["changes"] == [] and _on_demand_rotations(wandb.kms_key_arn) == 1


def test_on_demand_rotations_stop_before_the_quota_and_keep_a_reserve(
    cloud: LocalCloud, wandb: SimulatedWandb, kms_calls: list[tuple[str, str]]
) -> None:
    stack = _deploy(
        cloud, wandb, KmsRotationMode="enforce", KmsOnDemandRotationDays="30", KmsOnDemandRotationReserve="2"
    )
    rig_kms.add_past_rotations(wandb.kms_key_arn, "ON_DEMAND", 8)
    rig_kms.age_key(wandb.kms_key_arn, days=60)

    refused = _run(cloud, stack)
    assert refused.status == "SUCCEEDED", refused.cause
    finding = _finding(refused, wandb.kms_key_arn)
    assert finding["status"] == "fail" and finding["on_demand_used"] == 8
    assert "refused: 8 of the key's 10 on-demand rotations are used and 2 are kept" in finding["problems"][-1]
    assert ("RotateKeyOnDemand", wandb.kms_key_arn) not in kms_calls

    emergency = _run(cloud, stack, rotate_now=[wandb.kms_alias])  # a suspected compromise may use the reserve
    assert _finding(emergency, wandb.kms_key_arn)["changes"][-1] == "rotated on demand: rotate_now (9 of 10 used)"
    rig_kms.add_past_rotations(wandb.kms_key_arn, "ON_DEMAND", 1)
    exhausted = _run(cloud, stack, rotate_now=[wandb.kms_alias])
    assert "refused: 10 of the key's 10" in _finding(exhausted, wandb.kms_key_arn)["problems"][-1]
    assert _on_demand_rotations(wandb.kms_key_arn) == 10


def test_a_quota_lower_than_the_parameter_is_reported_not_fatal(cloud: LocalCloud, wandb: SimulatedWandb) -> None:
    stack = _deploy(
        cloud,
        wandb,
        KmsRotationMode="enforce",
        KmsOnDemandRotationDays="30",
        KmsOnDemandRotationLimit="25",
        KmsOnDemandRotationReserve="0",
    )
    rig_kms.add_past_rotations(wandb.kms_key_arn, "ON_DEMAND", rig_kms.ON_DEMAND_ROTATION_QUOTA)
    rig_kms.age_key(wandb.kms_key_arn, days=60)
    execution = _run(cloud, stack)
    assert execution.status == "SUCCEEDED", execution.cause
    finding = _finding(execution, wandb.kms_key_arn)
    assert finding["status"] == "fail" and "KMS refused the on-demand rotation (LimitExceededException)" in str(
        finding["problems"]
    )


def test_aws_managed_and_disabled_keys_are_reported_not_touched(
    cloud: LocalCloud, wandb: SimulatedWandb, kms_calls: list[tuple[str, str]]
) -> None:
    aws_managed, disabled = _new_key("aws/s3 stand-in"), _new_key("retired key")
    rig_kms.make_aws_managed(aws_managed)
    boto3.client("kms").disable_key(KeyId=disabled.rsplit("/", 1)[1])  # moto takes only the key id here
    stack = _deploy(cloud, wandb, KmsRotationMode="enforce", KmsRotationKeyArns=f"{aws_managed},{disabled}")

    execution = _run(cloud, stack)
    assert execution.status == "SUCCEEDED", execution.cause
    managed = _finding(execution, aws_managed)
    assert managed["manager"] == "AWS" and managed["status"] == "ok" and managed["changes"] == []
    assert "AWS rotates it every year" in managed["problems"][0]
    off = _finding(execution, disabled)
    assert off["status"] == "fail" and off["state"] == "Disabled" and "aws kms enable-key" in off["problems"][0]
    assert kms_calls == [("EnableKeyRotation", wandb.kms_key_arn)]  # the stack's own key rotates already


def _denied(action: str) -> Callable[..., tuple[AWSResponse, dict[str, Any]]]:
    def answer(params: dict[str, Any], **_: Any) -> tuple[AWSResponse, dict[str, Any]]:
        message = (
            f"User: arn:aws:sts::123456789012:assumed-role/wandb-ops-kms/fn is not authorized to perform: "
            f"{action} on resource: {json.loads(params['body'])['KeyId']} because no resource-based policy allows the "
            f"{action} action"
        )
        parsed = {"Error": {"Code": "AccessDeniedException", "Message": message}, "ResponseMetadata": {}}
        return AWSResponse("https://kms.us-east-1.amazonaws.com", 400, {}, None), parsed

    return answer


def test_a_key_policy_that_denies_rotation_gives_the_statement_to_add(
    cloud: LocalCloud, wandb: SimulatedWandb, aws_hook: AwsHook
) -> None:
    stack = _deploy(cloud, wandb, KmsRotationMode="enforce")
    inbox = TopicInbox(stack.outputs["NotificationsTopicArn"])
    aws_hook("kms", "EnableKeyRotation", _denied("kms:EnableKeyRotation"))

    execution = _run(cloud, stack)
    assert execution.status == "SUCCEEDED", execution.cause
    finding = _finding(execution, wandb.kms_key_arn)
    assert finding["status"] == "fail" and finding["problems"] == ["kms:EnableKeyRotation was denied on this key"]
    [guidance] = finding["guidance"]
    assert guidance["key_arn"] == wandb.kms_key_arn and guidance["denied_action"] == "kms:EnableKeyRotation"
    assert guidance["statement"] == {
        "Sid": "AllowWandbOpsKeyRotation",
        "Effect": "Allow",
        "Principal": {"AWS": stack.outputs["KmsRotationFunctionRoleArn"]},
        "Action": [
            "kms:DescribeKey",
            "kms:GetKeyRotationStatus",
            "kms:ListKeyRotations",
            "kms:EnableKeyRotation",
            "kms:RotateKeyOnDemand",
        ],
        "Resource": "*",
    }
    assert "the key policy of" in guidance["how"] and "put-key-policy" in guidance["how"]
    [notification] = inbox.received()
    assert "AllowWandbOpsKeyRotation" in notification.message
    assert _rotation(wandb.kms_key_arn)["KeyRotationEnabled"] is False

    # An emergency rotation is not held up by the denied policy change, and other keys keep the stack's mode.
    emergency = _run(cloud, stack, mode="enforce", rotate_now=[wandb.kms_alias])
    finding = _finding(emergency, wandb.kms_key_arn)
    assert finding["changes"] == ["rotated on demand: rotate_now (1 of 10 used)"]
    assert finding["status"] == "fail" and finding["guidance"][0]["denied_action"] == "kms:EnableKeyRotation"
    assert _on_demand_rotations(wandb.kms_key_arn) == 1


def test_bad_input_is_refused_before_any_key_changes(
    cloud: LocalCloud, wandb: SimulatedWandb, kms_calls: list[tuple[str, str]]
) -> None:
    stack = _deploy(cloud, wandb)
    inbox = TopicInbox(stack.outputs["NotificationsTopicArn"])
    cases: list[tuple[dict[str, Any], str]] = [
        ({"rotate_now": [wandb.kms_alias]}, 'add \\"mode\\": \\"enforce\\"'),
        ({"mode": "sometimes"}, "mode"),
        ({"mode": "enforce", "rotate_now": ["alias/not-a-wandb-key"]}, "does not exist"),
    ]
    for workflow_input, expected in cases:
        execution = _run(cloud, stack, **workflow_input)
        assert execution.status == "FAILED", workflow_input
        [notification] = inbox.received()
        assert expected in notification.message, notification.message
    assert kms_calls == []


def test_the_newest_snapshot_is_copied_under_a_new_key(cloud: LocalCloud, wandb: SimulatedWandb) -> None:
    rds = boto3.client("rds")
    slots = [parse_slot("2026-11-25T03:00Z"), parse_slot("2026-11-26T03:00Z")]
    for slot in slots:  # the snapshot workflow's, by name and tags
        rds.create_db_cluster_snapshot(
            DBClusterIdentifier=wandb.namespace,
            DBClusterSnapshotIdentifier=snapshot_identifier(wandb.namespace, wandb.region, slot),
            Tags=snapshot_tags(wandb.namespace, wandb.region, slot),
        )
    newest = snapshot_identifier(wandb.namespace, wandb.region, slots[-1])
    # Newer, but a person's; and the DR copy of a same-named database in another region's stack.
    rds.create_db_cluster_snapshot(
        DBClusterIdentifier=wandb.namespace, DBClusterSnapshotIdentifier="a-persons-snapshot"
    )
    later = parse_slot("2026-11-27T03:00Z")
    rds.create_db_cluster_snapshot(
        DBClusterIdentifier=wandb.namespace,
        DBClusterSnapshotIdentifier=dr_identifier(snapshot_identifier(wandb.namespace, "us-west-2", later)),
        Tags=snapshot_tags(wandb.namespace, "us-west-2", later),
    )
    new_key = _new_key("W&B key, second generation")
    stack = _deploy(cloud, wandb, KmsRotationKeyArns=new_key)
    inbox = TopicInbox(stack.outputs["NotificationsTopicArn"])

    dry = _run(cloud, stack, action="copy_aurora_snapshot", kms_key=new_key)
    assert dry.status == "SUCCEEDED", dry.cause
    # The newest the role may copy: the two newer snapshots are not this stack's.
    assert dry.output["dry_run"] is True and dry.output["source_snapshot"].endswith(f":{newest}")
    assert dry.output["target"].startswith("wandb-ops-reenc-") and len(dry.output["target"]) <= 63
    assert dry.output["source_key"] == wandb.kms_key_arn and dry.output["kms_key"] == new_key
    existing = rds.describe_db_cluster_snapshots(DBClusterIdentifier=wandb.namespace)["DBClusterSnapshots"]
    assert dry.output["target"] not in {s["DBClusterSnapshotIdentifier"] for s in existing}

    for _ in range(2):  # a re-run finds its own copy
        real = _run(cloud, stack, action="copy_aurora_snapshot", kms_key=new_key, dry_run=False)
        assert real.status == "SUCCEEDED", real.cause
    [copy] = rds.describe_db_cluster_snapshots(DBClusterSnapshotIdentifier=real.output["target"])["DBClusterSnapshots"]
    assert copy["KmsKeyId"] == new_key and copy["Status"] == "available"
    assert {"Key": "wandb-ops:purpose", "Value": "reencrypt"} in copy["TagList"]
    assert {"Key": "wandb-ops:copy-of", "Value": wandb.namespace} in copy["TagList"]
    assert not any(tag["Key"] in ("wandb-ops:source", "wandb-ops:slot") for tag in copy["TagList"])  # not retention's
    ready = inbox.received()
    assert len(ready) == 2 and all(real.output["target"] in n.message for n in ready)
    assert "docs/kms-rotation.md" in ready[0].message

    same = _run(cloud, stack, action="copy_aurora_snapshot", kms_key=wandb.kms_alias, dry_run=False)
    assert same.status == "FAILED"
    assert "the cluster is already encrypted with" in inbox.received()[0].message
