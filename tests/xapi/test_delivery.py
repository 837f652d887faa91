"""Statements built from stored events, sent to a real LRS (Ralph) and read back from it."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy import Engine, delete, select, text, update
from sqlalchemy.orm import Session

from classpulse.harness.factories import (
    SeededLesson,
    SeedEvent,
    add_marker,
    insert_events,
    seed_lesson,
)
from services.xapi.deliver import deliver
from services.xapi.lrs_config import set_lrs
from services.xapi.statements import (
    EXT_EXPRESSIONS,
    EXT_FACE_PRESENCE,
    EXT_FACING,
    EXT_SEGMENT,
    lesson_activity_id,
)
from shared.db.models import Frame, FrameStatus, Lesson, LrsConfig, XapiLesson, XapiStatement
from tests.xapi.conftest import SECRETS_KEY
from tests.xapi.lrs_server import LRS_PASSWORD, LRS_USER, Ralph, validate

LMS_URL = "https://moodle.example.org"
SETTLE = dt.timedelta(minutes=5)
RETENTION = dt.timedelta(days=30)
KEY = SecretStr(SECRETS_KEY)


def ended_lesson(engine: Engine, *, minutes_ago: int = 30) -> SeededLesson:
    """A 10-minute lesson that ended ``minutes_ago`` minutes ago, students s1..s3."""
    start = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(minutes=10 + minutes_ago)
    # Consenting: statements leave only for students whose consent is active.
    return seed_lesson(
        engine, students=["s1", "s2", "s3"], starts_at=start, minutes=10, consenting=True
    )


def configure(
    engine: Engine, lesson: SeededLesson, endpoint: str, password: str = LRS_PASSWORD
) -> None:
    """The lesson's organisation sends its statements to the LRS at ``endpoint``."""
    with Session(engine) as session:
        set_lrs(
            session,
            lesson.organisation_id,
            endpoint=endpoint,
            username=LRS_USER,
            password=password,
            lms_url=LMS_URL,
            secrets_key=KEY,
        )
        session.commit()


def seed_events(engine: Engine, lesson: SeededLesson) -> None:
    """s1: 4 happy frames facing the screen before the marker at 5 min, 2 no-face after;
    s2: 2 sad faces without pose before, none after; s3: nothing."""
    s1, s2 = lesson.students["s1"], lesson.students["s2"]
    events = [SeedEvent(s1, lesson.at(10 + i), label=3, facing=True) for i in range(4)]
    events += [SeedEvent(s1, lesson.at(400 + i), face=False) for i in range(2)]
    events += [SeedEvent(s2, lesson.at(20 + i), label=4) for i in range(2)]
    insert_events(engine, lesson.lesson_id, events)
    add_marker(engine, lesson.lesson_id, lesson.at(330), "Slide 2")


def ready_lesson(engine: Engine, lrs: Ralph) -> SeededLesson:
    """An ended lesson with :func:`seed_events`' events, its organisation sending to ``lrs``."""
    lesson = ended_lesson(engine)
    seed_events(engine, lesson)
    configure(engine, lesson, lrs.endpoint)
    return lesson


def waiting_lesson(engine: Engine, lrs: Ralph) -> SeededLesson:
    """A :func:`ready_lesson` whose three statements were built while the LRS was down,
    so they wait; the LRS stays stopped."""
    lesson = ready_lesson(engine, lrs)
    lrs.stop()
    run(engine)
    return lesson


def run(engine: Engine, now: dt.datetime | None = None) -> Any:
    return deliver(engine, secrets_key=KEY, settle=SETTLE, retention=RETENTION, now=now)


def of_lesson(lrs: Ralph, lesson: SeededLesson) -> dict[str, dict[str, Any]]:
    """The lesson's statements in the LRS by id (the LRS holds the whole session's)."""
    parent = lesson_activity_id(lesson.lesson_id)
    return {
        s["id"]: s
        for s in lrs.statements()
        if s["context"]["contextActivities"]["parent"][0]["id"] == parent
    }


def outbox(engine: Engine, lesson: SeededLesson) -> list[XapiStatement]:
    with Session(engine) as session:
        return list(
            session.scalars(
                select(XapiStatement).where(XapiStatement.lesson_id == lesson.lesson_id)
            )
        )


def test_statements_reach_the_lrs_valid_and_per_segment(
    clean_db: Engine, lrs: Ralph, secrets_key: str
) -> None:
    lesson = ready_lesson(clean_db, lrs)

    done = run(clean_db)

    assert (done.lessons_built, done.sent, done.deferred) == (1, 3, 0)
    stored = of_lesson(lrs, lesson)
    assert set(stored) == {row.id.__str__() for row in outbox(clean_db, lesson)}
    assert validate(list(stored.values())) == []
    by_actor_segment = {
        (s["actor"]["account"]["name"], s["context"]["extensions"][EXT_SEGMENT]["marker"]): s
        for s in stored.values()
    }
    assert set(by_actor_segment) == {("s1", None), ("s1", "Slide 2"), ("s2", None)}
    first = by_actor_segment[("s1", None)]
    assert first["actor"]["account"]["homePage"] == LMS_URL
    assert first["result"]["extensions"][EXT_FACE_PRESENCE] == 1.0
    assert first["result"]["extensions"][EXT_EXPRESSIONS]["happy"] == 1.0
    assert first["result"]["extensions"][EXT_FACING] == 1.0
    # The marker at 5:30 opens its one-minute bucket, at 5:00.
    assert first["context"]["extensions"][EXT_SEGMENT]["end"] == lesson.at(300).isoformat().replace(
        "+00:00", "Z"
    )
    after = by_actor_segment[("s1", "Slide 2")]["result"]["extensions"]
    assert after[EXT_FACE_PRESENCE] == 0.0
    assert EXT_EXPRESSIONS not in after
    assert EXT_FACING not in after
    sad = by_actor_segment[("s2", None)]["result"]["extensions"]
    assert sad[EXT_EXPRESSIONS]["sad"] == 1.0
    assert EXT_FACING not in sad
    # Pseudonymous ids only: the statements name no one.
    assert all(set(s["actor"]) == {"objectType", "account"} for s in stored.values())


def test_an_unreachable_lrs_loses_nothing_and_sends_nothing_twice(
    clean_db: Engine, lrs: Ralph, secrets_key: str
) -> None:
    lesson = ready_lesson(clean_db, lrs)
    lrs.stop()

    down = run(clean_db)

    assert (down.sent, down.deferred) == (0, 3)
    rows = outbox(clean_db, lesson)
    assert [r.sent_at for r in rows] == [None] * 3
    assert {r.attempts for r in rows} == {1}
    assert {r.last_error for r in rows} == {"ConnectError"}
    assert min(r.next_attempt_at for r in rows) > dt.datetime.now(dt.UTC)
    # Not yet due: a round right away leaves them waiting, even once the LRS is back.
    lrs.start()
    assert run(clean_db).sent == 0

    later = dt.datetime.now(dt.UTC) + dt.timedelta(hours=2)
    assert run(clean_db, now=later).sent == 3
    assert len(of_lesson(lrs, lesson)) == 3
    # A send the LRS took but ClassPulse did not record (a crash before the commit)
    # goes again with the same ids: the LRS keeps one of each.
    with Session(clean_db) as session:
        session.execute(
            update(XapiStatement)
            .where(XapiStatement.lesson_id == lesson.lesson_id)
            .values(sent_at=None)
        )
        session.commit()
    assert run(clean_db, now=later).sent == 3
    assert len(of_lesson(lrs, lesson)) == 3
    # And a lesson is built once: another round stores and sends nothing new.
    again = run(clean_db, now=later)
    assert (again.lessons_built, again.sent) == (0, 0)
    assert len(outbox(clean_db, lesson)) == 3


def test_wrong_credentials_keep_statements_waiting(
    clean_db: Engine, lrs: Ralph, secrets_key: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    lesson = ended_lesson(clean_db)
    seed_events(clean_db, lesson)
    configure(clean_db, lesson, lrs.endpoint, password="not-the-password")

    done = run(clean_db)

    assert (done.sent, done.rejected, done.deferred) == (0, 0, 3)
    assert {r.last_error for r in outbox(clean_db, lesson)} == {
        "HTTP 401: the LRS refused the credentials"
    }
    configure(clean_db, lesson, lrs.endpoint)
    assert run(clean_db, now=dt.datetime.now(dt.UTC) + dt.timedelta(hours=2)).sent == 3
    # Every library's debug lines included, no password and no Authorization value.
    assert "LRS of organisation" in caplog.text
    for secret in ("not-the-password", LRS_PASSWORD, "Basic "):
        assert secret not in caplog.text


@pytest.mark.parametrize("why", ["running", "settling", "frame queued", "demo"])
def test_a_lesson_is_built_only_once_final(
    clean_db: Engine, lrs: Ralph, secrets_key: str, why: str
) -> None:
    minutes_ago = {"running": -5, "settling": 2, "frame queued": 30, "demo": 30}[why]
    lesson = ended_lesson(clean_db, minutes_ago=minutes_ago)
    if why == "demo":
        with Session(clean_db) as session:
            session.execute(
                update(Lesson).where(Lesson.id == lesson.lesson_id).values(is_demo=True)
            )
            session.commit()
    seed_events(clean_db, lesson)
    configure(clean_db, lesson, lrs.endpoint)
    if why == "frame queued":
        with Session(clean_db) as session:
            session.execute(
                update(Frame)
                .where(Frame.lesson_id == lesson.lesson_id)
                .values(status=FrameStatus.QUEUED)
            )
            session.commit()

    assert run(clean_db).lessons_built == 0
    assert outbox(clean_db, lesson) == []


def test_no_lrs_no_statements(clean_db: Engine, secrets_key: str) -> None:
    lesson = ended_lesson(clean_db)
    seed_events(clean_db, lesson)
    assert run(clean_db).lessons_built == 0
    with Session(clean_db) as session:
        assert (
            session.scalar(select(XapiLesson).where(XapiLesson.lesson_id == lesson.lesson_id))
            is None
        )


def test_the_password_is_stored_encrypted(clean_db: Engine, lrs: Ralph, secrets_key: str) -> None:
    lesson = ended_lesson(clean_db)
    configure(clean_db, lesson, lrs.endpoint)
    with clean_db.connect() as conn:
        dump = conn.execute(text("SELECT row_to_json(c)::text FROM lrs_configs c")).scalar_one()
    assert LRS_PASSWORD not in dump
    with Session(clean_db) as session:
        assert session.get_one(LrsConfig, lesson.organisation_id).password_encrypted.startswith(
            "gAAAA"
        )


def test_erasing_a_student_drops_its_waiting_statements(
    clean_db: Engine, lrs: Ralph, secrets_key: str
) -> None:
    lesson = waiting_lesson(clean_db, lrs)
    with clean_db.begin() as conn:
        conn.execute(text("DELETE FROM students WHERE id = :s"), {"s": lesson.students["s1"]})
    assert {r.student_id for r in outbox(clean_db, lesson)} == {lesson.students["s2"]}
    lrs.start()
    assert run(clean_db, now=dt.datetime.now(dt.UTC) + dt.timedelta(hours=2)).sent == 1


def test_retention_purges_what_left_or_has_nowhere_to_go_but_keeps_what_waits(
    clean_db: Engine, lrs: Ralph, secrets_key: str
) -> None:
    lesson = waiting_lesson(clean_db, lrs)  # three statements wait
    after_retention = dt.datetime.now(dt.UTC) + RETENTION + dt.timedelta(hours=1)

    # The LRS is still down a retention period later: they wait, none is lost.
    assert run(clean_db, now=after_retention).purged == 0
    assert len(outbox(clean_db, lesson)) == 3

    lrs.start()
    back = after_retention + dt.timedelta(hours=2)
    assert run(clean_db, now=back).sent == 3
    assert run(clean_db, now=back + RETENTION - dt.timedelta(hours=1)).purged == 0
    assert run(clean_db, now=back + RETENTION + dt.timedelta(hours=1)).purged == 3
    assert outbox(clean_db, lesson) == []


def test_waiting_statements_of_an_organisation_without_lrs_go_after_retention(
    clean_db: Engine, lrs: Ralph, secrets_key: str
) -> None:
    waiting_lesson(clean_db, lrs)
    lrs.start()
    with Session(clean_db) as session:
        session.execute(delete(LrsConfig))
        session.commit()
    assert run(clean_db).purged == 0
    later = dt.datetime.now(dt.UTC) + RETENTION + dt.timedelta(hours=1)
    assert run(clean_db, now=later).purged == 3


def withdraw(engine: Engine, lesson: SeededLesson, student: str) -> None:
    """The student's own consent withdrawn (the school's stays granted)."""
    with engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE consents SET withdrawn_at = now() WHERE student_id = :s AND party = 'student'"
            ),
            {"s": lesson.students[student]},
        )


def assert_only_s2_is_left(engine: Engine, lrs: Ralph, lesson: SeededLesson) -> None:
    """s1 withdrew: only s2's statements stay in the outbox, and only s2's reach the LRS."""
    assert {r.student_id for r in outbox(engine, lesson)} == {lesson.students["s2"]}
    names = {s["actor"]["account"]["name"] for s in of_lesson(lrs, lesson).values()}
    assert names == {"s2"}


def test_a_student_who_withdrew_has_no_statement_built(
    clean_db: Engine, lrs: Ralph, secrets_key: str
) -> None:
    lesson = ready_lesson(clean_db, lrs)
    withdraw(clean_db, lesson, "s1")
    done = run(clean_db)
    assert (done.lessons_built, done.sent) == (1, 1)
    assert_only_s2_is_left(clean_db, lrs, lesson)


def test_waiting_statements_of_a_student_who_withdrew_are_dropped_not_sent(
    clean_db: Engine, lrs: Ralph, secrets_key: str
) -> None:
    lesson = waiting_lesson(clean_db, lrs)  # built; the LRS is down, so they wait
    withdraw(clean_db, lesson, "s1")
    lrs.start()
    done = run(clean_db, now=dt.datetime.now(dt.UTC) + dt.timedelta(hours=2))
    assert done.sent == 1
    assert_only_s2_is_left(clean_db, lrs, lesson)


def test_one_lesson_that_cannot_be_built_holds_up_no_other(
    clean_db: Engine, lrs: Ralph, secrets_key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import services.xapi.deliver as deliver_module

    broken, fine = ended_lesson(clean_db), ended_lesson(clean_db)
    for lesson in (broken, fine):
        seed_events(clean_db, lesson)
        configure(clean_db, lesson, lrs.endpoint)
    real = deliver_module.build_lesson

    def build(session: Session, lesson_id: Any, now: dt.datetime) -> int:
        if lesson_id == broken.lesson_id:
            raise RuntimeError("a lesson the builder chokes on")
        return real(session, lesson_id, now)

    monkeypatch.setattr(deliver_module, "build_lesson", build)
    done = run(clean_db)
    assert done.lessons_built == 1
    assert len(of_lesson(lrs, fine)) == 3
    assert outbox(clean_db, broken) == []


def test_a_moved_lrs_keeps_statements_waiting_and_says_where(
    clean_db: Engine, secrets_key: str
) -> None:
    import http.server
    import threading

    from classpulse.harness.ports import free_port

    class Moved(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            self.send_response(301)
            self.send_header("Location", "https://lrs.example.org/xapi/statements?x=1")
            self.end_headers()

        def log_message(self, *_: object) -> None:
            pass

    port = free_port()
    server = http.server.HTTPServer(("127.0.0.1", port), Moved)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    lesson = ended_lesson(clean_db)
    seed_events(clean_db, lesson)
    configure(clean_db, lesson, f"http://127.0.0.1:{port}/xapi")
    try:
        done = run(clean_db)
    finally:
        server.shutdown()
    # Not sent, not thrown away: they wait for the endpoint to be set right.
    assert (done.sent, done.rejected, done.deferred) == (0, 0, 3)
    rows = outbox(clean_db, lesson)
    assert all(r.sent_at is None and r.rejected_at is None for r in rows)
    assert all(
        "moved to https://lrs.example.org/xapi/statements" in (r.last_error or "") for r in rows
    )
