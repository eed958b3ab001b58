"""What a run keeps in the stack's work bucket under ``<work prefix>/<run>/``: each shard's plan
(``shards/``), the batches to copy (``batches/``), the Distributed Map's manifest, each batch's
result (``results/``) and the report. The state carries only their keys and counts, so a bucket
of any size fits Step Functions' 256 KiB state limit."""

import json
from typing import Any

from botocore.exceptions import ClientError
from pydantic import BaseModel, ConfigDict, Field

from wandb_ops.access.s3_listing import NOT_FOUND, listing
from wandb_ops.core.aws import error_code
from wandb_ops.workflows.s3_sync.tasks import FailedKey, Run, Shard

EXAMPLES = 20  # keys listed in the output per category; the report in S3 has them all


class Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PlanCounts(Record):
    """A plan's counts (PlanOutput carries them between ``done`` and ``batches``)."""

    compared_objects: int = 0
    compared_bytes: int = 0
    new: int = 0
    changed: int = 0
    to_copy_bytes: int = 0
    in_sync: int = 0
    outdated: int = 0  # reencrypt: last written before the run's modified_before
    archived: int = 0  # to copy, but in Glacier Flexible Retrieval or Deep Archive, not restored
    replica_only: int = 0
    to_delete: int = 0

    @classmethod
    def total(cls, counts: list[Any]) -> "PlanCounts":
        """The sums of each count over ``counts`` (PlanCounts, or outputs that carry them)."""
        return cls(**{name: sum(getattr(found, name) for found in counts) for name in cls.model_fields})


class Sampled(Record):
    """A version the plan found in sync, for the sample check."""

    key: str
    etag: str


class Examples(Record):
    new: list[str] = Field(default_factory=list)
    changed: list[str] = Field(default_factory=list)
    replica_only: list[str] = Field(default_factory=list)
    archived: list[str] = Field(default_factory=list)


class ShardProgress(Record):
    """A plan's state in its shard file: complete when ``done``, otherwise where to go on from."""

    done: bool = False
    after: str | None = None  # the last key compared; the next invocation lists from after it
    invocations: int = 0
    stats: PlanCounts = Field(default_factory=PlanCounts)
    batches: list[str] = Field(default_factory=list)
    sample: list[Sampled] = Field(default_factory=list)
    examples: Examples = Field(default_factory=Examples)


class BatchItem(Record):
    key: str
    size: int
    etag: str
    storage_class: str = "STANDARD"


class Batch(Record):
    """One copy batch (or one batch of deletes): the Distributed Map's item is its key."""

    model_config = ConfigDict(extra="forbid", validate_by_name=True, serialize_by_alias=True)

    copies: list[BatchItem] = Field(default_factory=list, alias="copy")  # not "copy": BaseModel.copy
    delete: list[str] = Field(default_factory=list)


class CopiedVersion(Record):
    key: str
    etag: str  # of the source version copied
    written_etag: str  # of the copy (a new ETag: SSE-KMS ETags are not content hashes)


class BatchResult(Record):
    """What the copy of one batch did; a batch that left none failed as a whole."""

    batch: str
    copied: int = 0
    copied_bytes: int = 0
    # A few of the versions just copied, for the sample check; all keys would make 100 KB per batch.
    copied_sample: list[CopiedVersion] = Field(default_factory=list)
    vanished: int = 0
    # Refused as archived (Intelligent-Tiering archive tiers; archived since the plan): not failures.
    archived: int = 0
    archived_keys: list[str] = Field(default_factory=list)
    changed_during_copy: int = 0
    deleted: int = 0
    failed: list[FailedKey] = Field(default_factory=list)


def put_json(s3: Any, bucket: str, key: str, body: Any) -> None:
    s3.put_object(Bucket=bucket, Key=key, Body=json.dumps(body).encode(), ContentType="application/json")


def get_json(s3: Any, bucket: str, key: str) -> Any:
    return json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())


def put_record(s3: Any, run: Run, key: str, record: BaseModel) -> None:
    put_json(s3, run.work_bucket, key, record.model_dump(mode="json"))


def get_record[RecordT: BaseModel](s3: Any, run: Run, key: str, model: type[RecordT]) -> RecordT:
    return model.model_validate(get_json(s3, run.work_bucket, key))


def keys_under(s3: Any, bucket: str, prefix: str) -> list[str]:
    return [e.key for e in listing(s3, bucket, prefix)]


def shard_key(run: Run, shard: Shard) -> str:
    return run.key("shards", f"{shard.index:04d}.json")


def result_key(run: Run, batch: str) -> str:
    return run.key("results", batch.rsplit("/", 1)[-1])


def shard_file(s3: Any, run: Run, shard: Shard) -> ShardProgress:
    """What a plan left for the later steps: its batch keys, a verification sample, example keys."""
    return get_record(s3, run, shard_key(run, shard), ShardProgress)


def progress_of(s3: Any, run: Run, shard: Shard) -> ShardProgress:
    """The shard's plan so far; a new one before its first invocation."""
    try:
        return shard_file(s3, run, shard)
    except ClientError as exc:
        if error_code(exc) in NOT_FOUND:
            return ShardProgress()
        raise


def note(examples: list[str], key: str) -> None:
    if len(examples) < EXAMPLES:
        examples.append(key)
