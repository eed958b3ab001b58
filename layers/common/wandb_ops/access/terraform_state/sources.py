"""Which objects are Terraform states: the S3 backend's key and its workspaces, and the intake
prefix of the backup bucket. Each object belongs to one workspace history; anything else (a lock
file, another key) is ignored with the reason."""

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

TFLOCK_SUFFIX = ".tflock"
# Matched with fullmatch: `$` would also accept a trailing newline, and `\d` any Unicode digit.
_WORKSPACE_NAME = re.compile(r"[A-Za-z0-9_.-]{1,90}")
_INTAKE_FILE = re.compile(r"[A-Za-z0-9_.-]{1,100}\.tfstate")


@dataclass(frozen=True)
class SourceConfig:
    """Where states come from: an S3 backend (key, and its workspaces) and the intake prefix."""

    backup_bucket: str
    kms_key_arn: str
    intake_prefix: str = "intake/"
    backend_bucket: str | None = None
    backend_key: str = "terraform.tfstate"
    workspace_key_prefix: str = "env:"


@dataclass(frozen=True)
class StateObject:
    bucket: str
    key: str
    workspace: str  # "backend/<name>" or "intake/<name>": the history it belongs to


def classify_key(config: SourceConfig, bucket: str, key: str) -> tuple[str | None, str]:
    """The workspace history an object belongs to, or None and the reason it is not a state."""
    if key.endswith(TFLOCK_SUFFIX):
        return None, "a lock file (.tflock), not a state"
    if bucket == config.backup_bucket and key.startswith(config.intake_prefix):
        return _intake_workspace(config, key)
    if bucket == config.backend_bucket:
        return _backend_workspace(config, key)
    return None, f"bucket {bucket} is not a configured state source"


def _intake_workspace(config: SourceConfig, key: str) -> tuple[str | None, str]:
    parts = key[len(config.intake_prefix) :].split("/")
    if len(parts) == 2 and _WORKSPACE_NAME.fullmatch(parts[0]) and _INTAKE_FILE.fullmatch(parts[1]):
        return f"intake/{parts[0]}", ""
    return None, (
        f"intake uploads go to {config.intake_prefix}<workspace>/terraform.tfstate "
        "(workspace and file name: letters, digits, _ . -)"
    )


def _backend_workspace(config: SourceConfig, key: str) -> tuple[str | None, str]:
    if key == config.backend_key:
        return "backend/default", ""
    prefix = f"{config.workspace_key_prefix}/"
    if key.startswith(prefix) and key.endswith(f"/{config.backend_key}"):
        name = key[len(prefix) : -len(config.backend_key) - 1]
        if _WORKSPACE_NAME.fullmatch(name):
            return f"backend/{name}", ""
    return None, f"not the backend key {config.backend_key} or one of its workspaces"


def plan_sweep(config: SourceConfig, s3: Any) -> list[StateObject]:
    """Every state object in the configured sources (the daily sweep backs each one up)."""
    found: list[StateObject] = []
    sources = [(config.backup_bucket, config.intake_prefix)]
    if config.backend_bucket:
        sources += [
            (config.backend_bucket, config.backend_key),
            (config.backend_bucket, f"{config.workspace_key_prefix}/"),
        ]
    for bucket, prefix in sources:
        for key in _list_keys(s3, bucket, prefix):
            workspace, _ = classify_key(config, bucket, key)
            if workspace:
                found.append(StateObject(bucket, key, workspace))
    return found


def _list_keys(s3: Any, bucket: str, prefix: str) -> Iterator[str]:
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            yield item["Key"]
