"""The MySQL-compatible engines of the rig: real servers, TLS verified against the rig's CA."""

import pymysql
import pytest

from tests.rig.engines import Engine


def test_engine_is_the_expected_family(mysql_engine: Engine) -> None:
    if mysql_engine.name == "mariadb":
        assert "MariaDB" in mysql_engine.version and mysql_engine.version.startswith("10.11")
    else:
        assert mysql_engine.version.split(".")[0] == "9"


def test_tls_connection_verifies_the_server_certificate(mysql_engine: Engine) -> None:
    with (
        mysql_engine.connect(ssl_ca=str(mysql_engine.ca_path), ssl_verify_cert=True, ssl_verify_identity=True) as conn,
        conn.cursor() as cursor,
    ):
        cursor.execute("SHOW SESSION STATUS LIKE 'Ssl_version'")
        _, tls_version = cursor.fetchone()
    assert tls_version.startswith("TLSv1.")


def test_a_user_requiring_x509_logs_in_only_with_a_verified_tls_session(mysql_engine: Engine) -> None:
    with mysql_engine.connect(autocommit=True) as root, root.cursor() as cursor:
        cursor.execute("DROP USER IF EXISTS 'rig_tls'@'%'")
        cursor.execute("CREATE USER 'rig_tls'@'%' IDENTIFIED BY 'RigTls0penSesame' REQUIRE SSL")
    with pytest.raises(pymysql.err.OperationalError) as refused:
        mysql_engine.connect(user="rig_tls", password="RigTls0penSesame", ssl_disabled=True).close()
    assert refused.value.args[0] in (1045, 2061, 3159)
    with (
        mysql_engine.connect(
            user="rig_tls", password="RigTls0penSesame", ssl_ca=str(mysql_engine.ca_path), ssl_verify_cert=True
        ) as conn,
        conn.cursor() as cursor,
    ):
        cursor.execute("SELECT CURRENT_USER()")
        assert cursor.fetchone()[0] == "rig_tls@%"
