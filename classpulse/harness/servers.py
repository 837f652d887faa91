"""Servers of a test or benchmark's own, never the machine's: a throwaway Redis, and
ASGI apps served by uvicorn in a thread of this process."""

from __future__ import annotations

import contextlib
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import redis
import uvicorn
from starlette.types import ASGIApp

from classpulse.harness.ports import HOST, free_port


class ThreadedServer:
    """An ASGI app served by uvicorn in a daemon thread, on ``port`` or a free one.

    In-process, so that a test reaches the app over real HTTP and WebSockets while
    its settings, database and fakes stay those of the test.
    """

    def __init__(self, app: ASGIApp, port: int | None = None) -> None:
        self.port = free_port() if port is None else port
        self.url = f"http://{HOST}:{self.port}"
        self._server = uvicorn.Server(
            uvicorn.Config(app, host=HOST, port=self.port, log_level="warning")
        )
        self._thread: threading.Thread | None = None

    def start(self, timeout: float = 15) -> str:
        """Serve, and return the URL once uvicorn has started (lifespan done, listening)."""
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            # A failed start-up (lifespan error, port taken) ends the thread early.
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the server on port {self.port} did not start")
            time.sleep(0.01)
        return self.url

    def stop(self, timeout: float = 10) -> None:
        """Ask uvicorn to shut down (as on SIGTERM) and wait for its thread."""
        if self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=timeout)
            self._thread = None


@contextlib.contextmanager
def serving(app: ASGIApp, port: int | None = None) -> Iterator[str]:
    """``app`` served for the duration of the block; yields its URL."""
    server = ThreadedServer(app, port)
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


class OwnRedis:
    """A redis-server on a free port, persistence off as in production (it holds frame
    bytes); stop and start it at will. Runs ``redis-server`` from ``PATH``."""

    def __init__(self, directory: Path | None = None) -> None:
        #: Where Redis would write files (it writes none); by default its working directory.
        self.directory = directory
        self.port = free_port()
        self.url = f"redis://{HOST}:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 10) -> None:
        """Start the server and wait until it answers PING."""
        command = [
            "redis-server", "--port", str(self.port), "--bind", HOST,
            "--appendonly", "no", "--save", "",
        ]  # fmt: skip
        if self.directory is not None:
            command += ["--dir", str(self.directory)]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
        client = redis.Redis.from_url(self.url)
        deadline = time.monotonic() + timeout
        try:
            while True:
                try:
                    client.ping()
                    return
                except redis.ConnectionError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
        finally:
            client.close()

    def stop(self) -> None:
        """A clean shutdown (SIGTERM): Redis exits and what it held is gone."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
