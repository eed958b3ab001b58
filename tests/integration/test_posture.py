"""The posture assessment against the simulated W&B deployment in the emulator."""

from datetime import UTC, datetime

import boto3

from tests.rig.local_cloud import LocalCloud
from tests.rig.wandb_deployment import SimulatedWandb, seed_wandb
from wandb_ops.core.settings import DeploymentSettings
from wandb_ops.workflows.kms_rotation.discovery import Clients as RotationClients
from wandb_ops.workflows.kms_rotation.settings import RotationSettings
from wandb_ops.workflows.posture.assess import PostureSources, assess
from wandb_ops.workflows.posture.items import Status
from wandb_ops.workflows.posture.tasks import PostureReport


def _assess(wandb: SimulatedWandb, secret_arn: str | None = None) -> PostureReport:
    environment = {
        "WANDB_NAMESPACE": wandb.namespace,
        "WANDB_BUCKET_NAME": wandb.bucket_name,
        "WANDB_KMS_KEY_ARN": wandb.kms_key_arn,
        "WANDB_DATABASE_SECRET_ARN": secret_arn or "",
        "KMS_ROTATION_MODE": "report",
        "KMS_ROTATION_PERIOD_DAYS": "365",
        "KMS_ON_DEMAND_EVERY_DAYS": "0",
        "KMS_ON_DEMAND_LIMIT": "10",
        "KMS_ON_DEMAND_RESERVE": "2",
    }
    rds, s3, kms = boto3.client("rds"), boto3.client("s3"), boto3.client("kms")
    sources = PostureSources(
        rds=rds,
        s3=s3,
        secretsmanager=boto3.client("secretsmanager"),
        rotation=RotationClients(kms=lambda _: kms, s3=lambda _: s3, rds=rds),
    )
    settings, rotation = DeploymentSettings.from_env(environment), RotationSettings.from_env(environment)
    return assess(settings, rotation, sources, datetime.now(UTC))


def _rotation_item(wandb: SimulatedWandb) -> str:
    return f"kms.rotation:{wandb.kms_key_arn.rsplit('/', 1)[1]}"


def _statuses(report: PostureReport) -> dict[str, Status]:
    return {item.id: item.status for item in report.items}


def test_terraform_defaults_are_reported(wandb: SimulatedWandb) -> None:
    statuses = _statuses(_assess(wandb))
    assert statuses == {
        "aurora.cluster": Status.OK,
        "aurora.deletion_protection": Status.OK,
        "aurora.backup_retention": Status.OK,
        "aurora.master_password_managed": Status.WARN,
        "aurora.storage_encrypted": Status.OK,
        "aurora.newest_snapshot": Status.WARN,
        "s3.bucket": Status.OK,
        "s3.versioning": Status.WARN,
        "s3.encryption": Status.OK,
        _rotation_item(wandb): Status.FAIL,
        "credentials.application_user": Status.WARN,
    }


def test_deletion_protection_off_fails_with_the_command_that_fixes_it(cloud: LocalCloud) -> None:
    wandb = seed_wandb(deletion_protection=False)
    [item] = [i for i in _assess(wandb).items if i.id == "aurora.deletion_protection"]
    assert item.status is Status.FAIL
    assert f"--db-cluster-identifier {wandb.namespace} --deletion-protection" in item.fix


def test_fixed_settings_turn_ok(wandb: SimulatedWandb) -> None:
    boto3.client("s3").put_bucket_versioning(Bucket=wandb.bucket_name, VersioningConfiguration={"Status": "Enabled"})
    boto3.client("kms").enable_key_rotation(KeyId=wandb.kms_key_arn)
    boto3.client("rds").create_db_cluster_snapshot(
        DBClusterIdentifier=wandb.namespace, DBClusterSnapshotIdentifier="wandb-ops-now"
    )
    statuses = _statuses(_assess(wandb))
    assert statuses["s3.versioning"] is Status.OK
    assert statuses[_rotation_item(wandb)] is Status.OK
    assert statuses["aurora.newest_snapshot"] is Status.OK


def test_missing_resources_fail_and_name_the_parameter(cloud: LocalCloud) -> None:
    wandb = seed_wandb()
    boto3.client("rds").modify_db_cluster(DBClusterIdentifier=wandb.namespace, DeletionProtection=False)
    boto3.client("rds").delete_db_instance(DBInstanceIdentifier=f"{wandb.namespace}-1")
    boto3.client("rds").delete_db_cluster(DBClusterIdentifier=wandb.namespace, SkipFinalSnapshot=True)
    report = _assess(wandb)
    [cluster] = [i for i in report.items if i.id == "aurora.cluster"]
    assert cluster.status is Status.FAIL and "Namespace" in cluster.fix
    assert "aurora.deletion_protection" not in _statuses(report)


def test_application_secret_rotation_status(wandb: SimulatedWandb) -> None:
    secret_arn = boto3.client("secretsmanager").create_secret(Name="wandb/app", SecretString="{}")["ARN"]
    [item] = [i for i in _assess(wandb, secret_arn).items if i.id == "credentials.rotation"]
    assert item.status is Status.WARN and "not enabled" in item.evidence
