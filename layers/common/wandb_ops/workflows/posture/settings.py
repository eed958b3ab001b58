"""The posture report's own settings, from the function environment: where the other workflows'
runs and DR copies are, and where reports go. (The deployment is core's DeploymentSettings; the
KMS rotation policy the keys are judged by is the KMS rotation workflow's RotationSettings.)"""

from wandb_ops.access.rds_snapshots import Kind
from wandb_ops.core.settings import StackSettings, from_stack


class RecordSettings(StackSettings):
    """Where the other workflows leave their runs and the DR copies of the database.

    Unlike other settings, a missing one does not stop the report: the item that needs it
    fails and says what is wrong, and every other item is still assessed."""

    database_kind: Kind = from_stack("POSTURE_DATABASE_KIND", "DatabaseKind", "aurora-cluster")
    database: str = from_stack("POSTURE_DATABASE", default="")
    region: str = from_stack("AWS_REGION", default="us-east-1")  # the database's; Lambda sets it
    dr_region: str | None = from_stack("POSTURE_DR_REGION", "SnapshotDrRegion", None)
    s3_sync_machine: str = from_stack("POSTURE_S3_SYNC_STATE_MACHINE", default="")
    credential_rotation_machine: str = from_stack("POSTURE_CREDENTIAL_ROTATION_STATE_MACHINE", default="")
    tfstate_machine: str = from_stack("POSTURE_TFSTATE_STATE_MACHINE", default="")


class PostureSettings(RecordSettings):
    """The records, and the bucket the reports are stored in (the stack's work bucket)."""

    report_bucket: str = from_stack("POSTURE_REPORT_BUCKET")
