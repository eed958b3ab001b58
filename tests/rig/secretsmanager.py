"""Secrets Manager behaviour the emulator gets wrong, corrected in the in-process moto server.

- GetSecretValue without VersionId or VersionStage returns the AWSCURRENT version in AWS. moto
  returns its "default version", which UpdateSecretVersionStage does not move: after AWSCURRENT
  is moved back (a rollback), a reader without a stage would still get the newer version.
"""

from typing import Any

from moto.secretsmanager.models import FakeSecret, SecretsManagerBackend

_original = SecretsManagerBackend.update_secret_version_stage


def _update_secret_version_stage(
    self: SecretsManagerBackend,
    secret_id: str,
    version_stage: str,
    remove_from_version_id: str,
    move_to_version_id: str,
) -> Any:
    result = _original(self, secret_id, version_stage, remove_from_version_id, move_to_version_id)
    secret = self.secrets[secret_id]
    if version_stage == "AWSCURRENT" and move_to_version_id and isinstance(secret, FakeSecret):
        secret.set_default_version_id(move_to_version_id)
    return result


def install() -> None:
    SecretsManagerBackend.update_secret_version_stage = _update_secret_version_stage  # type: ignore[method-assign]
