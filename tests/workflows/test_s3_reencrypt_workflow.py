"""The re-encryption of the W&B bucket end to end: the S3 sync's definition deployed a second
time, its Distributed Map copying every object onto itself, against the emulator's S3 and KMS."""

import hashlib
import secrets
import threading
import time
import urllib.parse
from datetime import UTC, datetime
from typing import Any

import boto3

from tests.conftest import AwsHook
from tests.rig.local_cloud import Execution, LocalCloud
from tests.rig.stack import DeployedStack
from tests.rig.wandb_deployment import SimulatedWandb
from tests.workflows.notifications import TopicInbox

MACHINE = "S3ReencryptStateMachine"
FUNCTION = "S3ReencryptFunction"


def _run(cloud: LocalCloud, stack: DeployedStack, **workflow_input: Any) -> Execution:
    return cloud.run(stack.state_machine_arns[MACHINE], {"source": "test", **workflow_input}, timeout_s=300)


def _state(bucket: str) -> dict[str, dict[str, Any]]:
    """Key -> what re-encryption must keep (body, metadata, tags) and what it changes (key, ETag)."""
    s3 = boto3.client("s3")
    found = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for item in page.get("Contents", []):
            got = s3.get_object(Bucket=bucket, Key=item["Key"])
            found[item["Key"]] = {
                "sha256": hashlib.sha256(got["Body"].read()).hexdigest(),
                "metadata": got.get("Metadata", {}),
                "content_type": got.get("ContentType"),
                "tags": s3.get_object_tagging(Bucket=bucket, Key=item["Key"])["TagSet"],
                "kms_key": got.get("SSEKMSKeyId"),
                "etag": got["ETag"],
            }
    return found


def _kept(state: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {key: {k: v for k, v in found.items() if k not in ("kms_key", "etag")} for key, found in state.items()}


def _drain(queue_name: str) -> int:
    sqs = boto3.client("sqs")
    url = sqs.get_queue_url(QueueName=queue_name)["QueueUrl"]
    received = 0
    while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
        received += len(messages)
        for message in messages:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return received


def test_dry_run_then_every_object_is_copied_in_place_under_a_new_key(cloud: LocalCloud, wandb: SimulatedWandb) -> None:
    s3, kms = boto3.client("s3"), boto3.client("kms")
    bucket = wandb.bucket_name
    s3.put_object(
        Bucket=bucket,
        Key="wandb/wandb/artifacts/model.bin",
        Body=b"weights",
        Metadata={"wandb-digest": "abc"},
        ContentType="application/octet-stream",
        Tagging="kind=artifact",
    )
    new_key = kms.create_key(Description="W&B key, second generation")["KeyMetadata"]["Arn"]
    stack = cloud.deploy({**wandb.stack_parameters(), "KmsRotationKeyArns": new_key, "S3SyncBatchObjects": "7"})
    before = _state(bucket)
    _drain(f"{wandb.namespace}-file-storage")

    dry = _run(cloud, stack)  # dry run by default
    assert dry.status == "SUCCEEDED", dry.cause
    assert dry.output["to_copy"]["outdated"] == len(before) == 26 and dry.output["copied"]["objects"] == 0
    assert _state(bucket) == before

    wrong = _run(cloud, stack, dry_run=False, kms_key=new_key)
    assert wrong.status == "FAILED"
    assert _state(bucket) == before  # refused: the new key is not the bucket's default yet

    s3.put_bucket_encryption(
        Bucket=bucket,
        ServerSideEncryptionConfiguration={
            "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": new_key}}]
        },
    )
    real = _run(cloud, stack, dry_run=False, kms_key=new_key)
    assert real.status == "SUCCEEDED", real.cause
    summary = real.output
    assert summary["status"] == "ok" and summary["copied"]["objects"] == 26 and summary["batches"] == 4
    assert summary["verify"]["checked"] > 0 and summary["verify"]["mismatched_count"] == 0
    after = _state(bucket)
    assert {found["kms_key"] for found in after.values()} == {new_key}
    assert _kept(after) == _kept(before)  # bodies, metadata, content type and tags unchanged
    assert _drain(f"{wandb.namespace}-file-storage") == 26  # W&B's queue sees every copy as a new object

    resumed = _run(cloud, stack, **summary["resume_input"])
    assert resumed.status == "SUCCEEDED", resumed.cause
    assert resumed.output["copied"]["objects"] == 0 and resumed.output["skipped"]["in_sync"] == 26
    assert _state(bucket) == after


def test_a_run_cut_short_resumes_from_its_modified_before(cloud: LocalCloud, wandb: SimulatedWandb) -> None:
    """Objects already copied (or written by W&B) since the cutoff are not copied again."""
    stack = cloud.deploy(wandb.stack_parameters())
    bucket = wandb.bucket_name
    time.sleep(1)  # S3 lists LastModified to the second: the seeded objects must be a second older
    cutoff = datetime.now(UTC).replace(microsecond=0)
    keys = sorted(_state(bucket))
    for key in keys[:10]:  # as if a first run had copied these before it stopped
        boto3.client("s3").copy_object(
            Bucket=bucket,
            Key=key,
            CopySource={"Bucket": bucket, "Key": key},
            ServerSideEncryption="aws:kms",
            SSEKMSKeyId=wandb.kms_key_arn,
        )
    resumed = _run(cloud, stack, dry_run=False, modified_before=cutoff.isoformat())
    assert resumed.status == "SUCCEEDED", resumed.cause
    assert resumed.output["copied"]["objects"] == len(keys) - 10
    assert resumed.output["skipped"]["in_sync"] == 10
    assert resumed.output["modified_before"] == cutoff.isoformat()


def test_bad_input_is_refused_and_changes_nothing(cloud: LocalCloud, wandb: SimulatedWandb) -> None:
    stack = cloud.deploy(wandb.stack_parameters())
    inbox = TopicInbox(stack.outputs["NotificationsTopicArn"])
    before = _state(wandb.bucket_name)
    cases: list[tuple[dict[str, Any], str]] = [
        ({"dry_run": False, "modified_before": "2999-01-01T00:00:00+00:00"}, "is in the future"),
        ({"dry_run": False, "mode": "mirror"}, "field 'input.mode'"),
        ({"dry_run": False, "kms_key": "not a key"}, "field 'input.kms_key'"),
    ]
    for workflow_input, expected in cases:
        execution = _run(cloud, stack, **workflow_input)
        assert execution.status == "FAILED", workflow_input
        [notification] = inbox.received()
        assert expected in notification.message, notification.message
        assert notification.subject == "wandb-ops: S3 re-encryption failed"
    assert _state(wandb.bucket_name) == before
    assert [i.event["action"] for i in cloud.runtime.invocations_of(FUNCTION)] == ["prepare"] * 3


def test_a_wandb_write_during_the_copy_is_never_overwritten(
    cloud: LocalCloud, wandb: SimulatedWandb, aws_hook: AwsHook
) -> None:
    """The copy's write is conditional on the object still being the version it read: W&B's
    write in between makes it fail (412), and the new version is then re-encrypted in its turn."""
    mib = 1024 * 1024
    stack = cloud.deploy(wandb.stack_parameters())
    stack.set_function_environment(FUNCTION, S3_SYNC_MULTIPART_THRESHOLD=str(8 * mib), S3_SYNC_PART_SIZE=str(5 * mib))
    s3, key = boto3.client("s3"), "wandb/wandb/artifacts/checkpoint.pt"
    s3.put_object(Bucket=wandb.bucket_name, Key=key, Body=secrets.token_bytes(11 * mib))
    written_by_wandb = secrets.token_bytes(11 * mib)
    wrote = threading.Event()

    def wandb_writes_before_completion(params: dict[str, Any], **_: Any) -> None:
        if urllib.parse.unquote(params["url_path"]).startswith(f"/{key}") and not wrote.is_set():
            wrote.set()
            s3.put_object(Bucket=wandb.bucket_name, Key=key, Body=written_by_wandb)

    aws_hook("s3", "CompleteMultipartUpload", wandb_writes_before_completion)
    execution = _run(cloud, stack, dry_run=False)
    assert execution.status == "SUCCEEDED", execution.cause
    assert wrote.is_set() and execution.output["changed_during_copy"] == 1
    assert s3.get_object(Bucket=wandb.bucket_name, Key=key)["Body"].read() == written_by_wandb
    assert s3.list_multipart_uploads(Bucket=wandb.bucket_name).get("Uploads", []) == []


def test_storage_classes_are_kept_and_archived_objects_are_reported_not_copied(
    cloud: LocalCloud, wandb: SimulatedWandb
) -> None:
    s3 = boto3.client("s3")
    s3.put_object(Bucket=wandb.bucket_name, Key="wandb/old/run.log", Body=b"cold", StorageClass="STANDARD_IA")
    s3.put_object(Bucket=wandb.bucket_name, Key="wandb/archive/run.log", Body=b"frozen", StorageClass="GLACIER")
    stack = cloud.deploy(wandb.stack_parameters())
    inbox = TopicInbox(stack.outputs["NotificationsTopicArn"])
    before = s3.head_object(Bucket=wandb.bucket_name, Key="wandb/archive/run.log")["ETag"]

    execution = _run(cloud, stack, dry_run=False)
    assert execution.status == "FAILED"  # incomplete: an archived object needs a restore first
    [notification] = inbox.received()
    assert notification.subject == "wandb-ops: S3 re-encryption incomplete"
    kept = s3.head_object(Bucket=wandb.bucket_name, Key="wandb/old/run.log")
    assert kept["StorageClass"] == "STANDARD_IA" and kept["SSEKMSKeyId"] == wandb.kms_key_arn
    assert s3.head_object(Bucket=wandb.bucket_name, Key="wandb/archive/run.log")["ETag"] == before
    [summary] = [i.result for i in cloud.runtime.invocations_of(FUNCTION) if i.event.get("action") == "summary"]
    assert summary["archived"] == {"objects": 1, "keys": ["wandb/archive/run.log"]}
    assert summary["copied"]["objects"] == 26
