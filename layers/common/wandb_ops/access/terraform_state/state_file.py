"""Reading a Terraform state: one streaming pass over any size of file that checks every top-level
field against the shape Terraform writes and counts, hashes and (optionally) copies the bytes.

Whoever can write the backend or the intake prefix chooses these bytes: nothing here returns the
content. A field of the wrong shape is named with the shape it should have, never with its value.
"""

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, BinaryIO, Protocol

import ijson

from wandb_ops.core.errors import WandbOpsError

STATE_FORMAT_VERSION = 4
_CHUNK = 1024 * 1024
# What Terraform writes (a random UUID, lowercase); it becomes part of backup keys.
LINEAGE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_TERRAFORM_VERSION = re.compile(r"[0-9]{1,4}\.[0-9]{1,4}\.[0-9]{1,4}(-[0-9A-Za-z.-]{1,64})?(\+[0-9A-Za-z.-]{1,64})?")
_MAX_SERIAL = 2**64 - 1  # Terraform's serial is a uint64
# Each top-level field checked: (event, value) -> does it have the shape Terraform writes.
# A message names the field and the shape, never the value.
_FIELDS: dict[str, tuple[str, Callable[[str, Any], bool]]] = {
    "version": (
        f"the number {STATE_FORMAT_VERSION}",
        lambda _, value: type(value) is int and value == STATE_FORMAT_VERSION,  # 4.0 is not what Terraform writes
    ),
    "terraform_version": (
        "a Terraform version such as 1.9.8 or 1.10.0-beta1",
        lambda event, value: event == "string" and _TERRAFORM_VERSION.fullmatch(value) is not None,
    ),
    "serial": (
        "a non-negative integer (at most 2^64-1)",
        lambda _, value: type(value) is int and 0 <= value <= _MAX_SERIAL,
    ),
    "lineage": (
        "a lowercase UUID (8-4-4-4-12 hex digits, as Terraform writes it)",
        lambda event, value: event == "string" and LINEAGE.fullmatch(value) is not None,
    ),
    "resources": ("a JSON array of objects", lambda event, _: event == "start_array"),
    "outputs": ("a JSON object", lambda event, _: event == "start_map"),
}
_REQUIRED = ("version", "terraform_version", "serial", "lineage")
_VALUE_EVENTS = frozenset({"null", "boolean", "number", "string", "start_map", "start_array"})


class Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


class InvalidStateError(WandbOpsError):
    """The object is not a usable Terraform state (not JSON, truncated, a field not of the shape Terraform writes)."""


@dataclass(frozen=True)
class StateSummary:
    sha256: str
    size: int
    version: int
    terraform_version: str
    serial: int
    lineage: str
    resources: int

    def metadata(self) -> dict[str, str]:
        return {
            "sha256": self.sha256,
            "serial": str(self.serial),
            "lineage": self.lineage,
            "terraform-version": self.terraform_version,
            "resources": str(self.resources),
        }


class _HashingReader:
    """A file-like view of a stream that hashes and counts every byte read through it."""

    def __init__(self, stream: Readable, copy_to: BinaryIO | None = None) -> None:
        self._stream = stream
        self._copy_to = copy_to
        self.digest = hashlib.sha256()
        self.size = 0

    def read(self, size: int = -1) -> bytes:
        chunk = self._stream.read(size)
        self.digest.update(chunk)
        self.size += len(chunk)
        if self._copy_to is not None:
            self._copy_to.write(chunk)
        return chunk

    def drain(self) -> None:
        while self.read(_CHUNK):
            pass


def inspect_state(stream: Readable, copy_to: BinaryIO | None = None) -> StateSummary:
    """Validate a state file in one streaming pass (constant memory, any size), optionally
    writing the bytes it reads to ``copy_to``."""
    reader = _HashingReader(stream, copy_to)
    fields: dict[str, tuple[str, Any]] = {}
    repeated: set[str] = set()
    resources = 0
    try:
        for prefix, event, value in ijson.parse(reader, use_float=True):
            if prefix == "" and event in _VALUE_EVENTS and event != "start_map":
                kind = {"start_array": "array"}.get(event, event)
                raise InvalidStateError(f"the top level is a JSON {kind}, not a state object")
            if prefix == "" and event == "map_key" and value in _FIELDS:
                if value in fields:
                    repeated.add(value)
            elif prefix in _FIELDS and event in _VALUE_EVENTS and prefix not in fields:
                fields[prefix] = (event, value)
            elif prefix == "resources.item" and event in _VALUE_EVENTS:
                resources += 1
                if event != "start_map":
                    fields["resources"] = (event, value)  # not an array of objects
    except UnicodeDecodeError:
        raise InvalidStateError("not valid JSON (not UTF-8 text)") from None
    except (ijson.common.JSONError, ValueError):  # ValueError: a number Python will not convert
        raise InvalidStateError("not valid JSON (corrupt or truncated)") from None
    reader.drain()
    problems = [f"field '{name}' appears more than once" for name in sorted(repeated)]
    problems += [
        f"field '{name}' must be {shape}"
        for name, (shape, has_shape) in _FIELDS.items()
        if not (has_shape(*fields[name]) if name in fields else name not in _REQUIRED)
    ]
    if problems:
        raise InvalidStateError("not a Terraform state: " + "; ".join(problems))
    return StateSummary(
        sha256=reader.digest.hexdigest(),
        size=reader.size,
        version=fields["version"][1],
        terraform_version=fields["terraform_version"][1],
        serial=fields["serial"][1],
        lineage=fields["lineage"][1],
        resources=resources,
    )
