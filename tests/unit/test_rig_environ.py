"""The rig's per-invocation environment: concurrent handlers each see their own function's variables."""

import os
import threading

from tests.rig.environ import InvocationEnviron


def test_each_invoking_thread_sees_its_own_function_environment() -> None:
    environ = InvocationEnviron({"SHARED": "process", "AWS_REGION": "us-east-1"})
    seen: dict[str, tuple[str | None, str | None]] = {}
    both_inside = threading.Barrier(2)

    def invoke(function: str) -> None:
        with environ.function_environment({"FUNCTION": function}):
            both_inside.wait(timeout=5)  # both overlays are active at the same time
            seen[function] = (environ.get("FUNCTION"), environ.get("SHARED"))

    threads = [threading.Thread(target=invoke, args=(name,)) for name in ("posture", "rotation")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert seen == {"posture": ("posture", "process"), "rotation": ("rotation", "process")}
    assert "FUNCTION" not in environ


def test_writes_inside_an_invocation_stay_in_it() -> None:
    environ = InvocationEnviron({})
    with environ.function_environment({}):
        environ["SET_BY_HANDLER"] = "1"
        assert environ.copy() == {"SET_BY_HANDLER": "1"}
    assert "SET_BY_HANDLER" not in environ


def test_the_rig_has_installed_it_as_os_environ(local_cloud: object) -> None:
    assert isinstance(os.environ, InvocationEnviron)
    assert os.getenv("AWS_ENDPOINT_URL", "").startswith("http://127.0.0.1:")
