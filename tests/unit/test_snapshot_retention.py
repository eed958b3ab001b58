"""The retention policy (newest N plus grandfather-father-son) and snapshot naming."""

from datetime import UTC, datetime, timedelta

from wandb_ops.snapshot_workflow import SnapshotSettings, _poll
from wandb_ops.snapshots import RetentionPolicy, parse_slot, snapshot_identifier, to_keep

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
    assert snapshot_identifier("wandb", slot) == "wandb-ops-wandb-202611260300"
    assert snapshot_identifier("wandb", parse_slot("2026-11-26T04:00+01:00")) == "wandb-ops-wandb-202611260300"
    long_id = snapshot_identifier("a" * 40 + "--b", slot)
    assert len(long_id) <= 63 and "--" not in long_id and not long_id.endswith("-")


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
    assert [p["wait_seconds"] for p in polls] == [15, 30, 60, 120, 240, 300, 300, 300]
    assert [p["give_up"] for p in polls] == [False] * 7 + [True]
    # Whatever loop it is in, a run gives up when the next wait would end past its budget.
    late = started + timedelta(seconds=3600 - 200)
    assert _poll(settings, 0, started, late)["give_up"] is False
    assert _poll(settings, 5, started, late)["give_up"] is True  # a 300 s wait would pass the hour
    assert _poll(settings, 5, None, late)["give_up"] is False  # invoked alone (sam local invoke): per-loop bound only
