"""The cut-over's own Kubernetes access (wandb_ops.access.kubernetes.api) against the fake EKS API
server: the cluster found with DescribeCluster, the EKS token, TLS against the cluster's CA, the
merge patches the server accepts, and the errors the workflow reports (status, the server's
message unless the request carried credentials, what to do), never with the token in them."""

import base64
from collections.abc import Iterator
from urllib.parse import unquote

import boto3
import pytest

from tests.rig.eks import register_cluster
from tests.rig.fake_kubernetes import FakeKubernetes, MysqlConfig
from tests.rig.local_cloud import LocalCloud
from wandb_ops.access.kubernetes.api import (
    ClusterEndpoint,
    KubernetesApi,
    KubernetesError,
    connect,
    describe_cluster,
    eks_token,
)

CLUSTER = "wandb-access"
NS = "default"
INSTANCE = {"app.kubernetes.io/instance": "wandb"}
ORIGINAL = MysqlConfig("wandb", "Original0Password", "wandb.cluster-abc.us-east-1.rds.amazonaws.com", 3306, "wandb")
ROTATED = MysqlConfig("wandb_r1", "Rotated0Password", ORIGINAL.host, ORIGINAL.port, ORIGINAL.database)
FORBIDDEN_FIX = (
    "apply the Role and RoleBinding of docs/kubernetes/rbac.yaml in that namespace and map the function's role "
    "to their group with an EKS access entry"
)
NOT_FOUND_FIX = "check the stack parameters WandbKubernetesNamespace, WandbResourceName and WandbDeployments"
UNREACHABLE = (
    "cannot reach the API server of EKS cluster wandb-access (MaxRetryError). The endpoint is private: run the "
    "function in the cluster's VPC (DatabaseAccessSubnetIds) and allow its security group on the cluster "
    "security group, port 443"
)


@pytest.fixture
def kube(cloud: LocalCloud) -> Iterator[FakeKubernetes]:
    with FakeKubernetes(cluster_name=CLUSTER, mode="operator") as fake:
        fake.add_wandb_custom_resource(ORIGINAL)
        for name in ("wandb-app", "wandb-parquet"):
            fake.add_deployment(name, labels=INSTANCE | {"app.kubernetes.io/name": name})
        fake.add_deployment("console", labels={"app.kubernetes.io/instance": "console"})
        register_cluster(CLUSTER, fake.url, fake.ca_pem)
        yield fake


def cluster_api(token: str | None = None) -> KubernetesApi:
    """What the cut-over function builds: the endpoint from DescribeCluster, a fresh EKS token."""
    endpoint = describe_cluster(boto3.client("eks"), CLUSTER)
    return connect(endpoint, token or eks_token(boto3.client("sts"), CLUSTER))


def test_the_cut_over_reads_and_merge_patches_w_and_b_over_tls_with_the_eks_token(kube: FakeKubernetes) -> None:
    api = cluster_api()
    resource = api.get_custom_resource(NS, "wandb")
    assert resource["spec"]["values"]["global"]["mysql"]["user"] == "wandb"
    mysql = {"user": ROTATED.user, "password": ROTATED.password}
    patched = api.patch_custom_resource(NS, "wandb", {"spec": {"values": {"global": {"mysql": mysql}}}})
    assert patched["spec"]["values"]["global"]["mysql"]["host"] == ORIGINAL.host  # merged, not replaced
    assert kube.current_wandb_config() == ROTATED
    secret = api.get_secret(NS, "wandb-mysql")
    assert base64.b64decode(secret["data"]["MYSQL_PASSWORD"]).decode() == ROTATED.password

    listed = api.list_deployments(NS, "app.kubernetes.io/instance=wandb")
    assert [d["metadata"]["name"] for d in listed] == ["wandb-app", "wandb-parquet"]
    annotations = {"kubectl.kubernetes.io/restartedAt": "2026-11-26T12:00:05Z"}
    restarted = api.patch_deployment(
        NS, "wandb-app", {"spec": {"template": {"metadata": {"annotations": annotations}}}}
    )
    assert restarted["metadata"]["generation"] == 2
    assert api.get_deployment(NS, "wandb-app")["spec"]["template"]["metadata"]["annotations"] == annotations
    assert [(method, unquote(path)) for method, path, _ in kube.requests] == [
        ("get", "/apis/apps.wandb.com/v1/namespaces/default/weightsandbiases/wandb"),
        ("patch", "/apis/apps.wandb.com/v1/namespaces/default/weightsandbiases/wandb"),
        ("get", "/api/v1/namespaces/default/secrets/wandb-mysql"),
        ("list", "/apis/apps/v1/namespaces/default/deployments?labelSelector=app.kubernetes.io/instance=wandb"),
        ("patch", "/apis/apps/v1/namespaces/default/deployments/wandb-app"),
        ("get", "/apis/apps/v1/namespaces/default/deployments/wandb-app"),
    ]


def test_refusals_name_the_call_the_status_and_the_fix(kube: FakeKubernetes) -> None:
    api = cluster_api()
    with pytest.raises(KubernetesError) as error:
        api.get_custom_resource("other", "wandb")
    assert str(error.value).startswith("get weightsandbiases.apps.wandb.com other/wandb: HTTP 403: ")
    assert 'weightsandbiases.apps.wandb.com "wandb" is forbidden: User ' in str(error.value)
    assert str(error.value).endswith(FORBIDDEN_FIX)
    with pytest.raises(KubernetesError) as error:
        api.get_secret(NS, "wandb")
    assert str(error.value) == f'get secret default/wandb: HTTP 404: secrets "wandb" not found: {NOT_FOUND_FIX}'
    with pytest.raises(KubernetesError) as error:
        api.get_deployment(NS, "wandb-glue")
    assert str(error.value).startswith("get deployment default/wandb-glue: HTTP 404: ")
    # A patch that carries a password: the server's message may quote it, so only its reason phrase is kept.
    with pytest.raises(KubernetesError) as error:
        api.patch_secret(NS, "wandb-mysql", {"stringData": {"MYSQL_PASSWORD": ROTATED.password}})
    assert str(error.value) == f"patch secret default/wandb-mysql: HTTP 403: Forbidden: {FORBIDDEN_FIX}"

    token = eks_token(boto3.client("sts"), "another-cluster")
    with pytest.raises(KubernetesError) as error:
        cluster_api(token).list_deployments(NS, "app=wandb")
    assert str(error.value) == (
        "list deployments in default (app=wandb): HTTP 401: Unauthorized: the cluster did not accept the "
        "function's EKS token: create the access entry for the function's role (docs/rotation.md) on cluster "
        "wandb-access"
    )
    assert token not in str(error.value)


def test_a_rejected_secret_patch_does_not_quote_what_it_carried(cloud: LocalCloud) -> None:
    with FakeKubernetes(cluster_name=CLUSTER, mode="legacy") as kube:
        kube.add_legacy_secret(ORIGINAL)
        register_cluster(CLUSTER, kube.url, kube.ca_pem)
        with pytest.raises(KubernetesError) as error:
            cluster_api().patch_secret(NS, "wandb", {"data": {"MYSQL": "not base64! Rotated0Password"}})
        assert str(error.value) == (
            "patch secret default/wandb: HTTP 422: Unprocessable Content: see the API server's message"
        )
        assert kube.current_wandb_config() == ORIGINAL


def test_an_api_server_that_fails_the_cluster_ca_or_does_not_answer_is_unreachable(kube: FakeKubernetes) -> None:
    token = eks_token(boto3.client("sts"), CLUSTER)
    with FakeKubernetes(cluster_name=CLUSTER, mode="operator") as impostor:  # same cluster name, another CA
        with pytest.raises(KubernetesError) as error:
            connect(ClusterEndpoint(CLUSTER, impostor.url, kube.ca_pem), token).get_custom_resource(NS, "wandb")
        assert str(error.value) == f"get weightsandbiases.apps.wandb.com default/wandb: {UNREACHABLE}"
        assert impostor.requests == []  # the token never left the client
        closed = impostor.url
    with pytest.raises(KubernetesError) as error:
        connect(ClusterEndpoint(CLUSTER, closed, kube.ca_pem), token).get_deployment(NS, "wandb-app")
    assert str(error.value) == f"get deployment default/wandb-app: {UNREACHABLE}"
    assert kube.requests == []
