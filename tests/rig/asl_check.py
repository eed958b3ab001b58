"""Check a state machine definition with moto's own ASL parser, plus the limits of
its interpreter that docs/local-rig.md records, so a definition the local rig cannot execute
fails the suite instead of passing unexercised.
"""

import json
from collections.abc import Iterator
from typing import Any

from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser, ASLParserException

from tests.rig.stack import substitute

# Optimized integrations the interpreter executes and whose parameter names match AWS.
SUPPORTED_INTEGRATIONS = ("lambda", "sns", "sqs", "states", "events", "dynamodb", "s3")
# aws-sdk integrations whose parameter and result names are the same in moto (boto3 names)
# and in AWS (Java SDK names); others differ in case (DBClusterIdentifier vs DbClusterIdentifier).
SAME_NAMES_SDK_SERVICES = ("secretsmanager",)


def _states(definition: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every state, including those nested in Map and Parallel states."""
    for name, state in definition.get("States", {}).items():
        yield name, state
        for nested_key in ("Iterator", "ItemProcessor"):
            if nested_key in state:
                yield from _states(state[nested_key])
        for branch in state.get("Branches", []):
            yield from _states(branch)


def _resource_problems(name: str, resource: str) -> list[str]:
    if resource.startswith("arn:aws:lambda:") or resource.startswith("${"):
        return []
    prefix = "arn:aws:states:::"
    if not resource.startswith(prefix):
        return [f"state {name}: resource {resource!r} is not a service integration the interpreter knows"]
    service = resource[len(prefix) :].split(":", 1)[0]
    if service == "aws-sdk":
        sdk_service = resource[len(prefix) :].split(":")[1]
        if sdk_service not in SAME_NAMES_SDK_SERVICES:
            return [
                f"state {name}: aws-sdk:{sdk_service} takes boto3 parameter names in moto but Java SDK names "
                "in AWS, so a run that passes here can fail there: use a Lambda task (docs/local-rig.md)"
            ]
        return []
    if service not in SUPPORTED_INTEGRATIONS:
        return [f"state {name}: the local interpreter does not execute the {service} integration"]
    return []


def definition_problems(text: str, substitutions: dict[str, str]) -> list[str]:
    """What keeps this definition (with its DefinitionSubstitutions) from running in the rig."""
    problems: list[str] = []
    try:
        definition = json.loads(text)
    except json.JSONDecodeError as exc:
        return [f"not JSON: {exc}"]
    if definition.get("QueryLanguage", "JSONPath") != "JSONPath":
        problems.append("QueryLanguage must be JSONPath: the local interpreter cannot run JSONata (docs/local-rig.md)")
    resolved = substitute(text, substitutions)
    if "${" in resolved:
        missing = sorted({part.split("}", 1)[0] for part in resolved.split("${")[1:]})
        problems.append(f"placeholders without a DefinitionSubstitutions entry: {missing}")
    for name, state in _states(definition):
        if state.get("QueryLanguage", "JSONPath") != "JSONPath":
            problems.append(f"state {name}: QueryLanguage must be JSONPath")
        if "Resource" in state:
            problems += _resource_problems(name, state["Resource"])
        if "ItemBatcher" in state:
            problems.append(f"state {name}: ItemBatcher is rejected by the interpreter; batch in a plan file")
        processor = state.get("ItemProcessor", {}).get("ProcessorConfig", {})
        if processor.get("ExecutionType") == "EXPRESS":
            problems.append(f"state {name}: EXPRESS child workflows are rejected by the interpreter; use STANDARD")
    try:
        AmazonStateLanguageParser.parse(resolved)
    except ASLParserException as exc:
        problems.append(f"the interpreter's parser rejects it: {exc}")
    except Exception as exc:  # noqa: BLE001 - any parser crash means the interpreter cannot run it
        problems.append(f"the interpreter's parser fails on it: {type(exc).__name__}: {exc}")
    return problems
