"""Listing and sharding against the emulator's S3: the shards of a bucket cover every key
exactly once, in S3's key order, whatever the keys look like."""

import boto3

from tests.rig.local_cloud import LocalCloud
from wandb_ops.s3_sync import listing, ranges, shard_boundaries

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
            listed = [e.key for start, end in ranges(boundaries) for e in listing(s3, "sharded", prefix, start, end)]
            assert listed == expected, (prefix, wanted, boundaries)


def test_an_empty_bucket_is_one_shard_with_nothing_in_it(cloud: LocalCloud) -> None:
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="empty-source")
    assert shard_boundaries(s3, "empty-source", "", 16) == []
    assert list(listing(s3, "empty-source")) == []
