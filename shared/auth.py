"""Credentials: organisation API keys, short-lived student tokens and teacher sessions.

API keys look like ``cp_<prefix>_<secret>``; only the prefix (to find the row)
and SHA-256 of the whole key are stored. Student tokens are HS256 JWTs signed
with the configured secret and bound to one student and one lesson. A teacher
session is such a JWT too, bound to one class: what an LTI instructor launch
gives the dashboard instead of a key (``services.lti``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from enum import StrEnum

import jwt

from shared.errors import AuthError

KEY_SCHEME = "cp"
TOKEN_AUDIENCE = "classpulse-classroom"
TOKEN_ALGORITHM = "HS256"
#: Audience of teacher sessions: they open the dashboard, never the classroom.
SESSION_AUDIENCE = "classpulse-dashboard"


class PrincipalKind(StrEnum):
    LMS = "lms"
    TEACHER = "teacher"
    STUDENT = "student"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: an LMS key (whole organisation), a teacher key (one
    class) or a student token (one student in one lesson).

    ``per_student`` is the key's permission to read per-student data; a student
    token reads its own student's data without it.
    """

    kind: PrincipalKind
    organisation_id: uuid.UUID | None = None
    class_id: uuid.UUID | None = None
    student_id: uuid.UUID | None = None
    lesson_id: uuid.UUID | None = None
    key_id: uuid.UUID | None = None
    per_student: bool = False


@dataclass(frozen=True, slots=True)
class NewKey:
    plaintext: str
    prefix: str
    key_hash: str


def hash_key(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode()).hexdigest()


def generate_api_key() -> NewKey:
    """A new random key; show ``plaintext`` once, store ``prefix`` and ``key_hash``."""
    prefix = secrets.token_hex(6)
    plaintext = f"{KEY_SCHEME}_{prefix}_{secrets.token_urlsafe(32)}"
    return NewKey(plaintext, prefix, hash_key(plaintext))


def key_prefix(plaintext: str) -> str:
    """The lookup prefix of a presented key; ``AuthError`` if it is malformed."""
    parts = plaintext.split("_", 2)
    if len(parts) != 3 or parts[0] != KEY_SCHEME or not parts[1] or not parts[2]:
        raise AuthError("malformed API key")
    return parts[1]


def key_matches(plaintext: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_key(plaintext), stored_hash)


def issue_student_token(
    secret: str,
    *,
    student_id: uuid.UUID,
    lesson_id: uuid.UUID,
    ttl_seconds: int,
    now: dt.datetime | None = None,
) -> str:
    """A signed token for one student in one lesson, valid ``ttl_seconds``."""
    ids = {"sub": student_id, "lesson": lesson_id}
    return _sign(secret, TOKEN_AUDIENCE, ids, ttl_seconds, now)


def _sign(
    secret: str,
    audience: str,
    ids: dict[str, uuid.UUID],
    ttl_seconds: int,
    now: dt.datetime | None,
) -> str:
    """A token for ``audience`` carrying ``ids``, issued ``now`` and valid ``ttl_seconds``
    (what ``_verify`` checks)."""
    issued = now or dt.datetime.now(dt.UTC)
    claims: dict[str, str | int] = {name: str(value) for name, value in ids.items()}
    claims |= {
        "aud": audience,
        "iat": int(issued.timestamp()),
        "exp": int((issued + dt.timedelta(seconds=ttl_seconds)).timestamp()),
    }
    return jwt.encode(claims, secret, algorithm=TOKEN_ALGORITHM)


def _verify(
    secret: str,
    token: str,
    audience: str,
    claims: tuple[str, ...],
    *,
    expired: str,
    invalid: str,
) -> list[uuid.UUID]:
    """The ids in ``claims`` of a valid token for ``audience``; otherwise ``AuthError``
    with ``expired`` or, for any other fault, ``invalid``."""
    try:
        decoded = jwt.decode(
            token,
            secret,
            algorithms=[TOKEN_ALGORITHM],
            audience=audience,
            options={"require": ["exp", *claims, "aud"]},
        )
        return [uuid.UUID(decoded[claim]) for claim in claims]
    except jwt.ExpiredSignatureError:
        raise AuthError(expired) from None
    except (jwt.InvalidTokenError, ValueError, KeyError):
        raise AuthError(invalid) from None


def verify_student_token(secret: str, token: str) -> Principal:
    """The student principal of a valid token; ``AuthError`` says why it is not."""
    student_id, lesson_id = _verify(
        secret,
        token,
        TOKEN_AUDIENCE,
        ("sub", "lesson"),
        expired="student token expired",
        invalid="invalid student token",
    )
    return Principal(PrincipalKind.STUDENT, student_id=student_id, lesson_id=lesson_id)


def issue_teacher_session(
    secret: str,
    *,
    organisation_id: uuid.UUID,
    class_id: uuid.UUID,
    ttl_seconds: int,
    now: dt.datetime | None = None,
) -> str:
    """A signed session for one class's teacher (class-level reads only), valid ``ttl_seconds``."""
    ids = {"org": organisation_id, "class": class_id}
    return _sign(secret, SESSION_AUDIENCE, ids, ttl_seconds, now)


def is_teacher_session(token: str) -> bool:
    """Whether ``token`` claims to be a teacher session (to choose the verifier; unverified)."""
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.InvalidTokenError:
        return False
    return isinstance(claims, dict) and claims.get("aud") == SESSION_AUDIENCE


def verify_teacher_session(secret: str, token: str) -> Principal:
    """The teacher principal of a valid session; ``AuthError`` says why it is not."""
    organisation_id, class_id = _verify(
        secret,
        token,
        SESSION_AUDIENCE,
        ("org", "class"),
        expired="teacher session expired: launch ClassPulse from the LMS again",
        invalid="invalid teacher session",
    )
    return Principal(PrincipalKind.TEACHER, organisation_id=organisation_id, class_id=class_id)
