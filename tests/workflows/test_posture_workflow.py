"""The posture state machine, end to end, from its real definition, against the emulator."""

import json

import boto3

from tests.rig.local_cloud import LocalCloud
from tests.rig.stack import DeployedStack
from tests.rig.terraform import DEFAULT_PASSWORD as STATE_PASSWORD
from tests.rig.terraform import Terraform, TerraformProject
from tests.rig.wandb_deployment import SimulatedWandb
from tests.workflows.notifications import TopicInbox


def test_findings_are_returned_and_published(cloud: LocalCloud, stack: DeployedStack, wandb: SimulatedWandb) -> None:
    inbox = TopicInbox(stack.outputs["NotificationsTopicArn"])
    execution = cloud.run(stack.state_machine_arns["PostureStateMachine"], {"source": "console"})
    assert execution.status == "SUCCEEDED", execution.cause
    assert execution.states_entered() == ["Assess", "AnyFindings", "PublishFindings", "Done"]
    report = execution.output
    assert report["summary"] == {"ok": 7, "warn": 7, "fail": 2}
    statuses = {item["id"]: item["status"] for item in report["items"]}
    # Nothing has run yet on a new stack: no sync, no state backup, no rotation, no DR region.
    assert statuses["s3.replica"] == "fail"
    assert statuses["tfstate.backup"] == statuses["credentials.last_rotation"] == statuses["aurora.dr_copy"] == "warn"
    [notification] = inbox.received()
    assert notification.subject == "wandb-ops posture: 2 fail, 7 warn, 7 ok"
    assert notification.message.splitlines()[0] == f"W&B deployment '{wandb.namespace}': 2 fail, 7 warn, 7 ok"
    assert f"[FAIL] kms.rotation:{wandb.kms_key_arn.rsplit('/', 1)[1]}" in notification.message
    assert notification.message.endswith(f"Full report: {report['location']}")
    bucket, key = report["location"].removeprefix("s3://").split("/", 1)
    stored = json.loads(boto3.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read())
    assert stored["summary"] == report["summary"] and stored["items"] == report["items"]
    latest = json.loads(boto3.client("s3").get_object(Bucket=bucket, Key="posture/latest.json")["Body"].read())
    assert latest == stored


def test_the_other_workflows_runs_turn_their_items_ok(
    cloud: LocalCloud, stack: DeployedStack, wandb: SimulatedWandb, terraform: Terraform
) -> None:
    # A real terraform state, holding the database password as W&B's does, uploaded for backup.
    project = TerraformProject(terraform=terraform)
    project.apply(revision=1)
    state_bucket = stack.outputs["TfStateBackupBucketName"]
    boto3.client("s3").put_object(Bucket=state_bucket, Key="intake/wandb/terraform.tfstate", Body=project.local_state())
    project.close()
    for machine, workflow_input in (
        ("S3SyncStateMachine", {"mode": "sync"}),
        ("TfStateBackupStateMachine", {"sweep": True}),
    ):
        ran = cloud.run(stack.state_machine_arns[machine], {"source": "test", **workflow_input})
        assert ran.status == "SUCCEEDED", ran.cause
    boto3.client("s3").put_object(Bucket=wandb.bucket_name, Key="wandb/new-after-the-sync.txt", Body=b"new")
    verify = cloud.run(stack.state_machine_arns["S3SyncStateMachine"], {"source": "test", "mode": "verify"})
    assert verify.status == "SUCCEEDED", verify.cause
    execution = cloud.run(stack.state_machine_arns["PostureStateMachine"], {"source": "test"})
    assert execution.status == "SUCCEEDED", execution.cause
    items = {item["id"]: item for item in execution.output["items"]}
    assert items["tfstate.backup"]["status"] == "ok", items["tfstate.backup"]
    assert "1 stored" in items["tfstate.backup"]["evidence"]
    assert items["tfstate.backup"]["metrics"]["TfStateBackupAgeHours"] < 1
    replica = items["s3.replica"]
    # Synced minutes ago, but the verify run since found the new object missing from the replica.
    assert replica["status"] == "warn" and "found 1 objects differing" in replica["evidence"], replica
    assert replica["metrics"]["ReplicaLagHours"] < 1 and replica["metrics"]["ReplicaDrift"] == 1
    # The report read the backup runs of a state that holds a password: none of it is in the report.
    [posture] = cloud.runtime.invocations_of("PostureFunction")
    for text in (json.dumps(execution.history, default=str), json.dumps(posture.result), *posture.log_lines):
        assert STATE_PASSWORD not in text


def test_invalid_input_fails_the_run_and_notifies_the_reason(cloud: LocalCloud, stack: DeployedStack) -> None:
    inbox = TopicInbox(stack.outputs["NotificationsTopicArn"])
    execution = cloud.run(stack.state_machine_arns["PostureStateMachine"], {"source": "console", "force": True})
    assert execution.status == "FAILED"
    assert execution.error == "PostureReportFailed"
    assert execution.states_entered() == ["Assess", "NotifyFailure", "Failed"]
    [notification] = inbox.received()
    assert notification.subject == "wandb-ops posture report failed"
    assert "InvalidInputError" in notification.message and "field 'input.force'" in notification.message


def test_the_failure_rule_matches_failed_executions_of_the_stack(stack: DeployedStack) -> None:
    """moto neither emits Step Functions status events nor delivers rule targets to SNS: send
    the events AWS would send, through the deployed rule, with its SNS target swapped for an SQS
    queue carrying the same input transformer (SNS delivery itself is checked against the AWS docs)."""
    events, sqs = boto3.client("events"), boto3.client("sqs")
    rule_name = stack.physical_ids["WorkflowFailedRule"].split("|")[0]
    [target] = events.list_targets_by_rule(Rule=rule_name)["Targets"]
    assert target["Arn"] == stack.outputs["NotificationsTopicArn"]
    queue_url = sqs.create_queue(QueueName="rule-probe")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.remove_targets(Rule=rule_name, Ids=[target["Id"]])
    events.put_targets(Rule=rule_name, Targets=[{**target, "Arn": queue_arn}])

    machine = stack.state_machine_arns["PostureStateMachine"]
    execution_arn = machine.replace(":stateMachine:", ":execution:") + ":run-1"

    def status_change(status: str, state_machine_arn: str = machine) -> dict[str, str]:
        detail = {"status": status, "stateMachineArn": state_machine_arn, "executionArn": execution_arn}
        return {
            "Source": "aws.states",
            "DetailType": "Step Functions Execution Status Change",
            "Detail": json.dumps(detail),
        }

    foreign_machine = machine.replace("wandb-ops-posture", "someone-elses-machine")
    events.put_events(Entries=[status_change("SUCCEEDED"), status_change("FAILED", foreign_machine)])
    assert "Messages" not in sqs.receive_message(QueueUrl=queue_url)
    for status in ("FAILED", "TIMED_OUT", "ABORTED"):
        events.put_events(Entries=[status_change(status)])
        [message] = sqs.receive_message(QueueUrl=queue_url)["Messages"]
        sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
        assert f"ended {status}" in message["Body"] and execution_arn in message["Body"]
