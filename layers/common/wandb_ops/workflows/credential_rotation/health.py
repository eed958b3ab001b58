"""W&B's HTTP health checks: /healthz and /ready, and optionally an API call with an API key."""

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import urllib3

from wandb_ops.workflows.credential_rotation.errors import HealthCheckFailedError

if TYPE_CHECKING:
    from wandb_ops.workflows.credential_rotation.steps import Deps


@dataclass(frozen=True)
class HttpResponse:
    status: int
    body: bytes


type HttpClient = Callable[[str, str, dict[str, str], bytes | None], HttpResponse]  # method, url, headers, body

_POOL = urllib3.PoolManager(timeout=urllib3.Timeout(connect=5, read=10), retries=False)


def urllib3_http(method: str, url: str, headers: dict[str, str], body: bytes | None) -> HttpResponse:
    """The real HTTP client of the health checks; connection failures become OSError."""
    try:
        response = _POOL.request(method, url, headers=headers, body=body, redirect=False)
    except urllib3.exceptions.HTTPError as exc:
        raise ConnectionError(str(exc)) from None
    return HttpResponse(response.status, response.data)


def endpoints_answer(user: str, deps: "Deps") -> list[str]:
    """GET /healthz and /ready answer 200 (W&B now runs as ``user``): the checks made."""
    checks = []
    for path in ("/healthz", "/ready"):
        response = _request("GET", path, deps)
        if response.status != 200:
            raise HealthCheckFailedError(f"W&B {path} answered HTTP {response.status} after the switch to '{user}'")
        checks.append(f"{path} 200")
    return checks


def api_call(api_key_secret_arn: str, deps: "Deps") -> str:
    """W&B's API answers a viewer query with the API key (``{"api_key": ...}`` or the bare key)."""
    raw = deps.secretsmanager.get_secret_value(SecretId=api_key_secret_arn)["SecretString"]
    try:
        key = str(json.loads(raw)["api_key"])
    except (json.JSONDecodeError, KeyError, TypeError):
        key = raw.strip()
    auth = base64.b64encode(f"api:{key}".encode()).decode()
    response = _request(
        "POST",
        "/graphql",
        deps,
        {"Authorization": f"Basic {auth}", "Content-Type": "application/json"},
        json.dumps({"query": "{ viewer { username } }"}).encode(),
    )
    viewer = None
    if response.status == 200:
        try:
            viewer = json.loads(response.body)["data"]["viewer"]["username"]
        except (json.JSONDecodeError, KeyError, TypeError):
            viewer = None
    if not viewer:
        raise HealthCheckFailedError(
            f"W&B's API (POST /graphql, viewer) answered HTTP {response.status} without a viewer"
        )
    return "api call as viewer ok"


def _request(
    method: str, path: str, deps: "Deps", headers: dict[str, str] | None = None, body: bytes | None = None
) -> HttpResponse:
    url = f"{deps.settings.wandb_url}{path}"
    try:
        return deps.http(method, url, headers or {}, body)
    except OSError as exc:
        raise HealthCheckFailedError(f"W&B at {url} did not answer ({type(exc).__name__})") from None
