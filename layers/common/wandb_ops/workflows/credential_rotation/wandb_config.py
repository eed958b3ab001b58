"""Where W&B reads its database credentials, and how to change them (docs/rotation.md):

- operator installs: the ``WeightsAndBiases`` custom resource, ``spec.values.global.mysql``
  (the operator re-renders its own Secret from it, so the resource is what must change);
- legacy installs: Secret ``wandb``, key ``MYSQL``, a ``mysql://user:password@host/db`` URL.

Only the user and the password ever change; host, port and database stay as W&B has them.
Passwords are held in memory only for the patch, never returned or logged.
"""

import base64
import re
from dataclasses import dataclass
from typing import Any, Literal, Protocol
from urllib.parse import SplitResult, urlsplit

from wandb_ops.access.kubernetes.api import KubernetesApi
from wandb_ops.core.errors import ConfigurationError, WandbOpsError

TargetKind = Literal["operator", "legacy-secret"]
# W&B puts user and password into a mysql:// URL unescaped: anything else could change its host.
URL_SAFE = re.compile(r"[A-Za-z0-9_.~-]{1,128}")


class UnsafeCredentialsError(WandbOpsError):
    """A user name or password that W&B's unescaped URL could misread; nothing was written."""


def refuse_unsafe(user: str, password: str) -> None:
    for field, value in (("user name", user), ("password", password)):
        if not URL_SAFE.fullmatch(value):
            raise UnsafeCredentialsError(
                f"the {field} holds characters W&B would misread in its database URL (allowed: letters, digits, "
                "_ . ~ -): W&B's settings were not changed"
            )


@dataclass(frozen=True)
class WandbDatabaseConfig:
    """What W&B connects with, without the password."""

    user: str
    host: str
    port: int
    database: str


class WandbTarget(Protocol):
    description: str

    def read(self) -> WandbDatabaseConfig: ...

    def apply(self, user: str, password: str) -> bool:
        """Point W&B at this user; False when it already was (nothing patched)."""
        ...

    def rendered(self, password: str) -> bool:
        """Whether a pod started now would get this password (the operator may not have caught up)."""
        ...

    def holds(self, password: str) -> bool:
        """Whether W&B's settings carry this password."""
        ...


def target_for(kind: TargetKind, api: KubernetesApi, namespace: str, name: str) -> WandbTarget:
    if kind == "operator":
        return OperatorTarget(api, namespace, name)
    return LegacySecretTarget(api, namespace, name)


class OperatorTarget:
    def __init__(self, api: KubernetesApi, namespace: str, name: str) -> None:
        self._api, self._namespace, self._name = api, namespace, name
        self.description = f"WeightsAndBiases {namespace}/{name} (spec.values.global.mysql)"

    def _mysql(self) -> dict[str, Any]:
        resource = self._api.get_custom_resource(self._namespace, self._name)
        mysql = resource.get("spec", {}).get("values", {}).get("global", {}).get("mysql")
        if not isinstance(mysql, dict) or not mysql.get("host"):
            raise ConfigurationError(
                f"{self.description} has no MySQL settings: is this an operator install? "
                "Set the stack parameter WandbTarget to legacy-secret for terraform-kubernetes-wandb installs"
            )
        for field in ("user", "password"):
            if not isinstance(mysql.get(field), str):
                raise ConfigurationError(
                    f"{self.description}: '{field}' is not a plain value (a valueFrom reference?). This workflow "
                    "writes the rotated user and password into the resource; feed terraform from the rotated "
                    "secret instead of a reference (docs/rotation.md, 'Keep terraform in step')"
                )
        return mysql

    def read(self) -> WandbDatabaseConfig:
        mysql = self._mysql()
        return WandbDatabaseConfig(
            user=mysql["user"],
            host=str(mysql["host"]),
            port=int(mysql.get("port") or 3306),
            database=str(mysql.get("database") or "wandb_local"),
        )

    def apply(self, user: str, password: str) -> bool:
        mysql = self._mysql()
        if mysql["user"] == user and mysql["password"] == password:
            return False
        refuse_unsafe(user, password)
        patch = {"spec": {"values": {"global": {"mysql": {"user": user, "password": password}}}}}
        self._api.patch_custom_resource(self._namespace, self._name, patch)
        return True

    def rendered(self, password: str) -> bool:
        # The operator re-renders <name>-mysql from the resource on its next reconcile; pods read that.
        secret = self._api.get_secret(self._namespace, f"{self._name}-mysql")
        encoded = secret.get("data", {}).get("MYSQL_PASSWORD", "")
        return bool(encoded) and base64.b64decode(encoded).decode() == password

    def holds(self, password: str) -> bool:
        return bool(self._mysql()["password"] == password)


class LegacySecretTarget:
    KEY = "MYSQL"

    def __init__(self, api: KubernetesApi, namespace: str, name: str) -> None:
        self._api, self._namespace, self._name = api, namespace, name
        self.description = f"Secret {namespace}/{name} (key {self.KEY})"

    def _url(self) -> SplitResult:
        secret = self._api.get_secret(self._namespace, self._name)
        encoded = secret.get("data", {}).get(self.KEY)
        if not encoded:
            raise ConfigurationError(
                f"{self.description} has no {self.KEY} key: is this a legacy install? "
                "Set the stack parameter WandbTarget to operator for operator installs"
            )
        url = urlsplit(base64.b64decode(encoded).decode())
        if url.scheme != "mysql" or not url.username or url.password is None or not url.hostname:
            raise ConfigurationError(
                f"{self.description} is not a mysql://user:password@host/database URL; fix the Secret by hand first"
            )
        return url

    def read(self) -> WandbDatabaseConfig:
        url = self._url()
        return WandbDatabaseConfig(
            user=url.username or "",
            host=url.hostname or "",
            port=url.port or 3306,
            database=url.path.lstrip("/") or "wandb_local",
        )

    def apply(self, user: str, password: str) -> bool:
        url = self._url()
        if url.username == user and url.password == password:
            return False
        refuse_unsafe(user, password)  # W&B reads the URL unescaped
        host = url.hostname if url.port is None else f"{url.hostname}:{url.port}"
        value = url._replace(netloc=f"{user}:{password}@{host}").geturl()
        self._api.patch_secret(
            self._namespace, self._name, {"data": {self.KEY: base64.b64encode(value.encode()).decode()}}
        )
        return True

    def rendered(self, password: str) -> bool:
        return True  # pods read this Secret itself

    def holds(self, password: str) -> bool:
        return self._url().password == password
