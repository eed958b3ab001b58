"""Two stacks in one account keep their measurements apart, and deleting a stack (`sam delete`)
keeps every backup it made with the key that encrypts them."""

from datetime import UTC, datetime, timedelta
from typing import Any

import boto3

from tests.rig.lambda_runtime import Invocation
from tests.rig.local_cloud import LocalCloud
from tests.rig.stack import RESOLVED_BUCKET_POLICIES, DeployedStack
from tests.rig.terraform import Terraform, TerraformProject
from tests.rig.wandb_deployment import SimulatedWandb


def _run(cloud: LocalCloud, stack: DeployedStack, machine: str, workflow_input: dict[str, Any]) -> None:
    execution = cloud.run(stack.state_machine_arns[machine], {"source": "test", **workflow_input})
    assert execution.status == "SUCCEEDED", execution.cause


def _alarm_datapoints(stack: DeployedStack, alarm_suffix: str) -> tuple[set[str], list[dict[str, Any]]]:
    """The dimension names the deployed alarm reads, and the datapoints of the last hour it sees."""
    cloudwatch = boto3.client("cloudwatch")
    [alarm] = cloudwatch.describe_alarms(AlarmNames=[f"{stack.name}-{alarm_suffix}"])["MetricAlarms"]
    now = datetime.now(UTC)
    datapoints: list[dict[str, Any]] = cloudwatch.get_metric_statistics(
        Namespace=alarm["Namespace"],
        MetricName=alarm["MetricName"],
        Dimensions=alarm["Dimensions"],
        StartTime=now - timedelta(hours=1),
        EndTime=now + timedelta(minutes=1),
        Period=alarm["Period"],
        Statistics=[alarm["Statistic"]],
    )["Datapoints"]
    return {dimension["Name"] for dimension in alarm["Dimensions"]}, datapoints


def test_a_fresh_stack_does_not_hide_a_stale_one(cloud: LocalCloud, wandb: SimulatedWandb) -> None:
    """Two stacks in one account: only "fresh" has synced its replica. Each stack's posture
    report publishes under its own name, and "stale"'s replica-lag alarm sees no fresh
    measurement (so it goes off), where one alarm per account would have read "fresh"'s."""
    stale = cloud.deploy(wandb.stack_parameters(), stack_name="stale")
    fresh = cloud.deploy(wandb.stack_parameters(), stack_name="fresh")
    _run(cloud, fresh, "S3SyncStateMachine", {"mode": "sync"})
    for stack in (stale, fresh):
        _run(cloud, stack, "PostureStateMachine", {})

    for stack in (stale, fresh):
        [posture] = _posture_runs(cloud, stack)
        [published] = posture.metrics
        assert (published["service"], published["stack"]) == ("wandb-ops", stack.name)
        [directive] = published["_aws"]["CloudWatchMetrics"]
        # moto matches a query's dimensions as a subset; CloudWatch wants the alarm's exact set.
        dimension_names, _ = _alarm_datapoints(stack, "replica-lag")
        assert [set(names) for names in directive["Dimensions"]] == [dimension_names]
    assert "ReplicaLagHours" not in _published_by(cloud, stale) and "ReplicaLagHours" in _published_by(cloud, fresh)

    _, stale_lag = _alarm_datapoints(stale, "replica-lag")
    _, fresh_lag = _alarm_datapoints(fresh, "replica-lag")
    assert stale_lag == []  # missing data: the alarm treats it as breaching
    [fresh_point] = fresh_lag
    assert fresh_point["Minimum"] < 1
    _, stale_failures = _alarm_datapoints(stale, "posture-failures")
    _, fresh_failures = _alarm_datapoints(fresh, "posture-failures")
    # "stale" fails one more item (the replica was never synced): each alarm reads its own report.
    assert stale_failures[0]["Maximum"] == fresh_failures[0]["Maximum"] + 1


def _posture_runs(cloud: LocalCloud, stack: DeployedStack) -> list[Invocation]:
    function = stack.function_name("PostureFunction")
    return [i for i in cloud.runtime.invocations_of("PostureFunction") if i.function_name == function]


def _published_by(cloud: LocalCloud, stack: DeployedStack) -> set[str]:
    return {
        metric["Name"]
        for invocation in _posture_runs(cloud, stack)
        for document in invocation.metrics
        for directive in document["_aws"]["CloudWatchMetrics"]
        for metric in directive["Metrics"]
    }


def test_deleting_the_stack_keeps_the_backups_and_the_key_that_encrypts_them(
    cloud: LocalCloud, stack: DeployedStack, wandb: SimulatedWandb, terraform: Terraform
) -> None:
    project = TerraformProject(terraform=terraform)
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
