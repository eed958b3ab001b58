"""`sam deploy` of this template over a stack deployed from the last release before the
reorganisation (commit 9361fc8) is an in-place update that changes nothing the stack does: after
the SAM transform, the same parameters (type, default, constraints), conditions and outputs, and
for every resource the same logical id, type, condition, deletion and update-replace policies and
the same Properties, compared whole: names, each function's own code folder, its settings and
environment variable values, each state machine's definition file and DefinitionSubstitutions,
triggers, alarms, log groups, buckets, keys, the topic, its subscription, the alias and every
statement of every role, key, bucket and topic policy. The baseline is
scripts/template_contract.py's output for that commit's template (its docstring says how it was
made); the only differences allowed are the renamed code folders below and the ones in ALLOWED."""

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from scripts.template_contract import contract, load

REPO_ROOT = Path(__file__).resolve().parents[2]
BASELINE_PATH = Path(__file__).resolve().parent / "template_contract_baseline.json"

# The folders under functions/ that have a new name since the release (old name: new name); every
# other function keeps its folder. CloudFormation updates a function's code in place, but each
# function must still run its own code.
RENAMED_FUNCTION_FOLDERS = {"mysql_rotation": "secret_rotation", "credential_cutover": "credential_rotation"}
RENAMED_CODE_FOLDERS = {f"functions/{old}": f"functions/{new}" for old, new in RENAMED_FUNCTION_FOLDERS.items()}
KUBERNETES_LAYER = {"Ref": "KubernetesLayer"}
# Descriptions that are prose only, read in the console. Schedule, rule and alarm descriptions
# stay compared: an alarm's description is the text of its notification.
PROSE_DESCRIPTIONS = ("AWS::Lambda::Function", "AWS::Lambda::LayerVersion", "AWS::KMS::Key")


@dataclass(frozen=True)
class Allowed:
    """A difference from the baseline that is allowed, and why."""

    what: str
    why: str
    normalise: Callable[[dict[str, Any]], None]  # applied to the baseline and to today's contract alike


def _functions(found: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        logical_id: resource["Properties"]
        for logical_id, resource in found["resources"].items()
        if resource["Type"] == "AWS::Lambda::Function"
    }


def _with_code_folders_renamed(baseline: dict[str, Any]) -> dict[str, Any]:
    renamed: dict[str, Any] = json.loads(json.dumps(baseline))
    for function in _functions(renamed).values():
        folder = function["Code"]["S3Key"]
        function["Code"]["S3Key"] = RENAMED_CODE_FOLDERS.get(folder, folder)
    return renamed


def _drop_kubernetes_layer(found: dict[str, Any]) -> None:
    for logical_id in [name for name in found["resources"] if name.startswith("KubernetesLayer")]:
        del found["resources"][logical_id]
    for function in _functions(found).values():
        if KUBERNETES_LAYER in function.get("Layers", []):
            function["Layers"] = [entry for entry in function["Layers"] if entry != KUBERNETES_LAYER]
    for name in [
        name for name, output in found["outputs"].items() if json.dumps(KUBERNETES_LAYER) in json.dumps(output)
    ]:
        del found["outputs"][name]


def _drop_prose_descriptions(found: dict[str, Any]) -> None:
    for resource in found["resources"].values():
        if resource["Type"] in PROSE_DESCRIPTIONS:
            resource.get("Properties", {}).pop("Description", None)


ALLOWED = (
    Allowed(
        "KubernetesLayer, and the Layers entry and output naming it, may be gone",
        "the Kubernetes client's own layer is being dropped; a layer version is replaced on every "
        "code change anyway, so dropping one is an in-place update of the function that used it",
        _drop_kubernetes_layer,
    ),
    Allowed(
        "the Description of functions, layers and keys",
        "prose shown in the console; nothing reads it",
        _drop_prose_descriptions,
    ),
    # Not in the contract at all (scripts/template_contract.py): the contents of the code, layer and
    # definition files; the tests run every function and every definition with its substitutions.
)


def _normalised(found: dict[str, Any]) -> dict[str, Any]:
    copied: dict[str, Any] = json.loads(json.dumps(found))
    for allowed in ALLOWED:
        allowed.normalise(copied)
    return copied


BASELINE_RAW = json.loads(BASELINE_PATH.read_text())
BASELINE = _normalised(_with_code_folders_renamed(BASELINE_RAW))
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
    for logical_id, function in _functions(CURRENT_RAW).items():
        folder = REPO_ROOT / function["Code"]["S3Key"]
        assert (folder / "app.py").is_file(), f"{logical_id}: CodeUri {folder} has no app.py"


def test_every_renamed_folder_was_released() -> None:
    """The rename map names folders of the release, so that no entry can stand for another."""
    released = {function["Code"]["S3Key"] for function in _functions(BASELINE_RAW).values()}
    assert set(RENAMED_CODE_FOLDERS) <= released
    assert not set(RENAMED_CODE_FOLDERS.values()) & released


def test_the_contract_sees_what_it_compares() -> None:
    """A contract that read nothing would compare nothing: it holds every kind of promise."""
    resources = BASELINE["resources"]
    assert len(resources) > 100
    assert resources["PostureStateMachineRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
    assert resources["StackKey"]["Properties"]["KeyPolicy"]["Statement"]
    assert resources["StackKey"]["Properties"]["EnableKeyRotation"] is True
    assert resources["CredentialMacKey"]["Properties"]["KeySpec"] == "HMAC_256"
    assert resources["NotificationsTopicPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert resources["NotificationsTopic"]["Properties"]["KmsMasterKeyId"] == {"Ref": "StackKey"}
    assert resources["NotificationsEmailSubscription"]["Properties"]["Endpoint"]
    assert resources["StackKeyAlias"]["Properties"]["TargetKeyId"]
    assert resources["TfStateBackupBucket"]["Properties"]["BucketEncryption"]
    assert resources["PostureStateMachineDaily"]["Properties"]["ScheduleExpression"]
    assert resources["PostureFunction"]["Properties"]["Environment"]["Variables"]
    assert resources["S3ReencryptStateMachine"]["Properties"]["DefinitionSubstitutions"]
    assert resources["S3ReencryptStateMachine"]["Properties"]["DefinitionS3Location"]
    assert {function["Code"]["S3Key"] for function in _functions(BASELINE).values()} >= set(
        RENAMED_CODE_FOLDERS.values()
    )
