"""RDS behaviour the emulator lacks, added to the in-process moto server.

- DescribeAccountAttributes: moto enforces a manual snapshot quota (MOTO_RDS_SNAPSHOT_LIMIT,
  default 1000, counting every snapshot of the kind) but does not report it. Report exactly
  what moto enforces, as ManualClusterSnapshots and ManualSnapshots.
- An existing cluster identifier: moto's CreateDBCluster and RestoreDBClusterFromSnapshot replace
  the cluster; RDS answers DBClusterAlreadyExistsFault and changes nothing (as moto already does
  for instances).
- A database behind an emulated endpoint: moto's endpoints are names that resolve nowhere
  (`<id>.cluster-<random>.<region>.rds.amazonaws.com`). `serve_locally` makes RDS describe a
  cluster's (or instance's) endpoints as a local engine's: writer `localhost`, reader
  `127.0.0.1` (both names are in the engine's certificate, so TLS host-name verification is
  real), each instance `localhost`, and the engine's port. Code that reads the database's
  endpoints from RDS (the master connection's only destinations) then reaches a real server.
"""

from typing import Any

from moto.core.responses import ActionResult
from moto.rds.exceptions import RDSClientError
from moto.rds.models import DBCluster, DBInstance, RDSBackend, rds_backends
from moto.rds.responses import RDSResponse

from tests.rig.emulator import ACCOUNT_ID, REGION

WRITER_HOST, READER_HOST = "localhost", "127.0.0.1"
_cluster_endpoint, _reader_endpoint, _instance_address = (
    DBCluster.endpoint,
    DBCluster.reader_endpoint,
    DBInstance.address,
)


def _describe_account_attributes(self: Any) -> ActionResult:
    backend = self.backend
    limit = backend.SNAPSHOT_QUOTA
    return ActionResult(
        {
            "AccountQuotas": [
                {"AccountQuotaName": "ManualClusterSnapshots", "Used": len(backend.cluster_snapshots), "Max": limit},
                {"AccountQuotaName": "ManualSnapshots", "Used": len(backend.database_snapshots), "Max": limit},
            ]
        }
    )


_create_db_cluster = RDSBackend.create_db_cluster


def _create_db_cluster_once(self: RDSBackend, kwargs: dict[str, Any]) -> DBCluster:
    if kwargs["db_cluster_identifier"] in self.clusters:
        raise RDSClientError("DBClusterAlreadyExistsFault", "DB Cluster already exists")
    return _create_db_cluster(self, kwargs)


def serve_locally(identifier: str, port: int, region: str = REGION) -> None:
    """RDS now describes database ``identifier`` (a cluster and its instances, or an instance) as the
    local server on ``port``; the emulator's reset forgets it with the database."""
    backend = rds_backends[ACCOUNT_ID][region]
    cluster = backend.clusters.get(identifier)
    instances = [backend.databases[identifier]] if identifier in backend.databases else []
    if cluster is not None:
        cluster.port = port
        vars(cluster)["rig_served_locally"] = True
        instances = [i for i in backend.databases.values() if i.db_cluster_identifier == identifier]
    if cluster is None and not instances:
        raise LookupError(f"no emulated RDS cluster or instance {identifier}")
    for instance in instances:
        instance.port = port
        vars(instance)["rig_served_locally"] = True


def _local_or(original: Any, host: str) -> property:
    return property(lambda self: host if getattr(self, "rig_served_locally", False) else original.fget(self))


def install() -> None:
    RDSResponse.describe_account_attributes = _describe_account_attributes  # type: ignore[attr-defined]
    RDSBackend.create_db_cluster = _create_db_cluster_once  # type: ignore[method-assign]
    DBCluster.endpoint = _local_or(_cluster_endpoint, WRITER_HOST)  # type: ignore[method-assign,assignment]
    DBCluster.reader_endpoint = _local_or(_reader_endpoint, READER_HOST)  # type: ignore[method-assign,assignment]
    DBInstance.address = _local_or(_instance_address, WRITER_HOST)  # type: ignore[method-assign,assignment]
