"""``classpulse up`` as a newcomer runs it: a subprocess on the embedded default."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import psutil
import pytest
from sqlalchemy import text

from classpulse.embedded import answers
from classpulse.harness.ports import free_port
from classpulse.processes import Child, stop_all
from shared.db.engine import make_sync_engine

START_TIMEOUT = 60.0
CLASSPULSE = [sys.executable, "-c", "from classpulse.cli import main; main()"]
#: Every port ``up`` takes (``--<name>-port``): a test gives each a free one, so that
#: runs of ``up`` in tests side by side (make test's processes) never meet.
PORTS = ("ingest", "analytics", "postgres", "redis", "worker-metrics")


def up_env(**extra: str) -> dict[str, str]:
    """The environment without configured servers: ``up`` must embed its own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLASSPULSE_")}
    return {**env, "PYTHONUNBUFFERED": "1", **extra}


def _mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def test_a_service_log_and_what_the_service_writes_are_its_owners_alone(tmp_path: Path) -> None:
    """Logs hold ids (and once held a token); 0600 in a 0700 directory, whatever the umask."""
    logs, made = tmp_path / "logs", tmp_path / "written-by-the-service"
    write = "import sys; open(sys.argv[1], 'w').write('x'); print('written')"
    child = Child("svc", [sys.executable, "-c", write, str(made)], dict(os.environ), logs / "s.log")
    try:
        assert child.process.wait(timeout=30) == 0
        deadline = time.monotonic() + 10
        while "written" not in child.log_tail() and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop_all([child])
    assert "written" in child.log_tail()
    assert (_mode(logs), _mode(logs / "s.log"), _mode(made)) == (0o700, 0o600, 0o600)


def test_up_refuses_to_start_without_a_token_secret(tmp_path: Path) -> None:
    done = subprocess.run(
        [*CLASSPULSE, "up", "--data-dir", str(tmp_path / "data")],
        env=up_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "CLASSPULSE_TOKEN_SECRET" in done.stderr
    assert not (tmp_path / "data" / "postgres").exists()  # nothing was started


def test_up_names_a_bad_setting(tmp_path: Path) -> None:
    done = subprocess.run(
        [*CLASSPULSE, "up", "--demo", "--data-dir", str(tmp_path / "data")],
        env=up_env(CLASSPULSE_MIN_GROUP_SIZE="abc"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "CLASSPULSE_MIN_GROUP_SIZE" in done.stderr


def test_up_names_a_bad_live_stream_setting_before_starting_anything(tmp_path: Path) -> None:
    done = subprocess.run(
        [*CLASSPULSE, "up", "--demo", "--data-dir", str(tmp_path / "data")],
        env=up_env(CLASSPULSE_LIVE_MAX_SECONDS="0"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "CLASSPULSE_LIVE_MAX_SECONDS" in done.stderr
    assert not (tmp_path / "data").exists()


def test_up_explains_an_unreachable_database_without_its_password(tmp_path: Path) -> None:
    closed = free_port()  # bound and released: nothing listens there
    done = subprocess.run(
        [*CLASSPULSE, "up", "--data-dir", str(tmp_path / "data")],
        env=up_env(
            CLASSPULSE_DATABASE_URL=f"postgresql://cp:hunter2@127.0.0.1:{closed}/classpulse",
            CLASSPULSE_REDIS_URL=f"redis://127.0.0.1:{closed}/0",
            CLASSPULSE_TOKEN_SECRET="s" * 32,
        ),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "cannot reach PostgreSQL" in done.stderr
    assert "CLASSPULSE_DATABASE_URL" in done.stderr
    assert "hunter2" not in done.stdout + done.stderr


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class UpRun:
    """One ``classpulse up`` subprocess on the embedded default, its output collected."""

    def __init__(
        self,
        data_dir: Path,
        ports: dict[str, int],
        *,
        sigint_ignored: bool = False,
        demo: bool = False,
    ) -> None:
        self.data_dir = data_dir
        command = [*CLASSPULSE, "up", "--data-dir", str(data_dir), *(["--demo"] if demo else [])]
        for name, port in ports.items():
            command += [f"--{name}-port", str(port)]
        self.proc = subprocess.Popen(
            command,
            env=up_env(CLASSPULSE_TOKEN_SECRET="test-secret-" + "x" * 20),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            # As a shell starts a background job (`classpulse up &`): SIGINT ignored.
            preexec_fn=_ignore_sigint if sigint_ignored else None,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)

    @property
    def output(self) -> str:
        return "".join(self.seen)

    def collect(self) -> str:
        """Take in what ``up`` printed so far; return all of it."""
        while True:
            try:
                self.seen.append(self.lines.get_nowait())
            except queue.Empty:
                return self.output

    def wait_until_up(self, timeout: float = START_TIMEOUT) -> str:
        """Wait for the summary ``up`` prints once everything answers; return the output."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                self.seen.append(self.lines.get(timeout=0.5))
            except queue.Empty:
                if self.proc.poll() is not None:
                    break
                continue
            if "logs:" in self.seen[-1]:
                return self.output
        raise AssertionError(f"`up` was not up within {timeout}s; output:\n{self.output}")

    def processes(self) -> list[psutil.Process]:
        """Everything `up` runs: its own tree, plus the postmaster that pg_ctl detached."""
        pid_file = self.data_dir / "postgres/data/postmaster.pid"
        postmaster = int(pid_file.read_text().split()[0])
        return _tree(self.proc.pid) + _tree(postmaster)

    def stop(self, sig: signal.Signals) -> None:
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=45)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise


def _tree(pid: int) -> list[psutil.Process]:
    process = psutil.Process(pid)
    return [process, *process.children(recursive=True)]


def _gone(process: psutil.Process) -> bool:
    try:
        return process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _assert_nothing_left(processes: list[psutil.Process], ports: dict[str, int]) -> None:
    # Children of a stopped server may take a moment to be reaped.
    psutil.wait_procs(processes, timeout=10)
    leftovers = [p for p in processes if not _gone(p)]
    assert leftovers == [], [p.cmdline() for p in leftovers]
    assert not any(answers(port) for port in ports.values())


@pytest.mark.slow
def test_up_starts_answers_health_checks_and_stops_leaving_nothing(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    ports = {name: free_port() for name in PORTS}
    # Started as a background job, SIGINT (Ctrl-C) must still stop it.
    first = UpRun(data_dir, ports, sigint_ignored=True)
    try:
        output = first.wait_until_up()
        started = dict(re.findall(r"(ingest|analytics) API:\s+(http://\S+)", output))
        skipped = set(re.findall(r"skipped (ingest|analytics):", output))
        assert set(started) | skipped == {"ingest", "analytics"}, output
        for name, url in started.items():
            assert url == f"http://127.0.0.1:{ports[name]}"
            response = httpx.get(f"{url}/healthz", timeout=5)
            assert response.status_code == 200
            assert response.json() == {"status": "ok"}
        database_url = f"postgresql://postgres@127.0.0.1:{ports['postgres']}/classpulse"
        assert database_url in output
        assert f"redis://127.0.0.1:{ports['redis']}" in output
        assert answers(ports["redis"])

        processes = first.processes()
        commands = " ".join(" ".join(p.cmdline()) for p in processes)
        assert "redis-server" in commands
        for name in started:
            assert f"services.{name}.app:create_app" in commands
        if "skipped inference workers" not in output:
            assert "celery" in commands
            assert (data_dir / "logs" / "worker1.log").exists()

        # A second `up` on the same data directory refuses instead of corrupting it.
        second = subprocess.run(
            [*CLASSPULSE, "up", "--data-dir", str(data_dir)],
            env=up_env(CLASSPULSE_TOKEN_SECRET="s" * 32),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert second.returncode == 2
        assert "another `classpulse up` is running" in second.stderr

        engine = make_sync_engine(database_url)
        with engine.begin() as conn:
            conn.execute(
                text("INSERT INTO organisations (id, name) VALUES (gen_random_uuid(), 'kept')")
            )
        engine.dispose()
    finally:
        first.stop(signal.SIGINT)
    assert first.proc.returncode == 0, first.output
    _assert_nothing_left(processes, ports)
    for name in started:
        assert (data_dir / "logs" / f"{name}.log").stat().st_size > 0

    # The next `up` finds the data again, and SIGTERM stops it as cleanly.
    again = UpRun(data_dir, ports)
    try:
        output = again.wait_until_up()
        processes = again.processes()
        assert database_url in output  # the same port again
        engine = make_sync_engine(database_url)
        with engine.connect() as conn:
            assert conn.scalar(text("SELECT name FROM organisations")) == "kept"
        engine.dispose()
    finally:
        again.stop(signal.SIGTERM)
    assert again.proc.returncode == 0, again.output
    _assert_nothing_left(processes, ports)


def _classpulse(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """A CLI command with no CLASSPULSE_DATABASE_URL, only the data directory of `up`."""
    return subprocess.run(
        [*CLASSPULSE, *args],
        env=up_env(CLASSPULSE_DATA_DIR=str(data_dir)),
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.slow
def test_commands_find_the_embedded_database_of_a_running_up(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    # Nothing runs there yet: the error says where it looked and what to do.
    alone = _classpulse(data_dir, "org", "create", "Nobody")
    assert alone.returncode == 2
    assert "no embedded PostgreSQL is running in" in alone.stderr
    assert str(data_dir / "postgres") in alone.stderr
    assert "classpulse up" in alone.stderr

    # Postgres on a port other than its default: found through the data directory.
    ports = {name: free_port() for name in PORTS}
    run = UpRun(data_dir, ports)
    try:
        run.wait_until_up()
        processes = run.processes()
        created = _classpulse(data_dir, "org", "create", "Found School")
        assert created.returncode == 0, created.stderr
        org_id = re.search(r"organisation: (\S+)", created.stdout)
        assert org_id is not None, created.stdout
        listed = _classpulse(data_dir, "keys", "list", "--org", org_id.group(1))
        assert listed.returncode == 0, listed.stderr
        assert "lms" in listed.stdout
        checked = _classpulse(data_dir, "migrate", "--check")
        assert checked.returncode == 0, checked.stdout + checked.stderr
        engine = make_sync_engine(f"postgresql://postgres@127.0.0.1:{ports['postgres']}/classpulse")
        with engine.connect() as conn:
            assert conn.scalar(text("SELECT name FROM organisations")) == "Found School"
        engine.dispose()
    finally:
        run.stop(signal.SIGTERM)
    _assert_nothing_left(processes, ports)
    # Stopped: no stale pid file is taken for a running server.
    after = _classpulse(data_dir, "org", "create", "Too Late")
    assert after.returncode == 2
    assert "no embedded PostgreSQL is running in" in after.stderr


def _service(run: UpRun, marker: str) -> psutil.Process | None:
    """The direct child of ``up`` whose command line holds ``marker``, if one runs."""
    for child in psutil.Process(run.proc.pid).children():
        with contextlib.suppress(psutil.Error):
            if marker in " ".join(child.cmdline()) and child.status() != psutil.STATUS_ZOMBIE:
                return child
    return None


def _pid(run: UpRun, marker: str) -> int | None:
    found = _service(run, marker)
    return None if found is None else found.pid


def _wait(condition: Callable[[], bool], what: str, run: UpRun, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if run.proc.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:g}s; output:\n{run.collect()}")
        time.sleep(0.5)


def _answers_200(url: str) -> bool:
    try:
        return httpx.get(url, timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.mark.slow
def test_up_restarts_a_killed_worker_and_redis_and_accounts_for_every_frame(
    tmp_path: Path,
) -> None:
    """kill -9 of the worker's main process, then of the embedded Redis, during a demo lesson."""
    data_dir = tmp_path / "data"
    ports = {name: free_port() for name in PORTS}
    apis = [f"http://127.0.0.1:{ports[name]}" for name in ("ingest", "analytics")]
    engine = make_sync_engine(f"postgresql://postgres@127.0.0.1:{ports['postgres']}/classpulse")

    def frames(where: str, **params: object) -> int:
        with engine.connect() as conn:
            return int(conn.scalar(text(f"SELECT count(*) FROM frames WHERE {where}"), params))

    run = UpRun(data_dir, ports, demo=True)
    try:
        run.wait_until_up()
        _wait(lambda: frames("status = 'done'") >= 2, "demo frames processed", run)

        # The worker's main process dies: the APIs keep answering, a new worker takes over.
        worker = _service(run, "celery")
        assert worker is not None
        worker.kill()
        killed = dt.datetime.now(dt.UTC)
        assert all(_answers_200(f"{api}/healthz") for api in apis)
        _wait(lambda: "up: worker1 was killed by SIGKILL" in run.collect(), "restart line", run)
        _wait(lambda: _pid(run, "celery") not in (None, worker.pid), "a new worker", run)
        _wait(
            lambda: frames("status = 'done' AND received_at > :t", t=killed) >= 2,
            "frames processed by the new worker",
            run,
        )
        assert run.proc.poll() is None
        assert all(_answers_200(f"{api}/healthz") for api in apis)

        # Frames wait in Redis (the worker paused), then Redis dies and starts empty.
        worker = _service(run, "celery")
        assert worker is not None
        os.killpg(worker.pid, signal.SIGSTOP)
        try:
            paused = dt.datetime.now(dt.UTC)
            _wait(
                lambda: frames("status = 'queued' AND received_at > :t", t=paused) >= 2,
                "frames queued while the worker is paused",
                run,
            )
            redis = _service(run, "redis-server")
            assert redis is not None
            redis.kill()
            redis_killed = dt.datetime.now(dt.UTC)
            _wait(lambda: "up: redis started again" in run.collect(), "Redis restarted", run)
        finally:
            os.killpg(worker.pid, signal.SIGCONT)
        assert _pid(run, "redis-server") not in (None, redis.pid)
        for api in apis:
            _wait(lambda api=api: _answers_200(f"{api}/readyz"), f"{api}/readyz", run)
        # Every frame received before the restart ends, long before its bytes' TTL ...
        _wait(
            lambda: frames("status = 'queued' AND received_at < :t", t=redis_killed) == 0,
            "frames of the lost Redis accounted for",
            run,
            timeout=90,
        )
        assert frames("status = 'expired' AND received_at > :t", t=paused) >= 2
        assert "Task classpulse.expire_lost_frames" in run.collect()  # not a TTL later
        # ... and frames sent after it are processed.
        _wait(
            lambda: frames("status = 'done' AND received_at > :t", t=redis_killed) >= 2,
            "frames processed after the Redis restart",
            run,
        )
        processes = run.processes()
    finally:
        engine.dispose()
        run.stop(signal.SIGTERM)
    assert run.proc.returncode == 0, run.output
    _assert_nothing_left(processes, ports)
