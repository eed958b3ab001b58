"""Static promises of template.yaml that a reviewer would otherwise check by eye."""

import json
from typing import Any

import pytest

from tests.rig.stack import load_template

TEMPLATE = load_template()
RESOURCES: dict[str, Any] = TEMPLATE["Resources"]


def _of_type(resource_type: str) -> dict[str, Any]:
    return {name: r for name, r in RESOURCES.items() if r["Type"] == resource_type}


def test_every_parameter_explains_itself() -> None:
    for name, parameter in TEMPLATE["Parameters"].items():
        assert len(parameter.get("Description", "")) > 20, f"parameter {name} needs a description"


def test_runtime_architecture_and_tracing_come_from_globals() -> None:
    function_globals = TEMPLATE["Globals"]["Function"]
    assert function_globals["Runtime"] == "python3.13"
    assert function_globals["Architectures"] == ["arm64"]
    assert function_globals["Tracing"] == "Active"
    for name, function in _of_type("AWS::Serverless::Function").items():
        assert "Runtime" not in function["Properties"], f"{name} overrides the global runtime"


def test_shared_layer_is_built_by_sam_for_python_3_13() -> None:
    layer = RESOURCES["CommonLayer"]
    assert layer["Metadata"]["BuildMethod"] == "python3.13"
    assert layer["Properties"]["ContentUri"] == "layers/common"


def test_every_schedule_can_be_turned_off_by_a_parameter() -> None:
    schedules = [
        (name, event)
        for name, machine in _of_type("AWS::Serverless::StateMachine").items()
        for event in machine["Properties"].get("Events", {}).values()
        if event["Type"] == "ScheduleV2"
    ]
    assert schedules
    for name, event in schedules:
        state = event["Properties"]["State"]
        assert isinstance(state, dict) and "Ref" in state, f"{name}: schedule state must be a parameter"
        assert TEMPLATE["Parameters"][state["Ref"]]["AllowedValues"] == ["ENABLED", "DISABLED"]


def test_failure_rule_watches_every_state_machine_of_the_stack() -> None:
    watched = RESOURCES["WorkflowFailedRule"]["Properties"]["EventPattern"]["detail"]["stateMachineArn"]
    assert sorted(ref["Ref"] for ref in watched) == sorted(_of_type("AWS::Serverless::StateMachine"))
    pattern = RESOURCES["WorkflowFailedRule"]["Properties"]["EventPattern"]
    assert sorted(pattern["detail"]["status"]) == ["ABORTED", "FAILED", "TIMED_OUT"]


def test_notifications_are_encrypted_with_the_stack_key() -> None:
    assert RESOURCES["NotificationsTopic"]["Properties"]["KmsMasterKeyId"] == {"Ref": "StackKey"}
    assert RESOURCES["StackKey"]["Properties"]["EnableKeyRotation"] is True
    for name, group in _of_type("AWS::Logs::LogGroup").items():
        assert "KmsKeyId" in group["Properties"], f"{name} must be encrypted"


def _policy_statements() -> list[tuple[str, dict[str, Any]]]:
    statements = []
    for name, resource in RESOURCES.items():
        for policy in resource.get("Properties", {}).get("Policies", []):
            for statement in policy.get("Statement", []):
                if "Fn::If" in statement:
                    statements += [(name, branch) for branch in statement["Fn::If"][1:] if "Action" in branch]
                else:
                    statements.append((name, statement))
    return statements


@pytest.mark.parametrize(("owner", "statement"), _policy_statements(), ids=lambda v: v if isinstance(v, str) else "")
def test_iam_statements_name_their_actions(owner: str, statement: dict[str, Any]) -> None:
    actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
    for action in actions:
        assert action != "*" and not action.endswith(":*"), f"{owner}: wildcard action {action}"
    if statement.get("Resource") == "*":
        # Only for APIs without resource-level permissions, each listed here on purpose.
        assert set(actions) <= {
            "logs:CreateLogDelivery",
            "logs:GetLogDelivery",
            "logs:UpdateLogDelivery",
            "logs:DeleteLogDelivery",
            "logs:ListLogDeliveries",
            "logs:PutResourcePolicy",
            "logs:DescribeResourcePolicies",
            "logs:DescribeLogGroups",
            "xray:PutTraceSegments",
            "xray:PutTelemetryRecords",
            "xray:GetSamplingRules",
            "xray:GetSamplingTargets",
            "secretsmanager:GetRandomPassword",
            "rds:DescribeAccountAttributes",
            "cloudwatch:GetMetricStatistics",
            "ec2:CreateNetworkInterface",
            "ec2:DescribeNetworkInterfaces",
            "ec2:DeleteNetworkInterface",
            "ec2:AssignPrivateIpAddresses",
            "ec2:UnassignPrivateIpAddresses",
        }, f"{owner}: {json.dumps(actions)} on Resource '*'"
