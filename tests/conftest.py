"""Fixtures of the local test rig (tests/rig): the moto server, the Lambda runtime,
the deployed stack, the simulated W&B deployment and the MySQL-compatible engines."""

import os
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest

from tests.rig.engines import ENGINES, Engine, EngineUnavailable, start_engine
from tests.rig.local_cloud import LocalCloud, start_local_cloud
from tests.rig.stack import DeployedStack
from tests.rig.wandb_deployment import SimulatedWandb, seed_wandb


def _required_engines() -> set[str]:
    """Engines whose absence fails the run instead of skipping (CI sets `all`)."""
    value = os.environ.get("WANDB_OPS_REQUIRE_ENGINES", "")
    return set(ENGINES) if value.strip() == "all" else {part for part in value.split(",") if part}


@pytest.fixture(scope="session")
def local_cloud() -> Iterator[LocalCloud]:
    cloud = start_local_cloud()
    yield cloud
    cloud.stop()


@pytest.fixture
def cloud(local_cloud: LocalCloud) -> LocalCloud:
    """The emulator, emptied before each test."""
    local_cloud.reset()
    return local_cloud


@pytest.fixture
def wandb(cloud: LocalCloud) -> SimulatedWandb:
    return seed_wandb()


@pytest.fixture
def stack(cloud: LocalCloud, wandb: SimulatedWandb) -> DeployedStack:
    return cloud.deploy(wandb.stack_parameters())


_started_engines: dict[str, Engine | EngineUnavailable] = {}


@pytest.fixture(scope="session", params=ENGINES)
def mysql_engine(request: pytest.FixtureRequest) -> Engine:
    """Each MySQL-compatible engine present, started once per session on a free port."""
    name: str = request.param
    if name not in _started_engines:
        try:
            engine = start_engine(name)
            request.addfinalizer(engine.stop)
            _started_engines[name] = engine
        except EngineUnavailable as exc:
            _started_engines[name] = exc
    started = _started_engines[name]
    if isinstance(started, EngineUnavailable):
        message = f"engine {name} unavailable: {started}"
        if name in _required_engines():
            pytest.fail(message + " (WANDB_OPS_REQUIRE_ENGINES requires it)")
        pytest.skip(message)
    return started


AwsHook = Callable[[str, str, Callable[..., Any]], None]


@pytest.fixture
def aws_hook() -> Iterator[AwsHook]:
    """Register a botocore before-call hook on (service, operation) for the test's duration: it
    sees every request the functions make (they build their clients from the default session),
    and a hook that returns a response answers instead of the emulator."""
    registered: list[tuple[str, Callable[..., Any]]] = []

    def register(service: str, operation: str, hook: Callable[..., Any]) -> None:
        event = f"before-call.{service}.{operation}"
        boto3.DEFAULT_SESSION.events.register(event, hook)
        registered.append((event, hook))

    yield register
    for event, hook in registered:
        boto3.DEFAULT_SESSION.events.unregister(event, hook)
