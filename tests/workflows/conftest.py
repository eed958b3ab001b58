"""Fixtures shared by the workflow tests."""

import socket
from typing import Any

import pytest


@pytest.fixture
def restored_copies_resolve_to(monkeypatch: pytest.MonkeyPatch) -> None:
    """The emulator's RDS endpoints (*.rds.amazonaws.com) resolve to the local engine."""
    original = socket.getaddrinfo

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(host, str) and host.endswith(".rds.amazonaws.com"):
            host = "127.0.0.1"
        return original(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
