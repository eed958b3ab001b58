"""Bounded polling for the state machines: the function says how long to wait next and
when to give up; the state machine's Wait state and loop do the waiting."""

from wandb_ops.core.steps import SparseOutput


class Poll(SparseOutput):
    """The next wait of a loop (the state machine's Wait state reads it), and whether to give up.
    A step output that drives a loop extends it."""

    attempt: int
    wait_seconds: int
    give_up: bool


def backoff(attempt: int, base_seconds: int, max_seconds: int, max_attempts: int) -> Poll:
    """Exponential backoff for a state machine's Wait state, and when to give up."""
    wait = min(base_seconds * 2**attempt, max_seconds)
    return Poll(attempt=attempt + 1, wait_seconds=wait, give_up=attempt + 1 >= max_attempts)
