"""Monthly cost of each workflow at the default schedules, from the counts bench/workflows measured.

    .venv/bin/python -m bench.cost [--counts bench/workflows/results/<file>.json]

Prices are list prices for us-east-1 (arm64 Lambda) as assumed in docs/cost.md; they are
constants below, so a reader can change one and re-run. The counts per run (state transitions,
Lambda invocations, AWS requests by operation) come from the newest bench/workflows result
unless --counts names one. The replica sync is scaled from its measured fixed part to a small
(10,000 objects) and a large (100 million objects, 50 TB) W&B deployment, with the per-object
requests measured by bench/s3_sync. Prints Markdown tables (docs/cost.md has them) and the
formulas' inputs.
"""

import argparse
import json
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
COUNTS = REPO_ROOT / "bench" / "workflows" / "results"
DAYS = 30

# Prices, USD (us-east-1, list prices as of November 2026; docs/cost.md says what each covers).
TRANSITION = 0.025 / 1000  # Step Functions Standard, per state transition
LAMBDA_REQUEST = 0.20 / 1e6
LAMBDA_GB_SECOND = 0.0000133334  # arm64
S3_WRITE_OR_LIST = 0.005 / 1000  # PUT, COPY, POST, LIST
S3_READ = 0.0004 / 1000  # GET, HEAD and the rest
S3_STANDARD_GB_MONTH = 0.023
KMS_REQUEST = 0.03 / 10000
SECRETS_REQUEST = 0.05 / 10000
CLOUDWATCH_METRIC_REQUEST = 0.01 / 1000  # GetMetricStatistics, per metric requested
AURORA_SNAPSHOT_GB_MONTH = 0.021
CROSS_REGION_GB = 0.02
AWS_BACKUP_S3_GB_MONTH = 0.05  # warm storage; objects under 128 KB billed as 128 KB
BATCH_OPERATIONS_JOB = 0.25
BATCH_OPERATIONS_PER_MILLION = 1.00

# Seconds per invocation assumed for billing (the rig's timings are not AWS's): a control step
# reads a few APIs; a copy batch copies 1,000 objects 32 at a time; a plan reads 1,000-key pages.
CONTROL_STEP_SECONDS, CONTROL_STEP_GB = 1.0, 0.25
COPY_BATCH_SECONDS, PLAN_SECONDS_PER_PAGE, SYNC_GB = 5.0, 0.15, 1.0

# Standing charges a month, whatever the runs: the stack's KMS key ($1, plus $1 for each of its
# first two rotations), the application secret the onboarding creates, the alarms ($0.10 per
# metric an alarm reads: the eight workflow alarms read two each, the seven others one; the DR
# copy alarm only with a DR region), the dashboard ($3 beyond an account's first three), and about
# 30 custom metrics, each billed only for the hours it is published (once a day: 30 of 730).
STANDING = {
    "stack KMS key": 1.00,
    "application secret": 0.40,
    "alarms": (8 * 2 + 7) * 0.10,
    "dashboard": 3.00,
    "custom metrics": 30 * 0.30 * DAYS / 730,
}

RUNS_PER_MONTH = {  # the template's default schedules
    "posture": DAYS,  # daily 06:00
    "db_snapshot": DAYS,  # daily 03:00
    "tfstate_backup sweep": DAYS,  # daily 02:30, plus one run per terraform apply (below)
    "kms_rotation report": 52 / 12,  # Mondays 04:00
    "credential_rotation rotate": 1,  # rate(30 days)
}
TFSTATE_APPLIES_PER_MONTH = 20


@dataclass(frozen=True)
class Deployment:
    name: str
    objects: int
    terabytes: float
    new_objects_per_day: int
    new_gb_per_day: float


DEPLOYMENTS = (
    Deployment("small", 10_000, 0.01, 100, 0.1),
    Deployment("large", 100_000_000, 50, 100_000, 50),
)


def request_cost(calls: dict[str, int]) -> float:
    """AWS requests by "service.Operation", priced; the control-plane calls (RDS, EKS, STS,
    Lambda's invoke, which is priced as an invocation) are free."""
    total = 0.0
    for name, count in calls.items():
        service, operation = name.split(".", 1)
        if service == "s3":
            writes = operation.startswith(("Put", "Copy", "List", "Create", "Complete", "Upload", "Delete"))
            total += count * (S3_WRITE_OR_LIST if writes else S3_READ)
        elif service == "kms":
            total += count * KMS_REQUEST
        elif service == "secretsmanager":
            total += count * SECRETS_REQUEST
        elif service == "cloudwatch":
            total += count * CLOUDWATCH_METRIC_REQUEST
    return total


def run_cost(run: dict[str, Any]) -> float:
    invocations: int = run["lambda_invocations"]
    return float(
        run["state_transitions"] * TRANSITION
        + invocations * (LAMBDA_REQUEST + CONTROL_STEP_SECONDS * CONTROL_STEP_GB * LAMBDA_GB_SECOND)
        + request_cost(run["aws_calls_by_operation"])
    )


def sync_run_cost(no_op: dict[str, Any], deployment: Deployment) -> dict[str, float]:
    """One daily sync: the measured no-op's fixed part, plus what grows with the bucket.

    Listing: a 1,000-key page of the source and one of the replica per 1,000 objects. Plan
    ranges: one per 2 million objects (the workflow's default). Copies: one COPY per new object,
    in 1,000-object batches (a batch file written and read, one child transition each).
    """
    pages = 2 * math.ceil(deployment.objects / 1000)
    measured_pages = no_op["aws_calls_by_operation"].get("s3.ListObjectsV2", 0)
    shards = max(1, math.ceil(deployment.objects / 2_000_000))
    batches = math.ceil(deployment.new_objects_per_day / 1000)
    listing = max(0, pages - measured_pages) * S3_WRITE_OR_LIST
    copies = deployment.new_objects_per_day * S3_WRITE_OR_LIST + batches * (S3_WRITE_OR_LIST + S3_READ)
    transfer = 0.0  # same region; a cross-region replica adds CROSS_REGION_GB per copied GB
    # Three states per extra plan range (plan, check, done); one per copy batch child.
    transitions = ((shards - 1) * 3 + batches) * TRANSITION
    plan_seconds = (pages / 2) * PLAN_SECONDS_PER_PAGE
    compute = (plan_seconds + batches * COPY_BATCH_SECONDS) * SYNC_GB * LAMBDA_GB_SECOND
    fixed = run_cost(no_op)
    return {
        "fixed": fixed,
        "listing": listing,
        "copies": copies + transfer,
        "transitions": transitions,
        "compute": compute,
        "total": fixed + listing + copies + transfer + transitions + compute,
    }


def alternatives(no_op: dict[str, Any], deployment: Deployment, sync_month: float) -> dict[str, float]:
    gigabytes = deployment.terabytes * 1000
    replica_storage = gigabytes * S3_STANDARD_GB_MONTH
    new_objects = deployment.new_objects_per_day * DAYS
    return {
        "wandb-ops replica (storage + daily syncs)": replica_storage + sync_month,
        # S3 Replication: the replica's storage and one replication PUT per new object; the source
        # must be versioned (noncurrent versions are extra storage, not counted).
        "S3 Replication (SRR)": replica_storage + new_objects * S3_WRITE_OR_LIST,
        # AWS Backup for S3: its own storage price (no replica bucket) plus a GET per object it reads
        # on each daily incremental backup of the new objects; objects under 128 KB count as 128 KB.
        "AWS Backup for S3 (daily)": gigabytes * AWS_BACKUP_S3_GB_MONTH + new_objects * S3_READ,
        # The first sync is a daily sync in which every object is new.
        "first copy, wandb-ops": sync_run_cost(no_op, replace(deployment, new_objects_per_day=deployment.objects))[
            "total"
        ],
        "first copy, S3 Batch Replication": BATCH_OPERATIONS_JOB
        + deployment.objects / 1e6 * BATCH_OPERATIONS_PER_MILLION
        + deployment.objects * S3_WRITE_OR_LIST,
        "first backup, AWS Backup for S3": deployment.objects * S3_READ,
    }


def newest_counts() -> Path:
    found = sorted(COUNTS.glob("*.json"))
    if not found:
        raise SystemExit("no bench/workflows result: run `.venv/bin/python -m bench.workflows` first")
    return found[-1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--counts", type=Path, help="a bench/workflows result (default: the newest)")
    arguments = parser.parse_args()
    path = arguments.counts or newest_counts()
    runs: dict[str, Any] = json.loads(path.read_text())["runs"]
    print(f"counts from {path.relative_to(REPO_ROOT) if path.is_absolute() else path}\n")

    print("| workflow (default schedule) | runs a month | per run | a month |")
    print("| --- | --- | --- | --- |")
    fixed_month = 0.0
    for name, per_month in RUNS_PER_MONTH.items():
        if name not in runs:
            print(f"| {name} | {per_month:.1f} | not measured | |")
            continue
        runs_a_month = per_month + (TFSTATE_APPLIES_PER_MONTH if name.startswith("tfstate") else 0)
        cost = run_cost(runs[name])
        fixed_month += cost * runs_a_month
        print(f"| {name} | {runs_a_month:.1f} | ${cost:.6f} | ${cost * runs_a_month:.4f} |")
    print(f"| **all but the replica sync** | | | **${fixed_month:.3f}** |\n")
    print("standing charges a month: " + ", ".join(f"{name} ${value:.2f}" for name, value in STANDING.items()))
    print(f"  total ${sum(STANDING.values()):.2f}\n")

    for deployment in DEPLOYMENTS:
        sync = sync_run_cost(runs["s3_sync no-op"], deployment)
        sync_month = sync["total"] * DAYS
        print(
            f"{deployment.name}: {deployment.objects:,} objects, {deployment.terabytes:g} TB, "
            f"{deployment.new_objects_per_day:,} new objects a day"
        )
        parts = ", ".join(f"{part} ${value:.4f}" for part, value in sync.items())
        print(f"  daily sync: {parts}; a month ${sync_month:.2f}")
        for label, value in alternatives(runs["s3_sync no-op"], deployment, sync_month).items():
            print(f"  {label}: ${value:,.2f}")
        print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
