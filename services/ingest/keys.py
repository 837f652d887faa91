"""API key rows: created by the command line (LMS keys) and the API (teacher keys), and
the organisation an operator opens with its first LMS key."""

from __future__ import annotations

import uuid

from sqlalchemy.orm import Session

from shared.auth import generate_api_key
from shared.db.models import ApiKey, AuditEntry, KeyRole, Organisation


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


def key_created(row: ApiKey, actor: str) -> AuditEntry:
    """The audit entry for a new key: who made it, its prefix and scope, never its secret."""
    details: dict[str, str | bool] = {"role": row.role.value, "per_student": row.per_student}
    if row.class_id is not None:
        details["class_id"] = str(row.class_id)
    return AuditEntry(
        actor=actor, action="key.create", subject=f"key:{row.prefix}", details=details
    )


def open_organisation(
    session: Session, name: str, *, actor: str, key_name: str = "lms"
) -> tuple[uuid.UUID, str]:
    """A new organisation and its first LMS key (named ``key_name``), both audited; returns
    the organisation's id and the key's plaintext (shown once). The caller commits."""
    organisation = Organisation(id=uuid.uuid4(), name=name)
    session.add(organisation)
    session.flush()
    key, plaintext = new_api_key(organisation.id, KeyRole.LMS, key_name)
    session.add(key)
    session.add(AuditEntry(actor=actor, action="org.create", subject=f"org:{organisation.id}"))
    session.add(key_created(key, actor))
    return organisation.id, plaintext
