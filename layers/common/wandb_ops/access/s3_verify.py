"""The deep check of a copy: what differs between a source object and its replica (size,
metadata, content headers, tags, KMS key, bytes), or whether a re-encrypted object is under its key.

Everything here takes boto3 S3 clients as arguments (the S3 sync workflow hands them in).
"""

import hashlib
from typing import Any

from botocore.exceptions import ClientError

from wandb_ops.access.s3_copy import ARCHIVED_ERRORS, CONTENT_HEADERS, PRECONDITION_FAILED, CopyOptions
from wandb_ops.access.s3_listing import NOT_FOUND
from wandb_ops.core.aws import error_code

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
