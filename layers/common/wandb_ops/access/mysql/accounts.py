"""MySQL / MariaDB accounts, as the master user: making one user an exact clone of another,
convergently (re-run after a crash at any point, it applies only what is still missing), proven by
comparing what the server stores for both accounts in its `mysql.*` tables; retiring an account;
naming a database in a grant. Connections come from ``wandb_ops.access.mysql.connector``."""

import json
from collections import Counter
from typing import Any

import pymysql

from wandb_ops.access.mysql.grammar import (
    CreateUser,
    GrantLine,
    TlsRequirement,
    parse_create_user,
    parse_grant_line,
    quote_account,
)

PASSWORD_REUSE_REFUSED = 3638  # MySQL: the new password equals one in the password history
_GRANT_ORDER = {"grant": 0, "revoke": 1, "default_role": 2}


def database_wildcards_apply(connection: "pymysql.connections.Connection[Any]") -> bool:
    """Whether ``_`` and ``%`` in a database-level grant are wildcards: always on MariaDB, on MySQL
    unless ``partial_revokes`` is on (then they are literal, and escaping them would name another
    database)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT VERSION()")
        if "mariadb" in str(cursor.fetchone()[0]).lower():
            return True
        cursor.execute("SELECT @@GLOBAL.partial_revokes")
        return not int(cursor.fetchone()[0])


def database_grant_name(database: str, wildcards: bool) -> str:
    """The quoted name for ``GRANT ... ON <name>.*`` that matches exactly ``database`` and no other."""
    if wildcards:
        database = database.replace("\\", "\\\\").replace("_", "\\_").replace("%", "\\%")
    return "`" + database.replace("`", "``") + "`"


# The mysql.* tables that hold an account's privileges and settings, with the columns naming the
# account; a table the server does not have is skipped (global_grants, role_edges and
# default_roles are MySQL 8+, roles_mapping is MariaDB's).
_ACCOUNT_TABLES = (
    ("user", "User", "Host"),
    ("db", "User", "Host"),
    ("tables_priv", "User", "Host"),
    ("columns_priv", "User", "Host"),
    ("procs_priv", "User", "Host"),
    ("proxies_priv", "User", "Host"),
    ("global_grants", "USER", "HOST"),
    ("role_edges", "TO_USER", "TO_HOST"),
    ("default_roles", "USER", "HOST"),
    ("roles_mapping", "User", "Host"),
)
# What differs between an account and its clone by nature: who granted, when, and the password.
_NOT_COMPARED = frozenset({"Grantor", "Timestamp", "Password", "authentication_string", "password_last_changed"})
# Password material MySQL keeps in User_attributes: the retained second password, other factors' hashes.
_ATTRIBUTE_SECRETS = frozenset({"additional_password", "authentication_string"})

Row = tuple[tuple[str, Any], ...]


def _comparable(column: str, value: Any) -> Any:
    """A column value in a form that compares by meaning: MySQL's User_attributes JSON without the
    retained password and with its lists (partial revokes) in a fixed order."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if column == "User_attributes" and value:
        return json.dumps(_sorted_lists(json.loads(value)), sort_keys=True)
    return value


def _sorted_lists(value: Any) -> Any:
    """``value`` with every list in a fixed order and no password material, at any depth."""
    if isinstance(value, dict):
        return {key: _sorted_lists(item) for key, item in value.items() if key not in _ATTRIBUTE_SECRETS}
    if isinstance(value, list):
        return sorted((_sorted_lists(item) for item in value), key=lambda item: json.dumps(item, sort_keys=True))
    return value


def _describe_row(table: str, row: Row) -> str:
    return f"mysql.{table}(" + ", ".join(f"{column}={value!r}" for column, value in row) + ")"


class AccountCloner:
    """Runs as a user allowed to create users and grant (the master user)."""

    def __init__(self, connection: "pymysql.connections.Connection[Any]") -> None:
        self._connection = connection
        self.mariadb = "mariadb" in self._scalar("SELECT VERSION()").lower()
        # Values are quoted by the driver with backslash escapes: make the session read them so.
        self._execute("SET SESSION sql_mode = REPLACE(@@SESSION.sql_mode, 'NO_BACKSLASH_ESCAPES', '')")
        if not self.mariadb:
            # Password hashes are binary in MySQL 8+: print them as hex so the text decodes.
            self._execute("SET SESSION print_identified_with_as_hex = ON")
        self._tables: set[str] | None = None

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

    def tls(self, user: str, host: str) -> TlsRequirement:
        rows = self._execute(
            "SELECT ssl_type, ssl_cipher, x509_issuer, x509_subject FROM mysql.user WHERE User = %s AND Host = %s",
            (user, host),
        )
        if not rows:
            raise LookupError(f"account '{user}'@'{host}' does not exist")
        try:
            values = [value.decode() if isinstance(value, bytes) else str(value or "") for value in rows[0]]
        except UnicodeDecodeError:
            raise ValueError(f"the TLS requirement of '{user}'@'{host}' is not text: it is not copied") from None
        return TlsRequirement(*values)

    def create_user_options(self, user: str, host: str) -> CreateUser:
        return parse_create_user(self._scalar("SHOW CREATE USER %s@%s", (user, host)), self.tls(user, host))

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
        tls = self.tls(source, host)
        if self.tls(target, host) != tls:
            clause, values = tls.clause()
            self._execute(f"ALTER USER %s@%s {clause}", (target, host, *values))
            applied.append(f"ALTER USER {account} {clause}")
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

    def account_rows(self, user: str, host: str) -> dict[str, Counter[Row]]:
        """What the server stores for an account, per mysql.* table, without the account's own name
        and what differs by nature: privileges (global, dynamic, database, table, column, routine,
        proxy, partial revokes), roles and default roles, TLS requirement, limits, password and lock
        options. Rows are compared as multisets, so the order grants were made in does not matter."""
        if self._tables is None:
            rows = self._execute("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'mysql'")
            self._tables = {str(row[0]).lower() for row in rows}
        found: dict[str, Counter[Row]] = {}
        for table, user_column, host_column in _ACCOUNT_TABLES:
            if table not in self._tables:
                continue
            with self._connection.cursor() as cursor:  # table and column names are the constants above
                cursor.execute(
                    f"SELECT * FROM mysql.{table} WHERE {user_column} = %s AND {host_column} = %s",  # noqa: S608
                    (user, host),
                )
                columns = [description[0] for description in cursor.description]
                skipped = {user_column, host_column} | _NOT_COMPARED
                found[table] = Counter(
                    tuple(
                        (column, _comparable(column, value))
                        for column, value in zip(columns, row, strict=True)
                        if column not in skipped
                    )
                    for row in cursor.fetchall()
                )
        return found

    def differences(self, source: str, target: str) -> list[str]:
        """How ``target`` differs from ``source`` in host entries and in every privilege and account
        setting the server stores ([] = a clone)."""
        problems: list[str] = []
        source_hosts, target_hosts = self.hosts(source), self.hosts(target)
        if source_hosts != target_hosts:
            return [f"hosts differ: {source_hosts} vs {target_hosts}"]
        for host in source_hosts:
            expected, actual = self.account_rows(source, host), self.account_rows(target, host)
            for table in expected:
                missing, extra = expected[table] - actual[table], actual[table] - expected[table]
                problems += [f"@{host} missing {_describe_row(table, row)}" for row in missing]
                problems += [f"@{host} extra {_describe_row(table, row)}" for row in extra]
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
