"""The retention policy (newest N plus grandfather-father-son, never less than the newest
available snapshot), what counts as ours, and snapshot naming."""

from datetime import UTC, datetime, timedelta
from typing import Any

from tests.unit.snapshot_pages import FakeRds
from wandb_ops.access.rds_snapshots import (
    RetentionPolicy,
    SnapshotApi,
    dr_identifier,
    parse_slot,
    retention_plan,
    snapshot_identifier,
    snapshot_tags,
    to_keep,
)
from wandb_ops.workflows.db_snapshot.settings import SnapshotSettings
from wandb_ops.workflows.db_snapshot.steps import _poll

START = datetime(2025, 11, 27, 3, 0, tzinfo=UTC)
YEAR = [START + timedelta(days=day) for day in range(365)]


def test_a_year_of_daily_slots_keeps_exactly_the_policy() -> None:
    kept = to_keep(YEAR, RetentionPolicy(newest=7, daily=7, weekly=4, monthly=12))
    newest = YEAR[-1]
    # 7 newest days; the newest of the 4 newest ISO weeks; the newest of the 12 newest months.
    weeks = sorted({tuple(s.isocalendar())[:2] for s in YEAR}, reverse=True)[:4]
    months = sorted({(s.year, s.month) for s in YEAR}, reverse=True)[:12]
    expected = {newest - timedelta(days=d) for d in range(7)}
    expected |= {max(s for s in YEAR if tuple(s.isocalendar())[:2] == w) for w in weeks}
    expected |= {max(s for s in YEAR if (s.year, s.month) == m) for m in months}
    assert kept == expected
    assert 7 + 12 <= len(kept) <= 7 + 4 + 12


def test_tiers_can_be_turned_off_and_never_keep_more_than_exist() -> None:
    assert to_keep(YEAR, RetentionPolicy(newest=3, daily=0, weekly=0, monthly=0)) == set(YEAR[-3:])
    assert to_keep(YEAR[:2], RetentionPolicy()) == set(YEAR[:2])
    assert to_keep([], RetentionPolicy()) == set()


def test_several_snapshots_a_day_keep_only_the_newest_of_older_days() -> None:
    slots = [START + timedelta(hours=6 * i) for i in range(40)]  # four a day, ten days
    kept = to_keep(slots, RetentionPolicy(newest=2, daily=5, weekly=0, monthly=0))
    days = sorted({s.date() for s in slots}, reverse=True)[:5]
    assert kept == set(slots[-2:]) | {max(s for s in slots if s.date() == d) for d in days}


def test_snapshot_identifiers_are_deterministic_and_valid() -> None:
    slot = parse_slot("2026-11-26T03:00:41Z")
    assert snapshot_identifier("wandb", "us-east-1", slot) == "wandb-ops-wandb-7fcdc09e-202611260300"
    later = parse_slot("2026-11-26T04:00+01:00")
    assert snapshot_identifier("wandb", "us-east-1", later) == "wandb-ops-wandb-7fcdc09e-202611260300"
    for source in ("a" * 40 + "--b", "a" * 63, "wandb"):
        identifier = snapshot_identifier(source, "us-east-1", slot)
        for name in (identifier, dr_identifier(identifier)):
            assert len(name) <= 63 and "--" not in name and not name.endswith("-") and name[0].isalpha()


def test_databases_whose_names_differ_only_past_the_cut_get_distinct_snapshot_ids() -> None:
    """Two W&B deployments in one account, namespaces of 40+ characters that differ only at
    the end, both on the default schedule: each stack must find its own snapshot, not the other's."""
    slot = parse_slot("2026-11-26T03:00Z")
    first, second = "wandb-research-platform-production-eu-01", "wandb-research-platform-production-eu-02"
    assert snapshot_identifier(first, "us-east-1", slot) != snapshot_identifier(second, "us-east-1", slot)
    # The same name in two regions (each copying to the other as DR) is two databases too.
    assert snapshot_identifier("wandb", "us-east-1", slot) != snapshot_identifier("wandb", "us-west-2", slot)


def test_polls_back_off_exponentially_up_to_a_cap_and_give_up_at_the_bound() -> None:
    settings = SnapshotSettings.from_env(
        {
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
            "POLL_MAX_ATTEMPTS": "8",
            "POLL_RUN_BUDGET_SECONDS": "3600",
        }
    )
    started = datetime(2026, 11, 27, 3, 0, tzinfo=UTC)
    polls = [_poll(settings, attempt, started, started) for attempt in range(8)]
    assert [p.wait_seconds for p in polls] == [15, 30, 60, 120, 240, 300, 300, 300]
    assert [p.give_up for p in polls] == [False] * 7 + [True]
    # Whatever loop it is in, a run gives up when the next wait would end past its budget.
    late = started + timedelta(seconds=3600 - 200)
    assert _poll(settings, 0, started, late).give_up is False
    assert _poll(settings, 5, started, late).give_up is True  # a 300 s wait would pass the hour
    assert _poll(settings, 5, None, late).give_up is False  # invoked alone (sam local invoke): per-loop bound only


def _snapshot(
    identifier: str, slot: datetime, status: str = "available", tags: list[dict[str, str]] | None = None
) -> dict[str, Any]:
    return {
        "DBClusterSnapshotIdentifier": identifier,
        "DBClusterSnapshotArn": f"arn:aws:rds:us-east-1:111122223333:cluster-snapshot:{identifier}",
        "Status": status,
        "SnapshotType": "manual",
        "SnapshotCreateTime": slot,
        "TagList": snapshot_tags("wandb", "us-east-1", slot) if tags is None else tags,
    }


NOTHING = RetentionPolicy(newest=0, daily=0, weekly=0, monthly=0)


def test_with_every_setting_at_zero_retention_still_keeps_the_newest_available_snapshot() -> None:
    slots = YEAR[-5:]
    rds = FakeRds([_snapshot(f"s{i}", slot) for i, slot in enumerate(slots)])
    kept, doomed = retention_plan(SnapshotApi("aurora-cluster"), rds, "wandb", "us-east-1", NOTHING)
    assert [s.identifier for s in kept] == ["s4"] and [s.identifier for s in doomed] == ["s0", "s1", "s2", "s3"]
    # A newer snapshot still being made is kept too, but is not yet the one to keep.
    rds.snapshots.append(_snapshot("s5", YEAR[-1] + timedelta(days=1), status="creating"))
    kept, _ = retention_plan(SnapshotApi("aurora-cluster"), rds, "wandb", "us-east-1", NOTHING)
    assert [s.identifier for s in kept] == ["s4", "s5"]
    # A failed newest snapshot is not kept in place of the newest available one.
    rds.snapshots[-1] = _snapshot("s5", YEAR[-1] + timedelta(days=1), status="failed")
    kept, doomed = retention_plan(SnapshotApi("aurora-cluster"), rds, "wandb", "us-east-1", NOTHING)
    assert [s.identifier for s in kept] == ["s4"] and "s5" in [s.identifier for s in doomed]


def test_a_same_named_database_of_another_region_is_never_counted_as_ours() -> None:
    slot = YEAR[-1]
    legacy = [t for t in snapshot_tags("wandb", "us-east-1", slot) if t["Key"] != "wandb-ops:source-region"]
    api = SnapshotApi("aurora-cluster")
    other_region = api.parse(_snapshot("theirs-dr", slot, tags=snapshot_tags("wandb", "us-west-2", slot)))
    ours = api.parse(_snapshot("ours", slot))
    assert ours.is_ours("wandb", "us-east-1") and not other_region.is_ours("wandb", "us-east-1")
    assert not other_region.is_ours("wandb", "us-east-1", copy=True)
    # Made before the region tag: a DR copy is the one named <snapshot>-dr.
    old_copy = api.parse(_snapshot("wandb-ops-wandb-202611260300-dr", slot, tags=legacy))
    old_snapshot = api.parse(_snapshot("wandb-ops-wandb-202611260300", slot, tags=legacy))
    assert old_copy.is_ours("wandb", "us-east-1", copy=True) and not old_copy.is_ours("wandb", "us-east-1")
    assert old_snapshot.is_ours("wandb", "us-east-1") and not old_snapshot.is_ours("wandb", "us-east-1", copy=True)
