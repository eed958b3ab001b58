"""The credential rotation workflow end to end: the real definition in the interpreter, the
real cut-over and rotation functions, a real MySQL engine, moto's Secrets Manager and EKS,
a fake Kubernetes API server (EKS token auth, the documented RBAC, rollouts over several
polls) and a fake W&B app whose /ready logs in to MySQL with what its pods were started with."""

import json
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
import pymysql
import pytest

from tests.rig.engines import Engine
from tests.rig.fake_kubernetes import FakeKubernetes, MysqlConfig
from tests.rig.fake_wandb_app import FakeWandbApp
from tests.rig.lambda_runtime import SimulatedCrash
from tests.rig.local_cloud import Execution, LocalCloud
from tests.rig.stack import DeployedStack
from tests.rig.wandb_deployment import SimulatedWandb
from tests.rig.wandb_on_kubernetes import Mode, point_functions_at_engine, start_wandb_on_kubernetes
from tests.workflows.notifications import Notification, TopicInbox
from wandb_ops.workflows.credential_rotation import notify, onboarding
from wandb_ops.workflows.credential_rotation.app_secret import VERSION_PREFIX
from wandb_ops.workflows.secret_rotation.rotation import rotated_username

MASTER_USER, MASTER_PASSWORD = "wandb_master", "Master0fThisTestServer"
APP_SECRET = "wandb-ops/wandb/mysql-app"

# The fake API server records each request by its Kubernetes verb (lower case).
WRITES = ("patch", "update", "create", "delete", "deletecollection")


@dataclass
class Rig:
    cloud: LocalCloud
    engine: Engine
    stack: DeployedStack
    kube: FakeKubernetes
    app: FakeWandbApp
    inbox: TopicInbox
    master_arn: str
    passwords: list[str] = field(default_factory=list)

    @property
    def machine(self) -> str:
        return self.stack.state_machine_arns["CredentialRotationStateMachine"]

    def run(self, **workflow_input: Any) -> Execution:
        return self.cloud.run(self.machine, {"source": "test", **workflow_input}, timeout_s=240)

    def run_while_another_starts(self, competing: dict[str, Any], **workflow_input: Any) -> tuple[Execution, Execution]:
        """Run the workflow; when it restarts W&B (mid-switch), start `competing` as a schedule or an event would."""
        started: list[str] = []

        def start_competitor(deployment: str, config: MysqlConfig) -> None:
            if not started:
                started.append(self.cloud.start(self.machine, competing))

        self.kube.on_restart.append(start_competitor)
        execution = self.run(**workflow_input)
        return execution, self.cloud.wait(started[0], timeout_s=60)

    def root(self) -> "pymysql.connections.Connection[Any]":
        return self.engine.connect(autocommit=True)

    def users(self) -> set[str]:
        with self.root() as root, root.cursor() as cursor:
            cursor.execute("SELECT User FROM mysql.user")
            return {str(row[0]) for row in cursor.fetchall()}

    def locked(self, user: str) -> bool:
        with self.root() as root, root.cursor() as cursor:  # MariaDB has no mysql.user.account_locked
            cursor.execute("SHOW CREATE USER %s@'%%'", (user,))
            return "ACCOUNT LOCK" in str(cursor.fetchone()[0])

    def secret(self, stage: str = "AWSCURRENT") -> dict[str, Any]:
        value: dict[str, Any] = json.loads(
            boto3.client("secretsmanager").get_secret_value(SecretId=APP_SECRET, VersionStage=stage)["SecretString"]
        )
        self.passwords.append(value["password"])
        return value

    def versions(self) -> dict[str, list[str]]:
        stages: dict[str, list[str]] = boto3.client("secretsmanager").describe_secret(SecretId=APP_SECRET)[
            "VersionIdsToStages"
        ]
        return stages

    def current_version(self) -> str:
        return next(v for v, labels in self.versions().items() if "AWSCURRENT" in labels)

    def ready(self) -> int:
        import urllib.request  # noqa: PLC0415 - only these assertions need it

        try:
            with urllib.request.urlopen(f"{self.app.url}/ready", timeout=5) as response:  # noqa: S310 - the local fake
                return int(response.status)
        except urllib.error.HTTPError as exc:
            return exc.code

    def notifications(self) -> list[Notification]:
        return self.inbox.received()

    def assert_no_secret_leaked(self, execution: Execution) -> None:
        """No password (any version, the master's) in the execution history or any captured log line."""
        history = json.dumps(execution.history, default=str)
        logs = "\n".join(line for i in self.cloud.runtime.invocations for line in i.log_lines)
        for password in {*self.passwords, MASTER_PASSWORD}:
            assert password not in history, "a password reached the Step Functions state"
            assert password not in logs, "a password reached a log line"


def _schema(engine: Engine) -> None:
    with engine.connect(autocommit=True) as root, root.cursor() as cursor:
        for statement in (
            "CREATE DATABASE IF NOT EXISTS wandb_local",
            "CREATE TABLE IF NOT EXISTS wandb_local.runs (id INT PRIMARY KEY, name VARCHAR(64), owner VARCHAR(64))",
            f"CREATE USER IF NOT EXISTS '{MASTER_USER}'@'%' IDENTIFIED BY '{MASTER_PASSWORD}'",
            f"GRANT ALL PRIVILEGES ON *.* TO '{MASTER_USER}'@'%' WITH GRANT OPTION",
        ):
            cursor.execute(statement)


def _drop_test_users(engine: Engine) -> None:
    """The application users a test made (the engine is shared by the session; the master stays)."""
    with engine.connect(autocommit=True) as root, root.cursor() as cursor:
        cursor.execute("DROP VIEW IF EXISTS wandb_local.run_names")
        cursor.execute("SELECT User, Host FROM mysql.user WHERE User LIKE 'wandb\\_app%%'")
        for user, host in cursor.fetchall():
            cursor.execute("DROP USER %s@%s", (user, host))


def _make_rig(
    cloud: LocalCloud,
    wandb: SimulatedWandb,
    engine: Engine,
    mode: Mode,
    *,
    onboarded: bool = True,
    wandb_settings: dict[str, str] | None = None,
) -> Iterator[Rig]:
    """``wandb_settings`` overrides what W&B's settings hold (database, password) before any run."""
    _schema(engine)
    secretsmanager = boto3.client("secretsmanager")
    server = {"engine": "mysql", "host": engine.host, "port": engine.port, "ssl": True}
    master_arn = secretsmanager.create_secret(
        Name="wandb-ops/wandb/mysql-master",
        SecretString=json.dumps({**server, "username": MASTER_USER, "password": MASTER_PASSWORD}),
    )["ARN"]
    wandb_user, wandb_password = MASTER_USER, MASTER_PASSWORD
    passwords = []
    if onboarded:
        wandb_user, wandb_password = "wandb_app", uuid.uuid4().hex
        passwords.append(wandb_password)
        with engine.connect(autocommit=True) as root, root.cursor() as cursor:
            cursor.execute("CREATE USER %s@'%%' IDENTIFIED BY %s", (wandb_user, wandb_password))
            cursor.execute("GRANT ALL PRIVILEGES ON wandb_local.* TO %s@'%%'", (wandb_user,))
        secretsmanager.create_secret(
            Name=APP_SECRET,
            SecretString=json.dumps(
                {
                    **server,
                    "username": wandb_user,
                    "password": wandb_password,
                    "dbname": "wandb_local",
                    "masterarn": master_arn,
                }
            ),
        )
    settings = {"password": wandb_password, "database": "wandb_local", **(wandb_settings or {})}
    config = MysqlConfig(
        user=wandb_user,
        password=settings["password"],
        host=engine.host,
        port=engine.port,
        database=settings["database"],
    )
    wandb_k8s = start_wandb_on_kubernetes(wandb.namespace, engine, mode, config)
    kube, app = wandb_k8s.kube, wandb_k8s.app
    stack = cloud.deploy({**wandb.stack_parameters(), **wandb_k8s.stack_parameters(master_arn)})
    point_functions_at_engine(stack, engine, POLL_BASE_SECONDS="0", POLL_MAX_ATTEMPTS="60", DRAIN_MAX_ATTEMPTS="400")
    rig = Rig(cloud, engine, stack, kube, app, TopicInbox(stack.outputs["NotificationsTopicArn"]), master_arn)
    rig.passwords += passwords
    try:
        yield rig
    finally:
        wandb_k8s.stop()
        _drop_test_users(engine)


@pytest.fixture(params=["operator", "legacy"])
def rig(
    request: pytest.FixtureRequest, cloud: LocalCloud, wandb: SimulatedWandb, mysql_engine: Engine
) -> Iterator[Rig]:
    yield from _make_rig(cloud, wandb, mysql_engine, request.param)


@pytest.fixture
def operator_rig(cloud: LocalCloud, wandb: SimulatedWandb, mysql_engine: Engine) -> Iterator[Rig]:
    yield from _make_rig(cloud, wandb, mysql_engine, "operator")


@pytest.fixture
def master_rig(cloud: LocalCloud, wandb: SimulatedWandb, mysql_engine: Engine) -> Iterator[Rig]:
    yield from _make_rig(cloud, wandb, mysql_engine, "operator", onboarded=False)


def _outcome(execution: Execution) -> str:
    report = [
        e
        for e in execution.history
        if e.get("type") == "TaskStateExited" or "stateExitedEventDetails" in e
        if e.get("stateExitedEventDetails", {}).get("name", "").startswith("Report")
    ]
    assert report, f"no report step ran: {execution.states_entered()}"
    output = json.loads(report[-1]["stateExitedEventDetails"]["output"])
    return str(output["report"]["Payload"]["outcome"])


# ---------------------------------------------------------------- the happy path


def test_rotation_switches_wandb_and_drops_the_old_user(rig: Rig) -> None:
    old = rig.secret()
    old_version = rig.current_version()
    execution = rig.run(action="rotate")
    assert execution.status == "SUCCEEDED", execution.cause
    assert _outcome(execution) == "switched"
    new = rig.secret()
    assert new["username"].startswith("wandb_app_r") and new["username"] != old["username"]
    assert rig.current_version().startswith(VERSION_PREFIX)
    assert old_version in {v for v, labels in rig.versions().items() if "AWSPREVIOUS" in labels}
    assert rig.kube.current_wandb_config().user == new["username"]
    assert {c.user for c in rig.kube.serving_configs()} == {new["username"]}
    assert old["username"] not in rig.users() and new["username"] in rig.users()
    assert rig.ready() == 200
    assert rig.app.failed_logins == [], "W&B failed to log in during the cut-over"
    assert rig.app.successful_logins[new["username"]] > 0
    [note] = rig.notifications()
    assert note.subject == "W&B database credentials rotated"
    assert f"now connects as '{new['username']}'" in note.message and "dropped" in note.message
    rig.assert_no_secret_leaked(execution)


def test_a_second_rotation_retires_the_first_rotated_user(operator_rig: Rig) -> None:
    first = operator_rig.run(action="rotate")
    middle = operator_rig.secret()["username"]
    second = operator_rig.run(action="rotate")
    assert first.status == second.status == "SUCCEEDED", second.cause
    latest = operator_rig.secret()["username"]
    assert latest != middle and latest.startswith("wandb_app_r") and len(latest) <= 32
    assert middle not in operator_rig.users() and "wandb_app" not in operator_rig.users()
    assert operator_rig.app.failed_logins == []


def test_a_dry_run_changes_nothing(operator_rig: Rig) -> None:
    before_versions, before_config = operator_rig.versions(), operator_rig.kube.current_wandb_config()
    execution = operator_rig.run(action="rotate", dry_run=True)
    assert execution.status == "SUCCEEDED", execution.cause
    assert _outcome(execution) == "dry_run"
    assert operator_rig.versions() == before_versions
    assert operator_rig.kube.current_wandb_config() == before_config
    assert not [r for r in operator_rig.kube.requests if r[0] in WRITES]
    [note] = operator_rig.notifications()
    assert "Dry run, nothing changed" in note.message and "wandb-app" in note.message


def test_a_failing_report_step_still_notifies_with_a_fixed_message(
    operator_rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The report step cannot run: the run still ends as it would, with the fixed notification of its
    outcome; a run with nothing to do (no notification) fails with the report step's error."""
    rig = operator_rig

    def broken(*args: Any) -> None:
        raise RuntimeError("the report step broke")

    monkeypatch.setattr(notify, "report", broken)
    dry_run = rig.run(action="rotate", dry_run=True)
    assert dry_run.status == "SUCCEEDED", dry_run.cause
    [note] = rig.notifications()
    assert note.subject == "wandb-ops credential rotation: dry run"
    assert note.message.startswith("Credential rotation ended dry_run: the report step failed too. Execution ")
    nothing = rig.run(action="onboard")  # already onboarded
    assert nothing.status == "FAILED" and nothing.error == "RuntimeError"
    assert "the report step broke" in (nothing.cause or "")
    assert rig.notifications() == []


# ---------------------------------------------------------------- rolling back


def test_a_failing_health_check_rolls_back_to_the_old_user(operator_rig: Rig) -> None:
    rig = operator_rig
    old = rig.secret()
    old_version = rig.current_version()

    def break_new_user(deployment: str, config: MysqlConfig) -> None:
        if config.user != old["username"]:  # W&B's new pods cannot log in: /ready fails
            with rig.root() as root, root.cursor() as cursor:
                cursor.execute("ALTER USER %s@'%%' ACCOUNT LOCK", (config.user,))

    rig.kube.on_restart.append(break_new_user)
    execution = rig.run(action="rotate")
    assert execution.status == "FAILED" and execution.error == "CredentialRotationRolledBack"
    assert _outcome(execution) == "rolled_back"
    assert "RollbackConfirm" in execution.states_entered()
    assert rig.current_version() == old_version, "AWSCURRENT must be back on the old version"
    assert rig.secret()["username"] == old["username"]
    unstaged = boto3.client("secretsmanager").get_secret_value(SecretId=APP_SECRET)["SecretString"]
    assert json.loads(unstaged)["username"] == old["username"], "a reader without a stage gets AWSCURRENT"
    assert rig.kube.current_wandb_config().user == old["username"]
    assert {c.user for c in rig.kube.serving_configs()} == {old["username"]}
    assert old["username"] in rig.users()
    assert [u for u in rig.users() if u.startswith("wandb_app_r")] == [], "the unused new user is dropped"
    assert rig.ready() == 200
    [note] = rig.notifications()
    assert note.subject == "W&B credential rotation rolled back"
    assert "Step confirm failed" in note.message and "HealthCheckFailedError" in note.message
    rig.assert_no_secret_leaked(execution)


def test_a_stuck_rollout_rolls_back(operator_rig: Rig) -> None:
    rig = operator_rig
    old = rig.secret()
    old_version = rig.current_version()
    rig.kube.pod_starts = lambda config: config.user == old["username"]  # new pods never become ready
    execution = rig.run(action="rotate")
    assert execution.status == "FAILED" and execution.error == "CredentialRotationRolledBack"
    assert rig.current_version() == old_version
    assert rig.kube.current_wandb_config().user == old["username"]
    assert {c.user for c in rig.kube.serving_configs()} == {old["username"]}
    assert old["username"] in rig.users()
    assert rig.ready() == 200
    assert rig.app.failed_logins == [], "old pods kept serving on the old user throughout"
    failed_tasks = [e["taskFailedEventDetails"]["error"] for e in execution.history if e["type"] == "TaskFailed"]
    assert failed_tasks == ["RolloutFailedError"], "the rollback must not trip over the stale deadline"
    [note] = rig.notifications()
    assert "Step rollout failed" in note.message and "exceeded its progress deadline" in note.message


# ---------------------------------------------------------------- retiring the old user


def test_the_old_user_is_dropped_only_after_its_sessions_end(operator_rig: Rig) -> None:
    rig = operator_rig
    old = rig.secret()
    session = rig.engine.connect(user=old["username"], password=old["password"], database="wandb_local")
    waits_seen = threading.Event()

    def close_after_two_waits() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            waiting = [
                i
                for i in rig.cloud.runtime.invocations_of("CredentialCutoverFunction")
                if i.event.get("action") == "retire" and isinstance(i.result, dict) and i.result.get("sessions")
            ]
            if len(waiting) >= 2:
                waits_seen.set()
                session.close()
                return
            time.sleep(0.01)

    closer = threading.Thread(target=close_after_two_waits, daemon=True)
    closer.start()
    execution = rig.run(action="rotate")
    closer.join(timeout=5)
    assert execution.status == "SUCCEEDED", execution.cause
    assert waits_seen.is_set(), "the drain never saw the open session"
    assert old["username"] not in rig.users()
    assert execution.states_entered().count("WaitForDrain") >= 2
    [note] = rig.notifications()
    assert "dropped" in note.message


def test_sessions_that_outlast_the_drain_keep_the_old_user_as_it_is(operator_rig: Rig) -> None:
    rig = operator_rig
    point_functions_at_engine(rig.stack, rig.engine, DRAIN_MAX_ATTEMPTS="3")
    old = rig.secret()
    with rig.engine.connect(user=old["username"], password=old["password"], database="wandb_local"):
        execution = rig.run(action="rotate")
    assert execution.status == "FAILED" and execution.error == "RetireOldUserFailed"
    assert _outcome(execution) == "retire_failed"
    assert rig.kube.current_wandb_config().user == rig.secret()["username"] != old["username"]
    assert old["username"] in rig.users() and not rig.locked(old["username"])
    [note] = rig.notifications()
    assert "DrainTimeoutError" in note.message and "still has 1 session(s)" in note.message


def test_restarts_wait_for_the_operator_to_render_the_new_password(operator_rig: Rig) -> None:
    rig = operator_rig
    rig.kube.operator_lag_reads = 3  # the operator reconciles a while after the resource changes
    execution = rig.run(action="rotate")
    assert execution.status == "SUCCEEDED", execution.cause
    retried = [e["taskFailedEventDetails"]["error"] for e in execution.history if e["type"] == "TaskFailed"]
    assert retried and set(retried) == {"OperatorNotReconciledError"}
    new = rig.secret()
    assert {(c.user, c.password) for c in rig.kube.serving_configs()} == {(new["username"], new["password"])}
    assert rig.app.failed_logins == []


def test_a_definer_is_locked_not_dropped(operator_rig: Rig) -> None:
    rig = operator_rig
    old = rig.secret()
    with rig.root() as root, root.cursor() as cursor:
        cursor.execute(
            f"CREATE DEFINER = '{old['username']}'@'%' VIEW wandb_local.run_names AS SELECT name FROM wandb_local.runs"
        )
    execution = rig.run(action="rotate")
    assert execution.status == "SUCCEEDED", execution.cause
    assert old["username"] in rig.users() and rig.locked(old["username"])
    [note] = rig.notifications()
    assert "locked" in note.message and "view wandb_local.run_names" in note.message


# ---------------------------------------------------------------- refusing to start


def test_a_paused_deployment_is_refused_before_anything_changes(
    cloud: LocalCloud, wandb: SimulatedWandb, mysql_engine: Engine
) -> None:
    rigs = _make_rig(cloud, wandb, mysql_engine, "operator")
    rig = next(rigs)
    try:
        rig.kube.add_deployment("wandb-weave", labels={"app.kubernetes.io/instance": "wandb"}, paused=True)
        before = rig.versions()
        execution = rig.run(action="rotate")
        assert execution.status == "FAILED" and execution.error == "CredentialRotationFailed"
        assert rig.versions() == before
        assert not [r for r in rig.kube.requests if r[0] in WRITES]
        [note] = rig.notifications()
        assert "wandb-weave" in note.message and "paused" in note.message and "rollout resume" in note.message
    finally:
        next(rigs, None)


def test_terraform_drift_is_refused(operator_rig: Rig) -> None:
    rig = operator_rig
    before = rig.versions()
    # A terraform apply put the master user back into the custom resource.
    rig.kube.add_wandb_custom_resource(
        MysqlConfig(MASTER_USER, MASTER_PASSWORD, "127.0.0.1", rig.engine.port, "wandb_local")
    )
    execution = rig.run(action="rotate")
    assert execution.status == "FAILED"
    assert rig.versions() == before
    [note] = rig.notifications()
    assert "terraform" in note.message and "Keep terraform in step" in note.message


# ---------------------------------------------------------------- rotations made elsewhere


def test_a_rotation_made_elsewhere_is_switched_once(operator_rig: Rig) -> None:
    rig = operator_rig
    old = rig.secret()
    rotation_function = rig.stack.function_arn("MySqlRotationFunction")
    boto3.client("secretsmanager").rotate_secret(
        SecretId=APP_SECRET, RotationLambdaARN=rotation_function, RotationRules={"AutomaticallyAfterDays": 30}
    )
    new = rig.secret()
    assert rig.kube.current_wandb_config().user == old["username"]
    first = rig.run(action="switch", source="event")
    second = rig.run(action="switch", source="event")
    assert first.status == second.status == "SUCCEEDED", first.cause
    assert _outcome(first) == "switched" and _outcome(second) == "nothing"
    assert rig.kube.current_wandb_config().user == new["username"]
    assert old["username"] not in rig.users()


def test_the_event_of_its_own_rotation_does_not_switch_twice(operator_rig: Rig) -> None:
    rig = operator_rig
    assert rig.run(action="rotate").status == "SUCCEEDED"
    restarts = len([r for r in rig.kube.requests if r[0] in WRITES])
    assert restarts, "the rotation wrote nothing to Kubernetes: this test would prove nothing"
    execution = rig.run(action="switch", source="event")
    assert execution.status == "SUCCEEDED" and _outcome(execution) == "nothing"
    assert len([r for r in rig.kube.requests if r[0] in WRITES]) == restarts


def test_the_event_of_its_own_rotation_arriving_mid_run_ends_quietly(operator_rig: Rig) -> None:
    """In AWS the RotationSucceeded event arrives while the run that rotated is still switching W&B."""
    rig = operator_rig
    rotation, event_run = rig.run_while_another_starts({"action": "switch", "source": "event"}, action="rotate")
    assert rotation.status == "SUCCEEDED", rotation.cause
    assert event_run.status == "SUCCEEDED", event_run.cause
    assert _outcome(event_run) == "nothing"
    assert [n.subject for n in rig.notifications()] == ["W&B database credentials rotated"]


def test_a_second_rotation_while_one_runs_is_refused(operator_rig: Rig) -> None:
    rig = operator_rig
    rotation, second = rig.run_while_another_starts({"action": "rotate", "source": "schedule"}, action="rotate")
    assert rotation.status == "SUCCEEDED", rotation.cause
    assert second.status == "FAILED" and second.error == "CredentialRotationFailed"
    assert rig.app.failed_logins == []
    assert any("another credential rotation run is in progress" in n.message for n in rig.notifications())


def test_a_version_of_a_run_that_is_gone_is_still_switched(operator_rig: Rig) -> None:
    """A run rotated, then ended (aborted, or it stopped waiting) before Secrets Manager finished:
    nobody else will switch W&B, so the RotationSucceeded run must."""
    rig = operator_rig
    old = rig.secret()
    rotation_function = rig.stack.function_arn("MySqlRotationFunction")
    boto3.client("secretsmanager").rotate_secret(
        SecretId=APP_SECRET,
        ClientRequestToken=f"{VERSION_PREFIX}{uuid.uuid4()}",
        RotationLambdaARN=rotation_function,
        RotationRules={"AutomaticallyAfterDays": 365},
    )
    execution = rig.run(action="switch", source="event")
    assert execution.status == "SUCCEEDED", execution.cause
    assert _outcome(execution) == "switched"
    assert rig.kube.current_wandb_config().user == rig.secret()["username"] != old["username"]


def test_the_rotation_succeeded_rule_starts_a_switch(operator_rig: Rig) -> None:
    """moto's EventBridge cannot deliver to Step Functions (nor answer TestEventPattern): send
    Secrets Manager's CloudTrail events through the deployed rule with its target swapped for an
    SQS queue (which receives the matched event: moto ignores a target's constant Input)."""
    events, sqs = boto3.client("events"), boto3.client("sqs")
    queue_url = sqs.create_queue(QueueName="rotation-rule-probe")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    [rule] = [r for r in events.list_rules()["Rules"] if "CredentialRotationStateMachine" in r["Name"]]
    [target] = events.list_targets_by_rule(Rule=rule["Name"])["Targets"]
    assert target["Arn"] == operator_rig.machine
    assert json.loads(target["Input"]) == {"action": "switch", "source": "event"}
    events.remove_targets(Rule=rule["Name"], Ids=[target["Id"]])
    probe = {key: value for key, value in target.items() if key != "RoleArn"}
    events.put_targets(Rule=rule["Name"], Targets=[{**probe, "Arn": queue_arn}])
    arn = boto3.client("secretsmanager").describe_secret(SecretId=APP_SECRET)["ARN"]

    def cloudtrail_event(secret_arn: str, name: str = "RotationSucceeded") -> dict[str, str]:
        detail = {
            "eventVersion": "1.08",
            "eventSource": "secretsmanager.amazonaws.com",
            "eventName": name,
            "eventType": "AwsServiceEvent",
            "requestParameters": None,
            "responseElements": None,
            "additionalEventData": {"SecretId": secret_arn},
        }
        return {
            "Source": "aws.secretsmanager",
            "DetailType": "AWS Service Event via CloudTrail",
            "Detail": json.dumps(detail),
        }

    events.put_events(
        Entries=[
            cloudtrail_event(arn, "RotationFailed"),
            cloudtrail_event(arn.replace("mysql-app", "mysql-other")),
        ]
    )
    assert "Messages" not in sqs.receive_message(QueueUrl=queue_url)
    events.put_events(Entries=[cloudtrail_event(arn)])
    [message] = sqs.receive_message(QueueUrl=queue_url)["Messages"]
    assert json.loads(message["Body"])["detail"]["additionalEventData"]["SecretId"] == arn


# ---------------------------------------------------------------- onboarding


def test_onboarding_moves_wandb_off_the_master_user(master_rig: Rig) -> None:
    rig = master_rig
    execution = rig.run(action="onboard")
    assert execution.status == "SUCCEEDED", execution.cause
    app = rig.secret()
    assert app["username"] == "wandb_app" and app["masterarn"] == rig.master_arn and app["dbname"] == "wandb_local"
    assert rig.kube.current_wandb_config().user == "wandb_app"
    assert {c.user for c in rig.kube.serving_configs()} == {"wandb_app"}
    assert MASTER_USER in rig.users() and not rig.locked(MASTER_USER), "the master user is never retired"
    with rig.root() as root, root.cursor() as cursor:
        cursor.execute("SHOW GRANTS FOR 'wandb_app'@'%'")
        grants = " ".join(str(row[0]) for row in cursor.fetchall())
    assert "GRANT ALL PRIVILEGES ON `wandb" in grants and "ALL PRIVILEGES ON *.*" not in grants
    assert rig.ready() == 200 and rig.app.failed_logins == []
    [note] = rig.notifications()
    assert "RDS-managed rotation" in note.message
    # Once onboarded, onboarding again is a no-op and the first rotation works.
    again = rig.run(action="onboard")
    assert again.status == "SUCCEEDED" and _outcome(again) == "nothing"
    rotated = rig.run(action="rotate")
    assert rotated.status == "SUCCEEDED", rotated.cause
    assert rig.secret()["username"].startswith("wandb_app_r") and "wandb_app" not in rig.users()
    rig.assert_no_secret_leaked(rotated)


def test_rotating_before_onboarding_says_to_onboard(master_rig: Rig) -> None:
    execution = master_rig.run(action="rotate")
    assert execution.status == "FAILED"
    [note] = master_rig.notifications()
    assert "run onboarding first" in note.message


def _login_works(rig: Rig, user: str, password: str) -> bool:
    try:
        rig.engine.connect(user=user, password=password).close()
    except pymysql.MySQLError:
        return False
    return True


def test_onboarding_grants_name_exactly_the_wandb_database(master_rig: Rig) -> None:
    """`GRANT ... ON wandb_local.*` would also cover `wandbxlocal` (`_` is a wildcard in database grants)."""
    rig = master_rig
    with rig.root() as root, root.cursor() as cursor:
        cursor.execute("CREATE DATABASE IF NOT EXISTS wandbxlocal")
        cursor.execute("CREATE TABLE IF NOT EXISTS wandbxlocal.secrets (id INT)")
    try:
        execution = rig.run(action="onboard")
        assert execution.status == "SUCCEEDED", execution.cause
        app = rig.secret()
        with rig.engine.connect(user=app["username"], password=app["password"], autocommit=True) as login:
            with login.cursor() as cursor:
                cursor.execute("INSERT INTO wandb_local.runs (id, name) VALUES (1, 'allowed')")
            with pytest.raises(pymysql.MySQLError) as denied, login.cursor() as cursor:
                cursor.execute("SELECT * FROM wandbxlocal.secrets")
            assert denied.value.args[0] == 1142
    finally:
        with rig.root() as root, root.cursor() as cursor:
            cursor.execute("DROP DATABASE IF EXISTS wandbxlocal")
            cursor.execute("DELETE FROM wandb_local.runs")


def test_onboarding_never_resets_the_master_password(master_rig: Rig) -> None:
    """ApplicationUserName equal to the master's name (`wandb` on terraform-aws-wandb) used to make onboarding
    set a new password on the master user, breaking the master secret."""
    rig = master_rig
    rig.stack.set_function_environment("CredentialCutoverFunction", APP_DB_USERNAME=MASTER_USER)
    execution = rig.run(action="onboard")
    assert execution.status == "FAILED"
    assert _login_works(rig, MASTER_USER, MASTER_PASSWORD)
    [note] = rig.notifications()
    assert "ApplicationUserName" in note.message and "master user" in note.message
    assert rig.kube.current_wandb_config().user == MASTER_USER


def test_onboarding_never_takes_over_an_existing_account(master_rig: Rig) -> None:
    rig = master_rig
    with rig.root() as root, root.cursor() as cursor:
        cursor.execute("CREATE USER 'wandb_app'@'%' IDENTIFIED BY 'Somebody5Else'")
    execution = rig.run(action="onboard")
    assert execution.status == "FAILED"
    [note] = rig.notifications()
    assert "exists already and was not created by this onboarding run" in note.message
    assert _login_works(rig, "wandb_app", "Somebody5Else")
    with rig.root() as root, root.cursor() as cursor:
        cursor.execute("SHOW GRANTS FOR 'wandb_app'@'%'")
        assert not [row for row in cursor.fetchall() if "wandb" in str(row[0]).split(" TO ")[0]]
    assert rig.kube.current_wandb_config().user == MASTER_USER


def test_onboarding_never_uses_a_password_found_in_the_secret(master_rig: Rig) -> None:
    """A secret someone else created before onboarding (their password, their master): onboarding writes its
    own version, so W&B never runs on a password or master that someone else chose."""
    rig = master_rig
    boto3.client("secretsmanager").create_secret(
        Name=APP_SECRET,
        SecretString=json.dumps(
            {
                "engine": "mysql",
                "host": rig.engine.host,
                "port": rig.engine.port,
                "username": "wandb_app",
                "password": "Chosen8yOthers",
                "masterarn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:theirs-AbCdEf",
            }
        ),
    )
    execution = rig.run(action="onboard")
    assert execution.status == "SUCCEEDED", execution.cause
    app = rig.secret()
    assert app["password"] != "Chosen8yOthers" and app["masterarn"] == rig.master_arn
    assert rig.kube.current_wandb_config().password == app["password"]
    assert not _login_works(rig, "wandb_app", "Chosen8yOthers")


def test_a_retried_onboarding_step_finishes_what_it_started(master_rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    """The onboard step killed after creating the user: the same run's retry finds its own secret version and
    user (its password logs in) and finishes the grants; nothing is refused, nothing done twice."""
    rig = master_rig
    execution = rig.machine.replace(":stateMachine:", ":execution:") + ":onboard-retry"
    function = rig.stack.function_arn("CredentialCutoverFunction")

    def invoke(task: dict[str, Any]) -> dict[str, Any]:
        response = boto3.client("lambda").invoke(FunctionName=function, Payload=json.dumps(task))
        result: dict[str, Any] = json.loads(response["Payload"].read())
        return result

    plan = invoke({"action": "preflight", "input": {"action": "onboard", "source": "test"}, "execution": execution})
    assert plan["mode"] == "onboard", plan

    def killed(*args: Any) -> str:
        raise SimulatedCrash

    monkeypatch.setattr(onboarding, "database_grant_name", killed)
    crashed = invoke({"action": "onboard", "plan": plan, "execution": execution})
    assert crashed.get("errorType") == "Runtime.ExitError", crashed
    assert "wandb_app" in rig.users()
    monkeypatch.undo()
    onboarded = invoke({"action": "onboard", "plan": plan, "execution": execution})
    assert onboarded.get("new_user") == "wandb_app", onboarded
    app = rig.secret()
    with (
        rig.engine.connect(user="wandb_app", password=app["password"], autocommit=True) as login,
        login.cursor() as cursor,
    ):
        cursor.execute("SELECT COUNT(*) FROM wandb_local.runs")  # the grants the crash cut off are there


def test_a_version_someone_else_wrote_is_never_switched_to(operator_rig: Rig) -> None:
    """Whoever may write the application secret writes an AWSCURRENT version named like a rotation's, with a
    password they chose: the switch refuses it, so W&B never runs on a password someone else knows."""
    rig = operator_rig
    old = rig.secret()
    token = str(uuid.uuid4())
    theirs = {**old, "username": rotated_username(old["username"], token), "password": "Chosen8yThem0nly1234"}
    with rig.root() as root, root.cursor() as cursor:
        cursor.execute("CREATE USER %s@'%%' IDENTIFIED BY %s", (theirs["username"], theirs["password"]))
        cursor.execute("GRANT ALL PRIVILEGES ON wandb_local.* TO %s@'%%'", (theirs["username"],))
    boto3.client("secretsmanager").put_secret_value(
        SecretId=APP_SECRET, ClientRequestToken=token, SecretString=json.dumps(theirs), VersionStages=["AWSCURRENT"]
    )
    execution = rig.run(action="switch", source="event")
    assert execution.status == "FAILED"
    [note] = rig.notifications()
    assert "was not made by this stack's rotation function" in note.message
    assert rig.kube.current_wandb_config().user == old["username"]
    assert theirs["username"] in rig.users(), "an account the run did not make is never retired"


def test_onboarding_refuses_when_wandb_holds_another_master_password(
    cloud: LocalCloud, wandb: SimulatedWandb, mysql_engine: Engine
) -> None:
    """RDS rotated the master password since W&B was configured: a failed onboarding's rollback would write the
    current master password into W&B's settings (readable on Kubernetes), so onboarding does not start."""
    for rig in _make_rig(
        cloud, wandb, mysql_engine, "operator", onboarded=False, wandb_settings={"password": "AnOlderMasterPassw0rd"}
    ):
        execution = rig.run(action="onboard")
        assert execution.status == "FAILED"
        [note] = rig.notifications()
        assert "does not hold the master secret's current password" in note.message
        assert rig.kube.current_wandb_config().password == "AnOlderMasterPassw0rd"
        assert "wandb_app" not in rig.users()


def test_onboarding_grants_only_on_the_database_rds_created(
    cloud: LocalCloud, wandb: SimulatedWandb, mysql_engine: Engine
) -> None:
    """Whoever may edit W&B's settings names the `mysql` schema as its database: onboarding would have granted
    ALL PRIVILEGES on it to the new user."""
    for rig in _make_rig(cloud, wandb, mysql_engine, "operator", onboarded=False, wandb_settings={"database": "mysql"}):
        execution = rig.run(action="onboard")
        assert execution.status == "FAILED"
        [note] = rig.notifications()
        assert "not the W&B database 'wandb_local' (from RDS)" in note.message
        assert "wandb_app" not in rig.users()


def test_onboarding_can_be_run_again_after_it_rolled_back(master_rig: Rig) -> None:
    """The rollback keeps the application user (its secret is AWSCURRENT); the next onboarding run recognises
    it as one an onboarding of this stack made (its password proves it) and finishes the job."""
    rig = master_rig
    broken: list[str] = []

    def break_once(deployment: str, config: MysqlConfig) -> None:
        if config.user == "wandb_app" and not broken:
            broken.append(deployment)
            with rig.root() as root, root.cursor() as cursor:
                cursor.execute("ALTER USER 'wandb_app'@'%' ACCOUNT LOCK")

    rig.kube.on_restart.append(break_once)
    first = rig.run(action="onboard")
    assert first.status == "FAILED" and _outcome(first) == "rolled_back", first.cause
    assert rig.kube.current_wandb_config().user == MASTER_USER
    rig.kube.on_restart.remove(break_once)
    with rig.root() as root, root.cursor() as cursor:
        cursor.execute("ALTER USER 'wandb_app'@'%' ACCOUNT UNLOCK")
    again = rig.run(action="onboard")
    assert again.status == "SUCCEEDED", again.cause
    assert rig.kube.current_wandb_config().user == "wandb_app"
