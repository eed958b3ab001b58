"""The snapshot workflow's settings and the shape of its steps' outputs: keys a step writes only
in some cases are left out, not null, as the state machine and the run's output have them."""

import pytest

from wandb_ops.core.errors import ConfigurationError
from wandb_ops.workflows.db_snapshot.settings import SnapshotSettings
from wandb_ops.workflows.db_snapshot.tasks import (
    BriefSnapshot,
    CopyOutput,
    PreflightOutput,
    Quota,
    RegionRetention,
    RetentionOutput,
)

ENVIRONMENT = {
    "SNAPSHOT_KIND": "aurora-cluster",
    "SNAPSHOT_SOURCE": "wandb",
    "DELETION_PROTECTION_MODE": "report",
    "RETAIN_NEWEST": "7",
    "RETAIN_DAILY": "7",
    "RETAIN_WEEKLY": "4",
    "RETAIN_MONTHLY": "12",
    "QUOTA_ACTION": "prune",
    "POLL_BASE_SECONDS": "15",
    "POLL_MAX_SECONDS": "300",
    "POLL_MAX_ATTEMPTS": "135",
    "POLL_RUN_BUDGET_SECONDS": "79200",
}


def test_settings_name_the_stack_parameter_to_fix() -> None:
    settings = SnapshotSettings.from_env(ENVIRONMENT)
    assert (settings.policy.newest, settings.policy.monthly, settings.region) == (7, 12, "us-east-1")
    with pytest.raises(ConfigurationError, match="SnapshotDrRegion is set but SnapshotDrKmsKeyArn is empty"):
        SnapshotSettings.from_env({**ENVIRONMENT, "SNAPSHOT_DR_REGION": "us-west-2"})
    with pytest.raises(ConfigurationError, match="set the stack parameter SnapshotRetainDaily"):
        SnapshotSettings.from_env({**ENVIRONMENT, "RETAIN_DAILY": "-1"})
    with pytest.raises(ConfigurationError, match="set the stack parameter DatabaseKind"):
        SnapshotSettings.from_env({**ENVIRONMENT, "SNAPSHOT_KIND": "dynamodb"})


def test_keys_written_only_in_some_cases_are_left_out_not_null() -> None:
    waiting = PreflightOutput(
        slot="2026-11-26T03:00Z",
        snapshot_id="wandb-ops-wandb-7fcdc09e-202611260300",
        dry_run=False,
        dr=False,
        source_status="modifying",
        attempt=1,
        wait_seconds=15,
        give_up=False,
        ready=False,
    )
    assert list(waiting.model_dump(mode="json")) == [
        "slot",
        "snapshot_id",
        "dry_run",
        "dr",
        "source_status",
        "attempt",
        "wait_seconds",
        "give_up",
        "ready",
    ]
    assert Quota(note="this slot's snapshot exists already").model_dump() == {
        "note": "this slot's snapshot exists already"
    }
    assert Quota(used=3, max=100).model_dump() == {"used": 3, "max": 100}
    assert CopyOutput(attempt=1, wait_seconds=15, give_up=False, started=False, in_flight=5).model_dump() == {
        "attempt": 1,
        "wait_seconds": 15,
        "give_up": False,
        "started": False,
        "in_flight": 5,
    }
    dry = RetentionOutput(
        dry_run=True, source=RegionRetention(kept=1, would_delete=[BriefSnapshot(id="s0", slot=None, size_gib=0)])
    )
    assert dry.model_dump() == {
        "dry_run": True,
        "source": {"kept": 1, "would_delete": [{"id": "s0", "slot": None, "size_gib": 0}]},
    }
    assert RegionRetention(kept=1, deleted=[]).model_dump() == {"kept": 1, "deleted": []}
