"""Manual snapshots as DescribeDBClusterSnapshots pages, for rules that only list them."""

from typing import Any


class FakeRds:
    """The one paginated call the snapshot listing makes, answering the given snapshots in one page."""

    def __init__(self, snapshots: list[dict[str, Any]]) -> None:
        self.snapshots = snapshots

    def get_paginator(self, _: str) -> "FakeRds":
        return self

    def paginate(self, **_: Any) -> list[dict[str, Any]]:
        return [{"DBClusterSnapshots": self.snapshots}]
