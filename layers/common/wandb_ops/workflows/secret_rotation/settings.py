"""The Secrets Manager rotation function's settings, from the function environment.

The database it may send the master password to (DATABASE_KIND / DATABASE_IDENTIFIER) is read by
``wandb_ops.access.mysql.master.database_from_env``, only when a master connection needs it."""

from pathlib import Path

from wandb_ops.access.mysql.connector import DEFAULT_CA_BUNDLE
from wandb_ops.access.password_proof import MAX_LENGTH, MIN_LENGTH
from wandb_ops.core.settings import StackSettings, from_stack


class SecretRotationSettings(StackSettings):
    password_length: int = from_stack(
        "ROTATION_PASSWORD_LENGTH", "RotationPasswordLength", 32, ge=MIN_LENGTH, le=MAX_LENGTH
    )
    mac_key_arn: str = from_stack("CREDENTIAL_MAC_KEY_ARN")  # the key that makes and proves passwords
    ca_bundle: Path = from_stack("DB_CA_BUNDLE", default=DEFAULT_CA_BUNDLE)
