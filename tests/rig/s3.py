"""S3 behaviour the emulator lacks, added to the in-process moto server.

- CopyObject and UploadPartCopy ignore `x-amz-copy-source-if-match`. S3 answers
  412 PreconditionFailed when the source's ETag differs (AWS S3 API reference, CopyObject
  and UploadPartCopy); without it a copy of an object changed since the plan would pass.
"""

from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

from moto.s3.exceptions import PreconditionFailed
from moto.s3.responses import S3Response

_original_copy_object = S3Response.copy_object
_original_upload_part_copy = S3Response.upload_part_copy


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


def _copy_object(self: S3Response) -> Any:
    _check_copy_source_if_match(self)
    return _original_copy_object(self)


def _upload_part_copy(self: S3Response) -> Any:
    _check_copy_source_if_match(self)
    return _original_upload_part_copy(self)


def install() -> None:
    S3Response.copy_object = _copy_object  # type: ignore[method-assign]
    S3Response.upload_part_copy = _upload_part_copy  # type: ignore[method-assign]
