"""The steps of the terraform state backup workflow, as the function performs them:
plan (which objects to back up), backup (one object), report (what happened)."""

import os
from collections import Counter
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import Field, RootModel, model_validator

from wandb_ops.access.terraform_state import SourceConfig, StateObject, classify_key, plan_sweep
from wandb_ops.core.errors import ConfigurationError
from wandb_ops.core.models import StrictModel

# S3's characters (legacy us-east-1 names included): the name is echoed in the run's output.
_BUCKET_NAME = r"^[A-Za-z0-9._-]{3,63}$"


class BackupRequest(StrictModel):
    """Workflow input: one object (from the S3 event rule, or by hand), or a sweep of every source."""

    sweep: bool = False
    bucket: str | None = Field(default=None, pattern=_BUCKET_NAME)
    key: str | None = Field(default=None, min_length=1, max_length=1024)
    source: Literal["event", "schedule", "console", "demo", "test"] = "console"

    @model_validator(mode="after")
    def _one_target(self) -> "BackupRequest":
        if self.sweep == bool(self.bucket and self.key):
            raise ValueError('give either "sweep": true, or both "bucket" and "key" of one state object')
        return self


class StateObjectInput(StrictModel):
    bucket: str = Field(pattern=_BUCKET_NAME)
    key: str = Field(min_length=1, max_length=1024)
    workspace: str = Field(pattern=r"^(backend|intake)/[A-Za-z0-9_.-]{1,90}$")


class PlanTask(StrictModel):
    action: Literal["plan"]
    input: BackupRequest
    execution: str | None = None


class BackupTask(StrictModel):
    action: Literal["backup"]
    object: StateObjectInput
    execution: str | None = None


class ReportTask(StrictModel):
    action: Literal["report"]
    results: list[dict[str, Any]]
    ignored: list[dict[str, str]] = Field(default_factory=list)
    execution: str | None = None


class TfStateTask(RootModel[Annotated[PlanTask | BackupTask | ReportTask, Field(discriminator="action")]]):
    pass


def source_config_from_env(environ: Mapping[str, str] | None = None) -> SourceConfig:
    env = os.environ if environ is None else environ
    backup_bucket = env.get("TFSTATE_BACKUP_BUCKET", "").strip()
    kms_key_arn = env.get("TFSTATE_KMS_KEY_ARN", "").strip()
    if not backup_bucket or not kms_key_arn:
        raise ConfigurationError("TFSTATE_BACKUP_BUCKET and TFSTATE_KMS_KEY_ARN must be set: redeploy the stack")
    return SourceConfig(
        backup_bucket=backup_bucket,
        kms_key_arn=kms_key_arn,
        intake_prefix=env.get("TFSTATE_INTAKE_PREFIX", "intake/"),
        backend_bucket=env.get("TFSTATE_BACKEND_BUCKET", "").strip() or None,
        backend_key=env.get("TFSTATE_BACKEND_KEY", "terraform.tfstate"),
        workspace_key_prefix=env.get("TFSTATE_WORKSPACE_KEY_PREFIX", "env:"),
    )


def plan(config: SourceConfig, s3: Any, request: BackupRequest) -> dict[str, Any]:
    if request.sweep:
        objects = plan_sweep(config, s3)
        return {"objects": [vars(obj) for obj in objects], "ignored": []}
    assert request.bucket and request.key  # guaranteed by BackupRequest
    workspace, reason = classify_key(config, request.bucket, request.key)
    if workspace is None:
        return {"objects": [], "ignored": [{"key": request.key, "reason": reason}]}
    return {"objects": [vars(StateObject(request.bucket, request.key, workspace))], "ignored": []}


def report(results: list[dict[str, Any]], ignored: list[dict[str, str]]) -> dict[str, Any]:
    outcomes = Counter(result["outcome"] for result in results)
    anomalies = [result for result in results if result["outcome"] == "anomaly"]
    lines = [
        f"Terraform state backup: {outcomes['stored']} stored, {outcomes['duplicate']} already backed up, "
        f"{len(anomalies)} anomalies, {len(ignored)} ignored."
    ]
    for anomaly in anomalies:
        lines.append(f"- {anomaly['workspace']} ({anomaly['source_key']}): {anomaly['anomaly']}: {anomaly['detail']}")
        lines.append(f"  kept at {anomaly['backup_key']}; the backup history was not changed")
    if anomalies:
        lines.append("Runbook: docs/tfstate-backup.md, section 'Anomalies'.")
    return {
        "stored": outcomes["stored"],
        "duplicate": outcomes["duplicate"],
        "anomaly_count": len(anomalies),
        "ignored": ignored,
        "results": results,
        "text": "\n".join(lines),
    }
