"""The state machines read what the functions write: every path a state reads from a step's
result must name a field of that step's output model, every action a task asks for must be a
step, and every field a task sends must be one its task model accepts.

Nothing else ties a Choice state's ``$.x.Payload.done`` to the field a function returns: a
renamed field would otherwise only show when a run takes that branch."""

import importlib
import json
import re
import types
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin, get_type_hints

import pytest
from pydantic import BaseModel

from tests.rig.stack import REPO_ROOT, load_template
from wandb_ops.core.steps import Steps

LAMBDA_INVOKE = "arn:aws:states:::lambda:invoke"
# A path in a state's fields or inside an intrinsic function's arguments: $.a.b[0].c
PATH = re.compile(r"(?<![$\w])\$(?:\.[A-Za-z_][\w-]*|\[\d+\])+")
PATH_FIELDS = ("InputPath", "OutputPath", "ItemsPath", "SecondsPath", "TimestampPath")
STEPS_IMPORT = re.compile(r"^from (wandb_ops\.workflows\.\w+\.steps) import [^\n]*\bSTEPS\b", re.MULTILINE)

ANY = object()  # a value whose shape the test does not know: any path below it is accepted


@dataclass(frozen=True)
class ListOf:
    item: Any


@dataclass(frozen=True)
class Writer:
    """A lambda task that puts a step's output into the state data at ``result_path``."""

    state: str
    result_path: tuple[str, ...]
    shape: Any  # a dict of fixed keys, a pydantic model, ListOf or ANY


def _state_machines() -> list[tuple[str, Path, dict[str, Steps[Any] | str]]]:
    """(logical id, definition, steps by ${substitution}) of every state machine."""
    resources = load_template()["Resources"]
    machines = []
    for name, resource in resources.items():
        if resource["Type"] != "AWS::Serverless::StateMachine":
            continue
        properties = resource["Properties"]
        steps: dict[str, Steps[Any] | str] = {}
        for placeholder, value in properties.get("DefinitionSubstitutions", {}).items():
            target = value.get("Fn::GetAtt") if isinstance(value, dict) else None
            if isinstance(target, str):
                target = target.split(".")
            if target and resources[target[0]]["Type"] == "AWS::Serverless::Function":
                steps[placeholder] = _steps_of(resources[target[0]]["Properties"]["CodeUri"])
        machines.append((name, REPO_ROOT / properties["DefinitionUri"], steps))
    return machines


def _steps_of(code_uri: str) -> Steps[Any] | str:
    """The function's steps, or why they cannot be found (the tests report it)."""
    source = (REPO_ROOT / code_uri / "app.py").read_text()
    found = STEPS_IMPORT.search(source)
    if not found:
        return f"{code_uri}/app.py does not import its workflow's STEPS (see docs/adding-a-workflow.md)"
    steps: Steps[Any] = importlib.import_module(found.group(1)).STEPS
    return steps


def _checked(steps: dict[str, Steps[Any] | str]) -> dict[str, Steps[Any]]:
    problems = [problem for problem in steps.values() if isinstance(problem, str)]
    assert not problems, "; ".join(problems)
    return {placeholder: found for placeholder, found in steps.items() if not isinstance(found, str)}


MACHINES = _state_machines()


def _split(path: str) -> tuple[str, ...]:
    return tuple(
        part for field, index in re.findall(r"\.([A-Za-z_][\w-]*)|\[(\d+)\]", path) for part in [field or f"[{index}]"]
    )


def _walk(states: dict[str, Any], scope: str) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(scope, name, state) of every state; a Map's item processor is a scope of its own."""
    for name, state in states.items():
        yield scope, name, state
        for processor in (state.get("ItemProcessor"), state.get("Iterator")):
            if processor:
                yield from _walk(processor["States"], f"{scope}/{name}")
        for branch in state.get("Branches", []):
            yield from _walk(branch["States"], scope)  # a branch gets its Parallel state's input


def _invoked_step(
    state: dict[str, Any], steps: dict[str, Steps[Any]], item_selector: dict[str, Any]
) -> tuple[Steps[Any], str, dict[str, Any]] | None:
    if state.get("Type") != "Task" or not str(state.get("Resource", "")).startswith(LAMBDA_INVOKE):
        return None
    parameters = state.get("Parameters", {})
    function = str(parameters.get("FunctionName", ""))
    placeholder = function.removeprefix("${").removesuffix("}")
    if placeholder not in steps:
        return None
    payload = parameters.get("Payload")
    if payload is None and parameters.get("Payload.$") == "$":
        payload = item_selector  # the item the Map built is the payload
    assert isinstance(payload, dict) and isinstance(payload.get("action"), str), (
        f"{function}: the task's payload must name its action as a fixed string"
    )
    return steps[placeholder], payload["action"], payload


def _lambda_result(model: type[BaseModel]) -> dict[str, Any]:
    return {
        "Payload": model,
        "StatusCode": ANY,
        "ExecutedVersion": ANY,
        "SdkHttpMetadata": ANY,
        "SdkResponseMetadata": ANY,
    }


def _resolve(shape: Any, segments: tuple[str, ...], where: str) -> Any:
    for position, segment in enumerate(segments):
        if shape is ANY:
            return ANY
        if isinstance(shape, ListOf):
            assert segment.startswith("["), f"{where}: '{segment}' read from a list"
            shape = shape.item
            continue
        if isinstance(shape, dict):
            assert segment in shape, f"{where}: '{segment}' is not one of {sorted(shape)}"
            shape = shape[segment]
            continue
        if isinstance(shape, type) and issubclass(shape, BaseModel):
            fields = shape.model_fields
            assert segment in fields, f"{where}: {shape.__name__} has no field '{segment}' (it has {sorted(fields)})"
            shape = _shape_of(fields[segment].annotation)
            continue
        raise AssertionError(f"{where}: '{'.'.join(segments[position:])}' reads below a plain value")
    return shape


def _shape_of(annotation: Any) -> Any:
    origin = get_origin(annotation)
    if origin is Annotated:
        return _shape_of(get_args(annotation)[0])
    if origin in (Union, types.UnionType):
        options = [_shape_of(arg) for arg in get_args(annotation) if arg is not type(None)]
        return options[0] if len(options) == 1 else ANY
    if origin in (list, tuple):
        return ListOf(_shape_of(get_args(annotation)[0]))
    if origin is dict or annotation is Any:
        return ANY
    if origin is Literal:
        return annotation
    return annotation


def _selected(selector: dict[str, Any], result: dict[str, Any], where: str) -> dict[str, Any]:
    shape: dict[str, Any] = {}
    for key, value in selector.items():
        if key.endswith(".$") and isinstance(value, str) and value.startswith("$") and not value.startswith("$$"):
            shape[key[:-2]] = _resolve(result, _split(value), where) if PATH.fullmatch(value) else ANY
        else:
            shape[key.removesuffix(".$")] = ANY
    return shape


def _writers(definition: dict[str, Any], steps: dict[str, Steps[Any]]) -> dict[str, list[Writer]]:
    writers: dict[str, list[Writer]] = {}
    outputs: dict[str, Any] = {}  # a Map item processor's output, by the Map state's name
    for scope, name, state in _walk(definition["States"], ""):
        selector = {}
        if scope:
            parent = scope.rsplit("/", 1)[1]
            selector = _find(definition["States"], parent).get("ItemSelector", {})
        invoked = _invoked_step(state, steps, selector)
        if invoked is None:
            continue
        stepset, action, _ = invoked
        where = f"{name} ({action})"
        result: Any = _lambda_result(stepset.output_model(action))
        if "ResultSelector" in state:
            result = _selected(state["ResultSelector"], result, where)
        if "ResultPath" in state and state["ResultPath"] is not None:
            writers.setdefault(scope, []).append(Writer(name, _split(state["ResultPath"]), result))
        elif "ResultPath" not in state:
            output = _resolve(result, _split(state.get("OutputPath", "$")), where)
            if scope and state.get("End"):
                outputs[scope.rsplit("/", 1)[1]] = output
    for scope, name, state in _walk(definition["States"], ""):
        if name in outputs and state.get("ResultPath"):
            writers.setdefault(scope, []).append(Writer(name, _split(state["ResultPath"]), ListOf(outputs[name])))
    return writers


def _find(states: dict[str, Any], wanted: str) -> dict[str, Any]:
    for _, name, state in _walk(states, ""):
        if name == wanted:
            return state
    raise KeyError(wanted)


def _reads(state: dict[str, Any]) -> Iterator[str]:
    """Every path a state reads from its input."""
    for field in PATH_FIELDS:
        if isinstance(state.get(field), str):
            yield state[field]
    for choice in state.get("Choices", []):
        yield from _choice_reads(choice)
    for field in ("Parameters", "ItemSelector", "Arguments"):
        yield from _template_reads(state.get(field, {}))


def _choice_reads(rule: dict[str, Any]) -> Iterator[str]:
    for key, value in rule.items():
        if key == "Variable" or (key.endswith("Path") and isinstance(value, str)):
            yield value
        elif key in ("And", "Or"):
            for inner in value:
                yield from _choice_reads(inner)
        elif key == "Not":
            yield from _choice_reads(value)


def _template_reads(template: Any) -> Iterator[str]:
    if isinstance(template, dict):
        for key, value in template.items():
            if key.endswith(".$") and isinstance(value, str):
                yield from PATH.findall(value)
            else:
                yield from _template_reads(value)
    elif isinstance(template, list):
        for value in template:
            yield from _template_reads(value)


@pytest.mark.parametrize(("machine", "definition_path", "found"), MACHINES, ids=[m[0] for m in MACHINES])
def test_every_path_read_from_a_step_names_a_field_of_its_output(
    machine: str, definition_path: Path, found: dict[str, Steps[Any] | str]
) -> None:
    steps = _checked(found)
    definition = json.loads(definition_path.read_text())
    writers = _writers(definition, steps)
    checked = 0
    for scope, name, state in _walk(definition["States"], ""):
        # a Map's ItemSelector and ItemsPath read the Map's input: the enclosing scope
        for path in _reads(state):
            for writer in writers.get(scope, []):
                segments = _split(path)
                if segments[: len(writer.result_path)] == writer.result_path:
                    _resolve(
                        writer.shape,
                        segments[len(writer.result_path) :],
                        f"{machine}: {name} reads {path}, written by {writer.state}",
                    )
                    checked += 1
    assert checked or not writers, f"{machine}: no state reads what its steps write"


@pytest.mark.parametrize(("machine", "definition_path", "found"), MACHINES, ids=[m[0] for m in MACHINES])
def test_every_task_asks_for_a_step_with_fields_its_task_model_accepts(
    machine: str, definition_path: Path, found: dict[str, Steps[Any] | str]
) -> None:
    steps = _checked(found)
    definition = json.loads(definition_path.read_text())
    invoked = 0
    for scope, name, state in _walk(definition["States"], ""):
        selector = _find(definition["States"], scope.rsplit("/", 1)[1]).get("ItemSelector", {}) if scope else {}
        invocation = _invoked_step(state, steps, selector)
        if invocation is None:
            continue
        stepset, action, payload = invocation
        assert action in stepset.by_action, f"{machine}: {name} asks for action {action!r}, not a step"
        task_model = next(iter(get_type_hints(stepset.by_action[action]).values()))
        accepted = set(task_model.model_fields)
        sent = {key.removesuffix(".$") for key in payload}
        assert sent <= accepted, f"{machine}: {name} sends {sorted(sent - accepted)}, which {task_model} refuses"
        assert "execution" in sent, (
            f'{machine}: {name} does not pass the execution id ("execution.$": "$$.Execution.Id")'
        )
        invoked += 1
    assert invoked, f"{machine}: no task runs a step of its function"
