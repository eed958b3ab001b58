"""One local S3 endpoint for every tool: moto's server in this process, with a middleware that
counts requests by S3 operation, so tools are compared on the requests they send, not on what
they report about themselves."""

import logging
import re
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qs, unquote

import boto3
from botocore.config import Config
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import make_server

REGION = "us-east-1"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}

# Query parameters of a bucket listing: a GET on a bucket with only these is ListObjects(V2).
_LIST_PARAMETERS = {
    "prefix",
    "delimiter",
    "marker",
    "max-keys",
    "encoding-type",
    "list-type",
    "continuation-token",
    "start-after",
    "fetch-owner",
}
_BUCKET_SUBRESOURCES = {
    ("GET", "location"): "GetBucketLocation",
    ("GET", "versions"): "ListObjectVersions",
    ("GET", "uploads"): "ListMultipartUploads",
    ("POST", "delete"): "DeleteObjects",
}
_BUCKET_PLAIN = {"GET": "ListObjects", "HEAD": "HeadBucket", "PUT": "CreateBucket", "DELETE": "DeleteBucket"}
_MULTIPART = {"POST": "CompleteMultipartUpload", "DELETE": "AbortMultipartUpload", "GET": "ListParts"}
_OBJECT_SUBRESOURCES = {"tagging": "Tagging", "acl": "Acl", "attributes": "Attributes", "retention": "Retention"}
_VERBS = {"GET": "Get", "PUT": "Put", "DELETE": "Delete"}
_OBJECT_PLAIN = {"HEAD": "HeadObject", "GET": "GetObject", "PUT": "PutObject", "DELETE": "DeleteObject"}
_SCOPE = re.compile(r"Credential=[^/]+/\d{8}/[^/]+/([^/]+)/aws4_request")
# One object written each: a phase with none of these wrote nothing. "CopyObject (in place)" is an
# object copied onto itself, how S3 changes metadata (rclone updates a modification time that way).
WRITE_OPERATIONS = frozenset({"PutObject", "CopyObject", "CopyObject (in place)", "CompleteMultipartUpload"})


def operation(method: str, path: str, query: Mapping[str, list[str]], copy_source: str | None) -> str:
    """The S3 operation of a path-style request (path already decoded), as the API reference names it."""
    if "x-id" in query:  # newer SDKs name the operation themselves
        return query["x-id"][0]
    bucket, _, key = path.lstrip("/").partition("/")
    if not bucket:
        return "ListBuckets" if method == "GET" else f"{method} /"
    if key:
        # WSGI gives the path as latin-1 text of its bytes: decode the copy source the same way.
        source = unquote(copy_source.split("?")[0], encoding="latin-1") if copy_source else None
        in_place = source is not None and source.lstrip("/") == path.lstrip("/")
        return _object_operation(method, query, copy_source is not None, in_place)
    if method == "GET" and query.get("list-type") == ["2"]:
        return "ListObjectsV2"
    subresources = sorted(name for name in query if name not in _LIST_PARAMETERS)
    if not subresources:
        return _BUCKET_PLAIN.get(method, f"{method} bucket")
    return _BUCKET_SUBRESOURCES.get((method, subresources[0]), f"{method} bucket?{'&'.join(subresources)}")


def _object_operation(method: str, query: Mapping[str, list[str]], copy_source: bool, in_place: bool) -> str:
    if "uploadId" in query:
        if method == "PUT":
            return "UploadPartCopy" if copy_source else "UploadPart"
        return _MULTIPART.get(method, f"{method} object?uploadId")
    if "uploads" in query and method == "POST":
        return "CreateMultipartUpload"
    for name, suffix in _OBJECT_SUBRESOURCES.items():
        if name in query and method in _VERBS:
            return f"{_VERBS[method]}Object{suffix}"
    if method == "PUT" and copy_source:
        return "CopyObject (in place)" if in_place else "CopyObject"
    return _OBJECT_PLAIN.get(method, f"{method} object?{'&'.join(sorted(query))}")


def service_of(environ: Mapping[str, Any], query: Mapping[str, list[str]]) -> str:
    """The signing service of a request: moto serves every service on the one port."""
    credential = environ.get("HTTP_AUTHORIZATION") or "".join(
        f"Credential={c}" for c in query.get("X-Amz-Credential", [])
    )
    match = _SCOPE.search(credential)
    return match.group(1) if match else "s3"


@dataclass(frozen=True)
class Counts:
    """Requests seen in an interval: S3 operations, other services' requests, error responses,
    and objects written per bucket."""

    s3: dict[str, int]
    other: dict[str, int]
    errors: dict[str, int]
    written: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.s3.values())


class RequestCounter:
    """Thread-safe counts by operation; the server answers many tool connections at once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._s3: Counter[str] = Counter()
        self._other: Counter[str] = Counter()
        self._errors: Counter[str] = Counter()
        self._written: Counter[str] = Counter()

    def add(self, service: str, name: str, bucket: str) -> None:
        with self._lock:
            if service != "s3":
                self._other[f"{service}:{name}"] += 1
                return
            self._s3[name] += 1
            if name in WRITE_OPERATIONS:
                self._written[bucket] += 1

    def add_error(self, label: str) -> None:
        with self._lock:
            self._errors[label] += 1

    def snapshot(self) -> Counts:
        with self._lock:
            return Counts(dict(self._s3), dict(self._other), dict(self._errors), dict(self._written))

    def reset(self) -> None:
        with self._lock:
            self._s3.clear()
            self._other.clear()
            self._errors.clear()
            self._written.clear()


type StartResponse = Callable[..., Any]
type WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


class CountingMiddleware:
    """Counts each request before moto answers it, and each error response by status; and mends
    the one request header that moto reads differently from S3."""

    def __init__(self, app: WsgiApp, counter: RequestCounter) -> None:
        self._app = app
        self._counter = counter

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
        service = service_of(environ, query)
        method = environ["REQUEST_METHOD"]
        path = environ.get("PATH_INFO", "/")
        if service == "s3":
            copy_source = environ.get("HTTP_X_AMZ_COPY_SOURCE")
            if copy_source:
                # S3 reads x-amz-copy-source form-decoded, '+' as a space (a '+' in a key must be sent as
                # %2B); moto 5.2.5 decodes it with unquote, so a client that sends spaces as '+' (s5cmd
                # does) copies keys with spaces on S3 but gets NoSuchKey from moto. Make moto see S3's reading.
                copy_source = environ["HTTP_X_AMZ_COPY_SOURCE"] = copy_source.replace("+", "%20")
            name = operation(method, path, query, copy_source)
        else:
            name = environ.get("HTTP_X_AMZ_TARGET", method).rpartition(".")[2]  # "Service_2010.Action"
        self._counter.add(service, name, bucket=path.lstrip("/").partition("/")[0])

        def counting_start_response(status: str, headers: list[tuple[str, str]], *args: Any) -> Any:
            if int(status.split(" ", 1)[0]) >= 400:
                self._counter.add_error(f"{name} {status.split(' ', 1)[0]}")
            return start_response(status, headers, *args)

        return self._app(environ, counting_start_response)


class Endpoint:
    """moto's S3 on a free loopback port, threaded so tools' concurrency reaches it."""

    def __init__(self) -> None:
        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no access log line per request
        self.counter = RequestCounter()
        app = CountingMiddleware(DomainDispatcherApplication(create_backend_app), self.counter)
        self._server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=MotoRequestHandler)
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="moto-s3", daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self._server.shutdown()
        self._thread.join()

    def client(self, connections: int = 10) -> Any:
        """A boto3 S3 client for the harness itself (seeding, buckets, checks)."""
        return boto3.client(
            "s3",
            endpoint_url=self.url,
            region_name=REGION,
            aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            config=Config(
                s3={"addressing_style": "path"}, max_pool_connections=connections, retries={"mode": "standard"}
            ),
        )
