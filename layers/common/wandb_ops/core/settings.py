"""The deployment the stack looks after, read from the function environment.

The template sets these variables from its parameters; read them once, in the
handler, and pass the result down (domain code never reads the environment).
"""

import os
from collections.abc import Mapping
from dataclasses import dataclass

from wandb_ops.core.errors import ConfigurationError


@dataclass(frozen=True)
class DeploymentSettings:
    namespace: str
    bucket_name: str
    kms_key_arn: str
    eks_cluster_name: str
    wandb_url: str | None
    database_secret_arn: str | None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "DeploymentSettings":
        env = os.environ if environ is None else environ

        def required(name: str, parameter: str) -> str:
            value = env.get(name, "").strip()
            if not value:
                raise ConfigurationError(
                    f"environment variable {name} is empty: set the stack parameter {parameter} and redeploy"
                )
            return value

        def optional(name: str) -> str | None:
            return env.get(name, "").strip() or None

        namespace = required("WANDB_NAMESPACE", "Namespace")
        return cls(
            namespace=namespace,
            bucket_name=required("WANDB_BUCKET_NAME", "FileStorageBucketName"),
            kms_key_arn=required("WANDB_KMS_KEY_ARN", "KmsKeyArn"),
            eks_cluster_name=optional("WANDB_EKS_CLUSTER_NAME") or namespace,
            wandb_url=optional("WANDB_URL"),
            database_secret_arn=optional("WANDB_DATABASE_SECRET_ARN"),
        )


UNBOUNDED = 2**63


def whole_number(env: Mapping[str, str], name: str, parameter: str, low: int = 0, high: int = UNBOUNDED) -> int:
    """A whole-number setting within bounds, or a ConfigurationError naming the stack parameter."""
    value = env.get(name, "").strip()
    if not value.isdigit() or not low <= int(value) <= high:
        bounds = f"{low}-{high}" if high < UNBOUNDED else f"{low} or more"
        raise ConfigurationError(f"{name}={value!r}: set the stack parameter {parameter} to a whole number, {bounds}")
    return int(value)
