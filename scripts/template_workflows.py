"""Write the parts of template.yaml that every workflow repeats, from the short description of
each workflow in workflows.yaml, between marker lines:

    # >>> PostureStateMachine: generated ...      the state machine, its log group, its alarm
    # >>> PostureFunction: generated ...          a function's log group, type and checkov skips
    # <<< PostureFunction ...                     (its properties follow, written by hand)

    python scripts/template_workflows.py          # rewrite the generated blocks (make template)
    python scripts/template_workflows.py --check  # exit 1 if a block is stale (the tests run this)

Every state machine gets the same log group, tracing, error logging, failed-run alarm
(ExecutionsFailed and ExecutionsTimedOut) and the same base permissions (notifications, their
key, log delivery, X-Ray); workflows.yaml adds what differs: its functions, the permissions of
its own steps, its DefinitionSubstitutions, its schedule (or why it has none) and other triggers.
Every function gets its log group and the reasons checkov's function checks are skipped, worded
from three facts: who invokes it, whether it is in the W&B VPC, what its environment holds.

Why generated text and not `Fn::ForEach` (the AWS::LanguageExtensions transform): the output is
plain CloudFormation, so cfn-lint, `sam validate --lint`, checkov and the test rig's translation
see every resource as deployed (checkov skips resources inside `Fn::ForEach` without a word), and
`sam deploy` over an existing stack is an in-place update with the same logical ids (the template
contract test compares the transformed template with the one deployed before). `Fn::ForEach` also
cannot vary a resource's structure (a state machine's own statements and triggers) per item.
"""

import argparse
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Self

from cfnlint.decode import cfn_yaml
from pydantic import BaseModel, ConfigDict, model_validator

REPO_ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = REPO_ROOT / "template.yaml"
DESCRIPTION = REPO_ROOT / "workflows.yaml"
BEGIN = re.compile(r"^ *# >>> (\w+): generated\b.*$")
END = re.compile(r"^ *# <<< (\w+)\b.*$")
GENERATED_BY = "generated from workflows.yaml by scripts/template_workflows.py (make template): do not edit"


# ---------------------------------------------------------------- the description


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Function(_Strict):
    """One function of a workflow: its name (<stack>-<name>) and what its checkov skips say."""

    name: str
    invoked_by: Literal["step-functions", "secrets-manager", "hand"]
    vpc: str | None = None  # what it reaches in the W&B VPC when DatabaseAccessSubnetIds is given
    no_vpc: str | None = None  # what it calls instead, outside any VPC
    environment: str  # what its variables hold: never a secret

    @model_validator(mode="after")
    def _one_network(self) -> Self:
        if (self.vpc is None) == (self.no_vpc is None):
            raise ValueError(f"function {self.name}: give exactly one of vpc (what it reaches there) and no_vpc")
        return self


class Schedule(_Strict):
    event: str  # the event's name, part of the schedule's logical id: never rename it
    parameter: str  # the stack parameter holding the expression; <parameter>State turns it off
    description: str
    input: str
    retries: int


class Freshness(_Strict):
    """How the daily posture report notices that a scheduled workflow stopped running."""

    item: str | None = None  # the posture item that goes stale
    run_history: bool = False  # the item reads the workflow's own runs (POSTURE_*_STATE_MACHINE)
    not_measured: str | None = None  # instead of an item: why none is needed

    @model_validator(mode="after")
    def _item_or_reason(self) -> Self:
        if (self.item is None) == (self.not_measured is None):
            raise ValueError("freshness: give the posture item (item), or say in not_measured why there is none")
        return self


class Workflow(_Strict):
    name: str  # <stack>-<name>: the state machine, its log group and its alarm
    title: str  # "A <title> run failed or timed out"
    definition: str  # statemachines/<definition>.asl.json
    functions: dict[str, Function]  # by logical id
    substitutions: dict[str, Any]  # besides NotificationsTopicArn
    statements: list[Any]  # its own permissions, before the base ones
    distributed_map_prefix: str | None = None  # its Distributed Map's manifest and results, in the work bucket
    schedule: Schedule | None = None
    unscheduled: str | None = None  # why it has no schedule
    events: dict[str, Any] = {}  # its other triggers, as SAM state machine events
    # Not written into the template: the rest of the recipe (tests/unit/test_workflow_recipe.py).
    docs: str  # the page that documents it
    freshness: Freshness | None = None  # for a scheduled workflow
    not_benched: str | None = None  # why bench/workflows does not run it

    @model_validator(mode="after")
    def _schedule_or_reason(self) -> Self:
        if (self.schedule is None) == (self.unscheduled is None):
            raise ValueError(f"workflow {self.name}: give a schedule, or say in unscheduled why it has none")
        return self


def load_description(path: Path = DESCRIPTION) -> dict[str, Workflow]:
    """The workflows by their state machine's logical id."""
    raw: dict[str, Any] = json.loads(json.dumps(cfn_yaml.load(str(path))))
    return {logical_id: Workflow.model_validate(workflow) for logical_id, workflow in raw.items()}


def alarm_id(state_machine: str) -> str:
    return state_machine.removesuffix("StateMachine") + "FailedAlarm"


# ---------------------------------------------------------------- YAML text


@dataclass(frozen=True)
class Flow:
    """A value written on one line, however long."""

    value: Any


@dataclass(frozen=True)
class Commented:
    """A scalar written with a comment after it on its line."""

    value: Any
    comment: str


TAGS = {"Ref": "!Ref", "Fn::GetAtt": "!GetAtt", "Fn::Sub": "!Sub", "Fn::If": "!If", "Fn::Join": "!Join"}
TAGS |= {"Fn::Split": "!Split", "Fn::Select": "!Select"}
PLAIN = re.compile(r"^[A-Za-z$][A-Za-z0-9_.:/()*-]*( [A-Za-z0-9_.:/()&*-]+)*$")
NOT_PLAIN = {"true", "false", "yes", "no", "on", "off", "null", "y", "n"}
INLINE_WIDTH = 140


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    text = str(value)
    if PLAIN.match(text) and text.lower() not in NOT_PLAIN and ": " not in text:
        return text
    if '"' in text and "'" not in text:
        return f"'{text}'"
    return json.dumps(text, ensure_ascii=False)


def _tag(value: Any) -> tuple[str, Any] | None:
    if isinstance(value, dict) and len(value) == 1:
        [(key, argument)] = value.items()
        if key in TAGS:
            return TAGS[key], argument
    return None


def _inline(value: Any, depth: int = 0) -> str | None:
    """The value on one line, if it is short and simple enough to read there."""
    if isinstance(value, Flow):
        return _flow(value.value)
    if isinstance(value, Commented):
        return None
    if _tag(value):
        return _inline_tag(value, depth)
    if isinstance(value, list):
        items = [_inline(item, depth + 1) for item in value]
        text = f"[{', '.join(item for item in items if item is not None)}]"
        return text if None not in items and len(text) <= INLINE_WIDTH else None
    if isinstance(value, dict):
        pairs = [(key, _inline(item, depth + 1)) for key, item in value.items()]
        text = "{" + ", ".join(f"{_scalar(key)}: {item}" for key, item in pairs) + "}"
        simple = len(value) <= 2 and depth <= 2 and all(item is not None for _, item in pairs)
        return text if simple and len(text) <= (INLINE_WIDTH if len(value) == 1 else 80) else None
    return _scalar(value)


def _inline_tag(value: dict[str, Any], depth: int) -> str | None:
    tag, argument = _tag(value) or ("", None)
    if tag == "!GetAtt" and isinstance(argument, list):
        return f"!GetAtt {'.'.join(argument)}"
    if not isinstance(argument, dict | list):
        return f"{tag} {_scalar(argument)}"
    inner = _inline(argument, depth)
    return f"{tag} {inner}" if inner and inner.startswith("[") else None


def _flow(value: Any) -> str:
    if _tag(value) or not isinstance(value, dict | list):
        return _inline(value) or json.dumps(value)
    if isinstance(value, list):
        return f"[{', '.join(_flow(item) for item in value)}]"
    return "{" + ", ".join(f"{_scalar(key)}: {_flow(item)}" for key, item in value.items()) + "}"


def _lines(value: Any, indent: int) -> list[str]:
    """A mapping or list as block lines at ``indent`` spaces."""
    pad = " " * indent
    lines: list[str] = []
    if isinstance(value, dict):
        for key, item in value.items():
            lines += _entry(f"{pad}{_scalar(key)}:", item, indent)
        return lines
    for item in value:
        inline = _inline(item, 1)
        if inline is not None:
            lines.append(f"{pad}- {inline}")
        elif isinstance(item, Commented):
            lines.append(f"{pad}- {_scalar(item.value)}  # {item.comment}")
        elif _tag(item):
            tag, argument = _tag(item) or ("", None)
            lines += [f"{pad}- {tag}", *_lines(argument, indent + 2)]
        else:
            nested = _lines(item, indent + 2)
            lines += [f"{pad}- {nested[0].lstrip()}", *nested[1:]]
    return lines


def _entry(head: str, item: Any, indent: int) -> list[str]:
    if isinstance(item, Commented):
        return [f"{head} {_inline(item.value)}  # {item.comment}"]
    inline = _inline(item)
    if inline is not None:
        return [f"{head} {inline}"]
    tagged = _tag(item)
    if tagged:
        return [f"{head} {tagged[0]}", *_lines(tagged[1], indent + 2)]
    return [head, *_lines(item, indent + 2)]


def resource_text(logical_id: str, resource: dict[str, Any]) -> str:
    return "\n".join([f"  {logical_id}:", *_lines(resource, 4)])


# ---------------------------------------------------------------- the blocks


def _ref(name: str) -> dict[str, Any]:
    return {"Ref": name}


def _get_att(name: str, attribute: str = "Arn") -> dict[str, Any]:
    return {"Fn::GetAtt": [name, attribute]}


def _log_group(name: str) -> dict[str, Any]:
    return {
        "Type": "AWS::Logs::LogGroup",
        "Properties": {
            "LogGroupName": {"Fn::Sub": name},
            "RetentionInDays": _ref("LogRetentionDays"),
            "KmsKeyId": _get_att("StackKey"),
        },
    }


INVOKED_BY = {
    "step-functions": "Invoked synchronously by Step Functions, which retries and catches failures; "
    "a DLQ would never receive anything.",
    "secrets-manager": "Invoked synchronously by Secrets Manager, which records and retries failed steps; "
    "a DLQ would never receive anything.",
    "hand": "Invoked by hand (sam local invoke / console) and synchronously; there is nothing to retry later.",
}


def function_head(logical_id: str, function: Function) -> str:
    network = (
        f"In the W&B VPC whenever DatabaseAccessSubnetIds is given (needed for {function.vpc}); "
        "the condition hides that from checkov."
        if function.vpc
        else f"{function.no_vpc}; it needs no VPC access."
    )
    skips = [
        {"id": "CKV_AWS_117", "comment": network},
        {"id": "CKV_AWS_116", "comment": INVOKED_BY[function.invoked_by]},
        {"id": "CKV_AWS_173", "comment": f"Its environment holds {function.environment}, no secrets."},
    ]
    head = {"Type": "AWS::Serverless::Function", "Metadata": {"checkov": {"skip": skips}}}
    return "\n\n".join(
        [
            resource_text(f"{logical_id}LogGroup", _log_group(f"/aws/lambda/${{AWS::StackName}}-{function.name}")),
            resource_text(logical_id, head),
        ]
    )


LOG_DELIVERY = [
    "logs:CreateLogDelivery",
    "logs:GetLogDelivery",
    "logs:UpdateLogDelivery",
    "logs:DeleteLogDelivery",
    "logs:ListLogDeliveries",
    "logs:PutResourcePolicy",
    "logs:DescribeResourcePolicies",
    "logs:DescribeLogGroups",
]
TRACES = ["xray:PutTraceSegments", "xray:PutTelemetryRecords", "xray:GetSamplingRules", "xray:GetSamplingTargets"]


def _distributed_map_statements(workflow: Workflow) -> list[dict[str, Any]]:
    """A Distributed Map reads its manifest, writes its results and runs its children as
    executions of the state machine itself."""
    if workflow.distributed_map_prefix is None:
        return []
    arn = "arn:${AWS::Partition}:states:${AWS::Region}:${AWS::AccountId}"
    return [
        {
            "Sid": "ReadTheManifestWriteMapResults",
            "Effect": "Allow",
            "Action": ["s3:GetObject", "s3:PutObject", "s3:ListMultipartUploadParts", "s3:AbortMultipartUpload"],
            "Resource": {"Fn::Sub": f"${{S3SyncWorkBucket.Arn}}/{workflow.distributed_map_prefix}/*"},
        },
        {
            "Sid": "RunDistributedMapChildren",
            "Effect": "Allow",
            "Action": "states:StartExecution",
            "Resource": {"Fn::Sub": f"{arn}:stateMachine:${{AWS::StackName}}-{workflow.name}"},
        },
        {
            "Sid": "ManageDistributedMapChildren",
            "Effect": "Allow",
            "Action": ["states:DescribeExecution", "states:StopExecution"],
            "Resource": {"Fn::Sub": f"{arn}:execution:${{AWS::StackName}}-{workflow.name}/*"},
        },
    ]


def _base_statements(workflow: Workflow) -> list[dict[str, Any]]:
    """What every state machine may do: notify, with the stack key, and log and trace its runs
    (the key also encrypts a Distributed Map's run files)."""
    return [
        {
            "Sid": "PublishNotifications",
            "Effect": "Allow",
            "Action": "sns:Publish",
            "Resource": _ref("NotificationsTopic"),
        },
        {
            "Sid": "EncryptNotificationsAndRunFiles" if workflow.distributed_map_prefix else "EncryptNotifications",
            "Effect": "Allow",
            "Action": ["kms:GenerateDataKey", "kms:Decrypt"],
            "Resource": _get_att("StackKey"),
        },
        {
            "Sid": "DeliverExecutionLogs",
            "Effect": "Allow",
            "Action": LOG_DELIVERY,
            "Resource": Commented(
                "*", "CloudWatch Logs vended-log delivery actions have no resource-level permissions"
            ),
        },
        {
            "Sid": "WriteTraces",
            "Effect": "Allow",
            "Action": TRACES,
            "Resource": Commented("*", "X-Ray has no resource-level permissions"),
        },
    ]


def _events(workflow: Workflow) -> dict[str, Any]:
    events: dict[str, Any] = {}
    if workflow.schedule:
        schedule = workflow.schedule
        events[schedule.event] = {
            "Type": "ScheduleV2",
            "Properties": {
                "Description": schedule.description,
                "ScheduleExpression": _ref(schedule.parameter),
                "ScheduleExpressionTimezone": _ref("ScheduleTimezone"),
                "State": _ref(f"{schedule.parameter}State"),
                "Input": schedule.input,
                "RetryPolicy": {"MaximumRetryAttempts": schedule.retries},
            },
        }
    return events | workflow.events


def _failed_alarm(logical_id: str, workflow: Workflow) -> dict[str, Any]:
    def runs(metric: str, query: str) -> Flow:
        dimension = {"Name": "StateMachineArn", "Value": _ref(logical_id)}
        stat = {"Metric": {"Namespace": "AWS/States", "MetricName": metric, "Dimensions": [dimension]}}
        return Flow({"Id": query, "ReturnData": False, "MetricStat": stat | {"Period": 3600, "Stat": "Sum"}})

    return {
        "Type": "AWS::CloudWatch::Alarm",
        "Properties": {
            "AlarmName": {"Fn::Sub": f"${{AWS::StackName}}-{workflow.name}-failed"},
            "AlarmDescription": f"A {workflow.title} run failed or timed out in the last 24 hours. "
            "Runbook: docs/runbooks.md, 'A workflow failed'.",
            "Metrics": [
                runs("ExecutionsFailed", "failed"),
                runs("ExecutionsTimedOut", "timedout"),
                Flow(
                    {
                        "Id": "runs",
                        "Label": "failed or timed-out runs",
                        "Expression": "FILL(failed, 0) + FILL(timedout, 0)",
                    }
                ),
            ],
            "EvaluationPeriods": 24,
            "DatapointsToAlarm": 1,
            "Threshold": 1,
            "ComparisonOperator": "GreaterThanOrEqualToThreshold",
            "TreatMissingData": "notBreaching",
        },
    }


def workflow_block(logical_id: str, workflow: Workflow) -> str:
    log_group = f"{logical_id}LogGroup"
    properties: dict[str, Any] = {
        "Name": {"Fn::Sub": f"${{AWS::StackName}}-{workflow.name}"},
        "DefinitionUri": f"statemachines/{workflow.definition}.asl.json",
        "DefinitionSubstitutions": workflow.substitutions | {"NotificationsTopicArn": _ref("NotificationsTopic")},
        "Tracing": {"Enabled": True},
        "Logging": {
            "Level": "ERROR",
            "IncludeExecutionData": False,
            "Destinations": [{"CloudWatchLogsLogGroup": {"LogGroupArn": _get_att(log_group)}}],
        },
        "Policies": [
            {
                "Statement": [
                    *workflow.statements,
                    *_distributed_map_statements(workflow),
                    *_base_statements(workflow),
                ]
            }
        ],
    }
    events = _events(workflow)
    if events:
        properties["Events"] = events
    return "\n\n".join(
        [
            resource_text(log_group, _log_group(f"/aws/vendedlogs/states/${{AWS::StackName}}-{workflow.name}")),
            resource_text(logical_id, {"Type": "AWS::Serverless::StateMachine", "Properties": properties}),
            resource_text(alarm_id(logical_id), _failed_alarm(logical_id, workflow)),
        ]
    )


def blocks(description: dict[str, Workflow]) -> dict[str, tuple[str, str]]:
    """(generated text, end marker text) by the logical id each block is named after."""
    found: dict[str, tuple[str, str]] = {}
    for logical_id, workflow in description.items():
        found[logical_id] = (workflow_block(logical_id, workflow), f"  # <<< {logical_id}")
        for function_id, function in workflow.functions.items():
            found[function_id] = (function_head(function_id, function), f"    # <<< {function_id}: its properties")
    return found


def updated(template: str, description: dict[str, Workflow]) -> str:
    """``template`` with every generated block written afresh."""
    wanted = blocks(description)
    out: list[str] = []
    lines = iter(template.splitlines())
    seen: set[str] = set()
    for line in lines:
        begin = BEGIN.match(line)
        if not begin:
            if END.match(line):
                raise SystemExit(f"template.yaml: an end marker without its begin marker: {line.strip()}")
            out.append(line)
            continue
        name = begin[1]
        if name not in wanted:
            raise SystemExit(f"template.yaml has a block {name} that workflows.yaml does not describe")
        for inner in lines:
            end = END.match(inner)
            if end:
                if end[1] != name:
                    raise SystemExit(f"template.yaml: block {name} ends with the end marker of {end[1]}")
                break
        else:
            raise SystemExit(f"template.yaml: block {name} has no end marker (# <<< {name})")
        text, end_marker = wanted[name]
        out += [f"{' ' * (len(line) - len(line.lstrip()))}# >>> {name}: {GENERATED_BY}", text, end_marker]
        seen.add(name)
    missing = sorted(wanted.keys() - seen)
    if missing:
        raise SystemExit(
            f"template.yaml has no block for {', '.join(missing)}: add the two marker lines "
            f"'  # >>> <LogicalId>: generated' and '  # <<< <LogicalId>' where its resources go "
            "(a function's block ends before its hand-written Properties), then run make template"
        )
    return "\n".join(out) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="exit 1 if template.yaml is stale")
    arguments = parser.parse_args()
    current = TEMPLATE.read_text()
    wanted = updated(current, load_description())
    if not arguments.check:
        TEMPLATE.write_text(wanted)
    elif wanted != current:
        print("template.yaml is stale: run make template", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
