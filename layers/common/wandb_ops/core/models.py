"""Input shapes shared by the functions."""

from pydantic import BaseModel, ConfigDict


class StrictModel(BaseModel):
    """Unknown fields are an error: a typo in an input must not be silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class TaskEvent[InputT: BaseModel](StrictModel):
    """What a state machine task sends a function: the workflow input and the execution id.

    ``sam local invoke`` and tests send the same envelope (see events/).
    """

    input: InputT
    execution: str | None = None
