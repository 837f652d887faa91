"""``classpulse up`` as a newcomer runs it: a subprocess on the embedded default."""

from __future__ import annotations

import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import psutil
import pytest
from sqlalchemy import text

from classpulse.embedded import EmbeddedPostgres, answers
from shared.db.engine import make_sync_engine

START_TIMEOUT = 60.0
CLASSPULSE = [sys.executable, "-c", "from classpulse.cli import main; main()"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def up_env(**extra: str) -> dict[str, str]:
    """The environment without configured servers: ``up`` must embed its own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLASSPULSE_")}
    return {**env, "PYTHONUNBUFFERED": "1", **extra}


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


def _read_lines(stream: object, lines: queue.Queue[str]) -> None:
    for line in stream:  # type: ignore[attr-defined]
        lines.put(line)


def _wait_for(lines: queue.Queue[str], seen: list[str], marker: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            seen.append(lines.get(timeout=0.5))
        except queue.Empty:
            continue
        if marker in seen[-1]:
            return
    raise AssertionError(f"no {marker!r} within {timeout}s; output:\n{''.join(seen)}")


def _tree(pid: int) -> list[psutil.Process]:
    process = psutil.Process(pid)
    return [process, *process.children(recursive=True)]


def _gone(process: psutil.Process) -> bool:
    try:
        return process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@pytest.mark.slow
def test_up_starts_answers_health_checks_and_stops_leaving_nothing(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    ports = {name: free_port() for name in ("ingest", "analytics", "postgres", "redis")}
    proc = subprocess.Popen(
        [
            *CLASSPULSE, "up",
            "--data-dir", str(data_dir),
            "--ingest-port", str(ports["ingest"]),
            "--analytics-port", str(ports["analytics"]),
            "--postgres-port", str(ports["postgres"]),
            "--redis-port", str(ports["redis"]),
        ],
        env=up_env(CLASSPULSE_TOKEN_SECRET="test-secret-" + "x" * 20),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=_read_lines, args=(proc.stdout, lines), daemon=True).start()
    seen: list[str] = []
    try:
        _wait_for(lines, seen, "logs:", START_TIMEOUT)
        output = "".join(seen)
        started = dict(re.findall(r"(ingest|analytics) API:\s+(http://\S+)", output))
        skipped = set(re.findall(r"skipped (ingest|analytics):", output))
        assert set(started) | skipped == {"ingest", "analytics"}, output
        for name, url in started.items():
            assert url == f"http://127.0.0.1:{ports[name]}"
            response = httpx.get(f"{url}/healthz", timeout=5)
            assert response.status_code == 200
            assert response.json() == {"status": "ok"}
        assert f"127.0.0.1:{ports['postgres']}/classpulse" in output
        assert f"redis://127.0.0.1:{ports['redis']}" in output
        assert answers(ports["postgres"])
        assert answers(ports["redis"])

        # Everything `up` runs: its own tree, plus the postmaster pg_ctl detached.
        postmaster = int((data_dir / "postgres/data/postmaster.pid").read_text().split()[0])
        processes = _tree(proc.pid) + _tree(postmaster)
        commands = " ".join(" ".join(p.cmdline()) for p in processes)
        assert "redis-server" in commands
        for name in started:
            assert f"services.{name}.app:create_app" in commands
        if "skipped inference workers" not in output:
            assert "celery" in commands
            assert (data_dir / "logs" / "worker1.log").exists()
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=45)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    assert proc.returncode == 0, "".join(seen)
    leftovers = [p for p in processes if not _gone(p)]
    assert leftovers == [], [p.cmdline() for p in leftovers]
    assert not any(answers(port) for port in ports.values())
    for name in started:
        assert (data_dir / "logs" / f"{name}.log").stat().st_size > 0

    # The data stays for the next `up`: the migrated schema is still there.
    postgres = EmbeddedPostgres(data_dir / "postgres", free_port())
    engine = make_sync_engine(postgres.start())
    try:
        with engine.connect() as conn:
            assert conn.scalar(text("SELECT version_num FROM alembic_version"))
    finally:
        engine.dispose()
        postgres.stop()
