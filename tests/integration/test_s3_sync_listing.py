"""Listing and sharding against the emulator's S3: the shards of a bucket cover every key
exactly once, in S3's key order, whatever the keys look like."""

from datetime import UTC, datetime

import boto3

from tests.rig.local_cloud import LocalCloud
from wandb_ops.access.s3_listing import listing, ranges, shard_boundaries
from wandb_ops.workflows.s3_sync.replica import REPLICA
from wandb_ops.workflows.s3_sync.runs import Clients, estimated_objects, shard_count
from wandb_ops.workflows.s3_sync.settings import S3SyncSettings
from wandb_ops.workflows.s3_sync.steps import Deps, plan, prepare
from wandb_ops.workflows.s3_sync.tasks import PlanOutput, PlanTask, PrepareTask

KEYS = [
    "top-level-file",
    "wandb/a/runs/r1/files/x.log",
    "wandb/a/runs/r1/files/y.log",
    "wandb/a/runs/r2/files/x.log",
    "wandb/a-b/runs/r1/x",  # sorts between "wandb/a/" and "wandb/a0": '-' < '/'
    "wandb/a!/x",
    "wandb/a/",  # a folder marker object
    "wandb/b/ü/x",
    "wandb/b+c/x",
    "wandb/z/deep/" + "/".join("d" * 5 for _ in range(30)) + "/x",
    "wandb_artifacts/obj/1",
    "wandb_artifacts/obj/2",
    "zzz",
]


def test_shards_cover_every_key_once_in_order(cloud: LocalCloud) -> None:
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="sharded")
    for key in KEYS:
        s3.put_object(Bucket="sharded", Key=key, Body=b"x")
    for prefix in ("", "wandb/"):
        expected = sorted(k for k in KEYS if k.startswith(prefix))
        for wanted in (1, 2, 3, 5, 16):
            boundaries = shard_boundaries(s3, "sharded", prefix, wanted)
            assert boundaries == sorted(boundaries) and len(boundaries) <= wanted - 1
            listed = [
                e.key for start, end in ranges(boundaries) for e in listing(s3, "sharded", prefix, start=start, end=end)
            ]
            assert listed == expected, (prefix, wanted, boundaries)


def test_an_empty_bucket_is_one_shard_with_nothing_in_it(cloud: LocalCloud) -> None:
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="empty-source")
    assert shard_boundaries(s3, "empty-source", "", 16) == []
    assert list(listing(s3, "empty-source")) == []


def _settings(**overrides: str) -> S3SyncSettings:
    return S3SyncSettings.from_env(
        {
            "S3_SYNC_SOURCE_BUCKET": "sized",
            "S3_SYNC_REPLICA_BUCKET": "sized-replica",
            "S3_SYNC_WORK_BUCKET": "work",
            "S3_SYNC_PLAN_SHARDS": "64",
            "S3_SYNC_OBJECTS_PER_SHARD": "2000000",
            "S3_SYNC_PLAN_CHUNK_OBJECTS": "50000000",
            "S3_SYNC_BATCH_OBJECTS": "1000",
            "S3_SYNC_BATCH_BYTES": "1000000",
            "S3_SYNC_COPY_CONCURRENCY": "4",
            "S3_SYNC_MULTIPART_THRESHOLD": "8000000",
            "S3_SYNC_PART_SIZE": "5242880",
            "S3_SYNC_TOLERATED_FAILURES": "0",
            "S3_SYNC_VERIFY_SAMPLE": "0",
            **overrides,
        }
    )


def test_the_shard_count_follows_the_bucket_size(cloud: LocalCloud) -> None:
    s3, cloudwatch = boto3.client("s3"), boto3.client("cloudwatch")
    s3.create_bucket(Bucket="sized")
    clients = Clients(source=s3, replica=s3, work=s3, cloudwatch=cloudwatch, kms=boto3.client("kms"))
    now = datetime.now(UTC)
    for index in range(10):
        s3.put_object(Bucket="sized", Key=f"k{index}", Body=b"")
    assert shard_count(clients, _settings(), "sized", "", now) == 1  # one page holds it all
    for index in range(10, 1001):
        s3.put_object(Bucket="sized", Key=f"k{index}", Body=b"")
    # The emulator publishes S3's NumberOfObjects storage metric, as S3 does daily.
    assert estimated_objects(cloudwatch, "sized", now) == 1001
    assert shard_count(clients, _settings(), "sized", "", now) == 1  # 1001 objects: far below 2 million per shard
    assert shard_count(clients, _settings(S3_SYNC_OBJECTS_PER_SHARD="100"), "sized", "", now) == 11
    assert (
        shard_count(clients, _settings(S3_SYNC_OBJECTS_PER_SHARD="100", S3_SYNC_PLAN_SHARDS="8"), "sized", "", now) == 8
    )


def test_a_long_run_of_replica_only_keys_is_planned_in_several_invocations(cloud: LocalCloud) -> None:
    """The plan looks at the clock every CHECK_TIME_EVERY keys, whichever side they are on: a
    replica full of keys the source no longer has must not keep one invocation past its time."""
    s3 = boto3.client("s3")
    for bucket in ("sized", "sized-replica", "work"):
        s3.create_bucket(Bucket=bucket)
    for index in range(250):
        s3.put_object(Bucket="sized-replica", Key=f"gone/{index:04d}", Body=b"")
    s3.put_object(Bucket="sized", Key="kept", Body=b"")
    settings = _settings(S3_SYNC_PLAN_CHUNK_OBJECTS="100")
    clients = Clients(source=s3, replica=s3, work=s3, cloudwatch=boto3.client("cloudwatch"), kms=boto3.client("kms"))
    deps = Deps(settings, REPLICA, clients, out_of_time=lambda: False)
    run = prepare(PrepareTask(action="prepare", input={"mode": "sync"}, execution="test-chunks"), deps)
    [shard] = run.shards
    results: list[PlanOutput] = []
    while not results or not results[-1].done:
        results.append(plan(PlanTask(action="plan", run=run, shard=shard), deps))
    assert [r.done for r in results] == [False, False, True]
    assert results[-1].replica_only == 250 and results[-1].new == 1
