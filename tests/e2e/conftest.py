"""The whole system as separate processes: ingest, analytics (uvicorn) and a Celery worker.

They run on the test session's PostgreSQL database and Redis database number,
exactly as deployed (no in-process app, no eager Celery), and headless Chromium
drives the pages.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis as redis_lib

from classpulse.harness.ports import free_port
from tests.conftest import MEDIA, ROOT, empty_but_the_claim

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = ROOT / "test-artifacts"
START_TIMEOUT = 60.0


@dataclasses.dataclass
class Stack:
    ingest_url: str
    analytics_url: str
    database_url: str
    env: dict[str, str]
    logs: dict[str, Path]

    def log_tail(self, lines: int = 40) -> str:
        parts = []
        for name, path in self.logs.items():
            text = path.read_text(errors="replace").splitlines()[-lines:]
            parts.append(f"--- {name} ---\n" + "\n".join(text))
        return "\n".join(parts)


def _wait_ready(url: str, proc: subprocess.Popen[bytes], name: str, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited with {proc.returncode}:\n{log.read_text()}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        time.sleep(0.2)
    raise RuntimeError(f"{name} was not ready within {START_TIMEOUT}s:\n{log.read_text()}")


def _wait_worker(proc: subprocess.Popen[bytes], log: Path) -> None:
    """Celery logs 'ready' once it consumes; frames sent before would wait anyway."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"worker exited with {proc.returncode}:\n{log.read_text()}")
        if "ready." in log.read_text(errors="replace"):
            return
        time.sleep(0.2)
    raise RuntimeError(f"the worker was not ready within {START_TIMEOUT}s:\n{log.read_text()}")


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


# Module scope, not session: a live worker and servers on the session's
# database and Redis would consume and write the frames of later test modules.
@pytest.fixture(scope="module")
def stack(pg_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Ingest and analytics on free ports, stopped at the end of the module."""
    empty_but_the_claim(redis_lib.Redis.from_url(redis_url))
    logs_dir = tmp_path_factory.mktemp("stack-logs")
    env = {
        **os.environ,
        "CLASSPULSE_DATABASE_URL": pg_url,
        "CLASSPULSE_REDIS_URL": redis_url,
        "CLASSPULSE_TOKEN_SECRET": secrets.token_urlsafe(32),
        # One browser student per lesson: show its shares instead of suppressing them.
        "CLASSPULSE_MIN_GROUP_SIZE": "1",
        "PYTHONUNBUFFERED": "1",
    }
    ingest_port, analytics_port = free_port(), free_port()
    python = sys.executable
    commands = {
        "ingest": [
            python, "-m", "uvicorn", "services.ingest.app:create_app", "--factory",
            "--host", "127.0.0.1", "--port", str(ingest_port), "--log-level", "warning",
        ],
        "analytics": [
            python, "-m", "uvicorn", "services.analytics.app:create_app", "--factory",
            "--host", "127.0.0.1", "--port", str(analytics_port), "--log-level", "warning",
        ],
    }  # fmt: skip
    procs: list[subprocess.Popen[bytes]] = []
    logs: dict[str, Path] = {}
    try:
        for name, command in commands.items():
            logs[name] = logs_dir / f"{name}.log"
            with logs[name].open("wb") as out:
                procs.append(subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=out))
        ingest_url = f"http://127.0.0.1:{ingest_port}"
        analytics_url = f"http://127.0.0.1:{analytics_port}"
        _wait_ready(ingest_url, procs[0], "ingest", logs["ingest"])
        _wait_ready(analytics_url, procs[1], "analytics", logs["analytics"])
        yield Stack(ingest_url, analytics_url, pg_url, env, logs)
    finally:
        _stop(procs)


@pytest.fixture(scope="module")
def worker(stack: Stack) -> Iterator[None]:
    """One real Celery worker process consuming the frames queue of the stack."""
    log = stack.logs["worker"] = stack.logs["ingest"].with_name("worker.log")
    command = [
        sys.executable, "-m", "celery", "-A", "services.inference.celery_app:app", "worker",
        "-Q", "frames", "--concurrency", "1", "--loglevel", "INFO", "--without-heartbeat",
        "--without-gossip", "--without-mingle", "-n", f"e2e-{os.getpid()}@%h",
    ]  # fmt: skip
    with log.open("wb") as out:
        proc = subprocess.Popen(command, cwd=ROOT, env=stack.env, stdout=out, stderr=out)
    try:
        _wait_worker(proc, log)
        yield
    finally:
        _stop([proc])


@pytest.fixture(scope="session")
def fake_camera(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """video_01.mp4 (faces in every frame) as Motion JPEG, Chromium's fake webcam input."""
    import cv2

    path = tmp_path_factory.mktemp("camera") / "video_01.mjpeg"
    capture = cv2.VideoCapture(str(MEDIA / "video_01.mp4"))
    with path.open("wb") as out:
        while True:
            ok, image = capture.read()
            if not ok:
                break
            encoded, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])
            assert encoded
            out.write(data.tobytes())
    capture.release()
    assert path.stat().st_size > 0
    return path


# Module scope: Playwright's sync API runs an event loop in the main thread
# while it is open, which would break every later asyncio test of the session.
@pytest.fixture(scope="module")
def browser(fake_camera: Path) -> Iterator[object]:
    """Headless Chromium whose webcam plays the real video."""
    if not CHROMIUM.exists():
        pytest.skip("Chromium (/usr/bin/chromium) is not installed")
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=[
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--use-fake-device-for-media-stream",
                "--use-fake-ui-for-media-stream",
                f"--use-file-for-fake-video-capture={fake_camera}",
            ],
        )
        yield chromium
        chromium.close()
