"""Deleting a stack (`sam delete`) keeps every backup it made with the key that encrypts them."""

from typing import Any

import boto3

from tests.rig.local_cloud import LocalCloud
from tests.rig.stack import RESOLVED_BUCKET_POLICIES, DeployedStack
from tests.rig.terraform import TerraformProject
from tests.rig.wandb_deployment import SimulatedWandb


def _run(cloud: LocalCloud, stack: DeployedStack, machine: str, workflow_input: dict[str, Any]) -> None:
    execution = cloud.run(stack.state_machine_arns[machine], {"source": "test", **workflow_input})
    assert execution.status == "SUCCEEDED", execution.cause


def test_deleting_the_stack_keeps_the_backups_and_the_key_that_encrypts_them(
    cloud: LocalCloud, stack: DeployedStack, wandb: SimulatedWandb
) -> None:
    project = TerraformProject()
    project.apply(revision=1)
    state_bucket = stack.outputs["TfStateBackupBucketName"]
    s3 = boto3.client("s3")
    s3.put_object(Bucket=state_bucket, Key="intake/wandb/terraform.tfstate", Body=project.local_state())
    project.close()
    _run(cloud, stack, "TfStateBackupStateMachine", {"sweep": True})
    _run(cloud, stack, "S3SyncStateMachine", {"mode": "sync"})
    _run(cloud, stack, "PostureStateMachine", {})
    key_arn = boto3.client("kms").describe_key(KeyId=stack.physical_ids["StackKey"])["KeyMetadata"]["Arn"]
    buckets = {
        "state backups": state_bucket,
        "replica": stack.outputs["S3ReplicaBucketName"],
        "posture reports": stack.physical_ids["S3SyncWorkBucket"],
    }
    before = {what: _objects(bucket) for what, bucket in buckets.items()}
    assert all(before.values()), before
    state_policy = RESOLVED_BUCKET_POLICIES[state_bucket]

    cloudformation = boto3.client("cloudformation")
    cloudformation.delete_stack(StackName=stack.name)
    [deleted] = [s for s in cloudformation.list_stacks()["StackSummaries"] if s["StackName"] == stack.name]
    assert deleted["StackStatus"] == "DELETE_COMPLETE"

    assert boto3.client("kms").describe_key(KeyId=key_arn)["KeyMetadata"]["KeyState"] == "Enabled"
    for what, bucket in buckets.items():
        assert _objects(bucket) == before[what], f"the {what} changed"
        [rule] = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
        assert rule["ApplyServerSideEncryptionByDefault"]["KMSMasterKeyID"] == key_arn
    [backup] = [key for key in before["state backups"] if not key.startswith("intake/")]
    assert s3.head_object(Bucket=state_bucket, Key=backup)["SSEKMSKeyId"] == key_arn
    assert s3.get_object_lock_configuration(Bucket=state_bucket)["ObjectLockConfiguration"]["Rule"]
    assert RESOLVED_BUCKET_POLICIES[state_bucket] == state_policy  # only named readers, still

    # The alias was not kept: a new stack of the same name deploys, with a key of its own.
    again = cloud.deploy(wandb.stack_parameters(), stack_name=stack.name)
    assert again.physical_ids["StackKey"] != stack.physical_ids["StackKey"]


def _objects(bucket: str) -> set[str]:
    pages = boto3.client("s3").get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return {item["Key"] for page in pages for item in page.get("Contents", [])}
