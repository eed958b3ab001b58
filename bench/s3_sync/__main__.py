"""Compare S3 bucket-to-bucket sync tools on one local endpoint, in one run.

    .venv/bin/python -m bench.s3_sync [--objects 10000] [--tools aws,s5cmd,rclone,wandb-ops] [--seed 1]

Seeds a W&B-shaped source bucket once, then for each tool in turn: a first sync into a fresh
replica and an immediate no-op re-sync, each timed and with the endpoint's requests counted by
S3 operation, and the replica's listing checked against the source's after each. Prints a table
and writes the whole result to bench/s3_sync/results/<timestamp>.json. Exits 1 if a tool failed
or left a replica that differs from the source.
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

from bench.s3_sync.dataset import Comparison, compare, generate, listing, upload
from bench.s3_sync.endpoint import CREDENTIALS, REGION, Endpoint
from bench.s3_sync.tools import ALL_TOOLS, ANCHORS, Tool, ToolUnavailableError, make_tool

SOURCE_BUCKET = "wandb-bench-source"
PHASES = ("first", "no-op")
RESULTS_DIR = Path(__file__).resolve().parent / "results"
SEED_WORKERS = 32


@dataclass
class Phase:
    """One timed sync and what the endpoint saw during it."""

    phase: str
    wall_seconds: float
    requests_total: int
    requests_per_object: float
    replica_objects_written: int
    requests: dict[str, int]
    other_services: dict[str, int]
    error_responses: dict[str, int]
    objects_written_by_bucket: dict[str, int]
    replica: Comparison
    failure: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    requests_vs_aws: float | None = None
    wall_vs_fastest_anchor: float | None = None


@dataclass
class ToolResult:
    tool: str
    version: str
    defaults: str
    command: str
    phases: list[Phase]


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    arguments = parser.parse_args(argv)
    if arguments.objects < 1:
        parser.error("--objects must be at least 1")
    tools = [name.strip() for name in arguments.tools.split(",") if name.strip()]
    unknown = set(tools) - set(ALL_TOOLS)
    if unknown:
        parser.error(f"unknown tools {sorted(unknown)}; known: {', '.join(ALL_TOOLS)}")
    # wandb-ops runs with this process's environment: never let it reach a real account.
    os.environ.update({**CREDENTIALS, "AWS_REGION": REGION, "AWS_DEFAULT_REGION": REGION})
    os.environ.pop("AWS_PROFILE", None)
    started_at = datetime.now(UTC)
    started = time.perf_counter()

    objects = generate(arguments.objects, arguments.seed)
    results: list[ToolResult] = []
    skipped: dict[str, str] = {}
    with Endpoint() as endpoint, tempfile.TemporaryDirectory(prefix="s3-sync-bench-") as home:
        client = endpoint.client(connections=SEED_WORKERS)
        client.create_bucket(Bucket=SOURCE_BUCKET)
        seeding = time.perf_counter()
        upload(client, SOURCE_BUCKET, objects, arguments.seed, SEED_WORKERS)
        seed_seconds = time.perf_counter() - seeding
        source = listing(client, SOURCE_BUCKET)
        _log(f"seeded {len(source)} objects, {sum(source.values()) / 1e6:.1f} MB in {seed_seconds:.1f} s")
        for name in tools:
            replica = f"wandb-bench-replica-{name}"
            work_bucket = f"wandb-bench-work-{name}"
            try:
                tool = make_tool(name, endpoint.url, Path(home), work_bucket)
            except ToolUnavailableError as error:
                skipped[name] = str(error)
                _log(f"SKIPPED {name}: {error}")
                continue
            client.create_bucket(Bucket=replica)
            if name == "wandb-ops":
                client.create_bucket(Bucket=work_bucket)
            results.append(_measure(tool, endpoint, client, source, replica))

    _add_ratios(results)
    print(_table(results, len(source)))
    document = {
        "started_at": started_at.isoformat(),
        "duration_seconds": round(time.perf_counter() - started, 1),
        "argv": sys.argv,
        "machine": _machine(),
        "endpoint": f"moto {version('moto')} S3 server, in-process, threaded werkzeug {version('werkzeug')}",
        "dataset": {
            "objects": len(source),
            "bytes": sum(source.values()),
            "empty_objects": sum(1 for size in source.values() if size == 0),
            "largest_bytes": max(source.values(), default=0),
            "seed": arguments.seed,
            "seed_seconds": round(seed_seconds, 1),
        },
        "skipped": skipped,
        "results": [asdict(result) for result in results],
    }
    RESULTS_DIR.mkdir(exist_ok=True)
    path = RESULTS_DIR / f"{started_at:%Y%m%dT%H%M%SZ}.json"
    path.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
    _log(f"wrote {path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path}")
    _log(f"total {time.perf_counter() - started:.0f} s")
    return _verdict(results)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.s3_sync", description=__doc__.split("\n")[0])
    parser.add_argument("--objects", type=int, default=10_000, help="objects in the source bucket (default 10000)")
    parser.add_argument("--tools", default=",".join(ALL_TOOLS), help=f"comma-separated (default {','.join(ALL_TOOLS)})")
    parser.add_argument("--seed", type=int, default=1, help="dataset seed (default 1)")
    return parser


def _measure(tool: Tool, endpoint: Endpoint, client: Any, source: dict[str, int], replica: str) -> ToolResult:
    """Both phases of one tool, sequentially; a failed phase ends the tool's turn."""
    _log(f"{tool.name}: {tool.version}")
    result = ToolResult(tool.name, tool.version, tool.defaults, tool.command, [])
    for phase in PHASES:
        endpoint.counter.reset()
        started = time.perf_counter()
        failure, details = None, {}
        try:
            details = tool.sync(SOURCE_BUCKET, replica)
        except Exception as error:  # noqa: BLE001 - a failing tool is a result, not the end of the run
            failure = _describe(error)
        wall = time.perf_counter() - started
        counts = endpoint.counter.snapshot()
        check = compare(source, listing(client, replica))
        result.phases.append(
            Phase(
                phase=phase,
                wall_seconds=round(wall, 3),
                requests_total=counts.total,
                requests_per_object=round(counts.total / max(1, len(source)), 4),
                replica_objects_written=counts.written.get(replica, 0),
                requests=dict(sorted(counts.s3.items())),
                other_services=counts.other,
                error_responses=counts.errors,
                objects_written_by_bucket=counts.written,
                replica=check,
                failure=failure,
                details=details,
            )
        )
        _log(f"{tool.name} {phase}: {wall:.1f} s, {counts.total} requests, replica {'ok' if check.ok else 'DIFFERS'}")
        if failure:
            _log(f"FAILED {tool.name} {phase}: {failure}")
            break
        if not check.ok:
            _log(f"MISMATCH {tool.name} {phase}: {check}")
    return result


def _describe(error: Exception) -> str:
    if isinstance(error, subprocess.CalledProcessError) and error.stderr:
        return f"{error}: {str(error.stderr).strip()[-2000:]}"
    return f"{type(error).__name__}: {error}"


def _add_ratios(results: list[ToolResult]) -> None:
    """Requests per object against aws s3 sync's; wall time against the fastest anchor's."""
    for phase in PHASES:
        runs = [(result.tool, run) for result in results for run in result.phases if run.phase == phase]
        healthy = [(tool, run) for tool, run in runs if run.failure is None and run.replica.ok]
        aws = next((run for tool, run in healthy if tool == "aws"), None)
        fastest = min((run.wall_seconds for tool, run in healthy if tool in ANCHORS), default=None)
        for _, run in runs:
            if aws and aws.requests_total:
                run.requests_vs_aws = round(run.requests_total / aws.requests_total, 3)
            if fastest:
                run.wall_vs_fastest_anchor = round(run.wall_seconds / fastest, 2)


def _table(results: list[ToolResult], objects: int) -> str:
    header = ("tool", "phase", "wall s", "x fastest", "requests", "req/object", "x aws", "written", "replica")
    rows = [
        (
            result.tool,
            run.phase,
            f"{run.wall_seconds:.2f}",
            _ratio(run.wall_vs_fastest_anchor),
            str(run.requests_total),
            f"{run.requests_per_object:.3f}",
            _ratio(run.requests_vs_aws),
            str(run.replica_objects_written),
            "FAILED" if run.failure else "ok" if run.replica.ok else "DIFFERS",
        )
        for result in results
        for run in result.phases
    ]
    widths = [max(len(row[column]) for row in [header, *rows]) for column in range(len(header))]
    lines = [
        f"{objects} source objects; x fastest: wall time / fastest anchor's; x aws: requests / aws s3 sync's; "
        "written: objects written into the replica"
    ]
    lines += ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)) for row in [header, *rows]]
    lines.append("\nrequests by operation:")
    for result in results:
        for run in result.phases:
            operations = ", ".join(f"{name} {count}" for name, count in run.requests.items()) or "none"
            lines.append(f"  {result.tool} {run.phase}: {operations}")
            extra = {**run.other_services, **{f"error {name}": count for name, count in run.error_responses.items()}}
            if extra:
                lines.append("    also: " + ", ".join(f"{name} {count}" for name, count in extra.items()))
    for result in results:
        for run in result.phases:
            if "profile" in run.details:
                note = "CPU of its process; call seconds summed over threads"
                lines.append(f"\nwhere {result.tool}'s {run.phase} time went ({note}):")
                lines += [f"  {step}: {_step_profile(found)}" for step, found in run.details["profile"].items()]
    lines.append("\ndefaults:")
    lines += [f"  {result.tool} ({result.version}): {result.defaults}" for result in results]
    return "\n".join(lines)


def _step_profile(step: dict[str, Any]) -> str:
    calls = ", ".join(f"{name} {call['count']} in {call['seconds']:.2f} s" for name, call in step["calls"].items())
    return f"{step['wall_seconds']:.2f} s wall, {step['cpu_seconds']:.2f} s CPU; {calls or 'no calls'}"


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _machine() -> dict[str, Any]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in _read("/proc/cpuinfo").splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    memory = next(
        (line.split(":", 1)[1].strip() for line in _read("/proc/meminfo").splitlines() if "MemTotal" in line), ""
    )
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu": cpu,
        "memory": memory,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def _verdict(results: list[ToolResult]) -> int:
    bad = [f"{r.tool} {p.phase}" for r in results for p in r.phases if p.failure or not p.replica.ok]
    if bad:
        _log(f"NOT OK: {', '.join(bad)}")
        return 1
    return 0


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
