"""SHOW GRANTS / SHOW CREATE USER parsing: re-targeting keeps everything but the grantee and the password."""

import pytest

from wandb_ops.access.mysql.grammar import (
    GrammarError,
    TlsRequirement,
    cut_require,
    parse_create_user,
    parse_grant_line,
    quote_account,
)
from wandb_ops.workflows.secret_rotation.rotation import rotated_username

NEW = quote_account("app_r1234abcd", "10.0.%")


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            "GRANT SELECT (`name`, `to`), INSERT ON `wandb_local`.`runs` TO `app`@`10.0.%` WITH GRANT OPTION",
            "GRANT SELECT (`name`, `to`), INSERT ON `wandb_local`.`runs` TO 'app_r1234abcd'@'10.0.%' WITH GRANT OPTION",
        ),
        (
            "GRANT USAGE ON *.* TO `app`@`10.0.%` IDENTIFIED BY PASSWORD '*2470C0C06DEE42FD1618BB99005ADCA2EC9D1E19' "
            "REQUIRE SSL WITH MAX_QUERIES_PER_HOUR 10",
            "GRANT USAGE ON *.* TO 'app_r1234abcd'@'10.0.%' WITH MAX_QUERIES_PER_HOUR 10",
        ),
        (
            r"GRANT USAGE ON *.* TO `app`@`%` REQUIRE ISSUER '/CN=a\"b' SUBJECT '/CN=O''Brien\\x WITH GRANT' "
            "CIPHER 'AES256-SHA' WITH MAX_QUERIES_PER_HOUR 5",
            "GRANT USAGE ON *.* TO 'app_r1234abcd'@'10.0.%' WITH MAX_QUERIES_PER_HOUR 5",
        ),
        (
            "GRANT `r1`@`%`,`r2`@`%` TO `app`@`10.0.%` WITH ADMIN OPTION",
            "GRANT `r1`@`%`,`r2`@`%` TO 'app_r1234abcd'@'10.0.%' WITH ADMIN OPTION",
        ),
        ("GRANT `reader` TO `app`@`10.0.%`", "GRANT `reader` TO 'app_r1234abcd'@'10.0.%'"),
        ("REVOKE INSERT ON `mysql`.* FROM `app`@`10.0.%`", "REVOKE INSERT ON `mysql`.* FROM 'app_r1234abcd'@'10.0.%'"),
        ("SET DEFAULT ROLE `reader` FOR `app`@`10.0.%`", "SET DEFAULT ROLE `reader` FOR 'app_r1234abcd'@'10.0.%'"),
        (
            "GRANT PROXY ON ''@'' TO 'app'@'10.0.%' WITH GRANT OPTION",
            "GRANT PROXY ON ''@'' TO 'app_r1234abcd'@'10.0.%' WITH GRANT OPTION",
        ),
        (
            "GRANT EXECUTE ON PROCEDURE `db`.`to` TO `app`@`10.0.%`",
            "GRANT EXECUTE ON PROCEDURE `db`.`to` TO 'app_r1234abcd'@'10.0.%'",
        ),
        (
            "GRANT BACKUP_ADMIN,SYSTEM_VARIABLES_ADMIN ON *.* TO `app`@`10.0.%`",
            "GRANT BACKUP_ADMIN,SYSTEM_VARIABLES_ADMIN ON *.* TO 'app_r1234abcd'@'10.0.%'",
        ),
    ],
    ids=[
        "column-grant-option",
        "mariadb-usage",
        "mariadb-tls-is-reapplied-from-mysql-user",
        "mysql-roles",
        "mariadb-role",
        "partial-revoke",
        "default-role",
        "proxy",
        "routine-named-to",
        "dynamic",
    ],
)
def test_grant_lines_are_retargeted_exactly(line: str, expected: str) -> None:
    assert parse_grant_line(line).retarget(NEW) == expected


def test_normalised_lines_of_two_users_compare_equal() -> None:
    ours = parse_grant_line("GRANT USAGE ON *.* TO `app`@`%` IDENTIFIED BY PASSWORD '*AAA' REQUIRE X509")
    theirs = parse_grant_line("GRANT USAGE ON *.* TO `app_r1`@`%` IDENTIFIED BY PASSWORD '*BBB' REQUIRE X509")
    assert ours.normalized() == theirs.normalized() == "GRANT USAGE ON *.* TO ?"


@pytest.mark.parametrize(
    "line", ["", "SHOW GRANTS", "GRANT SELECT ON db.* TO `a`@`%`, `b`@`%` TO `c`@`%`", "GRANT SELECT ON `db.* TO x"]
)
def test_lines_that_are_not_understood_are_refused(line: str) -> None:
    with pytest.raises(GrammarError):
        parse_grant_line(line)


NO_TLS = TlsRequirement("")


def test_create_user_keeps_options_and_drops_the_password_and_tls() -> None:
    parsed = parse_create_user(
        "CREATE USER `app`@`%` IDENTIFIED WITH 'caching_sha2_password' AS 0x2441243030352453 "
        "DEFAULT ROLE `reader`@`%` REQUIRE SUBJECT '/CN=app  client' AND ISSUER '/CN=CA' "
        "WITH MAX_QUERIES_PER_HOUR 10 PASSWORD EXPIRE DEFAULT ACCOUNT UNLOCK PASSWORD REQUIRE CURRENT DEFAULT",
        TlsRequirement("SPECIFIED", issuer="/CN=CA", subject="/CN=app  client"),
    )
    assert parsed.plugin == "caching_sha2_password"
    assert parsed.default_roles == "`reader`@`%`"
    assert parsed.options == (
        "WITH MAX_QUERIES_PER_HOUR 10 PASSWORD EXPIRE DEFAULT ACCOUNT UNLOCK PASSWORD REQUIRE CURRENT DEFAULT"
    )
    assert "0x24" not in str(parsed)


# A subject holding a quote, a backslash and keywords. MySQL 9 prints it raw, MariaDB escaped.
SUBJECT = r"/CN=O'Brien\x AND ISSUER 'x' WITH MAX_QUERIES_PER_HOUR 1"
MYSQL_PRINTED = (
    "CREATE USER `app`@`%` IDENTIFIED WITH 'caching_sha2_password' AS 0x24 "
    f"REQUIRE SUBJECT '{SUBJECT}' ISSUER '/CN=a\"b' WITH MAX_QUERIES_PER_HOUR 5 PASSWORD EXPIRE DEFAULT"
)
MARIADB_PRINTED = (
    "CREATE USER `app`@`%` IDENTIFIED BY PASSWORD '*AB' "
    r"""REQUIRE ISSUER '/CN=a"b' SUBJECT '/CN=O''Brien\\x AND ISSUER ''x'' WITH MAX_QUERIES_PER_HOUR 1' """
    "WITH MAX_QUERIES_PER_HOUR 5"
)


@pytest.mark.parametrize("statement", [MYSQL_PRINTED, MARIADB_PRINTED], ids=["mysql-raw", "mariadb-escaped"])
def test_tls_values_with_quotes_and_keywords_are_cut_by_their_stored_value(statement: str) -> None:
    tls = TlsRequirement("SPECIFIED", issuer='/CN=a"b', subject=SUBJECT)
    parsed = parse_create_user(statement, tls)
    assert parsed.options.startswith("WITH MAX_QUERIES_PER_HOUR 5")
    assert "Brien" not in parsed.options and "ISSUER" not in parsed.options
    assert tls.clause() == ("REQUIRE SUBJECT %s AND ISSUER %s", [SUBJECT, '/CN=a"b'])


def test_a_tls_clause_that_cannot_be_located_exactly_once_is_refused() -> None:
    tls = TlsRequirement("SPECIFIED", subject="/CN=x")
    with pytest.raises(GrammarError, match="2 times"):
        cut_require("CREATE USER `a`@`%` COMMENT ' REQUIRE SUBJECT '/CN=x' ' REQUIRE SUBJECT '/CN=x'", tls)
    with pytest.raises(GrammarError, match="0 times"):
        cut_require("CREATE USER `a`@`%` REQUIRE SUBJECT '/CN=y'", tls)
    with pytest.raises(GrammarError, match="does not match"):
        parse_create_user("CREATE USER `a`@`%` REQUIRE SSL", NO_TLS)
    with pytest.raises(GrammarError, match="unknown TLS requirement"):
        TlsRequirement("SPECIFIED").clause()


@pytest.mark.parametrize(
    ("tls", "clause"),
    [
        (NO_TLS, ("REQUIRE NONE", [])),
        (TlsRequirement("ANY"), ("REQUIRE SSL", [])),
        (TlsRequirement("X509"), ("REQUIRE X509", [])),
        (TlsRequirement("SPECIFIED", cipher="AES256-SHA"), ("REQUIRE CIPHER %s", ["AES256-SHA"])),
    ],
)
def test_tls_requirements_are_reapplied_from_their_values(tls: TlsRequirement, clause: tuple[str, list[str]]) -> None:
    assert tls.clause() == clause


@pytest.mark.parametrize(
    ("statement", "plugin", "options"),
    [
        ("CREATE USER `a`@`%` IDENTIFIED BY PASSWORD '*ABC' REQUIRE SSL", "mysql_native_password", ""),
        (
            "CREATE USER `a`@`%` IDENTIFIED VIA ed25519 USING PASSWORD('x') PASSWORD EXPIRE NEVER",
            "ed25519",
            "PASSWORD EXPIRE NEVER",
        ),
        ("CREATE USER `a`@`localhost`", "mysql_native_password", ""),
    ],
)
def test_mariadb_create_user_forms(statement: str, plugin: str, options: str) -> None:
    parsed = parse_create_user(statement, TlsRequirement("ANY" if "REQUIRE SSL" in statement else ""))
    assert (parsed.plugin, parsed.options) == (plugin, options)


def test_rotated_names_are_stable_short_and_derived_from_the_base() -> None:
    first = rotated_username("wandb_application_user_long_name", "token-1")
    assert first == rotated_username("wandb_application_user_long_name", "token-1")
    assert len(first) == 32 and first.startswith("wandb_application_user")
    second = rotated_username(first, "token-2")
    assert second != first and second.startswith("wandb_application_user_") and len(second) == 32
    assert rotated_username("app", "t").startswith("app_r")
