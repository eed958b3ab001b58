"""The blocks of template.yaml that scripts/template_workflows.py writes from workflows.yaml are
current, and what it writes reads back as the values it was given."""

import json
import tempfile
from pathlib import Path
from typing import Any

import pytest
from cfnlint.decode import cfn_yaml

from scripts.template_workflows import TEMPLATE, Commented, Flow, load_description, resource_text, updated


def test_the_template_matches_workflows_yaml() -> None:
    current = TEMPLATE.read_text()
    assert updated(current, load_description()) == current, "template.yaml is stale: run make template"


def _read_back(text: str) -> Any:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "t.yaml"
        path.write_text(f"Resources:\n{text}\n")
        return json.loads(json.dumps(cfn_yaml.load(str(path))))["Resources"]


def test_written_yaml_reads_back_as_the_values_given() -> None:
    value = {
        "Type": "AWS::Test::Thing",
        "Properties": {
            "Plain": "lambda:InvokeFunction",
            "Spaces": "wandb-ops posture report",
            "ColonSpace": "Runbook: docs/runbooks.md, 'A workflow failed'.",
            "Json": '{"source": "schedule"}',
            "Both": 'it\'s "quoted"',
            "Dollar": "$.detail.bucket.name",
            "Words": ["true", "no", "Null", "3600", "1.5", "", "#hash", "- dash", "*star"],
            "Numbers": [1, 2.5, True, False],
            "Null": {"aws:ResourceTag/x": "true"},
            "Tags": {
                "Ref": {"Ref": "X"},
                "GetAtt": {"Fn::GetAtt": ["X", "Arn"]},
                "Sub": {"Fn::Sub": "arn:${AWS::Partition}:s3:::${Bucket}/*"},
                "SubList": {"Fn::Sub": ["${A}-${B}", {"A": {"Ref": "X"}, "B": "b"}]},
                "If": {"Fn::If": ["C", {"Sid": "S", "Effect": "Allow"}, {"Ref": "AWS::NoValue"}]},
                "Join": {"Fn::Join": [",", [{"Ref": "A"}, "b"]]},
            },
            "Nested": [[{"prefix": "intake/"}], {"a": [{"b": {"c": 1}}]}],
            "Long": ["x" * 60, "y" * 60, "z" * 60],
        },
    }
    text = resource_text("Thing", value)
    assert _read_back(text) == {"Thing": value}
    flowed = resource_text("Thing", {"Type": "T", "Properties": {"Metrics": [Flow({"Id": "a", "Deep": {"b": [1]}})]}})
    assert "{Id: a, Deep: {b: [1]}}" in flowed
    commented = resource_text("Thing", {"Type": "T", "Properties": {"Resource": Commented("*", "why")}})
    assert '      Resource: "*"  # why' in commented
    assert _read_back(commented) == {"Thing": {"Type": "T", "Properties": {"Resource": "*"}}}


def test_a_workflow_without_its_block_is_told_where_it_goes() -> None:
    description = load_description()
    without = "\n".join(
        line for line in TEMPLATE.read_text().splitlines() if "PostureStateMachine: generated" not in line
    )
    with pytest.raises(SystemExit, match=r"an end marker without its begin marker: # <<< PostureStateMachine"):
        updated(without, description)
    no_blocks = "\n".join(
        line for line in TEMPLATE.read_text().splitlines() if "# >>>" not in line and "# <<<" not in line
    )
    with pytest.raises(SystemExit, match=r"has no block for .*PostureStateMachine"):
        updated(no_blocks, description)
