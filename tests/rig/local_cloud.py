"""One object for a test or the demo: the emulator, the Lambda runtime and the deployer."""

import json
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3

from tests.rig import cloudwatch, kms, rds, s3, secretsmanager
from tests.rig.emulator import Emulator, start_emulator
from tests.rig.lambda_runtime import LocalLambdaRuntime
from tests.rig.stack import REPO_ROOT, TEMPLATE_PATH, DeployedStack, StackDeployer

LAYER_DIRS = [REPO_ROOT / "layers" / "common"]


@dataclass
class Execution:
    arn: str
    status: str
    output: Any
    error: str | None
    cause: str | None
    history: list[dict[str, Any]] = field(repr=False)

    def states_entered(self) -> list[str]:
        return [e["stateEnteredEventDetails"]["name"] for e in self.history if "stateEnteredEventDetails" in e]


@dataclass
class LocalCloud:
    emulator: Emulator
    runtime: LocalLambdaRuntime
    deployer: StackDeployer

    def deploy(
        self, parameters: dict[str, str], stack_name: str = "wandb-ops", template_path: Path = TEMPLATE_PATH
    ) -> DeployedStack:
        return self.deployer.deploy(stack_name, parameters, template_path)

    def run(self, state_machine_arn: str, workflow_input: dict[str, Any], timeout_s: float = 120) -> Execution:
        """Start an execution and wait for it to end; the interpreter runs it in the background."""
        return self.wait(self.start(state_machine_arn, workflow_input), timeout_s)

    def start(self, state_machine_arn: str, workflow_input: dict[str, Any]) -> str:
        sfn = boto3.client("stepfunctions", region_name=self.emulator.region)
        # moto names every unnamed execution "None": a second one would collide, so name each.
        name = f"run-{uuid.uuid4().hex[:12]}"
        arn: str = sfn.start_execution(stateMachineArn=state_machine_arn, name=name, input=json.dumps(workflow_input))[
            "executionArn"
        ]
        return arn

    def wait(self, arn: str, timeout_s: float = 120) -> Execution:
        sfn = boto3.client("stepfunctions", region_name=self.emulator.region)
        deadline = time.monotonic() + timeout_s
        while True:
            described = sfn.describe_execution(executionArn=arn)
            if described["status"] != "RUNNING":
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"execution {arn} still RUNNING after {timeout_s}s")
            time.sleep(0.05)
        history = sfn.get_execution_history(executionArn=arn, maxResults=1000)["events"]
        output = json.loads(described["output"]) if described.get("output") else None
        return Execution(arn, described["status"], output, described.get("error"), described.get("cause"), history)

    def reset(self) -> None:
        self.emulator.reset()
        self.runtime.invocations.clear()

    def stop(self) -> None:
        self.emulator.stop()


def start_local_cloud() -> LocalCloud:
    emulator = start_emulator()
    cloudwatch.install()
    kms.install()
    rds.install()
    s3.install()
    secretsmanager.install()
    runtime = LocalLambdaRuntime(LAYER_DIRS)
    runtime.install()
    return LocalCloud(emulator, runtime, StackDeployer(runtime, emulator.region))
