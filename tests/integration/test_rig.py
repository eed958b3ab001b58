"""Tests of the rig itself: the template deploys into the emulator, and every kind of
Lambda invocation runs the real handler in-process with the template's environment."""

import json
from pathlib import Path

import boto3

from tests.rig.local_cloud import LocalCloud
from tests.rig.stack import REPO_ROOT, DeployedStack
from tests.rig.wandb_deployment import SimulatedWandb

PROBE_TEMPLATE = Path(__file__).resolve().parents[1] / "fixtures" / "rotation_probe" / "template.yaml"


def test_boto3_reaches_the_moto_server(cloud: LocalCloud) -> None:
    assert boto3.client("s3").meta.endpoint_url == cloud.emulator.endpoint
    boto3.client("s3").create_bucket(Bucket="reachable")
    assert [b["Name"] for b in boto3.client("s3").list_buckets()["Buckets"]] == ["reachable"]


def test_template_functions_get_their_environment_from_the_template(
    stack: DeployedStack, wandb: SimulatedWandb
) -> None:
    function = boto3.client("lambda").get_function(FunctionName=stack.function_name("PostureFunction"))
    variables = function["Configuration"]["Environment"]["Variables"]
    assert variables["WANDB_NAMESPACE"] == wandb.namespace
    assert variables["WANDB_BUCKET_NAME"] == wandb.bucket_name
    # The template's !If: an empty EksClusterName falls back to the namespace.
    assert variables["WANDB_EKS_CLUSTER_NAME"] == wandb.namespace
    assert function["Configuration"]["Runtime"] == "python3.13"


def test_direct_invoke_runs_the_real_handler(cloud: LocalCloud, stack: DeployedStack, wandb: SimulatedWandb) -> None:
    event = json.loads((REPO_ROOT / "events" / "posture.json").read_text())
    response = boto3.client("lambda").invoke(
        FunctionName=stack.function_name("PostureFunction"), Payload=json.dumps(event).encode()
    )
    assert "FunctionError" not in response
    report = json.loads(response["Payload"].read())
    assert report["namespace"] == wandb.namespace
    assert {item["id"] for item in report["items"]} >= {
        "aurora.deletion_protection",
        "s3.versioning",
        f"kms.rotation:{wandb.kms_key_arn.rsplit('/', 1)[1]}",
    }
    [invocation] = cloud.runtime.invocations_of("PostureFunction")
    # Powertools saw a real Lambda context and wrote structured lines, which the rig captured.
    logged = [json.loads(line) for line in invocation.log_lines]
    assert logged and logged[-1]["function_name"] == stack.function_name("PostureFunction")
    assert logged[-1]["correlation_id"] == event["execution"]


def test_handler_errors_come_back_as_lambda_function_errors(cloud: LocalCloud, stack: DeployedStack) -> None:
    response = boto3.client("lambda").invoke(
        FunctionName=stack.function_name("PostureFunction"), Payload=json.dumps({"input": {"source": "nope"}}).encode()
    )
    assert response["FunctionError"]
    payload = json.loads(response["Payload"].read())
    assert payload["errorType"] == "InvalidInputError"
    assert "field 'input.source'" in payload["errorMessage"]


def test_a_lambda_task_in_a_state_machine_runs_the_real_handler(
    cloud: LocalCloud, stack: DeployedStack, wandb: SimulatedWandb
) -> None:
    execution = cloud.run(stack.state_machine_arns["PostureStateMachine"], {"source": "test"})
    assert execution.status == "SUCCEEDED", execution.cause
    [invocation] = cloud.runtime.invocations_of("PostureFunction")
    assert invocation.event["input"] == {"source": "test"}
    assert invocation.event["execution"].startswith("arn:aws:states:")
    assert execution.output == invocation.result


def test_secrets_manager_rotation_reaches_a_real_rotation_handler(cloud: LocalCloud) -> None:
    probe = cloud.deploy({}, stack_name="rotation-probe", template_path=PROBE_TEMPLATE)
    function_arn = boto3.client("lambda").get_function(FunctionName=probe.function_name("RotationProbeFunction"))[
        "Configuration"
    ]["FunctionArn"]
    secrets = boto3.client("secretsmanager")
    original = {"username": "wandb_app", "password": "before-rotation"}
    arn = secrets.create_secret(Name="probe/app", SecretString=json.dumps(original))["ARN"]

    secrets.rotate_secret(SecretId=arn, RotationLambdaARN=function_arn, RotationRules={"AutomaticallyAfterDays": 30})

    steps = [i.event["Step"] for i in cloud.runtime.invocations_of("RotationProbeFunction")]
    assert steps == ["createSecret", "setSecret", "testSecret", "finishSecret"]
    assert all(i.error_type is None for i in cloud.runtime.invocations_of("RotationProbeFunction"))
    # The handler read its template environment (password length) and its Lambda context.
    rotated = json.loads(secrets.get_secret_value(SecretId=arn)["SecretString"])
    assert rotated["username"] == "wandb_app" and len(rotated["password"]) == 24
    previous = json.loads(secrets.get_secret_value(SecretId=arn, VersionStage="AWSPREVIOUS")["SecretString"])
    assert previous == original
    assert cloud.runtime.invocations_of("RotationProbeFunction")[0].result["remaining_ms"] > 0


def test_state_machines_are_created_from_the_real_definitions(stack: DeployedStack) -> None:
    sfn = boto3.client("stepfunctions")
    definition = json.loads(
        sfn.describe_state_machine(stateMachineArn=stack.state_machine_arns["PostureStateMachine"])["definition"]
    )
    source = json.loads((REPO_ROOT / "statemachines" / "posture.asl.json").read_text())
    assert definition["States"].keys() == source["States"].keys()
    function_arn = boto3.client("lambda").get_function(FunctionName=stack.function_name("PostureFunction"))[
        "Configuration"
    ]["FunctionArn"]
    assert definition["States"]["Assess"]["Parameters"]["FunctionName"] == function_arn
    assert "${" not in json.dumps(definition)


def test_alarms_and_dashboard_are_deployed(stack: DeployedStack) -> None:
    """The rig's alarm model (moto skips AWS::CloudWatch::Alarm) lets the dashboard resolve the alarms' ARNs."""
    cloudwatch = boto3.client("cloudwatch")
    alarms = {alarm["AlarmName"]: alarm for alarm in cloudwatch.describe_alarms()["MetricAlarms"]}
    assert f"{stack.name}-s3-sync-failed" in alarms and f"{stack.name}-replica-lag" in alarms
    assert alarms[f"{stack.name}-replica-lag"]["Threshold"] == 26
    [dashboard] = cloudwatch.list_dashboards()["DashboardEntries"]
    body = json.loads(cloudwatch.get_dashboard(DashboardName=dashboard["DashboardName"])["DashboardBody"])
    [alarm_widget] = [widget for widget in body["widgets"] if widget["type"] == "alarm"]
    assert set(alarm_widget["properties"]["alarms"]) == {alarm["AlarmArn"] for alarm in alarms.values()}
