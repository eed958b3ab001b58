"""AWS access: client construction and error classification, in one place.

Clients use the SDK's standard retry mode (exponential backoff with jitter on
throttling); what still fails with a throttling code becomes AwsThrottledError so
the state machine's own backoff takes over.
"""

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cache
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from wandb_ops.core.errors import AwsThrottledError

_CLIENT_CONFIG = Config(retries={"mode": "standard", "max_attempts": 5}, connect_timeout=5, read_timeout=30)

THROTTLING_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottled",
        "RequestThrottledException",
        "TooManyRequestsException",
        "SlowDown",
        "RequestLimitExceeded",
        "ProvisionedThroughputExceededException",
    }
)


ACCESS_DENIED_CODES = frozenset({"AccessDenied", "AccessDeniedException"})


def client(service: str, region: str | None = None, connections: int = 10) -> Any:
    """A boto3 client; honours AWS_ENDPOINT_URL, so tests and the demo reach the emulator.
    ``connections``: the pool size, as many as the threads that share the client."""
    config = _CLIENT_CONFIG.merge(Config(max_pool_connections=connections))
    return boto3.client(service, region_name=region, config=config)


def regional_clients() -> Callable[[str, str], Any]:
    """A (service, region) -> client factory that makes each client once: for one invocation."""
    return cache(lambda service, region: client(service, region=region))


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


@contextmanager
def throttling_as_retryable() -> Iterator[None]:
    try:
        yield
    except ClientError as exc:
        if error_code(exc) in THROTTLING_CODES:
            raise AwsThrottledError(f"AWS throttled {exc.operation_name} after the SDK's retries") from exc
        raise
