"""Listings of the W&B bucket and its replica: objects in S3's key order, the merge join of two
listings, what counts as changed or archived, and key-range shards of a bucket.

Everything here takes boto3 S3 clients as arguments (the S3 sync workflow hands them in).
"""

import itertools
import math
import queue
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError

from wandb_ops.core.aws import error_code

# Storage classes whose objects CopyObject and GetObject refuse until restored. Glacier Instant
# Retrieval (GLACIER_IR) is read like STANDARD_IA. Intelligent-Tiering's archive tiers are listed as
# INTELLIGENT_TIERING: only HeadObject's ArchiveStatus, or a refused copy, tells them.
ARCHIVED_CLASSES = frozenset({"GLACIER", "DEEP_ARCHIVE"})
NOT_FOUND = frozenset({"NoSuchKey", "404"})


@dataclass(frozen=True)
class Entry:
    """One object as a listing shows it."""

    key: str
    size: int
    etag: str
    last_modified: datetime
    storage_class: str = "STANDARD"
    restored: bool = False  # an archived object with a restored copy, which can be read until it expires


def archived(entry: Entry) -> bool:
    """Whether the listing shows an object that must be restored before it can be copied."""
    return entry.storage_class in ARCHIVED_CLASSES and not entry.restored


def listing(
    s3: Any,
    bucket: str,
    prefix: str = "",
    *,
    start: str | None = None,
    end: str | None = None,
    after: str | None = None,
    restore_status: bool = False,
) -> Iterator[Entry]:
    """The bucket's objects under ``prefix`` with ``start <= key < end`` (and ``key > after``, to
    resume), in S3's (UTF-8 binary) key order. StartAfter is exclusive, so without ``after`` the
    listing starts just before ``start`` and skips the few keys below it. With ``restore_status``
    S3 also says which archived objects have a restored copy (at no extra request)."""
    parameters: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix}
    if restore_status:
        parameters["OptionalObjectAttributes"] = ["RestoreStatus"]
    if after:
        parameters["StartAfter"] = after
    elif start:
        parameters["StartAfter"] = start[:-1]
    for page in s3.get_paginator("list_objects_v2").paginate(**parameters):
        for item in page.get("Contents", []):
            key = item["Key"]
            if start and key < start:
                continue
            if end is not None and key >= end:
                return
            restore = item.get("RestoreStatus")
            yield Entry(
                key,
                item["Size"],
                item["ETag"],
                item["LastModified"],
                item.get("StorageClass", "STANDARD"),
                restored=restore is not None and not restore.get("IsRestoreInProgress", False),
            )


def differs(source: Entry, replica: Entry) -> bool:
    """Whether the replica's copy is out of date.

    Sizes differ: changed. Equal ETags: the same bytes. Otherwise the ETags may differ only
    because the copies are encrypted with different KMS keys or were uploaded in other
    parts (such ETags are not MD5s of the content), so fall back to the time: the replica's
    copy is older than the source's last write. This is `aws s3 sync`'s rule plus the ETag."""
    if source.size != replica.size:
        return True
    if source.etag == replica.etag:
        return False
    return source.last_modified > replica.last_modified


class _Failed:
    def __init__(self, error: BaseException) -> None:
        self.error = error


_END = object()


def read_ahead[T](items: Iterable[T], depth: int = 2000) -> Iterator[T]:
    """Yield ``items`` while a thread already fetches the next ones (at most ``depth`` ahead), so
    the two listings of a merge join wait on S3 at the same time rather than one after the other."""
    buffer: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def hand_over(item: Any) -> bool:
        """Put unless the consumer has gone; a full buffer must not keep the thread forever."""
        while not stop.is_set():
            try:
                buffer.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def fill() -> None:
        try:
            for item in items:
                if not hand_over(item):
                    return
            hand_over(_END)
        except Exception as exc:  # noqa: BLE001 - handed to the consumer, which raises it
            hand_over(_Failed(exc))

    threading.Thread(target=fill, daemon=True, name="read-ahead").start()
    try:
        while (item := buffer.get()) is not _END:
            if isinstance(item, _Failed):
                raise item.error
            yield item
    finally:
        stop.set()


def merge_join(source: Iterable[Entry], replica: Iterable[Entry]) -> Iterator[tuple[Entry | None, Entry | None]]:
    """Pairs of (source, replica) entries with the same key, or with one side None; constant memory."""
    source_iter, replica_iter = iter(source), iter(replica)
    left, right = next(source_iter, None), next(replica_iter, None)
    while left is not None or right is not None:
        if right is None or (left is not None and left.key < right.key):
            yield left, None
            left = next(source_iter, None)
        elif left is None or right.key < left.key:
            yield None, right
            right = next(replica_iter, None)
        else:
            yield left, right
            left, right = next(source_iter, None), next(replica_iter, None)


# ---------------------------------------------------------------- sharding


def common_prefixes(s3: Any, bucket: str, prefix: str) -> list[str]:
    found: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix, Delimiter="/"):
        found.extend(p["Prefix"] for p in page.get("CommonPrefixes", []))
    return found


def shard_boundaries(s3: Any, bucket: str, prefix: str, wanted: int, max_depth: int = 6) -> list[str]:
    """Up to ``wanted - 1`` sorted cut points, spread evenly over the bucket's "directories" up to
    six levels deep: by name, not by object count, so ranges can be uneven (a plan too big for one
    invocation continues in the next). Shard i covers keys in [boundary[i-1], boundary[i]);
    together the shards cover every key whatever the cut points."""
    if wanted <= 1:
        return []
    level = [prefix]
    for _ in range(max_depth):
        deeper = sorted(p for parent in level for p in common_prefixes(s3, bucket, parent))
        if not deeper:
            break
        level = deeper
        if len(level) >= wanted:
            break
    candidates = [p for p in level if p != prefix]
    if not candidates:
        return []
    step = len(candidates) / wanted
    picked = {candidates[min(len(candidates) - 1, math.floor(i * step))] for i in range(1, wanted)}
    return sorted(picked)


def ranges(boundaries: list[str]) -> list[tuple[str | None, str | None]]:
    return list(itertools.pairwise([None, *boundaries, None]))


def in_archive_tier(s3: Any, bucket: str, key: str) -> bool:
    """Whether an INTELLIGENT_TIERING object is in its Archive Access or Deep Archive Access tier
    (HeadObject's ArchiveStatus); one HEAD request, so only for the few objects that need it."""
    try:
        return bool(s3.head_object(Bucket=bucket, Key=key).get("ArchiveStatus"))
    except ClientError as exc:
        if error_code(exc) in NOT_FOUND:
            return False
        raise
