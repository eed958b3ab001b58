"""docs/architecture.md draws every state machine from its definition; a stale picture fails here."""

from scripts.asl_to_mermaid import DOCUMENT, render, updated


def test_the_diagrams_match_the_definitions() -> None:
    current = DOCUMENT.read_text()
    assert updated(current) == current, "run: python scripts/asl_to_mermaid.py"


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
