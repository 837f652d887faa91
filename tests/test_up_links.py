"""The links ``classpulse up --demo`` prints: the first dashboard link is the working one."""

from __future__ import annotations

import queue
import re
import signal
import subprocess
import threading
import time
import urllib.parse
from pathlib import Path

import httpx
import pytest

from classpulse.harness.ports import free_port
from tests.test_up import CLASSPULSE, PORTS, up_env

START_TIMEOUT = 90.0


@pytest.mark.slow
def test_up_demo_prints_the_keyed_dashboard_link_first_and_once(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    ports = {name: free_port() for name in PORTS}
    command = [*CLASSPULSE, "up", "--demo", "--no-workers", "--data-dir", str(data_dir)]
    for name, port in ports.items():
        command += [f"--{name}-port", str(port)]
    proc = subprocess.Popen(
        command, env=up_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    lines: queue.Queue[str] = queue.Queue()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)

    threading.Thread(target=read, daemon=True).start()
    seen: list[str] = []

    def collect(until: str | None, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                seen.append(lines.get(timeout=0.5))
            except queue.Empty:
                if proc.poll() is not None:
                    return
                continue
            if until is not None and until in seen[-1]:
                return

    try:
        collect("logs:", START_TIMEOUT)
        output = "".join(seen)
        assert "logs:" in output, output
        analytics = f"http://127.0.0.1:{ports['analytics']}"
        dashboard_lines = [line for line in seen if "dashboard" in line.lower() and "http" in line]
        assert dashboard_lines, output
        first = re.search(r"http://\S+", dashboard_lines[0])
        assert first is not None
        link = first.group(0)
        # The first dashboard link printed opens the demo lesson: key and lesson in it.
        assert link.startswith(f"{analytics}/#"), output
        fragment = urllib.parse.parse_qs(urllib.parse.urlsplit(link).fragment)
        key, lesson_id = fragment["key"][0], fragment["lesson"][0]
        lessons = httpx.get(
            f"{analytics}/v1/lessons", headers={"Authorization": f"Bearer {key}"}, timeout=10
        )
        assert lessons.status_code == 200, lessons.text
        assert lesson_id in {lesson["id"] for lesson in lessons.json()["lessons"]}
        assert link in (data_dir / "demo-links.txt").read_text()
        # The demo playing in the background prints no second copy of the links.
        collect(None, 3.0)
        output = "".join(seen)
        assert output.count(key) == 1, output
        assert not re.search(rf"{re.escape(analytics)}/\s", output), output
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=45)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    assert proc.returncode == 0, "".join(seen)
