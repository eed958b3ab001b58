"""What the replica sync (replica.py) and the re-encryption (reencrypt.py) do differently. The
function's S3_SYNC_PURPOSE picks one (steps.Deps); the steps do the rest the same way."""

from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any, Literal, Protocol

from wandb_ops.access.s3_copy import CopyOptions
from wandb_ops.access.s3_listing import Entry
from wandb_ops.workflows.s3_sync.records import CopiedVersion, PlanCounts
from wandb_ops.workflows.s3_sync.runs import Clients, RunSpec
from wandb_ops.workflows.s3_sync.settings import S3SyncSettings
from wandb_ops.workflows.s3_sync.tasks import ReencryptToCopy, ReplicaToCopy, Run, Shard, SummaryOutput

# What a plan makes of an object: to copy (new, changed, outdated), in sync, or archived (to copy,
# but S3 refuses until it is restored).
Kind = Literal["new", "changed", "outdated", "in_sync", "archived"]
# (source, replica) entries with the same key, or with one side None.
Pair = tuple[Entry | None, Entry | None]


class Purpose(Protocol):
    @property
    def metric_prefix(self) -> str:
        """Of the summary's metric names (S3Sync..., S3Reencrypt...)."""
        ...

    def prepare(self, request: dict[str, Any], settings: S3SyncSettings, clients: Clients, now: datetime) -> RunSpec:
        """Parse and check the workflow input; raise SyncRefusedError for a run that must not start."""
        ...

    def pairs(self, clients: Clients, run: Run, shard: Shard, after: str | None) -> Iterator[Pair]:
        """The entries of the shard's key range to plan (from after ``after``), in key order."""
        ...

    def classifier(self, run: Run) -> Callable[[Entry, Entry | None], Kind]:
        """The rule that tells, for the run, what a plan makes of (source, replica)."""
        ...

    def version_to_check(self, copied: CopiedVersion) -> str:
        """The ETag of the version the sample check looks at, of an object the run copied."""
        ...

    def check(
        self, clients: Clients, run: Run, options: CopyOptions, key: str, *, etag: str, copied_now: bool
    ) -> list[str]:
        """What is wrong with one sampled object (the version ``etag``); empty if nothing."""
        ...

    def to_copy(self, totals: PlanCounts) -> ReplicaToCopy | ReencryptToCopy:
        """The summary's count of what the plans found to copy, by kind."""
        ...

    def unfinished(self, archived: int) -> str:
        """Why the run failed though every copy succeeded, or ""."""
        ...

    def report(self, run: Run, summary: SummaryOutput) -> SummaryOutput:
        """The summary, with what this purpose adds to it."""
        ...
