"""Connecting to MySQL / MariaDB as a secret's user: the secret's shape (``DbSecret``), reading it
from Secrets Manager, and connections with TLS verified and no clear-text authentication."""

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

from wandb_ops.core.aws import error_code
from wandb_ops.core.errors import ConfigurationError
from wandb_ops.core.validation import describe_validation_error

# The Amazon RDS CAs, shipped in the layer beside the package's modules (wandb_ops/certs/).
DEFAULT_CA_BUNDLE = Path(__file__).resolve().parents[2] / "certs" / "rds-ca-bundle.pem"


class DbSecret(BaseModel):
    """The secret JSON shape of AWS's MySQL rotation functions (docs/rotation-function.md). Extra keys are kept."""

    model_config = ConfigDict(extra="allow", frozen=True)

    engine: str = Field(pattern=r"^(mysql|mariadb|aurora-mysql)$")
    host: str = Field(min_length=1)
    port: int = Field(default=3306, ge=1, le=65535)
    # No spaces (MySQL ignores trailing ones when matching names) and nothing a URL would misread.
    username: str = Field(pattern=r"^[A-Za-z0-9_.~-]{1,80}$")
    password: str = Field(min_length=1, repr=False)
    dbname: str | None = None
    masterarn: str | None = None
    ssl: bool = True
    # Client certificate and key (PEM), for users that REQUIRE X509 / SUBJECT / ISSUER.
    ssl_cert: str | None = Field(default=None, repr=False)
    ssl_key: str | None = Field(default=None, repr=False)


def load_db_secret(
    secretsmanager: Any,
    secret_id: str,
    what: str,
    error: type[Exception],
    **version: str,
) -> DbSecret:
    """A secret version as a DbSecret; ``error`` (the caller's error class) names the secret and what is wrong,
    never a value."""
    return load_secret(secretsmanager, secret_id, what, error, DbSecret, **version)[0]


def load_secret[Shape: BaseModel](
    secretsmanager: Any, secret_id: str, what: str, error: type[Exception], shape: type[Shape], **version: str
) -> tuple[Shape, str]:
    """A secret version's JSON as ``shape``, and the secret's ARN; errors name the secret and the field,
    never a value."""
    try:
        found = secretsmanager.get_secret_value(SecretId=secret_id, **version)
    except ClientError as exc:
        raise error(f"cannot read the {what} secret {secret_id}: {error_code(exc)}") from None
    try:
        return shape.model_validate(json.loads(found["SecretString"])), str(found["ARN"])
    except json.JSONDecodeError:
        raise error(f"the {what} secret {secret_id} is not JSON") from None
    except ValidationError as exc:
        raise error(f"the {what} secret {secret_id} has an {describe_validation_error(exc)}") from None


class RefusedAuthPlugin:
    """PyMySQL's handler for an authentication plugin it must never use: the server asked for the
    password in clear text (``mysql_clear_password``) or for a dialog answered with it, which a
    server impersonating the database asks for to collect it. Refusing ends the connection before
    anything is sent."""

    def __init__(self, connection: Any) -> None:
        raise pymysql.err.OperationalError(
            2059, "the server asked for a clear-text authentication method: refused, the password was not sent"
        )


# Plugin names as the server sends them; PyMySQL looks a name up as bytes, then as text.
REFUSED_AUTH_PLUGINS = {name: RefusedAuthPlugin for name in ("mysql_clear_password", "dialog")}


@dataclass(frozen=True)
class Connector:
    """Opens connections; TLS is verified against ``ca_bundle`` (the Amazon RDS CAs by default) and
    clear-text authentication is never offered."""

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
                "auth_plugin_map": REFUSED_AUTH_PLUGINS,
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


def logged_in_account(connection: "pymysql.connections.Connection[Any]") -> tuple[str, str]:
    """The account the server authenticated this connection as: (user, host pattern)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT CURRENT_USER()")
        user, _, host = str(cursor.fetchone()[0]).rpartition("@")
    return user, host


def logs_in_as_itself(connector: Connector, secret: DbSecret) -> bool:
    """Whether the secret's password (and client certificate) logs in, as the user it names: the proof
    that whoever holds the secret holds that account."""
    try:
        with connector.connect(secret) as connection:
            return logged_in_account(connection)[0] == secret.username
    except pymysql.MySQLError:
        return False
