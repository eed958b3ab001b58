"""Deploy template.yaml into the emulator, the way `sam deploy` would into AWS.

aws-sam-translator turns the SAM template into plain CloudFormation (code and layer
directories zipped into an emulator bucket, state machine definitions inlined), and
moto's CloudFormation creates the functions (with their environment), roles,
topics, keys and rules. moto keeps the state machines it creates away from its
interpreter and ignores DefinitionSubstitutions, so the rig records each state
machine's resolved properties during stack creation and creates it again in the
interpreter with the substitutions applied. moto's CloudFormation also applies only
the encryption and tags of an AWS::S3::Bucket and has no AWS::S3::BucketPolicy: the rig
applies the rest of each bucket's resolved properties (versioning, Object Lock, public
access block, ownership, lifecycle, EventBridge notifications) with the S3 API, as
CloudFormation would. Bucket policies are resolved and recorded (RESOLVED_BUCKET_POLICIES)
but not applied: moto enforces a bucket policy's Deny statements while ignoring their
conditions, so a TLS-only or named-readers policy would deny every request. Schedules (AWS::Scheduler::Schedule) and SNS
topic policies are skipped by moto: schedules never fire in the emulator.
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
from moto.cloudformation import parsing as cfn_parsing
from moto.core.common_models import CloudFormationModel
from moto.s3.models import FakeBucket
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


# Resolved bucket policy documents by bucket name, as CloudFormation would have applied them.
RESOLVED_BUCKET_POLICIES: dict[str, dict[str, Any]] = {}


class _BucketPolicy(CloudFormationModel):
    """AWS::S3::BucketPolicy for moto's CloudFormation: resolved and recorded, not applied (see above)."""

    def __init__(self, bucket: str) -> None:
        self.bucket = bucket

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::S3::BucketPolicy"

    @staticmethod
    def cloudformation_name_type() -> str:
        return ""

    @property
    def physical_resource_id(self) -> str:
        return self.bucket

    @classmethod
    def create_from_cloudformation_json(
        cls, resource_name: str, cloudformation_json: Any, account_id: str, region_name: str, **kwargs: Any
    ) -> "_BucketPolicy":
        properties = cloudformation_json["Properties"]
        RESOLVED_BUCKET_POLICIES[properties["Bucket"]] = copy.deepcopy(properties["PolicyDocument"])
        return cls(properties["Bucket"])

    @classmethod
    def delete_from_cloudformation_json(
        cls, resource_name: str, cloudformation_json: Any, account_id: str, region_name: str
    ) -> None:
        RESOLVED_BUCKET_POLICIES.pop(resource_name, None)  # its physical id: the bucket's name


# moto caches its list of CloudFormation models: let it see the one above.
for _cached in (cfn_parsing.get_model_list, cfn_parsing.get_model_map, cfn_parsing.get_name_type_map):
    _cached.cache_clear()


def _apply_bucket_properties(s3: Any, bucket: str, properties: dict[str, Any]) -> None:
    """The AWS::S3::Bucket properties moto's CloudFormation ignores, through the S3 API."""
    if properties.get("VersioningConfiguration"):
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration=properties["VersioningConfiguration"])
    if properties.get("ObjectLockEnabled"):
        lock = dict(properties.get("ObjectLockConfiguration") or {"ObjectLockEnabled": "Enabled"})
        retention = lock.get("Rule", {}).get("DefaultRetention")
        if retention:
            lock["Rule"] = {
                "DefaultRetention": {k: (int(v) if k in ("Days", "Years") else v) for k, v in retention.items()}
            }
        s3.put_object_lock_configuration(Bucket=bucket, ObjectLockConfiguration=lock)
    if properties.get("PublicAccessBlockConfiguration"):
        s3.put_public_access_block(
            Bucket=bucket, PublicAccessBlockConfiguration=properties["PublicAccessBlockConfiguration"]
        )
    if properties.get("OwnershipControls"):
        s3.put_bucket_ownership_controls(Bucket=bucket, OwnershipControls=properties["OwnershipControls"])
    lifecycle_rules = properties.get("LifecycleConfiguration", {}).get("Rules", [])
    if lifecycle_rules:
        s3.put_bucket_lifecycle_configuration(
            Bucket=bucket, LifecycleConfiguration={"Rules": [_lifecycle_rule(rule) for rule in lifecycle_rules]}
        )
    eventbridge = properties.get("NotificationConfiguration", {}).get("EventBridgeConfiguration", {})
    if eventbridge.get("EventBridgeEnabled") in (True, "true"):
        s3.put_bucket_notification_configuration(
            Bucket=bucket, NotificationConfiguration={"EventBridgeConfiguration": {}}
        )


def _lifecycle_rule(rule: dict[str, Any]) -> dict[str, Any]:
    """CloudFormation's lifecycle rule shape, in the S3 API's."""
    converted: dict[str, Any] = {
        "ID": rule.get("Id", "rule"),
        "Status": rule["Status"],
        "Filter": {"Prefix": rule.get("Prefix", "")},
    }
    if "NoncurrentVersionExpiration" in rule:
        converted["NoncurrentVersionExpiration"] = {
            "NoncurrentDays": int(rule["NoncurrentVersionExpiration"]["NoncurrentDays"])
        }
    if "AbortIncompleteMultipartUpload" in rule:
        converted["AbortIncompleteMultipartUpload"] = {
            "DaysAfterInitiation": int(rule["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"])
        }
    return converted


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

    def function_arn(self, logical_id: str) -> str:
        arn: str = boto3.client("lambda").get_function(FunctionName=self.function_name(logical_id))["Configuration"][
            "FunctionArn"
        ]
        return arn

    def set_function_environment(self, logical_id: str, **variables: str) -> None:
        """Change some of a deployed function's variables, as an operator would in the console."""
        lambda_client = boto3.client("lambda")
        function = self.function_name(logical_id)
        configuration = lambda_client.get_function_configuration(FunctionName=function)
        # CloudFormation Number parameters come back as numbers from moto: the API wants strings.
        current = {k: str(v) for k, v in configuration["Environment"]["Variables"].items()}
        lambda_client.update_function_configuration(
            FunctionName=function, Environment={"Variables": current | variables}
        )


class StackDeployer:
    def __init__(self, runtime: LocalLambdaRuntime, region: str) -> None:
        self._runtime = runtime
        self._region = region
        self._recorded_machines: dict[str, dict[str, Any]] = {}
        self._recorded_buckets: dict[str, dict[str, Any]] = {}
        self._record_state_machines()
        self._record_buckets()

    def _record_state_machines(self) -> None:
        original = MotoStateMachine.create_from_cloudformation_json.__func__  # type: ignore[attr-defined]
        recorded = self._recorded_machines

        def create(cls: Any, resource_name: str, cloudformation_json: Any, *args: Any, **kwargs: Any) -> Any:
            properties = cloudformation_json["Properties"]
            recorded[properties.get("StateMachineName", resource_name)] = copy.deepcopy(properties)
            return original(cls, resource_name, cloudformation_json, *args, **kwargs)

        MotoStateMachine.create_from_cloudformation_json = classmethod(create)  # type: ignore[method-assign,assignment]

    def _record_buckets(self) -> None:
        original = FakeBucket.create_from_cloudformation_json.__func__  # type: ignore[attr-defined]
        recorded = self._recorded_buckets

        def create(cls: Any, resource_name: str, cloudformation_json: Any, *args: Any, **kwargs: Any) -> Any:
            bucket = original(cls, resource_name, cloudformation_json, *args, **kwargs)
            recorded[bucket.name] = copy.deepcopy(cloudformation_json.get("Properties", {}))
            return bucket

        FakeBucket.create_from_cloudformation_json = classmethod(create)  # type: ignore[method-assign,assignment]

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
        s3 = boto3.client("s3", region_name=self._region)
        for logical_id, resource in cfn_template["Resources"].items():
            if resource["Type"] == "AWS::S3::Bucket" and logical_id in physical_ids:
                bucket = physical_ids[logical_id]
                _apply_bucket_properties(s3, bucket, self._recorded_buckets.get(bucket, {}))
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
