"""Kubernetes API access from a Lambda, for the few calls the W&B cut-over makes.

Authentication is EKS's: a bearer token that is a presigned STS GetCallerIdentity URL
signed with the cluster name in the ``x-k8s-aws-id`` header (what `aws eks get-token`
does), so the function's own role is the identity and no kubeconfig or long-lived token
exists. Endpoint and CA come from ``eks:DescribeCluster``. The calls are plain REST over
urllib3 (already there for botocore): seven paths, JSON in and out, TLS verified against
the cluster's CA. Responses are returned as the API server's JSON (plain dicts): the domain
code reads a handful of fields, and typed models would only add required-field checks that
can break on a newer server.
"""

import base64
import json
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import quote, urlencode

import urllib3

from wandb_ops.core.errors import WandbOpsError

TOKEN_PREFIX = "k8s-aws-v1."  # noqa: S105 - the EKS token format, not a credential
CLUSTER_ID_HEADER = "x-k8s-aws-id"
TOKEN_LIFETIME_SECONDS = 60  # what the EKS authenticator accepts, as `aws eks get-token` uses
MERGE_PATCH = "application/merge-patch+json"
CR_GROUP, CR_VERSION, CR_PLURAL = "apps.wandb.com", "v1", "weightsandbiases"
# The REST paths of the objects the cut-over reads and patches, by namespace.
CUSTOM_RESOURCES = f"/apis/{CR_GROUP}/{CR_VERSION}/namespaces/{{}}/{CR_PLURAL}"
SECRETS = "/api/v1/namespaces/{}/secrets"
DEPLOYMENTS = "/apis/apps/v1/namespaces/{}/deployments"
RBAC_DOC = "docs/kubernetes/rbac.yaml"


class KubernetesError(WandbOpsError):
    """A Kubernetes API call failed; the message names the call, the status and what to do."""


class KubernetesApi(Protocol):
    """What the cut-over needs from the API server (namespaced, JSON in and out)."""

    def get_custom_resource(self, namespace: str, name: str) -> dict[str, Any]: ...
    def patch_custom_resource(self, namespace: str, name: str, patch: dict[str, Any]) -> dict[str, Any]: ...
    def get_secret(self, namespace: str, name: str) -> dict[str, Any]: ...
    def patch_secret(self, namespace: str, name: str, patch: dict[str, Any]) -> dict[str, Any]: ...
    def list_deployments(self, namespace: str, label_selector: str) -> list[dict[str, Any]]: ...
    def get_deployment(self, namespace: str, name: str) -> dict[str, Any]: ...
    def patch_deployment(self, namespace: str, name: str, patch: dict[str, Any]) -> dict[str, Any]: ...


@dataclass(frozen=True)
class ClusterEndpoint:
    name: str
    url: str
    ca_pem: str


def describe_cluster(eks: Any, name: str) -> ClusterEndpoint:
    cluster = eks.describe_cluster(name=name)["cluster"]
    status = cluster.get("status")
    if status != "ACTIVE":
        raise KubernetesError(f"EKS cluster {name} is {status}, not ACTIVE: wait until it is, then re-run")
    ca_data = cluster.get("certificateAuthority", {}).get("data")
    if not cluster.get("endpoint") or not ca_data:
        raise KubernetesError(f"EKS cluster {name} reports no API endpoint or CA")
    return ClusterEndpoint(name, cluster["endpoint"], base64.b64decode(ca_data).decode())


def eks_token(sts: Any, cluster_name: str) -> str:
    """A bearer token for the EKS API server, valid for about a minute."""

    def keep_cluster_id(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        if CLUSTER_ID_HEADER in params:
            context[CLUSTER_ID_HEADER] = params.pop(CLUSTER_ID_HEADER)

    def sign_cluster_id(request: Any, **_: Any) -> None:
        if CLUSTER_ID_HEADER in request.context:
            request.headers[CLUSTER_ID_HEADER] = request.context[CLUSTER_ID_HEADER]

    sts.meta.events.register("provide-client-params.sts.GetCallerIdentity", keep_cluster_id)
    sts.meta.events.register("before-sign.sts.GetCallerIdentity", sign_cluster_id)
    url = sts.generate_presigned_url(
        "get_caller_identity",
        Params={CLUSTER_ID_HEADER: cluster_name},
        ExpiresIn=TOKEN_LIFETIME_SECONDS,
        HttpMethod="GET",
    )
    return TOKEN_PREFIX + base64.urlsafe_b64encode(url.encode()).decode().rstrip("=")


def connect(endpoint: ClusterEndpoint, token: str) -> KubernetesApi:
    """The cluster's API server, authenticated with an EKS token (``eks_token``)."""
    return _ApiServer(endpoint, token)


class _ApiServer:
    """KubernetesApi over urllib3: one connection pool that trusts only the cluster's CA."""

    def __init__(self, endpoint: ClusterEndpoint, token: str) -> None:
        self._cluster = endpoint.name
        self._url = endpoint.url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        self._pool = urllib3.PoolManager(
            cert_reqs="CERT_REQUIRED",
            ca_cert_data=endpoint.ca_pem,
            timeout=urllib3.Timeout(connect=5, read=20),
            # urllib3's default of 3 retries (connection errors; read errors of GETs), but no redirect.
            retries=urllib3.Retry(total=3, redirect=False),
        )

    def get_custom_resource(self, namespace: str, name: str) -> dict[str, Any]:
        what = f"get {CR_PLURAL}.{CR_GROUP} {namespace}/{name}"
        return self._call(what, "GET", _path(CUSTOM_RESOURCES, namespace, name))

    def patch_custom_resource(self, namespace: str, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        what = f"patch {CR_PLURAL}.{CR_GROUP} {namespace}/{name}"
        return self._call(what, "PATCH", _path(CUSTOM_RESOURCES, namespace, name), patch, echoes=True)

    def get_secret(self, namespace: str, name: str) -> dict[str, Any]:
        return self._call(f"get secret {namespace}/{name}", "GET", _path(SECRETS, namespace, name))

    def patch_secret(self, namespace: str, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        what = f"patch secret {namespace}/{name}"
        return self._call(what, "PATCH", _path(SECRETS, namespace, name), patch, echoes=True)

    def list_deployments(self, namespace: str, label_selector: str) -> list[dict[str, Any]]:
        path = _path(DEPLOYMENTS, namespace) + "?" + urlencode({"labelSelector": label_selector})
        listed = self._call(f"list deployments in {namespace} ({label_selector})", "GET", path)
        return list(listed.get("items", []))

    def get_deployment(self, namespace: str, name: str) -> dict[str, Any]:
        return self._call(f"get deployment {namespace}/{name}", "GET", _path(DEPLOYMENTS, namespace, name))

    def patch_deployment(self, namespace: str, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        return self._call(f"patch deployment {namespace}/{name}", "PATCH", _path(DEPLOYMENTS, namespace, name), patch)

    def _call(
        self, what: str, method: str, path: str, patch: dict[str, Any] | None = None, *, echoes: bool = False
    ) -> dict[str, Any]:
        """Patches are JSON merge patches (the one patch type custom resources accept). ``echoes``: the
        patch carries credentials, and a validation or admission error may quote them back, so the
        server's message is left out of the error (it becomes workflow state)."""
        headers, body = self._headers, None
        if patch is not None:
            headers, body = headers | {"Content-Type": MERGE_PATCH}, json.dumps(patch).encode()
        try:
            response = self._pool.request(method, self._url + path, headers=headers, body=body)
        except urllib3.exceptions.HTTPError as exc:
            raise KubernetesError(
                f"{what}: cannot reach the API server of EKS cluster {self._cluster} ({type(exc).__name__}). "
                "The endpoint is private: run the function in the cluster's VPC (DatabaseAccessSubnetIds) "
                "and allow its security group on the cluster security group, port 443"
            ) from None
        if not 200 <= response.status <= 299:
            raise KubernetesError(self._explain(what, response, quote_server=not echoes))
        result: dict[str, Any] = json.loads(response.data)
        return result

    def _explain(self, what: str, response: urllib3.BaseHTTPResponse, *, quote_server: bool) -> str:
        message = ""
        if quote_server:
            try:
                message = json.loads(response.data).get("message", "")
            except (AttributeError, ValueError):
                message = ""
        message = message or response.reason or ""
        fix = {
            401: "the cluster did not accept the function's EKS token: create the access entry for the function's "
            f"role (docs/rotation.md) on cluster {self._cluster}",
            403: f"apply the Role and RoleBinding of {RBAC_DOC} in that namespace and map the function's role "
            "to their group with an EKS access entry",
            404: "check the stack parameters WandbKubernetesNamespace, WandbResourceName and WandbDeployments",
        }.get(response.status, "see the API server's message")
        return f"{what}: HTTP {response.status}: {message}: {fix}"


def _path(collection: str, namespace: str, name: str | None = None) -> str:
    """The collection's path in the namespace, or its object's; names from the stack parameters are quoted,
    not trusted to be DNS labels."""
    path = collection.format(quote(namespace, safe=""))
    return path if name is None else f"{path}/{quote(name, safe='')}"
