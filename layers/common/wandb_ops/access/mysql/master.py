"""Where the master credentials may go, and how.

The master secret is the one trusted secret: whoever may write it already holds the master
password. Everything else that names a database server (the application secret, W&B's own
settings on Kubernetes) may have been written by someone who must not receive that password.
So a master connection goes only:

- to the master secret's own ``host``/``port`` when it names one, or
- to the writer endpoint of this stack's database, read from RDS (``DatabaseKind`` /
  ``DatabaseIdentifier``), when it does not (an RDS-managed master secret holds only
  ``username`` and ``password``);

always over TLS with certificate and host-name verification, unless the **master** secret
itself says ``"ssl": false`` (another secret's ``ssl`` can only make it stricter), and never
with a clear-text authentication method (``Connector``). A server named by another secret is
accepted only when it is that same database; otherwise the work is refused before any
connection is made.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Literal

from botocore.exceptions import ClientError
from pydantic import BaseModel, ConfigDict, Field

from wandb_ops.access.mysql.connector import DbSecret, load_secret
from wandb_ops.core.aws import error_code
from wandb_ops.core.errors import ConfigurationError
from wandb_ops.core.settings import StackSettings, from_stack

DatabaseKind = Literal["aurora-cluster", "rds-instance"]
_NOT_FOUND = ("DBClusterNotFoundFault", "DBInstanceNotFound", "DBInstanceNotFoundFault")


class MasterSecret(BaseModel):
    """The master secret as stored: credentials, and optionally the server they belong to."""

    model_config = ConfigDict(extra="allow", frozen=True)

    username: str = Field(min_length=1, max_length=80)
    password: str = Field(min_length=1, repr=False)
    engine: str | None = Field(default=None, pattern=r"^(mysql|mariadb|aurora-mysql)$")
    host: str | None = Field(default=None, min_length=1)
    port: int | None = Field(default=None, ge=1, le=65535)
    ssl: bool | None = None
    ssl_cert: str | None = Field(default=None, repr=False)
    ssl_key: str | None = Field(default=None, repr=False)
    arn: str = ""  # where it was read from (not part of the secret's JSON)


@dataclass(frozen=True)
class DatabaseEndpoints:
    """This stack's database as RDS describes it: where to write, and every name it answers to."""

    identifier: str
    writer: str
    port: int
    hosts: frozenset[str]  # writer, reader, custom and instance endpoints, lower case
    database_name: str | None = None  # the database RDS created with it (terraform-aws-wandb: wandb_local)
    managed_master_secret: str | None = None  # the ARN of RDS's own master secret, when RDS manages it


def describe_database(rds: Any, kind: DatabaseKind, identifier: str) -> DatabaseEndpoints:
    """The endpoints of the cluster (writer, reader, custom, each member instance) or the instance."""
    try:
        if kind == "aurora-cluster":
            cluster = rds.describe_db_clusters(DBClusterIdentifier=identifier)["DBClusters"][0]
            hosts = [cluster.get("Endpoint"), cluster.get("ReaderEndpoint"), *cluster.get("CustomEndpoints", [])]
            for member in cluster.get("DBClusterMembers", []):
                instance = rds.describe_db_instances(DBInstanceIdentifier=member["DBInstanceIdentifier"])
                hosts.append(instance["DBInstances"][0].get("Endpoint", {}).get("Address"))
            writer, port, described = cluster.get("Endpoint"), cluster.get("Port"), cluster
            name = cluster.get("DatabaseName")
        else:
            instance = rds.describe_db_instances(DBInstanceIdentifier=identifier)["DBInstances"][0]
            writer, port = instance.get("Endpoint", {}).get("Address"), instance.get("Endpoint", {}).get("Port")
            hosts, described, name = [writer], instance, instance.get("DBName")
    except ClientError as exc:
        if error_code(exc) in _NOT_FOUND:
            what = "Aurora cluster" if kind == "aurora-cluster" else "RDS instance"
            raise ConfigurationError(
                f"no {what} '{identifier}' in this region: set the stack parameters Namespace / DatabaseIdentifier "
                "and DatabaseKind to the database terraform-aws-wandb created"
            ) from None
        raise
    if not writer or not port:
        raise ConfigurationError(f"RDS reports no endpoint for '{identifier}' yet: is it still being created?")
    return DatabaseEndpoints(
        identifier,
        str(writer),
        int(port),
        frozenset(str(h).lower() for h in hosts if h),
        name,
        described.get("MasterUserSecret", {}).get("SecretArn"),
    )


@dataclass(frozen=True)
class MasterConnection:
    """How to connect as the master (``secret``), and which servers are that same database."""

    secret: DbSecret
    hosts: frozenset[str]
    where: str  # how the server was chosen, for error messages

    def is_this_database(self, host: str, port: int) -> bool:
        return host.strip().lower() in self.hosts and port == self.secret.port

    def for_server_of(self, other: DbSecret, what: str, error: type[Exception]) -> DbSecret:
        """The master connection for work on ``other``'s server: refused unless it is this database;
        TLS on if either secret asks for it."""
        if not self.is_this_database(other.host, other.port):
            raise error(
                f"the {what} names {other.host}:{other.port}, which is not {self.where}: the master password is "
                f"only ever sent to that database. Point the {what} at it (docs/rotation-function.md, 'Whose "
                "password goes where'); nothing was done"
            )
        return self.secret.model_copy(update={"ssl": self.secret.ssl or other.ssl})


@dataclass
class MasterAccess:
    """Reads the master secret and decides where it may be used (module docstring)."""

    secretsmanager: Any
    database: Callable[[], DatabaseEndpoints] | None = None  # this stack's database, read from RDS when needed

    @cached_property
    def _database(self) -> DatabaseEndpoints:
        if self.database is None:
            raise ConfigurationError("this function does not know the stack's database: redeploy the stack")
        return self.database()

    def database_name(self) -> str | None:
        return self._database.database_name

    def load(self, secret_id: str, error: type[Exception]) -> MasterSecret:
        master, arn = load_secret(
            self.secretsmanager, secret_id, "master", error, MasterSecret, VersionStage="AWSCURRENT"
        )
        return master.model_copy(update={"arn": arn})

    def connection(self, secret_id: str, error: type[Exception], engine: str = "mysql") -> MasterConnection:
        master = self.load(secret_id, error)
        if master.host:
            port = master.port or 3306
            hosts, where = frozenset({master.host.lower()}), f"the master secret's server {master.host}:{port}"
            host = master.host
        else:
            database = self._database
            if database.managed_master_secret and database.managed_master_secret != master.arn:
                raise error(
                    f"the master secret {secret_id} has no host, and RDS manages another master secret for "
                    f"{database.identifier} ({database.managed_master_secret}): its password is not this database's. "
                    "Point MasterSecretArn (and the application secret's 'masterarn') at RDS's secret"
                )
            host, port, hosts = database.writer, database.port, database.hosts
            where = f"an endpoint of the database {database.identifier} (from RDS)"
        return MasterConnection(_on_server(master, host, port, engine), hosts, where)

    def at_restored_copy(self, secret_id: str, host: str, port: int, error: type[Exception]) -> DbSecret:
        """The master of a temporary copy this stack restored from its database's snapshot (the copy keeps
        the snapshot's master user), at the copy's endpoint as RDS describes it."""
        return _on_server(self.load(secret_id, error), host, port, "mysql")


def _on_server(master: MasterSecret, host: str, port: int, engine: str) -> DbSecret:
    """The master's credentials for ``host``:``port``, with its own TLS settings (TLS unless it says otherwise)."""
    return DbSecret(
        engine=master.engine or engine,
        host=host,
        port=port,
        username=master.username,
        password=master.password,
        ssl=True if master.ssl is None else master.ssl,
        ssl_cert=master.ssl_cert,
        ssl_key=master.ssl_key,
    )


class DatabaseSettings(StackSettings):
    """The stack's database: the template sets both from DatabaseKind and DatabaseIdentifier
    (which defaults to the Namespace)."""

    kind: DatabaseKind = from_stack("DATABASE_KIND", "DatabaseKind")
    identifier: str = from_stack("DATABASE_IDENTIFIER", "DatabaseIdentifier")


def database_from_env(rds: Callable[[], Any], env: Mapping[str, str]) -> Callable[[], DatabaseEndpoints]:
    """The stack's database, described from RDS only when a master connection needs it. The
    variables are read now (in the handler's thread) and checked then, so a step that never
    needs the master never needs them."""
    variables = {name: env.get(name, "") for name in ("DATABASE_KIND", "DATABASE_IDENTIFIER")}

    def describe() -> DatabaseEndpoints:
        settings = DatabaseSettings.from_env(variables)
        return describe_database(rds(), settings.kind, settings.identifier)

    return describe
