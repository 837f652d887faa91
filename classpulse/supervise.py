"""Keeping the services of ``classpulse up`` running.

A service that dies (an API, a worker with its beat, the embedded Redis) is
started again after a pause that doubles with each death in a row, and ``up``
says so in one line. A service that keeps dying soon after its start is not
helped by more restarts: after a few such deaths ``up`` gives up with the end
of its log, and stops everything. Ctrl-C and SIGTERM are held back while a
service is being started, so that a stop never leaves a fresh process behind.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import typer

from classpulse.embedded import EmbeddedRedis
from classpulse.processes import StartupFailed

#: A service that ran this long before it died was not crash-looping: its count starts again.
STABLE_AFTER_SECONDS = 60.0
#: Deaths in a row, each sooner than ``STABLE_AFTER_SECONDS`` after a start, before giving up.
MAX_FAST_CRASHES = 5
#: The pause before a restart: 1, 2, 4 … seconds for deaths in a row, at most the maximum.
FIRST_BACKOFF_SECONDS = 1.0
MAX_BACKOFF_SECONDS = 30.0
#: How often the supervisor looks at its services.
POLL_SECONDS = 0.5
_STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}


class Service(Protocol):
    """What the supervisor needs of a service."""

    @property
    def name(self) -> str: ...

    @property
    def alive(self) -> bool: ...

    def exit_description(self) -> str: ...

    def log_tail(self, lines: int = 30) -> str: ...

    def restart(self) -> object: ...


class RedisService:
    """The embedded Redis as a supervised service."""

    name = "redis"

    def __init__(self, redis: EmbeddedRedis) -> None:
        self.redis = redis

    @property
    def alive(self) -> bool:
        return self.redis.alive

    def exit_description(self) -> str:
        code = None if self.redis.process is None else self.redis.process.returncode
        if code is not None and code < 0:
            return f"was killed by {signal.Signals(-code).name}"
        return f"exited with code {code}"

    def log_tail(self, lines: int = 30) -> str:
        path = self.redis.log_path
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def restart(self) -> str:
        return self.redis.restart()


@dataclass
class _Watch:
    service: Service
    started: float
    #: Deaths in a row, each soon after a start.
    fast_crashes: int = 0
    #: When the dead service is due to start again (monotonic), None while it runs.
    restart_at: float | None = None


@dataclass
class Supervisor:
    """Restarts dead services with backoff; raises ``StartupFailed`` on a crash loop.

    ``after_restart`` maps a service name to what must follow its restart (the
    recovery of what a restarted Redis lost); it runs with the stop signals
    deliverable and its failure is logged, not fatal.
    """

    services: Sequence[Service]
    after_restart: dict[str, Callable[[], None]] = field(default_factory=dict)
    stable_after: float = STABLE_AFTER_SECONDS
    max_fast_crashes: int = MAX_FAST_CRASHES
    first_backoff: float = FIRST_BACKOFF_SECONDS
    max_backoff: float = MAX_BACKOFF_SECONDS
    _watches: list[_Watch] = field(init=False)

    def __post_init__(self) -> None:
        now = time.monotonic()
        self._watches = [_Watch(service, now) for service in self.services]

    def run(self) -> None:
        """Never return; raise ``StartupFailed`` when a service cannot be kept running."""
        while True:
            self.check()
            time.sleep(POLL_SECONDS)

    def check(self) -> None:
        """Look at every service once: note deaths, start those whose pause is over."""
        for watch in self._watches:
            now = time.monotonic()
            if watch.restart_at is None and not watch.service.alive:
                self._died(watch, now, watch.service.exit_description())
            elif watch.restart_at is not None and now >= watch.restart_at:
                self._restart(watch)

    def _died(self, watch: _Watch, now: float, how: str) -> None:
        service = watch.service
        if now - watch.started >= self.stable_after:
            watch.fast_crashes = 0
        watch.fast_crashes += 1
        if watch.fast_crashes > self.max_fast_crashes:
            raise StartupFailed(
                f"{service.name} {how}; it died {watch.fast_crashes} times in a row, each "
                f"within {self.stable_after:.0f}s of its start: giving up. Last lines of its "
                f"log:\n{service.log_tail()}"
            )
        delay = min(self.max_backoff, self.first_backoff * 2 ** (watch.fast_crashes - 1))
        typer.echo(
            f"up: {service.name} {how}; restarting it in {delay:g}s "
            f"(restart {watch.fast_crashes} of at most {self.max_fast_crashes} in a row)",
            err=True,
        )
        watch.restart_at = now + delay

    def _restart(self, watch: _Watch) -> None:
        service = watch.service
        # A Ctrl-C between the start of a process and its being recorded would leave it
        # running after the stop: the signal waits until the restart is over.
        signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
        try:
            service.restart()
        except Exception as exc:
            failed: Exception | None = exc
        else:
            failed = None
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)
        now = time.monotonic()
        watch.started, watch.restart_at = now, None
        if failed is not None:
            self._died(watch, now, f"did not start again ({failed})")
            return
        typer.echo(f"up: {service.name} started again", err=True)
        recover = self.after_restart.get(service.name)
        if recover is not None:
            try:
                recover()
            except Exception as exc:  # the periodic expiry catches up later
                typer.echo(f"up: after restarting {service.name}: {exc}", err=True)
