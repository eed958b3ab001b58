"""Kubernetes API access from a Lambda, for the few calls the W&B cut-over makes.

Authentication is EKS's: a bearer token that is a presigned STS GetCallerIdentity URL
signed with the cluster name in the ``x-k8s-aws-id`` header (what `aws eks get-token`
does), so the function's own role is the identity and no kubeconfig or long-lived token
exists. Endpoint and CA come from ``eks:DescribeCluster``. Responses are returned as the
API server's JSON (plain dicts): the domain code reads a handful of fields and the
typed models of the client would only add required-field checks that can break on a
newer server. The official ``kubernetes`` client is imported lazily: it is slow to
import and only this workflow needs it.
"""

import base64
import json
from dataclasses import dataclass
from typing import Any, Protocol

import urllib3

from wandb_ops.core.errors import WandbOpsError

TOKEN_PREFIX = "k8s-aws-v1."  # noqa: S105 - the EKS token format, not a credential
CLUSTER_ID_HEADER = "x-k8s-aws-id"
TOKEN_LIFETIME_SECONDS = 60  # what the EKS authenticator accepts, as `aws eks get-token` uses
MERGE_PATCH = "application/merge-patch+json"
CR_GROUP, CR_VERSION, CR_PLURAL = "apps.wandb.com", "v1", "weightsandbiases"
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


class ClientKubernetesApi:
    """KubernetesApi over the official client, authenticated with an EKS token."""

    def __init__(self, endpoint: ClusterEndpoint, token: str) -> None:
        from kubernetes import client  # noqa: PLC0415 - heavy; imported only when the cut-over talks to the cluster

        configuration = client.Configuration(host=endpoint.url)
        configuration.ca_cert_data = endpoint.ca_pem
        configuration.verify_ssl = True
        configuration.api_key = {"BearerToken": token}  # the client's name for the bearer-token scheme
        configuration.api_key_prefix = {"BearerToken": "Bearer"}
        api_client = client.ApiClient(configuration)
        self._cluster = endpoint.name
        self._custom = client.CustomObjectsApi(api_client)
        self._core = client.CoreV1Api(api_client)
        self._apps = client.AppsV1Api(api_client)

    def get_custom_resource(self, namespace: str, name: str) -> dict[str, Any]:
        return self._call(
            f"get {CR_PLURAL}.{CR_GROUP} {namespace}/{name}",
            self._custom.get_namespaced_custom_object,
            CR_GROUP,
            CR_VERSION,
            namespace,
            CR_PLURAL,
            name,
        )

    def patch_custom_resource(self, namespace: str, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        # The client would send a dict with the JSON-patch content type, which the server rejects.
        return self._call(
            f"patch {CR_PLURAL}.{CR_GROUP} {namespace}/{name}",
            self._custom.patch_namespaced_custom_object,
            CR_GROUP,
            CR_VERSION,
            namespace,
            CR_PLURAL,
            name,
            patch,
            _content_type=MERGE_PATCH,
            _echoes_values=True,
        )

    def get_secret(self, namespace: str, name: str) -> dict[str, Any]:
        return self._call(f"get secret {namespace}/{name}", self._core.read_namespaced_secret, name, namespace)

    def patch_secret(self, namespace: str, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        return self._call(
            f"patch secret {namespace}/{name}",
            self._core.patch_namespaced_secret,
            name,
            namespace,
            patch,
            _content_type=MERGE_PATCH,
            _echoes_values=True,
        )

    def list_deployments(self, namespace: str, label_selector: str) -> list[dict[str, Any]]:
        listed = self._call(
            f"list deployments in {namespace} ({label_selector})",
            self._apps.list_namespaced_deployment,
            namespace,
            label_selector=label_selector,
        )
        return list(listed.get("items", []))

    def get_deployment(self, namespace: str, name: str) -> dict[str, Any]:
        return self._call(f"get deployment {namespace}/{name}", self._apps.read_namespaced_deployment, name, namespace)

    def patch_deployment(self, namespace: str, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        return self._call(
            f"patch deployment {namespace}/{name}",
            self._apps.patch_namespaced_deployment,
            name,
            namespace,
            patch,
            _content_type=MERGE_PATCH,
        )

    def _call(self, what: str, method: Any, *args: Any, _echoes_values: bool = False, **kwargs: Any) -> dict[str, Any]:
        """``_echoes_values``: the request carries credentials, and a validation or admission error may
        quote them back, so the server's message is left out of the error (it becomes workflow state)."""
        from kubernetes.client.exceptions import ApiException  # noqa: PLC0415 - see __init__

        try:
            response = method(*args, _preload_content=False, _request_timeout=(5, 20), **kwargs)
        except ApiException as exc:
            raise KubernetesError(self._explain(what, exc, quote_server=not _echoes_values)) from None
        except urllib3.exceptions.HTTPError as exc:
            raise KubernetesError(
                f"{what}: cannot reach the API server of EKS cluster {self._cluster} ({type(exc).__name__}). "
                "The endpoint is private: run the function in the cluster's VPC (DatabaseAccessSubnetIds) "
                "and allow its security group on the cluster security group, port 443"
            ) from None
        result: dict[str, Any] = json.loads(response.data)
        return result

    def _explain(self, what: str, exc: Any, *, quote_server: bool) -> str:
        message = ""
        if quote_server:
            try:
                message = json.loads(exc.body).get("message", "")
            except (TypeError, ValueError):
                message = ""
        message = message or str(exc.reason)
        fix = {
            401: "the cluster did not accept the function's EKS token: create the access entry for the function's "
            f"role (docs/rotation.md) on cluster {self._cluster}",
            403: f"apply the Role and RoleBinding of {RBAC_DOC} in that namespace and map the function's role "
            "to their group with an EKS access entry",
            404: "check the stack parameters WandbKubernetesNamespace, WandbResourceName and WandbDeployments",
        }.get(exc.status, "see the API server's message")
        return f"{what}: HTTP {exc.status}: {message}: {fix}"
