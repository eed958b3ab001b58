"""W&B running on a (fake) EKS cluster against a real MySQL engine, for the credential
rotation tests and the demo: the fake API server registered as the EKS cluster in the
emulator, W&B's database settings where the chosen install keeps them, its deployments,
the fake W&B app, and the cut-over and rotation functions pointed at the engine's CA."""

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

import boto3

from tests.rig.eks import register_cluster
from tests.rig.engines import Engine, EngineUnavailable, start_engine
from tests.rig.fake_kubernetes import FakeKubernetes, MysqlConfig
from tests.rig.fake_wandb_app import FakeWandbApp
from tests.rig.stack import DeployedStack
from tests.rig.wandb_deployment import SimulatedWandb

Mode = Literal["operator", "legacy"]
OPERATOR_DEPLOYMENTS = ("wandb-app", "wandb-parquet", "wandb-flat-run-fields-updater")


@dataclass
class WandbOnKubernetes:
    mode: Mode
    kube: FakeKubernetes
    app: FakeWandbApp

    def stack_parameters(self, master_secret_arn: str) -> dict[str, str]:
        """What `sam deploy --guided` would be given for this install."""
        return {
            "WandbUrl": self.app.url,
            "MasterSecretArn": master_secret_arn,
            "WandbTarget": "operator" if self.mode == "operator" else "legacy-secret",
            "WandbDeployments": "app.kubernetes.io/instance=wandb" if self.mode == "operator" else "wandb",
        }

    def stop(self) -> None:
        self.app.stop()
        self.kube.stop()


def start_wandb_on_kubernetes(cluster_name: str, engine: Engine, mode: Mode, config: MysqlConfig) -> WandbOnKubernetes:
    kube = FakeKubernetes(cluster_name=cluster_name, mode=mode).start()
    if mode == "operator":
        kube.add_wandb_custom_resource(config)
        for name in OPERATOR_DEPLOYMENTS:
            kube.add_deployment(name, labels={"app.kubernetes.io/instance": "wandb", "app.kubernetes.io/name": name})
    else:
        kube.add_legacy_secret(config)
        kube.add_deployment("wandb", labels={"app": "wandb"}, replicas=3)
    register_cluster(cluster_name, kube.url, kube.ca_pem)
    app = FakeWandbApp(kube, engine.host, engine.port, engine.ca_path).start()
    return WandbOnKubernetes(mode, kube, app)


def start_wandb_database(wandb: SimulatedWandb) -> tuple[Engine, WandbOnKubernetes]:
    """A private MariaDB standing in for Aurora, with W&B's database and the seeded master user (the
    master secret now points at it), and W&B's operator install logging in to it as the master
    user, as a deployment not yet onboarded does. Raises EngineUnavailable without MariaDB."""
    engine = start_engine("mariadb")
    secretsmanager = boto3.client("secretsmanager")
    master = json.loads(secretsmanager.get_secret_value(SecretId=wandb.master_secret_arn)["SecretString"])
    with engine.connect(autocommit=True) as root, root.cursor() as cursor:
        cursor.execute("CREATE DATABASE wandb_local")
        cursor.execute("CREATE TABLE wandb_local.runs (id INT PRIMARY KEY, name VARCHAR(64))")
        cursor.execute("CREATE USER %s@'%%' IDENTIFIED BY %s", (master["username"], master["password"]))
        cursor.execute("GRANT ALL PRIVILEGES ON *.* TO %s@'%%' WITH GRANT OPTION", (master["username"],))
    secretsmanager.put_secret_value(
        SecretId=wandb.master_secret_arn,
        SecretString=json.dumps({**master, "host": engine.host, "port": engine.port, "ssl": True}),
    )
    config = MysqlConfig(master["username"], master["password"], engine.host, engine.port, "wandb_local")
    return engine, start_wandb_on_kubernetes(wandb.namespace, engine, "operator", config)


@contextmanager
def private_wandb_database(wandb: SimulatedWandb) -> Iterator[tuple[Engine, WandbOnKubernetes] | None]:
    """``start_wandb_database``, stopped on exit, for the demo and the benchmarks; None, saying
    why, when this machine has no MariaDB (the credential rotation is then left out)."""
    try:
        engine, kubernetes = start_wandb_database(wandb)
    except EngineUnavailable as exc:
        print(f"(no local MariaDB, so the credential rotation is left out: {exc})")
        yield None
        return
    try:
        yield engine, kubernetes
    finally:
        kubernetes.stop()
        engine.stop()


def point_functions_at_engine(stack: DeployedStack, engine: Engine, **cutover_variables: str) -> None:
    """The rig's CA signs the engines' certificates, as a private CA would: set DB_CA_BUNDLE like an
    operator would. Extra variables (poll timings) go to the cut-over function."""
    stack.set_function_environment("CredentialCutoverFunction", DB_CA_BUNDLE=str(engine.ca_path), **cutover_variables)
    stack.set_function_environment("MySqlRotationFunction", DB_CA_BUNDLE=str(engine.ca_path))
