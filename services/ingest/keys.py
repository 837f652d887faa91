"""API key rows: created by the command line (LMS keys) and the API (teacher keys)."""

from __future__ import annotations

import uuid

from shared.auth import generate_api_key
from shared.db.models import ApiKey, KeyRole


def new_api_key(
    organisation_id: uuid.UUID,
    role: KeyRole,
    name: str,
    class_id: uuid.UUID | None = None,
    *,
    per_student: bool | None = None,
) -> tuple[ApiKey, str]:
    """A key row to add (hash and prefix only) and the plaintext to show once.

    ``per_student`` lets the key read per-student data (student timelines, the
    summary's per-student rows, event exports); without it the key reads class
    aggregates only. By default an LMS key has it (the organisation's own system,
    which decides for the teacher keys it creates) and a teacher key does not.
    """
    if per_student is None:
        per_student = role == KeyRole.LMS
    if role == KeyRole.TEACHER and class_id is None:
        raise ValueError("a teacher key is bound to one class")
    key = generate_api_key()
    row = ApiKey(
        id=uuid.uuid4(),
        organisation_id=organisation_id,
        name=name,
        role=role,
        class_id=class_id,
        per_student=per_student,
        prefix=key.prefix,
        key_hash=key.key_hash,
    )
    return row, key.plaintext
