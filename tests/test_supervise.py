"""The supervisor of ``classpulse up`` on real child processes."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import pytest

from classpulse.processes import Child, StartupFailed, stop_all
from classpulse.supervise import Supervisor


def _child(tmp_path: Path, name: str, code: str) -> Child:
    return Child(name, [sys.executable, "-c", code], dict(os.environ), tmp_path / f"{name}.log")


def _check_until(supervisor: Supervisor, done: object, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not done():  # type: ignore[operator]
        assert time.monotonic() < deadline, "not within the timeout"
        supervisor.check()
        time.sleep(0.05)


def test_a_killed_child_is_started_again_and_said_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    child = _child(tmp_path, "svc", "import time; print('serving', flush=True); time.sleep(60)")
    recovered: list[str] = []
    supervisor = Supervisor([child], {"svc": lambda: recovered.append("svc")}, first_backoff=0.1)
    try:
        first = child.process.pid
        os.kill(first, signal.SIGKILL)
        _check_until(supervisor, lambda: child.alive and child.process.pid != first)
    finally:
        stop_all([child])
    assert recovered == ["svc"]
    said = capsys.readouterr().err
    assert "up: svc was killed by SIGKILL; restarting it in 0.1s" in said
    assert "up: svc started again" in said


def test_a_child_that_keeps_dying_at_start_is_given_up_with_its_log(tmp_path: Path) -> None:
    child = _child(tmp_path, "broken", "import sys; print('no model file'); sys.exit(3)")
    supervisor = Supervisor([child], first_backoff=0.05, max_backoff=0.2, max_fast_crashes=3)
    starts = []

    def supervise() -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            starts.append(child.process.pid)
            supervisor.check()
            time.sleep(0.02)

    try:
        with pytest.raises(StartupFailed) as failed:
            supervise()
    finally:
        stop_all([child])
    message = failed.value.message
    assert "broken exited with code 3" in message
    assert "died 4 times in a row" in message
    assert "giving up" in message
    assert "no model file" in message
    assert len(set(starts)) == 4  # the first start and three restarts


def test_a_child_that_ran_long_enough_starts_its_count_again(tmp_path: Path) -> None:
    child = _child(tmp_path, "svc", "import time; time.sleep(60)")
    supervisor = Supervisor([child], first_backoff=0.05, max_fast_crashes=1, stable_after=0.5)
    try:
        for _ in range(3):  # more deaths than allowed in a row, each after a stable run
            time.sleep(0.6)
            pid = child.process.pid
            os.kill(pid, signal.SIGKILL)
            _check_until(supervisor, lambda pid=pid: child.alive and child.process.pid != pid)  # type: ignore[misc]
    finally:
        stop_all([child])


def test_a_killed_celery_like_leader_leaves_no_pool_behind(tmp_path: Path) -> None:
    """A worker's main process killed: its pool (same group) goes before the new start."""
    code = (
        "import subprocess, sys, time; "
        "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
        "print(p.pid, flush=True); time.sleep(60)"
    )
    child = _child(tmp_path, "worker1", code)
    supervisor = Supervisor([child], first_backoff=0.1)
    try:
        deadline = time.monotonic() + 20
        while not child.log_tail().strip() and time.monotonic() < deadline:
            time.sleep(0.05)
        pool = int(child.log_tail().split()[0])
        leader = child.process.pid
        os.kill(leader, signal.SIGKILL)
        _check_until(supervisor, lambda: child.alive and child.process.pid != leader)
        deadline = time.monotonic() + 10
        while _running(pool) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _running(pool)
    finally:
        stop_all([child])


def _running(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
