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
from tests.rig.rds import READER_HOST, WRITER_HOST, serve_locally
from tests.rig.rogue_mysql import RogueMysqlServer
from tests.rig.stack import DeployedStack
from wandb_ops.access.mysql.accounts import AccountCloner
from wandb_ops.access.mysql.connector import Connector, DbSecret
from wandb_ops.access.password_proof import PasswordMint
from wandb_ops.workflows.secret_rotation.rotation import rotated_username

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

    def minted(self, username: str, token: str) -> str:
        """The password the rotation function itself makes for this user and version (its key, its rule)."""
        variables = boto3.client("lambda").get_function_configuration(FunctionName=self.function_arn)["Environment"]
        return PasswordMint(boto3.client("kms"), variables["Variables"]["CREDENTIAL_MAC_KEY_ARN"]).password(
            "rotation", username, token
        )

    def retry(self, secret_arn: str, token: str, *steps: str) -> list[dict[str, Any]]:
        """Secrets Manager retrying steps of a rotation: the function invoked with the same token."""
        results = []
        for step in steps or ("setSecret", "testSecret", "finishSecret"):
            response = boto3.client("lambda").invoke(
                FunctionName=self.function_arn,
                Payload=json.dumps({"Step": step, "SecretId": secret_arn, "ClientRequestToken": token}),
            )
            results.append(json.loads(response["Payload"].read()))
        return results

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
    elif profile == "x509":
        statements += [
            f"GRANT SELECT, INSERT, UPDATE, DELETE ON wandb_local.* TO {account}",
            f"ALTER USER {account} REQUIRE X509 WITH MAX_CONNECTIONS_PER_HOUR 1000",
        ]
    else:  # plain: what onboarding creates, and nothing else
        statements.append(f"GRANT ALL PRIVILEGES ON wandb_local.* TO {account}")
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
    yield from _make_setup(request.param, stack, mysql_engine)


@pytest.fixture
def plain_setup(cloud: LocalCloud, stack: DeployedStack, mysql_engine: Engine) -> Iterator[RotationSetup]:
    """An application user with ALL PRIVILEGES on the W&B database only, no TLS requirement."""
    yield from _make_setup("plain", stack, mysql_engine)


def _make_setup(profile: str, stack: DeployedStack, mysql_engine: Engine) -> Iterator[RotationSetup]:
    _schema(mysql_engine)
    user = f"app{pysecrets.token_hex(3)}"
    host = "127.0.0.1" if profile == "rich" else "%"
    password = pysecrets.token_hex(12)
    _create_app_user(mysql_engine, user, host, password, profile)
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


def _rds_managed_master() -> str:
    """A master secret as RDS manages it: only username and password."""
    arn: str = boto3.client("secretsmanager").create_secret(
        Name=f"wandb-ops/wandb/rds-managed-{uuid.uuid4().hex[:6]}",
        SecretString=json.dumps({"username": "wandb_master", "password": MASTER_PASSWORD}),
    )["ARN"]
    return arn


def test_an_rds_managed_master_secret_with_only_credentials_is_enough(cloud: LocalCloud, setup: RotationSetup) -> None:
    """RDS-managed master secrets hold only username and password: the master connects to the stack's
    database as RDS describes it (the rig serves its endpoints from the engine: docs/local-rig.md)."""
    serve_locally("wandb", setup.engine.port)
    # The application user names the reader endpoint; the master goes to the writer's.
    arn = setup.create_app_secret(masterarn=_rds_managed_master(), host=READER_HOST)
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


@pytest.mark.parametrize("crash_point", ["after-create-user", "after-half-the-grants"])
def test_a_crashed_set_secret_is_completed_by_the_retry(
    cloud: LocalCloud, setup: RotationSetup, crash_point: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    arn = setup.create_app_secret()
    token = str(uuid.uuid4())
    pending_user = rotated_username(setup.app_user, token)
    grants = len(_grant_lines(setup, setup.app_user))
    # CREATE USER, ALTER USER (options), ALTER USER (TLS), then the grants other than USAGE, which CREATE USER gave.
    remaining = [1 if crash_point == "after-create-user" else 3 + (grants - 1) // 2]
    execute = AccountCloner._execute

    def killed_midway(cloner: AccountCloner, statement: str, args: Any = None) -> list[tuple[Any, ...]]:
        """Stops after a number of changes, like a setSecret whose Lambda was killed."""
        if not statement.upper().startswith(("SELECT", "SHOW", "SET SESSION")):
            if remaining[0] == 0:
                raise TimeoutError("Task timed out (simulated crash)")
            remaining[0] -= 1
        return execute(cloner, statement, args)

    monkeypatch.setattr(AccountCloner, "_execute", killed_midway)
    with pytest.raises(ClientError, match="simulated crash"):
        setup.rotate(arn, token)
    monkeypatch.setattr(AccountCloner, "_execute", execute)
    assert _differences(setup, setup.app_user, pending_user), "the crash left an incomplete clone"

    assert all("errorType" not in result for result in setup.retry(arn, token))

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
    assert "createSecret" in message and "weak_master" in message and "MySQL error" in message
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


# ---------------------------------------------------------------- whoever writes the application secret gains nothing


def _rotation_refused(setup: RotationSetup, arn: str, before: dict[str, Any]) -> str:
    """Rotate; the rotation must fail, leave AWSCURRENT as it was and create no user. Returns the error."""
    with pytest.raises(ClientError) as failed:
        setup.rotate(arn)
    assert _secret(arn) == before
    with setup.engine.connect(autocommit=True) as root, root.cursor() as cursor:
        cursor.execute("SELECT COUNT(*) FROM mysql.user WHERE User LIKE %s", ("%\\_r________",))
        assert cursor.fetchone()[0] == 0, "a rotated user was created"
    return str(failed.value.response["Error"]["Message"])


@pytest.mark.parametrize("master_kind", ["own-host", "rds-managed"])
def test_the_master_user_is_never_cloned(cloud: LocalCloud, plain_setup: RotationSetup, master_kind: str) -> None:
    """An application secret holding the master user (what terraform-aws-wandb gives W&B) is refused before
    anything is created, also when the two secrets spell the server differently (reader vs writer endpoint)."""
    setup = plain_setup
    master_arn = setup.master_arn
    overrides: dict[str, Any] = {"username": "wandb_master", "password": MASTER_PASSWORD, "ssl_cert": None}
    if master_kind == "rds-managed":
        serve_locally("wandb", setup.engine.port)
        master_arn = _rds_managed_master()
        overrides["host"] = READER_HOST  # the master connects to the writer endpoint, another name
    secret = {k: v for k, v in setup.app_secret(masterarn=master_arn, **overrides).items() if v is not None}
    arn = boto3.client("secretsmanager").create_secret(
        Name=f"wandb-ops/wandb/master-as-app-{uuid.uuid4().hex[:6]}", SecretString=json.dumps(secret)
    )["ARN"]
    message = _rotation_refused(setup, arn, secret)
    assert "createSecret" in message and "is the master user" in message and "RDS-managed" in message
    with setup.master() as master, master.cursor() as cursor:
        cursor.execute("SELECT COUNT(*) FROM mysql.user WHERE User LIKE 'wandb\\_master\\_r%'")
        assert cursor.fetchone()[0] == 0


def test_the_master_password_goes_only_to_the_database_of_the_stack(
    cloud: LocalCloud, plain_setup: RotationSetup
) -> None:
    """With an RDS-managed master secret (no host), an application secret pointing at another server with
    ssl false used to receive the master password in clear text. Now nothing connects to that server."""
    setup = plain_setup
    serve_locally("wandb", setup.engine.port)
    rogue = RogueMysqlServer().start()
    try:
        for host, port in ((rogue.host, rogue.port), (WRITER_HOST, rogue.port)):
            secret = {
                k: v
                for k, v in setup.app_secret(
                    masterarn=_rds_managed_master(), host=host, port=port, ssl=False, ssl_cert=None, ssl_key=None
                ).items()
                if v is not None
            }
            arn = boto3.client("secretsmanager").create_secret(
                Name=f"wandb-ops/wandb/elsewhere-{uuid.uuid4().hex[:6]}", SecretString=json.dumps(secret)
            )["ARN"]
            message = _rotation_refused(setup, arn, secret)
            assert "application secret" in message and "not an endpoint of the database wandb" in message
        assert rogue.connections == 0 and not rogue.got(MASTER_PASSWORD)
    finally:
        rogue.stop()
    _assert_no_password_logged(cloud, MASTER_PASSWORD, setup.app_password)


def test_the_application_secrets_ssl_false_never_turns_the_masters_tls_off(
    cloud: LocalCloud, plain_setup: RotationSetup
) -> None:
    """A master that must use TLS keeps it when the application secret says "ssl": false (its host is the same
    server: the application user's own login may go without TLS, the master's may not)."""
    setup = plain_setup
    with setup.engine.connect(autocommit=True) as root, root.cursor() as cursor:
        cursor.execute("CREATE USER IF NOT EXISTS 'tls_master'@'%%' IDENTIFIED BY %s REQUIRE SSL", (MASTER_PASSWORD,))
        cursor.execute("GRANT ALL PRIVILEGES ON *.* TO 'tls_master'@'%' WITH GRANT OPTION")
    master = {"host": "127.0.0.1", "port": setup.engine.port, "username": "tls_master", "password": MASTER_PASSWORD}
    master_arn = boto3.client("secretsmanager").create_secret(
        Name=f"wandb-ops/wandb/tls-master-{uuid.uuid4().hex[:6]}", SecretString=json.dumps(master)
    )["ARN"]
    arn = setup.create_app_secret(masterarn=master_arn, ssl=False, ssl_cert=None, ssl_key=None)
    try:
        setup.rotate(arn)
        assert _differences(setup, setup.app_user, _secret(arn)["username"]) == []
    finally:
        with setup.engine.connect(autocommit=True) as root, root.cursor() as cursor:
            cursor.execute("DROP USER IF EXISTS 'tls_master'@'%'")


def test_a_secret_whose_password_does_not_log_in_is_refused(cloud: LocalCloud, plain_setup: RotationSetup) -> None:
    setup = plain_setup
    secret = setup.app_secret(password="NotThePassw0rdOfThisUser", ssl_cert=None, ssl_key=None)
    secret = {k: v for k, v in secret.items() if v is not None}
    arn = boto3.client("secretsmanager").create_secret(
        Name=f"wandb-ops/wandb/wrong-password-{uuid.uuid4().hex[:6]}", SecretString=json.dumps(secret)
    )["ARN"]
    message = _rotation_refused(setup, arn, secret)
    assert f"does not log in as '{setup.app_user}'" in message and "MySQL error 1045" in message
    assert "nothing was created" in message


def test_a_client_certificate_the_account_requires_is_asked_for(cloud: LocalCloud, setup: RotationSetup) -> None:
    """Both profiles require a client certificate (REQUIRE X509, REQUIRE SUBJECT ... ISSUER)."""
    secret = {k: v for k, v in setup.app_secret(ssl_cert=None, ssl_key=None).items() if v is not None}
    arn = boto3.client("secretsmanager").create_secret(
        Name=f"wandb-ops/wandb/no-cert-{uuid.uuid4().hex[:6]}", SecretString=json.dumps(secret)
    )["ARN"]
    message = _rotation_refused(setup, arn, secret)
    assert "requires a client certificate" in message and "'ssl_cert' and 'ssl_key'" in message


def _pending_written_by_someone_else(setup: RotationSetup, arn: str, **changes: Any) -> str:
    """A rotation left at AWSPENDING whose pending version someone else wrote: the token, once the
    rotation function has been configured by one normal rotation."""
    setup.rotate(arn)
    current = _secret(arn)
    token = str(uuid.uuid4())
    boto3.client("secretsmanager").put_secret_value(
        SecretId=arn,
        ClientRequestToken=token,
        SecretString=json.dumps({**current, **changes}),
        VersionStages=["AWSPENDING"],
    )
    return token


def test_a_pending_version_naming_the_master_never_changes_its_password(
    cloud: LocalCloud, plain_setup: RotationSetup
) -> None:
    """setSecret used to set the pending password on an account that existed: the master's, here."""
    setup = plain_setup
    arn = setup.create_app_secret(ssl_cert=None, ssl_key=None)
    token = _pending_written_by_someone_else(setup, arn, username="wandb_master", password="Attacker5Choice")
    result = setup.retry(arn, token, "setSecret")[0]
    assert "not 'app" in result["errorMessage"] and "refused" in result["errorMessage"]
    with setup.master():  # the master password still works
        pass
    with pytest.raises(pymysql.MySQLError):
        setup.engine.connect(user="wandb_master", password="Attacker5Choice").close()


def test_a_pending_user_that_exists_already_is_left_alone(cloud: LocalCloud, plain_setup: RotationSetup) -> None:
    """The pending name is derived from the token; an account of that name made by someone else is not
    completed as a clone (no password, no grants)."""
    setup = plain_setup
    arn = setup.create_app_secret(ssl_cert=None, ssl_key=None)
    setup.rotate(arn)
    current = _secret(arn)
    token = str(uuid.uuid4())
    squatter = rotated_username(current["username"], token)
    with setup.engine.connect(autocommit=True) as root, root.cursor() as cursor:
        cursor.execute("CREATE USER %s@'%%' IDENTIFIED BY 'Squatter5Own'", (squatter,))
    # The version createSecret writes; someone made an account of that name before setSecret ran.
    boto3.client("secretsmanager").put_secret_value(
        SecretId=arn,
        ClientRequestToken=token,
        SecretString=json.dumps({**current, "username": squatter, "password": setup.minted(squatter, token)}),
        VersionStages=["AWSPENDING"],
    )
    result = setup.retry(arn, token, "setSecret")[0]
    assert "exists already" in result["errorMessage"]
    with setup.engine.connect(user=squatter, password="Squatter5Own") as squatter_login, squatter_login.cursor() as c:
        c.execute("SHOW GRANTS")
        assert [row[0] for row in c.fetchall() if "wandb_local" in row[0]] == []


@pytest.mark.parametrize("changed", ["host", "masterarn", "port"])
def test_a_pending_version_may_change_only_user_and_password(
    cloud: LocalCloud, plain_setup: RotationSetup, changed: str
) -> None:
    setup = plain_setup
    arn = setup.create_app_secret(ssl_cert=None, ssl_key=None)
    value = {"host": WRITER_HOST, "masterarn": _rds_managed_master(), "port": setup.engine.port + 1}[changed]
    token = str(uuid.uuid4())
    setup.rotate(arn)
    current = _secret(arn)
    user = rotated_username(current["username"], token)
    pending = {**current, "username": user, "password": setup.minted(user, token), changed: value}
    boto3.client("secretsmanager").put_secret_value(
        SecretId=arn, ClientRequestToken=token, SecretString=json.dumps(pending), VersionStages=["AWSPENDING"]
    )
    result = setup.retry(arn, token, "setSecret")[0]
    assert f"changes {changed} of the current one" in result["errorMessage"]


# ---------------------------------------------------------------- the clone check compares what the server stores


def test_column_grants_made_in_any_order_are_the_same_privileges(cloud: LocalCloud, plain_setup: RotationSetup) -> None:
    """MariaDB lists a privilege's columns in the order they were granted: the clone's list comes out in
    another order, and the text comparison failed testSecret on every retry."""
    setup = plain_setup
    account = f"'{setup.app_user}'@'%'"
    with setup.master() as master, master.cursor() as cursor:
        cursor.execute(f"GRANT SELECT (name, id), UPDATE (owner, name) ON wandb_local.runs TO {account}")
        cursor.execute(f"GRANT SELECT (owner), INSERT (id, owner, name) ON wandb_local.runs TO {account}")
    arn = setup.create_app_secret(ssl_cert=None, ssl_key=None)
    setup.rotate(arn)
    clone = _secret(arn)["username"]
    assert _differences(setup, setup.app_user, clone) == []
    with setup.master() as master, master.cursor() as cursor:
        cursor.execute(f"REVOKE UPDATE (owner) ON wandb_local.runs FROM '{clone}'@'%'")
    assert any("columns_priv" in line and "owner" in line for line in _differences(setup, setup.app_user, clone))


def test_escaped_and_unescaped_database_grants_are_different_privileges(
    cloud: LocalCloud, plain_setup: RotationSetup
) -> None:
    """`wandb\\_local` names one database, `wandb_local` (with wildcards on) every `wandb?local`: the clone keeps
    each as it is, and the comparison tells them apart."""
    setup = plain_setup
    account = f"'{setup.app_user}'@'%'"
    with setup.master() as master, master.cursor() as cursor:
        cursor.execute(f"GRANT EVENT ON `wandb\\_local`.* TO {account}")
    arn = setup.create_app_secret(ssl_cert=None, ssl_key=None)
    setup.rotate(arn)
    clone = _secret(arn)["username"]
    assert _differences(setup, setup.app_user, clone) == []
    with setup.master() as master, master.cursor() as cursor:
        cursor.execute(f"REVOKE EVENT ON `wandb\\_local`.* FROM '{clone}'@'%'")
        cursor.execute(f"GRANT EVENT ON `wandb_local`.* TO '{clone}'@'%'")
    differences = _differences(setup, setup.app_user, clone)
    assert any("mysql.db" in line and "wandb\\\\_local" in line for line in differences), differences


TRICKY_CN = "O'Brien \\x \"q\" AND ISSUER 'x' WITH MAX_QUERIES_PER_HOUR 1"


def test_tls_subjects_with_quotes_backslashes_and_keywords_are_cloned_exactly(
    cloud: LocalCloud, plain_setup: RotationSetup
) -> None:
    """MySQL 9 prints REQUIRE SUBJECT values without escaping quotes: the clone takes them from mysql.user."""
    setup = plain_setup
    with setup.master() as master, master.cursor() as cursor:
        cursor.execute(
            "ALTER USER %s@'%%' REQUIRE SUBJECT %s AND ISSUER %s",
            (setup.app_user, f"/CN={TRICKY_CN}", CA_SUBJECT),
        )
    cert, key = setup.engine.issue_client_certificate(TRICKY_CN)
    arn = setup.create_app_secret(ssl_cert=cert, ssl_key=key)
    setup.rotate(arn)
    clone = _secret(arn)["username"]
    assert _differences(setup, setup.app_user, clone) == []
    with setup.master() as master, master.cursor() as cursor:
        cursor.execute("SELECT x509_subject, x509_issuer FROM mysql.user WHERE User = %s", (clone,))
        subject, issuer = (value.decode() if isinstance(value, bytes) else value for value in cursor.fetchone())
    assert (subject, issuer) == (f"/CN={TRICKY_CN}", CA_SUBJECT)
    assert setup.login({**_secret(arn), "ssl_cert": cert, "ssl_key": key}).startswith(clone + "@")


def test_a_pending_password_someone_else_chose_is_refused(cloud: LocalCloud, plain_setup: RotationSetup) -> None:
    """Someone allowed to write the secret (not to read it) writes the pending version with the right name and a
    password they know: the clone would be W&B's user with their password. setSecret refuses it."""
    setup = plain_setup
    arn = setup.create_app_secret(ssl_cert=None, ssl_key=None)
    setup.rotate(arn)
    current = _secret(arn)
    token = str(uuid.uuid4())
    user = rotated_username(current["username"], token)
    boto3.client("secretsmanager").put_secret_value(
        SecretId=arn,
        ClientRequestToken=token,
        SecretString=json.dumps({**current, "username": user, "password": "KnownToThem0nlyAbCdEfGhIj123456"}),
        VersionStages=["AWSPENDING"],
    )
    for step in ("setSecret", "testSecret"):
        result = setup.retry(arn, token, step)[0]
        assert "password was not made by this stack's rotation function" in result["errorMessage"]
    with setup.master() as master:
        assert AccountCloner(master).hosts(user) == []


def test_host_entries_with_different_passwords_are_not_cloned(cloud: LocalCloud, plain_setup: RotationSetup) -> None:
    """The login proves one host entry's password; another entry of the same name is another account, whose
    privileges the secret's writer need not have: it is never copied under a password they learn."""
    setup = plain_setup
    with setup.master() as master, master.cursor() as cursor:
        cursor.execute("CREATE USER %s@'10.%%' IDENTIFIED BY 'An0therEntry'", (setup.app_user,))
        cursor.execute("GRANT ALL PRIVILEGES ON *.* TO %s@'10.%%'", (setup.app_user,))
    arn = setup.create_app_secret(ssl_cert=None, ssl_key=None)
    secret = _secret(arn)
    message = _rotation_refused(setup, arn, secret)
    assert "host entries with different passwords" in message


@pytest.mark.parametrize("username", ["app ", "a@evil:1/x", "a b"])
def test_a_user_name_a_server_or_url_would_read_otherwise_is_refused(
    cloud: LocalCloud, plain_setup: RotationSetup, username: str
) -> None:
    setup = plain_setup
    secret = {k: v for k, v in setup.app_secret(username=username, ssl_cert=None, ssl_key=None).items() if v}
    arn = boto3.client("secretsmanager").create_secret(
        Name=f"wandb-ops/wandb/odd-name-{uuid.uuid4().hex[:6]}", SecretString=json.dumps(secret)
    )["ARN"]
    message = _rotation_refused(setup, arn, secret)
    assert "field 'username'" in message and username not in message
