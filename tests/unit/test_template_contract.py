"""`sam deploy` of this template over a stack deployed from the reorganisation's base commit is an
in-place update that grants exactly the same permissions: the same logical ids and types, the same
parameters, outputs and conditions, the same physical names, function settings, triggers, alarms
and log groups, and the same statements in every role, key, bucket and topic policy, after the SAM
transform. The baseline is scripts/template_contract.py's output for that commit's template; its
docstring says how it was made and what the contract leaves out."""

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from scripts.template_contract import ARTIFACTS, contract, load

REPO_ROOT = Path(__file__).resolve().parents[2]
BASELINE_PATH = Path(__file__).resolve().parent / "template_contract_baseline.json"
CODE_FOLDER = "<a folder of functions/>"


@dataclass(frozen=True)
class Allowed:
    """A difference from the baseline that is allowed, and why."""

    what: str
    why: str
    normalise: Callable[[dict[str, Any]], None]  # applied to the baseline and to today's contract alike


def _drop_kubernetes_layer(found: dict[str, Any]) -> None:
    layer = {"Ref": "KubernetesLayer"}
    for section in ("resources", "names", "triggers_and_watches", "iam", "state_machines", "functions"):
        for logical_id in [name for name in found[section] if name.startswith("KubernetesLayer")]:
            del found[section][logical_id]
    for function in found["functions"].values():
        if layer in function.get("Layers", []):
            function["Layers"] = [entry for entry in function["Layers"] if entry != layer]
    for name in [name for name, output in found["outputs"].items() if json.dumps(layer) in json.dumps(output)]:
        del found["outputs"][name]


def _any_code_folder(found: dict[str, Any]) -> None:
    for function in found["functions"].values():
        function["Code"] = {"S3Bucket": ARTIFACTS, "S3Key": CODE_FOLDER}


ALLOWED = (
    Allowed(
        "KubernetesLayer, and the Layers entry and output naming it, may be gone",
        "the Kubernetes client's own layer is being dropped; a layer version is replaced on every "
        "code change anyway, so dropping one is an in-place update of the function that used it",
        _drop_kubernetes_layer,
    ),
    Allowed(
        "each function's CodeUri folder",
        "the function folders are named after their workflow, and one workflow's code may be split "
        "in two folders; CloudFormation updates a function's code in place "
        "(test_every_code_folder_holds_a_handler checks the folders instead)",
        _any_code_folder,
    ),
    # The contents of each DefinitionUri file and the DefinitionSubstitutions they use are not part
    # of the contract at all (scripts/template_contract.py leaves them out): definitions are being
    # rewritten, and the workflow tests run every definition with its substitutions.
)


def _normalised(found: dict[str, Any]) -> dict[str, Any]:
    copied: dict[str, Any] = json.loads(json.dumps(found))
    for allowed in ALLOWED:
        allowed.normalise(copied)
    return copied


BASELINE = _normalised(json.loads(BASELINE_PATH.read_text()))
CURRENT_RAW = contract(load(REPO_ROOT / "template.yaml"))
CURRENT = _normalised(CURRENT_RAW)


def _differences(path: str, old: Any, new: Any) -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        found = []
        for key in sorted(old.keys() | new.keys()):
            if key not in new:
                found.append(f"{path}.{key}: gone (was {json.dumps(old[key])[:200]})")
            elif key not in old:
                found.append(f"{path}.{key}: new ({json.dumps(new[key])[:200]})")
            else:
                found += _differences(f"{path}.{key}", old[key], new[key])
        return found
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        return [
            found
            for index, pair in enumerate(zip(old, new, strict=True))
            for found in _differences(f"{path}[{index}]", *pair)
        ]
    if old != new:
        return [f"{path}: was {json.dumps(old)[:300]}, is {json.dumps(new)[:300]}"]
    return []


@pytest.mark.parametrize("section", sorted(BASELINE))
def test_the_template_keeps_its_contract(section: str) -> None:
    differences = _differences(section, BASELINE[section], CURRENT.get(section, {}))
    assert not differences, "\n".join(
        ["the template no longer matches tests/unit/template_contract_baseline.json:", *differences[:40]]
    )


def test_the_contract_has_no_new_sections() -> None:
    assert set(CURRENT) == set(BASELINE)


def test_every_code_folder_holds_a_handler() -> None:
    for logical_id, function in CURRENT_RAW["functions"].items():
        folder = REPO_ROOT / function["Code"]["S3Key"]
        assert (folder / "app.py").is_file(), f"{logical_id}: CodeUri {folder} has no app.py"


def test_the_contract_sees_what_it_compares() -> None:
    """A contract that read nothing would compare nothing: it holds every kind of promise."""
    assert len(BASELINE["resources"]) > 100
    assert {"PostureFunctionRole", "PostureStateMachineRole", "StackKey", "NotificationsTopicPolicy"} <= set(
        BASELINE["iam"]
    )
    assert BASELINE["iam"]["PostureStateMachineRole"]["Policies"]["PostureStateMachineRolePolicy0"]
    assert "PostureStateMachineDaily" in BASELINE["triggers_and_watches"]
    assert BASELINE["functions"]["PostureFunction"]["EnvironmentVariableNames"]
