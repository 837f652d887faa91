"""Analytics fixtures: a real uvicorn server of the app on a free port, seeded lessons."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine

from classpulse.harness.factories import TOKEN_SECRET, SeededLesson, SeedEvent, seed_lesson
from classpulse.harness.servers import serving
from services.analytics.app import create_app
from services.analytics.config import AnalyticsSettings
from shared.labels import Expression

#: The default minimum group size; class-level tests seed around it.
K = 5
#: The dashboard tests' browser (Debian's package, which Playwright drives).
CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture(scope="session")
def analytics_config(pg_url: str, redis_url: str) -> AnalyticsSettings:
    return AnalyticsSettings(
        database_url=pg_url, redis_url=redis_url, token_secret=TOKEN_SECRET, min_group_size=K
    )


@pytest.fixture(scope="session")
def analytics_url(analytics_config: AnalyticsSettings) -> Iterator[str]:
    """A running analytics app (one per test session; tests empty the database)."""
    with serving(create_app(analytics_config)) as url:
        yield url


@pytest.fixture
def api(analytics_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=analytics_url, timeout=10) as client:
        yield client


def bearer(credential: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {credential}"}


def get(
    api: httpx.Client, lesson: SeededLesson, path: str, key: str | None = None, **params: str
) -> httpx.Response:
    """GET one of the lesson's resources, with its teacher key unless ``key`` is given."""
    return api.get(
        f"/v1/lessons/{lesson.lesson_id}/{path}",
        params=params,
        headers=bearer(key or lesson.teacher_key),
    )


@pytest.fixture
def lesson(clean_db: Engine) -> SeededLesson:
    """A lesson with seven students s1..s7 and no events yet."""
    return seed_lesson(clean_db, students=[f"s{i}" for i in range(1, 8)])


def every_ten_seconds(
    lesson: SeededLesson, external_ids: Iterable[str], minutes: int
) -> Iterator[tuple[int, uuid.UUID, int]]:
    """A frame of each student every 10 s for ``minutes`` minutes, as (the student's index n,
    its id, the second of the lesson): the n-th student's frames come n seconds late, so
    that no two coincide."""
    for n, external_id in enumerate(external_ids):
        for tick in range(minutes * 6):
            yield n, lesson.students[external_id], tick * 10 + n


def happy_or_unsure(student_id: uuid.UUID, at: dt.datetime, unsure: bool) -> SeedEvent:
    """A confident happy face, or one the model is too unsure of for a label (its withheld
    top label: sad)."""
    return SeedEvent(
        student_id,
        at,
        Expression.SAD if unsure else Expression.HAPPY,
        confidence=0.35 if unsure else 0.9,
        uncertain=unsure,
    )


def rotating_expressions(
    lesson: SeededLesson, external_ids: list[str], ticks: int
) -> list[SeedEvent]:
    """A frame of each student every 30 s, ``ticks`` of them, the n-th student's n seconds
    late; each frame shows the next of the seven expressions, each student starting n on."""
    return [
        SeedEvent(lesson.students[s], lesson.at(tick * 30 + n), Expression((tick + n) % 7))
        for n, s in enumerate(external_ids)
        for tick in range(ticks)
    ]


@pytest.fixture
def browser() -> Iterator[Any]:
    """Headless Chromium for the dashboard tests (skipped where it is not installed)."""
    if not CHROMIUM.exists():
        pytest.skip("Debian chromium is not installed")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            yield browser
        finally:
            browser.close()
