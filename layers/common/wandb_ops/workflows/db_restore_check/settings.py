"""The restore check's settings, from the function environment."""

from pathlib import Path

from wandb_ops.access.mysql.connector import DEFAULT_CA_BUNDLE
from wandb_ops.access.rds_snapshots import Kind, SnapshotApi
from wandb_ops.core.settings import StackSettings, from_stack


class RestoreCheckSettings(StackSettings):
    kind: Kind = from_stack("SNAPSHOT_KIND", "DatabaseKind")
    source: str = from_stack("SNAPSHOT_SOURCE", "Namespace / DatabaseIdentifier")
    region: str = from_stack("AWS_REGION", default="us-east-1")  # Lambda sets it
    # 8 hex digits of this stack's id: in the name and tags of everything the check creates.
    stack_id: str = from_stack("STACK_SHORT_ID", pattern=r"^[0-9a-f]{8}$")
    instance_class: str = from_stack("RESTORE_CHECK_INSTANCE_CLASS", "RestoreCheckInstanceClass")
    query: str = from_stack("RESTORE_CHECK_QUERY", "RestoreCheckQuery")
    # Needed by the query step only: the other steps (cleanup above all) work without it.
    master_secret_arn: str | None = from_stack("MASTER_SECRET_ARN", "MasterSecretArn", None)
    ca_bundle: Path = from_stack("DB_CA_BUNDLE", default=DEFAULT_CA_BUNDLE)
    poll_base_seconds: int = from_stack("POLL_BASE_SECONDS", default=30, ge=0)
    poll_max_seconds: int = from_stack("POLL_MAX_SECONDS", default=300, ge=0)
    poll_max_attempts: int = from_stack("POLL_MAX_ATTEMPTS", default=60, ge=0)

    @property
    def api(self) -> SnapshotApi:
        return SnapshotApi(self.kind)

    @property
    def prefix(self) -> str:
        return f"wandb-ops-check-{self.stack_id}-"
