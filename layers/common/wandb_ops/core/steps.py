"""One way to run a workflow step.

A workflow's ``steps.py`` lists its steps with ``Steps.of(...)``: each step is a function
``(task, deps) -> output`` whose task model names the action(s) it serves in its ``action``
Literal and whose output is a ``StepOutput``. The handler parses the task, builds the
dependencies and calls ``Steps.run``; the state machine reads the output's fields, and
``tests/unit/test_step_contracts.py`` checks every path it reads against the output models.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Protocol, get_args, get_origin, get_type_hints

from pydantic import BaseModel, ConfigDict, SerializerFunctionWrapHandler, model_serializer

from wandb_ops.core.observability import logger


class StepOutput(BaseModel):
    """What a step returns to the state machine: its fields are the contract Choice states
    and later states' paths read, so an unknown field is an error."""

    model_config = ConfigDict(extra="forbid")


class SparseOutput(StepOutput):
    """A step output whose ``ABSENT_WHEN_NONE`` fields are left out (not null) when they have no
    value: they are keys a step writes only in some cases."""

    ABSENT_WHEN_NONE: ClassVar[frozenset[str]] = frozenset()

    @model_serializer(mode="wrap")
    def _leave_out_absent(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        dumped: dict[str, Any] = handler(self)
        return {key: value for key, value in dumped.items() if value is not None or key not in self.ABSENT_WHEN_NONE}


class Task(Protocol):
    """A parsed step input: the action that selects the step, and the execution it runs for."""

    @property
    def action(self) -> str: ...

    @property
    def execution(self) -> str | None: ...


type StepFunction[DepsT] = Callable[[Any, DepsT], StepOutput]


@dataclass(frozen=True)
class Steps[DepsT]:
    by_action: Mapping[str, StepFunction[DepsT]]

    @classmethod
    def of(cls, *steps: StepFunction[DepsT]) -> "Steps[DepsT]":
        """The steps by the actions their task models accept; one step per action."""
        by_action: dict[str, StepFunction[DepsT]] = {}
        for step in steps:
            for action in _actions_of(step):
                if action in by_action:
                    raise TypeError(
                        f"action {action!r} is served by two steps: {by_action[action].__name__}, {step.__name__}"
                    )
                by_action[action] = step
        return cls(by_action)

    def output_model(self, action: str) -> type[StepOutput]:
        """The model of what the step for ``action`` returns (the state machine contract)."""
        output: type[StepOutput] = get_type_hints(self.by_action[action])["return"]
        return output

    def run(self, task: Task, deps: DepsT) -> dict[str, Any]:
        """Run the task's step and return its output as the JSON the state machine receives."""
        logger.append_keys(action=task.action)
        output = self.by_action[task.action](task, deps)
        return output.model_dump(mode="json")


def correlate(task: Task, request_id: str) -> None:
    """Every log line of the invocation carries the execution id (or, outside a state
    machine, the Lambda request id), so one run's lines can be found across functions."""
    logger.set_correlation_id(task.execution or request_id)


def _actions_of(step: Callable[..., Any]) -> tuple[str, ...]:
    hints = get_type_hints(step)
    task_model = next(iter(hints.values()))
    if not (isinstance(task_model, type) and issubclass(task_model, BaseModel)):
        raise TypeError(f"{step.__name__}: its first parameter must be annotated with a task model")
    if not issubclass(hints.get("return", object), StepOutput):
        raise TypeError(f"{step.__name__}: it must be annotated to return a StepOutput model")
    annotation = task_model.model_fields["action"].annotation
    if get_origin(annotation) is not Literal:
        raise TypeError(f"{task_model.__name__}.action must be a Literal of the actions it serves")
    return tuple(str(action) for action in get_args(annotation))
