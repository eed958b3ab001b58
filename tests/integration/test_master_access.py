"""Where the master credentials may go (wandb_ops.access.mysql.master) and how the connection refuses to
give a password away (wandb_ops.access.mysql.connector.Connector), against the emulator's RDS and Secrets
Manager and a server impersonating a database."""

import json
import time
import uuid
from typing import Any

import boto3
import pymysql
import pytest

from tests.rig.local_cloud import LocalCloud
from tests.rig.rds import READER_HOST, WRITER_HOST, serve_locally
from tests.rig.rogue_mysql import RogueMysqlServer
from tests.rig.wandb_deployment import SimulatedWandb
from wandb_ops.access.mysql.connector import Connector, DbSecret
from wandb_ops.access.mysql.master import MasterAccess, database_from_env, describe_database
from wandb_ops.core.errors import ConfigurationError


class Refused(Exception):
    pass


def _access() -> MasterAccess:
    env = {"DATABASE_KIND": "aurora-cluster", "DATABASE_IDENTIFIER": "wandb"}
    return MasterAccess(boto3.client("secretsmanager"), database_from_env(lambda: boto3.client("rds"), env))


def _master(**fields: Any) -> str:
    arn: str = boto3.client("secretsmanager").create_secret(
        Name=f"master-{uuid.uuid4().hex[:6]}",
        SecretString=json.dumps({"username": "wandb", "password": "MasterPassw0rd", **fields}),
    )["ARN"]
    return arn


def _app(**fields: Any) -> DbSecret:
    return DbSecret.model_validate(
        {"engine": "mysql", "host": WRITER_HOST, "port": 3306, "username": "app", "password": "x", **fields}
    )


def test_the_database_answers_to_its_writer_reader_and_instance_endpoints(wandb: SimulatedWandb) -> None:
    rds = boto3.client("rds")
    cluster = rds.describe_db_clusters(DBClusterIdentifier="wandb")["DBClusters"][0]
    instance = rds.describe_db_instances(DBInstanceIdentifier="wandb-1")["DBInstances"][0]
    found = describe_database(rds, "aurora-cluster", "wandb")
    assert found.writer == cluster["Endpoint"] and found.port == cluster["Port"]
    assert {cluster["Endpoint"], cluster["ReaderEndpoint"], instance["Endpoint"]["Address"]} <= found.hosts
    single = describe_database(rds, "rds-instance", "wandb-1")
    assert single.writer == instance["Endpoint"]["Address"] and single.hosts == {single.writer}


def test_a_database_that_does_not_exist_names_the_parameters_to_set(cloud: LocalCloud) -> None:
    with pytest.raises(ConfigurationError, match="DatabaseIdentifier"):
        describe_database(boto3.client("rds"), "aurora-cluster", "nope")
    with pytest.raises(ConfigurationError, match="DATABASE_IDENTIFIER"):
        database_from_env(lambda: boto3.client("rds"), {})()


def test_an_rds_managed_master_goes_to_the_writer_and_only_for_this_database(wandb: SimulatedWandb) -> None:
    serve_locally("wandb", 4406)
    master = _access().connection(_master(), Refused)
    assert (master.secret.host, master.secret.port, master.secret.ssl) == (WRITER_HOST, 4406, True)
    for host in (WRITER_HOST, READER_HOST, "LOCALHOST"):
        assert master.for_server_of(_app(host=host, port=4406), "application secret", Refused).host == WRITER_HOST
    for host, port in (("127.0.0.2", 4406), (WRITER_HOST, 3306), ("wandb.cluster-x.us-east-1.rds.amazonaws.com", 4406)):
        with pytest.raises(Refused, match="not an endpoint of the database wandb"):
            master.for_server_of(_app(host=host, port=port), "application secret", Refused)


def test_a_master_with_its_own_server_goes_there_and_only_another_secret_can_add_tls(cloud: LocalCloud) -> None:
    master = _access().connection(_master(host="db.internal", port=3307, ssl=False), Refused)
    assert (master.secret.host, master.secret.port, master.secret.ssl) == ("db.internal", 3307, False)
    assert master.for_server_of(_app(host="db.internal", port=3307, ssl=True), "app", Refused).ssl is True
    assert master.for_server_of(_app(host="db.internal", port=3307, ssl=False), "app", Refused).ssl is False
    default = _access().connection(_master(host="db.internal"), Refused)
    assert default.for_server_of(_app(host="db.internal", ssl=False), "app", Refused).ssl is True
    with pytest.raises(Refused, match=r"the master secret's server db\.internal:3307"):
        master.for_server_of(_app(host="elsewhere", port=3307), "application secret", Refused)


@pytest.mark.parametrize("secret", ["{", json.dumps({"username": "wandb"}), json.dumps({"password": "x"})])
def test_a_master_secret_without_credentials_names_what_is_missing(cloud: LocalCloud, secret: str) -> None:
    arn = boto3.client("secretsmanager").create_secret(Name=f"bad-{uuid.uuid4().hex[:6]}", SecretString=secret)["ARN"]
    with pytest.raises(Refused, match="master secret") as refused:
        _access().load(arn, Refused)
    assert "MasterPassw0rd" not in str(refused.value)


def test_a_server_asking_for_the_password_in_clear_text_never_gets_it() -> None:
    """The impersonating server switches authentication to mysql_clear_password: plain PyMySQL obeys (the
    control), the Connector refuses before sending anything."""
    control, rogue = RogueMysqlServer().start(), RogueMysqlServer().start()
    try:
        with pytest.raises(pymysql.MySQLError):
            pymysql.connect(host=control.host, port=control.port, user="u", password="Control0nly", ssl_disabled=True)
        secret = DbSecret(engine="mysql", host=rogue.host, port=rogue.port, username="u", password="M4sterSecret")
        with (
            pytest.raises(pymysql.MySQLError, match="clear-text"),
            Connector().connect(secret.model_copy(update={"ssl": False})),
        ):
            pass
        with pytest.raises(pymysql.MySQLError, match="SSL is required"), Connector().connect(secret):
            pass
        time.sleep(0.2)  # let the server record what it got
        assert control.got("Control0nly"), "the impersonating server does not work as a test"
        assert rogue.connections == 2 and not rogue.got("M4sterSecret")
    finally:
        control.stop()
        rogue.stop()
