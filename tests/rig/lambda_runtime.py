"""A local Lambda runtime: every invocation of a function registered in the emulator
(a direct Invoke, Secrets Manager's rotation steps, a Step Functions task) runs the
function's real handler in-process, with the environment the template gave it and a
Lambda context, instead of moto's Docker path.
"""

import importlib.util
import json
import logging
import os
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, TextIO

from moto.awslambda.models import LambdaFunction
from moto.secretsmanager.exceptions import InvalidRequestException
from moto.secretsmanager.models import SecretsManagerBackend

from tests.rig import cloudwatch, environ

HandlerFn = Callable[[Any, Any], Any]


class SimulatedCrash(Exception):
    """Raise inside a handler (from a test's hook) to make the invocation end as a killed
    Lambda runtime does: no handler result, errorType Runtime.ExitError."""


@dataclass(frozen=True)
class FunctionSource:
    """Where a template function's code lives in the repository."""

    logical_id: str
    code_dir: Path
    handler: str  # "module.function", as in the template


@dataclass
class LocalLambdaContext:
    """The attributes of the Python Lambda context object that handlers and Powertools use."""

    function_name: str
    invoked_function_arn: str
    memory_limit_in_mb: int
    timeout_seconds: float
    function_version: str = "$LATEST"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    log_group_name: str = ""
    log_stream_name: str = ""
    identity: Any = None
    client_context: Any = None
    _started: float = field(default_factory=time.monotonic)

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.timeout_seconds - (time.monotonic() - self._started)) * 1000))


@dataclass(frozen=True)
class Invocation:
    function_name: str
    logical_id: str
    event: Any
    result: Any
    error_type: str | None
    log_lines: tuple[str, ...]
    metrics: tuple[dict[str, Any], ...]  # the EMF documents it printed, as CloudWatch reads them from its log


class _InvocationLogCapture(logging.Handler):
    """Collects the formatted log lines each invoking thread emits, as CloudWatch would receive them."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self._local = threading.local()

    def start(self) -> None:
        self._local.lines = []

    def stop(self) -> list[str]:
        lines: list[str] = getattr(self._local, "lines", [])
        self._local.lines = None
        return lines

    def emit(self, record: logging.LogRecord) -> None:
        lines = getattr(self._local, "lines", None)
        if lines is None:
            return
        # Format with the formatter of the handler that really writes the record (Powertools' JSON one).
        source_logger = logging.getLogger(record.name)
        formatter = next((h.formatter for h in source_logger.handlers if h.formatter), None)
        lines.append(formatter.format(record) if formatter else self.format(record))


class _InvocationStdout:
    """sys.stdout while handlers run. Lambda sends what a function prints to its log group, where
    CloudWatch reads the EMF metrics Powertools prints; what an invoking thread prints is recorded
    for its invocation, and written on to the stream this one replaced."""

    def __init__(self, stream: TextIO, recording: threading.local) -> None:
        self.stream = stream
        self._recording = recording

    def write(self, text: str) -> int:
        recorded: list[str] | None = getattr(self._recording, "stdout", None)
        if recorded is not None:
            recorded.append(text)
        return self.stream.write(text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)


class LocalLambdaRuntime:
    def __init__(self, layer_dirs: list[Path]) -> None:
        self._layer_dirs = layer_dirs
        self._sources: dict[str, FunctionSource] = {}
        self._modules: dict[str, ModuleType] = {}
        self._import_lock = threading.Lock()
        self._capture = _InvocationLogCapture()
        self.invocations: list[Invocation] = []
        self._environ = environ.install()
        self._rotating = threading.local()
        self._recording = threading.local()
        self._stdout_lock = threading.Lock()

    def register(self, function_name: str, source: FunctionSource) -> None:
        self._sources[function_name] = source

    def install(self) -> None:
        """Route moto's Lambda invocations to this runtime (for the whole process)."""
        for layer_dir in self._layer_dirs:
            if str(layer_dir) not in sys.path:
                sys.path.insert(0, str(layer_dir))
        from wandb_ops.core.observability import SERVICE  # noqa: PLC0415 - the layer is on sys.path only from here on

        # Powertools' logger does not propagate to the root logger: listen on it directly.
        logging.getLogger(SERVICE).addHandler(self._capture)
        runtime = self

        def invoke(fn: LambdaFunction, event: Any = None) -> tuple[str, bool, str]:
            return runtime.invoke(fn, event)

        LambdaFunction._invoke_lambda = invoke  # type: ignore[method-assign,assignment]
        self._stop_rotation_at_a_failed_step()

    def _stop_rotation_at_a_failed_step(self) -> None:
        """Secrets Manager stops a rotation at the first failing step (AWSCURRENT stays, the pending
        version stays staged); moto runs all four steps and moves AWSCURRENT regardless. Mark the
        thread while moto rotates, and turn a failed step into the error that ends the rotation."""
        original = SecretsManagerBackend.rotate_secret
        rotating = self._rotating

        def rotate_secret(backend: SecretsManagerBackend, *args: Any, **kwargs: Any) -> Any:
            rotating.active = True
            try:
                return original(backend, *args, **kwargs)
            finally:
                rotating.active = False

        SecretsManagerBackend.rotate_secret = rotate_secret  # type: ignore[method-assign,assignment]

    def mute_function_output(self) -> None:
        """Stop handlers' log lines and EMF metrics reaching stdout (the demo's report stays
        readable); each invocation still records its log lines."""
        from wandb_ops.core.observability import SERVICE  # noqa: PLC0415 - the layer is on sys.path only after install()

        for handler in logging.getLogger(SERVICE).handlers:
            if isinstance(handler, logging.StreamHandler):
                handler.setStream(open(os.devnull, "w"))  # noqa: SIM115 - lives as long as the process
        self._environ["POWERTOOLS_METRICS_DISABLED"] = "true"

    def invocations_of(self, logical_id: str) -> list[Invocation]:
        return [i for i in self.invocations if i.logical_id == logical_id]

    def invoke(self, fn: LambdaFunction, event: Any) -> tuple[str, bool, str]:
        source = self._sources.get(fn.function_name)
        if source is None:
            payload = {
                "errorType": "Runtime.NoLocalHandler",
                "errorMessage": f"function {fn.function_name} is not from template.yaml; the rig cannot run it",
            }
            return json.dumps(payload), True, ""
        context = LocalLambdaContext(
            function_name=fn.function_name,
            invoked_function_arn=fn.function_arn,
            memory_limit_in_mb=int(fn.memory_size),
            timeout_seconds=float(fn.timeout),
            log_group_name=f"/aws/lambda/{fn.function_name}",
        )
        variables = {
            **{k: str(v) for k, v in (fn.environment_vars or {}).items()},
            "AWS_LAMBDA_FUNCTION_NAME": fn.function_name,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(fn.memory_size),
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_LOG_GROUP_NAME": context.log_group_name,
            "AWS_EXECUTION_ENV": f"AWS_Lambda_{fn.run_time}",
            "AWS_REGION": fn.region,
            "AWS_DEFAULT_REGION": fn.region,
            "_HANDLER": source.handler,
            "LAMBDA_TASK_ROOT": str(source.code_dir),
            # There is no X-Ray daemon here; Powertools would otherwise try to reach one.
            "POWERTOOLS_TRACE_DISABLED": "true",
        }
        error_type: str | None = None
        self._record_stdout()
        with self._environ.function_environment(variables):
            self._capture.start()
            outer_stdout = getattr(self._recording, "stdout", None)
            self._recording.stdout = []
            started = time.monotonic()
            try:
                result: Any = self._handler(source)(event, context)
                body = json.dumps(result)
            except SimulatedCrash:
                error_type = "Runtime.ExitError"
                result = {"errorType": error_type, "errorMessage": "Runtime exited with error: signal: killed"}
                body = json.dumps(result)
            except Exception as exc:  # noqa: BLE001 - the runtime reports any handler failure, as Lambda does
                error_type = type(exc).__name__
                result = {
                    "errorType": error_type,
                    "errorMessage": str(exc),
                    "stackTrace": traceback.format_exception(exc),
                }
                body = json.dumps(result)
            finally:
                log_lines = self._capture.stop()
                printed = "".join(self._recording.stdout).splitlines()
                self._recording.stdout = outer_stdout
            elapsed = time.monotonic() - started
        metrics = tuple(cloudwatch.publish_embedded_metrics(printed, fn.region))
        if elapsed > context.timeout_seconds:
            # Lambda would have stopped the handler; report what Lambda reports.
            error_type = "Sandbox.Timedout"
            result = {"errorType": error_type, "errorMessage": f"Task timed out after {elapsed:.2f} seconds"}
            body = json.dumps(result)
        self.invocations.append(
            Invocation(fn.function_name, source.logical_id, event, result, error_type, tuple(log_lines), metrics)
        )
        if error_type is not None and getattr(self._rotating, "active", False):
            raise InvalidRequestException(f"rotation step {event.get('Step')} failed: {result['errorMessage']}")
        return body, error_type is not None, "\n".join(log_lines)

    def _record_stdout(self) -> None:
        """(Re)install the recording stdout: pytest swaps sys.stdout between a test's phases."""
        with self._stdout_lock:
            if not isinstance(sys.stdout, _InvocationStdout):
                sys.stdout = _InvocationStdout(sys.stdout, self._recording)

    def _handler(self, source: FunctionSource) -> HandlerFn:
        module_name, _, attribute = source.handler.rpartition(".")
        key = f"{source.logical_id}:{module_name}"
        with self._import_lock:
            module = self._modules.get(key)
            if module is None:
                path = source.code_dir / f"{module_name.replace('.', '/')}.py"
                # A unique module name per function: two functions may both have an app.py.
                spec = importlib.util.spec_from_file_location(f"wandb_ops_fn_{source.logical_id}", path)
                if spec is None or spec.loader is None:
                    raise ImportError(f"cannot load handler module {path}")
                module = importlib.util.module_from_spec(spec)
                spec.loader.exec_module(module)
                self._modules[key] = module
        handler: HandlerFn = getattr(module, attribute)
        return handler
