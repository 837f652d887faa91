"""Analytics fixtures: a real uvicorn server of the app on a free port, seeded lessons."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import Engine

from classpulse.harness.factories import TOKEN_SECRET, SeededLesson, seed_lesson
from classpulse.harness.servers import serving
from services.analytics.app import create_app
from services.analytics.config import AnalyticsSettings

#: The default minimum group size; class-level tests seed around it.
K = 5


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


@pytest.fixture
def lesson(clean_db: Engine) -> SeededLesson:
    """A lesson with seven students s1..s7 and no events yet."""
    return seed_lesson(clean_db, students=[f"s{i}" for i in range(1, 8)])
