"""The pure rules of the replica sync: the merge join, what counts as changed, part ranges."""

import itertools
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wandb_ops.access.s3_copy import COPY_OBJECT_LIMIT, MAX_PARTS, MIN_PART_SIZE, part_ranges
from wandb_ops.access.s3_listing import Entry, archived, differs, merge_join, read_ahead
from wandb_ops.workflows.s3_sync import reencrypt, replica
from wandb_ops.workflows.s3_sync.tasks import PrepareTask, ReencryptRequest, SyncRequest

T0 = datetime(2026, 11, 26, tzinfo=UTC)


def _entries(keys: set[str]) -> list[Entry]:
    return [Entry(key, len(key), f'"{key}"', T0) for key in sorted(keys)]


@given(st.sets(st.text(min_size=1, max_size=8)), st.sets(st.text(min_size=1, max_size=8)))
def test_the_merge_join_pairs_every_key_once(source: set[str], replica: set[str]) -> None:
    seen = []
    for left, right in merge_join(_entries(source), _entries(replica)):
        if left is not None and right is not None:
            assert left.key == right.key and left.key in source & replica
            seen.append(left.key)
        elif left is not None:
            assert left.key in source - replica
            seen.append(left.key)
        else:
            assert right is not None and right.key in replica - source
            seen.append(right.key)
    assert seen == sorted(source | replica)


def test_what_counts_as_changed() -> None:
    source = Entry("k", 10, '"aaa"', T0)
    assert not differs(source, Entry("k", 10, '"aaa"', T0 - timedelta(days=1)))  # same ETag: same bytes
    assert differs(source, Entry("k", 11, '"aaa"', T0 + timedelta(days=1)))  # size differs
    # KMS or multipart ETags differ for the same bytes: the replica copied after the last write is current.
    assert not differs(source, Entry("k", 10, '"other-2"', T0 + timedelta(seconds=1)))
    assert differs(source, Entry("k", 10, '"other-2"', T0 - timedelta(seconds=1)))


def test_what_counts_as_archived_and_how_it_is_planned() -> None:
    def entry(storage_class: str, restored: bool = False) -> Entry:
        return Entry("k", 10, '"aaa"', T0, storage_class, restored=restored)

    assert archived(entry("GLACIER")) and archived(entry("DEEP_ARCHIVE"))
    assert not archived(entry("GLACIER", restored=True)) and not archived(entry("DEEP_ARCHIVE", restored=True))
    # Instant Retrieval reads like Standard-IA; an Intelligent-Tiering archive tier does not show in a listing.
    assert not any(archived(entry(c)) for c in ("STANDARD", "STANDARD_IA", "GLACIER_IR", "INTELLIGENT_TIERING"))
    older = Entry("k", 10, '"old"', T0 - timedelta(days=1))
    assert replica.kind(entry("GLACIER"), None) == replica.kind(entry("GLACIER"), older) == "archived"
    assert replica.kind(entry("GLACIER"), entry("STANDARD")) == "in_sync"  # copied before it was archived
    assert replica.kind(entry("GLACIER", restored=True), None) == replica.kind(entry("GLACIER_IR"), None) == "new"
    assert replica.kind(entry("DEEP_ARCHIVE", restored=True), older) == "changed"
    assert reencrypt.kind(entry("DEEP_ARCHIVE"), T0 + timedelta(seconds=1)) == "archived"  # re-encryption


@given(
    st.integers(min_value=1, max_value=5 * 1024**4), st.integers(min_value=MIN_PART_SIZE, max_value=COPY_OBJECT_LIMIT)
)
def test_parts_cover_the_object_within_s3_limits(size: int, part_size: int) -> None:
    parts = part_ranges(size, part_size)
    assert parts[0][0] == 0 and parts[-1][1] == size - 1 and len(parts) <= MAX_PARTS
    assert all(b[0] == a[1] + 1 for a, b in itertools.pairwise(parts))
    assert all(last - first + 1 >= MIN_PART_SIZE for first, last in parts[:-1])


def test_the_events_in_the_repository_are_valid_inputs() -> None:
    events = Path(__file__).resolve().parents[2] / "events"
    PrepareTask.model_validate(json.loads((events / "s3-sync.json").read_text()))
    for path in events.glob("s3-sync-*statemachine.json"):
        SyncRequest.model_validate(json.loads(path.read_text()))
    reencrypt_task = PrepareTask.model_validate(json.loads((events / "s3-reencrypt.json").read_text()))
    ReencryptRequest.model_validate(reencrypt_task.input)
    for path in events.glob("s3-reencrypt-*statemachine.json"):
        ReencryptRequest.model_validate(json.loads(path.read_text()))


def test_read_ahead_yields_everything_in_order_and_passes_errors_on() -> None:
    assert list(read_ahead(iter(range(5000)), depth=7)) == list(range(5000))

    def failing() -> Iterator[int]:
        yield 1
        raise RuntimeError("listing failed")

    reader = read_ahead(failing())
    assert next(reader) == 1
    with pytest.raises(RuntimeError, match="listing failed"):
        next(reader)
