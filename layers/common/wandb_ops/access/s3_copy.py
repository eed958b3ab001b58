"""Replica sync of the W&B bucket: compare two key-ordered listings, copy what differs
server-side, delete (mirror mode only) what the source no longer has, check a sample.

Everything here takes boto3 S3 clients as arguments; the workflow module
(s3_sync_workflow) reads settings and moves plans and results through the work bucket.
"""

import hashlib
import itertools
import math
import queue
import threading
import urllib.parse
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from botocore.exceptions import ClientError

from wandb_ops.core.aws import THROTTLING_CODES, error_code
from wandb_ops.core.errors import AwsThrottledError

# S3 limits (AWS S3 API reference): CopyObject copies up to 5 GiB; a multipart upload has
# at most 10,000 parts of at least 5 MiB (except the last) and at most 5 GiB.
COPY_OBJECT_LIMIT = 5 * 1024**3
MAX_PARTS = 10_000
MIN_PART_SIZE = 5 * 1024**2
DELETE_OBJECTS_LIMIT = 1000
# Headers S3 keeps with an object's content; CopyObject carries them, a multipart copy must set them.
CONTENT_HEADERS = ("ContentType", "ContentEncoding", "ContentDisposition", "ContentLanguage", "CacheControl")
CHANGED_SOURCE_ATTEMPTS = 3
PARALLEL_PARTS = 8  # UploadPartCopy calls at once for one large object
# Storage classes whose objects CopyObject and GetObject refuse until restored. Glacier Instant
# Retrieval (GLACIER_IR) is read like STANDARD_IA. Intelligent-Tiering's archive tiers are listed as
# INTELLIGENT_TIERING: only HeadObject's ArchiveStatus, or a refused copy, tells them.
ARCHIVED_CLASSES = frozenset({"GLACIER", "DEEP_ARCHIVE"})
# S3 answers a copy or read of an archived object with InvalidObjectState (the CopyObject
# reference also names ObjectNotInActiveTierError for it).
ARCHIVED_ERRORS = frozenset({"InvalidObjectState", "ObjectNotInActiveTierError"})


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


Reason = Literal["new", "changed"]


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


# ---------------------------------------------------------------- copy


@dataclass(frozen=True)
class CopyItem:
    key: str
    size: int
    etag: str
    storage_class: str = "STANDARD"  # kept by a copy onto the object itself; a replica copy is STANDARD


@dataclass(frozen=True)
class CopyOptions:
    source_bucket: str
    replica_bucket: str
    replica_kms_key_arn: str | None
    multipart_threshold: int
    part_size: int
    concurrency: int
    sse_algorithm: str = "aws:kms"  # or aws:kms:dsse, as the destination bucket's default has it


Outcome = Literal["copied", "vanished", "archived", "failed", "throttled"]


@dataclass(frozen=True)
class CopyResult:
    key: str
    outcome: Outcome
    size: int = 0
    etag: str | None = None  # of the source version copied
    written_etag: str | None = None  # of the copy (a new ETag: SSE-KMS ETags are not content hashes)
    error: str | None = None
    retried_changed: int = 0


def _in_place(options: CopyOptions) -> bool:
    return options.source_bucket == options.replica_bucket


def _unchanged_destination(options: CopyOptions, item: CopyItem) -> dict[str, str]:
    """A copy onto the object itself (re-encryption) writes only if the object is still the version
    read (a conditional write, IfMatch): a W&B write between the read and the write is never lost."""
    return {"IfMatch": item.etag} if _in_place(options) else {}


def _kept_storage_class(options: CopyOptions, item: CopyItem) -> dict[str, str]:
    """A copy onto the object itself keeps its storage class (a copy defaults to STANDARD)."""
    return {"StorageClass": item.storage_class} if _in_place(options) and item.storage_class != "STANDARD" else {}


def _encryption(options: CopyOptions) -> dict[str, str]:
    if options.replica_kms_key_arn:
        return {"ServerSideEncryption": options.sse_algorithm, "SSEKMSKeyId": options.replica_kms_key_arn}
    return {}  # the replica bucket's default encryption applies


def part_ranges(size: int, part_size: int) -> list[tuple[int, int]]:
    """Inclusive byte ranges; parts grow past ``part_size`` when 10,000 would not cover the object."""
    size_per_part = max(part_size, MIN_PART_SIZE, math.ceil(size / MAX_PARTS))
    return [(start, min(start + size_per_part, size) - 1) for start in range(0, size, size_per_part)]


def _copy_multipart(source: Any, replica: Any, options: CopyOptions, item: CopyItem) -> str:
    """UploadPartCopy for objects CopyObject cannot take: metadata, content headers and tags
    are read from the source version the plan saw (IfMatch) and set on the new upload."""
    head = source.head_object(Bucket=options.source_bucket, Key=item.key, IfMatch=item.etag)
    tags = source.get_object_tagging(Bucket=options.source_bucket, Key=item.key)["TagSet"]
    create: dict[str, Any] = {
        "Bucket": options.replica_bucket,
        "Key": item.key,
        "Metadata": head.get("Metadata", {}),
        **{name: head[name] for name in CONTENT_HEADERS if head.get(name)},
        **_encryption(options),
        **_kept_storage_class(options, item),
    }
    if tags:
        create["Tagging"] = urllib.parse.urlencode([(t["Key"], t["Value"]) for t in tags])
    upload_id = replica.create_multipart_upload(**create)["UploadId"]

    def copy_part(numbered: tuple[int, tuple[int, int]]) -> dict[str, Any]:
        number, (first, last) = numbered
        copied = replica.upload_part_copy(
            Bucket=options.replica_bucket,
            Key=item.key,
            UploadId=upload_id,
            PartNumber=number,
            CopySource={"Bucket": options.source_bucket, "Key": item.key},
            CopySourceRange=f"bytes={first}-{last}",
            CopySourceIfMatch=item.etag,
        )
        return {"PartNumber": number, "ETag": copied["CopyPartResult"]["ETag"]}

    try:
        # Parts in parallel: one at a time, a 100 GiB object would not fit a function's 15 minutes.
        with ThreadPoolExecutor(max_workers=PARALLEL_PARTS) as pool:
            parts = list(pool.map(copy_part, enumerate(part_ranges(head["ContentLength"], options.part_size), start=1)))
        completed = replica.complete_multipart_upload(
            Bucket=options.replica_bucket,
            Key=item.key,
            UploadId=upload_id,
            MultipartUpload={"Parts": parts},
            **_unchanged_destination(options, item),
        )
    except BaseException:
        replica.abort_multipart_upload(Bucket=options.replica_bucket, Key=item.key, UploadId=upload_id)
        raise
    return str(completed["ETag"])


NOT_FOUND = frozenset({"NoSuchKey", "404"})
# 409 ConditionalRequestConflict: a conditional write raced another write; S3 says read the ETag again.
PRECONDITION_FAILED = frozenset({"PreconditionFailed", "412", "ConditionalRequestConflict", "409"})


def _outcome_of_error(key: str, code: str) -> CopyResult:
    if code in THROTTLING_CODES:
        return CopyResult(key, "throttled", error=code)
    if code in NOT_FOUND:
        return CopyResult(key, "vanished")
    if code in ARCHIVED_ERRORS:
        # An Intelligent-Tiering archive tier, or archived (or a restore expired) since the plan.
        return CopyResult(key, "archived", error=code)
    return CopyResult(key, "failed", error=code)


def _copy(source: Any, replica: Any, options: CopyOptions, item: CopyItem) -> str:
    """Copy; the ETag of the copy."""
    if item.size > options.multipart_threshold:
        return _copy_multipart(source, replica, options, item)
    copied = replica.copy_object(
        Bucket=options.replica_bucket,
        Key=item.key,
        CopySource={"Bucket": options.source_bucket, "Key": item.key},
        CopySourceIfMatch=item.etag,
        MetadataDirective="COPY",
        TaggingDirective="COPY",
        **_encryption(options),
        **_unchanged_destination(options, item),
        **_kept_storage_class(options, item),
    )
    return str(copied["CopyObjectResult"]["ETag"])


def copy_object(source: Any, replica: Any, options: CopyOptions, item: CopyItem) -> CopyResult:
    """Copy one object as the plan saw it (CopySourceIfMatch). If the source changed since,
    copy its new version instead (a few times at most); if it is gone, report it vanished."""
    current = item
    for attempt in range(CHANGED_SOURCE_ATTEMPTS):
        try:
            written = _copy(source, replica, options, current)
            return CopyResult(item.key, "copied", current.size, current.etag, written, retried_changed=attempt)
        except ClientError as exc:
            code = error_code(exc)
            if code not in PRECONDITION_FAILED:
                return _outcome_of_error(item.key, code)
        try:
            head = source.head_object(Bucket=options.source_bucket, Key=item.key)
        except ClientError as exc:
            return _outcome_of_error(item.key, error_code(exc))
        current = CopyItem(item.key, head["ContentLength"], head["ETag"], head.get("StorageClass", "STANDARD"))
    return CopyResult(item.key, "failed", error="SourceKeepsChanging", retried_changed=CHANGED_SOURCE_ATTEMPTS)


def in_archive_tier(s3: Any, bucket: str, key: str) -> bool:
    """Whether an INTELLIGENT_TIERING object is in its Archive Access or Deep Archive Access tier
    (HeadObject's ArchiveStatus); one HEAD request, so only for the few objects that need it."""
    try:
        return bool(s3.head_object(Bucket=bucket, Key=key).get("ArchiveStatus"))
    except ClientError as exc:
        if error_code(exc) in NOT_FOUND:
            return False
        raise


def copy_all(source: Any, replica: Any, options: CopyOptions, items: list[CopyItem]) -> list[CopyResult]:
    """Copy with bounded concurrency. If S3 still throttled some copies after the SDK's own
    retries, raise so the state machine retries the whole batch later (a copy is idempotent)."""
    with ThreadPoolExecutor(max_workers=max(1, options.concurrency)) as pool:
        results = list(pool.map(lambda item: copy_object(source, replica, options, item), items))
    throttled = [r for r in results if r.outcome == "throttled"]
    if throttled:
        raise AwsThrottledError(f"S3 throttled {len(throttled)} of {len(items)} copies in this batch (SlowDown)")
    return results


def delete_keys(replica: Any, bucket: str, keys: list[str]) -> tuple[list[str], list[dict[str, str]]]:
    """DeleteObjects in chunks; on a versioned replica each delete only adds a delete marker."""
    deleted: list[str] = []
    failed: list[dict[str, str]] = []
    for start in range(0, len(keys), DELETE_OBJECTS_LIMIT):
        chunk = keys[start : start + DELETE_OBJECTS_LIMIT]
        response = replica.delete_objects(
            Bucket=bucket, Delete={"Objects": [{"Key": key} for key in chunk], "Quiet": True}
        )
        errors = {e["Key"]: e.get("Code", "Error") for e in response.get("Errors", [])}
        failed.extend({"key": key, "error": code} for key, code in errors.items())
        deleted.extend(key for key in chunk if key not in errors)
    return deleted, failed


def versioning_enabled(replica: Any, bucket: str) -> bool:
    return bool(replica.get_bucket_versioning(Bucket=bucket).get("Status") == "Enabled")


# ---------------------------------------------------------------- verify


SMALL_OBJECT_BYTES = 1024 * 1024
CHECKSUMS = ("ChecksumCRC64NVME", "ChecksumCRC32C", "ChecksumCRC32", "ChecksumSHA256", "ChecksumSHA1")


def _described(s3: Any, bucket: str, key: str, etag: str | None = None) -> dict[str, Any]:
    """What a HEAD shows (tags only when the object has some: TagCount saves a request).
    With ``etag``, S3 answers 412 if the object is no longer that version."""
    head = s3.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED", **({"IfMatch": etag} if etag else {}))
    tags = s3.get_object_tagging(Bucket=bucket, Key=key)["TagSet"] if head.get("TagCount") else []
    return {
        "size": head["ContentLength"],
        "metadata": head.get("Metadata", {}),
        **{name: head.get(name) for name in CONTENT_HEADERS},
        "tags": sorted((t["Key"], t["Value"]) for t in tags),
        "kms_key": head.get("SSEKMSKeyId"),
        "etag": head["ETag"],
        "checksums": {name: head[name] for name in CHECKSUMS if head.get(name)},
        "checksum_type": head.get("ChecksumType"),
    }


def _sha256(s3: Any, bucket: str, key: str, etag: str) -> str:
    return hashlib.sha256(s3.get_object(Bucket=bucket, Key=key, IfMatch=etag)["Body"].read()).hexdigest()


def _same_bytes(
    source: Any, replica: Any, options: CopyOptions, key: str, *, want: dict[str, Any], have: dict[str, Any]
) -> bool | None:
    """Equal full-object checksums (S3 keeps one for every new object) or, for small objects,
    equal SHA-256 of the bodies; None when neither can tell (a large object without checksums)."""
    # Composite checksums (of multipart uploads: "<value>-<parts>") depend on the part sizes.
    shared = {
        name
        for name in want["checksums"].keys() & have["checksums"].keys()
        if "-" not in want["checksums"][name] and "-" not in have["checksums"][name]
    }
    if shared and "COMPOSITE" not in (want["checksum_type"], have["checksum_type"]):
        return all(want["checksums"][name] == have["checksums"][name] for name in shared)
    if want["size"] > SMALL_OBJECT_BYTES:
        return None
    try:
        return _sha256(source, options.source_bucket, key, want["etag"]) == _sha256(
            replica, options.replica_bucket, key, have["etag"]
        )
    except ClientError as exc:
        if error_code(exc) in ARCHIVED_ERRORS:  # archived since it was copied: its bytes cannot be read
            return None
        raise


def kms_key_matches(expected: str | None, actual: str | None) -> bool:
    """S3 reports the key ARN; the setting may be an ARN or a key id."""
    return expected is None or (actual is not None and (actual == expected or actual.endswith(f"/{expected}")))


def verify_object(
    source: Any, replica: Any, options: CopyOptions, key: str, *, etag: str, expected_kms_key: str | None
) -> list[str]:
    """What differs between the source object (the version the plan or the copy saw) and its
    replica: size, metadata, content headers, tags, the KMS key (when given) and the bytes (by
    checksum, or by content when small). A source changed or deleted since is not judged here:
    the next run copies it."""
    try:
        want = _described(source, options.source_bucket, key, etag)
    except ClientError as exc:
        if error_code(exc) in NOT_FOUND | PRECONDITION_FAILED:
            return []
        raise
    try:
        have = _described(replica, options.replica_bucket, key)
    except ClientError as exc:
        if error_code(exc) in NOT_FOUND:
            return ["missing"]
        raise
    problems = [name for name in ("size", "metadata", *CONTENT_HEADERS, "tags") if want[name] != have[name]]
    if not problems and _same_bytes(source, replica, options, key, want=want, have=have) is False:
        problems.append("content")
    if not kms_key_matches(expected_kms_key, have["kms_key"]):
        problems.append("kms_key")
    return problems


def verify_reencrypted(s3: Any, bucket: str, key: str, *, etag: str, kms_key: str | None) -> list[str]:
    """Whether the version seen (by ETag) is encrypted with ``kms_key``; a version replaced since
    is not judged (W&B wrote it with the bucket's default key)."""
    try:
        head = s3.head_object(Bucket=bucket, Key=key, IfMatch=etag)
    except ClientError as exc:
        if error_code(exc) in NOT_FOUND | PRECONDITION_FAILED:
            return []
        raise
    return [] if kms_key_matches(kms_key, head.get("SSEKMSKeyId")) else ["kms_key"]
