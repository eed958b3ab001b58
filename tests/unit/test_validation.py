"""Bad input and bad configuration get errors that name the field and the fix."""

import pytest

from wandb_ops.core.errors import ConfigurationError, InvalidInputError
from wandb_ops.core.models import TaskEvent
from wandb_ops.core.settings import DeploymentSettings
from wandb_ops.core.validation import parse_event
from wandb_ops.workflows.posture.tasks import PostureRequest
from wandb_ops.workflows.tfstate_backup.tasks import TfStateTask

VALID_ENV = {
    "WANDB_NAMESPACE": "wandb",
    "WANDB_BUCKET_NAME": "wandb-file-storage-1a2b",
    "WANDB_KMS_KEY_ARN": "arn:aws:kms:us-east-1:123456789012:key/abc",
    "WANDB_EKS_CLUSTER_NAME": "",
    "WANDB_URL": "",
    "WANDB_DATABASE_SECRET_ARN": "",
}


@pytest.mark.parametrize(
    ("event", "field"),
    [
        ({"input": {"source": "cron"}}, "input.source"),
        ({"input": {"source": "console", "dry_run": True}}, "input.dry_run"),
        ({}, "input"),
        ({"input": {}, "execution": 7}, "execution"),
    ],
)
def test_invalid_events_name_the_field(event: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidInputError, match=f"field '{field}'"):
        parse_event(TaskEvent[PostureRequest], event)


def test_a_non_object_event_is_refused() -> None:
    with pytest.raises(InvalidInputError, match="expected a JSON object"):
        parse_event(TaskEvent[PostureRequest], ["source"])


def test_the_error_does_not_echo_the_value() -> None:
    with pytest.raises(InvalidInputError) as raised:
        parse_event(TaskEvent[PostureRequest], {"input": {"source": "hunter2-secret"}})
    assert "hunter2" not in str(raised.value)


def test_an_unknown_action_is_named_without_echoing_it() -> None:
    with pytest.raises(InvalidInputError) as raised:
        parse_event(TfStateTask, {"action": "hunter2-secret"})
    message = str(raised.value)
    assert "hunter2" not in message
    assert "field 'action': should be one of 'plan', 'backup', 'report'" in message


def test_settings_default_the_eks_cluster_to_the_namespace() -> None:
    settings = DeploymentSettings.from_env(VALID_ENV)
    assert settings.eks_cluster_name == "wandb"
    assert settings.database_secret_arn is None and settings.wandb_url is None


def test_missing_settings_name_the_stack_parameter() -> None:
    with pytest.raises(ConfigurationError, match="stack parameter FileStorageBucketName"):
        DeploymentSettings.from_env({**VALID_ENV, "WANDB_BUCKET_NAME": " "})
