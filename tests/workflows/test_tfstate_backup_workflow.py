"""The terraform state backup workflow end to end: real `terraform apply` runs writing
to the emulator's S3 (backend) or uploaded to the intake prefix, the real definition
in the interpreter, the real handler for every task. Every test that runs Terraform runs
with each Terraform the rig finds (tests/workflows/conftest.py): the pinned 1.0.3, and 1.10
or newer, whose backend also locks with `.tflock` objects next to the state."""

import base64
import hashlib
import io
import json
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from tests.rig.local_cloud import Execution, LocalCloud
from tests.rig.stack import REPO_ROOT, RESOLVED_BUCKET_POLICIES, DeployedStack
from tests.rig.terraform import DEFAULT_PASSWORD, Terraform, TerraformProject
from tests.rig.wandb_deployment import SimulatedWandb
from tests.workflows.notifications import TopicInbox
from wandb_ops.access.terraform_state.history import list_backups, verify_backup

BACKEND_BUCKET = "acme-terraform"
BACKEND_KEY = "wandb/terraform.tfstate"
PASSWORD = DEFAULT_PASSWORD  # what the state holds; must never leave it
LOCK_IGNORED = "a lock file (.tflock), not a state"


@pytest.fixture
def tf_stack(cloud: LocalCloud, wandb: SimulatedWandb) -> DeployedStack:
    boto3.client("s3").create_bucket(Bucket=BACKEND_BUCKET)
    return cloud.deploy({**wandb.stack_parameters(), "TfStateBucketName": BACKEND_BUCKET, "TfStateKey": BACKEND_KEY})


@pytest.fixture
def backend_project(cloud: LocalCloud, terraform: Terraform) -> Iterator[TerraformProject]:
    project = TerraformProject({"bucket": BACKEND_BUCKET, "key": BACKEND_KEY}, cloud.emulator.endpoint, terraform)
    yield project
    project.close()


@pytest.fixture
def locking_project(cloud: LocalCloud, lockfile_terraform: Terraform) -> Iterator[TerraformProject]:
    """A backend with `use_lockfile = true` (Terraform 1.10 or newer)."""
    project = TerraformProject(
        {"bucket": BACKEND_BUCKET, "key": BACKEND_KEY}, cloud.emulator.endpoint, lockfile_terraform
    )
    assert "use_lockfile = true" in (project.workdir / "main.tf").read_text()
    yield project
    project.close()


@pytest.fixture
def local_project(terraform: Terraform) -> Iterator[TerraformProject]:
    project = TerraformProject(terraform=terraform)
    yield project
    project.close()


def _backup_bucket(stack: DeployedStack) -> str:
    return stack.outputs["TfStateBackupBucketName"]


def _run(cloud: LocalCloud, stack: DeployedStack, bucket: str, key: str) -> Execution:
    execution = cloud.run(
        stack.state_machine_arns["TfStateBackupStateMachine"], {"bucket": bucket, "key": key, "source": "test"}
    )
    assert execution.status == "SUCCEEDED", execution.cause
    return execution


def _upload(stack: DeployedStack, body: bytes, workspace: str = "wandb-prod") -> str:
    key = f"intake/{workspace}/terraform.tfstate"
    boto3.client("s3").put_object(Bucket=_backup_bucket(stack), Key=key, Body=body)
    return key


def _outcomes(execution: Execution) -> list[tuple[str, Any]]:
    return [(r["outcome"], r["anomaly"]) for r in execution.output["results"]]


def _assert_no_secret_escaped(cloud: LocalCloud, executions: list[Execution], inbox: TopicInbox | None = None) -> None:
    for invocation in cloud.runtime.invocations:
        assert PASSWORD not in json.dumps(invocation.result)
        assert all(PASSWORD not in line for line in invocation.log_lines)
    for execution in executions:
        assert PASSWORD not in json.dumps(execution.history, default=str)
    if inbox:
        assert all(PASSWORD not in n.message for n in inbox.received())


def test_every_apply_is_backed_up_once_in_serial_order(
    cloud: LocalCloud, tf_stack: DeployedStack, backend_project: TerraformProject
) -> None:
    s3 = boto3.client("s3")
    executions, written = [], []
    for revision in (1, 2, 3, 4):
        backend_project.apply(revision)
        written.append(s3.get_object(Bucket=BACKEND_BUCKET, Key=BACKEND_KEY)["Body"].read())
        executions.append(_run(cloud, tf_stack, BACKEND_BUCKET, BACKEND_KEY))
    assert [_outcomes(e) for e in executions] == [[("stored", None)]] * 4
    serials = [json.loads(state)["serial"] for state in written]
    # 1.0.3's first apply writes serial 0, 1.10's serial 1; each apply adds one
    assert serials == list(range(serials[0], serials[0] + 4))
    history = list_backups(s3, _backup_bucket(tf_stack), "backend/default")
    assert [entry.serial for entry in history] == serials
    assert len({entry.lineage for entry in history}) == 1
    assert verify_backup(s3, _backup_bucket(tf_stack), history[-1].key).serial == serials[-1]
    head = s3.head_object(Bucket=_backup_bucket(tf_stack), Key=history[-1].key, ChecksumMode="ENABLED")
    assert head["ServerSideEncryption"] == "aws:kms"
    assert head["ChecksumSHA256"] == base64.b64encode(hashlib.sha256(written[-1]).digest()).decode()
    # 1.10 and later send a SHA-256 checksum with the state (1.0.3 none): the backup's is the same
    source = s3.head_object(Bucket=BACKEND_BUCKET, Key=BACKEND_KEY, ChecksumMode="ENABLED")
    assert source.get("ChecksumSHA256") == (head["ChecksumSHA256"] if backend_project.terraform.modern else None)
    # the lock objects 1.10 writes next to the state are gone once the apply is done
    assert [item["Key"] for item in s3.list_objects_v2(Bucket=BACKEND_BUCKET)["Contents"]] == [BACKEND_KEY]
    _assert_no_secret_escaped(cloud, executions)


def test_workspaces_have_their_own_history(
    cloud: LocalCloud, tf_stack: DeployedStack, backend_project: TerraformProject
) -> None:
    backend_project.apply(1)
    backend_project.workspace("staging")
    backend_project.apply(1)
    execution = cloud.run(stack_arn(tf_stack), {"sweep": True, "source": "test"})
    assert execution.status == "SUCCEEDED", execution.cause
    assert sorted(r["workspace"] for r in execution.output["results"]) == ["backend/default", "backend/staging"]
    again = cloud.run(stack_arn(tf_stack), {"sweep": True, "source": "test"})
    assert _outcomes(again) == [("duplicate", None)] * 2


def stack_arn(stack: DeployedStack) -> str:
    return stack.state_machine_arns["TfStateBackupStateMachine"]


def test_the_same_upload_twice_is_stored_once(
    cloud: LocalCloud, tf_stack: DeployedStack, local_project: TerraformProject
) -> None:
    local_project.apply(1)
    key = _upload(tf_stack, local_project.local_state())
    first = _run(cloud, tf_stack, _backup_bucket(tf_stack), key)
    key = _upload(tf_stack, local_project.local_state())
    second = _run(cloud, tf_stack, _backup_bucket(tf_stack), key)
    assert _outcomes(first) == [("stored", None)] and _outcomes(second) == [("duplicate", None)]
    assert len(list_backups(boto3.client("s3"), _backup_bucket(tf_stack), "intake/wandb-prod")) == 1


def _quarantined(stack: DeployedStack) -> list[str]:
    listed = boto3.client("s3").list_objects_v2(Bucket=_backup_bucket(stack), Prefix="quarantine/")
    return [item["Key"] for item in listed.get("Contents", [])]


def test_anomalies_are_set_aside_and_notified_never_overwriting_history(
    cloud: LocalCloud, tf_stack: DeployedStack, local_project: TerraformProject
) -> None:
    inbox = TopicInbox(tf_stack.outputs["NotificationsTopicArn"])
    bucket = _backup_bucket(tf_stack)
    states = []
    for revision in (1, 2, 3):
        local_project.apply(revision)
        states.append(local_project.local_state())
        _run(cloud, tf_stack, bucket, _upload(tf_stack, states[-1]))
    history_before = list_backups(boto3.client("s3"), bucket, "intake/wandb-prod")
    assert [e.serial for e in history_before] == [1, 2, 3]
    assert inbox.received() == []

    stale = _run(cloud, tf_stack, bucket, _upload(tf_stack, states[0]))
    conflicting = json.loads(states[-1])
    conflicting["outputs"]["revision"]["value"] = 99  # same serial, different content
    conflict = _run(cloud, tf_stack, bucket, _upload(tf_stack, json.dumps(conflicting).encode()))
    foreign_project = TerraformProject(terraform=local_project.terraform)
    foreign_project.apply(7)
    foreign = _run(cloud, tf_stack, bucket, _upload(tf_stack, foreign_project.local_state()))
    foreign_project.close()
    corrupt = _run(cloud, tf_stack, bucket, _upload(tf_stack, states[-1][: len(states[-1]) // 2]))
    not_json = _run(cloud, tf_stack, bucket, _upload(tf_stack, b"<html>502 Bad Gateway</html>"))

    assert _outcomes(stale) == [("anomaly", "serial_regressed")]
    assert _outcomes(conflict) == [("anomaly", "serial_conflict")]
    assert _outcomes(foreign) == [("anomaly", "new_lineage")]
    assert _outcomes(corrupt) == [("anomaly", "invalid_state")]
    assert _outcomes(not_json) == [("anomaly", "invalid_state")]
    assert list_backups(boto3.client("s3"), bucket, "intake/wandb-prod") == history_before
    assert len(_quarantined(tf_stack)) == 5
    notifications = inbox.received()
    assert [n.subject for n in notifications] == ["wandb-ops: terraform state backup anomaly"] * 5
    assert "serial 1 is lower than the last backup's 3" in notifications[0].message
    for execution in (stale, conflict, foreign, corrupt, not_json):
        assert execution.states_entered()[-2:] == ["NotifyAnomalies", "Done"]
    _assert_no_secret_escaped(cloud, [stale, conflict, foreign, corrupt, not_json])


MARKER = "crafted7c1e"  # in every crafted value: found anywhere, a value was quoted back
CRAFTED_FIELDS: dict[str, tuple[str, Any]] = {
    "lineage-substitution": ("lineage", f"$(touch /tmp/{MARKER})"),
    "lineage-semicolon": ("lineage", f"x; rm -rf ~ # {MARKER}"),
    "lineage-quotes": ("lineage", f'{MARKER}\' "double" `id`'),
    "lineage-newline": ("lineage", f"5f0c1a7e-2b8a-4b8e-9d43-0c7a1f2e3d4b\n{MARKER}"),
    "lineage-non-ascii": ("lineage", f"{MARKER}-lignée-🚀"),
    "lineage-overlong": ("lineage", MARKER + "a" * 5000),
    "lineage-list": ("lineage", [MARKER]),
    "version-text": ("version", f"4 {MARKER} texte arbitraire, non-ASCII: é"),
    "terraform-version-shell": ("terraform_version", f"1.9.8 $(id) {MARKER}"),
    "terraform-version-non-ascii": ("terraform_version", f"1.9.8-{MARKER}é"),
    "serial-text": ("serial", MARKER),
    "resources-text": ("resources", MARKER),
}


def _assert_marker_nowhere(cloud: LocalCloud, executions: list[Execution], inbox: TopicInbox) -> list[str]:
    """The marker in no function result or log line, execution history or notification;
    returns the notification messages."""
    for invocation in cloud.runtime.invocations:
        assert MARKER not in json.dumps(invocation.result, ensure_ascii=False), invocation.logical_id
        assert not [line for line in invocation.log_lines if MARKER in line], invocation.logical_id
    for execution in executions:
        assert MARKER not in json.dumps(execution.history, default=str, ensure_ascii=False)
        assert MARKER not in json.dumps(execution.output, ensure_ascii=False)
    messages = [notification.message for notification in inbox.received()]
    assert not [message for message in messages if MARKER in message]
    return messages


def test_crafted_state_fields_are_quarantined_and_never_repeated(
    cloud: LocalCloud, tf_stack: DeployedStack, local_project: TerraformProject
) -> None:
    inbox = TopicInbox(tf_stack.outputs["NotificationsTopicArn"])
    bucket, s3 = _backup_bucket(tf_stack), boto3.client("s3")
    local_project.apply(1)
    for index, (field, value) in enumerate(CRAFTED_FIELDS.values()):
        state = {**local_project.local_state_json(), field: value}
        _upload(tf_stack, json.dumps(state, ensure_ascii=False).encode(), workspace=f"crafted-{index}")
    execution = cloud.run(stack_arn(tf_stack), {"sweep": True, "source": "test"})

    assert execution.status == "SUCCEEDED", execution.cause
    assert _outcomes(execution) == [("anomaly", "invalid_state")] * len(CRAFTED_FIELDS)
    assert execution.states_entered()[-2:] == ["NotifyAnomalies", "Done"]
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket, Prefix="states/")
    quarantined = _quarantined(tf_stack)
    assert sorted(key.split("/")[2] for key in quarantined) == sorted(
        f"crafted-{i}" for i in range(len(CRAFTED_FIELDS))
    )
    for key in quarantined:  # the reason kept with the copy names fields, never their values
        assert MARKER not in json.dumps(s3.head_object(Bucket=bucket, Key=key)["Metadata"], ensure_ascii=False)
    [message] = _assert_marker_nowhere(cloud, [execution], inbox)
    for index, (field, _) in enumerate(CRAFTED_FIELDS.values()):
        assert f"intake/crafted-{index} " in message
        assert f"field '{field}' must be" in message


def test_a_history_key_with_a_crafted_lineage_is_never_offered_for_restore(
    cloud: LocalCloud, tf_stack: DeployedStack, local_project: TerraformProject, tmp_path: Path
) -> None:
    """A backup key whose lineage is not a UUID (written by an earlier version, or by hand) is
    neither listed nor put into the fetch command; a lineage given to the function is checked."""
    bucket, s3 = _backup_bucket(tf_stack), boto3.client("s3")
    local_project.apply(1)
    state = local_project.local_state()
    _run(cloud, tf_stack, bucket, _upload(tf_stack, state))
    digest = hashlib.sha256(state).hexdigest()
    crafted = f"states/intake/wandb-prod/x' $(touch /tmp/{MARKER}) '/000000000001-{digest[:16]}.tfstate"
    s3.put_object(Bucket=bucket, Key=crafted, Body=state, Metadata={"sha256": digest})

    function = tf_stack.function_name("TfStateRestoreFunction")

    def restore_function(request: dict[str, Any]) -> dict[str, Any]:
        payload = boto3.client("lambda").invoke(FunctionName=function, Payload=json.dumps(request))["Payload"]
        answer: dict[str, Any] = json.loads(payload.read())
        assert MARKER not in json.dumps(answer, ensure_ascii=False)
        return answer

    listed = restore_function({"workspace": "intake/wandb-prod"})
    assert [b["serial"] for b in listed["backups"]] == [1]
    chosen = restore_function({"workspace": "intake/wandb-prod", "serial": 1})
    command = shlex.split(chosen["fetch"])
    assert command[:3] == ["python", "scripts/tfstate_restore.py", "fetch"]
    assert command[3:] == ["--bucket", bucket, "--key", chosen["verified"]["key"], "--out", "terraform.tfstate"]
    refused = restore_function({"workspace": "intake/wandb-prod", "serial": 1, "lineage": f"x'; {MARKER}"})
    assert refused["errorType"] == "InvalidInputError" and "field 'lineage'" in refused["errorMessage"]

    from scripts.tfstate_restore import main as restore  # noqa: PLC0415 - the script, as an operator runs it

    out = tmp_path / "terraform.tfstate"
    assert restore([*command[2:-1], str(out)]) == 0  # the printed command, run with --out in tmp_path
    assert out.read_bytes() == state


def test_a_backup_task_given_by_hand_takes_only_a_state_key_of_its_workspace(
    cloud: LocalCloud, tf_stack: DeployedStack, local_project: TerraformProject
) -> None:
    """The function can be invoked directly: a key plan would not choose is refused, not backed up."""
    bucket, s3 = _backup_bucket(tf_stack), boto3.client("s3")
    local_project.apply(1)
    key = f"intake/wandb-prod/$(touch {MARKER}).tfstate"
    s3.put_object(Bucket=bucket, Key=key, Body=local_project.local_state())
    task = {"action": "backup", "object": {"bucket": bucket, "key": key, "workspace": "intake/wandb-prod"}}
    function = tf_stack.function_name("TfStateBackupFunction")
    answer = json.loads(
        boto3.client("lambda").invoke(FunctionName=function, Payload=json.dumps(task))["Payload"].read()
    )
    assert answer["errorType"] == "InvalidInputError" and "field 'object'" in answer["errorMessage"]
    assert MARKER not in answer["errorMessage"]
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket, Prefix="states/")


def test_an_emptied_state_is_stored_and_notified(
    cloud: LocalCloud, tf_stack: DeployedStack, local_project: TerraformProject
) -> None:
    inbox = TopicInbox(tf_stack.outputs["NotificationsTopicArn"])
    bucket = _backup_bucket(tf_stack)
    local_project.apply(1)
    populated = local_project.local_state_json()
    # A state that manages resources (this offline configuration cannot create any itself).
    populated["resources"] = [
        {
            "mode": "managed",
            "type": "aws_rds_cluster",
            "name": "default",
            "provider": 'provider["registry.terraform.io/hashicorp/aws"]',
            "instances": [],
        }
    ]
    _run(cloud, tf_stack, bucket, _upload(tf_stack, json.dumps(populated).encode()))
    local_project.apply(2)  # serial 2, no resources: what a destroy leaves
    emptied = _run(cloud, tf_stack, bucket, _upload(tf_stack, local_project.local_state()))
    assert _outcomes(emptied) == [("anomaly", "emptied")]
    assert [e.serial for e in list_backups(boto3.client("s3"), bucket, "intake/wandb-prod")] == [1, 2]
    [notification] = inbox.received()
    assert "has no resources where serial 1 had some" in notification.message


def test_lock_files_and_other_keys_are_ignored(cloud: LocalCloud, tf_stack: DeployedStack) -> None:
    boto3.client("s3").put_object(Bucket=BACKEND_BUCKET, Key=f"{BACKEND_KEY}.tflock", Body=b'{"ID": "lock"}')
    execution = _run(cloud, tf_stack, BACKEND_BUCKET, f"{BACKEND_KEY}.tflock")
    assert execution.output["results"] == []
    assert execution.output["ignored"] == [{"key": f"{BACKEND_KEY}.tflock", "reason": LOCK_IGNORED}]
    assert cloud.runtime.invocations_of("TfStateBackupFunction")[0].event["action"] == "plan"
    assert [i.event["action"] for i in cloud.runtime.invocations_of("TfStateBackupFunction")] == ["plan", "report"]


def test_a_50_mb_state_is_backed_up_by_streaming(
    cloud: LocalCloud, tf_stack: DeployedStack, local_project: TerraformProject
) -> None:
    local_project.apply(1)
    state = local_project.local_state_json()
    resource = {
        "mode": "managed",
        "type": "aws_s3_object",
        "name": "artifact",
        "instances": [{"attributes": {"body": "x" * 900}}],
    }
    state["resources"] = [resource] * 52_000
    body = json.dumps(state).encode()
    assert len(body) > 50 * 1024 * 1024
    execution = _run(cloud, tf_stack, _backup_bucket(tf_stack), _upload(tf_stack, body))
    [result] = execution.output["results"]
    assert result["outcome"] == "stored" and result["size"] == len(body)
    out = io.BytesIO()
    summary = verify_backup(boto3.client("s3"), _backup_bucket(tf_stack), result["backup_key"], out=out)
    assert out.getvalue() == body and summary.resources == 52_000


def test_a_locked_backup_cannot_be_deleted(
    cloud: LocalCloud, tf_stack: DeployedStack, local_project: TerraformProject
) -> None:
    local_project.apply(1)
    execution = _run(cloud, tf_stack, _backup_bucket(tf_stack), _upload(tf_stack, local_project.local_state()))
    key = execution.output["results"][0]["backup_key"]
    s3 = boto3.client("s3")
    head = s3.head_object(Bucket=_backup_bucket(tf_stack), Key=key)
    assert head["ObjectLockMode"] == "GOVERNANCE"
    with pytest.raises(ClientError) as refused:
        s3.delete_object(Bucket=_backup_bucket(tf_stack), Key=key, VersionId=head["VersionId"])
    assert refused.value.response["Error"]["Code"] == "AccessDenied"
    assert s3.head_object(Bucket=_backup_bucket(tf_stack), Key=key, VersionId=head["VersionId"])["ContentLength"] > 0


def test_backup_bucket_settings_after_deploy(tf_stack: DeployedStack) -> None:
    s3, bucket = boto3.client("s3"), _backup_bucket(tf_stack)
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    lock = s3.get_object_lock_configuration(Bucket=bucket)["ObjectLockConfiguration"]
    assert lock["ObjectLockEnabled"] == "Enabled"
    retention = lock["Rule"]["DefaultRetention"]
    assert (retention["Mode"], retention["Days"]) == ("GOVERNANCE", 30)
    assert all(s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"].values())
    [rule] = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
    assert rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms"
    [lifecycle] = s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    assert lifecycle["NoncurrentVersionExpiration"]["NoncurrentDays"] == 365
    policy = RESOLVED_BUCKET_POLICIES[bucket]  # resolved by the stack, not applied by the rig (tests/rig/stack.py)
    statements = {statement["Sid"]: statement for statement in policy["Statement"]}
    assert statements["TlsOnly"]["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    readers = statements["OnlyNamedRolesReadStates"]["Condition"]["ArnNotLike"]["aws:PrincipalArn"]
    assert len(readers) == 2 and all(":role/" in arn for arn in readers)
    # EventBridge notifications are on: an intake upload emits an S3 event (moto labels it with a
    # wrong detail-type, so the rule test below sends the documented "Object Created" shape itself).
    events, sqs = boto3.client("events"), boto3.client("sqs")
    queue_url = sqs.create_queue(QueueName="s3-events-probe")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name="s3-events-probe", EventPattern=json.dumps({"source": ["aws.s3"]}))
    events.put_targets(Rule="s3-events-probe", Targets=[{"Id": "probe", "Arn": queue_arn}])
    s3.put_object(Bucket=bucket, Key="intake/probe/terraform.tfstate", Body=b"{}")
    received = [
        json.loads(m["Body"]) for m in sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10)["Messages"]
    ]
    assert [e["detail"]["object"]["key"] for e in received] == ["intake/probe/terraform.tfstate"]


def test_restore_lists_and_verifies_then_the_script_fetches(
    cloud: LocalCloud, tf_stack: DeployedStack, local_project: TerraformProject, tmp_path: Path
) -> None:
    for revision in (1, 2):
        local_project.apply(revision)
        _run(cloud, tf_stack, _backup_bucket(tf_stack), _upload(tf_stack, local_project.local_state()))
    lambda_client = boto3.client("lambda")
    function = tf_stack.function_name("TfStateRestoreFunction")
    listed = json.loads(
        lambda_client.invoke(FunctionName=function, Payload=json.dumps({"workspace": "intake/wandb-prod"}))[
            "Payload"
        ].read()
    )
    assert [b["serial"] for b in listed["backups"]] == [1, 2]
    chosen = json.loads(
        lambda_client.invoke(
            FunctionName=function, Payload=json.dumps({"workspace": "intake/wandb-prod", "serial": 1})
        )["Payload"].read()
    )
    assert chosen["verified"]["serial"] == 1 and chosen["verified"]["version_id"]
    assert PASSWORD not in json.dumps(chosen)
    missing = lambda_client.invoke(
        FunctionName=function, Payload=json.dumps({"workspace": "intake/wandb-prod", "serial": 9})
    )
    assert json.loads(missing["Payload"].read())["errorType"] == "InvalidInputError"

    from scripts.tfstate_restore import main as restore  # noqa: PLC0415 - the script, as an operator runs it

    out = tmp_path / "terraform.tfstate"
    assert (
        restore(["fetch", "--bucket", _backup_bucket(tf_stack), "--key", chosen["verified"]["key"], "--out", str(out)])
        == 0
    )
    assert json.loads(out.read_bytes())["serial"] == 1
    assert out.stat().st_mode & 0o077 == 0
    assert (
        restore(["fetch", "--bucket", _backup_bucket(tf_stack), "--key", chosen["verified"]["key"], "--out", str(out)])
        == 2
    )


def _queue_for(rule: str, pattern: dict[str, Any]) -> str:
    """A queue receiving what a new rule of this pattern matches."""
    events, sqs = boto3.client("events"), boto3.client("sqs")
    queue_url: str = sqs.create_queue(QueueName=f"{rule}-probe")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name=rule, EventPattern=json.dumps(pattern))
    events.put_targets(Rule=rule, Targets=[{"Id": "probe", "Arn": queue_arn}])
    return queue_url


def _deployed_rules_to_queue(stack: DeployedStack) -> str:
    """moto's EventBridge cannot deliver to Step Functions: the deployed rules' targets swapped
    for an SQS queue carrying the same input transformer, so the queue receives each input."""
    events, sqs = boto3.client("events"), boto3.client("sqs")
    queue_url: str = sqs.create_queue(QueueName="tfstate-rule-probe")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    rules = [r for r in events.list_rules()["Rules"] if "TfStateBackupStateMachine" in r["Name"]]
    assert len(rules) == 2  # intake and backend
    for rule in rules:
        [target] = events.list_targets_by_rule(Rule=rule["Name"])["Targets"]
        assert target["Arn"] == stack_arn(stack)
        events.remove_targets(Rule=rule["Name"], Ids=[target["Id"]])
        probe = {key: value for key, value in target.items() if key != "RoleArn"}
        events.put_targets(Rule=rule["Name"], Targets=[{**probe, "Arn": queue_arn}])
    return queue_url


def _drain(queue_url: str) -> list[dict[str, Any]]:
    sqs, bodies = boto3.client("sqs"), []
    while messages := sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", []):
        for message in messages:
            bodies.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    return bodies


def _object_created(bucket: str, key: str) -> dict[str, str]:
    """The documented S3 "Object Created" event (moto labels its own with a wrong detail-type)."""
    detail = {"bucket": {"name": bucket}, "object": {"key": key, "size": 10}}
    return {"Source": "aws.s3", "DetailType": "Object Created", "Detail": json.dumps(detail)}


def test_the_s3_event_rules_start_the_workflow_for_state_keys(tf_stack: DeployedStack) -> None:
    """S3's events sent through the deployed rules, each target swapped for a queue."""
    events, sqs = boto3.client("events"), boto3.client("sqs")
    queue_url = _deployed_rules_to_queue(tf_stack)
    backup = _backup_bucket(tf_stack)
    events.put_events(
        Entries=[
            _object_created(BACKEND_BUCKET, f"{BACKEND_KEY}.tflock"),
            _object_created(BACKEND_BUCKET, "unrelated/file.txt"),
            _object_created(backup, "states/intake/x/000000000001-abc.tfstate"),
        ]
    )
    assert "Messages" not in sqs.receive_message(QueueUrl=queue_url)
    for bucket, key in ((BACKEND_BUCKET, BACKEND_KEY), (backup, "intake/wandb-prod/terraform.tfstate")):
        events.put_events(Entries=[_object_created(bucket, key)])
        [message] = sqs.receive_message(QueueUrl=queue_url)["Messages"]
        sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
        assert json.loads(message["Body"]) == {"bucket": bucket, "key": key, "source": "event"}


def _backup_tasks_took(cloud: LocalCloud) -> list[str]:
    invocations = cloud.runtime.invocations_of("TfStateBackupFunction")
    return [i.event["object"]["key"] for i in invocations if i.event["action"] == "backup"]


def test_a_locking_apply_s_events_back_up_each_state_and_never_a_lock(
    cloud: LocalCloud, tf_stack: DeployedStack, locking_project: TerraformProject
) -> None:
    """`use_lockfile` (1.10+): every operation writes `<key>.tflock` next to the state, then the
    state, then deletes the lock. The S3 events of real applies reach the deployed rules; their
    workspace prefix matches a workspace's lock too, and the run it starts ignores the lock."""
    s3 = boto3.client("s3")
    s3.put_bucket_notification_configuration(  # as docs/tfstate-backup.md has users do
        Bucket=BACKEND_BUCKET, NotificationConfiguration={"EventBridgeConfiguration": {}}
    )
    seen = _queue_for("backend-writes", {"source": ["aws.s3"], "detail": {"bucket": {"name": [BACKEND_BUCKET]}}})
    inputs_queue = _deployed_rules_to_queue(tf_stack)
    locking_project.apply(1)
    locking_project.workspace("staging")  # writes the workspace's first, empty state
    locking_project.apply(1)

    lock, staging = f"{BACKEND_KEY}.tflock", f"env:/staging/{BACKEND_KEY}"
    backend_events = _drain(seen)
    written = [e["detail"]["object"]["key"] for e in backend_events if e["detail-type"] == "Object Created"]
    deleted = [e["detail"]["object"]["key"] for e in backend_events if e["detail-type"] == "Object Deleted"]
    assert written == [lock, BACKEND_KEY, f"{staging}.tflock", staging, f"{staging}.tflock", staging]
    assert deleted == [lock, f"{staging}.tflock", f"{staging}.tflock"]
    matched = _drain(inputs_queue)  # by the deployed rules' own patterns
    assert [e["detail"]["object"]["key"] for e in matched] == [
        BACKEND_KEY,
        f"{staging}.tflock",
        staging,
        f"{staging}.tflock",
        staging,
    ]
    # moto hands the S3 events it raises itself to a target untransformed: the same events sent
    # again with PutEvents go through the rules' InputTransformer, giving the workflow's inputs.
    entries = [{"Source": "aws.s3", "DetailType": "Object Created", "Detail": json.dumps(e["detail"])} for e in matched]
    boto3.client("events").put_events(Entries=entries)
    inputs = _drain(inputs_queue)
    assert inputs == [
        {"bucket": BACKEND_BUCKET, "key": e["detail"]["object"]["key"], "source": "event"} for e in matched
    ]

    executions = [cloud.run(stack_arn(tf_stack), workflow_input) for workflow_input in inputs]
    assert all(execution.status == "SUCCEEDED" for execution in executions)
    ignored = [{"key": f"{staging}.tflock", "reason": LOCK_IGNORED}]
    assert [_outcomes(e) or e.output["ignored"] for e in executions] == [
        [("stored", None)],
        ignored,
        [("stored", None)],  # the staging state as it is by now: after its apply
        ignored,
        [("duplicate", None)],
    ]
    assert _backup_tasks_took(cloud) == [BACKEND_KEY, staging, staging]
    for workspace, key in (("backend/default", BACKEND_KEY), ("backend/staging", staging)):
        [backup] = list_backups(s3, _backup_bucket(tf_stack), workspace)
        assert backup.serial == json.loads(s3.get_object(Bucket=BACKEND_BUCKET, Key=key)["Body"].read())["serial"]


def test_a_lock_held_during_an_apply_is_left_alone_by_the_sweep_and_by_a_run_for_it(
    cloud: LocalCloud, tf_stack: DeployedStack, locking_project: TerraformProject
) -> None:
    """An apply waiting for approval holds its `.tflock` in the bucket, under the prefixes the
    sweep lists: the sweep backs up the states beside it, a run started for the lock ignores it."""
    s3 = boto3.client("s3")
    locking_project.apply(1)
    locking_project.workspace("staging")
    locking_project.apply(1)
    staging = f"env:/staging/{BACKEND_KEY}"
    with locking_project.apply_awaiting_approval(2):
        listed = [item["Key"] for item in s3.list_objects_v2(Bucket=BACKEND_BUCKET)["Contents"]]
        assert listed == [staging, f"{staging}.tflock", BACKEND_KEY]
        lock = json.loads(s3.get_object(Bucket=BACKEND_BUCKET, Key=f"{staging}.tflock")["Body"].read())
        assert lock["Operation"] == "OperationTypeApply" and lock["Path"] == f"{BACKEND_BUCKET}/{staging}"
        sweep = cloud.run(stack_arn(tf_stack), {"sweep": True, "source": "test"})
        for_the_lock = _run(cloud, tf_stack, BACKEND_BUCKET, f"{staging}.tflock")
    assert [item["Key"] for item in s3.list_objects_v2(Bucket=BACKEND_BUCKET)["Contents"]] == [staging, BACKEND_KEY]

    assert sweep.status == "SUCCEEDED", sweep.cause
    assert sorted((r["workspace"], r["source_key"], r["outcome"]) for r in sweep.output["results"]) == [
        ("backend/default", BACKEND_KEY, "stored"),
        ("backend/staging", staging, "stored"),
    ]
    assert for_the_lock.output["results"] == []
    assert for_the_lock.output["ignored"] == [{"key": f"{staging}.tflock", "reason": LOCK_IGNORED}]
    assert sorted(_backup_tasks_took(cloud)) == [staging, BACKEND_KEY]


def test_the_events_in_the_repository_are_valid_inputs() -> None:
    from wandb_ops.workflows.tfstate_backup.tasks import BackupRequest, TfStateTask  # noqa: PLC0415
    from wandb_ops.workflows.tfstate_restore.restore import RestoreRequest  # noqa: PLC0415

    events = REPO_ROOT / "events"
    TfStateTask.model_validate(json.loads((events / "tfstate-backup.json").read_text()))
    BackupRequest.model_validate(json.loads((events / "tfstate-backup-statemachine.json").read_text()))
    BackupRequest.model_validate(json.loads((events / "tfstate-backup-object-statemachine.json").read_text()))
    RestoreRequest.model_validate(json.loads((events / "tfstate-restore.json").read_text()))
