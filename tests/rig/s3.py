"""S3 behaviour the emulator lacks, added to the in-process moto server.

- CopyObject and UploadPartCopy ignore `x-amz-copy-source-if-match`. S3 answers
  412 PreconditionFailed when the source's ETag differs (AWS S3 API reference, CopyObject
  and UploadPartCopy); without it a copy of an object changed since the plan would pass.
- CopyObject and CompleteMultipartUpload ignore `If-Match` (a conditional write: the
  destination must still be that version). S3 answers 412 when the destination's ETag
  differs, or 404 when there is none (AWS S3 API reference, "conditional writes").
- Archived objects. S3 Intelligent-Tiering moves an object nobody read for 90 days or more to its
  Archive Access or Deep Archive Access tier when the bucket has an archive configuration; the
  listing still says INTELLIGENT_TIERING, HeadObject answers ``x-amz-archive-status``, and
  GetObject, CopyObject and UploadPartCopy answer 403 InvalidObjectState until RestoreObject
  (without ``Days``) brings it back to the Frequent Access tier (S3 API reference, HeadObject,
  GetObject, CopyObject, RestoreObject). moto has no access tiers: tests move an object with
  ``move_to_archive_tier``, and a restore brings it back at once (moto's Glacier restores are
  immediate too). moto's UploadPartCopy also copies from a Glacier Flexible Retrieval or Deep
  Archive object that was never restored; S3 refuses it as CopyObject does.
- ListObjectsV2 ignores ``x-amz-optional-object-attributes: RestoreStatus``; S3 then lists
  ``RestoreStatus`` (IsRestoreInProgress, RestoreExpiryDate) for each object with a restored or
  restoring copy (S3 API reference, ListObjectsV2 and RestoreStatus).
"""

from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

from moto.core.responses import ActionResult
from moto.s3.exceptions import InvalidObjectState, MissingKey, PreconditionFailed
from moto.s3.models import FakeKey, S3Backend, s3_backends
from moto.s3.responses import S3Response
from moto.s3.utils import ARCHIVE_STORAGE_CLASSES

from tests.rig.emulator import ACCOUNT_ID

ARCHIVE_TIERS = ("ARCHIVE_ACCESS", "DEEP_ARCHIVE_ACCESS")

_original_copy_object = S3Response.copy_object
_original_upload_part_copy = S3Response.upload_part_copy
_original_key_response_post = S3Response._key_response_post
_original_head_object = S3Response.head_object
_original_get_object = S3Response.get_object
_original_list_objects_v2 = S3Response.list_objects_v2
_original_restore_object = S3Backend.restore_object


def move_to_archive_tier(bucket: str, key: str, tier: str = "ARCHIVE_ACCESS") -> None:
    """What S3 Intelligent-Tiering does to an object nobody read for 90 (or 180) days."""
    found = s3_backends[ACCOUNT_ID]["aws"].get_object(bucket, key)
    if found is None or found.storage_class != "INTELLIGENT_TIERING" or tier not in ARCHIVE_TIERS:
        raise ValueError(f"only an INTELLIGENT_TIERING object moves to {ARCHIVE_TIERS}")
    found.archive_status = tier  # type: ignore[attr-defined]


def _archive_tier(key: FakeKey | None) -> str | None:
    return getattr(key, "archive_status", None)


def _refuse_archived(key: FakeKey | None, *, unrestored_glacier: bool = False) -> None:
    """403 InvalidObjectState for an object in an Intelligent-Tiering archive tier (and, with
    ``unrestored_glacier``, for a Glacier object without a finished restore)."""
    if key is None:
        return
    tier = _archive_tier(key)
    if tier:
        error = InvalidObjectState(storage_class=key.storage_class)
        error.access_tier = tier  # type: ignore[attr-defined]
        raise error
    restored = 'ongoing-request="false"' in key.response_dict.get("x-amz-restore", "")
    if unrestored_glacier and key.storage_class in ARCHIVE_STORAGE_CLASSES and not restored:
        raise InvalidObjectState(storage_class=key.storage_class)


def _copy_source(response: Any) -> FakeKey | None:
    copy_source = response.headers["x-amz-copy-source"]
    if isinstance(copy_source, bytes):
        copy_source = copy_source.decode("utf-8")
    parsed = urlparse(copy_source)
    bucket, key = unquote(parsed.path).lstrip("/").split("/", 1)
    version = parse_qs(parsed.query).get("versionId", [None])[0]
    found: FakeKey | None = response.backend.get_object(bucket, key, version_id=version)
    return found


def _check_copy_source_if_match(response: Any) -> None:
    expected = response.headers.get("x-amz-copy-source-if-match")
    if not expected:
        return
    source = _copy_source(response)
    if source is not None and source.etag.strip('"') != expected.strip('"'):
        raise PreconditionFailed("x-amz-copy-source-If-Match")


def _check_if_match(response: Any, bucket: str, key: str, headers: Any) -> None:
    expected = headers.get("If-Match")
    if not expected:
        return
    current = response.backend.get_object(bucket, key)
    if current is None:
        raise MissingKey(key=key)
    if current.etag.strip('"') != expected.strip('"'):
        raise PreconditionFailed("If-Match")


def _copy_object(self: S3Response) -> Any:
    _check_copy_source_if_match(self)
    _refuse_archived(_copy_source(self))
    _check_if_match(self, self.bucket_name, self.parse_key_name(), self.headers)
    return _original_copy_object(self)


def _key_response_post(self: S3Response, request: Any, *arguments: Any) -> Any:
    _, bucket_name, query, key_name = arguments  # moto's (body, bucket_name, query, key_name)
    if query.get("uploadId"):  # CompleteMultipartUpload
        _check_if_match(self, bucket_name, key_name, request.headers)
    return _original_key_response_post(self, request, *arguments)


def _upload_part_copy(self: S3Response) -> Any:
    _check_copy_source_if_match(self)
    _refuse_archived(_copy_source(self), unrestored_glacier=True)
    return _original_upload_part_copy(self)


def _head_object(self: S3Response, bucket_name: str, query: dict[str, Any], key_name: str, headers: Any) -> Any:
    status, response_headers, body = _original_head_object(self, bucket_name, query, key_name, headers)
    version = query.get("versionId", [None])[0]
    tier = _archive_tier(self.backend.get_object(bucket_name, key_name, version_id=version)) if status == 200 else None
    if tier:
        response_headers["x-amz-archive-status"] = tier
    return status, response_headers, body


def _get_object(self: S3Response) -> Any:
    version = self.querystring.get("versionId", [None])[0]
    _refuse_archived(self.backend.get_object(self.bucket_name, self.parse_key_name(), version_id=version))
    return _original_get_object(self)


def _restore_status(key: FakeKey) -> dict[str, Any] | None:
    if key.storage_class not in ARCHIVE_STORAGE_CLASSES or key._expiry is None:
        return None
    if key.status == "IN_PROGRESS":
        return {"IsRestoreInProgress": True}
    return {"IsRestoreInProgress": False, "RestoreExpiryDate": key._expiry}


def _list_objects_v2(self: S3Response) -> Any:
    if "RestoreStatus" not in str(self.headers.get("x-amz-optional-object-attributes", "")):
        return _original_list_objects_v2(self)
    serialized = self.serialized

    def with_restore_status(result: ActionResult) -> Any:
        listed: dict[str, Any] = result.result  # type: ignore[assignment]
        encoded = listed.get("EncodingType") == "url"
        for item in listed["Contents"]:
            key = self.backend.get_object(self.bucket_name, unquote(item["Key"]) if encoded else item["Key"])
            if key is not None and (status := _restore_status(key)):
                item["RestoreStatus"] = status
        return serialized(result)

    self.serialized = with_restore_status  # type: ignore[method-assign,assignment]
    return _original_list_objects_v2(self)


def _restore_object(self: S3Backend, bucket_name: str, key_name: str, days: str | None, type_: str | None) -> bool:
    key = self.get_object(bucket_name, key_name)
    if _archive_tier(key):
        key.archive_status = None  # type: ignore[union-attr]  # back in the Frequent Access tier
        return False
    restored: bool = _original_restore_object(self, bucket_name, key_name, days, type_)
    return restored


def install() -> None:
    S3Response.copy_object = _copy_object  # type: ignore[method-assign]
    S3Response.upload_part_copy = _upload_part_copy  # type: ignore[method-assign]
    S3Response._key_response_post = _key_response_post  # type: ignore[method-assign,assignment]
    S3Response.head_object = _head_object  # type: ignore[method-assign]
    S3Response.get_object = _get_object  # type: ignore[method-assign]
    S3Response.list_objects_v2 = _list_objects_v2  # type: ignore[method-assign]
    S3Backend.restore_object = _restore_object  # type: ignore[method-assign]
