"""Passwords this stack makes, and the proof that it made them.

A rotation or an onboarding run writes a password into the application secret, where anyone
allowed to write that secret could have written one of their own choosing (and so know the
password of a user W&B is then switched to). Each password this stack makes is therefore derived
from an HMAC, by a KMS key only this stack's credential functions may use, of what it is for
(purpose, user name, version id): ``is_ours`` recomputes it, so a password written by anyone else
is told apart without storing anything anywhere. The passwords are alphanumeric (W&B puts them
into a URL unescaped).
"""

import hmac
import string
from dataclasses import dataclass
from typing import Any, Literal

ALPHABET = string.digits + string.ascii_letters
MIN_LENGTH, MAX_LENGTH = 16, 128
Purpose = Literal["rotation", "onboarding"]


@dataclass(frozen=True)
class PasswordMint:
    kms: Any
    key_id: str
    length: int = 32

    def password(self, purpose: Purpose, username: str, version_id: str, length: int | None = None) -> str:
        """The password of ``username`` in the secret version ``version_id``: the same on every retry."""
        length = length or self.length
        digits = ""
        block = 0
        while len(digits) < length:  # each HMAC-SHA-256 gives 42 base-62 digits
            message = f"wandb-ops/{purpose}/{block}/{len(username)}:{username}/{version_id}".encode()
            mac = self.kms.generate_mac(KeyId=self.key_id, Message=message, MacAlgorithm="HMAC_SHA_256")["Mac"]
            digits += _base62(int.from_bytes(mac, "big"), 42)
            block += 1
        return digits[:length]

    def is_ours(self, purpose: Purpose, username: str, version_id: str, password: str) -> bool:
        """Whether this stack made ``password`` for that user and version (any length it allows)."""
        if not MIN_LENGTH <= len(password) <= MAX_LENGTH:
            return False
        return hmac.compare_digest(self.password(purpose, username, version_id, len(password)), password)


def _base62(number: int, width: int) -> str:
    digits = []
    for _ in range(width):
        number, digit = divmod(number, len(ALPHABET))
        digits.append(ALPHABET[digit])
    return "".join(digits)
