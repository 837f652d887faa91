"""Every endpoint of both APIs × every kind of caller → the expected status.

The endpoints are read from the apps' OpenAPI documents, so an endpoint added
without a row here fails :func:`test_every_endpoint_has_a_row`. Each endpoint
runs on a fresh realm (see ``conftest``); callers expected to succeed go last,
so that a change one of them makes cannot hide another caller's refusal.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect as ws_connect

from tests.ingest.conftest import jpeg_640x480
from tests.openapi import openapi
from tests.reliability.conftest import Realm, bearer

CALLERS = (
    "none", "revoked", "expired", "other_org", "teacher", "student", "other_student", "lms",
)  # fmt: skip
PHOTO = jpeg_640x480()
Kwargs = dict[str, Any]


def credential(realm: Realm, caller: str) -> str | None:
    return {
        "none": None,
        "revoked": realm.revoked_key,
        "expired": realm.expired_token(),
        "other_org": realm.b.lms_key,
        "teacher": realm.a.teacher_key,
        "student": realm.token("s1"),
        "other_student": realm.token("s2"),
        "lms": realm.a.lms_key,
    }[caller]


def statuses(default: int, **overrides: int) -> dict[str, int]:
    """401 without valid credentials, ``default`` for the others unless overridden."""
    table = dict.fromkeys(CALLERS, default)
    table.update(none=401, revoked=401, expired=401)
    table.update(overrides)
    return table


def lms_only(ok: int, **overrides: int) -> dict[str, int]:
    return statuses(403, lms=ok, **overrides)


def class_readers(ok: int = 200, **overrides: int) -> dict[str, int]:
    """The class's LMS key and teacher key; everyone else is refused."""
    return statuses(403, lms=ok, teacher=ok, **overrides)


def student_self(ok: int) -> dict[str, int]:
    """Student-token endpoints: any student acts on itself; API keys are not tokens."""
    return statuses(401, student=ok, other_student=ok)


PUBLIC = dict.fromkeys(CALLERS, 200)


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat()


def frame_request(_: Realm) -> Kwargs:
    return {
        "params": {"seq": "1", "captured_at": now_iso()},
        "content": PHOTO,
        "headers": {"Content-Type": "image/jpeg"},
    }


def batch_request(_: Realm) -> Kwargs:
    return {
        "files": [("image", ("f.jpg", PHOTO, "image/jpeg"))],
        "data": {"seq": "1", "captured_at": now_iso()},
    }


def lesson_request(realm: Realm) -> Kwargs:
    start = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
    end = start + dt.timedelta(hours=1)
    return {"json": {"title": "Next", "starts_at": start.isoformat(), "ends_at": end.isoformat()}}


def lrs_request(_: Realm) -> Kwargs:
    return {
        "json": {
            "endpoint": "https://lrs.example.org/xAPI",
            "username": "u",
            "password": "p",
            "lms_url": "https://lms.example.org",
        }
    }


def lti_registration_request(_: Realm) -> Kwargs:
    return {
        "json": {
            "issuer": "https://moodle.example.org",
            "client_id": uuid.uuid4().hex,
            "deployment_ids": ["1"],
            "auth_login_url": "https://moodle.example.org/mod/lti/auth.php",
            "auth_token_url": "https://moodle.example.org/mod/lti/token.php",
            "key_set_url": "https://moodle.example.org/mod/lti/certs.php",
        }
    }


@dataclass(frozen=True)
class Row:
    expect: dict[str, int]
    request: Callable[[Realm], Kwargs] = lambda _: {}
    #: Callers whose successful answer must not mention organisation A's class.
    blind: tuple[str, ...] = ()
    stream: bool = False
    extra: dict[str, str] = field(default_factory=dict)


INGEST: dict[str, Row] = {
    "POST /v1/classes": Row(
        statuses(403, lms=201, other_org=201),
        lambda _: {"json": {"external_id": "new", "title": "New"}},
    ),
    "GET /v1/classes": Row(statuses(200), blind=("other_org", "student", "other_student")),
    "PATCH /v1/classes/{class_id}": Row(lms_only(200), lambda _: {"json": {"title": "Renamed"}}),
    "POST /v1/classes/{class_id}/lessons": Row(lms_only(201), lesson_request),
    "GET /v1/classes/{class_id}/lessons": Row(class_readers()),
    "POST /v1/classes/{class_id}/students": Row(
        lms_only(200), lambda _: {"json": {"external_ids": ["s9"]}}
    ),
    "POST /v1/classes/{class_id}/teacher-keys": Row(lms_only(201)),
    "PUT /v1/lessons/{lesson_id}/consents/{external_student_id}": Row(lms_only(200)),
    "DELETE /v1/lessons/{lesson_id}/consents/{external_student_id}": Row(lms_only(200)),
    "PUT /v1/classes/{class_id}/consents/{external_student_id}": Row(lms_only(200)),
    "DELETE /v1/classes/{class_id}/consents/{external_student_id}": Row(lms_only(200)),
    "POST /v1/lessons/{lesson_id}/markers": Row(
        lms_only(201), lambda _: {"json": {"at": now_iso(), "kind": "slide", "label": "Quiz"}}
    ),
    "GET /v1/lessons/{lesson_id}/markers": Row(class_readers()),
    "POST /v1/lessons/{lesson_id}/students/{external_student_id}/token": Row(lms_only(200)),
    "DELETE /v1/students/{external_id}": Row(lms_only(200)),
    "PUT /v1/lessons/{lesson_id}/consent": Row(student_self(200)),
    "DELETE /v1/lessons/{lesson_id}/consent": Row(student_self(200)),
    "GET /v1/lessons/{lesson_id}/me": Row(student_self(200)),
    "POST /v1/lessons/{lesson_id}/frames": Row(student_self(202), frame_request),
    "POST /v1/lessons/{lesson_id}/frames:batch": Row(student_self(207), batch_request),
    # Organisation A has an LRS, B none; setting one needs the per-student permission.
    "PUT /v1/lrs": Row(statuses(403, lms=200, other_org=200), lrs_request),
    "GET /v1/lrs": Row(statuses(403, lms=200, other_org=404)),
    "DELETE /v1/lrs": Row(statuses(403, lms=204, other_org=404)),
    # LTI registrations are the organisation's own; class A came by REST (no LMS roster).
    "GET /v1/lti/tool": Row(statuses(403, lms=200, other_org=200)),
    "GET /v1/lti/registrations": Row(statuses(403, lms=200, other_org=200)),
    "POST /v1/lti/registrations": Row(
        statuses(403, lms=201, other_org=201), lti_registration_request
    ),
    "DELETE /v1/lti/registrations/{registration_id}": Row(statuses(403, lms=404, other_org=404)),
    "POST /v1/lti/classes/{class_id}/roster": Row(statuses(403, lms=422, other_org=404)),
    "GET /healthz": Row(PUBLIC),
    "GET /readyz": Row(PUBLIC),
}
ANALYTICS: dict[str, Row] = {
    "GET /v1/lessons": Row(class_readers(other_org=200), blind=("other_org",)),
    "GET /v1/lessons/{lesson}/frames/stats": Row(class_readers()),
    "GET /v1/lessons/{lesson}/timeline": Row(class_readers()),
    # Per-student data: the seeded teacher key lacks the per-student permission.
    "GET /v1/lessons/{lesson}/students/{student}/timeline": Row(
        statuses(403, lms=200, student=200)
    ),
    "GET /v1/lessons/{lesson}/summary": Row(class_readers()),
    "GET /v1/lessons/{lesson}/live": Row(class_readers(), stream=True),
    "GET /v1/lessons/{lesson}/export": Row(class_readers(), extra={"format": "csv"}),
    "GET /v1/lessons/{lesson}/xapi/statements": Row(statuses(403, lms=200)),
    "POST /v1/tickets": Row(
        class_readers(),
        lambda realm: {"json": {"purpose": "live", "lesson_id": str(realm.a.lesson_id)}},
    ),
    # The ticket is the credential: an unknown one opens nothing, whatever the header.
    "POST /v1/tickets/dashboard": Row(
        statuses(401),
        lambda realm: {"json": {"ticket": "x" * 43, "lesson_id": str(realm.a.lesson_id)}},
    ),
    "GET /healthz": Row(PUBLIC),
    "GET /readyz": Row(PUBLIC),
}


def operations(service: Literal["ingest", "analytics"]) -> list[str]:
    """``METHOD /path`` of every operation in the service's OpenAPI document."""
    paths = openapi(service)["paths"]
    return [f"{method.upper()} {path}" for path, ops in paths.items() for method in ops]


ENDPOINTS = [("ingest", op) for op in operations("ingest")] + [
    ("analytics", op) for op in operations("analytics")
]


def test_every_endpoint_has_a_row() -> None:
    assert sorted(op for api, op in ENDPOINTS if api == "ingest") == sorted(INGEST)
    assert sorted(op for api, op in ENDPOINTS if api == "analytics") == sorted(ANALYTICS)


def fill(path: str, realm: Realm) -> str:
    values = {
        "class_id": realm.a.class_id,
        "lesson_id": realm.a.lesson_id,
        "lesson": realm.a.lesson_id,
        # Set-up endpoints act on s3, whom no caller's token belongs to.
        "external_student_id": "s3",
        "external_id": realm.a.students["s3"],
        "student": realm.a.students["s1"],
        "registration_id": uuid.UUID(int=7),
    }
    return re.sub(r"\{(\w+)\}", lambda m: str(values[m.group(1)]), path)


def call(client: httpx.Client, method: str, url: str, row: Row, kwargs: Kwargs) -> httpx.Response:
    """The answer's status line and body; a stream is closed once its head arrived."""
    if not row.stream:
        return client.request(method, url, **kwargs)
    with client.stream(method, url, **kwargs) as answer:
        if answer.status_code >= 400:
            answer.read()
        return answer


@pytest.fixture
def clients(ingest: httpx.Client, analytics: httpx.Client) -> dict[str, httpx.Client]:
    return {"ingest": ingest, "analytics": analytics}


def ordered(expect: dict[str, int]) -> Iterator[str]:
    """Refused callers first, then those expected to succeed."""
    yield from sorted(CALLERS, key=lambda caller: expect[caller] < 300)


@pytest.mark.parametrize(("api", "operation"), ENDPOINTS, ids=[f"{a} {o}" for a, o in ENDPOINTS])
def test_access(api: str, operation: str, realm: Realm, clients: dict[str, httpx.Client]) -> None:
    row = (INGEST if api == "ingest" else ANALYTICS).get(operation)
    assert row is not None, f"no access row for {api} {operation}"
    method, path = operation.split(" ", 1)
    url = fill(path, realm)
    got: dict[str, int] = {}
    for caller in ordered(row.expect):
        kwargs = row.request(realm)
        secret = credential(realm, caller)
        headers = {**kwargs.pop("headers", {}), **(bearer(secret) if secret else {})}
        params = {**kwargs.pop("params", {}), **row.extra}
        answer = call(
            clients[api], method, url, row, {**kwargs, "headers": headers, "params": params}
        )
        got[caller] = answer.status_code
        if answer.status_code >= 400:
            assert answer.json()["error"]["code"], answer.text
        elif caller in row.blind:
            assert str(realm.a.class_id) not in answer.text, f"{caller} sees class A"
    assert got == row.expect


#: The WebSocket stream (not in OpenAPI): "ack" for a student's own frame, else the
#: error the server says before it closes with 1008 (policy violation).
STREAM_EXPECT = {
    **dict.fromkeys(CALLERS, "unauthorized 1008"),
    "student": "ack",
    "other_student": "ack",
}


def stream_outcome(url: str) -> str:
    """ "ack" when a frame sent on the socket is accepted, else "<error code> <close code>"."""
    said = ""
    with ws_connect(url, open_timeout=10) as socket:
        # A refused socket may close before the frame is sent; its message is still read.
        with contextlib.suppress(ConnectionClosed):
            socket.send(json.dumps({"seq": 1, "captured_at": now_iso()}))
            socket.send(PHOTO)
        try:
            while True:
                message = json.loads(socket.recv(timeout=10))
                if message["type"] == "ack":
                    return "ack"
                if message["type"] == "error":
                    said = message["error"]["code"]
        except ConnectionClosed as closed:
            code = closed.rcvd.code if closed.rcvd is not None else None
    return f"{said} {code}"


def test_access_to_the_frame_stream(realm: Realm, ingest_url: str) -> None:
    base = ingest_url.replace("http://", "ws://") + f"/v1/lessons/{realm.a.lesson_id}/stream"
    got = {}
    for caller in CALLERS:
        secret = credential(realm, caller)
        got[caller] = stream_outcome(base + (f"?token={secret}" if secret else ""))
    assert got == STREAM_EXPECT
