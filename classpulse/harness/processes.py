"""The services as child processes: their command lines, start, readiness, stop.

``classpulse up`` (and the compose file, which a test holds to it) takes its
commands from here; tests and benchmarks also start, wait for and stop the
services here, so that a new option or a change of readiness is made once.
``up`` supervises its children itself (:mod:`classpulse.processes`).
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

from classpulse.harness.ports import HOST, free_port
from shared.schemas import FRAME_QUEUE

INGEST_APP = "services.ingest.app:create_app"
ANALYTICS_APP = "services.analytics.app:create_app"
#: The two APIs by service name.
API_APPS = {"ingest": INGEST_APP, "analytics": ANALYTICS_APP}
CELERY_APP = "services.inference.celery_app:app"

#: Answers 200 while the process serves; what ``up`` and the compose file check.
HEALTH_PATH = "/healthz"
#: Answers 200 once the API's stores answer too: when a test may send it work.
READY_PATH = "/readyz"
#: Celery logs ``<name>@<host> ready.`` (at INFO) once the worker consumes.
WORKER_READY_LINE = b" ready."
#: Worker options for one worker alone on its broker (tests, benchmarks): no
#: heartbeats, gossip or start-up sync with other nodes, so it is ready sooner.
ALONE = ("--without-heartbeat", "--without-gossip", "--without-mingle")

#: Seconds a service may take to start on a loaded two-core machine (a worker loads its models).
START_TIMEOUT = 90.0
#: Seconds between SIGTERM and SIGKILL: a worker's warm shutdown first finishes
#: the frame it holds, on a machine the test or benchmark keeps busy.
STOP_GRACE = 30.0
#: How much of a log an error shows.
LOG_TAIL_CHARS = 3000


class ServiceDidNotStart(RuntimeError):
    """A service exited or never became ready; the message has the end of its log."""


def api_command(
    app: str,
    port: int,
    *,
    host: str = HOST,
    access_log: bool = False,
    log_level: str | None = None,
    extra: Sequence[str] = (),
    python: str = sys.executable,
) -> list[str]:
    """uvicorn serving the API factory ``app`` (``module:function``) on ``host:port``;
    uvicorn's defaults for what is None.

    No access log by default: every frame is a request; errors and start-up are
    still logged. ``python`` is the interpreter: the compose file's image calls
    it ``python``.
    """
    command = [python, "-m", "uvicorn", app, "--factory", "--host", host, "--port", str(port)]
    if not access_log:
        command.append("--no-access-log")
    if log_level is not None:
        command += ["--log-level", log_level]
    return [*command, *extra]


def worker_command(
    name: str,
    *,
    app: str = CELERY_APP,
    queue: str = FRAME_QUEUE,
    loglevel: str = "info",
    pool: str | None = None,
    concurrency: int | None = None,
    prefetch: int | None = None,
    beat_schedule: Path | None = None,
    extra: Sequence[str] = (),
    python: str = sys.executable,
) -> list[str]:
    """A Celery worker named ``name`` (``-n``) on ``queue``; Celery's defaults for what is None.

    With ``beat_schedule`` it also runs the periodic tasks (beat), keeping their
    schedule in that file: one worker of a deployment does.
    """
    command = [python, "-m", "celery", "-A", app, "worker", "-Q", queue, "-l", loglevel]
    if pool is not None:
        command += ["--pool", pool]
    if concurrency is not None:
        command += ["--concurrency", str(concurrency)]
    if prefetch is not None:
        command += ["--prefetch-multiplier", str(prefetch)]
    command += ["-n", name]
    if beat_schedule is not None:
        command += ["-B", "-s", str(beat_schedule)]
    return [*command, *extra]


def beat_command(schedule: Path, *, python: str = sys.executable) -> list[str]:
    """A stand-alone Celery beat (the periodic tasks), its schedule kept in ``schedule``."""
    return [python, "-m", "celery", "-A", CELERY_APP, "beat", "-l", "info", "-s", str(schedule)]


def spawn(
    command: list[str], env: Mapping[str, str], log: Path, cwd: Path | None = None
) -> subprocess.Popen[bytes]:
    """Start ``command`` with its output appended to ``log``; ``cwd`` None keeps ours."""
    with log.open("ab") as out:
        return subprocess.Popen(command, cwd=cwd, env=env, stdout=out, stderr=out)


def stop(process: subprocess.Popen[bytes], grace: float = STOP_GRACE) -> None:
    """SIGTERM, then SIGKILL if it has not exited within ``grace`` seconds."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def _log_tail(log: Path) -> str:
    return log.read_text(errors="replace")[-LOG_TAIL_CHARS:] if log.exists() else ""


def _wait(
    done: Callable[[], bool],
    process: subprocess.Popen[bytes],
    log: Path,
    timeout: float,
    what: str,
) -> None:
    """Poll ``done`` until true; fail early, with the log's end, if the process exits."""
    deadline = time.monotonic() + timeout
    while not done():
        if process.poll() is not None:
            raise ServiceDidNotStart(
                f"{what}: exited with {process.returncode}; end of {log}:\n{_log_tail(log)}"
            )
        if time.monotonic() > deadline:
            raise ServiceDidNotStart(
                f"{what} within {timeout:.0f}s; end of {log}:\n{_log_tail(log)}"
            )
        time.sleep(0.2)


def _answers_200(url: str) -> bool:
    with contextlib.suppress(httpx.HTTPError):
        return httpx.get(url, timeout=2).status_code == 200
    return False


def wait_ready(
    url: str, process: subprocess.Popen[bytes], log: Path, timeout: float = START_TIMEOUT
) -> None:
    """Wait until GET ``url`` answers 200."""
    _wait(lambda: _answers_200(url), process, log, timeout, f"{url} did not answer 200")


def wait_for_log_line(
    log: Path,
    line: bytes,
    process: subprocess.Popen[bytes],
    timeout: float = START_TIMEOUT,
    *,
    offset: int = 0,
) -> None:
    """Wait until ``line`` appears in ``log`` after byte ``offset`` (where this run began
    to write, when the log is shared with an earlier process)."""

    def written() -> bool:
        with log.open("rb") as read:
            read.seek(offset)
            return line in read.read()

    _wait(written, process, log, timeout, f"{line!r} not logged in {log}")


@dataclass(frozen=True)
class RunningApi:
    """An API that answers: its base URL, and its process (for CPU or memory figures)."""

    url: str
    process: subprocess.Popen[bytes]


@contextlib.contextmanager
def api_process(
    app: str,
    env: Mapping[str, str],
    log: Path,
    *,
    cwd: Path | None = None,
    access_log: bool = False,
    log_level: str | None = None,
    extra: Sequence[str] = (),
    ready_path: str = READY_PATH,
    timeout: float = START_TIMEOUT,
) -> Iterator[RunningApi]:
    """The API ``app`` served by uvicorn on a free port (options as :func:`api_command`),
    once ``ready_path`` answers 200; stopped when the block ends."""
    port = free_port()
    command = api_command(app, port, access_log=access_log, log_level=log_level, extra=extra)
    process = spawn(command, env, log, cwd)
    try:
        url = f"http://{HOST}:{port}"
        wait_ready(url + ready_path, process, log, timeout)
        yield RunningApi(url, process)
    finally:
        stop(process)


def start_worker(
    name: str,
    env: Mapping[str, str],
    log: Path,
    *,
    app: str = CELERY_APP,
    cwd: Path | None = None,
    pool: str | None = "solo",
    concurrency: int | None = None,
    beat_schedule: Path | None = None,
    timeout: float = START_TIMEOUT,
) -> subprocess.Popen[bytes]:
    """A worker ``name@host`` of ``app`` (the inference worker) alone on the frames queue,
    once it consumes.

    Its readiness is read from what it appends to ``log``, so a log shared with
    an earlier worker does not count.
    """
    command = worker_command(
        f"{name}@%h",
        app=app,
        pool=pool,
        concurrency=concurrency,
        beat_schedule=beat_schedule,
        extra=ALONE,
    )
    offset = log.stat().st_size if log.exists() else 0
    process = spawn(command, env, log, cwd)
    try:
        wait_for_log_line(log, WORKER_READY_LINE, process, timeout, offset=offset)
    except BaseException:
        stop(process)
        raise
    return process


def rss_mib(pid: int) -> float:
    """Resident memory of process ``pid`` in MiB (NaN where /proc does not say)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")
