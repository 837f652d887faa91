"""Daily time partitions of ``frames``, ``face_events`` and ``face_event_minutes``.

Why these keys and this width (issue 23, point 3):

- **Key: the capture time** (``captured_at``; the rollup's ``minute``, which is
  ``captured_at`` cut to its minute). Every analytics query names a lesson and a
  window of capture times, retention is by capture time, and a frame's events
  carry its capture time, so a frame, its events and their rollup rows always
  land in the same day and leave together.
- **Width: one UTC day.** A lesson (1–2 h) touches one partition, two when it
  crosses midnight UTC, so a timeline reads one or two partitions' indexes.
  30 days of retention keep about 32 partitions per table: few enough that
  planning stays cheap, and at 2,000 frames/s (about 60 M events a school day)
  one partition stays a size an index scan and a vacuum handle. Hours would
  mean 720+ partitions (planning over all of them for any query without a time,
  such as erasure); weeks would keep data up to 7 days past its retention.
- **Retention drops whole days.** A day goes once all of it is older than the
  retention period, so rows are kept at least that long and at most one day
  longer; ``DROP TABLE`` of a day costs the same whatever it holds.
- **A default partition** takes rows of days with no partition (capture times
  far in the past, the year 2999, ±infinity from before ingest checked them, or
  a beat that did not run): no insert ever fails for want of a partition. The
  beat task creates days ahead, moving any rows of such a day out of the default
  first, and the purge deletes old rows from it row by row (it stays small).

Unique keys of a partitioned table must hold the partition key, so they gain
``captured_at``: ``frames (id, captured_at)``, ``face_events (frame_id,
face_index, captured_at)``. That is no weaker: a frame has one capture time and
its events copy it. One frame per ``(lesson_id, student_id, seq)`` cannot be a
key of the parent (two requests of one seq carry two capture times), so each
day partition has that unique index of its own, on which requests of one seq
race to one frame. Requests whose capture times lie on either side of midnight
UTC meet in no one index: for a lesson over midnight, ingest's INSERT checks
both days under a per-seq lock instead (migration 0013's ``frame_seq_is_new``).
These functions run inside the caller's transaction and never commit.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass
from typing import Literal

from sqlalchemy import ColumnElement, Connection, SQLColumnExpression, text

from shared.settings import MAX_CLOCK_SKEW_SECONDS

DAY = dt.timedelta(days=1)
#: How far a frame's capture time may lie outside its lesson's times.
CAPTURE_MARGIN = dt.timedelta(seconds=MAX_CLOCK_SKEW_SECONDS)
#: Days created ahead of today: a week of beat outages before rows go to the default.
DAYS_AHEAD = 7
#: A drop waits at most this long for queries reading the table (it needs an
#: exclusive lock on the parent); it is tried again at the next purge.
DROP_LOCK_TIMEOUT = "5s"


@dataclass(frozen=True, slots=True)
class PartitionedTable:
    name: str
    #: The partition key: a time column.
    column: str
    #: Columns unique within each partition (an index per partition, ``<name>_seq``).
    unique_per_day: tuple[str, ...] = ()


#: Suffix of a partition's own unique index (migration 0011).
SEQ_INDEX_SUFFIX = "_seq"


#: The partitioned tables; a day's partitions of all three are made and dropped together
#: (no foreign key joins them, so the order does not matter).
TABLES = (
    PartitionedTable("face_events", "captured_at"),
    PartitionedTable("face_event_minutes", "minute"),
    PartitionedTable("frames", "captured_at", ("lesson_id", "student_id", "seq")),
)


def shifted(at: dt.datetime, delta: dt.timedelta) -> dt.datetime:
    """``at + delta``, held at the ends of Python's time range (a lesson may be stored
    as ending in year 9999)."""
    try:
        return at + delta
    except OverflowError:
        return at


def capture_window(starts_at: dt.datetime, ends_at: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    """The first and last capture time a frame of a lesson with these times may carry,
    under any deployment's clock skew setting."""
    return shifted(starts_at, -CAPTURE_MARGIN), shifted(ends_at, CAPTURE_MARGIN)


def over_midnight(starts_at: dt.datetime, ends_at: dt.datetime) -> bool:
    """Whether a lesson's frames may lie in two or more UTC day partitions."""
    first, last = capture_window(starts_at, ends_at)
    return day_start(first) != day_start(last)


def within_lesson(
    captured_at: SQLColumnExpression[dt.datetime], starts_at: dt.datetime, ends_at: dt.datetime
) -> ColumnElement[bool]:
    """A capture time within the lesson's :func:`capture_window`.

    Added to a query of one lesson's frames, it lets the planner read the lesson's
    day partitions instead of probing every day's index. The times must be values:
    as a lesson row's columns in a join they only filter, they do not prune.
    Ingest has refused capture times outside the window since issue 19; rows
    stored before that and outside it were marked failed (``invalid_capture_time``)
    and are not counted by such a query.
    """
    return captured_at.between(*capture_window(starts_at, ends_at))


def day_start(at: dt.datetime) -> dt.datetime:
    """Midnight UTC of the day holding ``at``."""
    return at.astimezone(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def partition_name(table: str, day: dt.datetime) -> str:
    """``face_events_p20261205``: the partition of ``table`` holding ``day``."""
    return f"{table}_p{day_start(day):%Y%m%d}"


def default_name(table: str) -> str:
    return f"{table}_default"


def existing_days(conn: Connection, table: str) -> list[dt.datetime]:
    """Start of each day that has a partition of ``table`` (the default not counted)."""
    rows = conn.execute(
        text(
            """SELECT c.relname FROM pg_inherits i
               JOIN pg_class c ON c.oid = i.inhrelid
               WHERE i.inhparent = CAST(:table AS regclass)"""
        ),
        {"table": table},
    ).scalars()
    prefix = f"{table}_p"
    days = []
    for name in rows:
        if name.startswith(prefix) and name[len(prefix) :].isdigit():
            day = dt.datetime.strptime(name[len(prefix) :], "%Y%m%d").replace(tzinfo=dt.UTC)
            days.append(day)
    return sorted(days)


def create_day(conn: Connection, table: PartitionedTable, day: dt.datetime) -> bool:
    """Create the partition of ``table`` for ``day`` if missing; False if it existed.

    Rows of that day already in the default partition move into the new one:
    attaching a range the default holds rows of would fail. Rows are moved
    partition to partition, so the statement triggers on ``face_events`` (the
    rollup) do not fire: the rollup rows move the same way.
    """
    start = day_start(day)
    name = partition_name(table.name, start)
    if conn.scalar(text("SELECT to_regclass(:n)"), {"n": f'"{name}"'}) is not None:
        return False
    lo, hi = _literal(start), _literal(start + DAY)
    in_range = f"{table.column} >= {lo} AND {table.column} < {hi}"
    conn.execute(
        text(
            f'CREATE TABLE "{name}" (LIKE "{table.name}" INCLUDING DEFAULTS INCLUDING CONSTRAINTS)'
        )
    )
    columns = ", ".join(
        f'"{c}"'
        for c in conn.scalars(
            text(
                """SELECT attname FROM pg_attribute
                   WHERE attrelid = CAST(:t AS regclass) AND attnum > 0 AND NOT attisdropped
                   ORDER BY attnum"""
            ),
            {"t": f'"{name}"'},
        )
    )
    conn.execute(
        text(
            f"""WITH moved AS (DELETE FROM "{default_name(table.name)}" WHERE {in_range}
                               RETURNING {columns})
                INSERT INTO "{name}" ({columns}) SELECT {columns} FROM moved"""
        )
    )
    if table.unique_per_day:
        conn.execute(
            text(
                f'CREATE UNIQUE INDEX "{name}{SEQ_INDEX_SUFFIX}" ON "{name}" '
                f"({', '.join(table.unique_per_day)})"
            )
        )
    # A constraint that proves the range lets ATTACH skip scanning the new table.
    conn.execute(text(f'ALTER TABLE "{name}" ADD CONSTRAINT "{name}_range" CHECK ({in_range})'))
    conn.execute(
        text(
            f'ALTER TABLE "{table.name}" ATTACH PARTITION "{name}" FOR VALUES FROM ({lo}) TO ({hi})'
        )
    )
    conn.execute(text(f'ALTER TABLE "{name}" DROP CONSTRAINT "{name}_range"'))
    return True


def _literal(at: dt.datetime) -> str:
    """A timestamptz literal (DDL takes no bound parameters)."""
    return f"'{at.astimezone(dt.UTC).isoformat()}'"


def ensure_ahead(conn: Connection, now: dt.datetime, days_ahead: int = DAYS_AHEAD) -> list[str]:
    """Partitions from today to ``days_ahead`` days ahead, for every table; the names created."""
    today = day_start(now)
    created = []
    for table in TABLES:
        for n in range(days_ahead + 1):
            day = today + n * DAY
            if create_day(conn, table, day):
                created.append(partition_name(table.name, day))
    return created


def drop_before(conn: Connection, cutoff: dt.datetime) -> list[str]:
    """Drop every day partition that ends at or before ``cutoff``; the names dropped."""
    conn.execute(text(f"SET LOCAL lock_timeout = '{DROP_LOCK_TIMEOUT}'"))
    dropped = []
    for table in TABLES:
        for day in existing_days(conn, table.name):
            if day + DAY <= cutoff:
                name = partition_name(table.name, day)
                conn.execute(text(f'DROP TABLE "{name}"'))
                dropped.append(name)
    return dropped


def partition_names(conn: Connection) -> set[str]:
    """Names of every partition in the database: tables the models do not declare."""
    query = "SELECT relname FROM pg_class WHERE relispartition AND relkind IN ('r', 'p')"
    return set(conn.scalars(text(query)))


NameKind = Literal[
    "schema",
    "table",
    "column",
    "index",
    "unique_constraint",
    "foreign_key_constraint",
    "check_constraint",
]
ParentNames = MutableMapping[
    Literal["schema_name", "table_name", "schema_qualified_table_name"], str | None
]
IncludeName = Callable[[str | None, NameKind, ParentNames], bool]


def models_only(partitions: set[str]) -> IncludeName:
    """An Alembic ``include_name`` hook that leaves ``partitions`` (and their indexes) out
    of comparisons with the models."""

    def include_name(name: str | None, type_: NameKind, parent_names: ParentNames) -> bool:
        if type_ == "table":
            return name not in partitions
        if type_ in ("index", "unique_constraint", "foreign_key_constraint", "column"):
            return parent_names.get("table_name") not in partitions
        return True

    return include_name
