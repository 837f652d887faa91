"""Inputs the schemathesis suite found answered with 500, now refused with a clear 4xx."""

from __future__ import annotations

import httpx

from tests.reliability.conftest import Realm, bearer


def test_times_outside_the_supported_range_are_422(analytics: httpx.Client, realm: Realm) -> None:
    for path in ("timeline", "export"):
        answer = analytics.get(
            f"/v1/lessons/{realm.a.lesson_id}/{path}",
            params={"from": "0001-01-01T00:00:00Z", "to": "0010-02-01T01:01:02Z"},
            headers=bearer(realm.a.lms_key),
        )
        assert answer.status_code == 422, (path, answer.text)
        assert answer.json()["error"]["field"] == "from"
    late = analytics.get(
        f"/v1/lessons/{realm.a.lesson_id}/timeline",
        params={"to": "9999-12-31T23:59:59-01:00"},
        headers=bearer(realm.a.lms_key),
    )
    assert late.status_code == 422
    assert late.json()["error"]["field"] == "to"


def test_text_postgresql_cannot_store_is_422(ingest: httpx.Client, realm: Realm) -> None:
    lms = bearer(realm.a.lms_key)
    cases = {
        "empty LMS id": (
            "POST",
            f"/v1/classes/{realm.a.class_id}/students",
            {"external_ids": [""]},
        ),
        "NUL in LMS id": (
            "POST",
            f"/v1/classes/{realm.a.class_id}/students",
            {"external_ids": ["s\u0000"]},
        ),
        "NUL in title": ("POST", "/v1/classes", {"external_id": "c9", "title": "Ma\u0000ths"}),
        "NUL in path": ("PUT", f"/v1/classes/{realm.a.class_id}/consents/s%001", None),
    }
    for name, (method, url, body) in cases.items():
        answer = ingest.request(method, url, json=body, headers=lms)
        assert answer.status_code == 422, (name, answer.text)
        assert answer.json()["error"]["code"] == "validation_error", name


def test_a_body_that_is_not_utf8_json_is_400(ingest: httpx.Client, realm: Realm) -> None:
    answer = ingest.post(
        "/v1/classes",
        content=b"\x80{}",
        headers={**bearer(realm.a.lms_key), "Content-Type": "application/json"},
    )
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "bad_request"
