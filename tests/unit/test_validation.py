"""Bad input and bad configuration get errors that name the field and the fix."""

import pytest

from wandb_ops.core.errors import ConfigurationError, InvalidInputError
from wandb_ops.core.models import TaskEvent
from wandb_ops.core.settings import DeploymentSettings, StackSettings, from_stack
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


class Counts(StackSettings):
    """Settings of a workflow that counts: one number an operator sets, one the template sets."""

    days: int = from_stack("COUNT_DAYS", "CountDays", 7, ge=1, le=365)
    attempts: int = from_stack("COUNT_ATTEMPTS", ge=1)


@pytest.mark.parametrize("raw", ["40.0", "+40", "1_00", "-1", "4e1", "٤٠", "forty"])
def test_a_whole_number_setting_is_digits_only_and_names_its_parameter(raw: str) -> None:
    with pytest.raises(ConfigurationError, match=r"COUNT_DAYS=.*: set the stack parameter CountDays to a whole number"):
        Counts.from_env({"COUNT_DAYS": raw, "COUNT_ATTEMPTS": "3"})
    with pytest.raises(ConfigurationError, match=r"COUNT_ATTEMPTS=.*the template sets it; redeploy the stack"):
        Counts.from_env({"COUNT_ATTEMPTS": raw})


def test_settings_take_their_default_when_unset_or_empty_and_refuse_what_is_out_of_bounds() -> None:
    assert Counts.from_env({"COUNT_ATTEMPTS": " 3 "}) == Counts.from_env({"COUNT_DAYS": " ", "COUNT_ATTEMPTS": "3"})
    assert Counts.from_env({"COUNT_ATTEMPTS": "3"}).days == 7
    with pytest.raises(ConfigurationError, match=r"COUNT_DAYS='366': set the stack parameter CountDays \(.*365"):
        Counts.from_env({"COUNT_DAYS": "366", "COUNT_ATTEMPTS": "3"})
    with pytest.raises(ConfigurationError, match="COUNT_ATTEMPTS is empty: the template sets it; redeploy the stack"):
        Counts.from_env({"COUNT_DAYS": "3"})
