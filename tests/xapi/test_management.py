"""The LRS managed by CLI (``classpulse lrs``) and by the LMS API (``/v1/lrs``), and the
statements export of the analytics API; the password never comes back."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from classpulse.cli import app
from classpulse.harness.factories import TOKEN_SECRET, SeededLesson, add_key, seed_lesson
from classpulse.harness.servers import serving
from services.analytics.app import create_app as create_analytics
from services.analytics.config import AnalyticsSettings
from services.ingest.app import create_app as create_ingest
from services.ingest.config import IngestSettings
from shared.db.models import KeyRole
from tests.xapi.conftest import SECRETS_KEY
from tests.xapi.lrs_server import LRS_PASSWORD, LRS_USER, Ralph
from tests.xapi.test_delivery import ended_lesson, run, seed_events

ENDPOINT = "https://lrs.example.org/xAPI"


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, pg_url: str, secrets_key: str) -> CliRunner:
    monkeypatch.setenv("CLASSPULSE_DATABASE_URL", pg_url)
    return CliRunner()


@pytest.fixture
def ingest(pg_url: str, redis_url: str, redis_client: object) -> Iterator[httpx.Client]:
    config = IngestSettings(
        database_url=pg_url,
        redis_url=redis_url,
        token_secret=TOKEN_SECRET,
        secrets_key=SecretStr(SECRETS_KEY),
    )
    with serving(create_ingest(config)) as url, httpx.Client(base_url=url, timeout=15) as client:
        yield client


@pytest.fixture
def analytics(pg_url: str, redis_url: str) -> Iterator[httpx.Client]:
    config = AnalyticsSettings(database_url=pg_url, redis_url=redis_url, token_secret=TOKEN_SECRET)
    with serving(create_analytics(config)) as url, httpx.Client(base_url=url, timeout=15) as client:
        yield client


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def stored_row(engine: Engine) -> str:
    with engine.connect() as conn:
        return conn.execute(text("SELECT row_to_json(c)::text FROM lrs_configs c")).scalar_one()


def test_cli_sets_shows_and_removes_without_showing_the_password(
    cli: CliRunner, clean_db: Engine
) -> None:
    lesson = seed_lesson(clean_db)
    org = str(lesson.organisation_id)
    options = ["--org", org, "--endpoint", ENDPOINT + "/", "--username", "ops"]
    options += ["--lms-url", "https://moodle.example.org"]

    # From the hidden prompt: not an argument, which ps and shell histories would keep.
    set_ = cli.invoke(app, ["lrs", "set", *options], input="s3cret-pw\ns3cret-pw\n")
    assert set_.exit_code == 0, set_.output
    assert "s3cret-pw" not in set_.output
    shown = cli.invoke(app, ["lrs", "show", "--org", org])
    assert shown.exit_code == 0, shown.output
    assert f"endpoint:   {ENDPOINT}\n" in shown.output
    assert "password:   set" in shown.output
    assert "0 waiting, 0 sent, 0 rejected" in shown.output
    assert "s3cret-pw" not in shown.output
    assert "s3cret-pw" not in stored_row(clean_db)

    removed = cli.invoke(app, ["lrs", "remove", "--org", org])
    assert removed.exit_code == 0
    assert cli.invoke(app, ["lrs", "show", "--org", org]).exit_code == 1
    with Session(clean_db) as session:
        actions = session.scalars(text("SELECT action FROM audit_log ORDER BY id")).all()
    assert actions == ["lrs.set", "lrs.remove"]


def test_cli_refuses_bad_urls_and_a_missing_secrets_key(
    cli: CliRunner, clean_db: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    org = str(seed_lesson(clean_db).organisation_id)
    base = ["lrs", "set", "--org", org, "--username", "ops", "--lms-url", "https://lms.example"]
    monkeypatch.setenv("CLASSPULSE_LRS_PASSWORD", "pw")
    with_creds = cli.invoke(app, [*base, "--endpoint", "https://ops:pw@lrs.example/xAPI"])
    assert with_creds.exit_code == 2
    assert "must not carry credentials" in with_creds.output
    not_http = cli.invoke(app, [*base, "--endpoint", "ftp://lrs.example/xAPI"])
    assert not_http.exit_code == 2
    monkeypatch.delenv("CLASSPULSE_SECRETS_KEY")
    no_key = cli.invoke(app, [*base, "--endpoint", ENDPOINT])
    assert no_key.exit_code == 2
    assert "CLASSPULSE_SECRETS_KEY" in no_key.output


def test_api_manages_the_lrs_with_the_per_student_permission(
    ingest: httpx.Client, clean_db: Engine
) -> None:
    lesson = seed_lesson(clean_db)
    with Session(clean_db) as session:
        class_only = add_key(session, lesson.organisation_id, KeyRole.LMS, per_student=False)
        session.commit()
    body = {"endpoint": ENDPOINT, "username": "ops", "password": "api-secret-pw",
            "lms_url": "https://canvas.example.edu"}  # fmt: skip

    assert ingest.put("/v1/lrs", json=body, headers=bearer(lesson.teacher_key)).status_code == 403
    refused = ingest.put("/v1/lrs", json=body, headers=bearer(class_only))
    assert refused.status_code == 403
    assert "per-student" in refused.json()["error"]["message"]
    assert ingest.get("/v1/lrs", headers=bearer(lesson.lms_key)).status_code == 404

    put = ingest.put("/v1/lrs", json=body, headers=bearer(lesson.lms_key))
    assert put.status_code == 200, put.text
    got = ingest.get("/v1/lrs", headers=bearer(class_only))
    assert got.status_code == 200
    for answer in (put, got):
        assert answer.json()["endpoint"] == ENDPOINT
        assert answer.json()["password_set"] is True
        assert "api-secret-pw" not in answer.text
    assert "api-secret-pw" not in stored_row(clean_db)

    bad = ingest.put(
        "/v1/lrs", json=body | {"endpoint": "https://u:p@lrs/x"}, headers=bearer(lesson.lms_key)
    )
    assert bad.status_code == 422
    assert ingest.delete("/v1/lrs", headers=bearer(class_only)).status_code == 204
    assert ingest.get("/v1/lrs", headers=bearer(lesson.lms_key)).status_code == 404


def test_export_gives_the_statements_as_sent(
    clean_db: Engine, lrs: Ralph, secrets_key: str, analytics: httpx.Client
) -> None:
    lesson: SeededLesson = ended_lesson(clean_db)
    seed_events(clean_db, lesson)
    with Session(clean_db) as session:
        from services.xapi.lrs_config import set_lrs

        set_lrs(session, lesson.organisation_id, endpoint=lrs.endpoint, username=LRS_USER,
                password=LRS_PASSWORD, lms_url="https://moodle.example.org",
                secrets_key=SecretStr(SECRETS_KEY))  # fmt: skip
        session.commit()
    url = f"/v1/lessons/{lesson.lesson_id}/xapi/statements"
    before = analytics.get(url, headers=bearer(lesson.lms_key)).json()
    assert (before["built_at"], before["statements"]) == (None, [])

    run(clean_db)

    answer = analytics.get(url, headers=bearer(lesson.lms_key))
    assert answer.status_code == 200
    exported = answer.json()
    in_lrs = {s["id"]: s for s in lrs.statements()}
    assert len(exported["statements"]) == 3
    for statement, delivery in zip(exported["statements"], exported["delivery"], strict=True):
        assert delivery["id"] == statement["id"]
        assert delivery["status"] == "sent"
        sent = in_lrs[statement["id"]]
        assert {k: sent[k] for k in statement} == statement
    assert dt.datetime.fromisoformat(exported["built_at"]) <= dt.datetime.now(dt.UTC)
    # Per-student data: the seeded teacher key lacks the permission.
    assert analytics.get(url, headers=bearer(lesson.teacher_key)).status_code == 403
    assert re.fullmatch(r"[0-9a-f-]{36}", exported["statements"][0]["id"])
