"""The one place that creates the Powertools Logger, Tracer and metrics.

Every function logs under the same service name; the function name comes from the
Lambda context that ``logger.inject_lambda_context`` adds to each line.
"""

import functools
import os
from collections.abc import Callable
from contextvars import ContextVar
from typing import ParamSpec, TypeVar

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.metrics.provider.cloudwatch_emf.cloudwatch import AmazonCloudWatchEMFProvider

from wandb_ops.core.errors import ConfigurationError

SERVICE = "wandb-ops"
METRICS_NAMESPACE = "WandbOps"
STACK_VARIABLE = "WANDB_OPS_STACK"  # the template sets it to the stack's name

# Only the AWS calls are traced. The default patches every library the X-Ray SDK knows that is
# installed (requests, httplib, sqlite3, PyMySQL, ...), importing each one in every function:
# about 40 ms of each cold start (docs/performance.md, "Cold start").
TRACED_LIBRARIES = ("botocore",)

P = ParamSpec("P")
R = TypeVar("R")


def stack_name() -> str:
    stack = os.environ.get(STACK_VARIABLE, "").strip()
    if not stack:
        raise ConfigurationError(f"{STACK_VARIABLE} is empty: redeploy the stack (the template sets it to its name)")
    return stack


class InvocationMetrics:
    """CloudWatch metrics (EMF) with two dimensions, ``service`` and ``stack`` (the stack that
    deployed the function): two stacks in one account publish apart, and each stack's alarms
    and dashboard read only its own measurements.

    The stack is read from the environment at every invocation, and each invocation collects
    into a provider of its own. Powertools' ``Metrics`` keeps one metric set and one set of
    dimensions per process, which the local rig would mix: it runs every function of every
    stack in threads of one process."""

    def __init__(self) -> None:
        self._current: ContextVar[AmazonCloudWatchEMFProvider | None] = ContextVar("metrics", default=None)

    def log_metrics(self, handler: Callable[P, R]) -> Callable[P, R]:
        """Collect the handler's metrics and publish them when it returns or raises."""

        @functools.wraps(handler)
        def invoke(*args: P.args, **kwargs: P.kwargs) -> R:
            provider = AmazonCloudWatchEMFProvider(namespace=METRICS_NAMESPACE, service=SERVICE)
            provider.set_default_dimensions(service=SERVICE, stack=stack_name())
            token = self._current.set(provider)
            try:
                published: Callable[P, R] = provider.log_metrics(handler)
                return published(*args, **kwargs)
            finally:
                self._current.reset(token)

        return invoke

    def add_metric(self, name: str, unit: MetricUnit, value: float) -> None:
        provider = self._current.get()
        if provider is None:
            raise RuntimeError("metrics.add_metric is called outside a handler decorated with metrics.log_metrics")
        provider.add_metric(name=name, unit=unit, value=value)


logger = Logger(service=SERVICE)
tracer = Tracer(service=SERVICE, patch_modules=TRACED_LIBRARIES)
metrics = InvocationMetrics()
