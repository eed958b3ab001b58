"""wandb-ops' replica sync as one command, for the benchmark: the workflow's real steps
(prepare, plan per shard, manifest, copy per batch, verify, summary) in the order and with the
parallelism the state machine gives them, in a fresh Python process (as a cold function).

Step Functions runs the plans and the copy batches on separate Lambda functions; here they run
in threads of one process: MAP_CONCURRENCY batches at once, each with the function's own
S3_SYNC_COPY_CONCURRENCY (32) copies, so at most 256 copies in flight, as s5cmd's default.

The summary it returns carries a profile of where the time went: for each step, its wall time,
the CPU time of this process (all threads), and the AWS calls made with the time spent inside
them (summed over threads, so it can exceed the wall time).
"""

import json
import os
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
MAP_CONCURRENCY = 8
COPY_CONCURRENCY = 32


def sync(endpoint_url: str, source: str, replica: str, work_bucket: str) -> dict[str, Any]:
    """Run one sync in a child process and return the workflow's summary."""
    environment = {
        **os.environ,
        "AWS_ENDPOINT_URL": endpoint_url,
        "PYTHONPATH": str(REPO_ROOT / "layers" / "common"),
        "POWERTOOLS_METRICS_DISABLED": "true",
        "POWERTOOLS_LOG_LEVEL": "WARNING",  # stdout carries the summary only
        "WANDB_OPS_STACK": "bench",
    }
    completed = subprocess.run(
        [sys.executable, "-m", "bench.s3_sync.ours", source, replica, work_bucket],
        cwd=REPO_ROOT,
        env=environment,
        capture_output=True,
        text=True,
        check=True,
    )
    summary: dict[str, Any] = json.loads(completed.stdout)
    return summary


class Profile:
    """Wall and CPU seconds per step, and AWS calls with the seconds spent inside them."""

    def __init__(self) -> None:
        self.steps: dict[str, dict[str, Any]] = {}
        self._current = ""
        self._lock = threading.Lock()

    def watch(self, client: Any) -> None:
        client.meta.events.register("before-call", self._before)
        client.meta.events.register("after-call", self._after)

    def _before(self, context: dict[str, Any], **_: Any) -> None:
        context["bench_started"] = time.perf_counter()

    def _after(self, context: dict[str, Any], model: Any, **_: Any) -> None:
        seconds = time.perf_counter() - context["bench_started"]
        with self._lock:
            calls = self.steps[self._current]["calls"][model.name]
            calls["count"] += 1
            calls["seconds"] += seconds

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        self._current = name
        self.steps[name] = {"calls": defaultdict(lambda: {"count": 0, "seconds": 0.0})}
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            yield
        finally:
            found = self.steps[name]
            found["wall_seconds"] = round(time.perf_counter() - wall, 3)
            found["cpu_seconds"] = round(time.process_time() - cpu, 3)
            found["calls"] = {
                operation: {"count": call["count"], "seconds": round(call["seconds"], 3)}
                for operation, call in sorted(found["calls"].items())
            }


def _run(source: str, replica: str, work_bucket: str) -> dict[str, Any]:
    # The layer is on PYTHONPATH in the child process only.
    from wandb_ops.core import aws  # noqa: PLC0415
    from wandb_ops.core.observability import metrics  # noqa: PLC0415
    from wandb_ops.workflows.s3_sync.replica import REPLICA  # noqa: PLC0415
    from wandb_ops.workflows.s3_sync.runs import Clients  # noqa: PLC0415
    from wandb_ops.workflows.s3_sync.settings import S3SyncSettings  # noqa: PLC0415
    from wandb_ops.workflows.s3_sync.steps import Deps, copy, manifest, plan, prepare, summary, verify  # noqa: PLC0415
    from wandb_ops.workflows.s3_sync.tasks import (  # noqa: PLC0415
        CopyTask,
        ManifestTask,
        PlanTask,
        PrepareTask,
        SummaryTask,
        SyncRequest,
        VerifyTask,
    )

    settings = S3SyncSettings.from_env(
        {
            "S3_SYNC_PURPOSE": "replica",
            "S3_SYNC_SOURCE_BUCKET": source,
            "S3_SYNC_REPLICA_BUCKET": replica,
            "S3_SYNC_WORK_BUCKET": work_bucket,
            "S3_SYNC_WORK_PREFIX": "s3-sync",
            "S3_SYNC_PLAN_SHARDS": "64",
            "S3_SYNC_OBJECTS_PER_SHARD": str(2_000_000),
            "S3_SYNC_PLAN_CHUNK_OBJECTS": str(50_000_000),
            "S3_SYNC_BATCH_OBJECTS": "1000",
            "S3_SYNC_BATCH_BYTES": str(100 * 1024**3),
            "S3_SYNC_COPY_CONCURRENCY": str(COPY_CONCURRENCY),
            "S3_SYNC_MULTIPART_THRESHOLD": str(5 * 1024**3),
            "S3_SYNC_PART_SIZE": str(512 * 1024**2),
            "S3_SYNC_TOLERATED_FAILURES": "0",
            "S3_SYNC_VERIFY_SAMPLE": "20",
        }
    )
    s3 = aws.client("s3", connections=MAP_CONCURRENCY * COPY_CONCURRENCY)
    cloudwatch, kms = aws.client("cloudwatch"), aws.client("kms")
    profile = Profile()
    for client in (s3, cloudwatch, kms):
        profile.watch(client)
    clients = Clients(source=s3, replica=s3, work=s3, cloudwatch=cloudwatch, kms=kms)
    # One process has no 15-minute limit: each range is planned in one call.
    deps = Deps(settings, REPLICA, clients, out_of_time=lambda: False)
    with profile.step("prepare"):
        run = prepare(PrepareTask(action="prepare", input=SyncRequest(mode="sync").model_dump()), deps)
    with profile.step("plan"), ThreadPoolExecutor(MAP_CONCURRENCY) as pool:
        plans = list(pool.map(lambda shard: plan(PlanTask(action="plan", run=run, shard=shard), deps), run.shards))
    with profile.step("manifest"):
        written = manifest(ManifestTask(action="manifest", run=run, plans=plans), deps)
    with profile.step("copy"):
        if run.copy_objects and written.key and written.batches:
            body = s3.get_object(Bucket=work_bucket, Key=written.key)["Body"].read()
            batches = [item["batch"] for item in json.loads(body)]
            with ThreadPoolExecutor(MAP_CONCURRENCY) as pool:
                list(pool.map(lambda batch: copy(CopyTask(action="copy", run=run, batch=batch), deps), batches))
    with profile.step("verify"):
        checked = verify(VerifyTask(action="verify", run=run), deps)
    with profile.step("summary"):
        # The summary publishes the run's metrics, as in the function (where the handler collects them).
        summarized = metrics.log_metrics(summary)
        result = summarized(SummaryTask(action="summary", run=run, plans=plans, verify=checked), deps)
    return {**result.model_dump(mode="json"), "profile": profile.steps}


if __name__ == "__main__":
    print(json.dumps(_run(*sys.argv[1:4])))
