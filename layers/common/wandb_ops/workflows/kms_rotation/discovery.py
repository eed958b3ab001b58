"""Which keys protect W&B data: the W&B bucket's, the database's, this stack's backups' and
replica's (plus any the customer lists), each once, by ARN, with everything it protects.
Aliases resolve to key ARNs; what cannot be read becomes a problem in the report, with the fix."""

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from wandb_ops.access.encryption import KEY_REFERENCE, bucket_default_key
from wandb_ops.core.aws import ACCESS_DENIED_CODES, error_code
from wandb_ops.core.errors import InvalidInputError
from wandb_ops.workflows.kms_rotation.key_policy import READ_ACTIONS, denied_fix, key_policy_statement
from wandb_ops.workflows.kms_rotation.settings import RotationSettings
from wandb_ops.workflows.kms_rotation.tasks import DiscoverOutput, KeyPlace, KeyToAssess, Problem, RotationRequest

ARN_REGION = re.compile(r"^arn:aws[a-z-]*:kms:([a-z0-9-]+):")


@dataclass(frozen=True)
class Clients:
    kms: Callable[[str], Any]  # region -> KMS client: keys live in the region of their ARN
    s3: Callable[[str], Any]
    rds: Any

    @classmethod
    def from_factory(cls, client: Callable[[str, str], Any], region: str) -> "Clients":
        """From a (service, region) -> client factory; RDS in the deployment's region."""
        return cls(kms=lambda at: client("kms", at), s3=lambda at: client("s3", at), rds=client("rds", region))


def region_of(reference: str, default: str) -> str:
    found = ARN_REGION.match(reference)
    return found.group(1) if found else default


def _database_key(rds: Any, kind: str, identifier: str) -> str | None:
    if kind == "aurora-cluster":
        found = rds.describe_db_clusters(DBClusterIdentifier=identifier)["DBClusters"][0]
    else:
        found = rds.describe_db_instances(DBInstanceIdentifier=identifier)["DBInstances"][0]
    return found.get("KmsKeyId") if found.get("StorageEncrypted") else None


def _read(where: str, problems: list[Problem], read: Callable[[], str | None], action: str) -> str | None:
    """A discovery read; what fails becomes a problem in the report rather than a failed run."""
    try:
        return read()
    except ClientError as exc:
        code = error_code(exc)
        if code in ACCESS_DENIED_CODES:
            problems.append(
                Problem(
                    where=where,
                    status="warn",
                    evidence=f"{action} was denied, so the key that protects it is unknown",
                    fix=f"allow {action} for this stack's KMS rotation role (docs/kms-rotation.md)",
                )
            )
        else:
            problems.append(Problem(where=where, status="fail", evidence=f"{action} failed: {code}", fix=str(exc)))
        return None


def discover(settings: RotationSettings, clients: Clients, request: RotationRequest) -> DiscoverOutput:
    """Which keys protect W&B data, each once, by ARN, with everything it protects."""
    mode = request.mode or settings.mode
    if request.rotate_now and mode != "enforce":
        raise InvalidInputError(
            'field \'rotate_now\' rotates keys: add "mode": "enforce" to the input to confirm, or drop it'
        )
    for reference in request.rotate_now:
        if not KEY_REFERENCE.match(reference):
            raise InvalidInputError(
                f"field 'rotate_now' holds {reference!r}: give a key ARN, alias ARN or alias/<name>"
            )
    problems: list[Problem] = []
    s3_here = clients.s3(settings.region)
    named: list[tuple[str, str | None, str]] = [
        ("the W&B key (stack parameter KmsKeyArn)", settings.kms_key_arn, settings.region),
        (
            f"W&B bucket {settings.bucket_name} (default encryption)",
            _read(
                f"W&B bucket {settings.bucket_name}",
                problems,
                lambda: bucket_default_key(s3_here, settings.bucket_name),
                "s3:GetEncryptionConfiguration",
            ),
            settings.region,
        ),
        (
            f"database {settings.database_identifier} (storage encryption)",
            _read(
                f"database {settings.database_identifier}",
                problems,
                lambda: _database_key(clients.rds, settings.database_kind, settings.database_identifier),
                "rds:DescribeDBClusters" if settings.database_kind == "aurora-cluster" else "rds:DescribeDBInstances",
            ),
            settings.region,
        ),
        ("this stack's key (tfstate backups, logs, work files)", settings.stack_key, settings.region),
        ("S3 replica copies (stack parameter S3ReplicaKmsKeyArn)", settings.replica_key, settings.replica_region),
        ("database DR snapshot copies (stack parameter SnapshotDrKmsKeyArn)", settings.dr_key, settings.region),
        *(("listed in stack parameter KmsRotationKeyArns", key, settings.region) for key in settings.extra_keys),
    ]
    if settings.replica_bucket and not settings.replica_key:
        replica_bucket, s3_replica = settings.replica_bucket, clients.s3(settings.replica_region)
        replica_default = _read(
            f"replica bucket {replica_bucket}",
            problems,
            lambda: bucket_default_key(s3_replica, replica_bucket),
            "s3:GetEncryptionConfiguration",
        )
        named.append(
            (f"replica bucket {replica_bucket} (default encryption)", replica_default, settings.replica_region)
        )
    keys: dict[str, KeyPlace] = {}
    for protects, configured, default_region in named:
        if not configured:
            continue
        region = region_of(configured, default_region)
        arn = _resolve(clients.kms(region), configured, protects, problems, settings.role_arn)
        if arn is None:
            continue
        place = keys.setdefault(arn, KeyPlace(arn=arn, region=region, protects=[]))
        if protects not in place.protects:
            place.protects.append(protects)
    rotate_now: list[str] = []
    for reference in request.rotate_now:
        unresolved: list[Problem] = []
        kms = clients.kms(region_of(reference, settings.region))
        arn = _resolve(kms, reference, "rotate_now", unresolved, settings.role_arn)
        if arn is None:
            raise InvalidInputError(f"field 'rotate_now': {unresolved[0].evidence}; {unresolved[0].fix}")
        if arn not in keys:
            raise InvalidInputError(
                f"field 'rotate_now' names {reference}, which protects no W&B data this stack knows of: "
                "add it to the stack parameter KmsRotationKeyArns first"
            )
        rotate_now.append(arn)
    return DiscoverOutput(
        mode=mode,
        keys=[
            KeyToAssess(
                key=place,
                # A rotate_now run changes only the keys it names; the others get the stack's mode.
                mode=mode if not rotate_now or place.arn in rotate_now else settings.mode,
                rotate_now=place.arn in rotate_now,
            )
            for place in keys.values()
        ],
        problems=problems,
    )


def _resolve(kms: Any, reference: str, protects: str, problems: list[Problem], role_arn: str) -> str | None:
    """The key ARN behind an ARN, key id or alias (DescribeKey resolves aliases)."""
    try:
        return str(kms.describe_key(KeyId=reference)["KeyMetadata"]["Arn"])
    except ClientError as exc:
        code = error_code(exc)
        if code == "NotFoundException":
            problems.append(
                Problem(
                    where=protects,
                    status="fail",
                    evidence=f"key {reference} does not exist",
                    fix="correct the stack parameter that names it, or restore the key if it was deleted",
                )
            )
            return None
        if code in ACCESS_DENIED_CODES:
            problems.append(
                Problem(
                    where=protects,
                    status="warn",
                    evidence=f"kms:DescribeKey on {reference} was denied, so the key is not assessed",
                    fix=denied_fix(exc, reference, ("kms:DescribeKey",), key_policy_statement(role_arn, READ_ACTIONS)),
                )
            )
            return None
        raise
