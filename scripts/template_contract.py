"""What a deployed stack promises, read from template.yaml after the SAM transform: the contract
that `sam deploy` of a new version must keep for the update of an existing stack to stay in place
(same logical ids and types, same parameters, outputs and conditions, same names) and for it to
grant exactly the same permissions (every IAM, key, bucket and topic policy statement).

    python scripts/template_contract.py [TEMPLATE] > contract.json

tests/unit/template_contract_baseline.json is this script's output for the template of the
reorganisation's base commit, made once with

    git show 47fb6c7:template.yaml > /tmp/base.yaml
    python scripts/template_contract.py /tmp/base.yaml > tests/unit/template_contract_baseline.json

tests/unit/test_template_contract.py compares it with the contract of today's template.yaml; the
differences it allows are listed there, each with its reason.

What is left out on purpose: descriptions (prose), the code and definition files' contents
(the tests run them), the DefinitionSubstitutions (they follow the definition's placeholders),
and environment variable values (the names are kept; the values are the functions' settings).
"""

import json
import re
import sys
from pathlib import Path
from typing import Any

import boto3
from cfnlint.decode import cfn_yaml
from samtranslator.parser.parser import Parser
from samtranslator.translator.translator import Translator

REPO_ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = REPO_ROOT / "template.yaml"
ARTIFACTS = "artifacts"  # the bucket `sam package` would upload to; its key here is the local path

PARAMETER_KEYS = ("Type", "Default", "AllowedValues", "AllowedPattern", "MinValue", "MaxValue", "NoEcho")
RESOURCE_ATTRIBUTES = ("Type", "Condition", "DeletionPolicy", "UpdateReplacePolicy")
# Physical names: what a changed value would make CloudFormation replace (or collide on).
NAME_PROPERTIES = (
    "FunctionName",
    "StateMachineName",
    "LogGroupName",
    "AlarmName",
    "AliasName",
    "DashboardName",
    "TopicName",
    "BucketName",
    "RoleName",
)
FUNCTION_PROPERTIES = (
    "Code",
    "Handler",
    "Runtime",
    "Architectures",
    "MemorySize",
    "Timeout",
    "ReservedConcurrentExecutions",
    "TracingConfig",
    "LoggingConfig",
    "VpcConfig",
    "Role",
    "Layers",
)
STATE_MACHINE_PROPERTIES = ("DefinitionS3Location", "RoleArn", "LoggingConfiguration", "TracingConfiguration")
# Resources whose whole properties are compared: what starts a workflow, and what watches it.
WHOLE_TYPES = (
    "AWS::Scheduler::Schedule",
    "AWS::Events::Rule",
    "AWS::CloudWatch::Alarm",
    "AWS::Logs::LogGroup",
    "AWS::Lambda::Permission",
    "AWS::SecretsManager::RotationSchedule",
    "AWS::CloudWatch::Dashboard",
)
POLICY_PROPERTIES = {
    "AWS::KMS::Key": "KeyPolicy",
    "AWS::S3::BucketPolicy": "PolicyDocument",
    "AWS::SNS::TopicPolicy": "PolicyDocument",
}


def load(path: Path) -> dict[str, Any]:
    template: dict[str, Any] = json.loads(json.dumps(cfn_yaml.load(str(path))))
    return template


def translated(template: dict[str, Any]) -> dict[str, Any]:
    """The CloudFormation template `sam deploy` would create, with each local folder or file
    standing for the S3 object `sam package` would upload it to."""
    packaged = json.loads(json.dumps(template))
    for resource in packaged["Resources"].values():
        properties = resource.get("Properties", {})
        for uri in ("CodeUri", "ContentUri", "DefinitionUri"):
            if isinstance(properties.get(uri), str):
                properties[uri] = {"Bucket": ARTIFACTS, "Key": properties[uri]}
    translator = Translator(None, Parser(), boto_session=boto3.Session(region_name="us-east-1"))
    result: dict[str, Any] = translator.translate(packaged, parameter_values={}, get_managed_policy_map=dict)
    return _without_layer_hashes(result)


def _without_layer_hashes(template: dict[str, Any]) -> dict[str, Any]:
    """SAM names a layer version CommonLayer<hash of its code location>: a new hash on every code
    change is how every layer update works, so the contract names it CommonLayer."""
    text = json.dumps(template)
    for logical_id, resource in template["Resources"].items():
        if resource["Type"] == "AWS::Lambda::LayerVersion":
            text = re.sub(rf"\b{logical_id}\b", re.sub(r"[0-9a-f]{10}$", "", logical_id), text)
    result: dict[str, Any] = json.loads(text)
    return result


def contract(template: dict[str, Any]) -> dict[str, Any]:
    cfn = translated(template)
    resources: dict[str, Any] = cfn["Resources"]
    found: dict[str, Any] = {
        "parameters": {
            name: {key: parameter[key] for key in PARAMETER_KEYS if key in parameter}
            for name, parameter in cfn.get("Parameters", {}).items()
        },
        "conditions": cfn.get("Conditions", {}),
        "outputs": {
            name: {key: output[key] for key in ("Value", "Condition", "Export") if key in output}
            for name, output in cfn.get("Outputs", {}).items()
        },
        "resources": {
            logical_id: {key: resource[key] for key in RESOURCE_ATTRIBUTES if key in resource}
            for logical_id, resource in resources.items()
        },
        "names": {},
        "functions": {},
        "state_machines": {},
        "triggers_and_watches": {},
        "iam": {},
    }
    for logical_id, resource in resources.items():
        kind, properties = resource["Type"], resource.get("Properties", {})
        for key in NAME_PROPERTIES:
            if key in properties:
                found["names"][logical_id] = properties[key]
        if kind == "AWS::Lambda::Function":
            found["functions"][logical_id] = {
                **{key: properties[key] for key in FUNCTION_PROPERTIES if key in properties},
                "EnvironmentVariableNames": sorted(properties.get("Environment", {}).get("Variables", {})),
            }
        elif kind == "AWS::StepFunctions::StateMachine":
            found["state_machines"][logical_id] = {
                key: properties[key] for key in STATE_MACHINE_PROPERTIES if key in properties
            }
        elif kind in WHOLE_TYPES:
            found["triggers_and_watches"][logical_id] = properties
        elif kind == "AWS::IAM::Role":
            found["iam"][logical_id] = {
                "AssumeRolePolicyDocument": properties.get("AssumeRolePolicyDocument"),
                "ManagedPolicyArns": properties.get("ManagedPolicyArns", []),
                "Policies": {
                    policy["PolicyName"]: policy["PolicyDocument"]["Statement"]
                    for policy in properties.get("Policies", [])
                },
            }
        elif kind in POLICY_PROPERTIES:
            found["iam"][logical_id] = properties[POLICY_PROPERTIES[kind]]["Statement"]
    return found


def main() -> int:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else TEMPLATE
    print(json.dumps(contract(load(path)), indent=1, sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
