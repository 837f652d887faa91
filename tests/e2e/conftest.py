"""The whole system as separate processes: ingest, analytics (uvicorn) and a Celery worker.

They run on the test session's PostgreSQL database and Redis database number,
exactly as deployed (no in-process app, no eager Celery), and headless Chromium
drives the pages.
"""

from __future__ import annotations

import dataclasses
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis as redis_lib

from classpulse.harness.processes import ANALYTICS_APP, INGEST_APP, api_process, start_worker, stop
from tests.conftest import MEDIA, ROOT, empty_but_the_claim

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = ROOT / "test-artifacts"


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
    logs = {name: logs_dir / f"{name}.log" for name in ("ingest", "analytics")}
    with (
        api_process(INGEST_APP, env, logs["ingest"], log_level="warning") as ingest,
        api_process(ANALYTICS_APP, env, logs["analytics"], log_level="warning") as analytics,
    ):
        yield Stack(ingest.url, analytics.url, pg_url, env, logs)


@pytest.fixture(scope="module")
def worker(stack: Stack) -> Iterator[None]:
    """One real Celery worker process consuming the frames queue of the stack."""
    log = stack.logs["worker"] = stack.logs["ingest"].with_name("worker.log")
    process = start_worker(f"e2e-{os.getpid()}", stack.env, log, pool=None, concurrency=1)
    try:
        yield
    finally:
        stop(process)


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
