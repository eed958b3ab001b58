"""The S3 replica sync end to end: the real definition in the interpreter (its Distributed
Map included), the real handler for every task, the emulator's S3 and KMS."""

import hashlib
import json
import secrets
import threading
import urllib.parse
from collections.abc import Callable
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from botocore.config import Config

from tests.conftest import AwsHook
from tests.rig.lambda_runtime import SimulatedCrash
from tests.rig.local_cloud import Execution, LocalCloud
from tests.rig.s3 import move_to_archive_tier
from tests.rig.stack import DeployedStack
from tests.rig.wandb_deployment import SimulatedWandb, seed_wandb
from tests.workflows.notifications import TopicInbox

MACHINE = "S3SyncStateMachine"
FUNCTION = "S3SyncFunction"


def _deploy(cloud: LocalCloud, wandb: SimulatedWandb, **parameters: str) -> DeployedStack:
    return cloud.deploy({**wandb.stack_parameters(), **parameters})


@pytest.fixture
def sync_stack(cloud: LocalCloud, wandb: SimulatedWandb) -> DeployedStack:
    return _deploy(cloud, wandb)


def _run(cloud: LocalCloud, stack: DeployedStack, **workflow_input: Any) -> Execution:
    return cloud.run(stack.state_machine_arns[MACHINE], {"source": "test", **workflow_input}, timeout_s=300)


def _objects(bucket: str, unreadable: frozenset[str] = frozenset()) -> dict[str, dict[str, Any]]:
    """Key -> size and sha256 of the body of every current object (but the ``unreadable`` ones)."""
    s3 = boto3.client("s3")
    found = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for item in page.get("Contents", []):
            if item["Key"] in unreadable:
                continue
            body = s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
            found[item["Key"]] = {"size": item["Size"], "sha256": hashlib.sha256(body).hexdigest()}
    return found


def _replica(stack: DeployedStack) -> str:
    return stack.outputs["S3ReplicaBucketName"]


def _copies(cloud: LocalCloud) -> list[dict[str, Any]]:
    return [i.result for i in cloud.runtime.invocations_of(FUNCTION) if i.event.get("action") == "copy"]


def test_first_sync_copies_everything_and_a_second_run_copies_nothing(
    cloud: LocalCloud, wandb: SimulatedWandb, sync_stack: DeployedStack
) -> None:
    first = _run(cloud, sync_stack)
    assert first.status == "SUCCEEDED", first.cause
    assert _objects(_replica(sync_stack)) == _objects(wandb.bucket_name)
    summary = first.output
    assert summary["status"] == "ok"
    assert summary["compared"]["objects"] == summary["copied"]["objects"] == wandb.object_count
    assert summary["to_copy"]["new"] == wandb.object_count and summary["failed"]["objects"] == 0
    assert summary["verify"]["checked"] > 0 and summary["verify"]["mismatched_count"] == 0

    cloud.runtime.invocations.clear()
    second = _run(cloud, sync_stack)
    assert second.status == "SUCCEEDED", second.cause
    assert second.output["copied"]["objects"] == 0 and second.output["to_copy"]["objects"] == 0
    assert second.output["skipped"]["in_sync"] == wandb.object_count
    assert _copies(cloud) == [] and "CopyBatches" not in second.states_entered()


def _put(bucket: str, key: str, body: bytes = b"", **extra: Any) -> None:
    boto3.client("s3").put_object(Bucket=bucket, Key=key, Body=body, **extra)


def _current_keys(bucket: str) -> set[str]:
    pages = boto3.client("s3").get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return {item["Key"] for page in pages for item in page.get("Contents", [])}


def test_changed_new_and_deleted_objects_sync_keeps_deletes_mirror_removes_them(
    cloud: LocalCloud, wandb: SimulatedWandb, sync_stack: DeployedStack
) -> None:
    assert _run(cloud, sync_stack).status == "SUCCEEDED"
    source, replica = wandb.bucket_name, _replica(sync_stack)
    existing = sorted(_current_keys(source))
    _put(source, existing[0], b"rewritten with other bytes")
    _put(source, "wandb/wandb/runs/run-999/files/new.log", b"new")
    boto3.client("s3").delete_object(Bucket=source, Key=existing[1])

    synced = _run(cloud, sync_stack)
    assert synced.status == "SUCCEEDED", synced.cause
    assert synced.output["to_copy"] | {"bytes": 0} == {"objects": 2, "bytes": 0, "new": 1, "changed": 1}
    assert synced.output["replica_only"]["keys"] == [existing[1]] and synced.output["deleted"]["objects"] == 0
    mirrored_except_delete = _objects(source) | {existing[1]: _objects(replica)[existing[1]]}
    assert _objects(replica) == mirrored_except_delete  # the deleted object stays recoverable

    dry = _run(cloud, sync_stack, mode="mirror", dry_run=True)
    assert dry.status == "SUCCEEDED", dry.cause
    assert dry.output["deleted"] == {"objects": 0, "planned": 1} and existing[1] in _current_keys(replica)

    mirror = _run(cloud, sync_stack, mode="mirror")
    assert mirror.status == "SUCCEEDED", mirror.cause
    assert mirror.output["deleted"] == {"objects": 1, "planned": 1}
    assert _objects(replica) == _objects(source)
    versions = boto3.client("s3").list_object_versions(Bucket=replica, Prefix=existing[1])
    assert [v["Key"] for v in versions["Versions"]] == [existing[1]]  # the copy is still there, behind a marker
    assert [m["Key"] for m in versions["DeleteMarkers"]] == [existing[1]]


def test_mirror_refuses_an_unversioned_replica_and_changes_nothing(cloud: LocalCloud, wandb: SimulatedWandb) -> None:
    boto3.client("s3").create_bucket(Bucket="unversioned-replica")
    _put("unversioned-replica", "only-in-replica.txt", b"keep me")
    stack = _deploy(cloud, wandb, S3ReplicaBucketName="unversioned-replica")
    inbox = TopicInbox(stack.outputs["NotificationsTopicArn"])

    refused = _run(cloud, stack, mode="mirror")
    assert refused.status == "FAILED"
    [notification] = inbox.received()
    assert "enable versioning on it" in notification.message and "SyncRefusedError" in notification.message
    assert _current_keys("unversioned-replica") == {"only-in-replica.txt"}
    assert [i.event["action"] for i in cloud.runtime.invocations_of(FUNCTION)] == ["prepare"]

    dry = _run(cloud, stack, mode="mirror", dry_run=True)
    assert dry.status == "SUCCEEDED", dry.cause
    assert dry.output["replica_only"]["keys"] == ["only-in-replica.txt"] and dry.output["deleted"]["planned"] == 1
    assert _current_keys("unversioned-replica") == {"only-in-replica.txt"}


AWKWARD_KEYS = [
    "wandb/with space/file name.txt",
    "wandb/unicode/ünïcødé-数据-😀.json",
    "wandb/plus+sign/a+b=c.bin",
    "wandb/percent/100%25 done %2F not a slash.txt",
    "wandb/" + "/".join(f"level{i}" for i in range(40)) + "/deep.txt",
    "wandb/long/" + "x" * (1024 - len("wandb/long/") - 4) + ".txt",
    "wandb/zero/empty-object",
]


def test_awkward_keys_zero_bytes_metadata_and_tags_arrive_intact(
    cloud: LocalCloud, wandb: SimulatedWandb, sync_stack: DeployedStack
) -> None:
    for index, key in enumerate(AWKWARD_KEYS):
        _put(wandb.bucket_name, key, b"" if "zero" in key else secrets.token_bytes(100 + index))
    _put(
        wandb.bucket_name,
        "wandb/artifacts/model.safetensors",
        b"weights",
        Metadata={"wandb-artifact": "model:v3", "sha": "abc123"},
        ContentType="application/octet-stream",
        ContentEncoding="identity",
        ContentDisposition='attachment; filename="model.safetensors"',
        CacheControl="max-age=60",
        ContentLanguage="en",
        Tagging="team=research&retain=yes",
    )
    execution = _run(cloud, sync_stack)
    assert execution.status == "SUCCEEDED", execution.cause
    replica = _replica(sync_stack)
    assert _objects(replica) == _objects(wandb.bucket_name)
    s3 = boto3.client("s3")
    head = s3.head_object(Bucket=replica, Key="wandb/artifacts/model.safetensors")
    assert head["Metadata"] == {"wandb-artifact": "model:v3", "sha": "abc123"}
    assert (head["ContentType"], head["ContentEncoding"], head["CacheControl"], head["ContentLanguage"]) == (
        "application/octet-stream",
        "identity",
        "max-age=60",
        "en",
    )
    assert head["ContentDisposition"] == 'attachment; filename="model.safetensors"'
    tags = s3.get_object_tagging(Bucket=replica, Key="wandb/artifacts/model.safetensors")["TagSet"]
    assert sorted((t["Key"], t["Value"]) for t in tags) == [("retain", "yes"), ("team", "research")]
    assert _run(cloud, sync_stack).output["to_copy"]["objects"] == 0


def test_copies_are_encrypted_with_the_replica_key(cloud: LocalCloud, wandb: SimulatedWandb) -> None:
    replica_key = boto3.client("kms").create_key(Description="replica key")["KeyMetadata"]["Arn"]
    stack = _deploy(cloud, wandb, S3ReplicaKmsKeyArn=replica_key)
    execution = _run(cloud, stack)
    assert execution.status == "SUCCEEDED", execution.cause
    s3 = boto3.client("s3")
    for key in _current_keys(_replica(stack)):
        head = s3.head_object(Bucket=_replica(stack), Key=key)
        assert (head["ServerSideEncryption"], head["SSEKMSKeyId"]) == ("aws:kms", replica_key)
    assert _objects(_replica(stack)) == _objects(wandb.bucket_name)


def test_large_objects_take_the_multipart_copy_path(
    cloud: LocalCloud, wandb: SimulatedWandb, sync_stack: DeployedStack
) -> None:
    mib = 1024 * 1024
    sync_stack.set_function_environment(
        FUNCTION, S3_SYNC_MULTIPART_THRESHOLD=str(8 * mib), S3_SYNC_PART_SIZE=str(5 * mib)
    )
    _put(
        wandb.bucket_name,
        "wandb/artifacts/big checkpoint.pt",
        secrets.token_bytes(12 * mib + 17),
        Metadata={"step": "1000"},
        ContentType="application/x-pytorch",
        Tagging="kind=checkpoint",
    )
    execution = _run(cloud, sync_stack)
    assert execution.status == "SUCCEEDED", execution.cause
    replica = _replica(sync_stack)
    assert _objects(replica) == _objects(wandb.bucket_name)
    head = boto3.client("s3").head_object(Bucket=replica, Key="wandb/artifacts/big checkpoint.pt")
    assert head["ETag"].endswith('-3"')  # three parts: 5 MiB, 5 MiB, the rest
    assert (head["Metadata"], head["ContentType"]) == ({"step": "1000"}, "application/x-pytorch")
    tags = boto3.client("s3").get_object_tagging(Bucket=replica, Key="wandb/artifacts/big checkpoint.pt")["TagSet"]
    assert tags == [{"Key": "kind", "Value": "checkpoint"}]
    assert boto3.client("s3").list_multipart_uploads(Bucket=replica).get("Uploads", []) == []


@pytest.fixture
def s3_hook(aws_hook: AwsHook) -> Callable[[str, Callable[..., Any]], None]:
    return lambda operation, hook: aws_hook("s3", operation, hook)


def _is_request_for(request: dict[str, Any], key: str) -> bool:
    """before-call hooks see the serialized request: its URL path is "/<key>" (the bucket comes later)."""
    return urllib.parse.unquote(request["url_path"]).endswith("/" + key)


def _error_response(status: int, code: str) -> tuple[AWSResponse, dict[str, Any]]:
    parsed = {"Error": {"Code": code, "Message": code}, "ResponseMetadata": {"HTTPStatusCode": status}}
    return AWSResponse("https://s3.amazonaws.com", status, {}, None), parsed


def test_an_object_changed_between_plan_and_copy_is_copied_in_its_new_version(
    cloud: LocalCloud,
    wandb: SimulatedWandb,
    sync_stack: DeployedStack,
    s3_hook: Callable[[str, Callable[..., Any]], None],
) -> None:
    [target, *_] = sorted(_current_keys(wandb.bucket_name))
    rewritten = threading.Event()

    def rewrite_before_its_copy(params: dict[str, Any], **_: Any) -> None:
        if _is_request_for(params, target) and not rewritten.is_set():
            rewritten.set()
            _put(wandb.bucket_name, target, b"written while the sync ran")

    s3_hook("CopyObject", rewrite_before_its_copy)
    execution = _run(cloud, sync_stack)
    assert execution.status == "SUCCEEDED", execution.cause
    assert execution.output["changed_during_copy"] == 1
    body = boto3.client("s3").get_object(Bucket=_replica(sync_stack), Key=target)["Body"].read()
    assert body == b"written while the sync ran"
    assert _objects(_replica(sync_stack)) == _objects(wandb.bucket_name)


def test_throttling_and_a_crash_mid_batch_converge_on_retry(
    cloud: LocalCloud,
    wandb: SimulatedWandb,
    sync_stack: DeployedStack,
    s3_hook: Callable[[str, Callable[..., Any]], None],
) -> None:
    sync_stack.set_function_environment(FUNCTION, S3_SYNC_COPY_CONCURRENCY="1")
    calls = {"n": 0}
    lock = threading.Lock()

    def throttle_then_crash(**_: Any) -> Any:
        with lock:
            calls["n"] += 1
            n = calls["n"]
        if n in (3, 4):
            return _error_response(503, "SlowDown")  # still throttled after the SDK's retries
        if n == wandb.object_count + 10:
            raise SimulatedCrash  # the runtime dies halfway through the retried batch
        return None

    s3_hook("CopyObject", throttle_then_crash)
    execution = _run(cloud, sync_stack)
    assert execution.status == "SUCCEEDED", execution.cause
    attempts = [i for i in cloud.runtime.invocations_of(FUNCTION) if i.event["action"] == "copy"]
    assert [i.error_type for i in attempts] == ["AwsThrottledError", "Runtime.ExitError", None]
    assert execution.output["copied"]["objects"] == wandb.object_count
    assert execution.output["failed"]["objects"] == 0
    assert _objects(_replica(sync_stack)) == _objects(wandb.bucket_name)


def test_failed_objects_are_listed_and_fail_the_run_beyond_the_tolerance(
    cloud: LocalCloud,
    wandb: SimulatedWandb,
    s3_hook: Callable[[str, Callable[..., Any]], None],
) -> None:
    [denied, *_] = sorted(_current_keys(wandb.bucket_name))
    _put(wandb.bucket_name, "wandb/cold/archived.log", b"archived", StorageClass="DEEP_ARCHIVE")

    def deny_one(params: dict[str, Any], **_: Any) -> Any:
        return _error_response(403, "AccessDenied") if _is_request_for(params, denied) else None

    s3_hook("CopyObject", deny_one)
    stack = _deploy(cloud, wandb)
    inbox = TopicInbox(stack.outputs["NotificationsTopicArn"])
    failed = _run(cloud, stack)
    assert failed.status == "FAILED" and "NotifyIncomplete" in failed.states_entered()
    [notification] = inbox.received()
    assert "status failed: 1 objects failed (tolerated 0). Archived objects, not copied until restored: 1." in (
        notification.message
    )

    tolerant = cloud.deploy({**wandb.stack_parameters(), "S3SyncToleratedFailures": "1"}, stack_name="tolerant")
    passed = _run(cloud, tolerant)
    assert passed.status == "SUCCEEDED", passed.cause
    assert passed.output["failed"]["keys"] == [{"key": denied, "error": "AccessDenied"}]
    assert _current_keys(_replica(tolerant)) == _current_keys(wandb.bucket_name) - {denied, "wandb/cold/archived.log"}


def test_an_empty_source_bucket_syncs_nothing(cloud: LocalCloud) -> None:
    empty = seed_wandb(objects=0)
    stack = _deploy(cloud, empty)
    execution = _run(cloud, stack)
    assert execution.status == "SUCCEEDED", execution.cause
    assert execution.output["compared"] == {"objects": 0, "bytes": 0} and execution.output["batches"] == 0
    assert _current_keys(_replica(stack)) == set()


def test_thousands_of_objects_in_many_shards_and_batches(cloud: LocalCloud) -> None:
    big = seed_wandb(objects=1500)
    stack = _deploy(cloud, big, S3SyncBatchObjects="400")
    # Three key ranges by S3's count, each planned 200 objects per invocation, as a big bucket is by the clock.
    stack.set_function_environment(FUNCTION, S3_SYNC_OBJECTS_PER_SHARD="500", S3_SYNC_PLAN_CHUNK_OBJECTS="200")
    execution = _run(cloud, stack)
    assert execution.status == "SUCCEEDED", execution.cause
    assert execution.output["copied"]["objects"] == 1500
    assert execution.output["shards"] == 3 and execution.output["batches"] >= 4
    plans = [i.result for i in cloud.runtime.invocations_of(FUNCTION) if i.event["action"] == "plan"]
    assert len(plans) > 3 and [p["done"] for p in plans].count(True) == 3
    assert _current_keys(_replica(stack)) == _current_keys(big.bucket_name)
    assert _run(cloud, stack).output["skipped"]["in_sync"] == 1500


def test_a_replica_in_another_region(
    cloud: LocalCloud, wandb: SimulatedWandb, s3_hook: Callable[[str, Callable[..., Any]], None]
) -> None:
    copy_regions: set[str] = set()
    s3_hook("CopyObject", lambda request_signer, **_: copy_regions.add(request_signer.region_name))
    west = boto3.client("s3", region_name="us-west-2")
    west.create_bucket(Bucket="wandb-replica-west", CreateBucketConfiguration={"LocationConstraint": "us-west-2"})
    stack = _deploy(cloud, wandb, S3ReplicaBucketName="wandb-replica-west", S3ReplicaRegion="us-west-2")
    execution = _run(cloud, stack)
    assert execution.status == "SUCCEEDED", execution.cause
    assert _objects("wandb-replica-west") == _objects(wandb.bucket_name)
    assert west.get_bucket_location(Bucket="wandb-replica-west")["LocationConstraint"] == "us-west-2"
    assert copy_regions == {"us-west-2"}  # S3 runs a copy where the destination bucket is


def test_verify_mode_counts_and_lists_drift_and_copies_nothing(
    cloud: LocalCloud, wandb: SimulatedWandb, sync_stack: DeployedStack
) -> None:
    assert _run(cloud, sync_stack).status == "SUCCEEDED"
    replica = _replica(sync_stack)
    first, second, *_ = sorted(_current_keys(replica))
    boto3.client("s3").delete_object(Bucket=replica, Key=first)
    _put(replica, second, b"tampered")
    cloud.runtime.invocations.clear()

    verified = _run(cloud, sync_stack, mode="verify")
    assert verified.status == "SUCCEEDED", verified.cause
    assert verified.output["status"] == "drift" and verified.output["drift"]["objects"] == 2
    assert (verified.output["drift"]["new"], verified.output["drift"]["changed"]) == ([first], [second])
    assert _copies(cloud) == [] and first not in _current_keys(replica)


def test_invalid_input_is_refused_before_anything_is_written(cloud: LocalCloud, sync_stack: DeployedStack) -> None:
    execution = _run(cloud, sync_stack, mode="copy-everything", prefx="wandb/")
    assert execution.status == "FAILED"
    [prepare] = cloud.runtime.invocations_of(FUNCTION)
    assert prepare.error_type == "InvalidInputError"
    assert "input.mode'" in prepare.result["errorMessage"] and "input.prefx" in prepare.result["errorMessage"]
    work = sync_stack.physical_ids["S3SyncWorkBucket"]
    assert _current_keys(work) == set() and _current_keys(_replica(sync_stack)) == set()


def test_a_source_rewritten_during_the_run_is_not_a_mismatch(
    cloud: LocalCloud,
    wandb: SimulatedWandb,
    sync_stack: DeployedStack,
    s3_hook: Callable[[str, Callable[..., Any]], None],
) -> None:
    assert _run(cloud, sync_stack).status == "SUCCEEDED"
    rewritten: list[str] = []

    def rewrite_before_the_check(params: dict[str, Any], **_: Any) -> None:
        # The sample check reads the source version the plan saw (If-Match); W&B writes it anew just then.
        if "If-Match" in params["headers"] and not rewritten:
            key = urllib.parse.unquote(params["url_path"])[1:]  # the bucket is added to the URL after this hook
            rewritten.append(key)
            _put(wandb.bucket_name, key, b"a new, longer version written during the run")

    s3_hook("HeadObject", rewrite_before_the_check)
    execution = _run(cloud, sync_stack)
    assert execution.status == "SUCCEEDED", execution.cause
    assert rewritten and execution.output["verify"]["mismatched_count"] == 0
    assert _run(cloud, sync_stack).output["to_copy"]["changed"] == 1  # the next run copies the new version


ARCHIVED = {
    "wandb/cold/deep-archive.log": "DEEP_ARCHIVE",
    "wandb/cold/flexible-retrieval.log": "GLACIER",
    "wandb/cold/tiered-to-archive-access.log": "INTELLIGENT_TIERING",
}
COPYABLE = {
    "wandb/cold/instant-retrieval.log": "GLACIER_IR",
    "wandb/cold/restored.log": "GLACIER",
    "wandb/cold/tiered-frequent.log": "INTELLIGENT_TIERING",
}


def test_archived_objects_are_reported_apart_and_do_not_fail_the_run(
    cloud: LocalCloud, wandb: SimulatedWandb, sync_stack: DeployedStack, capsys: pytest.CaptureFixture[str]
) -> None:
    s3 = boto3.client("s3")
    for key, storage_class in (ARCHIVED | COPYABLE).items():
        _put(wandb.bucket_name, key, secrets.token_bytes(64), StorageClass=storage_class)
    s3.restore_object(Bucket=wandb.bucket_name, Key="wandb/cold/restored.log", RestoreRequest={"Days": 7})
    # The listing still says INTELLIGENT_TIERING: only HeadObject (ArchiveStatus) and a refused copy tell.
    move_to_archive_tier(wandb.bucket_name, "wandb/cold/tiered-to-archive-access.log", "DEEP_ARCHIVE_ACCESS")
    archived = frozenset(ARCHIVED)
    inbox = TopicInbox(sync_stack.outputs["NotificationsTopicArn"])

    before = _run(cloud, sync_stack, mode="verify")  # nothing copied yet: all drift but the archived objects
    assert before.status == "SUCCEEDED", before.cause
    assert before.output["archived"] == {"objects": 3, "keys": sorted(archived)}
    assert before.output["drift"]["objects"] == wandb.object_count + len(COPYABLE)

    synced = _run(cloud, sync_stack)  # S3SyncToleratedFailures is 0
    assert synced.status == "SUCCEEDED", synced.cause
    assert synced.output["status"] == "ok" and synced.output["reason"] is None
    assert synced.output["failed"]["objects"] == 0 and inbox.received() == []
    assert synced.output["archived"]["objects"] == 3 and set(synced.output["archived"]["keys"]) == archived
    assert synced.output["copied"]["objects"] == wandb.object_count + len(COPYABLE)
    replica = _replica(sync_stack)
    assert _objects(replica) == _objects(wandb.bucket_name, unreadable=archived)
    assert _current_keys(replica) == _current_keys(wandb.bucket_name) - archived

    after = _run(cloud, sync_stack, mode="verify")
    assert after.status == "SUCCEEDED", after.cause
    assert after.output["status"] == "ok" and after.output["drift"]["objects"] == 0
    assert after.output["archived"] == {"objects": 3, "keys": sorted(archived)}

    posture = cloud.run(sync_stack.state_machine_arns["PostureStateMachine"], {"source": "test"})
    assert posture.status == "SUCCEEDED", posture.cause
    [item] = [i for i in posture.output["items"] if i["id"] == "s3.replica"]
    assert item["status"] == "ok" and item["metrics"]["ReplicaDrift"] == 0, item

    # What docs/s3-sync.md tells an operator to do: restore, and the next run copies them.
    for key in ("wandb/cold/flexible-retrieval.log", "wandb/cold/tiered-to-archive-access.log"):
        days = {"Days": 2} if ARCHIVED[key] == "GLACIER" else {}  # Intelligent-Tiering restores take no Days
        request = {**days, "GlacierJobParameters": {"Tier": "Standard"}}
        s3.restore_object(Bucket=wandb.bucket_name, Key=key, RestoreRequest=request)
    restored = _run(cloud, sync_stack)
    assert restored.status == "SUCCEEDED", restored.cause
    assert restored.output["archived"] == {"objects": 1, "keys": ["wandb/cold/deep-archive.log"]}
    assert restored.output["copied"]["objects"] == 2
    still_archived = frozenset({"wandb/cold/deep-archive.log"})
    assert _objects(replica) == _objects(wandb.bucket_name, unreadable=still_archived)
    emf = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith('{"_aws"')]
    assert [m["S3SyncObjectsArchived"] for m in emf if "S3SyncObjectsArchived" in m] == [[3.0], [3.0], [3.0], [1.0]]


def test_the_sample_check_passes_over_objects_archived_since_they_were_copied(
    cloud: LocalCloud, wandb: SimulatedWandb, sync_stack: DeployedStack
) -> None:
    # Without checksums (as written by an SDK that sends none) the check compares small objects' bodies.
    plain = boto3.client("s3", config=Config(request_checksum_calculation="when_required"))
    cold = {"wandb/cold/lifecycled.log": "STANDARD", "wandb/cold/tiered.log": "INTELLIGENT_TIERING"}
    for key, storage_class in cold.items():
        plain.put_object(Bucket=wandb.bucket_name, Key=key, Body=secrets.token_bytes(64), StorageClass=storage_class)
    assert _run(cloud, sync_stack).status == "SUCCEEDED"
    # A lifecycle transition, then Intelligent-Tiering's: same bytes and ETag, so still in sync.
    plain.copy_object(
        Bucket=wandb.bucket_name,
        Key="wandb/cold/lifecycled.log",
        CopySource={"Bucket": wandb.bucket_name, "Key": "wandb/cold/lifecycled.log"},
        StorageClass="GLACIER",
    )
    move_to_archive_tier(wandb.bucket_name, "wandb/cold/tiered.log")
    sync_stack.set_function_environment(FUNCTION, S3_SYNC_VERIFY_SAMPLE="1000")  # every object in sync

    verified = _run(cloud, sync_stack, mode="verify")
    assert verified.status == "SUCCEEDED", verified.cause
    assert verified.output["skipped"]["in_sync"] == verified.output["verify"]["checked"] == wandb.object_count + 2
    assert verified.output["verify"]["mismatched_count"] == 0 and verified.output["archived"]["objects"] == 0
