"""What to tell the customer when KMS denies this stack's role: terraform-aws-wandb creates its
key with a key policy that lets only the terraform caller change it (docs/kms-rotation.md), so a
denied call becomes the exact key policy statement to add, not an error."""

import json
from typing import Any

from botocore.exceptions import ClientError

READ_ACTIONS = ("kms:DescribeKey", "kms:GetKeyRotationStatus", "kms:ListKeyRotations")
CHANGE_ACTIONS = ("kms:EnableKeyRotation", "kms:RotateKeyOnDemand")


def key_policy_statement(role_arn: str, actions: tuple[str, ...]) -> dict[str, Any]:
    return {
        "Sid": "AllowWandbOpsKeyRotation",
        "Effect": "Allow",
        "Principal": {"AWS": role_arn or "<the KmsRotationFunctionRoleArn stack output>"},
        "Action": list(actions),
        "Resource": "*",  # in a key policy, "*" is the key itself
    }


def denied_fix(error: ClientError, key: str, actions: tuple[str, ...], statement: dict[str, Any] | None = None) -> str:
    message = str(error.response.get("Error", {}).get("Message", ""))
    if "identity-based policy" in message:
        return (
            f"this stack's role is not granted {', '.join(actions)} on {key}: add the key ARN to the stack parameter "
            "KmsRotationKeyArns and redeploy"
        )
    what = f"this statement: {json.dumps(statement)}" if statement else "the statement in 'guidance'"
    return (
        f"the key policy of {key} does not let this stack's role use {', '.join(actions)}: add {what} to the key "
        "policy (docs/kms-rotation.md)"
    )
