"""Every definition in statemachines/ must be executable by the local interpreter
(so the workflow tests exercise it), and the check must reject what it cannot run."""

import json
from pathlib import Path
from typing import Any

import pytest

from tests.rig.asl_check import definition_problems
from tests.rig.stack import REPO_ROOT, load_template

DEFINITIONS = sorted((REPO_ROOT / "statemachines").glob("*.asl.json"))


def _substitutions_by_definition() -> dict[str, dict[str, Any]]:
    template = load_template()
    found = {}
    for resource in template["Resources"].values():
        if resource["Type"] == "AWS::Serverless::StateMachine":
            properties = resource["Properties"]
            placeholders = {
                name: f"arn:aws:lambda:us-east-1:123456789012:function:{name}"
                for name in properties.get("DefinitionSubstitutions", {})
            }
            found[Path(properties["DefinitionUri"]).name] = placeholders
    return found


def test_there_are_definitions_to_check() -> None:
    assert DEFINITIONS, "statemachines/ has no *.asl.json"


@pytest.mark.parametrize("path", DEFINITIONS, ids=lambda p: p.name)
def test_definition_runs_in_the_local_interpreter(path: Path) -> None:
    substitutions = _substitutions_by_definition()
    assert path.name in substitutions, f"{path.name} is not used by any state machine in template.yaml"
    assert definition_problems(path.read_text(), substitutions[path.name]) == []


def _minimal(**state: Any) -> str:
    return json.dumps({"StartAt": "Only", "States": {"Only": {"Type": "Pass", "End": True, **state}}})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{not json", "not JSON"),
        (json.dumps({"StartAt": "A", "States": {"A": {"Type": "Teleport", "End": True}}}), "parser"),
        (json.dumps({"QueryLanguage": "JSONata", "StartAt": "A", "States": {"A": {"Type": "Succeed"}}}), "JSONata"),
        (
            json.dumps(
                {
                    "StartAt": "A",
                    "States": {
                        "A": {
                            "Type": "Task",
                            "Resource": "arn:aws:states:::aws-sdk:rds:describeDBClusters",
                            "End": True,
                        }
                    },
                }
            ),
            "Java SDK names",
        ),
        (
            json.dumps(
                {
                    "StartAt": "A",
                    "States": {
                        "A": {"Type": "Task", "Resource": "arn:aws:states:::eks:call", "End": True},
                    },
                }
            ),
            "does not execute the eks integration",
        ),
        (_minimal(Parameters={"Function": "${Missing}"}), "without a DefinitionSubstitutions entry"),
        (
            json.dumps(
                {
                    "StartAt": "M",
                    "States": {
                        "M": {
                            "Type": "Map",
                            "ItemBatcher": {"MaxItemsPerBatch": 10},
                            "ItemProcessor": {
                                "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "EXPRESS"},
                                "StartAt": "P",
                                "States": {"P": {"Type": "Pass", "End": True}},
                            },
                            "End": True,
                        }
                    },
                }
            ),
            "ItemBatcher",
        ),
    ],
    ids=["not-json", "unknown-state-type", "jsonata", "aws-sdk-rds", "unsupported-integration", "placeholder", "map"],
)
def test_the_check_rejects_what_the_interpreter_cannot_run(text: str, expected: str) -> None:
    problems = definition_problems(text, {})
    assert any(expected in problem for problem in problems), problems
