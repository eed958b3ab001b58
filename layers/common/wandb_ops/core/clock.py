"""The clock the handlers give the domain code (tests give theirs). Its own module, so a function
that needs only the time does not import the posture or the rotation policy to get it."""

from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)
