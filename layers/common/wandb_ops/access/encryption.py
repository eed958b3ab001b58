"""Which KMS key encrypts what: the shape of a key reference and a bucket's default encryption.

Kept apart from the rotation policy so the replica sync and the re-encryption, which need only
these, do not import it (docs/performance.md, "Cold start").
"""

import re
from typing import Any

from botocore.exceptions import ClientError

from wandb_ops.core.aws import error_code

KEY_REFERENCE = re.compile(
    r"^(arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:(key|alias)/.+|alias/[A-Za-z0-9/_-]+|[A-Za-z0-9-]{36,40})$"
)


def bucket_default_encryption(s3: Any, bucket: str) -> tuple[str, str] | None:
    """The bucket's default SSE-KMS algorithm and key (the AWS-managed aws/s3 key when none is
    named), or None when the default is not SSE-KMS."""
    try:
        rules = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
    except ClientError as exc:
        if error_code(exc) == "ServerSideEncryptionConfigurationNotFoundError":
            return None
        raise
    for rule in rules:
        default = rule.get("ApplyServerSideEncryptionByDefault", {})
        if default.get("SSEAlgorithm") in ("aws:kms", "aws:kms:dsse"):
            return str(default["SSEAlgorithm"]), str(default.get("KMSMasterKeyID") or "alias/aws/s3")
    return None


def bucket_default_key(s3: Any, bucket: str) -> str | None:
    encryption = bucket_default_encryption(s3, bucket)
    return encryption[1] if encryption else None
