"""Frames, face events and the per-minute rollup partitioned by day of capture (issue 23).

Each table is rebuilt as ``PARTITION BY RANGE`` on its time column
(``captured_at``; the rollup's ``minute``) with a default partition and one
partition per UTC day that holds rows (within a year back) plus today and the
days ahead that the beat task would create; existing rows are copied over and
keep their ids (``face_events_id_seq`` moves to the new table). Why a day, and
what runs the partitions afterwards: ``shared.db.partitions``.

Keys change as a partitioned table requires (the partition key in every unique
key): ``frames`` is keyed ``(id, captured_at)`` and unique on ``(lesson_id,
student_id, seq, captured_at)``; ``face_events`` keyed ``(id, captured_at)`` and
unique on ``(frame_id, face_index, captured_at)``. The foreign key from
``face_events`` to ``frames`` goes: events and their frame share a day and leave
together. The rollup's triggers are attached to the new ``face_events``.

The copy reads and writes every row once, under an exclusive lock: plan a
maintenance window for a large database (72 s for 1.08 M events and as many
frames on a loaded 2-core machine: ``python -m bench.partition_migration``).
Downgrade copies the rows back into plain tables; it fails (and changes nothing)
if two frames share a ``(lesson_id, student_id, seq)`` or an event's frame is
gone, which the old keys did not allow.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05 12:00:00
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from alembic import op
from sqlalchemy import text

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: As ``shared.db.partitions`` (a migration keeps its own copy of what it relies on).
DAYS_AHEAD = 7
#: Days older than this get no partition of their own: their rows go to the default
#: partition, from which the retention purge deletes them.
DAYS_BACK = 366
TIME_COLUMN = {
    "frames": "captured_at",
    "face_events": "captured_at",
    "face_event_minutes": "minute",
}
#: Keys and indexes of each table as partitioned (upgrade) and as plain (downgrade):
#: (name, definition) pairs, added with ALTER TABLE … ADD CONSTRAINT or CREATE INDEX.
PARTITIONED_KEYS = {
    "frames": [
        ("pk_frames", "PRIMARY KEY (id, captured_at)"),
        (
            "uq_frames_lesson_id_student_id_seq_captured_at",
            "UNIQUE (lesson_id, student_id, seq, captured_at)",
        ),
    ],
    "face_events": [
        ("pk_face_events", "PRIMARY KEY (id, captured_at)"),
        (
            "uq_face_events_frame_id_face_index_captured_at",
            "UNIQUE (frame_id, face_index, captured_at)",
        ),
    ],
    "face_event_minutes": [
        ("pk_face_event_minutes", "PRIMARY KEY (lesson_id, minute, student_id)"),
    ],
}
PLAIN_KEYS = {
    "frames": [
        ("pk_frames", "PRIMARY KEY (id)"),
        ("uq_frames_lesson_id_student_id_seq", "UNIQUE (lesson_id, student_id, seq)"),
    ],
    "face_events": [
        ("pk_face_events", "PRIMARY KEY (id)"),
        ("uq_face_events_frame_id_face_index", "UNIQUE (frame_id, face_index)"),
    ],
    "face_event_minutes": [
        ("pk_face_event_minutes", "PRIMARY KEY (lesson_id, minute, student_id)"),
    ],
}
FOREIGN_KEYS = {
    table: [
        (f"fk_{table}_lesson_id_lessons", "FOREIGN KEY (lesson_id) REFERENCES lessons (id)"),
        (f"fk_{table}_student_id_students", "FOREIGN KEY (student_id) REFERENCES students (id)"),
    ]
    for table in TIME_COLUMN
}
INDEXES = {
    "frames": [
        ("ix_frames_lesson_status", "(lesson_id, status)"),
        ("ix_frames_status_received", "(status, received_at)"),
        ("ix_frames_student", "(student_id)"),
    ],
    "face_events": [
        ("ix_face_events_lesson_time", "(lesson_id, captured_at)"),
        ("ix_face_events_lesson_student_time", "(lesson_id, student_id, captured_at)"),
        ("ix_face_events_student", "(student_id)"),
    ],
    "face_event_minutes": [],
}
FRAME_FK = "fk_face_events_frame_id_frames"
TRIGGERS = (
    ("face_events_fold_insert", "INSERT", "NEW TABLE AS new_events", "face_event_minutes_add"),
    ("face_events_fold_delete", "DELETE", "OLD TABLE AS old_events", "face_event_minutes_remove"),
)
#: Events before frames: the frame key goes first.
ORDER = ("face_events", "face_event_minutes", "frames")


def _literal(at: dt.datetime) -> str:
    return f"'{at.isoformat()}'"


def _drop_triggers() -> None:
    for name, *_ in TRIGGERS:
        op.execute(f"DROP TRIGGER IF EXISTS {name} ON face_events")


def _create_triggers() -> None:
    for name, event, referencing, function in TRIGGERS:
        op.execute(
            f"CREATE TRIGGER {name} AFTER {event} ON face_events REFERENCING {referencing} "
            f"FOR EACH STATEMENT EXECUTE FUNCTION {function}()"
        )


def _set_aside(table: str) -> str:
    """Rename ``table`` and free its index names (they are schema-wide) for the new one."""
    old = f"{table}_before_0009"
    op.execute(f"ALTER TABLE {table} RENAME TO {old}")
    for name, _ in PARTITIONED_KEYS[table] + PLAIN_KEYS[table]:
        op.execute(f"ALTER TABLE {old} DROP CONSTRAINT IF EXISTS {name}")
    for name, _ in INDEXES[table]:
        op.execute(f"DROP INDEX IF EXISTS {name}")
    return old


def _rebuild(table: str, *, partitioned: bool) -> None:
    """``table`` again, partitioned or plain, with the same columns, rows and names."""
    old = _set_aside(table)
    column = TIME_COLUMN[table]
    partition_by = f" PARTITION BY RANGE ({column})" if partitioned else ""
    op.execute(
        f"CREATE TABLE {table} (LIKE {old} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)" + partition_by
    )
    keys = PARTITIONED_KEYS if partitioned else PLAIN_KEYS
    for name, definition in keys[table] + FOREIGN_KEYS[table]:
        cascade = " ON DELETE CASCADE" if definition.startswith("FOREIGN") else ""
        op.execute(f"ALTER TABLE {table} ADD CONSTRAINT {name} {definition}{cascade}")
    for name, columns in INDEXES[table]:
        op.execute(f"CREATE INDEX {name} ON {table} {columns}")
    if partitioned:
        _create_partitions(table, old)
    op.execute(f"INSERT INTO {table} SELECT * FROM {old}")
    if table == "face_events":
        op.execute("ALTER SEQUENCE face_events_id_seq OWNED BY face_events.id")
    op.execute(f"DROP TABLE {old}")


def _create_partitions(table: str, old: str) -> None:
    """The default partition and one per day: days with rows in any of the three
    tables (so that all three have the same days), today and the days ahead."""
    today = dt.datetime.now(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    first, last = today - dt.timedelta(days=DAYS_BACK), today + dt.timedelta(days=DAYS_AHEAD)
    bind = op.get_bind()
    sources = [
        f"SELECT DISTINCT date_bin('1 day', {TIME_COLUMN[t]}, TIMESTAMPTZ '2000-01-01 00:00+00') "
        f"AS day FROM {old if t == table else t} WHERE {TIME_COLUMN[t]} BETWEEN :first AND :last"
        for t in TIME_COLUMN
    ]
    query = text(" UNION ".join(sources))
    days = set(bind.execute(query, {"first": first, "last": last}).scalars())
    days |= {today + dt.timedelta(days=n) for n in range(DAYS_AHEAD + 1)}
    op.execute(f"CREATE TABLE {table}_default PARTITION OF {table} DEFAULT")
    for day in sorted(days):
        day = day.astimezone(dt.UTC)
        op.execute(
            f"CREATE TABLE {table}_p{day:%Y%m%d} PARTITION OF {table} FOR VALUES FROM "
            f"({_literal(day)}) TO ({_literal(day + dt.timedelta(days=1))})"
        )


def upgrade() -> None:
    _drop_triggers()
    op.execute(f"ALTER TABLE face_events DROP CONSTRAINT {FRAME_FK}")
    for table in ORDER:
        _rebuild(table, partitioned=True)
    _create_triggers()


def downgrade() -> None:
    _drop_triggers()
    for table in reversed(ORDER):
        _rebuild(table, partitioned=False)
    op.execute(
        f"ALTER TABLE face_events ADD CONSTRAINT {FRAME_FK} FOREIGN KEY (frame_id) "
        "REFERENCES frames (id) ON DELETE CASCADE"
    )
    _create_triggers()
