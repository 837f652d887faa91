"""Child processes of ``classpulse up``: start, log, health-check, stop.

Each child runs in a session of its own, so a Ctrl-C in the terminal reaches
only ``up``, which then stops the children in order. Output goes to a log
file and is echoed with the service's name in front.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO

import httpx

from classpulse.embedded import PRIVATE_UMASK, private_dir
from shared.errors import ClassPulseError


class StartupFailed(ClassPulseError):
    """A service of ``up`` died or never became healthy; the message has its log tail."""

    code = "startup_failed"


class Child:
    """One supervised service process (and the process group it leads)."""

    def __init__(self, name: str, command: list[str], env: dict[str, str], log_path: Path) -> None:
        self.name = name
        self.command = command
        self.env = env
        self.log_path = log_path
        private_dir(log_path.parent)
        self._spawn()

    def _spawn(self) -> None:
        # Logs hold lesson and student ids: the owner's alone, as is what the child writes.
        fd = os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.fchmod(fd, 0o600)
        self._log = os.fdopen(fd, "ab")
        try:
            self.process = subprocess.Popen(
                self.command,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                umask=PRIVATE_UMASK,
            )
        except BaseException:
            self._log.close()
            raise
        self.started_at = time.monotonic()
        assert self.process.stdout is not None
        threading.Thread(
            target=self._copy_output,
            args=(self.process.stdout, self._log),
            name=f"log-{self.name}",
            daemon=True,
        ).start()

    def restart(self) -> None:
        """Start the command again once the process has exited.

        What is left of the old group goes first: a killed Celery main process
        leaves its pool behind, whose tasks the broker gives to the new worker.
        """
        self.signal(signal.SIGKILL)
        if self.alive:
            self.process.kill()
            self.process.wait(timeout=5)
        self._spawn()

    def exit_description(self) -> str:
        """How the process ended: its exit code, or the signal that killed it."""
        code = self.process.returncode
        if code is not None and code < 0:
            return f"was killed by {signal.Signals(-code).name}"
        return f"exited with code {code}"

    def _copy_output(self, stdout: IO[bytes], log_file: IO[bytes]) -> None:
        prefix = f"{self.name:>10} | "
        with log_file as log:
            for line in stdout:
                log.write(line)
                log.flush()
                _echo(sys.stdout, prefix + line.decode(errors="replace").rstrip("\n"))

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def signal(self, sig: signal.Signals) -> None:
        """Send ``sig`` to the child's whole group (Celery's pool, uvicorn's workers)."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, sig)

    def wait_healthy(self, url: str, timeout: float) -> None:
        """Poll ``url`` until it answers 200; fail naming the service if it dies or times out."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive:
                raise StartupFailed(
                    f"{self.name} exited with code {self.process.returncode} before answering "
                    f"{url}; last lines of {self.log_path}:\n{self.log_tail()}"
                )
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url, timeout=2).status_code == 200:
                    return
            time.sleep(0.2)
        raise StartupFailed(
            f"{self.name} did not answer {url} within {timeout:.0f}s; "
            f"last lines of {self.log_path}:\n{self.log_tail()}"
        )


def stop_all(children: list[Child], grace: float = 15.0) -> None:
    """SIGTERM every child, wait up to ``grace`` seconds, then SIGKILL what is left of its group.

    SIGTERM goes to the leader only: Celery's main process then stops its pool
    itself (a warm shutdown); pool processes killed first would look like lost workers.
    """
    for child in children:
        if child.alive:
            child.process.terminate()
    deadline = time.monotonic() + grace
    for child in children:
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.process.wait(timeout=max(0.1, deadline - time.monotonic()))
    for child in children:
        # Also kills pool processes a parent left behind when it exited first.
        child.signal(signal.SIGKILL)
        if child.alive:
            child.process.wait(timeout=5)


_echo_lock = threading.Lock()


def _echo(stream: IO[str], line: str) -> None:
    with _echo_lock, contextlib.suppress(ValueError, OSError):
        stream.write(line + "\n")
        stream.flush()
