"""The rotation function's one step: whichever of Secrets Manager's four steps the event names
(``rotation.rotate`` checks the version's stages, then runs it)."""

import os
from dataclasses import dataclass
from typing import Self

from wandb_ops.access.mysql.connector import Connector
from wandb_ops.access.mysql.master import MasterAccess, database_from_env
from wandb_ops.access.password_proof import PasswordMint
from wandb_ops.core import aws
from wandb_ops.core.observability import logger
from wandb_ops.workflows.secret_rotation import rotation
from wandb_ops.workflows.secret_rotation.settings import SecretRotationSettings
from wandb_ops.workflows.secret_rotation.tasks import RotationEvent, RotationOutput


@dataclass(frozen=True)
class Deps(rotation.RotationDeps):
    @classmethod
    def from_env(cls) -> Self:
        settings = SecretRotationSettings.from_env()
        secretsmanager = aws.client("secretsmanager")
        return cls(
            secretsmanager=secretsmanager,
            connector=Connector(ca_bundle=settings.ca_bundle),
            master=MasterAccess(secretsmanager, database_from_env(lambda: aws.client("rds"), os.environ)),
            mint=PasswordMint(aws.client("kms"), settings.mac_key_arn, settings.password_length),
        )


def rotate(event: RotationEvent, deps: Deps) -> RotationOutput:
    logger.append_keys(step=event.Step, secret=event.SecretId, version=event.ClientRequestToken)
    result = rotation.rotate(deps, event.Step, event.SecretId, event.ClientRequestToken)
    logger.info("rotation step done", extra={"result": result})
    return RotationOutput(step=event.Step, result=result)
