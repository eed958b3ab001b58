"""MySQL / MariaDB account access: connecting as a secret's user (TLS verified), and
making one user an exact clone of another, convergently (re-run after a crash at any
point, it applies only what is still missing)."""

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pymysql
from botocore.exceptions import ClientError
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from wandb_ops.aws import error_code
from wandb_ops.errors import ConfigurationError
from wandb_ops.mysql_grammar import CreateUser, GrantLine, parse_create_user, parse_grant_line, quote_account
from wandb_ops.validation import describe_validation_error

DEFAULT_CA_BUNDLE = Path(__file__).parent / "certs" / "rds-ca-bundle.pem"
PASSWORD_REUSE_REFUSED = 3638  # MySQL: the new password equals one in the password history
_GRANT_ORDER = {"grant": 0, "revoke": 1, "default_role": 2}


class DbSecret(BaseModel):
    """The secret JSON shape of AWS's MySQL rotation functions (DESIGN.md). Extra keys are kept."""

    model_config = ConfigDict(extra="allow", frozen=True)

    engine: str = Field(pattern=r"^(mysql|mariadb|aurora-mysql)$")
    host: str = Field(min_length=1)
    port: int = Field(default=3306, ge=1, le=65535)
    username: str = Field(min_length=1, max_length=80)
    password: str = Field(min_length=1, repr=False)
    dbname: str | None = None
    masterarn: str | None = None
    ssl: bool = True
    # Client certificate and key (PEM), for users that REQUIRE X509 / SUBJECT / ISSUER.
    ssl_cert: str | None = Field(default=None, repr=False)
    ssl_key: str | None = Field(default=None, repr=False)

    def server(self) -> dict[str, Any]:
        """Where this user logs in: the defaults for a secret holding only credentials (an RDS-managed
        master secret has just username and password)."""
        return {"engine": self.engine, "host": self.host, "port": self.port, "ssl": self.ssl}


def load_db_secret(
    secretsmanager: Any,
    secret_id: str,
    what: str,
    error: type[Exception],
    defaults: dict[str, Any] | None = None,
    **version: str,
) -> DbSecret:
    """A secret version as a DbSecret; ``error`` (the caller's error class) names the secret and what is wrong,
    never a value."""
    try:
        raw = secretsmanager.get_secret_value(SecretId=secret_id, **version)["SecretString"]
    except ClientError as exc:
        raise error(f"cannot read the {what} secret {secret_id}: {error_code(exc)}") from None
    try:
        return DbSecret.model_validate({**(defaults or {}), **json.loads(raw)})
    except json.JSONDecodeError:
        raise error(f"the {what} secret {secret_id} is not JSON") from None
    except ValidationError as exc:
        raise error(f"the {what} secret {secret_id} has an {describe_validation_error(exc)}") from None


@dataclass(frozen=True)
class Connector:
    """Opens connections; TLS is verified against ``ca_bundle`` (the Amazon RDS CAs by default)."""

    ca_bundle: Path = DEFAULT_CA_BUNDLE
    connect_timeout: int = 5

    @contextmanager
    def connect(self, secret: DbSecret, **kwargs: Any) -> Iterator["pymysql.connections.Connection[Any]"]:
        with _client_certificate(secret) as client_files:
            options: dict[str, Any] = {
                "host": secret.host,
                "port": secret.port,
                "user": secret.username,
                "password": secret.password,
                "connect_timeout": self.connect_timeout,
                "autocommit": True,
                **kwargs,
            }
            if secret.ssl:
                if not self.ca_bundle.is_file():
                    raise ConfigurationError(
                        f"CA bundle {self.ca_bundle} does not exist: "
                        "unset DB_CA_BUNDLE to use the RDS bundle in the layer"
                    )
                options |= {"ssl_ca": str(self.ca_bundle), "ssl_verify_cert": True, "ssl_verify_identity": True}
                if client_files:
                    options |= {"ssl_cert": client_files[0], "ssl_key": client_files[1]}
            else:
                options["ssl_disabled"] = True
            connection = pymysql.connect(**options)
            try:
                yield connection
            finally:
                connection.close()


@contextmanager
def _client_certificate(secret: DbSecret) -> Iterator[tuple[str, str] | None]:
    """PyMySQL reads client certificates from files: private ones, removed right after connecting."""
    if not (secret.ssl_cert and secret.ssl_key):
        yield None
        return
    with tempfile.TemporaryDirectory(prefix="wandb-ops-tls-") as directory:
        cert, key = Path(directory, "cert.pem"), Path(directory, "key.pem")
        for path, content in ((cert, secret.ssl_cert), (key, secret.ssl_key)):
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "w") as handle:
                handle.write(content)
        yield str(cert), str(key)


class AccountCloner:
    """Runs as a user allowed to create users and grant (the master user)."""

    def __init__(self, connection: "pymysql.connections.Connection[Any]") -> None:
        self._connection = connection
        self.mariadb = "mariadb" in self._scalar("SELECT VERSION()").lower()
        if not self.mariadb:
            # Password hashes are binary in MySQL 8+: print them as hex so the text decodes.
            self._execute("SET SESSION print_identified_with_as_hex = ON")

    def _execute(self, statement: str, args: Any = None) -> list[tuple[Any, ...]]:
        with self._connection.cursor() as cursor:
            cursor.execute(statement, args)
            return list(cursor.fetchall())

    def _scalar(self, statement: str, args: Any = None) -> str:
        rows = self._execute(statement, args)
        return str(rows[0][0]) if rows else ""

    def hosts(self, user: str) -> list[str]:
        rows = self._execute("SELECT Host FROM mysql.user WHERE User = %s ORDER BY Host", (user,))
        return [str(row[0]) for row in rows]

    def grants(self, user: str, host: str) -> list[GrantLine]:
        rows = self._execute("SHOW GRANTS FOR %s@%s", (user, host))
        return sorted((parse_grant_line(str(row[0])) for row in rows), key=lambda line: _GRANT_ORDER[line.kind])

    def create_user_options(self, user: str, host: str) -> CreateUser:
        return parse_create_user(self._scalar("SHOW CREATE USER %s@%s", (user, host)))

    def clone(self, source: str, target: str, password: str) -> list[str]:
        """Make ``target`` an exact clone of ``source`` (every host entry), with ``password``.

        Returns what was applied, without the password."""
        hosts = self.hosts(source)
        if not hosts:
            raise LookupError(f"user '{source}' does not exist")
        applied: list[str] = []
        for host in hosts:
            applied += self._clone_account(source, target, host, password)
        return applied

    def _clone_account(self, source: str, target: str, host: str, password: str) -> list[str]:
        applied: list[str] = []
        account = quote_account(target, host)
        options = self.create_user_options(source, host)
        identified = self._identified_clause(options.plugin)
        if host not in self.hosts(target):
            self._execute(f"CREATE USER %s@%s {identified}", (target, host, password))
            applied.append(f"CREATE USER {account} ({options.plugin})")
        else:
            try:
                self._execute(f"ALTER USER %s@%s {identified}", (target, host, password))
            except pymysql.MySQLError as exc:
                if exc.args[0] != PASSWORD_REUSE_REFUSED:  # already this password: nothing to do
                    raise
        if options.options:
            self._execute(f"ALTER USER {account} {options.options}")
            applied.append(f"ALTER USER {account} {options.options}")
        present = {line.normalized() for line in self.grants(target, host)}
        for line in self.grants(source, host):
            if line.normalized() not in present:
                statement = line.retarget(account)
                self._execute(statement)
                applied.append(statement)
        if options.default_roles and not self.mariadb:
            current = self.create_user_options(target, host).default_roles
            if current != options.default_roles:
                self._execute(f"ALTER USER {account} DEFAULT ROLE {options.default_roles}")
                applied.append(f"ALTER USER {account} DEFAULT ROLE {options.default_roles}")
        return applied

    def _identified_clause(self, plugin: str) -> str:
        if not plugin.replace("_", "").isalnum():
            raise ValueError(f"unexpected authentication plugin name {plugin!r}")
        if self.mariadb:
            if plugin == "mysql_native_password":
                return "IDENTIFIED BY %s"
            if plugin == "ed25519":
                return "IDENTIFIED VIA ed25519 USING PASSWORD(%s)"
            raise ValueError(f"cannot give a password to a MariaDB user authenticated by {plugin}")
        return f"IDENTIFIED WITH {plugin} BY %s"

    def differences(self, source: str, target: str) -> list[str]:
        """How ``target`` differs from ``source`` in hosts, grants and account options ([] = a clone)."""
        problems: list[str] = []
        source_hosts, target_hosts = self.hosts(source), self.hosts(target)
        if source_hosts != target_hosts:
            return [f"hosts differ: {source_hosts} vs {target_hosts}"]
        for host in source_hosts:
            expected = sorted(line.normalized() for line in self.grants(source, host))
            actual = sorted(line.normalized() for line in self.grants(target, host))
            problems += [f"@{host} missing: {line}" for line in expected if line not in actual]
            problems += [f"@{host} extra: {line}" for line in actual if line not in expected]
            source_options = self.create_user_options(source, host)
            target_options = self.create_user_options(target, host)
            if source_options != target_options:
                problems.append(f"@{host} account options differ: {source_options} vs {target_options}")
        return problems


class AccountRetirer:
    """Retires an account W&B no longer uses, as the master user: counts its sessions, finds what
    it is the DEFINER of (those objects stop working without it), then drops or locks it."""

    def __init__(self, connection: "pymysql.connections.Connection[Any]") -> None:
        self._connection = connection

    def _rows(self, statement: str, args: Any = None) -> list[tuple[Any, ...]]:
        with self._connection.cursor() as cursor:
            cursor.execute(statement, args)
            return list(cursor.fetchall())

    def hosts(self, user: str) -> list[str]:
        return [str(row[0]) for row in self._rows("SELECT Host FROM mysql.user WHERE User = %s ORDER BY Host", (user,))]

    def sessions(self, user: str) -> int:
        rows = self._rows("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = %s", (user,))
        return int(rows[0][0])

    def definer_of(self, user: str) -> list[str]:
        """Views, routines, triggers and events whose DEFINER is one of the user's accounts."""
        definers = [f"{user}@{host}" for host in self.hosts(user)]
        if not definers:
            return []
        marks = ", ".join(["%s"] * len(definers))
        statement = " UNION ALL ".join(  # names are constants below; the definers are parameters
            f"SELECT CONCAT('{kind} ', {schema}, '.', {name}) "  # noqa: S608 - constant identifiers only
            f"FROM information_schema.{table} WHERE DEFINER IN ({marks})"
            for kind, schema, name, table in (
                ("view", "TABLE_SCHEMA", "TABLE_NAME", "VIEWS"),
                ("routine", "ROUTINE_SCHEMA", "ROUTINE_NAME", "ROUTINES"),
                ("trigger", "TRIGGER_SCHEMA", "TRIGGER_NAME", "TRIGGERS"),
                ("event", "EVENT_SCHEMA", "EVENT_NAME", "EVENTS"),
            )
        )
        return sorted(str(row[0]) for row in self._rows(statement, definers * 4))

    def lock(self, user: str) -> None:
        for host in self.hosts(user):
            self._rows("ALTER USER %s@%s ACCOUNT LOCK", (user, host))

    def drop(self, user: str) -> None:
        for host in self.hosts(user):
            self._rows("DROP USER IF EXISTS %s@%s", (user, host))
