"""Pages generated from the code: docs/architecture.md draws every state machine from its
definition, docs/permissions.md lists every IAM statement of the template. Stale pages fail here."""

from scripts import asl_to_mermaid, permissions_doc
from scripts.asl_to_mermaid import render


def test_the_diagrams_match_the_definitions() -> None:
    current = asl_to_mermaid.DOCUMENT.read_text()
    assert asl_to_mermaid.updated(current) == current, "run: python scripts/asl_to_mermaid.py"


def test_the_permissions_page_matches_the_template() -> None:
    current = permissions_doc.DOCUMENT.read_text()
    assert permissions_doc.updated(current) == current, "run: python scripts/permissions_doc.py"
    for statement in ("DeleteOnlyOwnSnapshots", "ReadTheOtherWorkflowsRuns", "CopyObjectsInPlace"):
        assert f"| {statement} |" in current


def test_a_definition_becomes_a_flowchart_with_its_choices_catches_and_map() -> None:
    definition = {
        "StartAt": "Plan",
        "States": {
            "Plan": {
                "Type": "Task",
                "Resource": "arn:aws:states:::lambda:invoke",
                "Parameters": {"FunctionName": "${SyncFunctionArn}"},
                "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Notify"}],
                "Next": "Copy",
            },
            "Copy": {
                "Type": "Map",
                "ItemProcessor": {"StartAt": "One", "States": {"One": {"Type": "Pass", "End": True}}},
                "Next": "Done?",
            },
            "Done?": {
                "Type": "Choice",
                "Choices": [{"Variable": "$.result.failed", "NumericGreaterThan": 0, "Next": "Notify"}],
                "Default": "Ok",
            },
            "Notify": {"Type": "Task", "Resource": "arn:aws:states:::sns:publish", "Next": "Failed"},
            "Failed": {"Type": "Fail", "Error": "SyncFailed"},
            "Ok": {"Type": "Succeed"},
        },
    }
    chart = render(definition).splitlines()
    assert chart[0] == "flowchart TD"
    assert 'Plan["Plan<br/>(SyncFunction)"]' in chart[2]
    assert '  Plan -.->|"States.ALL"| Notify' in chart
    assert '  subgraph Copy["Copy (Map, each item)"]' in chart
    assert '    Copy__start(("each")) --> Copy__One' in chart and '    Copy__One["One"]' in chart
    assert '  Done_ -->|"result.failed #gt; 0"| Notify' in chart
    assert '  Done_ -->|"otherwise"| Ok' in chart
    assert '  Failed((("Failed: SyncFailed")))' in chart
