"""The fake EKS API server and the fake W&B app, driven by the official kubernetes client,
boto3 against the emulator and real MySQL engines: they must answer as the real things do,
or the cut-over tests built on them prove nothing."""

import base64
import json
import re
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.rig.eks import register_cluster
from tests.rig.emulator import ACCOUNT_ID
from tests.rig.engines import Engine
from tests.rig.fake_kubernetes import FakeKubernetes, MysqlConfig
from tests.rig.fake_wandb_app import FakeWandbApp
from tests.rig.local_cloud import LocalCloud
from wandb_ops.access.kubernetes import api as kubernetes_access

CLUSTER = "wandb-test"
NS = "default"
GROUP, VERSION, PLURAL = "apps.wandb.com", "v1", "weightsandbiases"
MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
INSTANCE = {"app.kubernetes.io/instance": "wandb"}
ORIGINAL = MysqlConfig(
    "wandb", "Original0Password", "wandb.cluster-abc.us-east-1.rds.amazonaws.com", 3306, "wandb_local"
)
ROTATED = MysqlConfig("wandb_r1", "Rotated0Password", ORIGINAL.host, ORIGINAL.port, ORIGINAL.database)
MOTO_USER = f"arn:aws:sts::{ACCOUNT_ID}:user/moto"
CLUSTER_ID_HEADER = "x-k8s-aws-id"


def eks_token(cluster_name: str, sts: Any | None = None) -> str:
    """The production token (wandb_ops.access.kubernetes.api), from the rig's credentials by default."""
    return kubernetes_access.eks_token(sts or boto3.client("sts"), cluster_name)


@dataclass
class Apis:
    custom: client.CustomObjectsApi
    core: client.CoreV1Api
    apps: client.AppsV1Api


@pytest.fixture
def connect(tmp_path: Path) -> Callable[[FakeKubernetes, str | None], Apis]:
    def connect(kube: FakeKubernetes, token: str | None) -> Apis:
        ca_file = tmp_path / "cluster-ca.pem"
        ca_file.write_text(kube.ca_pem)
        configuration = client.Configuration(
            host=kube.url,
            ssl_ca_cert=str(ca_file),
            api_key={"authorization": token} if token else {},
            api_key_prefix={"authorization": "Bearer"},
        )
        api_client = client.ApiClient(configuration)
        return Apis(client.CustomObjectsApi(api_client), client.CoreV1Api(api_client), client.AppsV1Api(api_client))

    return connect


@pytest.fixture
def kube(cloud: LocalCloud) -> Iterator[FakeKubernetes]:
    with FakeKubernetes(cluster_name=CLUSTER, mode="operator") as fake:
        fake.add_wandb_custom_resource(ORIGINAL)
        for name in ("wandb-app", "wandb-parquet"):
            fake.add_deployment(name, labels=INSTANCE | {"app.kubernetes.io/name": name})
        yield fake


@pytest.fixture
def apis(kube: FakeKubernetes, connect: Callable[[FakeKubernetes, str | None], Apis]) -> Apis:
    return connect(kube, eks_token(CLUSTER))


def get_resource(custom: client.CustomObjectsApi, namespace: str = NS) -> dict[str, Any]:
    """The WeightsAndBiases resource `wandb` (the client types custom objects as plain objects)."""
    resource = custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "wandb")
    assert isinstance(resource, dict)
    return resource


def status_of(error: pytest.ExceptionInfo[ApiException]) -> dict[str, Any]:
    status: dict[str, Any] = json.loads(error.value.body or "")
    assert status["kind"] == "Status" and status["code"] == error.value.status
    return status


def restart(apps: client.AppsV1Api, name: str) -> None:
    """`kubectl rollout restart`, as a merge patch. kubectl stamps whole seconds, so two restarts within a
    second are one (the second patch changes nothing): microseconds keep each restart a restart."""
    annotations = {"kubectl.kubernetes.io/restartedAt": datetime.now(UTC).isoformat()}
    patch = {"spec": {"template": {"metadata": {"annotations": annotations}}}}
    apps.patch_namespaced_deployment(name, NS, patch, _content_type=MERGE_PATCH)


def rolled_out(deployment: client.V1Deployment) -> bool:
    """kubectl's completion rules (docs/rotation.md)."""
    assert deployment.metadata and deployment.spec and deployment.status
    status = deployment.status
    return (
        (status.observed_generation or 0) >= (deployment.metadata.generation or 0)
        and (status.updated_replicas or 0) >= (deployment.spec.replicas or 0)
        and (status.replicas or 0) <= (status.updated_replicas or 0)
        and (status.available_replicas or 0) >= (status.updated_replicas or 0)
    )


def progressing(deployment: client.V1Deployment) -> client.V1DeploymentCondition:
    assert deployment.status and deployment.status.conditions
    return next(c for c in deployment.status.conditions if c.type == "Progressing")


def switch_user(apis: Apis, config: MysqlConfig) -> None:
    mysql = {"user": config.user, "password": config.password}
    patch = {"spec": {"values": {"global": {"mysql": mysql}}}}
    apis.custom.patch_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, "wandb", patch, _content_type=MERGE_PATCH)


# ---------------------------------------------------------------- authentication and RBAC


def test_requests_without_a_valid_eks_token_are_unauthorized(
    kube: FakeKubernetes, connect: Callable[[FakeKubernetes, str | None], Apis]
) -> None:
    forged = "k8s-aws-v1." + base64.urlsafe_b64encode(b"https://example.com/?Action=GetCallerIdentity").decode()
    for token in (None, "not-an-eks-token", forged, eks_token("another-cluster")):
        with pytest.raises(ApiException) as error:
            get_resource(connect(kube, token).custom)
        assert status_of(error)["reason"] == "Unauthorized", token
    assert [identity for _, _, identity in kube.requests] == [""] * 4


def test_an_assumed_role_is_its_role_and_needs_an_access_entry(
    cloud: LocalCloud, connect: Callable[[FakeKubernetes, str | None], Apis]
) -> None:
    role = f"arn:aws:iam::{ACCOUNT_ID}:role/wandb-ops-credential-rotation"
    credentials = boto3.client("sts").assume_role(RoleArn=role, RoleSessionName="cutover")["Credentials"]
    sts = boto3.client(
        "sts",
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["SessionToken"],
    )
    with FakeKubernetes(
        cluster_name=CLUSTER, mode="operator", access_entries={role: ["wandb-ops-credential-rotation"]}
    ) as kube:
        kube.add_wandb_custom_resource(ORIGINAL)
        resource = get_resource(connect(kube, eks_token(CLUSTER, sts)).custom)
        assert resource["spec"]["values"]["global"]["mysql"]["user"] == "wandb"
        assert kube.requests == [("get", f"/apis/{GROUP}/{VERSION}/namespaces/{NS}/{PLURAL}/wandb", role)]
        # The rig's own identity has no access entry on this cluster: EKS says 401, not 403.
        with pytest.raises(ApiException) as error:
            get_resource(connect(kube, eks_token(CLUSTER)).custom)
        assert error.value.status == 401


def test_rbac_allows_what_docs_kubernetes_rbac_yaml_grants_and_nothing_else(kube: FakeKubernetes, apis: Apis) -> None:
    kube.add_deployment("console", labels={"app.kubernetes.io/instance": "console"}, replicas=1)
    assert get_resource(apis.custom)["kind"] == "WeightsAndBiases"
    listed = apis.apps.list_namespaced_deployment(NS, label_selector="app.kubernetes.io/instance=wandb")
    assert [d.metadata.name for d in listed.items if d.metadata] == ["wandb-app", "wandb-parquet"]
    listed = apis.apps.list_namespaced_deployment(NS, label_selector="app.kubernetes.io/instance!=wandb")
    assert [d.metadata.name for d in listed.items if d.metadata] == ["console"]

    with pytest.raises(ApiException) as error:
        apis.custom.delete_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, "wandb")
    assert status_of(error)["message"] == (
        f'weightsandbiases.apps.wandb.com "wandb" is forbidden: User "{MOTO_USER}" cannot delete resource '
        f'"weightsandbiases" in API group "apps.wandb.com" in the namespace "default"'
    )
    with pytest.raises(ApiException) as error:
        apis.custom.replace_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, "wandb", {})
    assert status_of(error)["reason"] == "Forbidden"
    assert apis.core.read_namespaced_secret("wandb-mysql", NS).data  # the operator's Secret: read only
    with pytest.raises(ApiException) as error:
        apis.core.patch_namespaced_secret("wandb-mysql", NS, {"data": {}}, _content_type=MERGE_PATCH)
    assert status_of(error) | {"message": ""} == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": "",
        "reason": "Forbidden",
        "details": {"name": "wandb-mysql", "kind": "secrets"},
        "code": 403,
    }
    assert status_of(error)["message"].startswith('secrets "wandb-mysql" is forbidden: User ')
    with pytest.raises(ApiException) as error:
        apis.core.list_namespaced_secret(NS)  # resourceNames rules never allow a list
    assert error.value.status == 403
    with pytest.raises(ApiException) as error:
        get_resource(apis.custom, "other")
    assert error.value.status == 403
    # Allowed, but absent: this is an operator install.
    with pytest.raises(ApiException) as error:
        apis.core.read_namespaced_secret("wandb", NS)
    assert status_of(error)["message"] == 'secrets "wandb" not found'
    with pytest.raises(ApiException) as error:
        apis.apps.patch_namespaced_deployment("wandb-glue", NS, {}, _content_type=MERGE_PATCH)
    assert status_of(error)["reason"] == "NotFound"
    # Deployments are listed by label, but only the W&B ones the Role names may be read or restarted.
    with pytest.raises(ApiException) as error:
        apis.apps.patch_namespaced_deployment("console", NS, {}, _content_type=MERGE_PATCH)
    assert status_of(error)["reason"] == "Forbidden"


# ---------------------------------------------------------------- patches and the operator


def test_a_merge_patch_changes_the_resource_and_the_operator_renders_its_secret(
    kube: FakeKubernetes, apis: Apis
) -> None:
    before = kube.custom_resource()
    switch_user(apis, ROTATED)
    after = kube.custom_resource()
    assert after["spec"]["values"]["global"]["mysql"] == {
        "host": ORIGINAL.host,
        "port": 3306,
        "database": "wandb_local",
        "user": "wandb_r1",
        "password": "Rotated0Password",
    }
    assert after["spec"]["chart"] == before["spec"]["chart"]
    assert after["metadata"]["generation"] == before["metadata"]["generation"] + 1
    assert int(after["metadata"]["resourceVersion"]) > int(before["metadata"]["resourceVersion"])
    assert kube.secret_data("wandb-mysql") == {"MYSQL_PASSWORD": "Rotated0Password"}
    assert kube.current_wandb_config() == ROTATED

    switch_user(apis, ROTATED)  # changes nothing: no new version
    assert kube.custom_resource()["metadata"]["resourceVersion"] == after["metadata"]["resourceVersion"]


def test_the_operator_undoes_a_patch_of_its_own_secret(
    cloud: LocalCloud, tmp_path: Path, connect: Callable[[FakeKubernetes, str | None], Apis]
) -> None:
    rbac = tmp_path / "admin.yaml"
    rbac.write_text(
        "kind: Role\nmetadata: {name: admin}\nrules: [{apiGroups: ['*'], resources: ['*'], verbs: ['*']}]\n---\n"
        "kind: RoleBinding\nmetadata: {name: admin}\nroleRef: {kind: Role, name: admin}\n"
        "subjects: [{kind: Group, name: admins}]\n"
    )
    with FakeKubernetes(
        cluster_name=CLUSTER, mode="operator", rbac_path=rbac, access_entries={MOTO_USER: ["admins"]}
    ) as kube:
        kube.add_wandb_custom_resource(ORIGINAL)
        apis = connect(kube, eks_token(CLUSTER))
        patched = apis.core.patch_namespaced_secret(
            "wandb-mysql", NS, {"stringData": {"MYSQL_PASSWORD": "Sneaky"}}, _content_type=MERGE_PATCH
        )
        assert patched.data == {"MYSQL_PASSWORD": base64.b64encode(b"Sneaky").decode()}
        assert kube.secret_data("wandb-mysql") == {"MYSQL_PASSWORD": ORIGINAL.password}
        # Allowed by this role, but not something the fake serves.
        with pytest.raises(ApiException) as error:
            apis.custom.delete_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, "wandb")
        assert status_of(error)["reason"] == "MethodNotAllowed"
        with pytest.raises(ApiException) as error:
            apis.core.delete_collection_namespaced_secret(NS)
        assert error.value.status == 405


def test_patch_content_types_are_accepted_where_the_api_server_accepts_them(
    kube: FakeKubernetes, apis: Apis, tmp_path: Path
) -> None:
    ca_file = tmp_path / "ca.pem"
    ca_file.write_text(kube.ca_pem)
    token = eks_token(CLUSTER)

    def raw_patch(path: str, content_type: str, body: Any) -> requests.Response:
        headers = {"Authorization": f"Bearer {token}", "Content-Type": content_type}
        return requests.patch(
            f"{kube.url}{path}", data=json.dumps(body), headers=headers, verify=str(ca_file), timeout=10
        )

    resource_path = f"/apis/{GROUP}/{VERSION}/namespaces/{NS}/{PLURAL}/wandb"
    user_patch = {"spec": {"values": {"global": {"mysql": {"user": "x"}}}}}
    response = raw_patch(resource_path, JSON_PATCH, user_patch)
    assert (response.status_code, response.json()["reason"]) == (400, "BadRequest")
    response = raw_patch(resource_path, STRATEGIC_MERGE_PATCH, user_patch)
    assert (response.status_code, response.json()["reason"]) == (415, "UnsupportedMediaType")
    # The client turns a dict body with the JSON-patch type into a strategic merge: 415 on a custom resource.
    with pytest.raises(ApiException) as error:
        apis.custom.patch_namespaced_custom_object(
            GROUP, VERSION, NS, PLURAL, "wandb", user_patch, _content_type=JSON_PATCH
        )
    assert error.value.status == 415
    assert kube.custom_resource()["spec"]["values"]["global"]["mysql"]["user"] == "wandb"

    mysql = "/spec/values/global/mysql"
    operations = [{"op": "test", "path": f"{mysql}/user", "value": "wandb"}]
    operations.append({"op": "replace", "path": f"{mysql}/user", "value": "wandb_r1"})
    apis.custom.patch_namespaced_custom_object(
        GROUP, VERSION, NS, PLURAL, "wandb", operations, _content_type=JSON_PATCH
    )
    assert kube.current_wandb_config().user == "wandb_r1"
    with pytest.raises(ApiException) as error:  # the test operation fails now
        apis.custom.patch_namespaced_custom_object(
            GROUP, VERSION, NS, PLURAL, "wandb", operations, _content_type=JSON_PATCH
        )
    assert status_of(error)["reason"] == "Invalid"

    # Built-in kinds take strategic merge, which merges maps like a merge patch.
    labels = {"metadata": {"labels": {"team": "ml"}}}
    response = raw_patch(f"/apis/apps/v1/namespaces/{NS}/deployments/wandb-app", STRATEGIC_MERGE_PATCH, labels)
    assert response.status_code == 200
    assert response.json()["metadata"]["labels"] == INSTANCE | {"app.kubernetes.io/name": "wandb-app", "team": "ml"}
    assert response.json()["metadata"]["generation"] == 1  # metadata is not spec
    response = raw_patch(f"/apis/apps/v1/namespaces/{NS}/deployments/wandb-app", "text/plain", labels)
    assert response.status_code == 415


def test_a_legacy_install_keeps_w_and_b_settings_in_a_secret(
    cloud: LocalCloud, connect: Callable[[FakeKubernetes, str | None], Apis]
) -> None:
    with FakeKubernetes(cluster_name=CLUSTER, mode="legacy") as kube:
        kube.add_legacy_secret(ORIGINAL)
        kube.add_deployment("wandb", labels={"app": "wandb"}, replicas=3)
        apis = connect(kube, eks_token(CLUSTER))
        secret = apis.core.read_namespaced_secret("wandb", NS)
        assert secret.data is not None
        url = base64.b64decode(secret.data["MYSQL"]).decode()
        assert url == f"mysql://wandb:Original0Password@{ORIGINAL.host}:3306/wandb_local"
        rotated = url.replace("wandb:Original0Password", "wandb_r1:Rotated0Password")
        patch = {"data": {"MYSQL": base64.b64encode(rotated.encode()).decode()}}
        apis.core.patch_namespaced_secret("wandb", NS, patch, _content_type=MERGE_PATCH)
        assert kube.current_wandb_config() == ROTATED
        assert kube.secret_data("wandb")["LICENSE"] == "wandb-test-license"  # the other keys are untouched
        with pytest.raises(ApiException) as error:
            apis.core.patch_namespaced_secret(
                "wandb", NS, {"data": {"MYSQL": "not base64!"}}, _content_type=MERGE_PATCH
            )
        assert error.value.status == 422
        assert kube.serving_configs() == [ORIGINAL]  # until the pods restart


# ---------------------------------------------------------------- rollouts


def test_a_restart_rolls_out_over_polls_and_completes_by_kubectl_rules(kube: FakeKubernetes, apis: Apis) -> None:
    restarted: list[tuple[str, MysqlConfig]] = []
    kube.on_restart.append(lambda name, config: restarted.append((name, config)))
    switch_user(apis, ROTATED)
    assert kube.serving_configs() == [ORIGINAL]  # settings changed, pods not restarted
    restart(apis.apps, "wandb-app")
    assert restarted == [("wandb-app", ROTATED)]
    assert kube.deployment("wandb-app")["metadata"]["generation"] == 2

    history = []
    for _ in range(8):
        deployment = apis.apps.read_namespaced_deployment("wandb-app", NS)
        assert deployment.status
        history.append(
            (
                deployment.status.observed_generation,
                deployment.status.updated_replicas,
                deployment.status.available_replicas,
                deployment.status.replicas,
                rolled_out(deployment),
            )
        )
        if len(history) == 4:  # in the middle of the rollout, old and new pods both serve
            assert kube.serving_configs() == [ORIGINAL, ROTATED]
    assert history == [
        (1, 2, 2, 2, False),  # not observed yet
        (2, 1, 2, 3, False),  # one new pod surging
        (2, 1, 2, 3, False),
        (2, 2, 2, 3, False),  # one new available, one old gone, the second new pod starting
        (2, 2, 2, 3, False),
        (2, 2, 2, 2, True),
        (2, 2, 2, 2, True),
        (2, 2, 2, 2, True),
    ]
    assert kube.serving_configs() == [ORIGINAL, ROTATED]  # wandb-parquet was not restarted
    condition = progressing(deployment)
    assert (condition.status, condition.reason) == ("True", "NewReplicaSetAvailable")
    assert re.fullmatch(r'ReplicaSet "wandb-app-[a-z0-9]{10}" has successfully progressed\.', condition.message or "")
    assert deployment.metadata and deployment.metadata.annotations
    assert deployment.metadata.annotations["deployment.kubernetes.io/revision"] == "2"

    restart(apis.apps, "wandb-parquet")
    for _ in range(6):  # a list is a poll of every deployment in it
        listed = apis.apps.list_namespaced_deployment(NS, label_selector="app.kubernetes.io/instance=wandb")
    assert all(rolled_out(d) for d in listed.items)
    assert kube.serving_configs() == [ROTATED]


def test_a_paused_deployment_stores_the_restart_but_does_not_roll(kube: FakeKubernetes, apis: Apis) -> None:
    kube.add_deployment("wandb-weave", labels={"app": "wandb-weave"}, paused=True)
    restarted: list[str] = []
    kube.on_restart.append(lambda name, _config: restarted.append(name))
    switch_user(apis, ROTATED)
    restart(apis.apps, "wandb-weave")
    for _ in range(10):
        deployment = apis.apps.read_namespaced_deployment("wandb-weave", NS)
    assert deployment.metadata and deployment.status
    assert (deployment.metadata.generation, deployment.status.observed_generation) == (2, 2)
    assert deployment.status.updated_replicas is None  # no pod runs the new template
    assert not rolled_out(deployment)
    assert (progressing(deployment).status, progressing(deployment).reason) == ("Unknown", "DeploymentPaused")
    assert restarted == []
    assert kube.serving_configs() == [ORIGINAL]


def test_pods_that_cannot_start_hit_the_progress_deadline_and_a_new_restart_recovers(
    kube: FakeKubernetes, apis: Apis
) -> None:
    kube.pod_starts = lambda config: config.user != ROTATED.user
    switch_user(apis, ROTATED)
    restart(apis.apps, "wandb-app")
    conditions = []
    for _ in range(12):
        deployment = apis.apps.read_namespaced_deployment("wandb-app", NS)
        conditions.append(progressing(deployment).reason)
        assert kube.serving_configs() == [ORIGINAL]
    assert conditions == ["NewReplicaSetAvailable"] + ["ReplicaSetUpdated"] * 10 + ["ProgressDeadlineExceeded"]
    assert deployment.status
    assert (deployment.status.updated_replicas, deployment.status.available_replicas) == (1, 2)
    assert progressing(deployment).status == "False"
    assert re.fullmatch(
        r'ReplicaSet "wandb-app-[a-z0-9]{10}" has timed out progressing\.', progressing(deployment).message or ""
    )

    switch_user(apis, ORIGINAL)  # the rollback: old settings, a new restart supersedes the stuck one
    restart(apis.apps, "wandb-app")
    for _ in range(6):
        deployment = apis.apps.read_namespaced_deployment("wandb-app", NS)
    assert rolled_out(deployment)
    assert progressing(deployment).reason == "NewReplicaSetAvailable"
    assert kube.serving_configs() == [ORIGINAL]


# ---------------------------------------------------------------- EKS


def test_describe_cluster_points_at_the_fake(kube: FakeKubernetes) -> None:
    arn = register_cluster(CLUSTER, kube.url, kube.ca_pem)
    cluster = boto3.client("eks").describe_cluster(name=CLUSTER)["cluster"]
    assert arn == cluster["arn"] == f"arn:aws:eks:us-east-1:{ACCOUNT_ID}:cluster/{CLUSTER}"
    assert cluster["status"] == "ACTIVE"
    assert cluster["endpoint"] == kube.url
    ca_pem = base64.b64decode(cluster["certificateAuthority"]["data"]).decode()
    assert ca_pem == kube.ca_pem
    configuration = client.Configuration(host=cluster["endpoint"], ca_cert_data=ca_pem)
    configuration.api_key = {"authorization": eks_token(CLUSTER)}
    configuration.api_key_prefix = {"authorization": "Bearer"}
    custom = client.CustomObjectsApi(client.ApiClient(configuration))
    assert get_resource(custom)["metadata"]["name"] == "wandb"


# ---------------------------------------------------------------- the W&B app


@pytest.fixture
def app_config(mysql_engine: Engine) -> Iterator[MysqlConfig]:
    user, password = f"fakeapp{secrets.token_hex(3)}", secrets.token_hex(12)
    with mysql_engine.connect(autocommit=True) as root, root.cursor() as cursor:
        cursor.execute("CREATE DATABASE IF NOT EXISTS wandb_local")
        cursor.execute(f"CREATE USER '{user}'@'%' IDENTIFIED BY '{password}' REQUIRE SSL")
        cursor.execute(f"GRANT SELECT ON wandb_local.* TO '{user}'@'%'")
    yield MysqlConfig(user, password, "wandb.cluster-abc.us-east-1.rds.amazonaws.com", 3306, "wandb_local")
    with mysql_engine.connect(autocommit=True) as root, root.cursor() as cursor:
        cursor.execute(f"DROP USER IF EXISTS '{user}'@'%'")


def wait_for(condition: Callable[[], bool], timeout_s: float = 5) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def test_the_app_is_ready_while_every_serving_pod_can_log_in(mysql_engine: Engine, app_config: MysqlConfig) -> None:
    user = app_config.user
    with (
        FakeKubernetes(cluster_name=CLUSTER, mode="legacy") as kube,
        FakeWandbApp(kube, mysql_engine.host, mysql_engine.port, mysql_engine.ca_path, api_key="k3y") as app,
    ):
        kube.add_legacy_secret(app_config)
        kube.add_deployment("wandb", labels={"app": "wandb"})

        def graphql(key: str | None) -> requests.Response:
            auth = {"Authorization": "Basic " + base64.b64encode(f"api:{key}".encode()).decode()} if key else {}
            body = {"query": "{ viewer { username } }"}
            return requests.post(f"{app.url}/graphql", json=body, headers=auth, timeout=10)

        assert requests.get(f"{app.url}/healthz", timeout=10).status_code == 200
        assert requests.get(f"{app.url}/ready", timeout=10).status_code == 200
        assert graphql(None).status_code == 401
        assert graphql("wrong").status_code == 401
        answer = graphql("k3y")
        assert (answer.status_code, answer.json()) == (
            200,
            {"data": {"viewer": {"username": "admin", "entity": "admin"}}},
        )
        wait_for(lambda: app.successful_logins[user] >= 3)
        assert app.failed_logins == []

        with mysql_engine.connect(autocommit=True) as root, root.cursor() as cursor:
            cursor.execute(f"ALTER USER '{user}'@'%' ACCOUNT LOCK")
        ready = requests.get(f"{app.url}/ready", timeout=10)
        assert ready.status_code == 503
        assert user in ready.json()["reason"] and app_config.password not in ready.text
        assert graphql("k3y").status_code == 500
        assert requests.get(f"{app.url}/healthz", timeout=10).status_code == 200
        wait_for(lambda: bool(app.failed_logins))
        assert app.failed_logins[0].startswith(f"{user}: ")
        assert not any(app_config.password in failure for failure in app.failed_logins)
