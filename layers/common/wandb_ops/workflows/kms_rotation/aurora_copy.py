"""The first half of moving the W&B database to a new KMS key: a copy of the newest
available snapshot of the Aurora cluster, encrypted with the new key.

Aurora cannot change the key of a running cluster; the only path is snapshot copy with the
new key, restore, and cut W&B over (docs/kms-rotation.md has the runbook). This module does
the copy and waits for it; restoring and cutting over stay a human decision.
"""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError

from wandb_ops.access.rds_snapshots import (
    IN_PROGRESS,
    MANAGED_BY,
    MAX_IDENTIFIER,
    SnapshotApi,
    readable_part,
    source_digest,
)
from wandb_ops.core.aws import error_code
from wandb_ops.core.errors import WandbOpsError
from wandb_ops.core.polling import backoff
from wandb_ops.workflows.kms_rotation.tasks import CopyCheck, CopyPlan, SnapshotCopyRequest

PURPOSE_TAG = ("wandb-ops:purpose", "reencrypt")
COPY_OF_TAG = "wandb-ops:copy-of"  # the cluster copied: IAM lets a stack tag only copies of its own cluster
POLL_BASE_SECONDS, POLL_MAX_SECONDS, POLL_MAX_ATTEMPTS = 60, 900, 120  # about 29 hours in all


class SnapshotCopyRefusedError(WandbOpsError):
    """The re-encrypted snapshot copy cannot start as asked."""


@dataclass(frozen=True)
class CopyTarget:
    database_kind: str
    cluster: str
    region: str


def _copyable(snapshot: dict[str, Any], cluster: str, region: str) -> bool:
    """The cluster's automated snapshots and the snapshot workflow's, by their tags (the role may
    copy only those)."""
    if str(snapshot.get("DBClusterSnapshotIdentifier", "")).startswith(f"rds:{cluster}-"):
        return True
    return SnapshotApi("aurora-cluster").parse(snapshot).is_ours(cluster, region)


def _newest_available(rds: Any, cluster: str, region: str, kms_key: str) -> dict[str, Any]:
    """The newest available snapshot of the cluster (automated, or made by the snapshot workflow)
    not yet under ``kms_key``, so a re-run finds the snapshot it copied, not its own copy."""
    newest: dict[str, Any] | None = None
    for page in rds.get_paginator("describe_db_cluster_snapshots").paginate(DBClusterIdentifier=cluster):
        for snapshot in page["DBClusterSnapshots"]:
            if (
                not _copyable(snapshot, cluster, region)
                or str(snapshot.get("Status", "")).lower() != "available"
                or snapshot.get("SnapshotCreateTime") is None
                or snapshot.get("KmsKeyId") == kms_key
            ):
                continue
            if newest is None or snapshot["SnapshotCreateTime"] > newest["SnapshotCreateTime"]:
                newest = snapshot
    if newest is None:
        raise SnapshotCopyRefusedError(
            f"cluster {cluster} has no available automated or wandb-ops snapshot: run the database snapshot "
            "workflow first, then re-run"
        )
    return newest


def target_identifier(cluster: str, region: str, created: datetime, key_id: str) -> str:
    """A stable name per (cluster, snapshot, key), so a re-run finds its own copy instead of making
    another, and another cluster's copy never has it (the digest stays where the name is cut):
    wandb-ops-reenc-<snapshot time>-<key id>-<digest of the cluster>-<cluster, cut to fit>."""
    head = readable_part(f"wandb-ops-reenc-{created:%Y%m%d%H%M}-{key_id[:8]}-{source_digest(cluster, region)}", 63)
    return "-".join(part for part in (head, readable_part(cluster, MAX_IDENTIFIER - len(head) - 1)) if part)


def plan_copy(target: CopyTarget, rds: Any, kms: Any, request: SnapshotCopyRequest) -> CopyPlan:
    """Check the new key and find the snapshot; unless a dry run, start the copy (idempotent)."""
    if target.database_kind != "aurora-cluster":
        raise SnapshotCopyRefusedError(
            "the re-encrypted snapshot copy is for the Aurora cluster (DatabaseKind aurora-cluster); "
            "for an RDS instance follow the runbook in docs/kms-rotation.md by hand"
        )
    try:
        key = kms.describe_key(KeyId=request.kms_key)["KeyMetadata"]
    except ClientError as exc:
        if error_code(exc) == "NotFoundException":
            raise SnapshotCopyRefusedError(
                f"field 'kms_key': no key {request.kms_key} in {target.region}; create it first"
            ) from None
        raise
    if key.get("KeyState") != "Enabled":
        raise SnapshotCopyRefusedError(f"field 'kms_key': key {key['Arn']} is {key.get('KeyState')}; enable it first")
    cluster = rds.describe_db_clusters(DBClusterIdentifier=target.cluster)["DBClusters"][0]
    if cluster.get("KmsKeyId") == key["Arn"]:
        raise SnapshotCopyRefusedError(
            f"field 'kms_key': the cluster is already encrypted with {key['Arn']}; name the new key"
        )
    source = _newest_available(rds, target.cluster, target.region, key["Arn"])
    identifier = target_identifier(target.cluster, target.region, source["SnapshotCreateTime"], key["KeyId"])
    plan = CopyPlan(
        source_snapshot=source["DBClusterSnapshotArn"],
        source_created=source["SnapshotCreateTime"].isoformat(),
        source_key=source.get("KmsKeyId"),
        target=identifier,
        kms_key=key["Arn"],
        dry_run=request.dry_run,
    )
    if request.dry_run:
        return plan
    try:
        rds.copy_db_cluster_snapshot(
            SourceDBClusterSnapshotIdentifier=source["DBClusterSnapshotArn"],
            TargetDBClusterSnapshotIdentifier=identifier,
            KmsKeyId=key["Arn"],
            # Not CopyTags: the source's wandb-ops:source and slot tags would make snapshot retention
            # count the copy as one of its own and delete it.
            Tags=[
                {"Key": MANAGED_BY[0], "Value": MANAGED_BY[1]},
                {"Key": PURPOSE_TAG[0], "Value": PURPOSE_TAG[1]},
                {"Key": COPY_OF_TAG, "Value": target.cluster},
            ],
        )
    except ClientError as exc:
        if error_code(exc) != "DBClusterSnapshotAlreadyExistsFault":
            raise
    return plan


def check_copy(rds: Any, target: str, attempt: int) -> CopyCheck:
    """Whether the copy ``target`` is available yet, and how long to wait before asking again."""
    poll = backoff(attempt, POLL_BASE_SECONDS, POLL_MAX_SECONDS, POLL_MAX_ATTEMPTS)
    try:
        found = rds.describe_db_cluster_snapshots(DBClusterSnapshotIdentifier=target)["DBClusterSnapshots"][0]
    except ClientError as exc:
        if error_code(exc) == "DBClusterSnapshotNotFoundFault":
            raise SnapshotCopyRefusedError(f"the copy {target} disappeared; re-run to copy again") from None
        raise
    status = str(found.get("Status", "unknown")).lower()
    if status == "available":
        return CopyCheck(**poll.model_dump(), available=True, status=status, kms_key=found.get("KmsKeyId"))
    if status not in IN_PROGRESS or poll.give_up:
        raise SnapshotCopyRefusedError(
            f"the copy {target} is {status} after {attempt + 1} checks: look in the RDS console; "
            "a re-run waits for the same copy"
        )
    return CopyCheck(**poll.model_dump(), available=False, status=status)
