"""What the S3 sync's steps take and return: the state machine's contract (one definition, deployed
for the replica sync and for the re-encryption). Plans, batches and results live in the work
bucket (records.py); the state carries only the run, keys and counts."""

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, RootModel

from wandb_ops.access.encryption import KEY_REFERENCE
from wandb_ops.core.models import StrictModel
from wandb_ops.core.steps import StepOutput
from wandb_ops.workflows.s3_sync.settings import WORK_PREFIX

# ---------------------------------------------------------------- workflow inputs

BucketName = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")]


class SyncRequest(StrictModel):
    """Workflow input. ``mode``: sync (copy what is missing or differs, never delete), mirror
    (also delete replica objects the source no longer has; needs versioning on the replica),
    verify (compare and report drift, copy nothing). ``dry_run`` plans and lists, changes nothing.
    The buckets default to the stack's; the stack's role may only reach those."""

    mode: Literal["sync", "mirror", "verify"] = "sync"
    prefix: str = Field(default="", max_length=1024)
    dry_run: bool = False
    source_bucket: BucketName | None = None
    replica_bucket: BucketName | None = None
    source: Literal["schedule", "console", "demo", "test"] = "console"


class ReencryptRequest(StrictModel):
    """Workflow input of the re-encryption. Every object last written before ``modified_before``
    (default: the start of the run) is copied onto itself under the bucket's default KMS key,
    keeping metadata and tags. ``kms_key`` (optional) must be that default key: it guards against
    re-encrypting under a key that new W&B writes do not use. To resume a failed run, start again
    with its ``modified_before``: what it copied is newer and is skipped. ``dry_run`` (the default)
    counts what would be copied."""

    mode: Literal["reencrypt"] = "reencrypt"
    kms_key: str | None = Field(default=None, pattern=KEY_REFERENCE.pattern)
    modified_before: datetime | None = None
    prefix: str = Field(default="", max_length=1024)
    dry_run: bool = True
    source: Literal["console", "demo", "test"] = "console"


Mode = Literal["sync", "mirror", "verify", "reencrypt"]
Status = Literal["ok", "drift", "failed"]


# ---------------------------------------------------------------- the run (prepare's output)


class Shard(StepOutput):
    index: int = Field(ge=0)
    start: str | None
    end: str | None


class Run(StepOutput):
    """What prepare decided; every later step gets it back from the state."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    mode: Mode
    dry_run: bool
    prefix: str
    source_bucket: str
    replica_bucket: str
    work_bucket: str
    started_at: str
    copy_objects: bool
    delete_objects: bool
    shards: list[Shard]
    kms_key_arn: str | None = None  # what copies are encrypted with; None: the destination's default
    modified_before: str | None = None  # reencrypt: objects written since are under the key already
    sse_algorithm: str = "aws:kms"
    work_prefix: str = WORK_PREFIX

    def key(self, *parts: str) -> str:
        return "/".join((self.work_prefix, self.id, *parts))


# ---------------------------------------------------------------- outputs


class PlanOutput(StepOutput):
    """One key range's plan (or the part of it one invocation did, ``done: false``): the counts
    of records.PlanCounts between ``done`` and ``batches``."""

    shard: int
    done: bool
    compared_objects: int
    compared_bytes: int
    new: int
    changed: int
    to_copy_bytes: int
    in_sync: int
    outdated: int
    archived: int
    replica_only: int
    to_delete: int
    batches: int


class ManifestOutput(StepOutput):
    """The Distributed Map's item reader input: ``key`` in the work bucket (None: nothing to copy)."""

    key: str | None
    batches: int


class CopyOutput(StepOutput):
    batch: str
    copied: int
    failed: int


class Mismatch(StepOutput):
    key: str
    differs: list[str]


class VerifyOutput(StepOutput):
    checked: int
    mismatched: list[Mismatch]
    mismatched_count: int


class Counted(StepOutput):
    objects: int
    bytes: int


class ReplicaToCopy(StepOutput):
    objects: int
    bytes: int
    new: int
    changed: int


class ReencryptToCopy(StepOutput):
    objects: int
    bytes: int
    outdated: int


class Skipped(StepOutput):
    in_sync: int
    vanished: int


class FailedKey(StepOutput):
    key: str
    error: str


class Failed(StepOutput):
    objects: int
    tolerated: int
    keys: list[FailedKey]


class CountedKeys(StepOutput):
    objects: int
    keys: list[str]


class Deleted(StepOutput):
    objects: int
    planned: int


class Drift(StepOutput):
    objects: int
    new: list[str]
    changed: list[str]


class SummaryOutput(StepOutput):
    """The run's report (also written to ``report``, with every failed key)."""

    run: str
    mode: Mode
    dry_run: bool
    source_bucket: str
    replica_bucket: str
    prefix: str
    status: Status
    reason: str | None
    compared: Counted
    to_copy: ReplicaToCopy | ReencryptToCopy
    copied: Counted
    skipped: Skipped
    changed_during_copy: int
    failed: Failed
    replica_only: CountedKeys
    deleted: Deleted
    drift: Drift
    archived: CountedKeys
    verify: VerifyOutput
    batches: int
    shards: int
    duration_seconds: float
    report: str


class ResumeInput(StepOutput):
    """The input that resumes a re-encryption: what it copied is newer than ``modified_before``."""

    dry_run: bool
    kms_key: str | None
    modified_before: str | None


class ReencryptSummaryOutput(SummaryOutput):
    kms_key: str | None
    modified_before: str | None
    resume_input: ResumeInput


# ---------------------------------------------------------------- tasks


class PrepareTask(StrictModel):
    action: Literal["prepare"]
    # A SyncRequest, or a ReencryptRequest for the re-encryption: the function's purpose parses it.
    input: dict[str, Any]
    execution: str | None = None


class PlanTask(StrictModel):
    action: Literal["plan"]
    run: Run
    shard: Shard
    execution: str | None = None


class ManifestTask(StrictModel):
    action: Literal["manifest"]
    run: Run
    plans: list[PlanOutput]
    execution: str | None = None


class CopyTask(StrictModel):
    action: Literal["copy"]
    run: Run
    batch: str = Field(min_length=1)
    execution: str | None = None


class VerifyTask(StrictModel):
    action: Literal["verify"]
    run: Run
    execution: str | None = None


class SummaryTask(StrictModel):
    action: Literal["summary"]
    run: Run
    plans: list[PlanOutput]
    verify: VerifyOutput
    execution: str | None = None


class SyncTask(
    RootModel[
        Annotated[
            PrepareTask | PlanTask | ManifestTask | CopyTask | VerifyTask | SummaryTask,
            Field(discriminator="action"),
        ]
    ]
):
    pass
