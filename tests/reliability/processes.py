"""The services as separate processes, each in a scratch working and temporary directory.

Running ingest and the worker with their own ``cwd`` and ``TMPDIR`` lets a
test look at every file they wrote (spooled uploads, caches, anything).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from classpulse.harness import processes as harness
from classpulse.harness.factories import TOKEN_SECRET
from tests.conftest import ROOT
from tests.reliability.conftest import SECRETS_KEY


@dataclass(frozen=True)
class Scratch:
    """Where the services may write: their working directory and ``TMPDIR``."""

    root: Path
    logs: Path

    @property
    def tmp(self) -> Path:
        return self.root / "tmp"

    def env(self, database_url: str, redis_url: str, **extra: str) -> dict[str, str]:
        self.tmp.mkdir(parents=True, exist_ok=True)
        return {
            **os.environ,
            "CLASSPULSE_DATABASE_URL": database_url,
            "CLASSPULSE_REDIS_URL": redis_url,
            "CLASSPULSE_TOKEN_SECRET": TOKEN_SECRET,
            "CLASSPULSE_SECRETS_KEY": SECRETS_KEY.get_secret_value(),
            "CLASSPULSE_STUDENT_RATE_PER_SECOND": "1000",
            "PYTHONPATH": str(ROOT),
            "PYTHONUNBUFFERED": "1",
            "TMPDIR": str(self.tmp),
            **extra,
        }


@contextlib.contextmanager
def service_process(name: str, scratch: Scratch, env: dict[str, str]) -> Iterator[str]:
    """``uvicorn`` serving the ``name`` API (ingest or analytics) on a free port; yields its URL."""
    log = scratch.logs / f"{name}.log"
    app = harness.API_APPS[name]
    with harness.api_process(app, env, log, cwd=scratch.root, log_level="warning") as api:
        yield api.url


def ingest_process(scratch: Scratch, env: dict[str, str]) -> contextlib.AbstractContextManager[str]:
    return service_process("ingest", scratch, env)


def scratch_worker(scratch: Scratch, env: dict[str, str], name: str) -> subprocess.Popen[bytes]:
    """A Celery worker (solo pool) on the frames queue, once it consumes."""
    return harness.start_worker(name, env, scratch.logs / f"{name}.log", cwd=scratch.root)
