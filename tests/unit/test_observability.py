"""The functions' metrics carry the stack that deployed them, read at every invocation."""

import json
import threading
from typing import Any

import pytest
from aws_lambda_powertools.metrics import MetricUnit

from tests.rig import environ
from wandb_ops.core.errors import ConfigurationError
from wandb_ops.core.observability import METRICS_NAMESPACE, STACK_VARIABLE, metrics


@metrics.log_metrics
def _handler(event: dict[str, Any], context: Any) -> None:
    metrics.add_metric(name="Measured", unit=MetricUnit.Count, value=event["value"])
    if "inside" in event:  # both invocations collect at once; the first one publishes first
        event["inside"].wait(timeout=5)
        if event["value"] == 2:
            event["first_done"].wait(timeout=5)


def _published(output: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in output.splitlines() if line.startswith('{"_aws"')]


def test_each_invocation_publishes_under_the_stack_in_its_environment(capsys: pytest.CaptureFixture[str]) -> None:
    process = environ.install()
    for stack, value in (("wandb-ops", 1), ("wandb-ops-staging", 2), ("wandb-ops", 3)):
        with process.function_environment({STACK_VARIABLE: stack}):
            _handler({"value": value}, None)
    published = _published(capsys.readouterr().out)
    assert [(p["stack"], p["service"], p["Measured"]) for p in published] == [
        ("wandb-ops", "wandb-ops", [1.0]),
        ("wandb-ops-staging", "wandb-ops", [2.0]),
        ("wandb-ops", "wandb-ops", [3.0]),
    ]
    for document in published:
        [directive] = document["_aws"]["CloudWatchMetrics"]
        assert directive["Namespace"] == METRICS_NAMESPACE
        assert [sorted(names) for names in directive["Dimensions"]] == [["service", "stack"]]  # the alarms' set


def test_invocations_at_the_same_time_keep_their_metrics_apart(capsys: pytest.CaptureFixture[str]) -> None:
    """The rig runs every function of every stack in threads of one process."""
    process = environ.install()
    inside, first_done = threading.Barrier(2), threading.Event()

    def invoke(stack: str, value: int) -> None:
        with process.function_environment({STACK_VARIABLE: stack}):
            _handler({"value": value, "inside": inside, "first_done": first_done}, None)
        first_done.set()

    first = threading.Thread(target=invoke, args=("stack-a", 1))
    second = threading.Thread(target=invoke, args=("stack-b", 2))
    for thread in (first, second):
        thread.start()
    for thread in (first, second):
        thread.join()
    published = _published(capsys.readouterr().out)
    assert [(p["stack"], p["Measured"]) for p in published] == [("stack-a", [1.0]), ("stack-b", [2.0])]


def test_a_function_without_its_stack_says_to_redeploy() -> None:
    process = environ.install()
    with process.function_environment({STACK_VARIABLE: ""}), pytest.raises(ConfigurationError, match="redeploy"):
        _handler({"value": 1}, None)


def test_a_metric_outside_an_invocation_is_a_bug() -> None:
    with pytest.raises(RuntimeError, match="log_metrics"):
        metrics.add_metric(name="Measured", unit=MetricUnit.Count, value=1)
