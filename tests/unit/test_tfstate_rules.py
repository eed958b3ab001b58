"""Validating a state while streaming it, and telling state objects from everything else."""

import io
import json
import tracemalloc
from collections.abc import Iterator

import pytest

from wandb_ops.tfstate import InvalidStateError, SourceConfig, classify_key, inspect_state

STATE = {
    "version": 4,
    "terraform_version": "1.9.8",
    "serial": 12,
    "lineage": "5f0c1a7e-2b8a-4b8e-9d43-0c7a1f2e3d4b",
    "outputs": {"database_password": {"value": "s3cr3t", "type": "string", "sensitive": True}},
    "resources": [{"mode": "managed", "type": "aws_rds_cluster", "name": "default", "instances": []}] * 3,
    "check_results": None,
}
CONFIG = SourceConfig(
    backup_bucket="stack-tfstatebackupbucket-1",
    kms_key_arn="arn:aws:kms:us-east-1:123456789012:key/k",
    backend_bucket="acme-terraform",
    backend_key="wandb/terraform.tfstate",
)


def test_a_valid_state_is_summarised_without_its_content() -> None:
    raw = json.dumps(STATE).encode()
    summary = inspect_state(io.BytesIO(raw))
    assert (summary.serial, summary.lineage, summary.terraform_version, summary.resources) == (
        12,
        STATE["lineage"],
        "1.9.8",
        3,
    )
    assert summary.size == len(raw)
    assert "s3cr3t" not in repr(summary) and "s3cr3t" not in json.dumps(summary.metadata())


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"\x00\x01binary", "not valid JSON"),
        (json.dumps(STATE).encode()[:-40], "not valid JSON"),
        (b"[1, 2, 3]", "array"),
        (json.dumps({**STATE, "version": 3}).encode(), "format version 3"),
        (json.dumps({k: v for k, v in STATE.items() if k != "lineage"}).encode(), "missing lineage"),
        (json.dumps({**STATE, "serial": -1}).encode(), "serial"),
        (b"", "not valid JSON"),
    ],
    ids=["binary", "truncated", "array", "old-format", "no-lineage", "negative-serial", "empty"],
)
def test_invalid_states_are_refused_with_the_reason(raw: bytes, reason: str) -> None:
    with pytest.raises(InvalidStateError, match=reason) as refused:
        inspect_state(io.BytesIO(raw))
    assert "s3cr3t" not in str(refused.value)


class _GeneratedState:
    """A large state produced piece by piece, never held in memory whole."""

    def __init__(self, resources: int) -> None:
        self._parts = self._generate(resources)
        self._buffer = b""

    @staticmethod
    def _generate(resources: int) -> Iterator[bytes]:
        head = {k: v for k, v in STATE.items() if k != "resources"}
        yield json.dumps(head).encode()[:-1] + b', "resources": ['
        resource = json.dumps(
            {
                "mode": "managed",
                "type": "aws_s3_object",
                "name": "artifact",
                "instances": [{"attributes": {"body": "x" * 900}}],
            }
        ).encode()
        for index in range(resources):
            yield (b"," if index else b"") + resource
        yield b"]}"

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self._buffer) < size:
            try:
                self._buffer += next(self._parts)
            except StopIteration:
                break
        chunk, self._buffer = (self._buffer, b"") if size < 0 else (self._buffer[:size], self._buffer[size:])
        return chunk


def test_a_50_mb_state_is_validated_in_constant_memory() -> None:
    tracemalloc.start()
    try:
        summary = inspect_state(_GeneratedState(resources=52_000))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert summary.size > 50 * 1024 * 1024
    assert summary.resources == 52_000
    assert peak < 8 * 1024 * 1024, f"peak {peak / 1e6:.1f} MB while streaming {summary.size / 1e6:.0f} MB"


@pytest.mark.parametrize(
    ("bucket", "key", "workspace"),
    [
        ("acme-terraform", "wandb/terraform.tfstate", "backend/default"),
        ("acme-terraform", "env:/staging/wandb/terraform.tfstate", "backend/staging"),
        ("acme-terraform", "wandb/terraform.tfstate.tflock", None),
        ("acme-terraform", "env:/staging/wandb/terraform.tfstate.tflock", None),
        ("acme-terraform", "other/terraform.tfstate", None),
        ("stack-tfstatebackupbucket-1", "intake/wandb-prod/terraform.tfstate", "intake/wandb-prod"),
        ("stack-tfstatebackupbucket-1", "intake/terraform.tfstate", None),
        ("stack-tfstatebackupbucket-1", "intake/a/b/terraform.tfstate", None),
        ("stack-tfstatebackupbucket-1", "states/intake/x/y.tfstate", None),
        ("someone-else", "wandb/terraform.tfstate", None),
    ],
)
def test_state_keys_map_to_their_workspace_history(bucket: str, key: str, workspace: str | None) -> None:
    found, reason = classify_key(CONFIG, bucket, key)
    assert found == workspace
    assert bool(reason) == (workspace is None)
