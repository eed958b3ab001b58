"""Per-invocation environment variables for in-process Lambda handlers.

Real Lambda gives every function its own process and environment. The rig runs
handlers in threads of one process, so ``os.environ`` is replaced by a mapping that
shows each invoking thread the environment of the function it runs, and everyone
else the process environment. Threads a handler starts itself see the process
environment: read settings in the handler thread and pass them down (the project's
code does).
"""

import os
import threading
from collections.abc import Iterator, Mapping, MutableMapping
from contextlib import contextmanager


class InvocationEnviron(MutableMapping[str, str]):
    def __init__(self, process_environ: MutableMapping[str, str]) -> None:
        self._process = process_environ
        self._local = threading.local()

    def _current(self) -> MutableMapping[str, str]:
        overlay: dict[str, str] | None = getattr(self._local, "env", None)
        return self._process if overlay is None else overlay

    def __getitem__(self, key: str) -> str:
        return self._current()[key]

    def __setitem__(self, key: str, value: str) -> None:
        self._current()[key] = value

    def __delitem__(self, key: str) -> None:
        del self._current()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._current()))

    def __len__(self) -> int:
        return len(self._current())

    def copy(self) -> dict[str, str]:
        return dict(self._current())

    @contextmanager
    def function_environment(self, variables: Mapping[str, str]) -> Iterator[None]:
        """Inside the block, this thread sees the process environment overlaid with ``variables``."""
        previous = getattr(self._local, "env", None)
        self._local.env = {**self._process, **variables}
        try:
            yield
        finally:
            self._local.env = previous


def install() -> InvocationEnviron:
    """Replace os.environ once per process (idempotent) and return the mapping."""
    if isinstance(os.environ, InvocationEnviron):
        return os.environ
    environ = InvocationEnviron(os.environ)
    os.environ = environ  # type: ignore[assignment]  # noqa: B003 - replacing the mapping is the point
    return environ
