"""The S3 sync's settings, from the function environment. The same function is deployed twice:
S3_SYNC_PURPOSE says which workflow it serves, the replica sync or the re-encryption."""

from typing import Literal

from wandb_ops.access.s3_copy import COPY_OBJECT_LIMIT, MIN_PART_SIZE
from wandb_ops.core.settings import StackSettings, from_stack

WORK_PREFIX = "s3-sync"
CHECK_TIME_EVERY = 100  # objects a plan compares between two looks at the clock

PurposeName = Literal["replica", "reencrypt"]


class S3SyncSettings(StackSettings):
    purpose: PurposeName = from_stack("S3_SYNC_PURPOSE", default="replica")
    source_bucket: str = from_stack("S3_SYNC_SOURCE_BUCKET", "FileStorageBucketName")
    replica_bucket: str = from_stack("S3_SYNC_REPLICA_BUCKET", "S3ReplicaBucketName")
    # Empty: the function's own region.
    replica_region: str | None = from_stack("S3_SYNC_REPLICA_REGION", "S3ReplicaRegion", None)
    replica_kms_key_arn: str | None = from_stack("S3_SYNC_REPLICA_KMS_KEY_ARN", "S3ReplicaKmsKeyArn", None)
    work_bucket: str = from_stack("S3_SYNC_WORK_BUCKET")
    work_prefix: str = from_stack("S3_SYNC_WORK_PREFIX", default=WORK_PREFIX)
    plan_shards: int = from_stack("S3_SYNC_PLAN_SHARDS", "S3SyncPlanShards", ge=1, le=256)
    objects_per_shard: int = from_stack("S3_SYNC_OBJECTS_PER_SHARD", ge=1)
    plan_chunk_objects: int = from_stack("S3_SYNC_PLAN_CHUNK_OBJECTS", ge=CHECK_TIME_EVERY)
    batch_objects: int = from_stack("S3_SYNC_BATCH_OBJECTS", "S3SyncBatchObjects", ge=1, le=100_000)
    batch_bytes: int = from_stack("S3_SYNC_BATCH_BYTES", ge=1)
    copy_concurrency: int = from_stack("S3_SYNC_COPY_CONCURRENCY", "S3SyncCopyConcurrency", ge=1, le=256)
    multipart_threshold: int = from_stack("S3_SYNC_MULTIPART_THRESHOLD", ge=1, le=COPY_OBJECT_LIMIT)
    part_size: int = from_stack("S3_SYNC_PART_SIZE", ge=MIN_PART_SIZE, le=COPY_OBJECT_LIMIT)
    tolerated_failures: int = from_stack("S3_SYNC_TOLERATED_FAILURES", "S3SyncToleratedFailures", ge=0)
    verify_sample: int = from_stack("S3_SYNC_VERIFY_SAMPLE", "S3SyncVerifySample", ge=0, le=1000)
