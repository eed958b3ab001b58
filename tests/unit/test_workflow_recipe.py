"""Every workflow has the same pieces (docs/adding-a-workflow.md): its functions,
each with its log group, code, and an event for `sam local invoke`; its definition, log group and
failed-run alarm; a schedule that a parameter turns off (or the reason it has none); an input to
start it by hand and its stack output; a docs page and a runbook row; for a scheduled workflow,
a posture item that notices when it stopped running; a bench entry; its place in the failure rule
and the dashboard. Each check names the missing piece and where it goes: the last tests show the
messages a new, bare workflow gets."""

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from scripts.template_workflows import Function, Schedule, Workflow, alarm_id, load_description
from tests.rig.stack import load_template

REPO_ROOT = Path(__file__).resolve().parents[2]
POSTURE_CODE = REPO_ROOT / "layers" / "common" / "wandb_ops" / "workflows" / "posture"
BENCH = REPO_ROOT / "bench" / "workflows" / "__main__.py"


@dataclass(frozen=True)
class Repo:
    template: dict[str, Any]
    description: dict[str, Workflow]
    root: Path

    @property
    def resources(self) -> dict[str, Any]:
        resources: dict[str, Any] = self.template["Resources"]
        return resources

    def of_type(self, kind: str) -> dict[str, Any]:
        return {name: r for name, r in self.resources.items() if r["Type"] == kind}

    def text(self, relative: str) -> str:
        path = self.root / relative
        return path.read_text() if path.is_file() else ""


REPO = Repo(load_template(), load_description(), REPO_ROOT)


def _sub(value: Any) -> str:
    """A !Sub's text (or a plain string), for comparing names."""
    if isinstance(value, dict) and "Fn::Sub" in value:
        text = value["Fn::Sub"]
        return str(text[0] if isinstance(text, list) else text)
    return str(value)


def _statements(resource: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    for policy in resource.get("Properties", {}).get("Policies", []):
        for statement in policy.get("Statement", []):
            if "Fn::If" in statement:
                found += [branch for branch in statement["Fn::If"][1:] if isinstance(branch, dict) and "Sid" in branch]
            else:
                found.append(statement)
    return found


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _mentions(text: str, name: str) -> bool:
    return re.search(rf"(?<!\w){re.escape(name)}(?!\w)", text) is not None


# ---------------------------------------------------------------- the checks


def function_pieces(logical_id: str, function: Function, repo: Repo) -> list[str]:
    resource = repo.resources.get(logical_id)
    if resource is None or resource["Type"] != "AWS::Serverless::Function":
        return [f"{logical_id}: workflows.yaml lists it, template.yaml has no such function: write its Properties"]
    properties = resource["Properties"]
    name, log_group = function.name, f"{logical_id}LogGroup"
    problems = []
    if properties.get("FunctionName") != {"Fn::Sub": f"${{AWS::StackName}}-{name}"}:
        problems.append(
            f'{logical_id}: FunctionName must be !Sub "${{AWS::StackName}}-{name}" (its name in workflows.yaml)'
        )
    group = repo.resources.get(log_group, {})
    if _sub(group.get("Properties", {}).get("LogGroupName")) != f"/aws/lambda/${{AWS::StackName}}-{name}":
        problems.append(f"{logical_id}: no log group {log_group}: make template writes it (template.yaml marker lines)")
    if properties.get("LoggingConfig", {}).get("LogGroup") != {"Ref": log_group}:
        problems.append(f"{logical_id}: LoggingConfig must be {{LogGroup: !Ref {log_group}}} in template.yaml")
    code = properties.get("CodeUri", "")
    if not (repo.root / code / "app.py").is_file():
        problems.append(f"{logical_id}: no handler: CodeUri {code!r} needs functions/<name>/app.py")
    if not (repo.root / "events" / f"{name}.json").is_file():
        problems.append(f"{logical_id}: no events/{name}.json: a valid event for sam local invoke (README)")
    in_vpc = "VpcConfig" in properties
    attaches = any(statement.get("Sid") == "AttachToTheVpc" for statement in _statements(resource))
    if bool(function.vpc) != in_vpc or in_vpc != attaches:
        problems.append(
            f"{logical_id}: workflows.yaml says vpc={function.vpc!r}, template.yaml has VpcConfig {in_vpc} and "
            f"the AttachToTheVpc statement {attaches}: a function in the database VPC needs both"
        )
    dashboard = json.dumps(repo.resources.get("Dashboard", {}))
    if "${" + log_group + "}" not in dashboard:
        problems.append(f"{logical_id}: add '${{{log_group}}}' to the Dashboard's 'Last run of each function' query")
    return problems


def machine_pieces(machine: str, repo: Repo) -> list[str]:
    workflow = repo.description.get(machine)
    if workflow is None:
        return [f"{machine}: describe it in workflows.yaml, then run make template (docs/adding-a-workflow.md)"]
    resource, name = repo.resources[machine], workflow.name
    properties = resource["Properties"]
    problems = [
        *_definition_and_functions(machine, workflow, repo),
        *_log_group_and_alarm(machine, workflow, repo),
        *_schedule(machine, workflow, repo),
        *_starting_by_hand(machine, workflow, repo),
        *_docs(machine, workflow, repo),
        *_freshness(machine, workflow, repo),
    ]
    if workflow.not_benched is None and machine not in repo.text("bench/workflows/__main__.py"):
        problems.append(
            f"{machine}: add it to the plan of bench/workflows/__main__.py (or say in workflows.yaml, "
            "not_benched, why not)"
        )
    watched = repo.resources["WorkflowFailedRule"]["Properties"]["EventPattern"]["detail"]["stateMachineArn"]
    if {"Ref": machine} not in watched:
        problems.append(f"{machine}: add !Ref {machine} to WorkflowFailedRule's stateMachineArn list in template.yaml")
    dashboard = json.dumps(repo.resources.get("Dashboard", {}))
    if dashboard.count("${" + machine + "}") < 2 or "${" + alarm_id(machine) + ".Arn}" not in dashboard:
        problems.append(
            f"{machine}: add it to the Dashboard in template.yaml: its alarm to the alarm widget, "
            "its runs to the failed and successful runs charts"
        )
    if properties.get("Name") != {"Fn::Sub": f"${{AWS::StackName}}-{name}"}:
        problems.append(f"{machine}: its Name is not <stack>-{name}: run make template")
    return problems


def _definition_and_functions(machine: str, workflow: Workflow, repo: Repo) -> list[str]:
    problems = []
    definition = f"statemachines/{workflow.definition}.asl.json"
    if not (repo.root / definition).is_file():
        problems.append(f"{machine}: no definition {definition}")
    substitutions = repo.resources[machine]["Properties"].get("DefinitionSubstitutions", {})
    functions = repo.of_type("AWS::Serverless::Function")
    invoked = {
        value["Fn::GetAtt"][0]
        for value in substitutions.values()
        if isinstance(value, dict) and "Fn::GetAtt" in value and value["Fn::GetAtt"][0] in functions
    }
    if not workflow.functions:
        problems.append(f"{machine}: no function: its steps run in functions/<name>/app.py, listed in workflows.yaml")
    for function in sorted(invoked - workflow.functions.keys()):
        problems.append(f"{machine}: it invokes {function}: list it under its functions in workflows.yaml")
    for logical_id, function in workflow.functions.items():
        problems += function_pieces(logical_id, function, repo)
    return problems


def _log_group_and_alarm(machine: str, workflow: Workflow, repo: Repo) -> list[str]:
    problems = []
    log_group = f"{machine}LogGroup"
    group = repo.resources.get(log_group, {}).get("Properties", {})
    destinations = repo.resources[machine]["Properties"].get("Logging", {}).get("Destinations", [])
    wanted = [{"CloudWatchLogsLogGroup": {"LogGroupArn": {"Fn::GetAtt": [log_group, "Arn"]}}}]
    if _sub(group.get("LogGroupName")) != f"/aws/vendedlogs/states/${{AWS::StackName}}-{workflow.name}" or (
        destinations != wanted
    ):
        problems.append(f"{machine}: no log group {log_group} it logs to: make template writes it")
    watched = set()
    for alarm in repo.of_type("AWS::CloudWatch::Alarm").values():
        for query in alarm["Properties"].get("Metrics", []):
            metric = query.get("MetricStat", {}).get("Metric", {})
            if metric.get("Dimensions") == [{"Name": "StateMachineArn", "Value": {"Ref": machine}}]:
                watched.add(metric["MetricName"])
    if not {"ExecutionsFailed", "ExecutionsTimedOut"} <= watched:
        problems.append(f"{machine}: no alarm on its failed and timed-out runs: make template writes it")
    return problems


def _schedule(machine: str, workflow: Workflow, repo: Repo) -> list[str]:
    events = repo.resources[machine]["Properties"].get("Events", {})
    schedules = [event["Properties"] for event in events.values() if event["Type"] == "ScheduleV2"]
    if not schedules:
        if not workflow.unscheduled:
            return [f"{machine}: no schedule: give it one in workflows.yaml, or say in unscheduled why it has none"]
        return []
    problems = []
    parameters = repo.template["Parameters"]
    for schedule in schedules:
        expression, state = schedule["ScheduleExpression"].get("Ref"), schedule["State"].get("Ref")
        if expression not in parameters or parameters.get(state, {}).get("AllowedValues") != ["ENABLED", "DISABLED"]:
            problems.append(
                f"{machine}: add parameters {expression} (its expression) and {state} (ENABLED or DISABLED) "
                "to template.yaml, with their parameter group"
            )
    return problems


def _starting_by_hand(machine: str, workflow: Workflow, repo: Repo) -> list[str]:
    name, problems = workflow.name, []
    inputs = sorted(repo.root.glob(f"events/{name}-statemachine.json")) + sorted(
        repo.root.glob(f"events/{name}-*-statemachine.json")
    )
    if not inputs or not all(isinstance(json.loads(path.read_text()), dict) for path in inputs):
        problems.append(f"{machine}: add events/{name}-statemachine.json, the input that starts it by hand")
    if f"`<stack>-{name}`" not in repo.text("README.md").split("## Start a workflow by hand", 1)[-1]:
        problems.append(f"{machine}: add a row for `<stack>-{name}` to README.md, 'Start a workflow by hand'")
    output = repo.template.get("Outputs", {}).get(f"{machine}Arn", {})
    if output.get("Value") != {"Ref": machine} or f"events/{name}" not in output.get("Description", ""):
        problems.append(
            f"{machine}: add the output {machine}Arn to template.yaml (Value !Ref {machine}; its description "
            f"names the events/{name}-*statemachine.json input)"
        )
    return problems


def _docs(machine: str, workflow: Workflow, repo: Repo) -> list[str]:
    problems = []
    if not _mentions(repo.text(workflow.docs), workflow.name):
        problems.append(f"{machine}: its docs page {workflow.docs} (workflows.yaml, docs) must exist and explain it")
    failed = repo.text("docs/runbooks.md").split("## A workflow failed", 1)[-1].split("\n## ", 1)[0]
    rows = [line.split("|")[1] for line in failed.splitlines() if line.strip().startswith("| ")]
    if not any(_mentions(first_cell, workflow.name) for first_cell in rows):
        problems.append(
            f"{machine}: add a row for {workflow.name} to docs/runbooks.md, 'A workflow failed': "
            "where its errors are explained"
        )
    return problems


def _freshness(machine: str, workflow: Workflow, repo: Repo) -> list[str]:
    if workflow.schedule is None:
        return []
    freshness = workflow.freshness
    if freshness is None:
        return [
            f"{machine}: it is scheduled: give freshness in workflows.yaml, the posture item that notices when "
            "it stopped running (in workflows/posture/), or not_measured: why none is needed"
        ]
    if freshness.item is None:
        return []
    problems = []
    code = "".join(path.read_text() for path in sorted((repo.root / POSTURE_CODE.relative_to(REPO_ROOT)).rglob("*.py")))
    if not re.search(rf"[\"']{re.escape(freshness.item)}[\"':]", code):
        problems.append(
            f"{machine}: no posture item {freshness.item!r} in workflows/posture/ (workflows.yaml, freshness)"
        )
    if freshness.run_history:
        arn = f":stateMachine:${{AWS::StackName}}-{workflow.name}"
        posture = repo.resources["PostureFunction"]
        variables = posture["Properties"].get("Environment", {}).get("Variables", {})
        granted = {
            action: [_sub(resource) for resource in _as_list(statement["Resource"])]
            for statement in _statements(posture)
            for action in _as_list(statement["Action"])
        }
        executions = f":execution:${{AWS::StackName}}-{workflow.name}:*"
        if not any(name.startswith("POSTURE_") and _sub(value).endswith(arn) for name, value in variables.items()):
            problems.append(
                f"{machine}: the posture report reads its runs: add its ARN to PostureFunction's environment"
            )
        if not any(r.endswith(arn) for r in granted.get("states:ListExecutions", [])) or not any(
            r.endswith(executions) for r in granted.get("states:DescribeExecution", [])
        ):
            problems.append(
                f"{machine}: the posture report reads its runs: add it to PostureFunction's "
                "ReadTheOtherWorkflowsRuns and ReadTheOtherWorkflowsRunDetails statements"
            )
    return problems


# ---------------------------------------------------------------- the stack's workflows


@pytest.mark.parametrize("machine", sorted(REPO.of_type("AWS::Serverless::StateMachine")))
def test_every_workflow_has_every_piece(machine: str) -> None:
    problems = machine_pieces(machine, REPO)
    assert not problems, "\n".join(problems)


def test_every_function_belongs_to_a_workflow() -> None:
    described = {function for workflow in REPO.description.values() for function in workflow.functions}
    for function in REPO.of_type("AWS::Serverless::Function"):
        assert function in described, f"{function}: list it under its workflow's functions in workflows.yaml"


def test_every_described_workflow_is_in_the_template() -> None:
    machines = REPO.of_type("AWS::Serverless::StateMachine")
    for machine in REPO.description:
        assert machine in machines, f"{machine}: workflows.yaml describes it: run make template"


# ---------------------------------------------------------------- a new workflow, without its pieces


def _bare_repo() -> tuple[Repo, str]:
    """The stack with one more state machine, described but given none of the other pieces."""
    template = json.loads(json.dumps(REPO.template))
    template["Resources"]["AuditStateMachine"] = {
        "Type": "AWS::Serverless::StateMachine",
        "Properties": {
            "Name": {"Fn::Sub": "${AWS::StackName}-audit"},
            "DefinitionUri": "statemachines/audit.asl.json",
            "Events": {
                "Daily": {
                    "Type": "ScheduleV2",
                    "Properties": {
                        "ScheduleExpression": {"Ref": "AuditSchedule"},
                        "State": {"Ref": "AuditScheduleState"},
                    },
                }
            },
        },
    }
    workflow = Workflow(
        name="audit",
        title="audit",
        definition="audit",
        functions={"AuditFunction": Function(name="audit", invoked_by="step-functions", no_vpc="x", environment="y")},
        substitutions={},
        statements=[],
        schedule=Schedule(event="Daily", parameter="AuditSchedule", description="d", input="{}", retries=1),
        docs="docs/audit.md",
    )
    return Repo(template, {**REPO.description, "AuditStateMachine": workflow}, REPO_ROOT), "AuditStateMachine"


def test_a_new_workflow_without_its_pieces_is_told_each_one_and_where_it_goes() -> None:
    repo, machine = _bare_repo()
    problems = "\n".join(machine_pieces(machine, repo))
    for piece in (
        "no definition statemachines/audit.asl.json",
        "AuditFunction: workflows.yaml lists it, template.yaml has no such function",
        "no log group AuditStateMachineLogGroup",
        "no alarm on its failed and timed-out runs",
        "add parameters AuditSchedule (its expression) and AuditScheduleState",
        "add events/audit-statemachine.json",
        "README.md, 'Start a workflow by hand'",
        "add the output AuditStateMachineArn",
        "its docs page docs/audit.md",
        "docs/runbooks.md, 'A workflow failed'",
        "give freshness in workflows.yaml",
        "bench/workflows/__main__.py",
        "WorkflowFailedRule",
        "add it to the Dashboard",
    ):
        assert piece in problems, f"no message for {piece!r} in:\n{problems}"


def test_a_workflow_missing_from_the_description_is_told_where_it_goes() -> None:
    repo, machine = _bare_repo()
    without = Repo(repo.template, REPO.description, REPO_ROOT)
    assert machine_pieces(machine, without) == [
        "AuditStateMachine: describe it in workflows.yaml, then run make template (docs/adding-a-workflow.md)"
    ]


def test_a_workflow_without_a_schedule_says_why() -> None:
    with pytest.raises(ValueError, match="say in unscheduled why it has none"):
        Workflow(name="a", title="a", definition="a", functions={}, substitutions={}, statements=[], docs="d")
