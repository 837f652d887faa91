"""Single-use tickets for live-stream and export links; keys in URLs are refused."""

from __future__ import annotations

import hashlib
import io
import logging
import uuid
from collections.abc import Iterator

import httpx
import pytest
import redis as redis_lib

from classpulse.harness.factories import SeededLesson
from tests.analytics.conftest import bearer


@pytest.fixture
def access_log() -> Iterator[io.StringIO]:
    """What uvicorn's access log writes (its level raised to INFO for the test)."""
    logger, out = logging.getLogger("uvicorn.access"), io.StringIO()
    handler, level = logging.StreamHandler(out), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield out
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def _ticket(api: httpx.Client, key: str, purpose: str, lesson_id: uuid.UUID) -> str:
    response = api.post(
        "/v1/tickets", json={"purpose": purpose, "lesson_id": str(lesson_id)}, headers=bearer(key)
    )
    assert response.status_code == 200, response.text
    assert response.json()["expires_in"] == 60
    return str(response.json()["ticket"])


def test_an_export_ticket_works_once(
    api: httpx.Client, lesson: SeededLesson, access_log: io.StringIO
) -> None:
    url = f"/v1/lessons/{lesson.lesson_id}/export"
    ticket = _ticket(api, lesson.teacher_key, "export", lesson.lesson_id)
    assert api.get(url, params={"ticket": ticket, "format": "json"}).status_code == 200
    again = api.get(url, params={"ticket": ticket, "format": "json"})
    assert again.status_code == 401
    assert "used or expired ticket" in again.json()["error"]["message"]
    logged = access_log.getvalue()
    assert "ticket=[redacted]" in logged
    assert ticket not in logged
    assert lesson.teacher_key not in logged


def test_a_ticket_opens_only_its_purpose_and_lesson(
    api: httpx.Client, lesson: SeededLesson
) -> None:
    live_ticket = _ticket(api, lesson.teacher_key, "live", lesson.lesson_id)
    export = api.get(f"/v1/lessons/{lesson.lesson_id}/export", params={"ticket": live_ticket})
    assert export.status_code == 401
    assert "not for the export link" in export.json()["error"]["message"]
    other = _ticket(api, lesson.teacher_key, "export", lesson.lesson_id)
    elsewhere = api.get(f"/v1/lessons/{uuid.uuid4()}/export", params={"ticket": other})
    assert elsewhere.status_code == 401
    timeline = _ticket(api, lesson.teacher_key, "export", lesson.lesson_id)
    refused = api.get(f"/v1/lessons/{lesson.lesson_id}/timeline", params={"ticket": timeline})
    assert refused.status_code == 401
    assert "tickets open only" in refused.json()["error"]["message"]


def test_a_ticket_expires_within_a_minute(
    api: httpx.Client, lesson: SeededLesson, redis_url: str
) -> None:
    ticket = _ticket(api, lesson.teacher_key, "export", lesson.lesson_id)
    client = redis_lib.Redis.from_url(redis_url)
    try:
        key = "classpulse:ticket:" + hashlib.sha256(ticket.encode()).hexdigest()
        assert 0 < client.ttl(key) <= 60
        assert ticket.encode() not in client.get(key)  # type: ignore[operator]
        client.pexpireat(key, 1)  # the minute has passed: a past deadline expires it now
    finally:
        client.close()
    url = f"/v1/lessons/{lesson.lesson_id}/export"
    assert api.get(url, params={"ticket": ticket}).status_code == 401


def test_no_ticket_without_access_and_no_key_in_urls(
    api: httpx.Client, lesson: SeededLesson
) -> None:
    body = {"purpose": "live", "lesson_id": str(lesson.lesson_id)}
    assert api.post("/v1/tickets", json=body).status_code == 401
    assert api.post("/v1/tickets", json=body, headers=bearer("cp_nope_nope")).status_code == 401
    url = f"/v1/lessons/{lesson.lesson_id}/export"
    refused = api.get(url, params={"access_token": lesson.teacher_key})
    assert refused.status_code == 401
    assert "?access_token=" in refused.json()["error"]["message"]
    assert "POST /v1/tickets" in refused.json()["error"]["message"]
