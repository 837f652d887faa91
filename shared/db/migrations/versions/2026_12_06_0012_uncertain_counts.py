"""Uncertain faces in the per-minute rollup (issue 21).

A face the classifier was too unsure of (top probability under the model's
``uncertain_below``) is stored with its confidence and probabilities but no
label. Class views showed only labelled faces, so a teacher could not tell a
bucket whose faces were mostly uncertain from one with few faces.
``face_event_minutes`` gains ``uncertain`` (such faces, counted like
``labelled``: every face, not only a frame's first), the rollup's trigger
functions are replaced to keep it, and existing rows are filled from their
events.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06 03:00:00
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: The new count of the rollup and the event rows it counts: classified, not labelled.
UNCERTAIN = (("uncertain", "t.label IS NULL AND t.confidence IS NOT NULL"),)


def _migration_0006() -> Any:
    """Migration 0006's module: its trigger functions, which 0007-0011 left as they were."""
    path = Path(__file__).with_name("2026_12_05_0006_face_pose.py")
    spec = importlib.util.spec_from_file_location("classpulse_migration_0006", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _replace_functions(extra: tuple[tuple[str, str], ...]) -> None:
    fold = _migration_0006().fold_function
    op.execute(fold("face_event_minutes_add", "new_events", "+", with_pose=True, extra=extra))
    op.execute(fold("face_event_minutes_remove", "old_events", "-", with_pose=True, extra=extra))


def upgrade() -> None:
    op.add_column(
        "face_event_minutes",
        sa.Column("uncertain", sa.Integer(), server_default="0", nullable=False),
    )
    _replace_functions(UNCERTAIN)
    minute = "date_bin('1 minute', e.captured_at, TIMESTAMPTZ '2000-01-01 00:00:00+00')"
    op.execute(
        f"""
UPDATE face_event_minutes m SET uncertain = u.faces
FROM (SELECT e.lesson_id, {minute} AS minute, e.student_id,
             count(*)::int AS faces
      FROM face_events e WHERE e.label IS NULL AND e.confidence IS NOT NULL
      GROUP BY 1, 2, 3) u
WHERE m.lesson_id = u.lesson_id AND m.minute = u.minute AND m.student_id = u.student_id"""
    )


def downgrade() -> None:
    _replace_functions(())
    op.drop_column("face_event_minutes", "uncertain")
