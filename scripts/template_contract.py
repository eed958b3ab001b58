"""What a deployed stack promises, read from template.yaml after the SAM transform: the contract
that `sam deploy` of a new version must keep for the update of an existing stack to stay in place
and to change nothing it does. It holds the parameters (type, default and constraints), the
conditions, the outputs (value, condition, export) and, for every resource, its type, condition,
deletion and update-replace policies and the whole of its transformed Properties: names, function
code locations, settings and environment variable values, state machine definition locations and
DefinitionSubstitutions, triggers, alarms, log groups, buckets, keys, the topic, its subscription,
the alias, and every statement of every role, key, bucket and topic policy.

    python scripts/template_contract.py [TEMPLATE] > contract.json

tests/unit/template_contract_baseline.json is this script's output for the template of commit
9361fc8, the last release before the reorganisation into workflows, made with

    git show 9361fc8:template.yaml > /tmp/base.yaml
    python scripts/template_contract.py /tmp/base.yaml > tests/unit/template_contract_baseline.json

At that commit two folders under functions/ still had their old names: mysql_rotation (now
secret_rotation) and credential_cutover (now credential_rotation), and the Kubernetes client had a
layer of its own. The baseline keeps the released paths. tests/unit/test_template_contract.py
compares it with the contract of today's template.yaml, the two folders mapped through its rename
map; the differences it allows are listed there, each with its reason.

Left out here: resource Metadata (checkov's and SAM's notes, not deployed), DependsOn (creation
order), the descriptions of parameters and outputs (prose), and the contents of the code,
layer and definition files (the tests run them).
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
OUTPUT_KEYS = ("Value", "Condition", "Export")
RESOURCE_ATTRIBUTES = ("Type", "Condition", "DeletionPolicy", "UpdateReplacePolicy", "Properties")


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
    return {
        "parameters": {
            name: {key: parameter[key] for key in PARAMETER_KEYS if key in parameter}
            for name, parameter in cfn.get("Parameters", {}).items()
        },
        "conditions": cfn.get("Conditions", {}),
        "outputs": {
            name: {key: output[key] for key in OUTPUT_KEYS if key in output}
            for name, output in cfn.get("Outputs", {}).items()
        },
        "resources": {
            logical_id: {key: resource[key] for key in RESOURCE_ATTRIBUTES if key in resource}
            for logical_id, resource in cfn["Resources"].items()
        },
    }


def main() -> int:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else TEMPLATE
    print(json.dumps(contract(load(path)), indent=1, sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
