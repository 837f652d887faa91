"""Secrets ClassPulse must send on (an LRS's password), encrypted at rest.

API keys are stored as hashes because ClassPulse only checks them; a password
it presents to another server has to come back, so it is encrypted with
Fernet (AES-128-CBC with HMAC-SHA256) under a key derived from
``CLASSPULSE_SECRETS_KEY``, which the caller passes from its process's settings.
Without that setting nothing can be stored or read back, and the error says
which variable to set.
"""

from __future__ import annotations

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken
from pydantic import SecretStr

from shared.errors import ConfigError

#: Separates this use of the key from any other that might derive from it later.
_KEY_CONTEXT = b"classpulse/secret-box/v1:"


def _fernet(key: SecretStr | None) -> Fernet:
    if key is None or len(key.get_secret_value()) < 16:
        raise ConfigError(
            "CLASSPULSE_SECRETS_KEY is not set (or shorter than 16 characters): it encrypts "
            "the LRS passwords ClassPulse stores; set it to e.g. `openssl rand -hex 32`"
        )
    digest = hashlib.sha256(_KEY_CONTEXT + key.get_secret_value().encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


def seal(plaintext: str, key: SecretStr | None) -> str:
    """``plaintext`` encrypted (a Fernet token) under ``key`` (``CLASSPULSE_SECRETS_KEY``)."""
    box = _fernet(key)
    return box.encrypt(plaintext.encode()).decode("ascii")


def unseal(token: str, key: SecretStr | None) -> str:
    """The plaintext of :func:`seal`; ``ConfigError`` when ``key`` cannot open it."""
    box = _fernet(key)
    try:
        return box.decrypt(token.encode("ascii")).decode()
    except InvalidToken:
        raise ConfigError(
            "a stored secret cannot be decrypted: CLASSPULSE_SECRETS_KEY changed since it "
            "was stored; set the LRS credentials again"
        ) from None
