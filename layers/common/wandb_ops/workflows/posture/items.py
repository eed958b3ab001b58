"""What a posture item is and how one is made: a status, the evidence it was judged on, the fix,
and the numbers it publishes as CloudWatch metrics (so alarms can follow it)."""

from collections.abc import Callable
from datetime import timedelta
from enum import StrEnum

from botocore.exceptions import ClientError
from pydantic import Field

from wandb_ops.core.aws import ACCESS_DENIED_CODES, error_code
from wandb_ops.core.steps import StepOutput


class Status(StrEnum):
    OK = "ok"
    WARN = "warn"
    FAIL = "fail"


class PostureItem(StepOutput):
    id: str
    status: Status
    evidence: str
    fix: str
    metrics: dict[str, float] = Field(default_factory=dict)  # metric name -> value, published with the report


def item(item_id: str, status: Status, evidence: str, fix: str = "", **metrics: float) -> PostureItem:
    return PostureItem(id=item_id, status=status, evidence=evidence, fix=fix, metrics=metrics)


def denied(item_id: str, action: str, resource: str) -> PostureItem:
    return item(
        item_id,
        Status.WARN,
        f"could not read: {action} was denied on {resource}",
        f"allow {action} on {resource} for this stack's posture function role "
        f"(see docs/permissions.md); nothing else is needed to assess this item",
    )


def guarded(item_id: str, action: str, resource: str, check: Callable[[], list[PostureItem]]) -> list[PostureItem]:
    """The items ``check`` returns, or one warning naming the permission it was denied."""
    try:
        return check()
    except ClientError as exc:
        if error_code(exc) in ACCESS_DENIED_CODES:
            return [denied(item_id, action, resource)]
        raise


def by_age(age: timedelta, fresh: timedelta, stale: timedelta) -> Status:
    """OK up to ``fresh``, WARN up to ``stale``, FAIL beyond."""
    return Status.OK if age <= fresh else Status.WARN if age <= stale else Status.FAIL


def hours(age: timedelta) -> str:
    return f"{age.total_seconds() / 3600:.1f} h"


def in_hours(age: timedelta) -> float:
    return round(age.total_seconds() / 3600, 2)


def days(age: timedelta) -> str:
    return f"{age.days} days"
