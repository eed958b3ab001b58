"""RDS behaviour the emulator lacks, added to the in-process moto server.

- DescribeAccountAttributes: moto enforces a manual snapshot quota (MOTO_RDS_SNAPSHOT_LIMIT,
  default 1000, counting every snapshot of the kind) but does not report it. Report exactly
  what moto enforces, as ManualClusterSnapshots and ManualSnapshots.
"""

from typing import Any

from moto.core.responses import ActionResult
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


def install() -> None:
    RDSResponse.describe_account_attributes = _describe_account_attributes  # type: ignore[attr-defined]
