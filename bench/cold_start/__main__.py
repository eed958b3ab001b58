"""Cold start, as far as this machine can show it: how long each function's handler module takes
to import in a fresh interpreter (``python -X importtime``), against importing boto3 alone, and
how big each built function and the shared layer are (``sam build``).

    .venv/bin/python -m bench.cold_start [--runs 7] [--sam-build]

Import time is the sum of every module's own time that ``-X importtime`` reports, median of
``--runs`` fresh interpreters. Writes bench/cold_start/results/<timestamp>.json and prints a table
with each handler's ratio to the boto3 anchor measured in the same run (target: 1.3x at most).
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
LAYER = REPO_ROOT / "layers" / "common"
RESULTS = Path(__file__).resolve().parent / "results"
TARGET_RATIO = 1.3
SAM = REPO_ROOT / ".tools" / "sam" / "bin" / "sam"


def import_profile(statement: str, cwd: Path) -> tuple[float, dict[str, float]]:
    """Seconds spent importing (sum of the modules' own times) and the seconds per top-level package.

    The environment is the one Lambda gives a function: the X-Ray SDK looks for LAMBDA_TASK_ROOT
    and, without it, builds a sampler with two botocore clients (about 110 ms) that no function
    ever builds in Lambda.
    """
    environment = {
        **os.environ,
        "PYTHONPATH": str(LAYER),
        "AWS_REGION": "us-east-1",
        "AWS_LAMBDA_FUNCTION_NAME": cwd.name,
        "LAMBDA_TASK_ROOT": str(cwd),
        "POWERTOOLS_SERVICE_NAME": "wandb-ops",
        "PYTHONDONTWRITEBYTECODE": "",
    }
    finished = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", statement],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        check=True,
    )
    per_package: defaultdict[str, float] = defaultdict(float)
    for line in finished.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        own, _cumulative, name = (part.strip() for part in line.removeprefix("import time:").split("|"))
        per_package[name.split(".")[0]] += int(own) / 1e6
    return sum(per_package.values()), dict(per_package)


def measure(statement: str, cwd: Path, runs: int) -> dict[str, Any]:
    import_profile(statement, cwd)  # warm the bytecode cache and the file system cache once
    profiles = [import_profile(statement, cwd) for _ in range(runs)]
    totals = [total for total, _ in profiles]
    median_run = sorted(profiles, key=lambda profile: profile[0])[runs // 2][1]
    return {
        "median_seconds": round(statistics.median(totals), 4),
        "min_seconds": round(min(totals), 4),
        "max_seconds": round(max(totals), 4),
        "heaviest_packages": {
            name: round(seconds, 4) for name, seconds in sorted(median_run.items(), key=lambda item: -item[1])[:8]
        },
    }


def directory_bytes(path: Path) -> int:
    return sum(item.stat().st_size for item in path.rglob("*") if item.is_file())


def package_sizes() -> dict[str, int]:
    """``sam build`` (no container) and the size of each built artifact."""
    subprocess.run(
        [str(SAM), "build", "--parallel", "--cached"],
        cwd=REPO_ROOT,
        # SAM looks for python3.13 on the PATH: this interpreter's directory has it.
        env={**os.environ, "SAM_CLI_TELEMETRY": "0", "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"},
        check=True,
        capture_output=True,
    )
    build = REPO_ROOT / ".aws-sam" / "build"
    return {item.name: directory_bytes(item) for item in sorted(build.iterdir()) if item.is_dir()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--sam-build", action="store_true", help="also build with sam and report package sizes")
    arguments = parser.parse_args()

    anchor = measure("import boto3", REPO_ROOT, arguments.runs)
    handlers = {}
    for function in sorted((REPO_ROOT / "functions").iterdir()):
        if (function / "app.py").is_file():
            found = measure("import app", function, arguments.runs)
            found["ratio_to_boto3"] = round(found["median_seconds"] / anchor["median_seconds"], 2)
            handlers[function.name] = found
    result: dict[str, Any] = {
        "measured_at": datetime.now(UTC).isoformat(),
        "machine": {"python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count()},
        "runs": arguments.runs,
        "anchor_import_boto3": anchor,
        "handlers": handlers,
        "target_ratio": TARGET_RATIO,
    }
    if arguments.sam_build:
        result["package_bytes"] = package_sizes()

    print(f"import boto3 alone: {anchor['median_seconds'] * 1000:.0f} ms (median of {arguments.runs})")
    print(f"{'function':<22}{'import ms':>10}{'x boto3':>9}  heaviest packages")
    for name, found in handlers.items():
        heaviest = ", ".join(
            f"{package} {seconds * 1000:.0f}" for package, seconds in found["heaviest_packages"].items()
        )
        flag = "" if found["ratio_to_boto3"] <= TARGET_RATIO else "  (over target)"
        print(f"{name:<22}{found['median_seconds'] * 1000:>10.0f}{found['ratio_to_boto3']:>9.2f}  {heaviest}{flag}")
    for name, size in result.get("package_bytes", {}).items():
        print(f"built {name}: {size / 1e6:.1f} MB")
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written to {path.relative_to(REPO_ROOT)}")
    over = [name for name, found in handlers.items() if found["ratio_to_boto3"] > TARGET_RATIO]
    return 1 if over else 0


if __name__ == "__main__":
    sys.exit(main())
