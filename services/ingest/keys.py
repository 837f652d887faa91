"""API key rows: created by the command line (LMS keys) and the API (teacher keys)."""

from __future__ import annotations

import uuid

from shared.auth import generate_api_key
from shared.db.models import ApiKey, KeyRole


def new_api_key(
    organisation_id: uuid.UUID, role: KeyRole, name: str, class_id: uuid.UUID | None = None
) -> tuple[ApiKey, str]:
    """A key row to add (hash and prefix only) and the plaintext to show once."""
    if role == KeyRole.TEACHER and class_id is None:
        raise ValueError("a teacher key is bound to one class")
    key = generate_api_key()
    row = ApiKey(
        id=uuid.uuid4(),
        organisation_id=organisation_id,
        name=name,
        role=role,
        class_id=class_id,
        prefix=key.prefix,
        key_hash=key.key_hash,
    )
    return row, key.plaintext
