"""The credential cut-over's settings, from the function environment."""

import re
from pathlib import Path
from typing import Literal

from pydantic import field_validator
from pydantic_core import PydanticCustomError

from wandb_ops.access.mysql.connector import DEFAULT_CA_BUNDLE
from wandb_ops.core.settings import StackSettings, from_stack

PRIVILEGES = frozenset(
    {
        "ALL PRIVILEGES", "ALTER", "ALTER ROUTINE", "CREATE", "CREATE ROUTINE", "CREATE TEMPORARY TABLES",
        "CREATE VIEW", "DELETE", "DROP", "EVENT", "EXECUTE", "INDEX", "INSERT", "LOCK TABLES", "REFERENCES",
        "SELECT", "SHOW VIEW", "TRIGGER", "UPDATE",
    }
)  # fmt: skip
# Rotation appends 10 characters (wandb_ops.workflows.secret_rotation.rotation) within MySQL's 32.
APP_USERNAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,22}")


class CutoverSettings(StackSettings):
    namespace: str = from_stack("WANDB_NAMESPACE", "Namespace")
    database_secret_setting: str | None = from_stack("WANDB_DATABASE_SECRET_ARN", "DatabaseSecretArn", None)
    master_secret_arn: str | None = from_stack("MASTER_SECRET_ARN", "MasterSecretArn", None)
    rotation_function_arn: str = from_stack("ROTATION_FUNCTION_ARN")
    rotation_days: int = from_stack("ROTATION_DAYS", ge=1, le=1000)
    eks_cluster_name_setting: str | None = from_stack("WANDB_EKS_CLUSTER_NAME", "EksClusterName", None)
    target: Literal["operator", "legacy-secret"] = from_stack("WANDB_TARGET", "WandbTarget", "operator")
    kubernetes_namespace: str = from_stack("WANDB_K8S_NAMESPACE", "WandbKubernetesNamespace", "default")
    resource_name: str = from_stack("WANDB_RESOURCE_NAME", "WandbResourceName", "wandb")
    deployments: str = from_stack("WANDB_DEPLOYMENTS", "WandbDeployments", "app.kubernetes.io/instance=wandb")
    wandb_url: str | None = from_stack("WANDB_URL", "WandbUrl", None)
    api_key_secret_arn: str | None = from_stack("WANDB_API_KEY_SECRET_ARN", "WandbApiKeySecretArn", None)
    app_username: str = from_stack("APP_DB_USERNAME", "ApplicationUserName", "wandb_app")
    app_privileges: str = from_stack("APP_DB_PRIVILEGES", "ApplicationUserPrivileges", "ALL PRIVILEGES")
    password_length: int = from_stack("ROTATION_PASSWORD_LENGTH", "RotationPasswordLength", ge=16, le=128)
    mac_key_arn: str = from_stack("CREDENTIAL_MAC_KEY_ARN")
    ca_bundle: Path = from_stack("DB_CA_BUNDLE", default=DEFAULT_CA_BUNDLE)
    poll_base_seconds: int = from_stack("POLL_BASE_SECONDS", ge=0, le=3600)
    poll_max_seconds: int = from_stack("POLL_MAX_SECONDS", ge=0, le=3600)
    poll_max_attempts: int = from_stack("POLL_MAX_ATTEMPTS", ge=1, le=1000)
    drain_max_attempts: int = from_stack("DRAIN_MAX_ATTEMPTS", ge=1, le=1000)

    @property
    def database_secret(self) -> str:
        """The application secret: the one the stack is given, or the one onboarding creates."""
        return self.database_secret_setting or f"wandb-ops/{self.namespace}/mysql-app"

    @property
    def eks_cluster_name(self) -> str:
        """terraform-aws-wandb names the EKS cluster after the namespace unless told otherwise."""
        return self.eks_cluster_name_setting or self.namespace

    @field_validator("wandb_url")
    @classmethod
    def _without_trailing_slash(cls, url: str | None) -> str | None:
        return (url or "").rstrip("/") or None

    @field_validator("app_username")
    @classmethod
    def _a_name_rotation_can_extend(cls, username: str) -> str:
        if not APP_USERNAME.fullmatch(username):
            raise PydanticCustomError(
                "app_username",
                "must be a letter then up to 22 letters, digits or underscores: rotation appends 10 characters "
                "within MySQL's 32",
            )
        return username

    @field_validator("app_privileges")
    @classmethod
    def _known_privileges(cls, privileges: str) -> str:
        privileges = privileges.upper()
        unknown = [p for p in (part.strip() for part in privileges.split(",")) if p not in PRIVILEGES]
        if unknown:
            raise PydanticCustomError(
                "privileges",
                "unknown privileges {unknown}: use a comma list of {known}",
                {"unknown": str(unknown), "known": str(sorted(PRIVILEGES))},
            )
        return privileges
