"""Database snapshots of the W&B deployment: one tagged manual snapshot per schedule slot,
optionally copied to a DR region, kept by a newest-N plus grandfather-father-son policy.

Works for an Aurora cluster (*DBCluster* APIs) and for a plain RDS instance (*DBSnapshot* APIs).
Only snapshots this product created (tag ``managed-by=wandb-ops`` and this database's
``wandb-ops:source`` and ``wandb-ops:source-region`` tags) are ever deleted; automated backups,
AWS Backup recovery points and other manual snapshots are never touched. The newest available
snapshot of ours is always kept, whatever the retention settings.
"""

import hashlib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from botocore.exceptions import ClientError

from wandb_ops.core.aws import error_code
from wandb_ops.core.errors import WandbOpsError

MANAGED_BY = ("managed-by", "wandb-ops")
SLOT_TAG = "wandb-ops:slot"
SOURCE_TAG = "wandb-ops:source"
REGION_TAG = "wandb-ops:source-region"  # the database's region: a same-named database elsewhere is another's
DR_SUFFIX = "-dr"
MAX_IDENTIFIER = 63  # RDS snapshot identifiers: 1-63 letters, digits, hyphens
MAX_CONCURRENT_CROSS_REGION_COPIES = 5  # RDS: per destination region, per account
IN_PROGRESS = frozenset({"creating", "copying", "pending"})

Kind = Literal["aurora-cluster", "rds-instance"]


class SourceDatabaseError(WandbOpsError):
    """The database to snapshot does not exist, or cannot be snapshotted now."""


class SnapshotQuotaError(WandbOpsError):
    """The manual snapshot quota is reached and nothing of ours can be deleted to make room."""


class SnapshotFailedError(WandbOpsError):
    """A snapshot or a copy ended in a failed state, or did not become available in time."""


@dataclass(frozen=True)
class Snapshot:
    identifier: str
    arn: str
    status: str
    snapshot_type: str
    created: datetime | None
    size_gib: int
    tags: dict[str, str]

    @property
    def slot(self) -> datetime | None:
        value = self.tags.get(SLOT_TAG)
        return parse_slot(value) if value else None

    def is_ours(self, source: str, region: str, *, copy: bool = False) -> bool:
        """Made by the snapshot workflow for ``source`` in ``region``; ``copy``: a DR copy is wanted."""
        if not (
            self.snapshot_type == "manual"
            and self.tags.get(MANAGED_BY[0]) == MANAGED_BY[1]
            and self.tags.get(SOURCE_TAG) == source
            and self.slot is not None
        ):
            return False
        tagged_region = self.tags.get(REGION_TAG)
        if tagged_region is not None:
            return tagged_region == region
        # Made before snapshots carried their region: then a DR copy was always <snapshot>-dr, so a
        # same-named database's copy in this region is not taken for one of ours, nor the reverse.
        return self.identifier.endswith(DR_SUFFIX) == copy


def parse_slot(value: str) -> datetime:
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC).replace(second=0, microsecond=0)


def format_slot(slot: datetime) -> str:
    return slot.strftime("%Y-%m-%dT%H:%MZ")


def source_digest(source: str, region: str) -> str:
    """8 hex digits that tell databases apart when their names are cut, or equal in two regions."""
    return hashlib.sha256(f"{region}/{source}".encode()).hexdigest()[:8]


def readable_part(source: str, room: int) -> str:
    """``source`` as identifier characters (no double or trailing hyphens), cut to ``room``."""
    return re.sub(r"-+", "-", re.sub(r"[^a-zA-Z0-9-]", "-", source)).strip("-")[:room].rstrip("-")


def snapshot_identifier(source: str, region: str, slot: datetime) -> str:
    """Deterministic per database and slot: a retried or re-run execution finds the snapshot it
    made, and no other database's snapshot has the name, even where the readable part is cut:
    wandb-ops-<source, cut>-<digest>-<YYYYMMDDHHMM>, with room left for the DR copy's suffix."""
    digest, stamp = source_digest(source, region), f"{slot:%Y%m%d%H%M}"
    room = MAX_IDENTIFIER - len("wandb-ops--") - len(digest) - 1 - len(stamp) - len(DR_SUFFIX)
    return "-".join(part for part in ("wandb-ops", readable_part(source, room), digest, stamp) if part)


def dr_identifier(snapshot_id: str) -> str:
    return f"{snapshot_id}{DR_SUFFIX}"


def snapshot_tags(source: str, region: str, slot: datetime) -> list[dict[str, str]]:
    return [
        {"Key": MANAGED_BY[0], "Value": MANAGED_BY[1]},
        {"Key": SLOT_TAG, "Value": format_slot(slot)},
        {"Key": SOURCE_TAG, "Value": source},
        {"Key": REGION_TAG, "Value": region},
    ]


# ---------------------------------------------------------------- retention


@dataclass(frozen=True)
class RetentionPolicy:
    newest: int = 7
    daily: int = 7
    weekly: int = 4
    monthly: int = 12

    def keeps_anything(self) -> bool:
        return any((self.newest, self.daily, self.weekly, self.monthly))


def to_keep(slots: Iterable[datetime], policy: RetentionPolicy) -> set[datetime]:
    """Grandfather-father-son: the newest N slots, plus the newest slot of each of the last
    ``daily`` days, ``weekly`` ISO weeks and ``monthly`` months that have a snapshot."""
    ordered = sorted(set(slots), reverse=True)
    keep = set(ordered[: policy.newest])
    tiers: list[tuple[int, Callable[[datetime], tuple[int, ...]]]] = [
        (policy.daily, _day),
        (policy.weekly, _iso_week),
        (policy.monthly, _month),
    ]
    for count, period in tiers:
        seen: list[tuple[int, ...]] = []
        for slot in ordered:  # newest first: the first slot seen in a period is its newest
            key = period(slot)
            if key not in seen:
                if len(seen) == count:
                    break
                seen.append(key)
                keep.add(slot)
    return keep


def _day(slot: datetime) -> tuple[int, ...]:
    return (slot.year, slot.month, slot.day)


def _iso_week(slot: datetime) -> tuple[int, ...]:
    year, week, _ = slot.isocalendar()
    return (year, week)


def _month(slot: datetime) -> tuple[int, ...]:
    return (slot.year, slot.month)


# ---------------------------------------------------------------- RDS access, per kind


@dataclass(frozen=True)
class SnapshotApi:
    """The cluster and instance flavours of the same RDS calls."""

    kind: Kind

    @property
    def _cluster(self) -> bool:
        return self.kind == "aurora-cluster"

    def describe_source(self, rds: Any, source: str) -> dict[str, Any]:
        try:
            if self._cluster:
                found: dict[str, Any] = rds.describe_db_clusters(DBClusterIdentifier=source)["DBClusters"][0]
            else:
                found = rds.describe_db_instances(DBInstanceIdentifier=source)["DBInstances"][0]
        except ClientError as exc:
            if error_code(exc) in ("DBClusterNotFoundFault", "DBInstanceNotFound", "DBInstanceNotFoundFault"):
                what = "Aurora cluster" if self._cluster else "RDS instance"
                raise SourceDatabaseError(
                    f"no {what} '{source}' in this region: set the stack parameters Namespace / DatabaseIdentifier "
                    "and DatabaseKind to the database terraform-aws-wandb created"
                ) from None
            raise
        return found

    def source_status(self, found: dict[str, Any]) -> str:
        return str(found.get("Status") or found.get("DBInstanceStatus") or "unknown")

    def enable_deletion_protection(self, rds: Any, source: str) -> None:
        if self._cluster:
            rds.modify_db_cluster(DBClusterIdentifier=source, DeletionProtection=True, ApplyImmediately=True)
        else:
            rds.modify_db_instance(DBInstanceIdentifier=source, DeletionProtection=True, ApplyImmediately=True)

    def quota_name(self) -> str:
        return "ManualClusterSnapshots" if self._cluster else "ManualSnapshots"

    def create(self, rds: Any, source: str, identifier: str, tags: list[dict[str, str]]) -> None:
        try:
            if self._cluster:
                rds.create_db_cluster_snapshot(
                    DBClusterIdentifier=source, DBClusterSnapshotIdentifier=identifier, Tags=tags
                )
            else:
                rds.create_db_snapshot(DBInstanceIdentifier=source, DBSnapshotIdentifier=identifier, Tags=tags)
        except ClientError as exc:
            if error_code(exc) not in ("DBClusterSnapshotAlreadyExistsFault", "DBSnapshotAlreadyExists"):
                raise

    def get(self, rds: Any, identifier: str) -> Snapshot | None:
        try:
            if self._cluster:
                found = rds.describe_db_cluster_snapshots(DBClusterSnapshotIdentifier=identifier)["DBClusterSnapshots"]
            else:
                found = rds.describe_db_snapshots(DBSnapshotIdentifier=identifier)["DBSnapshots"]
        except ClientError as exc:
            if error_code(exc) in ("DBClusterSnapshotNotFoundFault", "DBSnapshotNotFound"):
                return None
            raise
        return self.parse(found[0]) if found else None

    def list_manual(self, rds: Any, source: str | None = None) -> list[Snapshot]:
        """Manual snapshots of ``source``, or of every database of this kind in the region."""
        operation = "describe_db_cluster_snapshots" if self._cluster else "describe_db_snapshots"
        key = "DBClusterSnapshots" if self._cluster else "DBSnapshots"
        scope = {}
        if source is not None:
            scope = {"DBClusterIdentifier": source} if self._cluster else {"DBInstanceIdentifier": source}
        snapshots = []
        for page in rds.get_paginator(operation).paginate(SnapshotType="manual", **scope):
            snapshots += [self.parse(item) for item in page[key]]
        return snapshots

    def copy(
        self, dr_rds: Any, source_arn: str, identifier: str, *, kms_key: str, source_region: str, tags: Any
    ) -> None:
        try:
            if self._cluster:
                dr_rds.copy_db_cluster_snapshot(
                    SourceDBClusterSnapshotIdentifier=source_arn,
                    TargetDBClusterSnapshotIdentifier=identifier,
                    KmsKeyId=kms_key,
                    SourceRegion=source_region,
                    Tags=tags,
                )
            else:
                dr_rds.copy_db_snapshot(
                    SourceDBSnapshotIdentifier=source_arn,
                    TargetDBSnapshotIdentifier=identifier,
                    KmsKeyId=kms_key,
                    SourceRegion=source_region,
                    Tags=tags,
                )
        except ClientError as exc:
            if error_code(exc) not in ("DBClusterSnapshotAlreadyExistsFault", "DBSnapshotAlreadyExists"):
                raise

    def delete(self, rds: Any, identifier: str) -> None:
        try:
            if self._cluster:
                rds.delete_db_cluster_snapshot(DBClusterSnapshotIdentifier=identifier)
            else:
                rds.delete_db_snapshot(DBSnapshotIdentifier=identifier)
        except ClientError as exc:
            if error_code(exc) not in ("DBClusterSnapshotNotFoundFault", "DBSnapshotNotFound"):
                raise

    def parse(self, item: dict[str, Any]) -> Snapshot:
        return Snapshot(
            identifier=item["DBClusterSnapshotIdentifier" if self._cluster else "DBSnapshotIdentifier"],
            arn=item["DBClusterSnapshotArn" if self._cluster else "DBSnapshotArn"],
            status=str(item.get("Status", "unknown")).lower(),
            snapshot_type=str(item.get("SnapshotType", "manual")),
            created=item.get("SnapshotCreateTime"),
            size_gib=int(item.get("AllocatedStorage") or 0),
            tags={tag["Key"]: tag["Value"] for tag in item.get("TagList", [])},
        )


def quota(rds: Any, api: SnapshotApi) -> tuple[int, int] | None:
    """(used, max) of the manual snapshot quota, from DescribeAccountAttributes."""
    for entry in rds.describe_account_attributes().get("AccountQuotas", []):
        if entry.get("AccountQuotaName") == api.quota_name():
            return int(entry["Used"]), int(entry["Max"])
    return None


def newest_available(snapshots: Iterable[Snapshot]) -> Snapshot | None:
    available = [s for s in snapshots if s.status == "available"]
    return max(available, key=lambda s: (_by_slot(s), s.created or _by_slot(s)), default=None)


def retention_plan(
    api: SnapshotApi,
    rds: Any,
    source: str,
    region: str,
    policy: RetentionPolicy,
    *,
    protect: str | None = None,
    copies: bool = False,
) -> tuple[list[Snapshot], list[Snapshot]]:
    """(kept, to delete, oldest first) among this product's snapshots of ``source`` (a database in
    ``region``), or among its DR copies. ``protect``, snapshots still being made and the newest
    available one are never deleted: retention never leaves nothing behind."""
    ours = [s for s in api.list_manual(rds, source) if s.is_ours(source, region, copy=copies)]
    keep_slots = to_keep([s.slot for s in ours if s.slot], policy)
    newest = newest_available(ours)
    kept = [
        s for s in ours if s.slot in keep_slots or s.identifier == protect or s.status in IN_PROGRESS or s is newest
    ]
    doomed = [s for s in ours if s not in kept]
    return sorted(kept, key=_by_slot), sorted(doomed, key=_by_slot)


def _by_slot(snapshot: Snapshot) -> datetime:
    return snapshot.slot or datetime.min.replace(tzinfo=UTC)
