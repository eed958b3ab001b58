"""Posture report: how the W&B deployment stands against the W&B recommendations
and against what terraform-aws-wandb leaves off by default. Read-only.

Each item has a status (ok / warn / fail), the evidence it was judged on, and the fix.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from wandb_ops.access.encryption import bucket_default_encryption
from wandb_ops.core.aws import error_code
from wandb_ops.core.errors import ConfigurationError
from wandb_ops.core.settings import DeploymentSettings
from wandb_ops.workflows.kms_rotation.discovery import Clients as RotationClients
from wandb_ops.workflows.kms_rotation.settings import RotationSettings
from wandb_ops.workflows.posture.items import PostureItem, Status, by_age, days, guarded, hours, in_hours, item
from wandb_ops.workflows.posture.key_items import key_items
from wandb_ops.workflows.posture.records import RecordSources, record_items
from wandb_ops.workflows.posture.settings import RecordSettings
from wandb_ops.workflows.posture.tasks import PostureReport, PostureSummary

# A daily snapshot schedule leaves at most ~24 h between snapshots; allow slack for a late run.
SNAPSHOT_FRESH = timedelta(hours=26)
SNAPSHOT_STALE = timedelta(days=3)
MIN_BACKUP_RETENTION_DAYS = 7
REPORT_PREFIX = "posture/"
ROTATION_MAX_AGE = timedelta(days=90)


@dataclass(frozen=True)
class PostureSources:
    """The AWS clients the assessment reads from (boto3 clients, or anything shaped like them)."""

    rds: Any
    s3: Any
    secretsmanager: Any
    rotation: RotationClients  # the KMS rotation policy's clients, per region
    records: RecordSources | None = None  # the other workflows' runs and DR copies; None: not assessed


def assess(
    settings: DeploymentSettings,
    rotation: RotationSettings | ConfigurationError,
    sources: PostureSources,
    now: datetime,
    records: RecordSettings | None = None,
) -> PostureReport:
    """``rotation``: the KMS rotation policy, or why its parameters are unusable (one item fails;
    the rest of the report still runs). ``records``: where the other workflows' runs are."""
    items: list[PostureItem] = []
    items += _cluster_items(settings.namespace, sources.rds, now)
    items += _bucket_items(settings.bucket_name, sources.s3)
    items += key_items(rotation, sources.rotation, now)
    items += _secret_items(settings.database_secret_arn, sources.secretsmanager, now)
    if records is not None and sources.records is not None:
        items += record_items(records, sources.records, now)
    summary = PostureSummary(
        ok=sum(entry.status is Status.OK for entry in items),
        warn=sum(entry.status is Status.WARN for entry in items),
        fail=sum(entry.status is Status.FAIL for entry in items),
    )
    return PostureReport(
        generated_at=now,
        namespace=settings.namespace,
        summary=summary,
        items=items,
        text=render_text(settings.namespace, summary, items),
    )


def store(s3: Any, bucket: str, report: PostureReport) -> str:
    """The report as JSON at posture/<time>.json and posture/latest.json in the stack's work
    bucket (its lifecycle keeps a month of them). Returns the dated object's S3 URI."""
    body = report.model_dump_json(indent=2).encode()
    key = f"{REPORT_PREFIX}{report.generated_at:%Y-%m-%dT%H%M%SZ}.json"
    for name in (key, f"{REPORT_PREFIX}latest.json"):
        s3.put_object(Bucket=bucket, Key=name, Body=body, ContentType="application/json")
    return f"s3://{bucket}/{key}"


def render_text(namespace: str, summary: PostureSummary, items: Iterable[PostureItem]) -> str:
    """The short human-readable report sent in the notification: problems first, with their fix."""
    ordered = sorted(items, key=lambda entry: [Status.FAIL, Status.WARN, Status.OK].index(entry.status))
    lines = [f"W&B deployment '{namespace}': {summary.fail} fail, {summary.warn} warn, {summary.ok} ok", ""]
    for entry in ordered:
        lines.append(f"[{entry.status.upper()}] {entry.id}: {entry.evidence}")
        if entry.status is not Status.OK:
            lines.append(f"    fix: {entry.fix}")
    return "\n".join(lines)


# ---------------------------------------------------------------- Aurora


def _cluster_items(namespace: str, rds: Any, now: datetime) -> list[PostureItem]:
    def check() -> list[PostureItem]:
        try:
            cluster = rds.describe_db_clusters(DBClusterIdentifier=namespace)["DBClusters"][0]
        except ClientError as exc:
            if error_code(exc) == "DBClusterNotFoundFault":
                return [
                    item(
                        "aurora.cluster",
                        Status.FAIL,
                        f"no Aurora cluster '{namespace}' in this region",
                        "set the stack parameter Namespace to terraform-aws-wandb's namespace "
                        "(it is the cluster identifier) and deploy the stack in the cluster's region",
                    )
                ]
            raise
        return [
            item("aurora.cluster", Status.OK, f"cluster '{namespace}' is {cluster.get('Status', 'unknown')}"),
            _deletion_protection(namespace, cluster),
            _backup_retention(namespace, cluster),
            _managed_master_password(cluster),
            _storage_encryption(cluster),
            *guarded(
                "aurora.newest_snapshot",
                "rds:DescribeDBClusterSnapshots",
                namespace,
                lambda: [_newest_snapshot(namespace, rds, now)],
            ),
        ]

    return guarded("aurora.cluster", "rds:DescribeDBClusters", namespace, check)


def _deletion_protection(namespace: str, cluster: dict[str, Any]) -> PostureItem:
    if cluster.get("DeletionProtection"):
        return item("aurora.deletion_protection", Status.OK, "deletion protection is on")
    return item(
        "aurora.deletion_protection",
        Status.FAIL,
        "deletion protection is off, and terraform-aws-wandb deletes the cluster without a final snapshot",
        f"set deletion_protection = true in terraform, or run: aws rds modify-db-cluster "
        f"--db-cluster-identifier {namespace} --deletion-protection --apply-immediately",
    )


def _backup_retention(namespace: str, cluster: dict[str, Any]) -> PostureItem:
    days = int(cluster.get("BackupRetentionPeriod", 0))
    if days >= MIN_BACKUP_RETENTION_DAYS:
        return item("aurora.backup_retention", Status.OK, f"automated backups kept {days} days")
    return item(
        "aurora.backup_retention",
        Status.WARN,
        f"automated backups kept only {days} days",
        f"keep at least {MIN_BACKUP_RETENTION_DAYS} days (terraform-aws-wandb sets 14): "
        f"aws rds modify-db-cluster --db-cluster-identifier {namespace} --backup-retention-period 14",
    )


def _managed_master_password(cluster: dict[str, Any]) -> PostureItem:
    secret = cluster.get("MasterUserSecret")
    if secret:
        return item(
            "aurora.master_password_managed",
            Status.OK,
            f"the master password is managed by RDS in Secrets Manager ({secret.get('SecretArn', 'secret')})",
        )
    return item(
        "aurora.master_password_managed",
        Status.WARN,
        "the master password is set by terraform and stored in its state, not managed by RDS",
        "let RDS manage and rotate the master password (manage_master_user_password = true), "
        "and move W&B onto a dedicated application user (onboarding, docs/rotation.md)",
    )


def _storage_encryption(cluster: dict[str, Any]) -> PostureItem:
    if cluster.get("StorageEncrypted"):
        return item(
            "aurora.storage_encrypted", Status.OK, f"storage encrypted with {cluster.get('KmsKeyId', 'a KMS key')}"
        )
    return item(
        "aurora.storage_encrypted",
        Status.FAIL,
        "the cluster storage is not encrypted",
        "an unencrypted cluster cannot be encrypted in place: copy a snapshot with a KMS key, "
        "restore it and cut W&B over (docs/runbooks.md)",
    )


def _newest_snapshot(namespace: str, rds: Any, now: datetime) -> PostureItem:
    newest: datetime | None = None
    paginator = rds.get_paginator("describe_db_cluster_snapshots")
    for page in paginator.paginate(DBClusterIdentifier=namespace, SnapshotType="manual"):
        for snapshot in page["DBClusterSnapshots"]:
            created = snapshot.get("SnapshotCreateTime")
            if created is not None and (newest is None or created > newest):
                newest = created
    if newest is None:
        return item(
            "aurora.newest_snapshot",
            Status.WARN,
            "no manual snapshot of the cluster: automated backups go when the cluster is deleted",
            "run the database snapshot workflow on its daily schedule",
        )
    age = now - newest
    evidence = f"newest manual snapshot is {hours(age)} old"
    status = by_age(age, SNAPSHOT_FRESH, SNAPSHOT_STALE)
    return item(
        "aurora.newest_snapshot",
        status,
        evidence,
        "" if status is Status.OK else "check the database snapshot workflow's recent executions",
        NewestSnapshotAgeHours=in_hours(age),
    )


# ---------------------------------------------------------------- S3


def _bucket_items(bucket: str, s3: Any) -> list[PostureItem]:
    def check() -> list[PostureItem]:
        try:
            versioning = s3.get_bucket_versioning(Bucket=bucket).get("Status", "Disabled")
        except ClientError as exc:
            if error_code(exc) == "NoSuchBucket":
                return [
                    item(
                        "s3.bucket",
                        Status.FAIL,
                        f"bucket '{bucket}' does not exist",
                        "set the stack parameter FileStorageBucketName to terraform output bucket_name",
                    )
                ]
            raise
        items = [item("s3.bucket", Status.OK, f"bucket '{bucket}' exists")]
        if versioning == "Enabled":
            items.append(item("s3.versioning", Status.OK, "versioning is enabled"))
        else:
            items.append(
                item(
                    "s3.versioning",
                    Status.WARN,
                    f"versioning is {versioning.lower()} (terraform-aws-wandb default): an overwritten "
                    "or deleted object cannot be recovered",
                    f"enable versioning (aws s3api put-bucket-versioning --bucket {bucket} "
                    "--versioning-configuration Status=Enabled) and keep the S3 replica sync running",
                )
            )
        items += guarded(
            "s3.encryption",
            "s3:GetEncryptionConfiguration",
            bucket,
            lambda: [_bucket_encryption(bucket, s3)],
        )
        return items

    return guarded("s3.bucket", "s3:GetBucketVersioning", bucket, check)


def _bucket_encryption(bucket: str, s3: Any) -> PostureItem:
    encryption = bucket_default_encryption(s3, bucket)
    if encryption is not None:
        return item("s3.encryption", Status.OK, f"default encryption SSE-KMS with {encryption[1]}")
    return item(
        "s3.encryption",
        Status.WARN,
        "default encryption is SSE-S3, not the W&B KMS key",
        "set the bucket's default encryption to SSE-KMS with the W&B key (terraform-aws-wandb does this by default)",
    )


# ---------------------------------------------------------------- credentials


def _secret_items(secret_arn: str | None, secretsmanager: Any, now: datetime) -> list[PostureItem]:
    if secret_arn is None:
        return [
            item(
                "credentials.application_user",
                Status.WARN,
                "no application database secret configured: W&B connects as the Aurora master user",
                "run onboarding to give W&B a dedicated, rotatable user, "
                "then set the stack parameter DatabaseSecretArn",
            )
        ]

    def check() -> list[PostureItem]:
        secret = secretsmanager.describe_secret(SecretId=secret_arn)
        if not secret.get("RotationEnabled"):
            return [
                item(
                    "credentials.rotation",
                    Status.WARN,
                    "rotation is not enabled on the application database secret",
                    "enable the credential rotation workflow's schedule (docs/rotation.md)",
                )
            ]
        last = secret.get("LastRotatedDate")
        if last is None:
            return [
                item(
                    "credentials.rotation",
                    Status.WARN,
                    "rotation is enabled but has never run",
                    "start the credential rotation workflow once by hand and watch it in the console",
                )
            ]
        age = now - last
        fresh = age <= ROTATION_MAX_AGE
        return [
            item(
                "credentials.rotation",
                Status.OK if fresh else Status.WARN,
                f"last rotated {days(age)} ago",
                "" if fresh else "check the credential rotation workflow's recent executions",
                CredentialAgeDays=age.days,
            )
        ]

    return guarded("credentials.rotation", "secretsmanager:DescribeSecret", secret_arn, check)
