"""The MySQL rotation function against real MariaDB 10.11 and MySQL 9 servers, driven by
Secrets Manager's rotate_secret (all four steps) through the deployed function."""

import json
import secrets as pysecrets
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pymysql
import pytest
from botocore.exceptions import ClientError

from tests.rig.engines import Engine
from tests.rig.local_cloud import LocalCloud
from tests.rig.stack import DeployedStack
from wandb_ops.mysql_accounts import AccountCloner, Connector, DbSecret
from wandb_ops.rotation import rotated_username

MASTER_PASSWORD = "Master0fThisTestServer"
CA_SUBJECT = "/CN=wandb-ops test CA"


@dataclass
class RotationSetup:
    engine: Engine
    stack: DeployedStack
    function_arn: str
    master_arn: str
    app_user: str
    app_host: str
    app_password: str
    client_cert: tuple[str, str]

    def app_secret(self, **overrides: Any) -> dict[str, Any]:
        return {
            "engine": "mysql",
            "host": "127.0.0.1",
            "port": self.engine.port,
            "username": self.app_user,
            "password": self.app_password,
            "dbname": "wandb_local",
            "masterarn": self.master_arn,
            "ssl": True,
            "ssl_cert": self.client_cert[0],
            "ssl_key": self.client_cert[1],
            **overrides,
        }

    def create_app_secret(self, **overrides: Any) -> str:
        name = f"wandb-ops/wandb/mysql-app-{uuid.uuid4().hex[:6]}"
        arn: str = boto3.client("secretsmanager").create_secret(
            Name=name, SecretString=json.dumps(self.app_secret(**overrides))
        )["ARN"]
        return arn

    def rotate(self, secret_arn: str, token: str | None = None) -> None:
        kwargs = {"ClientRequestToken": token} if token else {}
        boto3.client("secretsmanager").rotate_secret(
            SecretId=secret_arn,
            RotationLambdaARN=self.function_arn,
            RotationRules={"AutomaticallyAfterDays": 30},
            **kwargs,
        )

    def master(self) -> "pymysql.connections.Connection[Any]":
        return self.engine.connect(user="wandb_master", password=MASTER_PASSWORD, autocommit=True)

    def login(self, secret: dict[str, Any]) -> str:
        with (
            Connector(ca_bundle=self.engine.ca_path).connect(DbSecret.model_validate(secret)) as connection,
            connection.cursor() as cursor,
        ):
            cursor.execute("SELECT CURRENT_USER()")
            return str(cursor.fetchone()[0])


def _secret(arn: str, stage: str = "AWSCURRENT") -> dict[str, Any]:
    value: dict[str, Any] = json.loads(
        boto3.client("secretsmanager").get_secret_value(SecretId=arn, VersionStage=stage)["SecretString"]
    )
    return value


def _schema(engine: Engine) -> None:
    """The W&B database and the objects the application user's grants refer to, plus the master user."""
    mysql9 = engine.name == "mysql9"
    with engine.connect(autocommit=True) as root, root.cursor() as cursor:
        for statement in (
            "CREATE DATABASE IF NOT EXISTS wandb_local",
            "CREATE TABLE IF NOT EXISTS wandb_local.runs (id INT PRIMARY KEY, name VARCHAR(64), owner VARCHAR(64))",
            "CREATE PROCEDURE IF NOT EXISTS wandb_local.touch_runs() SELECT COUNT(*) FROM wandb_local.runs",
            "CREATE USER IF NOT EXISTS 'wandb_proxied'@'%' IDENTIFIED BY 'Proxied0nly' ACCOUNT LOCK",
            "CREATE ROLE IF NOT EXISTS wandb_reader",
            "GRANT SELECT ON wandb_local.* TO wandb_reader",
            f"CREATE USER IF NOT EXISTS 'wandb_master'@'%' IDENTIFIED BY '{MASTER_PASSWORD}'",
            "GRANT ALL PRIVILEGES ON *.* TO 'wandb_master'@'%' WITH GRANT OPTION",
            "GRANT PROXY ON 'wandb_proxied'@'%' TO 'wandb_master'@'%' WITH GRANT OPTION",
            "GRANT wandb_reader TO 'wandb_master'@'%' WITH ADMIN OPTION",
            *(["SET GLOBAL partial_revokes = ON"] if mysql9 else []),
        ):
            cursor.execute(statement)


def _create_app_user(engine: Engine, user: str, host: str, password: str, profile: str) -> None:
    mysql9 = engine.name == "mysql9"
    account = f"'{user}'@'{host}'"
    statements = [f"CREATE USER {account} IDENTIFIED BY '{password}'"]
    if profile == "rich":
        statements += [
            f"GRANT SELECT, INSERT, UPDATE ON wandb_local.* TO {account} WITH GRANT OPTION",
            f"GRANT DELETE ON wandb_local.runs TO {account}",
            f"GRANT SELECT (name), UPDATE (owner) ON wandb_local.runs TO {account}",
            f"GRANT EXECUTE ON PROCEDURE wandb_local.touch_runs TO {account}",
            f"GRANT wandb_reader TO {account} WITH ADMIN OPTION",
            f"GRANT PROXY ON 'wandb_proxied'@'%' TO {account}",
            f"ALTER USER {account} REQUIRE SUBJECT '/CN={user}' AND ISSUER '{CA_SUBJECT}' "
            "WITH MAX_QUERIES_PER_HOUR 5000 MAX_UPDATES_PER_HOUR 900 MAX_USER_CONNECTIONS 20",
        ]
        statements.append(
            f"SET DEFAULT ROLE wandb_reader TO {account}" if mysql9 else f"SET DEFAULT ROLE wandb_reader FOR {account}"
        )
        if mysql9:
            statements += [
                f"GRANT BACKUP_ADMIN, SYSTEM_VARIABLES_ADMIN ON *.* TO {account}",
                f"GRANT SELECT ON *.* TO {account}",
                f"REVOKE SELECT ON mysql.* FROM {account}",
            ]
    else:
        statements += [
            f"GRANT SELECT, INSERT, UPDATE, DELETE ON wandb_local.* TO {account}",
            f"ALTER USER {account} REQUIRE X509 WITH MAX_CONNECTIONS_PER_HOUR 1000",
        ]
    with (
        engine.connect(user="wandb_master", password=MASTER_PASSWORD, autocommit=True) as master,
        master.cursor() as cursor,
    ):
        for statement in statements:
            cursor.execute(statement)


@pytest.fixture(params=["rich", "x509"])
def setup(
    request: pytest.FixtureRequest, cloud: LocalCloud, stack: DeployedStack, mysql_engine: Engine
) -> Iterator[RotationSetup]:
    _schema(mysql_engine)
    user = f"app{pysecrets.token_hex(3)}"
    host = "127.0.0.1" if request.param == "rich" else "%"
    password = pysecrets.token_hex(12)
    _create_app_user(mysql_engine, user, host, password, request.param)
    # What an operator would do for a private CA; here the rig's CA signs the test servers.
    stack.set_function_environment("MySqlRotationFunction", DB_CA_BUNDLE=str(mysql_engine.ca_path))
    master_arn = boto3.client("secretsmanager").create_secret(
        Name=f"wandb-ops/wandb/mysql-master-{uuid.uuid4().hex[:6]}",
        SecretString=json.dumps(
            {
                "engine": "mysql",
                "host": "127.0.0.1",
                "port": mysql_engine.port,
                "username": "wandb_master",
                "password": MASTER_PASSWORD,
                "ssl": True,
            }
        ),
    )["ARN"]
    yield RotationSetup(
        engine=mysql_engine,
        stack=stack,
        function_arn=stack.function_arn("MySqlRotationFunction"),
        master_arn=master_arn,
        app_user=user,
        app_host=host,
        app_password=password,
        client_cert=mysql_engine.issue_client_certificate(user),
    )
    with mysql_engine.connect(autocommit=True) as root, root.cursor() as cursor:
        cursor.execute("SELECT User, Host FROM mysql.user WHERE User LIKE %s", (f"{user}%",))
        for name, account_host in cursor.fetchall():
            cursor.execute("DROP USER %s@%s", (name, account_host))


def _differences(setup: RotationSetup, source: str, target: str) -> list[str]:
    with setup.master() as master:
        return AccountCloner(master).differences(source, target)


def _grant_lines(setup: RotationSetup, user: str) -> list[str]:
    with setup.master() as master:
        return sorted(line.normalized() for line in AccountCloner(master).grants(user, setup.app_host))


def _assert_no_password_logged(cloud: LocalCloud, *passwords: str) -> None:
    for invocation in cloud.runtime.invocations_of("MySqlRotationFunction"):
        for line in invocation.log_lines:
            assert all(password not in line for password in passwords), "a password reached the logs"
        assert all(password not in json.dumps(invocation.result) for password in passwords)


def test_rotation_creates_an_exact_clone_and_moves_awscurrent(cloud: LocalCloud, setup: RotationSetup) -> None:
    arn = setup.create_app_secret()
    token = str(uuid.uuid4())
    setup.rotate(arn, token)

    steps = [(i.event["Step"], i.error_type) for i in cloud.runtime.invocations_of("MySqlRotationFunction")]
    assert steps == [("createSecret", None), ("setSecret", None), ("testSecret", None), ("finishSecret", None)]
    current, previous = _secret(arn), _secret(arn, "AWSPREVIOUS")
    assert previous["username"] == setup.app_user
    assert current["username"] == rotated_username(setup.app_user, token) != setup.app_user
    assert len(current["username"]) <= 32 and current["password"].isalnum() and len(current["password"]) == 32
    assert _differences(setup, setup.app_user, current["username"]) == []
    lines = _grant_lines(setup, current["username"])
    assert lines == _grant_lines(setup, setup.app_user)
    assert len(lines) >= (7 if setup.engine.name == "mariadb" and setup.app_host != "%" else 2)
    # The new password logs in (with the client certificate the account requires), and so does the old user.
    assert setup.login({**current, "ssl_cert": setup.client_cert[0], "ssl_key": setup.client_cert[1]}).startswith(
        current["username"] + "@"
    )
    assert setup.login(setup.app_secret()).startswith(setup.app_user + "@")
    _assert_no_password_logged(cloud, current["password"], setup.app_password, MASTER_PASSWORD)


def test_an_rds_managed_master_secret_with_only_credentials_is_enough(cloud: LocalCloud, setup: RotationSetup) -> None:
    """RDS-managed master secrets hold only username and password; the server is the application user's."""
    managed_master = boto3.client("secretsmanager").create_secret(
        Name=f"wandb-ops/wandb/rds-managed-{uuid.uuid4().hex[:6]}",
        SecretString=json.dumps({"username": "wandb_master", "password": MASTER_PASSWORD}),
    )["ARN"]
    arn = setup.create_app_secret(masterarn=managed_master)
    setup.rotate(arn)
    assert _differences(setup, setup.app_user, _secret(arn)["username"]) == []


def test_rotating_twice_in_a_row_clones_the_clone(cloud: LocalCloud, setup: RotationSetup) -> None:
    arn = setup.create_app_secret()
    setup.rotate(arn)
    first = _secret(arn)["username"]
    setup.rotate(arn)
    second = _secret(arn)["username"]
    assert len({setup.app_user, first, second}) == 3
    assert second.startswith(setup.app_user + "_r")  # derived from the base name, not suffix on suffix
    assert _differences(setup, setup.app_user, second) == []


class _CrashingCloner(AccountCloner):
    """Stops after a number of statements, like a setSecret whose Lambda was killed."""

    def __init__(self, connection: Any, crash_after: int) -> None:
        super().__init__(connection)
        self._remaining = crash_after

    def _execute(self, statement: str, args: Any = None) -> list[tuple[Any, ...]]:
        if not statement.upper().startswith(("SELECT", "SHOW", "SET SESSION")):
            if self._remaining == 0:
                raise TimeoutError("Task timed out (simulated crash)")
            self._remaining -= 1
        return super()._execute(statement, args)


@pytest.mark.parametrize("crash_point", ["after-create-user", "after-half-the-grants"])
def test_a_crashed_set_secret_is_completed_by_the_retry(
    cloud: LocalCloud, setup: RotationSetup, crash_point: str
) -> None:
    arn = setup.create_app_secret()
    token = str(uuid.uuid4())
    pending_user = rotated_username(setup.app_user, token)
    grants = len(_grant_lines(setup, setup.app_user))
    # CREATE USER, ALTER USER (options), then the grants other than USAGE, which CREATE USER gave.
    crash_after = 1 if crash_point == "after-create-user" else 2 + (grants - 1) // 2
    with setup.master() as master, pytest.raises(TimeoutError):
        _CrashingCloner(master, crash_after).clone(setup.app_user, pending_user, "SomeEarlierPassw0rd")
    assert _differences(setup, setup.app_user, pending_user), "the crash left an incomplete clone"

    setup.rotate(arn, token)  # Secrets Manager's retry of the same rotation

    assert _secret(arn)["username"] == pending_user
    assert _differences(setup, setup.app_user, pending_user) == []


def test_a_master_without_grant_rights_fails_set_secret_and_changes_nothing(
    cloud: LocalCloud, setup: RotationSetup
) -> None:
    with setup.engine.connect(autocommit=True) as root, root.cursor() as cursor:
        cursor.execute("CREATE USER IF NOT EXISTS 'weak_master'@'%' IDENTIFIED BY 'WeakMaster0nly'")
        cursor.execute("GRANT CREATE USER ON *.* TO 'weak_master'@'%'")
    weak_arn = boto3.client("secretsmanager").create_secret(
        Name=f"wandb-ops/wandb/weak-master-{uuid.uuid4().hex[:6]}",
        SecretString=json.dumps(
            {
                "engine": "mysql",
                "host": "127.0.0.1",
                "port": setup.engine.port,
                "username": "weak_master",
                "password": "WeakMaster0nly",
                "ssl": True,
            }
        ),
    )["ARN"]
    arn = setup.create_app_secret(masterarn=weak_arn)
    with pytest.raises(ClientError) as failed:
        setup.rotate(arn)
    message = failed.value.response["Error"]["Message"]
    assert "setSecret" in message and "weak_master" in message and "MySQL error" in message
    assert _secret(arn)["username"] == setup.app_user  # AWSCURRENT unchanged
    assert setup.login(setup.app_secret()).startswith(setup.app_user + "@")
    _assert_no_password_logged(cloud, "WeakMaster0nly", setup.app_password)


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (
            {"masterarn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:wandb-ops/wandb/nope-AbCdEf"},
            "cannot read the master secret",
        ),
        ({"host": None}, "field 'host'"),
        ({"port": 1, "masterarn": "unreachable-master"}, "MySQL error 2003"),
        ({"masterarn": "other-server-master"}, "the master secret"),
    ],
    ids=["wrong-masterarn", "missing-field", "unreachable-host", "master-of-another-server"],
)
def test_bad_secrets_fail_clearly_and_change_nothing(
    cloud: LocalCloud, setup: RotationSetup, overrides: dict[str, Any], expected: str
) -> None:
    overrides = dict(overrides)  # the parameter is shared between runs
    if overrides.get("masterarn") in ("unreachable-master", "other-server-master"):
        port = 1 if overrides["masterarn"] == "unreachable-master" else setup.engine.port + 1
        overrides["masterarn"] = boto3.client("secretsmanager").create_secret(
            Name=f"wandb-ops/wandb/master-{uuid.uuid4().hex[:6]}",
            SecretString=json.dumps(
                {
                    "engine": "mysql",
                    "host": "127.0.0.1",
                    "port": port,
                    "username": "wandb_master",
                    "password": MASTER_PASSWORD,
                }
            ),
        )["ARN"]
    secret = {k: v for k, v in setup.app_secret(**overrides).items() if v is not None}
    arn = boto3.client("secretsmanager").create_secret(
        Name=f"wandb-ops/wandb/bad-{uuid.uuid4().hex[:6]}", SecretString=json.dumps(secret)
    )["ARN"]
    with pytest.raises(ClientError) as failed:
        setup.rotate(arn)
    assert expected in failed.value.response["Error"]["Message"]
    assert _secret(arn) == secret
    with setup.master() as master:
        assert [u for u in AccountCloner(master).hosts(rotated_username(setup.app_user, "x")) if u] == []
        with master.cursor() as cursor:
            cursor.execute("SELECT COUNT(*) FROM mysql.user WHERE User LIKE %s", (f"{setup.app_user}_r%",))
            assert cursor.fetchone()[0] == 0


def test_a_client_logging_in_with_awscurrent_never_fails_during_rotation(
    cloud: LocalCloud, setup: RotationSetup
) -> None:
    arn = setup.create_app_secret()
    failures: list[str] = []
    logins = 0
    stop = threading.Event()

    def client() -> None:
        nonlocal logins
        while not stop.is_set():
            current = _secret(arn)
            try:
                setup.login({**current, "ssl_cert": setup.client_cert[0], "ssl_key": setup.client_cert[1]})
                logins += 1
            except pymysql.MySQLError as exc:
                failures.append(f"{current['username']}: {exc.args[0]}")
            time.sleep(0.01)

    thread = threading.Thread(target=client)
    thread.start()
    try:
        setup.rotate(arn)
        time.sleep(0.3)  # keep logging in with the new AWSCURRENT for a moment
    finally:
        stop.set()
        thread.join()
    assert failures == [] and logins > 5
