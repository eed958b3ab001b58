"""W&B running on a (fake) EKS cluster against a real MySQL engine, for the credential
rotation tests and the demo: the fake API server registered as the EKS cluster in the
emulator, W&B's database settings where the chosen install keeps them, its deployments,
the fake W&B app, and the cut-over and rotation functions pointed at the engine's CA."""

from dataclasses import dataclass
from typing import Literal

from tests.rig.eks import register_cluster
from tests.rig.engines import Engine
from tests.rig.fake_kubernetes import FakeKubernetes, MysqlConfig
from tests.rig.fake_wandb_app import FakeWandbApp
from tests.rig.stack import DeployedStack

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


def point_functions_at_engine(stack: DeployedStack, engine: Engine, **cutover_variables: str) -> None:
    """The rig's CA signs the engines' certificates, as a private CA would: set DB_CA_BUNDLE like an
    operator would. Extra variables (poll timings) go to the cut-over function."""
    stack.set_function_environment("CredentialCutoverFunction", DB_CA_BUNDLE=str(engine.ca_path), **cutover_variables)
    stack.set_function_environment("MySqlRotationFunction", DB_CA_BUNDLE=str(engine.ca_path))
