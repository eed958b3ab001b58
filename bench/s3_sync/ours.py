"""wandb-ops' replica sync as one command, for the benchmark: the workflow's real steps
(prepare, plan per shard, manifest, copy per batch, verify, summary) in the order and with the
parallelism the state machine gives them, in a fresh Python process (as a cold function).

Step Functions runs the plans and the copy batches on separate Lambda functions; here they run
in threads of one process: MAP_CONCURRENCY batches at once, each with the function's own
S3_SYNC_COPY_CONCURRENCY (32) copies, so at most 256 copies in flight, as s5cmd's default.
"""

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
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


def _run(source: str, replica: str, work_bucket: str) -> dict[str, Any]:
    from wandb_ops import aws  # noqa: PLC0415 - the layer is on PYTHONPATH in the child process only
    from wandb_ops.s3_sync_workflow import (  # noqa: PLC0415
        Clients,
        CopyTask,
        ManifestTask,
        PlanTask,
        PrepareTask,
        Run,
        SummaryTask,
        SyncRequest,
        SyncSettings,
        VerifyTask,
        copy,
        manifest,
        plan,
        prepare,
        summary,
        verify,
    )

    settings = SyncSettings(
        purpose="replica",
        source_bucket=source,
        replica_bucket=replica,
        replica_region=os.environ.get("AWS_REGION", "us-east-1"),
        replica_kms_key_arn=None,
        work_bucket=work_bucket,
        work_prefix="s3-sync",
        plan_shards=64,
        objects_per_shard=2_000_000,
        plan_chunk_objects=50_000_000,
        batch_objects=1000,
        batch_bytes=100 * 1024**3,
        copy_concurrency=COPY_CONCURRENCY,
        multipart_threshold=5 * 1024**3,
        part_size=512 * 1024**2,
        tolerated_failures=0,
        verify_sample=20,
    )
    s3 = aws.client("s3", connections=MAP_CONCURRENCY * COPY_CONCURRENCY)
    clients = Clients(source=s3, replica=s3, work=s3, cloudwatch=aws.client("cloudwatch"), kms=aws.client("kms"))
    now = datetime.now(UTC)
    prepared = prepare(
        settings, clients, PrepareTask(action="prepare", input=SyncRequest(mode="sync").model_dump()), now
    )
    run = Run.model_validate(prepared)
    with ThreadPoolExecutor(MAP_CONCURRENCY) as pool:
        plans = list(
            pool.map(
                # One process has no 15-minute limit: each range is planned in one call.
                lambda shard: plan(settings, clients, PlanTask(action="plan", run=run, shard=shard), lambda: False),
                run.shards,
            )
        )
    written = manifest(clients, ManifestTask(action="manifest", run=run, plans=plans))
    if run.copy_objects and written["batches"]:
        batches = [
            item["batch"] for item in json.loads(s3.get_object(Bucket=work_bucket, Key=written["key"])["Body"].read())
        ]
        with ThreadPoolExecutor(MAP_CONCURRENCY) as pool:
            list(
                pool.map(lambda batch: copy(settings, clients, CopyTask(action="copy", run=run, batch=batch)), batches)
            )
    checked = verify(settings, clients, VerifyTask(action="verify", run=run))
    return summary(
        settings, clients, SummaryTask(action="summary", run=run, plans=plans, verify=checked), datetime.now(UTC)
    )


if __name__ == "__main__":
    print(json.dumps(_run(*sys.argv[1:4])))
