"""Fixtures on the real PostgreSQL and Redis of this machine.

Each test session gets a database of its own (created, migrated, dropped at
the end) and a Redis database number of its own, so concurrent runs do not
interfere. ``CLASSPULSE_TEST_DATABASE_URL`` / ``CLASSPULSE_TEST_REDIS_URL``
point at other servers (the test command sets them to the embedded servers
when the machine has none).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis as redis_lib
from celery import Celery
from sqlalchemy import Engine, text
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.db.engine import make_async_engine, make_sync_engine
from shared.db.models import Base
from shared.schemas import FRAME_QUEUE

ROOT = Path(__file__).resolve().parents[1]
MEDIA = ROOT / "media"
FIXTURES = Path(__file__).resolve().parent / "fixtures"
SERVER_URL = os.environ.get(
    "CLASSPULSE_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
REDIS_SERVER = os.environ.get("CLASSPULSE_TEST_REDIS_URL", "redis://127.0.0.1:6379")


def send_task(redis_url: str, name: str, **kwargs: object) -> None:
    """Queue task ``name`` on the frames queue, as ingest or beat would."""
    client = Celery("ingest-like", broker=redis_url)
    client.send_task(name, kwargs=kwargs, queue=FRAME_QUEUE)
    client.close()


def _migrate(url: str) -> None:
    """Build the schema the way production does: Alembic migrations to head."""
    from shared.db.migrate import upgrade

    upgrade(url)


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """URL of a fresh, migrated database for this test session."""
    name = f"classpulse_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = make_sync_engine(SERVER_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = SERVER_URL.rsplit("/", 1)[0] + f"/{name}"
    _migrate(url)
    yield url
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def sync_engine(pg_url: str) -> Iterator[Engine]:
    engine = make_sync_engine(pg_url)
    yield engine
    engine.dispose()


@pytest.fixture
def clean_db(sync_engine: Engine) -> Engine:
    """The session database, emptied before the test."""
    tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    with sync_engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    return sync_engine


@pytest.fixture
async def async_engine(pg_url: str) -> AsyncIterator[AsyncEngine]:
    engine = make_async_engine(pg_url)
    yield engine
    await engine.dispose()


#: Key that marks a Redis database as taken by a running test session.
REDIS_CLAIM_KEY = "classpulse:test-session"


def _claim(client: redis_lib.Redis) -> bool:
    return bool(client.set(REDIS_CLAIM_KEY, os.getpid(), nx=True, ex=3600))


#: Deletes every key but the claim in one step: a FLUSHDB would drop the claim, and
#: another session starting in the moment before it was set again could take the
#: same database.
_EMPTY_BUT_CLAIM = """
for _, key in ipairs(redis.call('KEYS', '*')) do
  if key ~= ARGV[1] then redis.call('DEL', key) end
end
"""


def empty_but_the_claim(client: redis_lib.Redis) -> None:
    """Empty the session's Redis database, keeping the session's claim on it."""
    client.eval(_EMPTY_BUT_CLAIM, 0, REDIS_CLAIM_KEY)


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A Redis database number (1..15) no other running test session uses.

    Concurrent sessions would otherwise consume each other's queue messages.
    """
    for db in range(1, 16):
        client = redis_lib.Redis.from_url(f"{REDIS_SERVER}/{db}")
        if _claim(client):
            yield f"{REDIS_SERVER}/{db}"
            client.delete(REDIS_CLAIM_KEY)
            client.close()
            return
        client.close()
    raise RuntimeError("all Redis databases 1..15 are claimed by other test sessions")


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis_lib.Redis]:
    """A client on the session's Redis database, flushed before the test."""
    client = redis_lib.Redis.from_url(redis_url)
    empty_but_the_claim(client)
    yield client
    client.close()


#: Node ids that reported an outcome this session (under xdist: on the controller).
_REPORTED: set[str] = set()


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    _REPORTED.add(report.nodeid)


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail a run that ends green with fewer tests reported than selected.

    Two processes once reported 839 of 879 tests passed: xdist's ``--dist
    loadfile`` ran one of each group of tests sharing a node id and dropped
    the rest without a word (tests/reliability/conftest.py).
    """
    if hasattr(session.config, "workerinput") or exitstatus != pytest.ExitCode.OK:
        return
    if session.config.option.collectonly or session.shouldstop:
        return
    if len(_REPORTED) < session.testscollected:
        missing = session.testscollected - len(_REPORTED)
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(
                f"{missing} of {session.testscollected} selected tests never ran", red=True
            )
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
