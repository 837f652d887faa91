"""Who may read what: every endpoint against every kind of caller."""

from __future__ import annotations

import uuid

import httpx
import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from classpulse.harness.factories import SeededLesson, add_key, seed_lesson
from shared.db.models import KeyRole, SchoolClass
from tests.analytics.conftest import bearer

CLASS_ENDPOINTS = ("timeline", "summary", "export", "frames/stats", "live")


class Callers:
    """Credentials around one lesson, keyed by who holds them."""

    def __init__(self, engine: Engine, lesson: SeededLesson) -> None:
        other_org = seed_lesson(engine, students=["x1"], title="Elsewhere")
        with Session(engine) as session:
            other_class = SchoolClass(
                organisation_id=lesson.organisation_id, external_id="c2", title="History"
            )
            session.add(other_class)
            session.flush()
            other_teacher = add_key(
                session, lesson.organisation_id, KeyRole.TEACHER, other_class.id
            )
            revoked = add_key(session, lesson.organisation_id, KeyRole.LMS, revoked=True)
            trusted_teacher = add_key(
                session, lesson.organisation_id, KeyRole.TEACHER, lesson.class_id, per_student=True
            )
            session.commit()
        self.credentials: dict[str, str | None] = {
            "teacher": lesson.teacher_key,
            "trusted_teacher": trusted_teacher,
            "lms": lesson.lms_key,
            "other_org_lms": other_org.lms_key,
            "other_class_teacher": other_teacher,
            "student": lesson.student_token("s1"),
            "other_student": lesson.student_token("s2"),
            "revoked": revoked,
            "garbage": "not-a-token",
            "none": None,
        }

    def headers(self, who: str) -> dict[str, str]:
        credential = self.credentials[who]
        return bearer(credential) if credential else {}


@pytest.fixture
def callers(clean_db: Engine, lesson: SeededLesson) -> Callers:
    return Callers(clean_db, lesson)


def status_of(api: httpx.Client, url: str, headers: dict[str, str]) -> int:
    # Streamed so that the live endpoint answers with its status and is then closed.
    with api.stream("GET", url, headers=headers) as response:
        return response.status_code


CLASS_EXPECTED = {
    "teacher": 200,
    "trusted_teacher": 200,
    "lms": 200,
    "other_org_lms": 403,
    "other_class_teacher": 403,
    "student": 403,
    "other_student": 403,
    "revoked": 401,
    "garbage": 401,
    "none": 401,
}


#: Per-student data: keys with the per-student permission (the LMS key by default, a
#: teacher key the LMS granted it to) and the student's own token.
STUDENT_EXPECTED = {**CLASS_EXPECTED, "teacher": 403, "student": 200}


@pytest.mark.parametrize("endpoint", CLASS_ENDPOINTS)
def test_class_level_endpoints(
    api: httpx.Client, lesson: SeededLesson, callers: Callers, endpoint: str
) -> None:
    url = f"/v1/lessons/{lesson.lesson_id}/{endpoint}"
    got = {who: status_of(api, url, callers.headers(who)) for who in CLASS_EXPECTED}
    assert got == CLASS_EXPECTED


def test_student_timeline(api: httpx.Client, lesson: SeededLesson, callers: Callers) -> None:
    url = f"/v1/lessons/{lesson.lesson_id}/students/{lesson.students['s1']}/timeline"
    got = {who: status_of(api, url, callers.headers(who)) for who in STUDENT_EXPECTED}
    assert got == STUDENT_EXPECTED


def test_event_export_is_per_student_data(
    api: httpx.Client, lesson: SeededLesson, callers: Callers
) -> None:
    url = f"/v1/lessons/{lesson.lesson_id}/export?what=events"
    expected = {**STUDENT_EXPECTED, "student": 403}  # every student's events
    got = {who: status_of(api, url, callers.headers(who)) for who in expected}
    assert got == expected


def test_student_timeline_takes_the_lms_id_as_every_other_route_does(
    api: httpx.Client, lesson: SeededLesson, callers: Callers
) -> None:
    by_lms_id = f"/v1/lessons/{lesson.lesson_id}/students/s1/timeline"
    got = {who: status_of(api, by_lms_id, callers.headers(who)) for who in STUDENT_EXPECTED}
    assert got == STUDENT_EXPECTED
    by_uuid = f"/v1/lessons/{lesson.lesson_id}/students/{lesson.students['s1']}/timeline"
    lms = bearer(lesson.lms_key)
    assert api.get(by_lms_id, headers=lms).json() == api.get(by_uuid, headers=lms).json()
    # Another organisation's LMS id is unknown here; another student's is not the token's.
    unknown = api.get(f"/v1/lessons/{lesson.lesson_id}/students/x1/timeline", headers=lms)
    assert unknown.status_code == 404
    assert unknown.json()["error"]["field"] == "student"
    other = f"/v1/lessons/{lesson.lesson_id}/students/s2/timeline"
    assert status_of(api, other, callers.headers("student")) == 403


def test_a_student_token_is_bound_to_its_lesson(
    api: httpx.Client, clean_db: Engine, lesson: SeededLesson
) -> None:
    token = lesson.student_token("s1", lesson_id=uuid.uuid4())
    url = f"/v1/lessons/{lesson.lesson_id}/students/{lesson.students['s1']}/timeline"
    assert api.get(url, headers=bearer(token)).status_code == 403


def test_unknown_lesson_and_student_are_404(api: httpx.Client, lesson: SeededLesson) -> None:
    unknown = uuid.uuid4()
    for url in (
        f"/v1/lessons/{unknown}/timeline",
        f"/v1/lessons/{unknown}/summary",
        f"/v1/lessons/{lesson.lesson_id}/students/{unknown}/timeline",
    ):
        response = api.get(url, headers=bearer(lesson.lms_key))
        assert response.status_code == 404, url
        assert response.json()["error"]["code"] == "not_found"


def test_errors_share_one_json_shape(api: httpx.Client, lesson: SeededLesson) -> None:
    response = api.get(f"/v1/lessons/{lesson.lesson_id}/timeline")
    assert response.status_code == 401
    error = response.json()["error"]
    assert error["code"] == "unauthorized"
    assert "Bearer" in error["message"]
    assert set(error) == {"code", "message", "field"}


def test_lesson_list_shows_what_the_key_covers(
    api: httpx.Client, lesson: SeededLesson, callers: Callers
) -> None:
    def listed(who: str) -> set[str]:
        response = api.get("/v1/lessons", headers=callers.headers(who))
        assert response.status_code == 200, response.text
        return {item["id"] for item in response.json()["lessons"]}

    mine = str(lesson.lesson_id)
    assert mine in listed("teacher")
    assert mine in listed("lms")
    assert mine not in listed("other_org_lms")
    assert mine not in listed("other_class_teacher")
    assert api.get("/v1/lessons", headers=callers.headers("student")).status_code == 403
    assert api.get("/v1/lessons").status_code == 401


def test_access_token_query_parameter_is_refused(api: httpx.Client, lesson: SeededLesson) -> None:
    """Links carry single-use tickets instead (tests/analytics/test_tickets.py)."""
    url = f"/v1/lessons/{lesson.lesson_id}/export"
    assert api.get(url, params={"access_token": lesson.teacher_key}).status_code == 401
    assert api.get(url, params={"access_token": "cp_nope_nope"}).status_code == 401


def test_health_and_readiness(api: httpx.Client) -> None:
    assert api.get("/healthz").json() == {"status": "ok"}
    ready = api.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"postgres": "ok", "redis": "ok"}
