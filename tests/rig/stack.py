"""Deploy template.yaml into the emulator, the way `sam deploy` would into AWS.

aws-sam-translator turns the SAM template into plain CloudFormation (code and layer
directories zipped into an emulator bucket, state machine definitions inlined), and
moto's CloudFormation creates the functions (with their environment), roles,
topics, keys and rules. moto keeps the state machines it creates away from its
interpreter and ignores DefinitionSubstitutions, so the rig records each state
machine's resolved properties during stack creation and creates it again in the
interpreter with the substitutions applied. Schedules (AWS::Scheduler::Schedule)
are skipped by moto: they never fire in the emulator.
"""

import copy
import io
import json
import re
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
from cfnlint.decode import cfn_yaml
from moto.stepfunctions.models import StateMachine as MotoStateMachine
from samtranslator.translator.transform import transform

from tests.rig.lambda_runtime import FunctionSource, LocalLambdaRuntime

REPO_ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_PATH = REPO_ROOT / "template.yaml"
ARTIFACT_BUCKET = "wandb-ops-local-artifacts"
_SUBSTITUTION = re.compile(r"\$\{([A-Za-z0-9_]+)\}")


class _NoManagedPolicies:
    """The translator asks for AWS managed policy ARNs only when a template names one by name."""

    def load(self) -> dict[str, str]:
        return {}


def load_template(path: Path = TEMPLATE_PATH) -> dict[str, Any]:
    template: dict[str, Any] = json.loads(json.dumps(cfn_yaml.load(str(path))))
    return template


def substitute(definition: str, substitutions: dict[str, Any]) -> str:
    """Apply DefinitionSubstitutions as CloudFormation does: ${Name} for each given name."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        return str(substitutions[name]) if name in substitutions else match.group(0)

    return _SUBSTITUTION.sub(replace, definition)


def _zip_directory(directory: Path) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(directory.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                archive.write(path, path.relative_to(directory).as_posix())
    return buffer.getvalue()


@dataclass
class DeployedStack:
    name: str
    outputs: dict[str, str]
    physical_ids: dict[str, str]  # logical id -> physical id
    state_machine_arns: dict[str, str]  # logical id -> ARN in the interpreter
    template: dict[str, Any]  # the SAM template as deployed

    def function_name(self, logical_id: str) -> str:
        return self.physical_ids[logical_id]


class StackDeployer:
    def __init__(self, runtime: LocalLambdaRuntime, region: str) -> None:
        self._runtime = runtime
        self._region = region
        self._recorded_machines: dict[str, dict[str, Any]] = {}
        self._record_state_machines()

    def _record_state_machines(self) -> None:
        original = MotoStateMachine.create_from_cloudformation_json.__func__  # type: ignore[attr-defined]
        recorded = self._recorded_machines

        def create(cls: Any, resource_name: str, cloudformation_json: Any, *args: Any, **kwargs: Any) -> Any:
            properties = cloudformation_json["Properties"]
            recorded[properties.get("StateMachineName", resource_name)] = copy.deepcopy(properties)
            return original(cls, resource_name, cloudformation_json, *args, **kwargs)

        MotoStateMachine.create_from_cloudformation_json = classmethod(create)  # type: ignore[method-assign,assignment]

    def deploy(self, stack_name: str, parameters: dict[str, str], template_path: Path = TEMPLATE_PATH) -> DeployedStack:
        sam_template = load_template(template_path)
        packaged = self._package(sam_template, template_path.parent)
        cfn_template = transform(packaged, dict(parameters), _NoManagedPolicies())
        cloudformation = boto3.client("cloudformation", region_name=self._region)
        # moto says so for each type it skips (schedules, topic policies); the module docstring says it once.
        warnings.filterwarnings("ignore", message="Tried to parse AWS::", category=UserWarning)
        cloudformation.create_stack(
            StackName=stack_name,
            TemplateBody=json.dumps(cfn_template),
            Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
            Capabilities=["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"],
        )
        stack = cloudformation.describe_stacks(StackName=stack_name)["Stacks"][0]
        if stack["StackStatus"] != "CREATE_COMPLETE":
            raise RuntimeError(f"stack {stack_name} ended {stack['StackStatus']}: {stack.get('StackStatusReason')}")
        physical_ids = {
            r["LogicalResourceId"]: r["PhysicalResourceId"]
            for r in cloudformation.describe_stack_resources(StackName=stack_name)["StackResources"]
            if "PhysicalResourceId" in r  # moto lists the types it skipped without one
        }
        outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
        self._register_functions(sam_template, template_path.parent, physical_ids)
        machines = self._create_state_machines(sam_template, physical_ids)
        return DeployedStack(stack_name, outputs, physical_ids, machines, sam_template)

    def _package(self, sam_template: dict[str, Any], root: Path) -> dict[str, Any]:
        """What `sam package` does: code to the artifact bucket, definitions inlined."""
        s3 = boto3.client("s3", region_name=self._region)
        s3.create_bucket(Bucket=ARTIFACT_BUCKET)
        packaged = copy.deepcopy(sam_template)
        for logical_id, resource in packaged["Resources"].items():
            properties = resource.get("Properties", {})
            for uri_property in ("CodeUri", "ContentUri"):
                uri = properties.get(uri_property)
                if isinstance(uri, str):
                    key = f"{logical_id}.zip"
                    s3.put_object(Bucket=ARTIFACT_BUCKET, Key=key, Body=_zip_directory(root / uri))
                    properties[uri_property] = {"Bucket": ARTIFACT_BUCKET, "Key": key}
            definition_uri = properties.pop("DefinitionUri", None)
            if isinstance(definition_uri, str):
                properties["Definition"] = json.loads((root / definition_uri).read_text())
        return packaged

    def _register_functions(self, sam_template: dict[str, Any], root: Path, physical_ids: dict[str, str]) -> None:
        globals_function = sam_template.get("Globals", {}).get("Function", {})
        for logical_id, resource in sam_template["Resources"].items():
            if resource["Type"] != "AWS::Serverless::Function":
                continue
            properties = resource["Properties"]
            handler = properties.get("Handler", globals_function.get("Handler"))
            self._runtime.register(
                physical_ids[logical_id],
                FunctionSource(logical_id=logical_id, code_dir=root / properties["CodeUri"], handler=handler),
            )

    def _create_state_machines(self, sam_template: dict[str, Any], physical_ids: dict[str, str]) -> dict[str, str]:
        sfn = boto3.client("stepfunctions", region_name=self._region)
        arns: dict[str, str] = {}
        for logical_id, resource in sam_template["Resources"].items():
            if resource["Type"] != "AWS::Serverless::StateMachine":
                continue
            moto_arn = physical_ids[logical_id]
            name = moto_arn.rsplit(":", 1)[-1]
            properties = self._recorded_machines[name]
            definition = substitute(properties["DefinitionString"], properties.get("DefinitionSubstitutions") or {})
            unresolved = _SUBSTITUTION.findall(definition)
            if unresolved:
                raise RuntimeError(f"{logical_id}: no DefinitionSubstitutions for {sorted(set(unresolved))}")
            created = sfn.create_state_machine(name=name, definition=definition, roleArn=properties["RoleArn"])
            arns[logical_id] = created["stateMachineArn"]
        return arns
