"""Turn a raw event into a typed model, or an InvalidInputError that names each bad field."""

from typing import Any

from pydantic import BaseModel, ValidationError

from wandb_ops.core.errors import InvalidInputError


def parse_event[ModelT: BaseModel](model: type[ModelT], event: Any, within: str = "") -> ModelT:
    """``within``: where ``event`` sits in the function's event (e.g. "input"), for the field names."""
    if not isinstance(event, dict):
        raise InvalidInputError(
            f"expected a JSON object as input, got {type(event).__name__}; see events/ for a valid example"
        )
    try:
        return model.model_validate(event)
    except ValidationError as exc:
        raise InvalidInputError(describe_validation_error(exc, within)) from None


def describe_validation_error(exc: ValidationError, within: str = "") -> str:
    """One line per problem: the field path, what is wrong, never the offending value."""
    problems = []
    for error in exc.errors(include_input=False, include_url=False):
        location = error["loc"]
        message = error["msg"]
        if error["type"] == "union_tag_invalid":  # pydantic's message quotes the value given
            context = error.get("ctx", {})
            location = (*location, str(context.get("discriminator", "")).strip("'"))
            message = f"should be one of {context.get('expected_tags', 'the documented values')}"
        field = ".".join(str(part) for part in (*filter(None, [within]), *location)) or "(input)"
        problems.append(f"field '{field}': {message}")
    return "invalid input: " + "; ".join(problems) + ". See events/ for a valid example."
