"""Monthly restore check: restore the newest snapshot this product made into a small
temporary cluster (or instance), run a sanity query as the master user, record the
result, and always delete what was created, even when the check fails.

Everything created is named ``wandb-ops-check-<stack id>-<slot>`` and tagged
``managed-by=wandb-ops`` / ``wandb-ops:purpose=restore-check`` / ``wandb-ops:stack=<stack id>``
(the stack id: 8 hex digits CloudFormation derives from the stack's own id, so two stacks never
share a name). Cleanup deletes only a database with all three, of this stack's name.
"""

import re
import time
from dataclasses import dataclass
from typing import Any, Literal

import pymysql
from botocore.exceptions import ClientError

from wandb_ops.access.mysql.connector import Connector, DbSecret
from wandb_ops.access.rds_snapshots import MANAGED_BY, Snapshot, format_slot, newest_available, parse_slot
from wandb_ops.core.aws import error_code
from wandb_ops.core.errors import WandbOpsError
from wandb_ops.workflows.db_restore_check.settings import RestoreCheckSettings
from wandb_ops.workflows.db_restore_check.tasks import QueryOutput

PURPOSE_TAG = ("wandb-ops:purpose", "restore-check")
STACK_TAG = "wandb-ops:stack"
_NOT_FOUND = ("DBClusterNotFoundFault", "DBInstanceNotFound", "DBInstanceNotFoundFault")
_READ_ONLY_QUERY = re.compile(r"^\s*(SELECT|SHOW)\b", re.IGNORECASE)


class RestoreCheckError(WandbOpsError):
    """The restore check could not restore, reach or query the snapshot."""


@dataclass(frozen=True)
class Restored:
    identifier: str  # the temporary database
    snapshot: str  # the snapshot restored into it
    snapshot_slot: str | None


def check_identifier(settings: RestoreCheckSettings, slot: str) -> str:
    return f"{settings.prefix}{parse_slot(slot):%Y%m%d%H%M}"


def _tags(settings: RestoreCheckSettings) -> list[dict[str, str]]:
    return [
        {"Key": MANAGED_BY[0], "Value": MANAGED_BY[1]},
        {"Key": PURPOSE_TAG[0], "Value": PURPOSE_TAG[1]},
        {"Key": STACK_TAG, "Value": settings.stack_id},
    ]


def _require_own(settings: RestoreCheckSettings, identifier: str) -> None:
    """A name without this stack's id is another stack's check database, or one a run started
    before the stack's update named: this stack may not touch it (nor may its role)."""
    if not identifier.startswith(settings.prefix):
        raise RestoreCheckError(
            f"{identifier} is not a restore-check database of this stack (its names start with {settings.prefix}): "
            f"it was left alone; if a run started before a stack update created it, delete {identifier} "
            "(cluster and instance) by hand"
        )


def newest_snapshot(settings: RestoreCheckSettings, rds: Any) -> Snapshot:
    ours = [s for s in settings.api.list_manual(rds, settings.source) if s.is_ours(settings.source, settings.region)]
    newest = newest_available(ours)
    if newest is None:
        raise RestoreCheckError(f"no available snapshot of {settings.source} made by wandb-ops to restore")
    return newest


def start(settings: RestoreCheckSettings, rds: Any, slot: str) -> Restored:
    """Restore the newest snapshot into a temporary database (idempotent per slot)."""
    identifier = check_identifier(settings, slot)
    snapshot = newest_snapshot(settings, rds)
    source = settings.api.describe_source(rds, settings.source)
    try:
        if settings.api.kind == "aurora-cluster":
            rds.restore_db_cluster_from_snapshot(
                DBClusterIdentifier=identifier,
                SnapshotIdentifier=snapshot.identifier,
                Engine=source["Engine"],
                EngineVersion=source.get("EngineVersion"),
                Port=int(source.get("Port", 3306)),
                DBSubnetGroupName=source.get("DBSubnetGroup", "default"),
                VpcSecurityGroupIds=[g["VpcSecurityGroupId"] for g in source.get("VpcSecurityGroups", [])],
                KmsKeyId=source.get("KmsKeyId"),
                DeletionProtection=False,
                Tags=_tags(settings),
            )
        else:
            rds.restore_db_instance_from_db_snapshot(
                DBInstanceIdentifier=identifier,
                DBSnapshotIdentifier=snapshot.identifier,
                DBInstanceClass=settings.instance_class,
                DBSubnetGroupName=(source.get("DBSubnetGroup") or {}).get("DBSubnetGroupName", "default"),
                VpcSecurityGroupIds=[g["VpcSecurityGroupId"] for g in source.get("VpcSecurityGroups", [])],
                DeletionProtection=False,
                MultiAZ=False,
                Tags=_tags(settings),
            )
    except ClientError as exc:
        if error_code(exc) not in ("DBClusterAlreadyExistsFault", "DBInstanceAlreadyExists"):
            raise
    if settings.api.kind == "aurora-cluster":
        try:
            rds.create_db_instance(
                DBInstanceIdentifier=f"{identifier}-1",
                DBClusterIdentifier=identifier,
                Engine=source["Engine"],
                DBInstanceClass=settings.instance_class,
                Tags=_tags(settings),
            )
        except ClientError as exc:
            if error_code(exc) != "DBInstanceAlreadyExists":
                cleanup(settings, rds, identifier)  # the state machine's cleanup needs a started check
                raise
    snapshot_slot = format_slot(snapshot.slot) if snapshot.slot else None
    return Restored(identifier, snapshot.identifier, snapshot_slot)


def endpoint(settings: RestoreCheckSettings, rds: Any, identifier: str) -> tuple[str, int] | None:
    """The temporary database's endpoint once everything is available, else None."""
    _require_own(settings, identifier)
    if settings.api.kind == "aurora-cluster":
        cluster = rds.describe_db_clusters(DBClusterIdentifier=identifier)["DBClusters"][0]
        instance = rds.describe_db_instances(DBInstanceIdentifier=f"{identifier}-1")["DBInstances"][0]
        if cluster.get("Status") == "available" and instance.get("DBInstanceStatus") == "available":
            return str(cluster["Endpoint"]), int(cluster.get("Port", 3306))
        return None
    instance = rds.describe_db_instances(DBInstanceIdentifier=identifier)["DBInstances"][0]
    if instance.get("DBInstanceStatus") == "available":
        return str(instance["Endpoint"]["Address"]), int(instance["Endpoint"]["Port"])
    return None


def run_query(
    settings: RestoreCheckSettings, connector: Connector, master: DbSecret, host: str, port: int
) -> QueryOutput:
    if not _READ_ONLY_QUERY.match(settings.query):
        raise RestoreCheckError(
            "the sanity query must be a SELECT or SHOW statement (stack parameter RestoreCheckQuery)"
        )
    started = time.monotonic()
    target = master.model_copy(update={"host": host, "port": port})
    try:
        with connector.connect(target) as connection, connection.cursor() as cursor:
            cursor.execute(settings.query)
            row = cursor.fetchone()
    except pymysql.MySQLError as exc:
        code = exc.args[0] if exc.args else "?"
        raise RestoreCheckError(
            f"the sanity query failed on the restored copy {host}:{port} (MySQL error {code}): "
            f"{exc.args[1] if len(exc.args) > 1 else exc}"
        ) from None
    return QueryOutput(result=None if row is None else str(row[0])[:200], seconds=round(time.monotonic() - started, 3))


def cleanup(settings: RestoreCheckSettings, rds: Any, identifier: str) -> list[str]:
    """Delete the temporary database (only this stack's, with the restore-check tags). Idempotent."""
    _require_own(settings, identifier)
    deleted: list[str] = []
    instances = [f"{identifier}-1"] if settings.api.kind == "aurora-cluster" else [identifier]
    for instance in instances:
        if _delete_if_ours(settings, rds, "instance", instance):
            deleted.append(instance)
    if settings.api.kind == "aurora-cluster" and _delete_if_ours(settings, rds, "cluster", identifier):
        deleted.append(identifier)
    return deleted


def _delete_if_ours(
    settings: RestoreCheckSettings, rds: Any, kind: Literal["instance", "cluster"], identifier: str
) -> bool:
    try:
        if kind == "instance":
            found = rds.describe_db_instances(DBInstanceIdentifier=identifier)["DBInstances"][0]
            arn = found["DBInstanceArn"]
        else:
            found = rds.describe_db_clusters(DBClusterIdentifier=identifier)["DBClusters"][0]
            arn = found["DBClusterArn"]
    except ClientError as exc:
        if error_code(exc) in _NOT_FOUND:
            return False
        raise
    tags = {t["Key"]: t["Value"] for t in rds.list_tags_for_resource(ResourceName=arn).get("TagList", [])}
    if (
        tags.get(PURPOSE_TAG[0]) != PURPOSE_TAG[1]
        or tags.get(MANAGED_BY[0]) != MANAGED_BY[1]
        or tags.get(STACK_TAG) != settings.stack_id
    ):
        raise RestoreCheckError(
            f"{identifier} is not a restore-check database of this wandb-ops stack: it was left alone"
        )
    if kind == "instance":
        if found.get("DeletionProtection"):
            rds.modify_db_instance(DBInstanceIdentifier=identifier, DeletionProtection=False, ApplyImmediately=True)
        rds.delete_db_instance(DBInstanceIdentifier=identifier, SkipFinalSnapshot=True, DeleteAutomatedBackups=True)
    else:
        # A restore can inherit deletion protection from the snapshot's cluster: lift it on our copy only.
        if found.get("DeletionProtection"):
            rds.modify_db_cluster(DBClusterIdentifier=identifier, DeletionProtection=False, ApplyImmediately=True)
        rds.delete_db_cluster(DBClusterIdentifier=identifier, SkipFinalSnapshot=True)
    return True
