"""`make demo`: a simulated W&B deployment in the local emulator, the stack deployed
from template.yaml, and every workflow that exists run end to end, with a short
readable report of what happened. Nothing here touches AWS: boto3 talks to the
in-process moto server (see tests/rig).
"""

import json
import logging
import re
import sys
import textwrap
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO_ROOT), str(REPO_ROOT / "layers" / "common")]

import boto3  # noqa: E402 - after the path setup above

from tests.rig.engines import Engine  # noqa: E402
from tests.rig.local_cloud import Execution, LocalCloud, start_local_cloud  # noqa: E402
from tests.rig.stack import DeployedStack  # noqa: E402
from tests.rig.terraform import TerraformProject  # noqa: E402
from tests.rig.wandb_deployment import SimulatedWandb, seed_wandb  # noqa: E402
from tests.rig.wandb_on_kubernetes import (  # noqa: E402
    WandbOnKubernetes,
    point_functions_at_engine,
    private_wandb_database,
)
from tests.workflows.notifications import TopicInbox  # noqa: E402
from wandb_ops.access.rds_snapshots import format_slot, snapshot_identifier, snapshot_tags  # noqa: E402
from wandb_ops.access.terraform_state.history import list_backups  # noqa: E402


@dataclass
class Demo:
    cloud: LocalCloud
    stack: DeployedStack
    wandb: SimulatedWandb
    engine: Engine | None  # a private MariaDB, when this machine has it
    kubernetes: WandbOnKubernetes | None
    master_secret_arn: str
    next_key_arn: str  # a second-generation W&B key, listed in KmsRotationKeyArns


def heading(title: str) -> None:
    print(f"\n== {title} " + "=" * max(0, 70 - len(title)))


def show_deployment(wandb: SimulatedWandb) -> None:
    heading("Simulated W&B deployment (terraform-aws-wandb defaults)")
    cluster = boto3.client("rds").describe_db_clusters(DBClusterIdentifier=wandb.namespace)["DBClusters"][0]
    print(
        f"Aurora cluster   {cluster['DBClusterIdentifier']} ({cluster['Engine']} {cluster['EngineVersion']}), "
        f"writer {wandb.namespace}-1, deletion protection {'on' if cluster['DeletionProtection'] else 'off'}, "
        f"backups kept {cluster['BackupRetentionPeriod']} days"
    )
    s3 = boto3.client("s3")
    objects = s3.list_objects_v2(Bucket=wandb.bucket_name).get("KeyCount", 0)
    versioning = s3.get_bucket_versioning(Bucket=wandb.bucket_name).get("Status", "off")
    print(f"File bucket      {wandb.bucket_name}: {objects} objects, SSE-KMS, versioning {versioning.lower()}")
    rotation = boto3.client("kms").get_key_rotation_status(KeyId=wandb.kms_key_arn)["KeyRotationEnabled"]
    print(f"KMS key          {wandb.kms_alias}, automatic rotation {'on' if rotation else 'off'}")
    print(f"Master secret    {wandb.master_secret_arn.rsplit(':', 1)[-1]} (W&B connects as the master user)")
    if wandb.tfstate_bucket and wandb.tfstate_key:
        state = json.loads(s3.get_object(Bucket=wandb.tfstate_bucket, Key=wandb.tfstate_key)["Body"].read())
        print(
            f"Terraform state  s3://{wandb.tfstate_bucket}/{wandb.tfstate_key}: format v{state['version']}, "
            f"terraform {state['terraform_version']}, serial {state['serial']}, lineage {state['lineage'][:8]}…, "
            f"{len(state['outputs'])} outputs (values not shown: the state holds credentials)"
        )


def show_stack(stack: DeployedStack) -> None:
    heading("wandb-ops stack deployed from template.yaml")
    counts: dict[str, int] = {}
    for resource in stack.template["Resources"].values():
        counts[resource["Type"]] = counts.get(resource["Type"], 0) + 1
    for resource_type, count in sorted(counts.items()):
        print(f"  {count} x {resource_type}")
    print("  (schedules are created in AWS; the emulator never fires them, so the demo starts each run by hand)")


def show_execution(name: str, execution: Execution, seconds: float) -> None:
    print(f"{name}: {execution.status} in {seconds:.1f}s via {' -> '.join(execution.states_entered())}")
    if execution.error:
        print(f"  error: {execution.error}: {execution.cause}")


def run_posture(demo: Demo, title: str = "Workflow: posture report (a new stack: nothing has run yet)") -> None:
    cloud, stack = demo.cloud, demo.stack
    heading(title)
    inbox = TopicInbox(stack.outputs["NotificationsTopicArn"])
    workflow_input = json.loads((REPO_ROOT / "events" / "posture-statemachine.json").read_text())
    started = time.monotonic()
    execution = cloud.run(stack.state_machine_arns["PostureStateMachine"], {**workflow_input, "source": "demo"})
    show_execution("posture", execution, time.monotonic() - started)
    for notification in inbox.received():
        print(f"Notification published: {notification.subject!r}")
        print(textwrap.indent(notification.message, "  "))


def run_db_snapshot(demo: Demo) -> None:
    cloud, stack, wandb = demo.cloud, demo.stack, demo.wandb
    heading("Workflow: database snapshot")
    arn = stack.state_machine_arns["DbSnapshotStateMachine"]
    rds = boto3.client("rds")
    newest = datetime(2026, 11, 26, 3, 0, tzinfo=UTC)
    for day in range(1, 46):  # six weeks of earlier daily runs
        slot = newest - timedelta(days=day)
        rds.create_db_cluster_snapshot(
            DBClusterIdentifier=wandb.namespace,
            DBClusterSnapshotIdentifier=snapshot_identifier(wandb.namespace, wandb.region, slot),
            Tags=snapshot_tags(wandb.namespace, wandb.region, slot),
        )
    rds.create_db_cluster_snapshot(DBClusterIdentifier=wandb.namespace, DBClusterSnapshotIdentifier="before-upgrade")
    print("Seeded 45 earlier daily snapshots of wandb-ops and one manual snapshot of a person's (untagged).")
    for label, workflow_input in (
        ("dry run", {"slot": format_slot(newest), "dry_run": True, "source": "demo"}),
        ("scheduled run", {"slot": format_slot(newest), "source": "demo"}),
        ("the same slot again", {"slot": format_slot(newest), "source": "demo"}),
    ):
        started = time.monotonic()
        execution = cloud.run(arn, workflow_input)
        show_execution(label, execution, time.monotonic() - started)
        output = execution.output or {}
        source = output.get("retention", {}).get("source", {})
        gone = source.get("would_delete", source.get("deleted", []))
        verb = "would delete" if workflow_input.get("dry_run") else "deleted"
        print(f"  snapshot {output.get('snapshot', {}).get('id')}, kept {source.get('kept')}, {verb} {len(gone)}")
    left = rds.describe_db_cluster_snapshots(DBClusterIdentifier=wandb.namespace, SnapshotType="manual")
    names = [s["DBClusterSnapshotIdentifier"] for s in left["DBClusterSnapshots"]]
    print(f"Manual snapshots now: {len(names)} (the person's 'before-upgrade' kept: {'before-upgrade' in names})")


def run_db_restore_check(demo: Demo) -> None:
    cloud, stack = demo.cloud, demo.stack
    heading("Workflow: monthly restore check (off by default)")
    print("The emulator restores the snapshot but has no database server behind the copy, so the sanity")
    print("query cannot connect here (the tests run it against real MySQL engines); watch the cleanup:")
    inbox = TopicInbox(stack.outputs["NotificationsTopicArn"])
    started = time.monotonic()
    execution = cloud.run(stack.state_machine_arns["DbRestoreCheckStateMachine"], {"source": "demo"})
    show_execution("restore check", execution, time.monotonic() - started)
    for notification in inbox.received():
        print(f"Notification published: {notification.subject!r}")
        print(textwrap.indent(textwrap.shorten(notification.message, 240), "  "))
    left = [c["DBClusterIdentifier"] for c in boto3.client("rds").describe_db_clusters()["DBClusters"]]
    print(f"  temporary databases left behind: {[c for c in left if c.startswith('wandb-ops-check-')]}")


def run_tfstate_backup(demo: Demo) -> None:
    cloud, stack, wandb = demo.cloud, demo.stack, demo.wandb
    heading("Workflow: terraform state backup")
    assert wandb.tfstate_bucket and wandb.tfstate_key
    arn = stack.state_machine_arns["TfStateBackupStateMachine"]
    backup_bucket = stack.outputs["TfStateBackupBucketName"]
    inbox = TopicInbox(stack.outputs["NotificationsTopicArn"])
    s3 = boto3.client("s3")

    def backup(bucket: str, key: str, what: str) -> None:
        started = time.monotonic()
        execution = cloud.run(arn, {"bucket": bucket, "key": key, "source": "demo"})
        show_execution(what, execution, time.monotonic() - started)
        for result in (execution.output or {}).get("results", []):
            print(f"  {result['outcome']}: {result['detail']}")

    backup(wandb.tfstate_bucket, wandb.tfstate_key, "the state the seeded apply wrote")
    project = TerraformProject({"bucket": wandb.tfstate_bucket, "key": wandb.tfstate_key}, cloud.emulator.endpoint)
    project.apply(revision=2, namespace=wandb.namespace)
    backup(wandb.tfstate_bucket, wandb.tfstate_key, "after a second `terraform apply`")
    stale = s3.get_object(Bucket=backup_bucket, Key=list_backups(s3, backup_bucket, "backend/default")[0].key)
    s3.put_object(Bucket=wandb.tfstate_bucket, Key=wandb.tfstate_key, Body=stale["Body"].read())
    backup(wandb.tfstate_bucket, wandb.tfstate_key, "after someone pushed an old state back")
    local = TerraformProject()
    local.apply(revision=1, namespace=wandb.namespace)
    s3.put_object(Bucket=backup_bucket, Key="intake/wandb-dev/terraform.tfstate", Body=local.local_state())
    backup(backup_bucket, "intake/wandb-dev/terraform.tfstate", "a local state uploaded to the intake prefix")
    for project_dir in (project, local):
        project_dir.close()
    for notification in inbox.received():
        print(f"Notification published: {notification.subject!r}")
        print(textwrap.indent(notification.message, "  "))
    listed = boto3.client("lambda").invoke(
        FunctionName=stack.function_name("TfStateRestoreFunction"),
        Payload=json.dumps({"workspace": "backend/default"}).encode(),
    )
    backups = json.loads(listed["Payload"].read())["backups"]
    print("Restore helper lists backend/default: " + ", ".join(f"serial {b['serial']}" for b in backups))


def run_s3_sync(demo: Demo) -> None:
    cloud, stack, wandb = demo.cloud, demo.stack, demo.wandb
    heading("Workflow: S3 replica sync")
    arn = stack.state_machine_arns["S3SyncStateMachine"]
    replica = stack.outputs["S3ReplicaBucketName"]
    s3 = boto3.client("s3")

    def run(label: str, workflow_input: dict[str, object]) -> None:
        started = time.monotonic()
        execution = cloud.run(arn, {**workflow_input, "source": "demo"}, timeout_s=300)
        show_execution(label, execution, time.monotonic() - started)
        out = execution.output or {}
        if out:
            print(
                f"  compared {out['compared']['objects']}, copied {out['copied']['objects']}"
                f" ({out['copied']['bytes']} bytes), in sync {out['skipped']['in_sync']},"
                f" failed {out['failed']['objects']}, replica-only {out['replica_only']['objects']},"
                f" deleted {out['deleted']['objects']} (planned {out['deleted']['planned']}),"
                f" drift {out['drift']['objects']}, sample checked {out['verify']['checked']}"
                f" ({out['verify']['mismatched_count']} differ), status {out['status']}"
            )

    print(f"Source {wandb.bucket_name} -> replica {replica} (created by the stack, versioned)")
    run("first sync", {"mode": "sync"})
    run("second sync (nothing to do)", {"mode": "sync"})
    keys = sorted(item["Key"] for item in s3.list_objects_v2(Bucket=wandb.bucket_name)["Contents"])
    s3.put_object(Bucket=wandb.bucket_name, Key=keys[0], Body=b"rewritten by a W&B run")
    s3.put_object(Bucket=wandb.bucket_name, Key="wandb/wandb/runs/run-new/files/new file.log", Body=b"new")
    s3.delete_object(Bucket=wandb.bucket_name, Key=keys[1])
    print("Changed one object, added one, deleted one in the source.")
    run("verify (reports drift, copies nothing)", {"mode": "verify"})
    run("sync (copies two, keeps the deleted one in the replica)", {"mode": "sync"})
    run("mirror dry run (lists the delete)", {"mode": "mirror", "dry_run": True})
    run("mirror (deletes it; versioning keeps it recoverable)", {"mode": "mirror"})


def run_kms_rotation(demo: Demo) -> None:
    cloud, stack, wandb = demo.cloud, demo.stack, demo.wandb
    heading("Workflow: KMS key rotation policy")
    arn = stack.state_machine_arns["KmsRotationStateMachine"]
    inbox = TopicInbox(stack.outputs["NotificationsTopicArn"])

    def run(label: str, workflow_input: dict[str, object]) -> dict[str, Any]:
        started = time.monotonic()
        execution = cloud.run(arn, {**workflow_input, "source": "demo"})
        show_execution(label, execution, time.monotonic() - started)
        output: dict[str, Any] = execution.output or {}
        return output

    report = run("report (the stack's default mode: changes nothing)", {})
    for notification in inbox.received():
        print(textwrap.indent(notification.message, "  "))
    run("enforce", {"mode": "enforce"})
    for notification in inbox.received():
        print(textwrap.indent(notification.message, "  "))
    emergency = run("rotate now (a suspected compromise)", {"mode": "enforce", "rotate_now": [wandb.kms_alias]})
    print(f"  {emergency.get('changes')} change(s); keys assessed: {len(report.get('keys', []))}")
    inbox.received()
    plan = run("re-encrypted snapshot copy, dry run", {"action": "copy_aurora_snapshot", "kms_key": demo.next_key_arn})
    print(f"  would copy {plan.get('source_snapshot')} as {plan.get('target')} under {plan.get('kms_key')}")
    run(
        "re-encrypted snapshot copy",
        {"action": "copy_aurora_snapshot", "kms_key": demo.next_key_arn, "dry_run": False},
    )
    for notification in inbox.received():
        print(textwrap.indent(notification.message, "  "))


def run_s3_reencrypt(demo: Demo) -> None:
    cloud, stack, wandb = demo.cloud, demo.stack, demo.wandb
    heading("Workflow: re-encryption of the W&B bucket (by hand only)")
    arn = stack.state_machine_arns["S3ReencryptStateMachine"]
    s3 = boto3.client("s3")

    def keys_in_use() -> Counter[str]:
        found: Counter[str] = Counter()
        for item in s3.list_objects_v2(Bucket=wandb.bucket_name)["Contents"]:
            found[s3.head_object(Bucket=wandb.bucket_name, Key=item["Key"]).get("SSEKMSKeyId", "none")] += 1
        return found

    def run(label: str, workflow_input: dict[str, object]) -> dict[str, Any]:
        started = time.monotonic()
        execution = cloud.run(arn, {**workflow_input, "source": "demo"}, timeout_s=300)
        show_execution(label, execution, time.monotonic() - started)
        output: dict[str, Any] = execution.output or {}
        if output:
            print(
                f"  to copy {output['to_copy']}, copied {output['copied']}, status {output['status']},"
                f" resume with {output.get('resume_input')}"
            )
        return output

    run("dry run (the default)", {})
    run("re-encrypt under the bucket's default key (its current key material)", {"dry_run": False})
    print(f"  objects per KMS key afterwards: {dict(keys_in_use())}")


def run_credential_rotation(demo: Demo) -> None:
    heading("Workflow: credential rotation (W&B on Kubernetes)")
    if demo.engine is None or demo.kubernetes is None:
        print("Skipped: MariaDB is not installed here (`sudo scripts/provision-engines` installs it); this")
        print("workflow needs a real MySQL-compatible server, W&B logs in to it.")
        return
    cloud, stack, kube, app = demo.cloud, demo.stack, demo.kubernetes.kube, demo.kubernetes.app
    arn = stack.state_machine_arns["CredentialRotationStateMachine"]
    inbox = TopicInbox(stack.outputs["NotificationsTopicArn"])
    print("W&B runs on a fake EKS cluster (operator install: WeightsAndBiases resource, three deployments)")
    print(f"against a local MariaDB, connecting as the master user '{kube.current_wandb_config().user}'.")

    def run(label: str, workflow_input: dict[str, object]) -> None:
        started = time.monotonic()
        execution = cloud.run(arn, {**workflow_input, "source": "demo"}, timeout_s=240)
        print(f"{label}: {execution.status} in {time.monotonic() - started:.1f}s")
        print(f"  states: {compact_loops(execution.states_entered())}")
        for notification in inbox.received():
            print(f"  notification {notification.subject!r}:")
            print(textwrap.indent(textwrap.fill(notification.message, 96), "    "))
        serving = sorted({config.user for config in kube.serving_configs()})
        print(f"  W&B pods now log in as {serving}; failed logins so far: {len(app.failed_logins)}")

    run("rotation before onboarding", {"action": "rotate"})
    run("onboarding (once)", {"action": "onboard"})
    run("rotation, dry run", {"action": "rotate", "dry_run": True})
    run("scheduled rotation", {"action": "rotate"})
    healthy = kube.current_wandb_config().user
    kube.pod_starts = lambda config: config.user == healthy
    print("Next, W&B's new pods will never become ready (a broken rollout):")
    run("rotation with a stuck rollout", {"action": "rotate"})
    print(f"AWSCURRENT user of the application secret: '{current_user()}'")


def compact_loops(states: list[str]) -> str:
    """'A -> B -> C -> A -> B -> C' as '(A -> B -> C) x2': poll loops read better that way."""
    text = " -> ".join(states) + " -> "
    repeated = re.compile(r"((?:\w+ -> ){3})\1+")
    text = repeated.sub(lambda m: f"({m.group(1)[:-4]}) x{len(m.group(0)) // len(m.group(1))} -> ", text)
    return text[:-4]


def current_user() -> str:
    secret = boto3.client("secretsmanager").get_secret_value(SecretId="wandb-ops/wandb/mysql-app")
    return str(json.loads(secret["SecretString"])["username"])


# Each workflow that exists, in the order a platform engineer would read about them.
WORKFLOWS: dict[str, Callable[[Demo], None]] = {
    "PostureStateMachine": run_posture,
    "DbSnapshotStateMachine": run_db_snapshot,
    "DbRestoreCheckStateMachine": run_db_restore_check,
    "TfStateBackupStateMachine": run_tfstate_backup,
    "S3SyncStateMachine": run_s3_sync,
    "KmsRotationStateMachine": run_kms_rotation,
    "S3ReencryptStateMachine": run_s3_reencrypt,
    "CredentialRotationStateMachine": run_credential_rotation,
}


def main() -> int:
    print("wandb-ops demo: everything below runs against a local AWS emulator; nothing reaches AWS.")
    cloud = start_local_cloud()
    cloud.runtime.mute_function_output()
    # moto names each template resource type it skips (schedules, topic policies); the rig documents them.
    logging.getLogger("moto").setLevel(logging.CRITICAL)
    try:
        wandb = seed_wandb(objects=40, terraform_state=True)
        show_deployment(wandb)
        next_key = boto3.client("kms").create_key(Description="W&B key, second generation")["KeyMetadata"]["Arn"]
        parameters = {
            **wandb.stack_parameters(),
            "MasterSecretArn": wandb.master_secret_arn,
            "KmsRotationKeyArns": next_key,
        }
        with private_wandb_database(wandb) as database:
            engine, kubernetes = database or (None, None)
            if kubernetes is not None:
                parameters |= kubernetes.stack_parameters(wandb.master_secret_arn)
            stack = cloud.deploy(parameters)
            if engine is not None:
                point_functions_at_engine(stack, engine, POLL_BASE_SECONDS="0", DRAIN_MAX_ATTEMPTS="50")
            show_stack(stack)
            missing = sorted(set(stack.state_machine_arns) - set(WORKFLOWS))
            if missing:
                raise SystemExit(f"state machines without a demo step: {missing}")
            demo = Demo(cloud, stack, wandb, engine, kubernetes, wandb.master_secret_arn, next_key)
            for run in WORKFLOWS.values():
                run(demo)
            # The report reads the other workflows' runs: after them, their items have evidence.
            run_posture(demo, "Posture report again, after every workflow ran once")
            heading("Done")
            invocations = Counter(invocation.logical_id for invocation in cloud.runtime.invocations)
            print(f"Lambda invocations, each running the real handler: {dict(invocations)}")
            return 0
    finally:
        cloud.stop()


if __name__ == "__main__":
    raise SystemExit(main())
