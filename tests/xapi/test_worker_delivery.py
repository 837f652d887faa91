"""The beat task in a real Celery worker process sends a finished lesson to a real LRS."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine

from classpulse.harness.processes import start_worker, stop
from services.inference.tasks import SEND_XAPI_TASK
from tests.conftest import send_task
from tests.inference.test_worker import wait_for, worker_env
from tests.xapi.conftest import SECRETS_KEY
from tests.xapi.lrs_server import LRS_PASSWORD, Ralph
from tests.xapi.test_delivery import of_lesson, ready_lesson

pytestmark = pytest.mark.slow


def test_a_worker_delivers_statements_and_logs_no_credential(
    clean_db: Engine, lrs: Ralph, secrets_key: str, pg_url: str, redis_url: str,
    redis_client: object, tmp_path: Path,
) -> None:  # fmt: skip
    lesson = ready_lesson(clean_db, lrs)
    log = tmp_path / "worker.log"
    env = worker_env(pg_url, redis_url, CLASSPULSE_SECRETS_KEY=SECRETS_KEY)
    worker = start_worker("xapi", env, log)
    try:
        send_task(redis_url, SEND_XAPI_TASK)
        wait_for(
            lambda: len(of_lesson(lrs, lesson)) == 3,
            60,
            "the worker did not deliver the lesson's statements",
            worker,
            log,
        )
    finally:
        stop(worker)
    text = log.read_text(errors="replace")
    assert "'sent': 3" in text
    assert LRS_PASSWORD not in text
    assert SECRETS_KEY not in text
