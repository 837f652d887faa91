"""Verified student tokens, remembered until they expire.

A classroom client sends the same token with every frame; verifying an HS256
signature with PyJWT costs a few hundred microseconds (key preparation), more
than the rest of the frame's checks. A verified token is kept (bounded, least
recently used first out) and each hit checks its expiry again.
"""

from __future__ import annotations

import time
from collections import OrderedDict

import jwt

from shared.auth import Principal, verify_student_token
from shared.errors import AuthError

#: Tokens remembered per process (one per connected student is plenty).
CACHE_SIZE = 20_000


class StudentTokens:
    """``verify(token)`` with a cache of tokens already verified."""

    def __init__(self, secret: str, size: int = CACHE_SIZE) -> None:
        self._secret = secret
        self._size = size
        self._verified: OrderedDict[str, tuple[Principal, float]] = OrderedDict()

    def verify(self, token: str) -> Principal:
        """The token's principal; ``AuthError`` if it is invalid or expired."""
        hit = self._verified.get(token)
        if hit is not None:
            principal, expires_at = hit
            if time.time() < expires_at:
                self._verified.move_to_end(token)
                return principal
            del self._verified[token]
            raise AuthError("student token expired")
        principal = verify_student_token(self._secret, token)
        # Signature already checked above; this only reads the expiry claim.
        claims = jwt.decode(token, options={"verify_signature": False})
        self._verified[token] = (principal, float(claims["exp"]))
        if len(self._verified) > self._size:
            self._verified.popitem(last=False)
        return principal
