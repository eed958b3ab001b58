"""RDS behaviour the emulator lacks, added to the in-process moto server.

- DescribeAccountAttributes: moto enforces a manual snapshot quota (MOTO_RDS_SNAPSHOT_LIMIT,
  default 1000, counting every snapshot of the kind) but does not report it. Report exactly
  what moto enforces, as ManualClusterSnapshots and ManualSnapshots.
- An existing cluster identifier: moto's CreateDBCluster and RestoreDBClusterFromSnapshot replace
  the cluster; RDS answers DBClusterAlreadyExistsFault and changes nothing (as moto already does
  for instances).
"""

from typing import Any

from moto.core.responses import ActionResult
from moto.rds.exceptions import RDSClientError
from moto.rds.models import DBCluster, RDSBackend
from moto.rds.responses import RDSResponse


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


def install() -> None:
    RDSResponse.describe_account_attributes = _describe_account_attributes  # type: ignore[attr-defined]
    RDSBackend.create_db_cluster = _create_db_cluster_once  # type: ignore[method-assign]
