"""The terraform state backup's settings, from the function environment."""

from wandb_ops.access.terraform_state.sources import SourceConfig
from wandb_ops.core.settings import StackSettings, from_stack


class TfStateSettings(StackSettings):
    backup_bucket: str = from_stack("TFSTATE_BACKUP_BUCKET")
    kms_key_arn: str = from_stack("TFSTATE_KMS_KEY_ARN")
    intake_prefix: str = from_stack("TFSTATE_INTAKE_PREFIX", default="intake/")
    backend_bucket: str | None = from_stack("TFSTATE_BACKEND_BUCKET", "TfStateBucketName", None)
    backend_key: str = from_stack("TFSTATE_BACKEND_KEY", "TfStateKey", "terraform.tfstate")
    workspace_key_prefix: str = from_stack("TFSTATE_WORKSPACE_KEY_PREFIX", "TfStateWorkspaceKeyPrefix", "env:")

    def source_config(self) -> SourceConfig:
        return SourceConfig(**self.model_dump())
