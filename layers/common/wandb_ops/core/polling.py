"""Bounded polling for the state machines: the function says how long to wait next and
when to give up; the state machine's Wait state and loop do the waiting."""

from typing import Any


def backoff(attempt: int, base_seconds: int, max_seconds: int, max_attempts: int) -> dict[str, Any]:
    """Exponential backoff for a state machine's Wait state, and when to give up."""
    wait = min(base_seconds * 2**attempt, max_seconds)
    return {"attempt": attempt + 1, "wait_seconds": wait, "give_up": attempt + 1 >= max_attempts}
