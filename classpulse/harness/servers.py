"""Servers of a test or benchmark's own, never the machine's: a throwaway Redis."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import redis

from classpulse.harness.ports import HOST, free_port


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
