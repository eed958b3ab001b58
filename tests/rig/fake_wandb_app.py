"""A fake W&B server: the application behind the load balancer of a FakeKubernetes install.

Its pods are whatever FakeKubernetes says is serving; each connects to a real MySQL engine
with the config it was started with. So `/ready` and the GraphQL API fail exactly when
some serving pod cannot log in, and a background loop logs in as every serving pod all
the time, like pods opening DB connections: tests assert that no login failed during a
credential rotation.
"""

import base64
import collections
import hmac
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Self

import pymysql

from tests.rig.fake_kubernetes import FakeKubernetes, MysqlConfig

VIEWER = {"username": "admin", "entity": "admin"}


class FakeWandbApp:
    def __init__(
        self,
        kube: FakeKubernetes,
        engine_host: str,
        engine_port: int,
        ca_path: Path,
        *,
        api_key: str | None = None,
        namespace: str = "default",
        login_interval_s: float = 0.02,
    ) -> None:
        self.kube = kube
        self.api_key = api_key
        self.failed_logins: list[str] = []
        self.successful_logins: collections.Counter[str] = collections.Counter()
        self._engine_host, self._engine_port, self._ca_path = engine_host, engine_port, ca_path
        self._namespace = namespace
        self._login_interval_s = login_interval_s
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server = _AppServer(self)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._threads: list[threading.Thread] = []

    def start(self) -> "FakeWandbApp":
        if not self._threads:
            self._stopping.clear()
            self._threads = [
                threading.Thread(target=self._server.serve_forever, args=(0.05,), name="fake-wandb-http", daemon=True),
                threading.Thread(target=self._keep_logging_in, name="fake-wandb-pods", daemon=True),
            ]
            for thread in self._threads:
                thread.start()
        return self

    def stop(self) -> None:
        if self._threads:
            self._stopping.set()
            self._server.shutdown()
            for thread in self._threads:
                thread.join()
            self._threads = []
        self._server.server_close()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def _login_error(self, config: MysqlConfig) -> str | None:
        """Log in as a pod started with `config` would (TLS verified); the error, never the password."""
        try:
            connection = pymysql.connect(
                host=self._engine_host,
                port=self._engine_port,
                user=config.user,
                password=config.password,
                database=config.database,
                ssl_ca=str(self._ca_path),
                ssl_verify_cert=True,
                ssl_verify_identity=True,
                connect_timeout=5,
            )
        except pymysql.err.MySQLError as exc:
            return str(exc).replace(config.password, "***") if config.password else str(exc)
        with connection, connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return None

    def _serving_errors(self) -> list[str]:
        """'user: error' for each serving config that cannot log in; no pods serving is an error too."""
        configs = self.kube.serving_configs(self._namespace)
        if not configs:
            return ["no W&B pod is serving"]
        return [f"{config.user}: {error}" for config in configs if (error := self._login_error(config)) is not None]

    def _keep_logging_in(self) -> None:
        while not self._stopping.wait(self._login_interval_s):
            for config in self.kube.serving_configs(self._namespace):
                error = self._login_error(config)
                with self._lock:
                    if error is None:
                        self.successful_logins[config.user] += 1
                    else:
                        self.failed_logins.append(f"{config.user}: {error}")

    def _answer(self, method: str, path: str, authorization: str | None, body: bytes) -> tuple[int, str, str]:
        """(status, content type, body) for one request."""
        if (method, path) == ("GET", "/healthz"):
            return 200, "text/plain", "ok"  # the process lives, whatever the database says
        if (method, path) == ("GET", "/ready"):
            return self._ready()
        if (method, path) == ("POST", "/graphql"):
            return self._graphql(authorization, body)
        return 404, "text/plain", "not found"

    def _ready(self) -> tuple[int, str, str]:
        errors = self._serving_errors()
        if errors:
            return 503, "application/json", json.dumps({"ready": False, "reason": "; ".join(errors)})
        return 200, "text/plain", "ok"

    def _graphql(self, authorization: str | None, body: bytes) -> tuple[int, str, str]:
        if not self._authorized(authorization):
            return 401, "application/json", json.dumps({"errors": [{"message": "unauthorized"}]})
        if not _is_graphql_request(body):
            return 400, "application/json", json.dumps({"errors": [{"message": 'expected {"query": ...}'}]})
        errors = self._serving_errors()
        if errors:
            return 500, "application/json", json.dumps({"errors": [{"message": "; ".join(errors)}]})
        return 200, "application/json", json.dumps({"data": {"viewer": VIEWER}})

    def _authorized(self, authorization: str | None) -> bool:
        if self.api_key is None or not authorization:
            return False
        expected = "Basic " + base64.b64encode(f"api:{self.api_key}".encode()).decode()
        return hmac.compare_digest(authorization.encode(), expected.encode())


def _is_graphql_request(body: bytes) -> bool:
    """Any query is answered as `{ viewer { username entity } }`; it only has to be one."""
    try:
        request = json.loads(body)
    except ValueError:
        return False
    return isinstance(request, dict) and isinstance(request.get("query"), str)


class _AppServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, app: FakeWandbApp) -> None:
        super().__init__(("127.0.0.1", 0), _AppHandler)
        self.app = app


class _AppHandler(BaseHTTPRequestHandler):
    server: _AppServer

    def do_GET(self) -> None:
        request_body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        code, content_type, body = self.server.app._answer(
            self.command, self.path.split("?", maxsplit=1)[0], self.headers.get("Authorization"), request_body
        )
        data = body.encode()
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_POST = do_GET

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: tests assert on what the app counted."""
