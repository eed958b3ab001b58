"""Validating a state while streaming it, and telling state objects from everything else."""

import io
import json
import shlex
import tracemalloc
from collections.abc import Iterator

import pytest

from wandb_ops.access.terraform_state.sources import SourceConfig, classify_key
from wandb_ops.access.terraform_state.state_file import InvalidStateError, inspect_state
from wandb_ops.core.errors import InvalidInputError
from wandb_ops.core.validation import parse_event
from wandb_ops.workflows.tfstate_backup.tasks import BackupRequest
from wandb_ops.workflows.tfstate_restore.restore import RestoreRequest, fetch_command

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
        (json.dumps({**STATE, "version": 3}).encode(), "field 'version' must be the number 4"),
        (json.dumps({k: v for k, v in STATE.items() if k != "lineage"}).encode(), "field 'lineage' must be"),
        (json.dumps({**STATE, "serial": -1}).encode(), "field 'serial' must be a non-negative integer"),
        (b"", "not valid JSON"),
    ],
    ids=["binary", "truncated", "array", "old-format", "no-lineage", "negative-serial", "empty"],
)
def test_invalid_states_are_refused_with_the_reason(raw: bytes, reason: str) -> None:
    with pytest.raises(InvalidStateError, match=reason) as refused:
        inspect_state(io.BytesIO(raw))
    assert "s3cr3t" not in str(refused.value)


# In every crafted value below: finding it in a message means the message quoted the state.
MARKER = "crafted7c1e"
_CRAFTED_LINEAGES = {
    "command-substitution": f"$(touch /tmp/{MARKER})",
    "semicolon": f"x; rm -rf ~ # {MARKER}",
    "quotes": f"{MARKER} \"double\" 'single' `backtick`",
    "newline": f"5f0c1a7e-2b8a-4b8e-9d43-0c7a1f2e3d4b\n{MARKER}",
    "control-characters": f"{MARKER}\x1b[31m\x00\x07",
    "non-ascii": f"{MARKER}-lignée-🚀",
    "overlong": MARKER + "a" * 100_000,
    "path": f"../../{MARKER}/x",
    "uppercase-uuid": "5F0C1A7E-2B8A-4B8E-9D43-0C7A1F2E3D4B",
    "uuid-with-trailing-newline": "5f0c1a7e-2b8a-4b8e-9d43-0c7a1f2e3d4b\n",
    "unicode-digits": "\u0665f0c1a7e-2b8a-4b8e-9d43-0c7a1f2e3d4b",
    "braces": "{5f0c1a7e-2b8a-4b8e-9d43-0c7a1f2e3d4b}",
    "empty": "",
}


@pytest.mark.parametrize("lineage", _CRAFTED_LINEAGES.values(), ids=_CRAFTED_LINEAGES.keys())
def test_only_a_lowercase_uuid_is_a_lineage_and_the_value_is_never_repeated(lineage: str) -> None:
    with pytest.raises(InvalidStateError, match="field 'lineage' must be a lowercase UUID") as refused:
        inspect_state(io.BytesIO(json.dumps({**STATE, "lineage": lineage}, ensure_ascii=False).encode()))
    message = str(refused.value)
    assert message.isascii() and message.isprintable()
    assert MARKER not in message and "s3cr3t" not in message


_WRONG_TYPES = {
    "list": [MARKER],
    "object": {MARKER: MARKER},
    "bool": True,
    "null": None,
    "float": 1.5,
    "int": 12,
    "text": f"{MARKER} arbitrary text",
}
_VALID = {("serial", "int"), ("outputs", "object")}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        pytest.param(field, value, id=f"{field}-{kind}")
        for field in ("version", "terraform_version", "serial", "lineage", "resources", "outputs")
        for kind, value in _WRONG_TYPES.items()
        if (field, kind) not in _VALID
    ],
)
def test_every_top_level_field_of_a_wrong_shape_is_named_never_quoted(field: str, value: object) -> None:
    state = {**STATE, field: value}
    with pytest.raises(InvalidStateError, match=f"field '{field}' must be") as refused:
        inspect_state(io.BytesIO(json.dumps(state).encode()))
    assert MARKER not in str(refused.value) and "arbitrary" not in str(refused.value)


@pytest.mark.parametrize(
    ("state", "reason"),
    [
        ({**STATE, "version": 4.0}, "field 'version' must be the number 4"),
        ({**STATE, "version": f"4 {MARKER}"}, "field 'version' must be the number 4"),
        # Past int64 the C parser refuses the number itself; the pure-Python one reads it.
        ({**STATE, "serial": 2**64}, "field 'serial'|not valid JSON"),
        (json.dumps(STATE).replace('"serial": 12', '"serial": ' + "9" * 5000), "field 'serial'|not valid JSON"),
        ({**STATE, "serial": 12.0}, "field 'serial'"),
        ({**STATE, "terraform_version": f"1.9.8; {MARKER}"}, "field 'terraform_version'"),
        ({**STATE, "terraform_version": f"1.9.8-{MARKER}é"}, "field 'terraform_version'"),
        ({**STATE, "terraform_version": "1.9.8\n"}, "field 'terraform_version'"),
        ({**STATE, "terraform_version": "1.9.8-" + MARKER * 100}, "field 'terraform_version'"),
        ({**STATE, "terraform_version": "v1.9.8"}, "field 'terraform_version'"),
    ],
    ids=[
        "version-float",
        "version-text",
        "serial-past-uint64",
        "serial-5000-digits",
        "serial-float",
        "tf-version-shell",
        "tf-version-non-ascii",
        "tf-version-newline",
        "tf-version-overlong",
        "tf-version-prefixed",
    ],
)
def test_version_serial_and_terraform_version_must_have_terraforms_shape(
    state: dict[str, object] | str, reason: str
) -> None:
    raw = state if isinstance(state, str) else json.dumps(state, ensure_ascii=False)
    with pytest.raises(InvalidStateError, match=reason) as refused:
        inspect_state(io.BytesIO(raw.encode()))
    assert MARKER not in str(refused.value) and str(refused.value).isascii()


@pytest.mark.parametrize("version", ["1.9.8", "1.10.0-beta1", "0.12.31", "1.11.0-alpha20241106", "1.6.0-rc1+abc"])
def test_terraform_versions_as_terraform_writes_them_are_accepted(version: str) -> None:
    assert inspect_state(
        io.BytesIO(json.dumps({**STATE, "terraform_version": version}).encode())
    ).terraform_version == (version)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        # Valid UTF-8 framing around an encoded surrogate: the JSON parser passes it, decoding fails.
        (json.dumps(STATE).encode().replace(b'"1.9.8"', b'"\xed\xa0\x80"'), "not UTF-8"),
        (json.dumps(STATE).encode().replace(b'"1.9.8"', f'"\xff{MARKER}"'.encode("latin-1")), "not valid JSON"),
        (json.dumps(STATE).encode()[:-1] + f', "lineage": "{MARKER}"}}'.encode(), "'lineage' appears more than once"),
        (json.dumps(MARKER).encode(), "the top level is a JSON string"),
        (b"null", "the top level is a JSON null"),
        (f'{{"version": {MARKER}}}'.encode(), "not valid JSON"),
    ],
    ids=["surrogate", "invalid-utf8", "duplicate-lineage", "top-level-string", "top-level-null", "bare-word"],
)
def test_malformed_bytes_are_refused_without_crashing_or_quoting(raw: bytes, reason: str) -> None:
    with pytest.raises(InvalidStateError, match=reason) as refused:
        inspect_state(io.BytesIO(raw))
    assert MARKER not in str(refused.value) and "s3cr3t" not in str(refused.value)


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
        # Names that `$` and `.match` let through: a trailing newline, or characters a shell reads.
        ("acme-terraform", "env:/staging\n/wandb/terraform.tfstate", None),
        ("stack-tfstatebackupbucket-1", "intake/wandb-prod\n/terraform.tfstate", None),
        ("stack-tfstatebackupbucket-1", "intake/wandb-prod/$(touch x).tfstate", None),
        ("stack-tfstatebackupbucket-1", "intake/wandb-prod/it's.tfstate", None),
        ("stack-tfstatebackupbucket-1", "intake/wandb-prod/état.tfstate", None),
        ("stack-tfstatebackupbucket-1", "intake/wandb-prod/a\nb.tfstate", None),
        ("stack-tfstatebackupbucket-1", "intake/wandb-prod/other.tfstate", "intake/wandb-prod"),
    ],
)
def test_state_keys_map_to_their_workspace_history(bucket: str, key: str, workspace: str | None) -> None:
    found, reason = classify_key(CONFIG, bucket, key)
    assert found == workspace
    assert bool(reason) == (workspace is None)


@pytest.mark.parametrize(
    ("bucket", "key"),
    [
        ("stack-tfstatebackupbucket-1", "states/intake/wandb-prod/5f0c1a7e-2b8a-4b8e-9d43-0c7a1f2e3d4b/x.tfstate"),
        ("my bucket", 'states/it\'s a "key"/$(touch /tmp/x); rm -rf ~ `id`\n.tfstate'),
    ],
    ids=["usual", "spaces-quotes-substitutions"],
)
def test_the_printed_fetch_command_passes_each_argument_through_a_shell_unchanged(bucket: str, key: str) -> None:
    command = fetch_command(bucket, key)
    assert shlex.split(command) == [
        "python",
        "scripts/tfstate_restore.py",
        "fetch",
        "--bucket",
        bucket,
        "--key",
        key,
        "--out",
        "terraform.tfstate",
    ]


def test_a_restore_request_takes_only_a_uuid_lineage_and_does_not_repeat_another() -> None:
    lineage = STATE["lineage"]
    assert parse_event(RestoreRequest, {"workspace": "intake/w", "serial": 1, "lineage": lineage}).lineage == lineage
    with pytest.raises(InvalidInputError, match="field 'lineage'") as refused:
        parse_event(RestoreRequest, {"workspace": "intake/w", "serial": 1, "lineage": f"x'; {MARKER}"})
    assert MARKER not in str(refused.value)


@pytest.mark.parametrize("bucket", ["my bucket", f"b$(touch {MARKER})", "bkt\n", "bücket"])
def test_a_backup_request_takes_only_an_s3_bucket_name_and_does_not_repeat_another(bucket: str) -> None:
    with pytest.raises(InvalidInputError, match="field 'bucket'") as refused:
        parse_event(BackupRequest, {"bucket": bucket, "key": "intake/w/terraform.tfstate"})
    assert MARKER not in str(refused.value)
    assert parse_event(BackupRequest, {"bucket": "legacy_Bucket.1", "key": "k"}).bucket == "legacy_Bucket.1"
