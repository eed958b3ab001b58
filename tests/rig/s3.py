"""S3 behaviour the emulator lacks, added to the in-process moto server.

- CopyObject and UploadPartCopy ignore `x-amz-copy-source-if-match`. S3 answers
  412 PreconditionFailed when the source's ETag differs (AWS S3 API reference, CopyObject
  and UploadPartCopy); without it a copy of an object changed since the plan would pass.
- CopyObject and CompleteMultipartUpload ignore `If-Match` (a conditional write: the
  destination must still be that version). S3 answers 412 when the destination's ETag
  differs, or 404 when there is none (AWS S3 API reference, "conditional writes").
"""

from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

from moto.s3.exceptions import MissingKey, PreconditionFailed
from moto.s3.responses import S3Response

_original_copy_object = S3Response.copy_object
_original_upload_part_copy = S3Response.upload_part_copy
_original_key_response_post = S3Response._key_response_post


def _check_copy_source_if_match(response: Any) -> None:
    expected = response.headers.get("x-amz-copy-source-if-match")
    if not expected:
        return
    copy_source = response.headers["x-amz-copy-source"]
    if isinstance(copy_source, bytes):
        copy_source = copy_source.decode("utf-8")
    parsed = urlparse(copy_source)
    bucket, key = unquote(parsed.path).lstrip("/").split("/", 1)
    version = parse_qs(parsed.query).get("versionId", [None])[0]
    source = response.backend.get_object(bucket, key, version_id=version)
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
    _check_if_match(self, self.bucket_name, self.parse_key_name(), self.headers)
    return _original_copy_object(self)


def _key_response_post(self: S3Response, request: Any, *arguments: Any) -> Any:
    _, bucket_name, query, key_name = arguments  # moto's (body, bucket_name, query, key_name)
    if query.get("uploadId"):  # CompleteMultipartUpload
        _check_if_match(self, bucket_name, key_name, request.headers)
    return _original_key_response_post(self, request, *arguments)


def _upload_part_copy(self: S3Response) -> Any:
    _check_copy_source_if_match(self)
    return _original_upload_part_copy(self)


def install() -> None:
    S3Response.copy_object = _copy_object  # type: ignore[method-assign]
    S3Response.upload_part_copy = _upload_part_copy  # type: ignore[method-assign]
    S3Response._key_response_post = _key_response_post  # type: ignore[method-assign,assignment]
