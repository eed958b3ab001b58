"""A fake EKS Kubernetes API server, for the credential cut-over tests and the demo.

The official `kubernetes` client talks to it unchanged (HTTPS, bearer token), and it
answers the way a real cluster would wherever the cut-over depends on the answer:

- EKS authentication: the token is a presigned STS GetCallerIdentity URL, checked like
  the EKS authenticator does (shape, freshness, the cluster name in the signed
  ``x-k8s-aws-id`` header) and resolved to an identity by the moto server. moto does not
  verify signatures, so this server does, with the secret STS would know for the key:
  a token signed for another cluster is refused, as EKS refuses it.
- Authorization: the Role and RoleBinding of docs/kubernetes/rbac.yaml, checked before
  anything else, with the API server's Forbidden messages.
- Patches: merge, strategic merge (built-in kinds only) and JSON patch, each rejected
  where the real server rejects it.
- The W&B operator: Secret ``wandb-mysql`` is rendered from the WeightsAndBiases resource
  and re-rendered whenever either changes, so patching only the Secret is undone.
- Rollouts advance by polls, never by wall time, so tests are deterministic.
"""

import base64
import copy
import hashlib
import hmac
import json
import os
import re
import shutil
import ssl
import sys
import tempfile
import threading
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Literal, Self
from urllib.parse import parse_qsl, urlsplit

import yaml  # type: ignore[import-untyped]
from botocore.auth import SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from moto.sts.models import sts_backends

from tests.rig.emulator import ACCOUNT_ID, REGION
from tests.rig.engines import write_test_certificates
from tests.rig.stack import REPO_ROOT

TOKEN_PREFIX = "k8s-aws-v1."
CLUSTER_ID_HEADER = "x-k8s-aws-id"
TOKEN_MAX_AGE = timedelta(minutes=15)  # what the EKS authenticator accepts, whatever X-Amz-Expires says
ROTATION_GROUP = "wandb-ops-credential-rotation"
# moto answers GetCallerIdentity for the rig's credentials with this ARN (an sts: user ARN, not iam:).
MOTO_DEFAULT_IDENTITY = f"arn:aws:sts::{ACCOUNT_ID}:user/moto"
OPERATOR_SECRET = "wandb-mysql"
REVISION_ANNOTATION = "deployment.kubernetes.io/revision"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
JSON_PATCH = "application/json-patch+json"
_SERVER_OWNED_METADATA = ("name", "namespace", "uid", "resourceVersion", "generation", "creationTimestamp")
_HASH_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # the characters Kubernetes uses in pod-template-hash
_ASSUMED_ROLE = re.compile(r"^arn:(?P<partition>[^:]+):sts::(?P<account>\d{12}):assumed-role/(?P<role>[^/]+)/[^/]+$")
_PATH = re.compile(
    r"^/(?:api/(?P<core>v1)|apis/(?P<group>[^/]+)/(?P<version>[^/]+))"
    r"(?:/namespaces/(?P<namespace>[^/]+))?/(?P<resource>[^/]+)(?:/(?P<name>[^/]+)(?:/(?P<subresource>[^/]+))?)?/?$"
)
_REQUIREMENT = re.compile(
    r"^\s*(?P<key>[A-Za-z0-9][-A-Za-z0-9_./]*)\s*(?P<op>==|!=|=)\s*(?P<value>[-A-Za-z0-9_.]*)\s*$"
)


@dataclass(frozen=True)
class MysqlConfig:
    """What a W&B pod was started with."""

    user: str
    password: str
    host: str
    port: int
    database: str


@dataclass(frozen=True)
class _Kind:
    group: str
    version: str
    plural: str
    kind: str
    built_in: bool

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def qualified(self) -> str:
        return f"{self.plural}.{self.group}" if self.group else self.plural


CUSTOM_RESOURCE = _Kind("apps.wandb.com", "v1", "weightsandbiases", "WeightsAndBiases", built_in=False)
SECRET = _Kind("", "v1", "secrets", "Secret", built_in=True)
DEPLOYMENT = _Kind("apps", "v1", "deployments", "Deployment", built_in=True)
_KINDS = {(kind.group, kind.version, kind.plural): kind for kind in (CUSTOM_RESOURCE, SECRET, DEPLOYMENT)}


class _ApiError(Exception):
    """An answer other than 200, as the API server's Status object."""

    def __init__(self, code: int, reason: str, message: str, details: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.status: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": message,
            "reason": reason,
            "code": code,
        }
        if details is not None:
            self.status["details"] = {key: value for key, value in details.items() if value}


def _not_found(kind: _Kind, name: str) -> _ApiError:
    details = {"name": name, "group": kind.group, "kind": kind.plural}
    return _ApiError(404, "NotFound", f'{kind.qualified} "{name}" not found', details)


def _no_such_path() -> _ApiError:
    return _ApiError(404, "NotFound", "the server could not find the requested resource", {})


def _invalid(message: str) -> _ApiError:
    return _ApiError(422, "Invalid", message, {})


def _bad_request(message: str) -> _ApiError:
    return _ApiError(400, "BadRequest", message)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


# ---------------------------------------------------------------- requests


@dataclass(frozen=True)
class _Target:
    """A resource request's attributes, as the authorizer sees them."""

    group: str
    version: str
    resource: str
    namespace: str | None
    name: str | None
    subresource: str | None

    @property
    def rbac_resource(self) -> str:
        return f"{self.resource}/{self.subresource}" if self.subresource else self.resource


def _parse_target(path: str) -> _Target | None:
    match = _PATH.match(path)
    if match is None:
        return None
    return _Target(
        group=match["group"] or "",
        version=match["core"] or match["version"],
        resource=match["resource"],
        namespace=match["namespace"],
        name=match["name"],
        subresource=match["subresource"],
    )


def _verb(method: str, target: _Target | None, query: dict[str, str]) -> str:
    named = target is not None and target.name is not None
    if method == "GET":
        if named:
            return "get"
        return "watch" if query.get("watch") in ("true", "1") else "list"
    if method == "DELETE":
        return "delete" if named else "deletecollection"
    return {"PATCH": "patch", "PUT": "update", "POST": "create"}.get(method, method.lower())


def _label_requirements(selector: str) -> list[tuple[str, str, str]]:
    """Equality-based selectors only (k=v, k==v, k!=v): what the cut-over sends."""
    requirements = []
    for term in filter(None, selector.split(",")):
        match = _REQUIREMENT.match(term)
        if match is None:
            raise _bad_request(f"unable to parse requirement: {term!r}: only equality-based selectors are supported")
        requirements.append((match["key"], "!=" if match["op"] == "!=" else "=", match["value"]))
    return requirements


def _selected(labels: dict[str, str], requirements: list[tuple[str, str, str]]) -> bool:
    return all((labels.get(key) == value) == (op == "=") for key, op, value in requirements)


# ---------------------------------------------------------------- authentication


@dataclass(frozen=True)
class _Identity:
    principal: str  # the IAM ARN access entries are keyed by
    username: str  # what EKS calls the user by default: the caller's STS ARN
    groups: frozenset[str]


def _principal(caller_arn: str) -> str:
    """EKS maps an assumed-role session to its role, the principal of an access entry."""
    match = _ASSUMED_ROLE.match(caller_arn)
    if match is None:
        return caller_arn
    return f"arn:{match['partition']}:iam::{match['account']}:role/{match['role']}"


def _presigned_url(token: str) -> tuple[str, dict[str, str]] | None:
    """The URL in a well-formed, unexpired token and its query, or None (the EKS authenticator says 401)."""
    if not token.startswith(TOKEN_PREFIX):
        return None
    encoded = token.removeprefix(TOKEN_PREFIX)
    try:
        url = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
    except ValueError:  # not base64, or not text
        return None
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    sts = urlsplit(os.environ.get("AWS_ENDPOINT_URL", ""))  # the rig's STS endpoint: the only one trusted
    if (
        (parts.scheme, parts.netloc) != (sts.scheme, sts.netloc)
        or query.get("Action") != "GetCallerIdentity"
        or not query.get("Version")
        or CLUSTER_ID_HEADER not in query.get("X-Amz-SignedHeaders", "").split(";")
        or not _fresh(query)
    ):
        return None
    return url, query


def _verified_caller_arn(url: str, query: dict[str, str], cluster_name: str) -> str | None:
    """Who signed the URL, if they signed it for this cluster: what STS answers for EKS."""
    if not _signed_for(url, query, cluster_name):
        return None
    return _get_caller_identity(url, query, cluster_name)


def _fresh(query: dict[str, str]) -> bool:
    try:
        signed_at = datetime.strptime(query["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        expires = int(query["X-Amz-Expires"])
    except (KeyError, ValueError):
        return False
    return 0 < expires <= TOKEN_MAX_AGE.total_seconds() and datetime.now(UTC) - signed_at <= TOKEN_MAX_AGE


def _signed_for(url: str, query: dict[str, str], cluster_name: str) -> bool:
    """Recompute the SigV4 query signature with this cluster's name in x-k8s-aws-id."""
    try:
        access_key, _date, region, service, _terminator = query["X-Amz-Credential"].split("/")
        signature = query["X-Amz-Signature"]
    except (KeyError, ValueError):
        return False
    secret_key = _secret_access_key(access_key)
    if secret_key is None:
        return False
    parts = urlsplit(url)
    unsigned_query = "&".join(p for p in parts.query.split("&") if not p.startswith("X-Amz-Signature="))
    request = AWSRequest(
        method="GET", url=parts._replace(query=unsigned_query).geturl(), headers={CLUSTER_ID_HEADER: cluster_name}
    )
    request.context["timestamp"] = query["X-Amz-Date"]
    signer = SigV4QueryAuth(Credentials(access_key, secret_key), service, region)
    expected = signer.signature(signer.string_to_sign(request, signer.canonical_request(request)), request)
    return hmac.compare_digest(str(expected).encode(), signature.encode())


def _secret_access_key(access_key: str) -> str | None:
    """What STS knows: the rig's own credentials, or a session moto's AssumeRole handed out."""
    if access_key == os.environ.get("AWS_ACCESS_KEY_ID"):
        return os.environ.get("AWS_SECRET_ACCESS_KEY")
    for partitions in sts_backends.values():
        for backend in partitions.values():
            session = backend.get_assumed_role_from_access_key(access_key)
            if session is not None:
                return str(session.secret_access_key)
    return None


def _get_caller_identity(url: str, query: dict[str, str], cluster_name: str) -> str | None:
    # The moto server picks a service by the SigV4 scope of an Authorization header (a presigned
    # URL alone reaches its S3): restate the scope there, as STS itself needs no such hint.
    authorization = (
        f"AWS4-HMAC-SHA256 Credential={query['X-Amz-Credential']}, "
        f"SignedHeaders={query['X-Amz-SignedHeaders']}, Signature={query['X-Amz-Signature']}"
    )
    headers = {CLUSTER_ID_HEADER: cluster_name, "Authorization": authorization}
    request = urllib.request.Request(url, headers=headers)  # noqa: S310 - the URL's endpoint was checked
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 - as above
            body = response.read().decode()
    except urllib.error.URLError:
        return None
    match = re.search(r"<Arn>([^<]+)</Arn>", body)
    return match.group(1) if match else None


# ---------------------------------------------------------------- authorization


@dataclass(frozen=True)
class _Rule:
    api_groups: frozenset[str]
    resources: frozenset[str]
    verbs: frozenset[str]
    resource_names: frozenset[str]

    def allows(self, group: str, resource: str, verb: str, name: str | None) -> bool:
        if self.resource_names and name not in self.resource_names:  # so a list never matches such a rule
            return False
        return all(
            "*" in allowed or value in allowed
            for allowed, value in ((self.api_groups, group), (self.resources, resource), (self.verbs, verb))
        )


class _Rbac:
    """Namespaced Roles bound to groups, as loaded from an RBAC manifest (ClusterRoles are not)."""

    def __init__(self, documents: Iterable[dict[str, Any]]) -> None:
        self._roles: dict[tuple[str, str], list[_Rule]] = {}
        self._bindings: list[tuple[str, str, frozenset[str]]] = []  # namespace, role, groups
        for document in documents:
            namespace = document["metadata"].get("namespace", "default")
            if document["kind"] == "Role":
                self._roles[(namespace, document["metadata"]["name"])] = [
                    _Rule(
                        frozenset(rule.get("apiGroups", [])),
                        frozenset(rule.get("resources", [])),
                        frozenset(rule.get("verbs", [])),
                        frozenset(rule.get("resourceNames", [])),
                    )
                    for rule in document.get("rules", [])
                ]
            elif document["kind"] == "RoleBinding" and document["roleRef"]["kind"] == "Role":
                groups = frozenset(s["name"] for s in document.get("subjects", []) if s["kind"] == "Group")
                self._bindings.append((namespace, document["roleRef"]["name"], groups))

    @classmethod
    def load(cls, path: Path) -> "_Rbac":
        return cls(document for document in yaml.safe_load_all(path.read_text()) if document)

    def allows(self, groups: frozenset[str], target: _Target, verb: str) -> bool:
        return any(
            rule.allows(target.group, target.rbac_resource, verb, target.name)
            for namespace, role, bound_groups in self._bindings
            if namespace == target.namespace and bound_groups & groups
            for rule in self._roles.get((namespace, role), [])
        )


def _forbidden(identity: _Identity, target: _Target, verb: str) -> _ApiError:
    qualified = f"{target.resource}.{target.group}" if target.group else target.resource
    subject = f'{qualified} "{target.name}"' if target.name else qualified
    scope = f'in the namespace "{target.namespace}"' if target.namespace else "at the cluster scope"
    message = (
        f'{subject} is forbidden: User "{identity.username}" cannot {verb} resource "{target.rbac_resource}" '
        f'in API group "{target.group}" {scope}'
    )
    return _ApiError(
        403, "Forbidden", message, {"name": target.name or "", "group": target.group, "kind": target.resource}
    )


# ---------------------------------------------------------------- patches


def _apply_patch(kind: _Kind, document: dict[str, Any], content_type: str, body: bytes) -> dict[str, Any]:
    media_type = content_type.split(";", maxsplit=1)[0].strip().lower()
    accepted = [JSON_PATCH, MERGE_PATCH] + ([STRATEGIC_MERGE_PATCH] if kind.built_in else [])
    if media_type not in accepted:
        raise _ApiError(
            415,
            "UnsupportedMediaType",
            f"the body of the request was in an unknown format - accepted media types include: {', '.join(accepted)}",
            {},
        )
    try:
        patch = json.loads(body or b"null")
    except ValueError as exc:
        raise _bad_request(f"error decoding patch: {exc}") from None
    if media_type == JSON_PATCH:
        if not isinstance(patch, list):
            raise _bad_request(f"json: cannot unmarshal {type(patch).__name__} into Go value of type jsonpatch.Patch")
        return _json_patch(document, patch)
    if not isinstance(patch, dict):
        raise _bad_request("a merge patch must be a JSON object")
    # Strategic merge differs from merge only in how it merges lists of objects, which no caller patches.
    merged: dict[str, Any] = _merge_patch(document, patch)
    return merged


def _merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge, null removes, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = _merge_patch(result.get(key), value)
    return result


def _json_patch(document: dict[str, Any], operations: list[Any]) -> dict[str, Any]:
    """RFC 6902 add, remove, replace and test."""
    result = copy.deepcopy(document)
    for operation in operations:
        if not isinstance(operation, dict) or not isinstance(operation.get("path"), str):
            raise _invalid(f"invalid JSON patch operation: {operation!r}")
        op, path = operation.get("op"), operation["path"]
        if not path.startswith("/"):
            raise _invalid(f"{op} operation needs a path below the document root, got {path!r}")
        tokens = [token.replace("~1", "/").replace("~0", "~") for token in path.split("/")[1:]]
        parent: Any = result
        for token in tokens[:-1]:
            parent = _child(parent, token, path)
        key = tokens[-1]
        if op == "test":
            if _child(parent, key, path) != operation.get("value"):
                raise _invalid(f"testing value {path} failed: test failed")
        elif op == "remove":
            _child(parent, key, path)
            del parent[int(key) if isinstance(parent, list) else key]
        elif op == "replace":
            _child(parent, key, path)
            parent[int(key) if isinstance(parent, list) else key] = copy.deepcopy(operation.get("value"))
        elif op == "add":
            _add(parent, key, copy.deepcopy(operation.get("value")), path)
        else:
            raise _invalid(f"Unexpected kind: {op}")
    return result


def _child(container: Any, token: str, path: str) -> Any:
    if isinstance(container, dict) and token in container:
        return container[token]
    if isinstance(container, list) and token.isdigit() and int(token) < len(container):
        return container[int(token)]
    raise _invalid(f"doc is missing path: {path!r}: missing value")


def _add(parent: Any, key: str, value: Any, path: str) -> None:
    if isinstance(parent, dict):
        parent[key] = value
    elif isinstance(parent, list) and (key == "-" or (key.isdigit() and int(key) <= len(parent))):
        parent.insert(len(parent) if key == "-" else int(key), value)
    else:
        raise _invalid(f"add operation does not apply: doc is missing path: {path!r}: missing value")


def _keep_server_fields(stored: dict[str, Any], patched: dict[str, Any]) -> dict[str, Any]:
    """A patch cannot rename an object, rewrite its bookkeeping or (outside /status) its status."""
    result = dict(patched)
    result["apiVersion"], result["kind"] = stored["apiVersion"], stored["kind"]
    metadata: dict[str, Any] = result["metadata"] if isinstance(result.get("metadata"), dict) else {}
    result["metadata"] = {
        **metadata,
        **{key: stored["metadata"][key] for key in _SERVER_OWNED_METADATA if key in stored["metadata"]},
    }
    result.pop("status", None)
    if "status" in stored:
        result["status"] = stored["status"]
    return result


def _normalise_secret(secret: dict[str, Any]) -> None:
    """What the API server does on a Secret write: stringData folds into data, data must be base64."""
    data = dict(secret.get("data") or {})
    data.update({key: _b64(str(value)) for key, value in (secret.pop("stringData", None) or {}).items()})
    for key, value in data.items():
        try:
            base64.b64decode(str(value), validate=True)
        except ValueError:
            raise _invalid(
                f'Secret "{secret["metadata"]["name"]}" is invalid: data[{key}]: illegal base64 data'
            ) from None
    secret["data"] = data


# ---------------------------------------------------------------- rollouts


@dataclass
class _Revision:
    """One ReplicaSet of a Deployment: its pods, what they were started with, whether they can start."""

    number: int
    created: int  # the cluster's resourceVersion then: orders revisions across deployments
    pod_hash: str
    template: dict[str, Any]
    config: MysqlConfig
    starts: bool
    available: int = 0
    starting: int = 0

    @property
    def pods(self) -> int:
        return self.available + self.starting


def _pod_hash(template: dict[str, Any]) -> str:
    value = int.from_bytes(hashlib.sha256(json.dumps(template, sort_keys=True).encode()).digest()[:8])
    return "".join(_HASH_ALPHABET[(value >> (5 * i)) % len(_HASH_ALPHABET)] for i in range(10))


def _scaled(value: int | str, replicas: int) -> int:
    """maxUnavailable as the controller reads it: a count, or a percentage rounded down."""
    if isinstance(value, str) and value.endswith("%"):
        return replicas * int(value[:-1]) // 100
    return int(value)


class _Rollout:
    """The deployment controller of one Deployment, one pod at a time (surge 1, nothing unavailable).

    It acts on polls: the second poll after a spec change observes it (the first still shows
    the old observedGeneration), then every `polls_per_step` polls one new pod becomes
    available and one old pod goes away. A revision whose pods cannot start makes no
    progress and hits its deadline `deadline_polls` polls after the restart.
    """

    def __init__(self, first: _Revision, generation: int) -> None:
        self.revisions = [first]
        self.observed_generation = generation
        self.polls = 0
        self.changed_at = 0
        self.progress_at = 0
        self.deadline_exceeded = False

    @property
    def latest(self) -> _Revision:
        return self.revisions[-1]

    def spec_changed(self, revision: _Revision | None) -> None:
        self.changed_at = self.polls
        if revision is not None:
            self.revisions.append(revision)
            self.progress_at = self.polls
            self.deadline_exceeded = False

    def done(self, replicas: int) -> bool:
        return len(self.revisions) == 1 and self.latest.available >= replicas and not self.latest.starting

    def poll(self, deployment: dict[str, Any], polls_per_step: int, deadline_polls: int) -> bool:
        """Advance by one poll; True when the status changed."""
        self.polls += 1
        spec = deployment["spec"]
        replicas = int(spec.get("replicas", 1))
        since_change = self.polls - self.changed_at
        if self.observed_generation < deployment["metadata"]["generation"]:
            if since_change < 2:
                return False
            self.observed_generation = deployment["metadata"]["generation"]
            for old in self.revisions[:-1]:
                old.starting = 0  # a newer revision supersedes pods that never became available
            self._reconcile(replicas, paused=bool(spec.get("paused")))
            return True
        if spec.get("paused") or self.done(replicas) or self.deadline_exceeded:
            return False
        if (since_change - 2) % polls_per_step == 0 and self._step(replicas):
            return True
        if self.polls - self.progress_at >= deadline_polls:
            self.deadline_exceeded = True
            return True
        return False

    def _step(self, replicas: int) -> bool:
        latest = self.latest
        if not (latest.starting and latest.starts):
            return False
        latest.starting -= 1
        latest.available += 1
        old = [revision for revision in self.revisions[:-1] if revision.available]
        if old and sum(revision.available for revision in self.revisions) > replicas:
            old[0].available -= 1
        self._reconcile(replicas, paused=False)
        self.progress_at = self.polls
        return True

    def _reconcile(self, replicas: int, *, paused: bool) -> None:
        self.revisions = [revision for revision in self.revisions[:-1] if revision.pods] + [self.latest]
        if not paused and self.latest.pods < replicas and not self.latest.starting:
            self.latest.starting = 1

    def status(self, deployment: dict[str, Any]) -> dict[str, Any]:
        spec, name = deployment["spec"], deployment["metadata"]["name"]
        replicas = int(spec.get("replicas", 1))
        current = self.latest if self.latest.template == spec["template"] else None  # None: paused with a change
        total = sum(revision.pods for revision in self.revisions)
        available = sum(revision.available for revision in self.revisions)
        counts = {
            "replicas": total,
            "updatedReplicas": current.pods if current else 0,
            "readyReplicas": available,
            "availableReplicas": available,
            "unavailableReplicas": total - available,
        }
        replica_set = f'ReplicaSet "{name}-{self.latest.pod_hash}"'
        max_unavailable = _scaled(spec["strategy"]["rollingUpdate"]["maxUnavailable"], replicas)
        if available >= replicas - max_unavailable:
            availability = ("True", "MinimumReplicasAvailable", "Deployment has minimum availability.")
        else:
            availability = ("False", "MinimumReplicasUnavailable", "Deployment does not have minimum availability.")
        if spec.get("paused"):
            progress = ("Unknown", "DeploymentPaused", "Deployment is paused")
        elif self.deadline_exceeded:
            progress = ("False", "ProgressDeadlineExceeded", f"{replica_set} has timed out progressing.")
        elif self.done(replicas):
            progress = ("True", "NewReplicaSetAvailable", f"{replica_set} has successfully progressed.")
        else:
            progress = ("True", "ReplicaSetUpdated", f"{replica_set} is progressing.")
        previous = {c["type"]: c for c in deployment.get("status", {}).get("conditions", [])}
        return {
            "observedGeneration": self.observed_generation,
            **{key: value for key, value in counts.items() if value},  # the API omits zero counts
            "conditions": [
                _condition(previous.get("Available"), "Available", *availability),
                _condition(previous.get("Progressing"), "Progressing", *progress),
            ],
        }


def _condition(previous: dict[str, Any] | None, kind: str, status: str, reason: str, message: str) -> dict[str, Any]:
    now = _now()
    return {
        "type": kind,
        "status": status,
        "lastUpdateTime": now,
        "lastTransitionTime": previous["lastTransitionTime"] if previous and previous["status"] == status else now,
        "reason": reason,
        "message": message,
    }


# ---------------------------------------------------------------- the server


class FakeKubernetes:
    """An EKS cluster's API server holding a W&B install (operator or legacy) and its deployments."""

    def __init__(
        self,
        *,
        cluster_name: str,
        mode: Literal["operator", "legacy"],
        rbac_path: Path = REPO_ROOT / "docs/kubernetes/rbac.yaml",
        access_entries: dict[str, list[str]] | None = None,
        polls_per_step: int = 2,
        progress_deadline_polls: int = 12,
    ) -> None:
        self.cluster_name = cluster_name
        self.mode = mode
        self.pod_starts: Callable[[MysqlConfig], bool] = lambda _config: True
        self.on_restart: list[Callable[[str, MysqlConfig], None]] = []
        # The operator reconciles in the background: after a change of the resource, Secret wandb-mysql
        # still holds the old password for this many reads of it (0: at once).
        self.operator_lag_reads = 0
        self._stale_operator_reads: dict[str, int] = {}
        self.requests: list[tuple[str, str, str]] = []
        self._rbac = _Rbac.load(rbac_path)
        entries = access_entries if access_entries is not None else {MOTO_DEFAULT_IDENTITY: [ROTATION_GROUP]}
        self._access_entries = {principal: frozenset(groups) for principal, groups in entries.items()}
        self._polls_per_step = polls_per_step
        self._progress_deadline_polls = progress_deadline_polls
        self._lock = threading.RLock()
        self._objects: dict[tuple[_Kind, str, str], dict[str, Any]] = {}
        self._rollouts: dict[tuple[str, str], _Rollout] = {}
        self._config_sources: dict[str, str] = {}  # namespace -> the CR (operator) or Secret (legacy) W&B reads
        self._resource_version = 0
        self._identities: dict[str, _Identity] = {}  # tokens already verified with STS (still checked for expiry)
        self._workdir = Path(tempfile.mkdtemp(prefix="fake-kubernetes-"))
        write_test_certificates(self._workdir)
        self.ca_pem = (self._workdir / "ca.pem").read_text()
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(self._workdir / "server-cert.pem", self._workdir / "server-key.pem")
        self._server = _ApiServer(self, tls)
        self.url = f"https://127.0.0.1:{self._server.server_address[1]}"
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------ lifecycle

    def start(self) -> "FakeKubernetes":
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._server.serve_forever, args=(0.05,), name="fake-kubernetes", daemon=True
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
            self._thread = None
        self._server.server_close()
        shutil.rmtree(self._workdir, ignore_errors=True)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    # ------------------------------------------------------------ seeding

    def add_wandb_custom_resource(self, mysql: MysqlConfig, *, name: str = "wandb", namespace: str = "default") -> None:
        self._require_mode("operator", "a WeightsAndBiases resource")
        values = {
            "global": {
                "host": "https://wandb.example.com",
                "license": "wandb-test-license",
                "bucket": {"provider": "s3", "name": "wandb-file-storage", "region": REGION, "kmsKey": ""},
                "mysql": {
                    "host": mysql.host,
                    "port": mysql.port,
                    "database": mysql.database,
                    "user": mysql.user,
                    "password": mysql.password,
                },
                "redis": {"host": "wandb-redis.example.internal", "port": 6379},
            },
            "ingress": {"class": "alb"},
        }
        helm = {"meta.helm.sh/release-name": "wandb-cr", "meta.helm.sh/release-namespace": namespace}
        with self._lock:
            self._create(
                CUSTOM_RESOURCE,
                namespace,
                name,
                {
                    "metadata": {"labels": {"app.kubernetes.io/managed-by": "Helm"}, "annotations": helm},
                    "spec": {
                        "chart": {"url": "https://charts.wandb.ai", "name": "operator-wandb", "version": "0.26.4"},
                        "values": values,
                    },
                },
            )
            self._config_sources[namespace] = name
            self._render_operator_secret(namespace)

    def add_legacy_secret(self, mysql: MysqlConfig, *, name: str = "wandb", namespace: str = "default") -> None:
        self._require_mode("legacy", "the legacy W&B Secret")
        url = f"mysql://{mysql.user}:{mysql.password}@{mysql.host}:{mysql.port}/{mysql.database}"
        data = {"MYSQL": _b64(url), "LICENSE": _b64("wandb-test-license"), "BUCKET": _b64("s3://wandb-file-storage")}
        with self._lock:
            self._create(SECRET, namespace, name, {"type": "Opaque", "data": data})
            self._config_sources[namespace] = name

    def add_deployment(
        self,
        name: str,
        *,
        labels: dict[str, str],
        replicas: int = 2,
        paused: bool = False,
        namespace: str = "default",
    ) -> None:
        config = self.current_wandb_config(namespace)  # also: W&B's settings must exist before its pods
        if self.mode == "operator":
            reference = {"name": OPERATOR_SECRET, "key": "MYSQL_PASSWORD"}
            env = [{"name": "MYSQL_PASSWORD", "valueFrom": {"secretKeyRef": reference}}]
        else:
            reference = {"name": self._config_sources[namespace], "key": "MYSQL"}
            env = [{"name": "MYSQL", "valueFrom": {"secretKeyRef": reference}}]
        container = {
            "name": name,
            "image": "wandb/local:0.70.0",
            "imagePullPolicy": "IfNotPresent",
            "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}],
            "env": env,
            "readinessProbe": {"httpGet": {"path": "/ready", "port": "http", "scheme": "HTTP"}, "periodSeconds": 5},
            "livenessProbe": {"httpGet": {"path": "/healthz", "port": "http", "scheme": "HTTP"}, "periodSeconds": 10},
            "resources": {},
            "terminationMessagePath": "/dev/termination-log",
            "terminationMessagePolicy": "File",
        }
        template = {
            "metadata": {"labels": dict(labels)},
            "spec": {
                "containers": [container],
                "restartPolicy": "Always",
                "terminationGracePeriodSeconds": 30,
                "dnsPolicy": "ClusterFirst",
                "securityContext": {},
                "schedulerName": "default-scheduler",
            },
        }
        spec: dict[str, Any] = {
            "replicas": replicas,
            "selector": {"matchLabels": dict(labels)},
            "template": template,
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}},
            "revisionHistoryLimit": 10,
            "progressDeadlineSeconds": 600,
        }
        if paused:
            spec["paused"] = True
        with self._lock:
            first = _Revision(
                1, self._resource_version, _pod_hash(template), copy.deepcopy(template), config, True, replicas
            )
            metadata = {"labels": dict(labels), "annotations": {REVISION_ANNOTATION: "1"}}
            deployment = self._create(DEPLOYMENT, namespace, name, {"metadata": metadata, "spec": spec})
            rollout = _Rollout(first, generation=1)
            self._rollouts[(namespace, name)] = rollout
            deployment["status"] = rollout.status(deployment)

    # ------------------------------------------------------------ inspection

    def custom_resource(self, name: str = "wandb", namespace: str = "default") -> dict[str, Any]:
        with self._lock:
            return copy.deepcopy(self._stored(CUSTOM_RESOURCE, namespace, name))

    def secret_data(self, name: str, namespace: str = "default") -> dict[str, str]:
        with self._lock:
            data = self._stored(SECRET, namespace, name).get("data", {})
            return {key: base64.b64decode(value).decode() for key, value in data.items()}

    def deployment(self, name: str, namespace: str = "default") -> dict[str, Any]:
        """The Deployment as stored (reading it here is not a poll)."""
        with self._lock:
            return copy.deepcopy(self._stored(DEPLOYMENT, namespace, name))

    def serving_configs(self, namespace: str = "default") -> list[MysqlConfig]:
        """The distinct configs of every revision with available pods, oldest first: what the load balancer
        may reach."""
        with self._lock:
            serving = sorted(
                (revision.created, revision.config)
                for (rollout_namespace, _), rollout in self._rollouts.items()
                for revision in rollout.revisions
                if rollout_namespace == namespace and revision.available
            )
            return list(dict.fromkeys(config for _, config in serving))

    def current_wandb_config(self, namespace: str = "default") -> MysqlConfig:
        """What a W&B pod started now would connect with."""
        with self._lock:
            source = self._config_sources.get(namespace)
            if source is None:
                raise LookupError(f"no W&B database settings in namespace {namespace}: add them first")
            if self.mode == "operator":  # pods take the password from the Secret the operator renders
                mysql = self._stored(CUSTOM_RESOURCE, namespace, source)["spec"]["values"]["global"]["mysql"]
                rendered = self._stored(SECRET, namespace, OPERATOR_SECRET)["data"]["MYSQL_PASSWORD"]
                return MysqlConfig(
                    user=str(mysql["user"]),
                    password=base64.b64decode(rendered).decode(),
                    host=str(mysql["host"]),
                    port=int(mysql.get("port") or 3306),
                    database=str(mysql.get("database") or "wandb_local"),
                )
            url = urlsplit(base64.b64decode(self._stored(SECRET, namespace, source)["data"]["MYSQL"]).decode())
            return MysqlConfig(
                user=url.username or "",
                password=url.password or "",
                host=url.hostname or "",
                port=url.port or 3306,
                database=url.path.lstrip("/") or "wandb_local",
            )

    # ------------------------------------------------------------ requests

    def _handle(
        self, method: str, raw_path: str, authorization: str | None, content_type: str, body: bytes
    ) -> tuple[int, dict[str, Any]]:
        path = urlsplit(raw_path)
        query = dict(parse_qsl(path.query))
        target = _parse_target(path.path)
        verb = _verb(method, target, query)
        identity = self._authenticate(authorization)
        with self._lock:
            self.requests.append((verb, raw_path, identity.principal if identity else ""))
        try:
            if identity is None:
                raise _ApiError(401, "Unauthorized", "Unauthorized")
            if target is None:
                raise _no_such_path()
            if not self._rbac.allows(identity.groups, target, verb):
                raise _forbidden(identity, target, verb)
            kind = _KINDS.get((target.group, target.version, target.resource))
            if kind is None or target.subresource or target.namespace is None:
                raise _no_such_path()
            with self._lock:
                answer, restarts = self._serve(
                    kind,
                    namespace=target.namespace,
                    name=target.name,
                    verb=verb,
                    query=query,
                    content_type=content_type,
                    body=body,
                )
        except _ApiError as error:
            return error.code, error.status
        for deployment, config in restarts:
            for hook in self.on_restart:
                hook(deployment, config)
        return 200, answer

    def _authenticate(self, authorization: str | None) -> _Identity | None:
        if not authorization or not authorization.startswith("Bearer "):
            return None
        token = authorization.removeprefix("Bearer ").strip()
        presigned = _presigned_url(token)
        if presigned is None:
            return None
        with self._lock:
            known = self._identities.get(token)
        if known is not None:
            return known
        caller = _verified_caller_arn(*presigned, self.cluster_name)
        if caller is None:
            return None
        groups = self._access_entries.get(_principal(caller))
        if groups is None:  # no access entry: EKS answers 401, not 403
            return None
        identity = _Identity(_principal(caller), caller, groups | {"system:authenticated"})
        with self._lock:
            self._identities[token] = identity
        return identity

    def _serve(
        self,
        kind: _Kind,
        *,
        namespace: str,
        name: str | None,
        verb: str,
        query: dict[str, str],
        content_type: str,
        body: bytes,
    ) -> tuple[dict[str, Any], list[tuple[str, MysqlConfig]]]:
        if verb == "list":
            return self._list(kind, namespace, _label_requirements(query.get("labelSelector", ""))), []
        if verb == "get" and name is not None:
            if kind == DEPLOYMENT:
                self._poll(namespace, name)
            if kind == SECRET and name == OPERATOR_SECRET and namespace in self._stale_operator_reads:
                self._stale_operator_reads[namespace] -= 1
                if self._stale_operator_reads[namespace] < 0:  # the operator's reconcile has caught up
                    del self._stale_operator_reads[namespace]
                    self._render_operator_secret(namespace)
            return copy.deepcopy(self._stored(kind, namespace, name)), []
        if verb == "patch" and name is not None:
            return self._patch(kind, namespace, name, content_type, body)
        raise _ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource", {})

    def _list(self, kind: _Kind, namespace: str, requirements: list[tuple[str, str, str]]) -> dict[str, Any]:
        names = sorted(
            item_name
            for (item_kind, item_namespace, item_name), item in self._objects.items()
            if item_kind == kind
            and item_namespace == namespace
            and _selected(item["metadata"].get("labels", {}), requirements)
        )
        items = []
        for item_name in names:
            if kind == DEPLOYMENT:
                self._poll(namespace, item_name)
            item = copy.deepcopy(self._stored(kind, namespace, item_name))
            if kind.built_in:  # the API server leaves kind and apiVersion off the items of built-in lists
                del item["kind"], item["apiVersion"]
            items.append(item)
        listing = {"resourceVersion": str(self._resource_version)}
        return {"kind": f"{kind.kind}List", "apiVersion": kind.api_version, "metadata": listing, "items": items}

    def _patch(
        self, kind: _Kind, namespace: str, name: str, content_type: str, body: bytes
    ) -> tuple[dict[str, Any], list[tuple[str, MysqlConfig]]]:
        stored = self._stored(kind, namespace, name)
        patched = _keep_server_fields(stored, _apply_patch(kind, stored, content_type, body))
        if kind == SECRET:
            _normalise_secret(patched)
        spec_changed = patched.get("spec") != stored.get("spec")
        written = self._write(kind, namespace, name, patched)
        answer = copy.deepcopy(written)  # what the patch wrote, before any controller reacts
        source = self._config_sources.get(namespace)
        operator_input = (kind, name) in ((CUSTOM_RESOURCE, source), (SECRET, OPERATOR_SECRET))
        if self.mode == "operator" and source is not None and operator_input:
            if kind == CUSTOM_RESOURCE and self.operator_lag_reads:
                self._stale_operator_reads[namespace] = self.operator_lag_reads
            else:
                self._render_operator_secret(namespace)
        if kind == DEPLOYMENT and spec_changed:
            return answer, self._deployment_spec_changed(namespace, name)
        return answer, []

    # ------------------------------------------------------------ state

    def _stored(self, kind: _Kind, namespace: str, name: str) -> dict[str, Any]:
        stored = self._objects.get((kind, namespace, name))
        if stored is None:
            raise _not_found(kind, name)
        return stored

    def _next_resource_version(self) -> str:
        self._resource_version += 1
        return str(self._resource_version)

    def _create(self, kind: _Kind, namespace: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        metadata = {
            "name": name,
            "namespace": namespace,
            "uid": str(uuid.uuid4()),
            "resourceVersion": self._next_resource_version(),
            "creationTimestamp": _now(),
            **body.get("metadata", {}),
        }
        if kind != SECRET:  # Secrets have no spec, so no generation
            metadata["generation"] = 1
        created = {"apiVersion": kind.api_version, "kind": kind.kind, **body, "metadata": metadata}
        self._objects[(kind, namespace, name)] = created
        return created

    def _write(self, kind: _Kind, namespace: str, name: str, updated: dict[str, Any]) -> dict[str, Any]:
        """Store a changed object: a new resourceVersion, and a new generation if its spec changed."""
        stored = self._stored(kind, namespace, name)
        if updated == stored:
            return stored
        updated["metadata"]["resourceVersion"] = self._next_resource_version()
        if "generation" in stored["metadata"] and updated.get("spec") != stored.get("spec"):
            updated["metadata"]["generation"] = stored["metadata"]["generation"] + 1
        self._objects[(kind, namespace, name)] = updated
        return updated

    def _render_operator_secret(self, namespace: str) -> None:
        """The W&B operator's reconcile: Secret wandb-mysql follows the custom resource."""
        resource = self._stored(CUSTOM_RESOURCE, namespace, self._config_sources[namespace])
        mysql = resource["spec"]["values"]["global"]["mysql"]
        data = {"MYSQL_PASSWORD": _b64(str(mysql["password"]))}
        existing = self._objects.get((SECRET, namespace, OPERATOR_SECRET))
        if existing is None:
            owner = {
                "apiVersion": CUSTOM_RESOURCE.api_version,
                "kind": CUSTOM_RESOURCE.kind,
                "name": resource["metadata"]["name"],
                "uid": resource["metadata"]["uid"],
                "controller": True,
                "blockOwnerDeletion": True,
            }
            body = {"metadata": {"ownerReferences": [owner]}, "type": "Opaque", "data": data}
            self._create(SECRET, namespace, OPERATOR_SECRET, body)
        else:
            self._write(SECRET, namespace, OPERATOR_SECRET, {**copy.deepcopy(existing), "data": data})

    def _deployment_spec_changed(self, namespace: str, name: str) -> list[tuple[str, MysqlConfig]]:
        """A changed pod template on a running Deployment is a new revision (a restart)."""
        spec = self._stored(DEPLOYMENT, namespace, name)["spec"]
        rollout = self._rollouts[(namespace, name)]
        if spec.get("paused") or spec["template"] == rollout.latest.template:
            rollout.spec_changed(None)
            return []
        config = self.current_wandb_config(namespace)
        revision = _Revision(
            rollout.latest.number + 1,
            self._resource_version,
            _pod_hash(spec["template"]),
            copy.deepcopy(spec["template"]),
            config,
            starts=self.pod_starts(config),
        )
        rollout.spec_changed(revision)
        return [(name, config)]

    def _poll(self, namespace: str, name: str) -> None:
        deployment = self._stored(DEPLOYMENT, namespace, name)
        rollout = self._rollouts[(namespace, name)]
        if rollout.poll(deployment, self._polls_per_step, self._progress_deadline_polls):
            deployment["status"] = rollout.status(deployment)
            deployment["metadata"]["annotations"][REVISION_ANNOTATION] = str(rollout.latest.number)
            deployment["metadata"]["resourceVersion"] = self._next_resource_version()

    def _require_mode(self, mode: str, what: str) -> None:
        if self.mode != mode:
            raise ValueError(f"this cluster holds a {self.mode} install: {what} belongs to a {mode} install")


class _ApiServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, kube: FakeKubernetes, tls: ssl.SSLContext) -> None:
        super().__init__(("127.0.0.1", 0), _ApiHandler)
        self.kube = kube
        # The handshake happens in the request's thread, so a stalled client cannot block accept().
        self.socket = tls.wrap_socket(self.socket, server_side=True, do_handshake_on_connect=False)

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], OSError):  # a client that hung up or failed TLS is not news
            super().handle_error(request, client_address)


class _ApiHandler(BaseHTTPRequestHandler):
    server: _ApiServer
    protocol_version = "HTTP/1.1"  # keep-alive, as the client's connection pool expects
    disable_nagle_algorithm = True  # headers and body go out in two writes: no delayed-ACK stall between them
    timeout = 30

    def setup(self) -> None:
        self.request.settimeout(self.timeout)
        self.request.do_handshake()
        super().setup()

    def do_GET(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        code, answer = self.server.kube._handle(
            self.command, self.path, self.headers.get("Authorization"), self.headers.get("Content-Type", ""), body
        )
        data = json.dumps(answer).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_PATCH = do_PUT = do_POST = do_DELETE = do_GET

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: tests assert on FakeKubernetes.requests instead."""
