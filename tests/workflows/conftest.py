"""Fixtures shared by the workflow tests."""

import os
import socket
from typing import Any

import pytest

from tests.rig.terraform import Terraform, TerraformUnavailable, modern_terraform, pinned_terraform


@pytest.fixture
def restored_copies_resolve_to(monkeypatch: pytest.MonkeyPatch) -> None:
    """The emulator's RDS endpoints (*.rds.amazonaws.com) resolve to the local engine."""
    original = socket.getaddrinfo

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(host, str) and host.endswith(".rds.amazonaws.com"):
            host = "127.0.0.1"
        return original(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


def _modern_or_skip() -> Terraform:
    """Terraform 1.10 or newer; skipped with the reason when there is none, failed in CI."""
    try:
        return modern_terraform()
    except TerraformUnavailable as exc:
        if os.environ.get("CI"):
            pytest.fail(f"{exc} (CI runs the state backup tests against a modern Terraform too)")
        pytest.skip(str(exc))


@pytest.fixture(scope="session", params=["pinned", "modern"], ids=["terraform-1.0.3", "terraform-modern"])
def terraform(request: pytest.FixtureRequest) -> Terraform:
    """Each Terraform the rig finds: the pinned 1.0.3, and 1.10 or newer when there is one."""
    return pinned_terraform() if request.param == "pinned" else _modern_or_skip()


@pytest.fixture(scope="session")
def lockfile_terraform() -> Terraform:
    """A Terraform with S3-native locking (use_lockfile, 1.10 or newer)."""
    return _modern_or_skip()
