"""Alembic migrations on the real PostgreSQL: up from empty, down to base, and in
agreement with the models."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import inspect, text

from shared.db.base import Base
from shared.db.engine import make_sync_engine
from shared.db.migrate import MIGRATIONS_DIR, check, downgrade, upgrade
from shared.db.partitions import partition_names
from tests.conftest import SERVER_URL

PARTITIONED = ("frames", "face_events", "face_event_minutes")
ENUM_TYPES = {"key_role", "frame_status", "event_kind", "face_quality", "consent_party"}


@pytest.fixture
def empty_db_url() -> Iterator[str]:
    """A brand-new, empty database of this test's own."""
    name = f"classpulse_migr_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = make_sync_engine(SERVER_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    yield SERVER_URL.rsplit("/", 1)[0] + f"/{name}"
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _schema(url: str) -> tuple[set[str], set[str], set[str]]:
    """Tables, enum types and check constraints present in the database."""
    engine = make_sync_engine(url)
    try:
        with engine.connect() as conn:
            tables = set(inspect(conn).get_table_names())
            enums = set(conn.scalars(text("SELECT typname FROM pg_type WHERE typtype = 'e'")))
            checks = set(
                conn.scalars(text("SELECT conname FROM pg_constraint WHERE contype = 'c'"))
            )
    finally:
        engine.dispose()
    return tables, enums, checks


def test_up_from_empty_builds_every_table_and_type(empty_db_url: str) -> None:
    upgrade(empty_db_url)
    tables, enums, checks = _schema(empty_db_url)
    engine = make_sync_engine(empty_db_url)
    with engine.connect() as conn:
        day_partitions = partition_names(conn)
    engine.dispose()
    assert tables - day_partitions == set(Base.metadata.tables) | {"alembic_version"}
    # Each partitioned table has its default partition, today's and the days ahead.
    for table in PARTITIONED:
        assert {f"{table}_default", f"{table}_p{dt.datetime.now(dt.UTC):%Y%m%d}"} <= tables
    assert enums == ENUM_TYPES
    assert {"ck_lessons_ends_after_start", "ck_face_events_label_range"} <= checks
    assert "ck_face_events_seven_probabilities" in checks


def test_models_and_migrations_agree(empty_db_url: str) -> None:
    upgrade(empty_db_url)
    assert check(empty_db_url) == []


def test_migrate_check_command_agrees_right_after_migrate(empty_db_url: str) -> None:
    """The command in a process of its own, where no test has imported the models."""
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("CLASSPULSE_")},
        "CLASSPULSE_DATABASE_URL": empty_db_url,
    }
    command = [sys.executable, "-c", "from classpulse.cli import main; main()", "migrate"]
    for args in ([], ["--check"]):
        done = subprocess.run(
            [*command, *args], env=env, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stdout + done.stderr
    assert "differs" not in done.stdout


def test_check_reports_a_schema_that_drifted(empty_db_url: str) -> None:
    upgrade(empty_db_url)
    engine = make_sync_engine(empty_db_url)
    with engine.begin() as conn:
        conn.execute(text("DROP INDEX ix_face_events_lesson_time"))
    engine.dispose()
    diffs = check(empty_db_url)
    assert any("ix_face_events_lesson_time" in repr(d) for d in diffs)


def test_down_to_base_leaves_nothing_and_up_again_works(empty_db_url: str) -> None:
    upgrade(empty_db_url)
    downgrade(empty_db_url)
    tables, enums, checks = _schema(empty_db_url)
    assert tables <= {"alembic_version"}
    assert enums == set()
    assert not any(c.startswith("ck_") for c in checks)
    upgrade(empty_db_url)
    assert check(empty_db_url) == []


def test_migrations_constrain_rows_like_the_models(empty_db_url: str) -> None:
    upgrade(empty_db_url)
    engine = make_sync_engine(empty_db_url)
    try:
        with engine.begin() as conn:
            org = conn.scalar(
                text(
                    "INSERT INTO organisations (id, name) VALUES (gen_random_uuid(), 'o') RETURNING id"
                )
            )
            klass = conn.scalar(
                text(
                    "INSERT INTO classes (id, organisation_id, external_id, title)"
                    " VALUES (gen_random_uuid(), :o, 'c', 't') RETURNING id"
                ),
                {"o": org},
            )
        with pytest.raises(Exception, match="ck_lessons_ends_after_start"), engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO lessons (id, class_id, title, starts_at, ends_at)"
                    " VALUES (gen_random_uuid(), :c, 'l', now(), now() - interval '1 hour')"
                ),
                {"c": klass},
            )
    finally:
        engine.dispose()


def test_migration_files_have_dated_names() -> None:
    names = [p.name for p in (MIGRATIONS_DIR / "versions").glob("*.py") if p.name != "__init__.py"]
    assert names
    assert all(n[:4].isdigit() and n[4] == "_" and n[7] == "_" for n in names), names


def test_consent_parties_keep_who_wrote_each_record(empty_db_url: str) -> None:
    """0003 turns ``source`` into ``party`` (school/student) and back, row by row."""
    upgrade(empty_db_url, "0002")
    engine = make_sync_engine(empty_db_url)
    rows = """
        WITH o AS (INSERT INTO organisations (id, name) VALUES (gen_random_uuid(), 'o')
                   RETURNING id),
             c AS (INSERT INTO classes (id, organisation_id, external_id, title)
                   SELECT gen_random_uuid(), id, 'c', 't' FROM o RETURNING id),
             s AS (INSERT INTO students (id, organisation_id, external_id)
                   SELECT gen_random_uuid(), id, 's' FROM o RETURNING id)
        INSERT INTO consents (id, student_id, class_id, source)
        SELECT gen_random_uuid(), s.id, c.id, src FROM s, c,
               unnest(ARRAY['lms', 'student']) AS src
    """
    try:
        with engine.begin() as conn:
            conn.execute(text(rows))
        upgrade(empty_db_url)
        with engine.connect() as conn:
            parties = sorted(conn.scalars(text("SELECT party::text FROM consents")))
        assert parties == ["school", "student"]
        downgrade(empty_db_url, "0002")
        with engine.connect() as conn:
            sources = sorted(conn.scalars(text("SELECT source FROM consents")))
        assert sources == ["lms", "student"]
    finally:
        engine.dispose()


#: Rows of a database at 0008: an organisation, class, lesson and student, and frames
#: with one event each captured now, 3 days ago, 40 days ago and in the year 2999.
_ROWS_AT_0008 = """
    WITH o AS (INSERT INTO organisations (id, name) VALUES (gen_random_uuid(), 'o') RETURNING id),
         c AS (INSERT INTO classes (id, organisation_id, external_id, title)
               SELECT gen_random_uuid(), id, 'c', 't' FROM o RETURNING id),
         l AS (INSERT INTO lessons (id, class_id, title, starts_at, ends_at)
               SELECT gen_random_uuid(), id, 'l', now() - interval '50 days', now() + interval '1 hour'
               FROM c RETURNING id),
         s AS (INSERT INTO students (id, organisation_id, external_id)
               SELECT gen_random_uuid(), id, 's' FROM o RETURNING id),
         f AS (INSERT INTO frames (id, lesson_id, student_id, seq, captured_at, status,
                                   media_type, size_bytes, width, height)
               SELECT gen_random_uuid(), l.id, s.id, n, t, 'done', 'image/jpeg', 1, 1, 1
               FROM l, s, (VALUES (1, now()), (2, now() - interval '3 days'),
                                  (3, now() - interval '40 days'),
                                  (4, TIMESTAMPTZ '2999-01-01 00:00+00')) AS v(n, t)
               RETURNING id, lesson_id, student_id, captured_at)
    INSERT INTO face_events (frame_id, face_index, lesson_id, student_id, captured_at, kind,
                             label, confidence, probabilities)
    SELECT id, 0, lesson_id, student_id, captured_at, 'face', 3, 0.9,
           ARRAY[0, 0, 0, 0.9, 0.1, 0, 0]::real[]
    FROM f
"""


def test_0009_partitions_an_existing_database_and_back(empty_db_url: str) -> None:
    """Rows written at 0008 are all there after 0009, in their day's partitions (or the
    default one), with the rollup and the event ids kept; downgrade puts them back."""
    upgrade(empty_db_url, "0008")
    engine = make_sync_engine(empty_db_url)
    counts = "SELECT (SELECT count(*) FROM frames), (SELECT count(*) FROM face_events)"
    rollup = "SELECT minute, frames, labelled FROM face_event_minutes ORDER BY minute"
    try:
        with engine.begin() as conn:
            conn.execute(text(_ROWS_AT_0008))
            before = conn.execute(text(counts)).one()
            rollup_before = conn.execute(text(rollup)).all()
            max_id = conn.scalar(text("SELECT max(id) FROM face_events"))
        upgrade(empty_db_url, "0009")
        with engine.begin() as conn:
            assert conn.execute(text(counts)).one() == before == (4, 4)
            assert conn.execute(text(rollup)).all() == rollup_before
            where = dict(
                conn.execute(
                    text(
                        "SELECT to_char(captured_at AT TIME ZONE 'UTC', 'YYYY'),"
                        " tableoid::regclass::text FROM face_events"
                        " WHERE captured_at < now() - interval '30 days'"
                        " OR captured_at > now() + interval '1 day'"
                    )
                ).all()
            )
            # 40 days back had a day partition made for it; the year 2999 is in the default.
            assert where["2999"] == "face_events_default"
            kinds = conn.execute(
                text(
                    "SELECT DISTINCT c.relkind::text FROM face_events e"
                    " JOIN pg_class c ON c.oid = e.tableoid"
                )
            ).scalars()
            assert set(kinds) == {"r"}
            days = conn.execute(
                text("SELECT DISTINCT tableoid::regclass::text FROM frames ORDER BY 1")
            ).scalars()
            assert sum(1 for name in days if name.startswith("frames_p")) == 3
            # The sequence goes on after the copied ids; the rollup trigger still works.
            new_id = conn.scalar(
                text(
                    "INSERT INTO face_events (frame_id, face_index, lesson_id, student_id,"
                    " captured_at, kind) SELECT frame_id, 1, lesson_id, student_id,"
                    " captured_at, 'no_face' FROM face_events LIMIT 1 RETURNING id"
                )
            )
            assert new_id > max_id
            assert conn.scalar(text("SELECT sum(labelled) FROM face_event_minutes")) == 4
        upgrade(empty_db_url)
        assert check(empty_db_url) == []
        downgrade(empty_db_url, "0008")
        with engine.connect() as conn:
            assert conn.execute(text(counts)).one() == (4, 5)
            assert conn.scalar(
                text("SELECT count(*) FROM pg_constraint WHERE conname = :n"),
                {"n": "fk_face_events_frame_id_frames"},
            )
            assert not partition_names(conn)
    finally:
        engine.dispose()


def test_0012_counts_the_uncertain_faces_already_stored(empty_db_url: str) -> None:
    """Rows written at 0011 get their uncertain faces counted in the rollup by 0012; new
    events are counted by the replaced triggers, and downgrade drops the count again."""
    upgrade(empty_db_url, "0011")
    engine = make_sync_engine(empty_db_url)
    uncertain = "SELECT coalesce(sum(uncertain), 0) FROM face_event_minutes"
    # A second face beside each labelled one: classified (a confidence), but no label.
    unsure_faces = (
        "INSERT INTO face_events (frame_id, face_index, lesson_id, student_id, captured_at,"
        " kind, confidence, probabilities) SELECT frame_id, :index, lesson_id, student_id,"
        " captured_at, 'face', 0.3, probabilities FROM face_events WHERE face_index = 0"
        " AND captured_at < :before"
    )
    try:
        with engine.begin() as conn:
            conn.execute(text(_ROWS_AT_0008))
            conn.execute(
                text(unsure_faces), {"index": 1, "before": dt.datetime(2100, 1, 1, tzinfo=dt.UTC)}
            )
        upgrade(empty_db_url, "0012")
        with engine.begin() as conn:
            assert conn.scalar(text(uncertain)) == 3
            conn.execute(
                text(unsure_faces), {"index": 2, "before": dt.datetime(3000, 1, 1, tzinfo=dt.UTC)}
            )
            assert conn.scalar(text(uncertain)) == 7
            conn.execute(text("DELETE FROM face_events WHERE face_index = 2"))
            assert conn.scalar(text(uncertain)) == 3
            assert conn.scalar(text("SELECT sum(labelled) FROM face_event_minutes")) == 4
        assert check(empty_db_url) == []
        downgrade(empty_db_url, "0011")
        with engine.connect() as conn:
            columns = {c["name"] for c in inspect(conn).get_columns("face_event_minutes")}
            assert "uncertain" not in columns
            assert conn.scalar(text("SELECT sum(labelled) FROM face_event_minutes")) == 4
    finally:
        engine.dispose()
