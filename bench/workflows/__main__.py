"""Requests and state transitions per workflow run, counted in the local rig.

    .venv/bin/python -m bench.workflows [--objects 1000]

Deploys the stack into the emulator against a simulated W&B deployment and runs each workflow
with its scheduled input. For each run it counts the AWS API calls the functions and the state
machine's own integrations make (botocore calls on the default session, by service and operation;
the Step Functions calls of this driver are left out), the Lambda invocations, and the states
entered (Step Functions bills a transition per state entered). Then it runs a database snapshot
that stays "creating" for 20 polls, to measure what one poll costs, and computes how many polls
the function's backoff needs for snapshots of a given duration against a fixed 15-second poll.

The credential rotation (onboarding, then a rotation) runs against a private MariaDB and W&B on
the fake EKS cluster, whose rollouts take several polls, as in the tests; without MariaDB on this
machine it is left out and the result says so.

Writes bench/workflows/results/<timestamp>.json.
"""

import argparse
import json
import logging
import os
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO_ROOT), str(REPO_ROOT / "layers" / "common")]  # as the test command's pythonpath

import boto3  # noqa: E402 - after the path setup above

from tests.rig.local_cloud import Execution, LocalCloud, start_local_cloud  # noqa: E402
from tests.rig.stack import DeployedStack  # noqa: E402
from tests.rig.wandb_deployment import seed_wandb  # noqa: E402
from tests.rig.wandb_on_kubernetes import point_functions_at_engine, private_wandb_database  # noqa: E402
from wandb_ops.core.polling import backoff  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
SLOW_POLLS = 20
FIXED_POLL_SECONDS = 15  # the snapshot function's first wait: what a loop without backoff would use
SNAPSHOT_MINUTES = (5, 30, 120, 480, 720)


class CallCounter:
    """Counts botocore calls by "service.Operation" while switched on."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.on = False
        assert boto3.DEFAULT_SESSION is not None, "start the local cloud first: its session is the one counted"
        boto3.DEFAULT_SESSION.events.register("before-call", self._count)

    def _count(self, model: Any, **_: Any) -> None:
        service = model.service_model.service_name
        if self.on and service != "stepfunctions":  # the driver's start/describe/history calls
            self.calls[f"{service}.{model.name}"] += 1

    @contextmanager
    def counting(self) -> Iterator[Counter[str]]:
        self.calls = Counter()
        self.on = True
        try:
            yield self.calls
        finally:
            self.on = False


def states_entered(execution: Execution) -> int:
    return sum(1 for event in execution.history if event["type"].endswith("StateEntered"))


def measure(
    cloud: LocalCloud, counter: CallCounter, stack: DeployedStack, machine: str, workflow_input: dict[str, Any]
) -> dict[str, Any]:
    invocations_before = len(cloud.runtime.invocations)
    started = time.monotonic()
    with counter.counting() as calls:
        execution = cloud.run(stack.state_machine_arns[machine], {"source": "console", **workflow_input}, 600)
    if execution.status != "SUCCEEDED":
        raise SystemExit(f"{machine} {workflow_input}: {execution.status} {execution.error} {execution.cause}")
    return {
        "input": workflow_input,
        "seconds": round(time.monotonic() - started, 2),
        "state_transitions": states_entered(execution),
        "lambda_invocations": len(cloud.runtime.invocations) - invocations_before,
        "aws_calls": sum(calls.values()),
        "aws_calls_by_operation": dict(calls.most_common()),
    }


@contextmanager
def snapshot_creating_for(polls: int) -> Iterator[None]:
    """The snapshot workflow's checks see its new snapshot "creating" for the first ``polls`` reads."""
    seen = Counter[str]()

    def still_creating(parsed: dict[str, Any], **_: Any) -> None:
        for snapshot in parsed.get("DBClusterSnapshots", []):
            identifier = snapshot["DBClusterSnapshotIdentifier"]
            if identifier.startswith("wandb-ops-") and seen[identifier] < polls:
                seen[identifier] += 1
                snapshot["Status"] = "creating"

    event = "after-call.rds.DescribeDBClusterSnapshots"
    boto3.DEFAULT_SESSION.events.register(event, still_creating)
    try:
        yield
    finally:
        boto3.DEFAULT_SESSION.events.unregister(event, still_creating)


def polls_needed(seconds: float, next_wait: Callable[[int], int]) -> int:
    """Checks until the first one at or after ``seconds``: the first check comes at once."""
    polls, elapsed = 1, 0
    while elapsed < seconds:
        elapsed += next_wait(polls - 1)
        polls += 1
    return polls


def poll_costs(cloud: LocalCloud, counter: CallCounter, stack: DeployedStack, runs: dict[str, Any]) -> dict[str, Any]:
    """What one poll costs, and the polls the backoff needs for snapshots of several durations."""
    # One poll's cost, from a snapshot that stays "creating" for SLOW_POLLS checks (no real waits).
    stack.set_function_environment("DbSnapshotFunction", POLL_BASE_SECONDS="0", POLL_MAX_SECONDS="0")
    with snapshot_creating_for(SLOW_POLLS):
        slow = measure(cloud, counter, stack, "DbSnapshotStateMachine", {"slot": "2026-11-27T03:00Z"})
    fast = measure(cloud, counter, stack, "DbSnapshotStateMachine", {"slot": "2026-11-28T03:00Z"})
    per_poll = {
        "state_transitions": (slow["state_transitions"] - fast["state_transitions"]) / SLOW_POLLS,
        "aws_calls": (slow["aws_calls"] - fast["aws_calls"]) / SLOW_POLLS,
        "lambda_invocations": (slow["lambda_invocations"] - fast["lambda_invocations"]) / SLOW_POLLS,
    }
    runs[f"db_snapshot, {SLOW_POLLS} extra polls"] = slow
    runs["db_snapshot, available at once"] = fast
    configuration = boto3.client("lambda").get_function_configuration(
        FunctionName=stack.function_name("DbSnapshotFunction")
    )
    template = {k: int(v) for k, v in configuration["Environment"]["Variables"].items() if k.startswith("POLL_")}
    # The template's values, not the zeroes set above for the measurement.
    template |= {"POLL_BASE_SECONDS": 15, "POLL_MAX_SECONDS": 300}

    def backed_off(attempt: int) -> int:
        return int(
            backoff(
                attempt,
                template["POLL_BASE_SECONDS"],
                template["POLL_MAX_SECONDS"],
                template["POLL_MAX_ATTEMPTS"],
            ).wait_seconds
        )

    slow_snapshots = []
    for minutes in SNAPSHOT_MINUTES:
        with_backoff = polls_needed(minutes * 60, backed_off)
        fixed = polls_needed(minutes * 60, lambda _: FIXED_POLL_SECONDS)
        slow_snapshots.append(
            {
                "snapshot_minutes": minutes,
                "polls_with_backoff": with_backoff,
                "polls_every_15s": fixed,
                "gives_up_first": with_backoff > template["POLL_MAX_ATTEMPTS"],
                "extra_transitions_with_backoff": round((with_backoff - 1) * per_poll["state_transitions"]),
                "extra_transitions_every_15s": round((fixed - 1) * per_poll["state_transitions"]),
            }
        )
    print(f"one extra poll: {per_poll}")
    for row in slow_snapshots:
        print(
            f"snapshot of {row['snapshot_minutes']:>3} min: {row['polls_with_backoff']:>3} polls with backoff "
            f"({row['extra_transitions_with_backoff']} extra transitions), {row['polls_every_15s']:>4} every 15 s "
            f"({row['extra_transitions_every_15s']})"
            + (f"; gives up first, after {template['POLL_MAX_ATTEMPTS']} polls" if row["gives_up_first"] else "")
        )
    return {"per_poll": per_poll, "poll_settings": template, "slow_snapshots": slow_snapshots}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--objects", type=int, default=1000, help="objects in the simulated W&B bucket")
    arguments = parser.parse_args()
    logging.getLogger("moto").setLevel(logging.CRITICAL)
    # The rig's Terraform comes from the virtualenv, as with `make demo`.
    os.environ["PATH"] = f"{Path(sys.executable).parent}:{os.environ['PATH']}"
    cloud = start_local_cloud()
    cloud.runtime.mute_function_output()
    try:
        counter = CallCounter()
        wandb = seed_wandb(objects=arguments.objects, terraform_state=True)
        parameters = wandb.stack_parameters()
        with private_wandb_database(wandb) as database:
            engine, kubernetes = database or (None, None)
            if kubernetes is not None:
                parameters |= kubernetes.stack_parameters(wandb.master_secret_arn)
            stack = cloud.deploy(parameters)
            runs: dict[str, Any] = {}
            plan: list[tuple[str, str, dict[str, Any]]] = [
                ("posture", "PostureStateMachine", {}),
                ("db_snapshot", "DbSnapshotStateMachine", {"slot": "2026-11-26T03:00Z"}),
                ("tfstate_backup sweep", "TfStateBackupStateMachine", {"sweep": True}),
                ("s3_sync first", "S3SyncStateMachine", {"mode": "sync"}),
                ("s3_sync no-op", "S3SyncStateMachine", {"mode": "sync"}),
                ("kms_rotation report", "KmsRotationStateMachine", {}),
                ("s3_reencrypt dry run", "S3ReencryptStateMachine", {}),
            ]
            if engine is not None:
                # No real waits between polls; the fake's rollouts still take several polls each.
                point_functions_at_engine(stack, engine, POLL_BASE_SECONDS="0", DRAIN_MAX_ATTEMPTS="50")
                plan += [
                    ("credential_rotation onboard", "CredentialRotationStateMachine", {"action": "onboard"}),
                    ("credential_rotation rotate", "CredentialRotationStateMachine", {"action": "rotate"}),
                ]
            for label, machine, workflow_input in plan:
                runs[label] = measure(cloud, counter, stack, machine, workflow_input)
                found = runs[label]
                print(
                    f"{label:<24} {found['state_transitions']:>5} transitions {found['aws_calls']:>6} AWS calls "
                    f"{found['lambda_invocations']:>4} invocations"
                )

            polling = poll_costs(cloud, counter, stack, runs)
            result = {
                "measured_at": datetime.now(UTC).isoformat(),
                "objects": arguments.objects,
                "runs": runs,
                **polling,
            }
            RESULTS.mkdir(exist_ok=True)
            path = RESULTS / f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
            path.write_text(json.dumps(result, indent=2) + "\n")
            print(f"written to {path.relative_to(REPO_ROOT)}")
            return 0
    finally:
        cloud.stop()


if __name__ == "__main__":
    sys.exit(main())
