"""Server-side copies of objects from one bucket to another (or onto themselves, to re-encrypt):
one object with CopyObject, a large one with UploadPartCopy, a batch with bounded concurrency;
and the deletes of a mirror.

Everything here takes boto3 S3 clients as arguments (the S3 sync workflow hands them in).
"""

import math
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal

from botocore.exceptions import ClientError

from wandb_ops.access.s3_listing import NOT_FOUND
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
# S3 answers a copy or read of an archived object with InvalidObjectState (the CopyObject
# reference also names ObjectNotInActiveTierError for it).
ARCHIVED_ERRORS = frozenset({"InvalidObjectState", "ObjectNotInActiveTierError"})
# 409 ConditionalRequestConflict: a conditional write raced another write; S3 says read the ETag again.
PRECONDITION_FAILED = frozenset({"PreconditionFailed", "412", "ConditionalRequestConflict", "409"})


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
