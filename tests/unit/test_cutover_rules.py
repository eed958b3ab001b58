"""Pure rules of the W&B cut-over: kubectl's rollout rules, where W&B keeps its credentials,
the EKS token, settings validation, the notification text and the steps' contract."""

import base64
import copy
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, get_args
from urllib.parse import parse_qs, urlsplit

import boto3
import pytest
from pydantic import BaseModel

from wandb_ops.access.kubernetes.api import eks_token
from wandb_ops.core.errors import ConfigurationError
from wandb_ops.core.polling import backoff
from wandb_ops.workflows.credential_rotation.app_secret import VERSION_PREFIX, rotation_token
from wandb_ops.workflows.credential_rotation.notify import report
from wandb_ops.workflows.credential_rotation.rollout import (
    PausedDeploymentError,
    RolloutFailedError,
    refuse_paused,
    restart_patch,
    restarted_for,
    rollout_status,
)
from wandb_ops.workflows.credential_rotation.settings import CutoverSettings
from wandb_ops.workflows.credential_rotation.steps import STEPS
from wandb_ops.workflows.credential_rotation.tasks import (
    CutoverRequest,
    CutoverTask,
    Plan,
    RestoreCurrentOutput,
    RetireOutput,
    RolloutStatusOutput,
    RotationStatusOutput,
)
from wandb_ops.workflows.credential_rotation.wandb_config import LegacySecretTarget, OperatorTarget


def _deployment(**status: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "wandb-app", "generation": 4},
        "spec": {"replicas": 2, "template": {"metadata": {"annotations": {}}}},
        "status": {
            "observedGeneration": 4,
            "replicas": 2,
            "updatedReplicas": 2,
            "availableReplicas": 2,
            **status,
        },
    }


@pytest.mark.parametrize(
    ("status", "complete", "detail"),
    [
        ({}, True, "successfully rolled out"),
        ({"observedGeneration": 3}, False, "to be observed"),
        ({"updatedReplicas": 1, "replicas": 3}, False, "1 of 2 new replicas updated"),
        ({"replicas": 3}, False, "1 old replicas pending termination"),
        ({"availableReplicas": 1}, False, "1 of 2 updated replicas available"),
    ],
)
def test_rollout_status_follows_kubectl(status: dict[str, Any], complete: bool, detail: str) -> None:
    result = rollout_status(_deployment(**status))
    assert result.complete is complete and detail in result.detail


def test_a_progress_deadline_is_a_failure_not_a_wait() -> None:
    condition = {
        "type": "Progressing",
        "status": "False",
        "reason": "ProgressDeadlineExceeded",
        "message": 'ReplicaSet "wandb-app-5d8f" has timed out progressing.',
    }
    with pytest.raises(RolloutFailedError, match="wandb-app exceeded its progress deadline: ReplicaSet"):
        rollout_status(_deployment(updatedReplicas=1, replicas=3, conditions=[condition]))


def test_a_deadline_of_an_older_rollout_is_not_read_as_this_ones() -> None:
    condition = {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded", "message": "old"}
    restarted = _deployment(conditions=[condition], observedGeneration=3)
    assert rollout_status(restarted).detail == "waiting for the rollout to be observed"


def test_paused_deployments_are_refused_by_name() -> None:
    paused = _deployment()
    paused["spec"]["paused"] = True
    with pytest.raises(PausedDeploymentError, match=r"wandb-app are paused.*rollout resume"):
        refuse_paused([_deployment(), paused])
    refuse_paused([_deployment()])


def test_the_restart_patch_is_kubectls_plus_what_it_was_for() -> None:
    patch = restart_patch(datetime(2026, 11, 26, 12, 0, 5, tzinfo=UTC), "new:v2")
    annotations = patch["spec"]["template"]["metadata"]["annotations"]
    assert annotations == {
        "kubectl.kubernetes.io/restartedAt": "2026-11-26T12:00:05Z",
        "wandb-ops/restart-for": "new:v2",
    }
    deployment = _deployment()
    deployment["spec"]["template"]["metadata"]["annotations"] = annotations
    assert restarted_for(deployment) == "new:v2" and restarted_for(_deployment()) is None


class DictApi:
    """Just enough of KubernetesApi for the targets: one resource of each kind, merge patches."""

    def __init__(self) -> None:
        self.resource: dict[str, Any] = {}
        self.secret: dict[str, Any] = {}
        self.patches: list[dict[str, Any]] = []

    def get_custom_resource(self, namespace: str, name: str) -> dict[str, Any]:
        return copy.deepcopy(self.resource)

    def patch_custom_resource(self, namespace: str, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        self.patches.append(patch)
        _merge(self.resource, patch)
        return self.resource

    def get_secret(self, namespace: str, name: str) -> dict[str, Any]:
        return copy.deepcopy(self.secret)

    def patch_secret(self, namespace: str, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        self.patches.append(patch)
        _merge(self.secret, patch)
        return self.secret

    def list_deployments(self, namespace: str, label_selector: str) -> list[dict[str, Any]]:
        return []

    def get_deployment(self, namespace: str, name: str) -> dict[str, Any]:
        return _deployment()

    def patch_deployment(self, namespace: str, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        return _deployment()


def _merge(target: dict[str, Any], patch: dict[str, Any]) -> None:
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            _merge(target[key], value)
        else:
            target[key] = value


def test_the_operator_target_patches_only_user_and_password() -> None:
    api = DictApi()
    mysql = {"host": "wandb.cluster-x.rds.amazonaws.com", "port": 3306, "database": "wandb_local"}
    api.resource = {"spec": {"values": {"global": {"mysql": {**mysql, "user": "wandb", "password": "a"}}}}}
    target = OperatorTarget(api, "default", "wandb")
    assert target.read().user == "wandb"
    assert target.apply("wandb_app", "b") is True
    assert api.patches == [{"spec": {"values": {"global": {"mysql": {"user": "wandb_app", "password": "b"}}}}}]
    assert api.resource["spec"]["values"]["global"]["mysql"] == {**mysql, "user": "wandb_app", "password": "b"}
    assert target.apply("wandb_app", "b") is False and len(api.patches) == 1


def test_the_operator_target_refuses_value_references() -> None:
    api = DictApi()
    reference = {"valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}}
    api.resource = {"spec": {"values": {"global": {"mysql": {"host": "h", "user": "wandb", "password": reference}}}}}
    with pytest.raises(ConfigurationError, match=r"'password' is not a plain value.*Keep terraform in step"):
        OperatorTarget(api, "default", "wandb").read()


def test_the_legacy_target_rewrites_the_url_and_keeps_other_keys() -> None:
    api = DictApi()
    url = "mysql://wandb:old@wandb.cluster-x.rds.amazonaws.com:3307/wandb_local"
    api.secret = {"data": {"MYSQL": base64.b64encode(url.encode()).decode(), "LICENSE": "bGljZW5zZQ=="}}
    target = LegacySecretTarget(api, "default", "wandb")
    config = target.read()
    assert (config.user, config.host, config.port, config.database) == (
        "wandb",
        "wandb.cluster-x.rds.amazonaws.com",
        3307,
        "wandb_local",
    )
    assert target.apply("wandb_app", "new") is True
    assert base64.b64decode(api.secret["data"]["MYSQL"]).decode() == (
        "mysql://wandb_app:new@wandb.cluster-x.rds.amazonaws.com:3307/wandb_local"
    )
    assert api.secret["data"]["LICENSE"] == "bGljZW5zZQ=="


def test_the_legacy_target_refuses_a_value_that_is_not_a_mysql_url() -> None:
    api = DictApi()
    api.secret = {"data": {"MYSQL": base64.b64encode(b"postgres://x@y/z").decode()}}
    with pytest.raises(ConfigurationError, match="not a mysql://user:password@host/database URL"):
        LegacySecretTarget(api, "default", "wandb").read()


def test_the_eks_token_is_a_presigned_get_caller_identity_with_the_cluster_header() -> None:
    sts = boto3.client(
        "sts",
        region_name="eu-west-1",
        endpoint_url="https://sts.eu-west-1.amazonaws.com",
        aws_access_key_id="AKIAEXAMPLE",
        aws_secret_access_key="example",
    )
    token = eks_token(sts, "wandb")
    assert token.startswith("k8s-aws-v1.") and "=" not in token
    encoded = token.removeprefix("k8s-aws-v1.")
    url = urlsplit(base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode())
    query = parse_qs(url.query)
    assert url.hostname == "sts.eu-west-1.amazonaws.com"
    assert query["Action"] == ["GetCallerIdentity"] and query["X-Amz-Expires"] == ["60"]
    assert "x-k8s-aws-id" in query["X-Amz-SignedHeaders"][0].split(";")


BASE_ENV = {
    "WANDB_NAMESPACE": "wandb",
    "ROTATION_FUNCTION_ARN": "arn:aws:lambda:us-east-1:123456789012:function:rot",
    "ROTATION_DAYS": "365",
    "ROTATION_PASSWORD_LENGTH": "32",
    "CREDENTIAL_MAC_KEY_ARN": "arn:aws:kms:us-east-1:123456789012:key/mac",
    "POLL_BASE_SECONDS": "10",
    "POLL_MAX_SECONDS": "60",
    "POLL_MAX_ATTEMPTS": "30",
    "DRAIN_MAX_ATTEMPTS": "20",
}


def test_settings_default_to_terraform_aws_wandb() -> None:
    settings = CutoverSettings.from_env(BASE_ENV)
    assert settings.database_secret == "wandb-ops/wandb/mysql-app"
    assert (settings.target, settings.kubernetes_namespace, settings.resource_name) == ("operator", "default", "wandb")
    assert settings.deployments == "app.kubernetes.io/instance=wandb" and settings.eks_cluster_name == "wandb"


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"APP_DB_PRIVILEGES": "SELECT, SUPER"}, "ApplicationUserPrivileges \\(unknown privileges \\['SUPER'\\]"),
        ({"APP_DB_USERNAME": "x" * 30}, "ApplicationUserName \\(must be a letter"),
        ({"WANDB_TARGET": "helm"}, "WandbTarget \\(Input should be 'operator' or 'legacy-secret'\\)"),
        # no stack parameter sets it: the message must not send the operator to look for one
        ({"DRAIN_MAX_ATTEMPTS": "0"}, "DRAIN_MAX_ATTEMPTS is invalid .*: the template sets it; redeploy the stack"),
        ({"CREDENTIAL_MAC_KEY_ARN": " "}, "CREDENTIAL_MAC_KEY_ARN is empty: the template sets it"),
    ],
)
def test_bad_settings_name_the_parameter(override: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        CutoverSettings.from_env(BASE_ENV | override)


def test_the_rotation_token_is_stable_and_recognisable() -> None:
    token = rotation_token("arn:aws:states:us-east-1:123456789012:execution:m:run-1")
    assert token == rotation_token("arn:aws:states:us-east-1:123456789012:execution:m:run-1")
    assert token != rotation_token("arn:aws:states:us-east-1:123456789012:execution:m:run-2")
    assert token.startswith(VERSION_PREFIX) and 32 <= len(token) <= 64


PLAN = {
    "mode": "rotate",
    "old": {
        "secret_arn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:wandb-ops/wandb/mysql-app-Ab",
        "version_id": "v1",
    },
    "new": {
        "secret_arn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:wandb-ops/wandb/mysql-app-Ab",
        "version_id": "v2",
    },
    "old_user": "wandb_app",
    "new_user": "wandb_app_r1234abcd",
    "restore_current_on_rollback": True,
    "retire_old": True,
    "deployments": ["wandb-app"],
}


def test_the_rollback_report_names_the_step_the_reason_and_the_versions() -> None:
    cause = json.dumps({"errorType": "HealthCheckFailedError", "errorMessage": "W&B /ready answered HTTP 503"})
    run = {
        "plan": {"Payload": PLAN},
        "failed_step": "confirm",
        "error": {"Error": "HealthCheckFailedError", "Cause": cause},
        "retire": {"Payload": {"user": "wandb_app_r1234abcd", "action": "dropped", "reason": "no sessions"}},
    }
    result = report("rolled_back", run)
    assert result.subject == "W&B credential rotation rolled back"
    assert "Step confirm failed: HealthCheckFailedError: W&B /ready answered HTTP 503" in result.message
    assert "AWSCURRENT of" in result.message and "version v1 again" in result.message
    assert "'wandb_app_r1234abcd': dropped" in result.message


def test_the_rollback_failed_report_is_urgent_and_points_at_the_runbook() -> None:
    run = {
        "plan": {"Payload": PLAN},
        "failed_step": "rollout",
        "error": {"Error": "RolloutFailedError", "Cause": "{}"},
        "rollback_error": {"Error": "KubernetesError", "Cause": json.dumps({"errorMessage": "HTTP 403"})},
    }
    result = report("rollback_failed", run)
    assert result.subject.startswith("URGENT")
    assert "KubernetesError: HTTP 403" in result.message and "The rollback failed" in result.message


def test_a_report_before_any_plan_still_explains() -> None:
    run = {"error": {"Error": "CutoverError", "Cause": json.dumps({"errorMessage": "run onboarding first"})}}
    assert "CutoverError: run onboarding first" in report("failed", run).message


def test_the_events_in_the_repository_are_valid_inputs() -> None:
    events = Path(__file__).resolve().parents[2] / "events"
    CutoverTask.model_validate(json.loads((events / "credential-cutover.json").read_text()))
    for name in ("statemachine", "onboard-statemachine", "switch-statemachine"):
        CutoverRequest.model_validate(json.loads((events / f"credential-rotation-{name}.json").read_text()))


# ---------------------------------------------------------------- the steps' contract


def test_every_action_has_one_step() -> None:
    models = get_args(CutoverTask.model_fields["root"].annotation)
    actions = {action for model in models for action in get_args(model.model_fields["action"].annotation)}
    assert set(STEPS.by_action) == actions


def _field_names(model: type[BaseModel]) -> Iterator[str]:
    for name, field in model.model_fields.items():
        yield name
        for part in (field.annotation, *get_args(field.annotation)):
            for inner in (part, *get_args(part)):
                if isinstance(inner, type) and issubclass(inner, BaseModel):
                    yield from _field_names(inner)


@pytest.mark.parametrize("action", sorted(STEPS.by_action))
def test_no_step_output_has_room_for_a_password(action: str) -> None:
    """What a step returns goes into the Step Functions state and the step's log line."""
    names = set(_field_names(STEPS.output_model(action)))
    assert not {name for name in names if "password" in name or "secret_string" in name}, names


def test_outputs_leave_out_what_the_step_does_not_say() -> None:
    """The JSON the state machine gets: no key as null that the step never sent."""
    waiting = backoff(0, 10, 60, 30)
    poll = waiting.model_dump()
    assert RotationStatusOutput(done=True).model_dump(mode="json") == {"done": True}
    assert RotationStatusOutput.waiting(waiting).model_dump(mode="json") == {"done": False, **poll}
    assert RolloutStatusOutput(done=True).model_dump(mode="json") == {"done": True}
    assert RolloutStatusOutput.waiting(waiting, pending=["a: b"]).model_dump(mode="json") == {
        "done": False,
        "pending": ["a: b"],
        **poll,
    }
    assert RetireOutput.waiting(waiting, user="u", sessions=2).model_dump(mode="json") == {
        "done": False,
        "user": "u",
        "sessions": 2,
        **poll,
    }
    assert RetireOutput(done=True, user="u", action="dropped", reason="r").model_dump(mode="json") == {
        "done": True,
        "user": "u",
        "action": "dropped",
        "reason": "r",
    }
    assert RestoreCurrentOutput(moved=False, reason="r").model_dump(mode="json") == {"moved": False, "reason": "r"}
    assert RestoreCurrentOutput(moved=True, current_version="v1").model_dump(mode="json") == {
        "moved": True,
        "current_version": "v1",
    }
    nothing = Plan(mode="nothing", reason="r").model_dump(mode="json")
    assert nothing["old"] is None and nothing["deployments"] == [] and len(nothing) == 10


def test_every_task_of_the_state_machine_names_its_execution_and_a_step() -> None:
    definition = json.loads(
        (Path(__file__).resolve().parents[2] / "statemachines" / "credential_rotation.asl.json").read_text()
    )
    tasks = [s for s in definition["States"].values() if s.get("Resource") == "arn:aws:states:::lambda:invoke"]
    assert tasks
    for task in tasks:
        payload = task["Parameters"]["Payload"]
        assert payload["action"] in STEPS.by_action and payload["execution.$"] == "$$.Execution.Id", payload
