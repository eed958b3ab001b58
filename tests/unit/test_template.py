"""Static promises of template.yaml that a reviewer would otherwise check by eye."""

import json
import re
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.rig.stack import load_template
from wandb_ops.core.observability import METRICS_NAMESPACE, SERVICE, STACK_VARIABLE
from wandb_ops.core.polling import backoff

REPO_ROOT = Path(__file__).resolve().parents[2]
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


def test_the_shared_layer_is_built_by_sam_for_python_3_13_and_is_the_only_layer() -> None:
    layers = _of_type("AWS::Serverless::LayerVersion")
    assert list(layers) == ["CommonLayer"]
    assert layers["CommonLayer"]["Metadata"]["BuildMethod"] == "python3.13"
    assert layers["CommonLayer"]["Properties"]["ContentUri"] == "layers/common"
    assert sorted(path.name for path in (REPO_ROOT / "layers").iterdir()) == ["common"]


def test_no_function_ships_the_kubernetes_client() -> None:
    """The cut-over talks to the API server over urllib3 (wandb_ops.access.kubernetes.api): the official
    client, about 100 MB with what it needs, is a test dependency only (the fake API server's tests)."""
    assert TEMPLATE["Globals"]["Function"]["Layers"] == [{"Ref": "CommonLayer"}]
    for name, function in _of_type("AWS::Serverless::Function").items():
        assert "Layers" not in function["Properties"], f"{name} adds a layer to the shared one"
        code = "".join(path.read_text() for path in (REPO_ROOT / function["Properties"]["CodeUri"]).rglob("*.py"))
        assert not re.search(r"^\s*(from|import) kubernetes\b", code, re.MULTILINE), name
    shared_code = "".join(path.read_text() for path in (REPO_ROOT / "layers/common").rglob("*.py"))
    assert not re.search(r"^\s*(from|import) kubernetes\b", shared_code, re.MULTILINE)
    assert "kubernetes" not in _installed_closure(_pins("layers/common/requirements.txt"))


def _pins(requirements: str) -> dict[str, tuple[set[str], str]]:
    """package -> (extras, pinned version) of a requirements file of `name[extras]==version` lines."""
    text = (REPO_ROOT / requirements).read_text()
    return {
        canonicalize_name(name): (set(extras.split(",")) - {""}, version)
        for name, extras, version in re.findall(r"^([\w.-]+)(?:\[([^\]]*)\])?==(\S+)", text, re.MULTILINE)
    }


def _installed_closure(pins: dict[str, tuple[set[str], str]]) -> set[str]:
    """The pinned packages and everything they need, as installed in the test environment."""
    found: set[str] = set()
    pending = [(name, extras) for name, (extras, _) in pins.items()]
    while pending:
        name, extras = pending.pop()
        if name in found:
            continue
        found.add(name)
        for requirement in map(Requirement, metadata.requires(name) or []):
            marker = requirement.marker
            if marker is None or any(marker.evaluate({"extra": extra}) for extra in extras or {""}):
                pending.append((canonicalize_name(requirement.name), set(requirement.extras)))
    return found


def test_the_layer_and_the_test_environment_pin_what_the_tests_ran() -> None:
    common, development = _pins("layers/common/requirements.txt"), _pins("requirements-dev.txt")
    assert "kubernetes" in development and "kubernetes" not in common
    for name, (_, version) in (common | development).items():
        assert metadata.version(name) == version, f"{name} is pinned to {version}, the tests ran another version"


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


def test_every_wildcard_resource_says_why_on_its_line() -> None:
    for number, line in enumerate((REPO_ROOT / "template.yaml").read_text().splitlines(), start=1):
        if re.search(r"Resource: \"\*\"", line):
            assert re.search(r"# \S", line), f"template.yaml:{number}: a '*' resource needs its reason as a comment"


def test_state_machines_log_errors_without_execution_data() -> None:
    """A run's input and output never hold a secret by design; the logs would keep a copy for
    LogRetentionDays if one ever slipped in, so they record errors only, without the data."""
    for name, machine in _of_type("AWS::Serverless::StateMachine").items():
        logging = machine["Properties"]["Logging"]
        assert logging["Level"] == "ERROR" and logging["IncludeExecutionData"] is False, name


def test_snapshot_waits_allow_a_long_copy_and_end_before_the_next_daily_run() -> None:
    """One wait loop (a snapshot, a DR copy) may take about 11 h: a first cross-region copy of a
    multi-terabyte database can take hours. All of a run's waits end within its budget, which
    ends before its timeout (so a slow run fails with a notification) and within a day."""
    variables = RESOURCES["DbSnapshotFunction"]["Properties"]["Environment"]["Variables"]
    base, cap, attempts = (int(variables[f"POLL_{name}"]) for name in ("BASE_SECONDS", "MAX_SECONDS", "MAX_ATTEMPTS"))
    # The last check gives up without waiting again: attempts - 1 waits.
    one_loop = sum(backoff(attempt, base, cap, attempts).wait_seconds for attempt in range(attempts - 1))
    budget = int(variables["POLL_RUN_BUDGET_SECONDS"])
    timeout = json.loads((REPO_ROOT / "statemachines" / "db_snapshot.asl.json").read_text())["TimeoutSeconds"]
    assert 10 * 3600 <= one_loop < budget
    assert budget + 3600 <= timeout < 24 * 3600


def _alarms() -> dict[str, Any]:
    return _of_type("AWS::CloudWatch::Alarm")


def _alarm_metrics(alarm: dict[str, Any]) -> list[dict[str, Any]]:
    properties = alarm["Properties"]
    if "Metrics" in properties:
        return [query["MetricStat"]["Metric"] for query in properties["Metrics"] if "MetricStat" in query]
    return [{key: properties[key] for key in ("Namespace", "MetricName", "Dimensions")}]


def test_every_workflow_has_an_alarm_on_failed_and_timed_out_runs() -> None:
    watched: dict[str, set[str]] = {}
    for alarm in _alarms().values():
        for metric in _alarm_metrics(alarm):
            if metric["Namespace"] == "AWS/States":
                [dimension] = metric["Dimensions"]
                watched.setdefault(dimension["Value"]["Ref"], set()).add(metric["MetricName"])
    machines = _of_type("AWS::Serverless::StateMachine")
    assert watched == {machine: {"ExecutionsFailed", "ExecutionsTimedOut"} for machine in machines}


def test_the_posture_metrics_alarms_follow_are_published_by_the_posture_code() -> None:
    code = "".join(
        path.read_text()
        for path in (REPO_ROOT / "layers" / "common" / "wandb_ops" / "workflows" / "posture").glob("*.py")
    )
    followed = {
        metric["MetricName"]
        for alarm in _alarms().values()
        for metric in _alarm_metrics(alarm)
        if metric["Namespace"] == "WandbOps" and metric["MetricName"].startswith(("Newest", "Replica", "TfState"))
    }
    assert followed == {"NewestSnapshotAgeHours", "NewestDrCopyAgeHours", "ReplicaLagHours", "TfStateBackupAgeHours"}
    for name in followed:
        assert f"{name}=" in code, f"no posture item publishes {name}"


def _headings(page: str) -> set[str]:
    return set(re.findall(r"^#+ (.+)$", (REPO_ROOT / "docs" / f"{page}.md").read_text(), re.MULTILINE))


def test_every_alarm_names_a_runbook_section_that_exists() -> None:
    for name, alarm in _alarms().items():
        found = re.search(r"docs/(\w+)\.md, [\"']([^\"']+)[\"']", alarm["Properties"]["AlarmDescription"])
        assert found, f"{name} names no runbook"
        page, section = found.groups()
        assert section in _headings(page), f"{name}: docs/{page}.md has no section {section!r}"


def test_the_dashboard_shows_every_alarm_workflow_and_function() -> None:
    body, variables = RESOURCES["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    for dr_entry in ('"arn:dr-copy-alarm", ', ""):  # with a DR region, and without (the alarm's condition)
        filled = body.replace("${DrCopyAgeAlarmEntry}", dr_entry)
        parsed = json.loads(re.sub(r"\$\{(SnapshotAgeAlarmHours|BackupAgeAlarmHours)\}", "1", filled))
        assert parsed["start"] == "-P7D"  # the charts and queries cover a week, not the default 3 hours
    assert variables["DrCopyAgeAlarmEntry"]["Fn::If"][0] == RESOURCES["DrCopyAgeAlarm"]["Condition"]
    text = body + json.dumps(variables)
    for name in _alarms():
        assert "${" + name + ".Arn}" in text, f"the dashboard does not show {name}"
    for name in _of_type("AWS::Serverless::StateMachine"):
        assert body.count("${" + name + "}") == 2, f"the dashboard does not chart {name}'s runs"
    for name in _of_type("AWS::Serverless::Function"):
        assert "${" + name + "LogGroup}" in body, f"the dashboard does not show {name}'s last run"


def test_age_alarms_go_off_without_a_fresh_measurement() -> None:
    """Published once a day by the posture report: an alarm is OK only while a report of the last
    26 hours measured a fresh backup; nothing found, or no report, is an alarm."""
    for name in ("SnapshotAgeAlarm", "DrCopyAgeAlarm", "ReplicaLagAlarm", "TfStateBackupAgeAlarm"):
        properties = RESOURCES[name]["Properties"]
        assert properties["Period"] * properties["EvaluationPeriods"] == 26 * 3600
        assert properties["DatapointsToAlarm"] == properties["EvaluationPeriods"]
        assert properties["TreatMissingData"] == "breaching" and properties["Statistic"] == "Minimum"
        assert properties["AlarmActions"] == [{"Ref": "NotificationsTopic"}]


SOURCE = {"Fn::If": ["HasDatabaseIdentifier", {"Ref": "DatabaseIdentifier"}, {"Ref": "Namespace"}]}
STACK_SHORT_ID = {
    "Fn::Select": [0, {"Fn::Split": ["-", {"Fn::Select": [2, {"Fn::Split": ["/", {"Ref": "AWS::StackId"}]}]}]}]
}
SNAPSHOT_ACTIONS_ON_ANOTHERS = {  # what could delete, re-tag, copy away or restore another stack's snapshots
    "rds:DeleteDBClusterSnapshot",
    "rds:DeleteDBSnapshot",
    "rds:AddTagsToResource",
    "rds:CopyDBClusterSnapshot",
    "rds:CopyDBSnapshot",
    "rds:RestoreDBClusterFromSnapshot",
    "rds:RestoreDBInstanceFromDBSnapshot",
}


def _arns(statement: dict[str, Any]) -> list[str]:
    """Each resource ARN of a statement as text (a !Sub's template string)."""
    resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
    texts = []
    for resource in resources:
        value = resource.get("Fn::Sub", resource) if isinstance(resource, dict) else resource
        value = value[0] if isinstance(value, list) else value
        texts.append(value if isinstance(value, str) else json.dumps(value))
    return texts


def _actions(statement: dict[str, Any]) -> set[str]:
    return set(statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]])


def test_snapshots_of_another_database_cannot_be_deleted_tagged_copied_or_restored() -> None:
    """Every stack's snapshots are named wandb-ops-*: a role may act on one only when it carries
    (or, being created, is given) this stack's database in its wandb-ops:source tag."""
    checked = []
    for owner, statement in _policy_statements():
        on_snapshots = [a for a in _arns(statement) if re.search(r":(cluster-)?snapshot:wandb-ops-\*$", a)]
        risky = _actions(statement) & SNAPSHOT_ACTIONS_ON_ANOTHERS
        if not (on_snapshots and risky):
            continue
        checked.append((owner, statement["Sid"]))
        condition = statement.get("Condition", {})
        existing = {**condition.get("StringEqualsIfExists", {}), **condition.get("StringEquals", {})}
        assert existing.get("aws:ResourceTag/wandb-ops:source") == SOURCE, f"{owner}: {statement['Sid']}"
        if risky & {"rds:DeleteDBClusterSnapshot", "rds:DeleteDBSnapshot"}:
            assert condition["StringEquals"]["aws:ResourceTag/wandb-ops:source"] == SOURCE, owner
        if "aws:ResourceTag/wandb-ops:source" not in condition.get("StringEquals", {}):
            # It admits a snapshot that does not exist yet (a copy's target): it must be given the tag.
            assert condition["StringEquals"]["aws:RequestTag/wandb-ops:source"] == SOURCE, owner
        if "rds:AddTagsToResource" in risky:
            assert "wandb-ops:source" in condition["ForAllValues:StringEquals"]["aws:TagKeys"], owner
    assert {sid for _, sid in checked} >= {
        "TagOnlyNewSnapshotsOfTheDatabase",
        "DeleteOnlyOwnSnapshots",
        "CopyToTheDrRegion",
        "RestoreOnlySnapshotsOfTheDatabase",
        "CopyTheSnapshotWorkflowsSnapshots",
    }


def test_every_tagging_grant_names_the_tags_and_the_database_they_may_carry() -> None:
    """AddTagsToResource is how a stack would re-label another's resources as its own (or as
    something to delete): each grant says which tag keys may be set, to which database's value,
    and on an existing resource only if it is this stack's database's already."""
    for owner, statement in _policy_statements():
        if "rds:AddTagsToResource" not in _actions(statement):
            continue
        condition = statement.get("Condition", {})
        assert condition.get("ForAllValues:StringEquals", {}).get("aws:TagKeys"), f"{owner}: {statement['Sid']}"
        requested = {k: v for k, v in condition.get("StringEquals", {}).items() if k.startswith("aws:RequestTag/")}
        assert requested.get("aws:RequestTag/managed-by") == "wandb-ops", f"{owner}: {statement['Sid']}"
        assert SOURCE in requested.values() or STACK_SHORT_ID in requested.values(), f"{owner}: {statement['Sid']}"
        assert condition.get("StringEqualsIfExists"), f"{owner}: {statement['Sid']} could re-tag an existing resource"


def test_creating_a_snapshot_does_not_grant_tagging_without_conditions() -> None:
    for owner, statement in _policy_statements():
        if _actions(statement) & {"rds:CreateDBClusterSnapshot", "rds:CreateDBSnapshot"}:
            assert "rds:AddTagsToResource" not in _actions(statement), f"{owner}: {statement['Sid']}"


def test_the_restore_check_acts_only_on_check_databases_named_and_tagged_with_its_stack_id() -> None:
    function = RESOURCES["DbRestoreCheckFunction"]["Properties"]
    assert function["Environment"]["Variables"]["STACK_SHORT_ID"] == STACK_SHORT_ID
    statements = [statement for owner, statement in _policy_statements() if owner == "DbRestoreCheckFunction"]
    for statement in statements:
        for resource in statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]:
            text = json.dumps(resource)
            if "wandb-ops-check-" in text:
                assert resource["Fn::Sub"][0].endswith(":wandb-ops-check-${StackShortId}-*"), statement["Sid"]
                assert resource["Fn::Sub"][1] == {"StackShortId": STACK_SHORT_ID}, statement["Sid"]
    by_sid = {statement["Sid"]: statement for statement in statements}
    delete = by_sid["DeleteOnlyTheCheckDatabase"]["Condition"]["StringEquals"]
    assert delete == {
        "aws:ResourceTag/wandb-ops:purpose": "restore-check",
        "aws:ResourceTag/wandb-ops:stack": STACK_SHORT_ID,
    }
    tag = by_sid["TagOnlyTheNewCheckDatabase"]["Condition"]["StringEquals"]
    assert tag["aws:RequestTag/wandb-ops:stack"] == STACK_SHORT_ID
    assert {a for s in statements for a in _actions(s) if s["Sid"] != "TagOnlyTheNewCheckDatabase"}.isdisjoint(
        {"rds:AddTagsToResource"}
    )


# ---------------------------------------------------------------- deleting the stack, two stacks

# What holds backups or keeps them readable and private: kept when the stack is deleted, and
# when an update replaces it. A new bucket, bucket policy or key is held to this without a list.
KEPT_TYPES = {"AWS::S3::Bucket", "AWS::S3::BucketPolicy", "AWS::KMS::Key"}
# What a kept resource names that is deleted with the stack anyway, and why that is harmless.
DELETED_ON_PURPOSE = {
    # The state backup bucket's policy exempts the two functions' roles from its read Deny: once
    # they are gone, the roles of TfStateReaderPrincipalArns alone may read the backups.
    ("TfStateBackupBucketPolicy", "TfStateBackupFunctionRole"),
    ("TfStateBackupBucketPolicy", "TfStateRestoreFunctionRole"),
}


def _referenced(value: Any) -> set[str]:
    """Logical ids a template value names (Ref, Fn::GetAtt, ${...} in Fn::Sub)."""
    found: set[str] = set()
    if isinstance(value, dict):
        for key, inner in value.items():
            if key == "Ref" and isinstance(inner, str):
                found.add(inner)
            elif key == "Fn::GetAtt":
                found.add(inner[0] if isinstance(inner, list) else inner.split(".")[0])
            elif key == "Fn::Sub":
                text = inner[0] if isinstance(inner, list) else inner
                found |= {name.split(".")[0] for name in re.findall(r"\$\{([^}!]+)\}", text)}
            found |= _referenced(inner)
    elif isinstance(value, list):
        for inner in value:
            found |= _referenced(inner)
    return found


def _kept(resource: dict[str, Any]) -> bool:
    return resource.get("DeletionPolicy") == "Retain" and resource.get("UpdateReplacePolicy") == "Retain"


def test_every_bucket_bucket_policy_and_key_outlives_the_stack() -> None:
    held = {name: r for name, r in RESOURCES.items() if r["Type"] in KEPT_TYPES}
    assert {"ReplicaBucket", "TfStateBackupBucket", "StackKey", "TfStateBackupBucketPolicy"} <= set(held)
    for name, resource in held.items():
        assert _kept(resource), f"{name}: a {resource['Type']} needs DeletionPolicy and UpdateReplacePolicy Retain"


def test_nothing_a_kept_resource_needs_is_deleted_with_the_stack() -> None:
    """A kept bucket encrypted with a deleted key, or a kept policy naming a deleted bucket, is
    lost or useless all the same: what a kept resource names is kept too, or listed with why not."""
    parameters = set(TEMPLATE["Parameters"])
    needs = {
        (name, needed)
        for name, resource in RESOURCES.items()
        if _kept(resource)
        for needed in _referenced(resource.get("Properties", {})) - parameters
        if not needed.startswith("AWS::")
    }
    assert {("TfStateBackupBucket", "StackKey"), ("TfStateBackupBucketPolicy", "TfStateBackupBucket")} <= needs
    for name, needed in needs - DELETED_ON_PURPOSE:
        assert needed in RESOURCES and _kept(RESOURCES[needed]), f"kept {name} needs {needed}, which is deleted"


def test_the_stack_key_alias_is_not_kept() -> None:
    """A kept alias/<stack name> would stop a new stack of the same name from being created."""
    assert RESOURCES["StackKeyAlias"]["Properties"]["AliasName"] == {"Fn::Sub": "alias/${AWS::StackName}"}
    assert "DeletionPolicy" not in RESOURCES["StackKeyAlias"]


# Physical names a template may set, by type, and whether the name is global (not per region).
NAME_PROPERTIES = {
    "AWS::Serverless::Function": ("FunctionName", False),
    "AWS::Serverless::StateMachine": ("Name", False),
    "AWS::Logs::LogGroup": ("LogGroupName", False),
    "AWS::CloudWatch::Alarm": ("AlarmName", False),
    "AWS::KMS::Alias": ("AliasName", False),
    "AWS::CloudWatch::Dashboard": ("DashboardName", True),
    "AWS::SNS::Topic": ("TopicName", False),
    "AWS::S3::Bucket": ("BucketName", True),
    "AWS::IAM::Role": ("RoleName", True),
}


def test_names_the_template_sets_cannot_collide_between_two_stacks() -> None:
    """Two stacks in one account (or one stack name in two regions) never want the same name."""
    named = 0
    for name, resource in RESOURCES.items():
        if resource["Type"] not in NAME_PROPERTIES:
            continue
        key, global_name = NAME_PROPERTIES[resource["Type"]]
        if key not in resource["Properties"]:
            continue  # CloudFormation makes a unique one
        named += 1
        value = resource["Properties"][key]
        text = value.get("Fn::Sub", "") if isinstance(value, dict) else value
        assert "${AWS::StackName}" in text, f"{name}: {key} {value} does not name the stack"
        assert not global_name or "${AWS::Region}" in text, f"{name}: {key} is global, so it must name the region"
    assert named > 20


def test_functions_know_their_stack_from_the_template() -> None:
    variables = TEMPLATE["Globals"]["Function"]["Environment"]["Variables"]
    assert variables[STACK_VARIABLE] == {"Ref": "AWS::StackName"}


def test_alarms_on_the_stacks_metrics_read_only_this_stacks_measurements() -> None:
    """The functions publish under service and stack (wandb_ops.core.observability): an alarm that left
    out the stack would mix two stacks' measurements, so a fresh stack could hide a stale one."""
    own = [{"Name": "service", "Value": SERVICE}, {"Name": "stack", "Value": {"Ref": "AWS::StackName"}}]
    machines, functions = _of_type("AWS::Serverless::StateMachine"), _of_type("AWS::Serverless::Function")
    for name, alarm in _alarms().items():
        for metric in _alarm_metrics(alarm):
            if metric["Namespace"] == METRICS_NAMESPACE:
                assert metric["Dimensions"] == own, f"{name} reads {metric['MetricName']} of every stack"
            else:  # AWS's own metrics, per resource of this stack
                [dimension] = metric["Dimensions"]
                assert dimension["Value"]["Ref"] in {**machines, **functions}, name


def test_the_dashboard_charts_only_this_stacks_measurements() -> None:
    body, _ = RESOURCES["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    filled = re.sub(
        r"\$\{(SnapshotAgeAlarmHours|BackupAgeAlarmHours)\}", "1", body.replace("${DrCopyAgeAlarmEntry}", "")
    )
    rows = [
        row
        for widget in json.loads(filled)["widgets"]
        for row in widget["properties"].get("metrics", [])
        if row[0] == METRICS_NAMESPACE
    ]
    assert len(rows) == 7
    for row in rows:
        dimensions = dict(zip(row[2::2], row[3::2], strict=False))
        assert dimensions == {"service": SERVICE, "stack": "${AWS::StackName}"}, row
    assert "SEARCH(" not in body  # a search expression would need the stack dimension as well
