"""Settings read from the function environment, declared once.

The template sets each variable from a stack parameter (or from a resource it creates). A
workflow declares its settings as a ``StackSettings`` model whose fields say which variable
they come from and which stack parameter sets it, so an invalid value is reported as the
parameter the operator has to change. Read them once, in the handler's dependencies, and
pass the result down: domain code never reads the environment.
"""

import os
import types
from collections.abc import Mapping
from typing import Any, Self, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from wandb_ops.core.errors import ConfigurationError

TEMPLATE = "(template)"  # the template sets the variable itself: no parameter to change


def from_stack(variable: str, parameter: str = TEMPLATE, default: Any = ..., **constraints: Any) -> Any:
    """A field read from environment ``variable``, which the template sets from stack ``parameter``.

    An empty or unset variable takes ``default`` (no default: it is required)."""
    return Field(default, validation_alias=variable, json_schema_extra={"stack_parameter": parameter}, **constraints)


class StackSettings(BaseModel):
    """The template sets every variable its functions read: a default is for an optional stack
    parameter left empty; a variable without one must be set (an empty value is refused).
    A whole number is digits only: no sign, decimal point or separator slips through."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _whole_numbers_are_digits(cls, values: Any) -> Any:
        for field in cls.model_fields.values():
            raw = values.get(field.validation_alias) if isinstance(values, dict) else None
            if _is_whole_number(field.annotation) and isinstance(raw, str) and not (raw.isascii() and raw.isdigit()):
                raise ValueError(_not_a_whole_number(str(field.validation_alias), raw, field.json_schema_extra))
        return values

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Self:
        """The settings, or a ConfigurationError naming each variable and stack parameter to fix."""
        env = os.environ if environ is None else environ
        values = {}
        for variable in cls._variables():
            value = env.get(variable, "").strip()
            if value:
                values[variable] = value
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            raise ConfigurationError(cls._explain(exc, values)) from None

    @classmethod
    def _variables(cls) -> dict[str, str]:
        """Environment variable -> the stack parameter that sets it."""
        variables = {}
        for name, field in cls.model_fields.items():
            extra = field.json_schema_extra
            if not isinstance(field.validation_alias, str) or not isinstance(extra, dict):
                raise TypeError(f"{cls.__name__}.{name} is not declared with from_stack(...)")
            variables[field.validation_alias] = str(extra["stack_parameter"])
        return variables

    @classmethod
    def _explain(cls, exc: ValidationError, values: Mapping[str, str]) -> str:
        variables = cls._variables()
        problems = []
        for error in exc.errors(include_input=False, include_url=False):
            variable = str(error["loc"][0]) if error["loc"] else ""
            parameter = variables.get(variable)
            if parameter is None:  # a rule across fields: its message names them
                problems.append(str(error["msg"]).removeprefix("Value error, "))
            elif parameter == TEMPLATE:
                state = "empty" if error["type"] == "missing" else f"invalid ({error['msg']})"
                problems.append(f"environment variable {variable} is {state}: the template sets it; redeploy the stack")
            elif error["type"] == "missing":
                problems.append(
                    f"environment variable {variable} is empty: set the stack parameter {parameter} and redeploy"
                )
            else:
                problems.append(
                    f"{variable}={values.get(variable, '')!r}: set the stack parameter {parameter} ({error['msg']})"
                )
        return "; ".join(problems)


def _is_whole_number(annotation: Any) -> bool:
    if get_origin(annotation) in (Union, types.UnionType):
        return any(_is_whole_number(arg) for arg in get_args(annotation))
    return annotation is int


def _not_a_whole_number(variable: str, raw: str, extra: Any) -> str:
    parameter = extra.get("stack_parameter", TEMPLATE) if isinstance(extra, dict) else TEMPLATE
    if parameter == TEMPLATE:
        return (
            f"environment variable {variable}={raw!r} is not a whole number: the template sets it; redeploy the stack"
        )
    return f"{variable}={raw!r}: set the stack parameter {parameter} to a whole number"


class DeploymentSettings(StackSettings):
    """The W&B deployment the stack looks after."""

    namespace: str = from_stack("WANDB_NAMESPACE", "Namespace")
    bucket_name: str = from_stack("WANDB_BUCKET_NAME", "FileStorageBucketName")
    kms_key_arn: str = from_stack("WANDB_KMS_KEY_ARN", "KmsKeyArn")
    eks_cluster_name_setting: str | None = from_stack("WANDB_EKS_CLUSTER_NAME", "EksClusterName", None)
    wandb_url: str | None = from_stack("WANDB_URL", "WandbUrl", None)
    database_secret_arn: str | None = from_stack("WANDB_DATABASE_SECRET_ARN", "DatabaseSecretArn", None)

    @property
    def eks_cluster_name(self) -> str:
        """terraform-aws-wandb names the EKS cluster after the namespace unless told otherwise."""
        return self.eks_cluster_name_setting or self.namespace
