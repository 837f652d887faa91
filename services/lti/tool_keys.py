"""The tool's RSA key: made on first need, stored encrypted, published as a JWKS.

One key per ClassPulse deployment signs every deep-linking response and
service-token request; platforms fetch its public half from ``/lti/jwks``. The
private half is stored Fernet-encrypted under ``CLASSPULSE_SECRETS_KEY``
(``shared.secret_box``) and is never returned, printed or logged.
"""

from __future__ import annotations

from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from pydantic import SecretStr
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from services.lti.adapter import ToolKey, jwk_of
from shared import secret_box
from shared.db.lti_models import LtiToolKey

#: RSA modulus size of a new tool key.
KEY_BITS = 2048
#: Advisory lock that keeps two processes from making the first key at once.
_KEY_LOCK = 0x4C5449  # "LTI"


def _new_key() -> tuple[str, str]:
    private = rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS)
    private_pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode("ascii")
    public_pem = (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode("ascii")
    )
    return private_pem, public_pem


def _public_pem(row: LtiToolKey, secrets_key: SecretStr | None) -> tuple[str, str]:
    private_pem = secret_box.unseal(row.private_key_encrypted, secrets_key)
    key = serialization.load_pem_private_key(private_pem.encode("ascii"), password=None)
    public_pem = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode("ascii")
    )
    return private_pem, public_pem


async def current_key(session: AsyncSession, secrets_key: SecretStr | None) -> ToolKey:
    """The newest tool key, made (and committed by the caller) if there is none yet."""
    row = await session.scalar(select(LtiToolKey).order_by(LtiToolKey.created_at.desc()))
    if row is None:
        await session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _KEY_LOCK})
        row = await session.scalar(select(LtiToolKey).order_by(LtiToolKey.created_at.desc()))
    if row is None:
        private_pem, public_pem = _new_key()
        jwk = jwk_of(public_pem)
        row = LtiToolKey(
            kid=str(jwk["kid"]),
            public_jwk=jwk,
            private_key_encrypted=secret_box.seal(private_pem, secrets_key),
        )
        session.add(row)
        await session.flush()
        return ToolKey(kid=row.kid, private_pem=private_pem, public_pem=public_pem)
    private_pem, public_pem = _public_pem(row, secrets_key)
    return ToolKey(kid=row.kid, private_pem=private_pem, public_pem=public_pem)


async def key_set(session: AsyncSession) -> dict[str, Any]:
    """Every tool key's public JWK: the JWKS platforms verify the tool's messages with."""
    rows = await session.scalars(select(LtiToolKey).order_by(LtiToolKey.created_at.desc()))
    return {"keys": [row.public_jwk for row in rows]}
