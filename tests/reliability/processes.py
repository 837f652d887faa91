"""The services as separate processes, each in a scratch working and temporary directory.

Running ingest and the worker with their own ``cwd`` and ``TMPDIR`` lets a
test look at every file they wrote (spooled uploads, caches, anything).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from classpulse.harness.factories import TOKEN_SECRET
from classpulse.harness.ports import free_port
from shared.schemas import FRAME_QUEUE
from tests.conftest import ROOT
from tests.reliability.conftest import SECRETS_KEY

START_TIMEOUT = 90.0


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


def spawn(command: list[str], env: dict[str, str], cwd: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(command, cwd=cwd, env=env, stdout=out, stderr=out)


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL if it does not stop."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def wait_until_ready(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        time.sleep(0.2)
    raise RuntimeError(f"{url} not ready:\n{log.read_text()[-3000:]}")


APPS = {
    "ingest": "services.ingest.app:create_app",
    "analytics": "services.analytics.app:create_app",
}


@contextlib.contextmanager
def service_process(name: str, scratch: Scratch, env: dict[str, str]) -> Iterator[str]:
    """``uvicorn`` serving the ``name`` API (ingest or analytics) on a free port; yields its URL."""
    port = free_port()
    command = [
        sys.executable, "-m", "uvicorn", APPS[name], "--factory",
        "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
    ]  # fmt: skip
    log = scratch.logs / f"{name}.log"
    proc = spawn(command, env, scratch.root, log)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until_ready(url, proc, log)
        yield url
    finally:
        stop(proc)


def ingest_process(scratch: Scratch, env: dict[str, str]) -> contextlib.AbstractContextManager[str]:
    return service_process("ingest", scratch, env)


def start_worker(scratch: Scratch, env: dict[str, str], name: str) -> subprocess.Popen[bytes]:
    """A Celery worker (solo pool) on the frames queue, once it consumes."""
    command = [
        sys.executable, "-m", "celery", "-A", "services.inference.celery_app:app", "worker",
        "-Q", FRAME_QUEUE, "--pool", "solo", "--loglevel", "INFO", "-n", f"{name}@%h",
        "--without-heartbeat", "--without-gossip", "--without-mingle",
    ]  # fmt: skip
    log = scratch.logs / f"{name}.log"
    proc = spawn(command, env, scratch.root, log)
    deadline = time.monotonic() + START_TIMEOUT
    while b" ready." not in log.read_bytes():
        if proc.poll() is not None or time.monotonic() > deadline:
            stop(proc)
            raise RuntimeError(f"worker {name} did not start:\n{log.read_text()[-3000:]}")
        time.sleep(0.2)
    return proc
