"""What the rotation function takes (Secrets Manager's rotation event) and returns."""

from pydantic import BaseModel, ConfigDict, Field

from wandb_ops.core.steps import StepOutput


class RotationEvent(BaseModel):
    """What Secrets Manager sends; it may add fields over time, so unknown ones are ignored."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    Step: str = Field(min_length=1)
    SecretId: str = Field(min_length=1)
    ClientRequestToken: str = Field(min_length=32, max_length=64)

    @property
    def action(self) -> str:
        return self.Step

    @property
    def execution(self) -> str:
        """The rotation's version: every step of one rotation logs under it."""
        return self.ClientRequestToken


class RotationOutput(StepOutput):
    """The step done, and what it did (or "already current")."""

    step: str
    result: str
