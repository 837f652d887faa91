"""No frame byte reaches a disk: a demo lesson through ``classpulse up`` on the embedded
default, then every file of its data directory is scanned; docker-compose's Redis keeps
nothing on disk either.
"""

from __future__ import annotations

import base64
import json
import re
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis as redis_lib
import yaml
from sqlalchemy import text
from websockets.sync.client import connect as ws_connect

from classpulse.harness.ports import free_port
from shared.db.engine import make_sync_engine
from tests.conftest import ROOT
from tests.reliability.privacy_scan import image_in
from tests.test_up import CLASSPULSE, PORTS, up_env

pytestmark = pytest.mark.slow

#: The demo's frames are OpenCV JPEGs, each starting with this JFIF header. The
#: PostgreSQL cluster's binary files may hold a 3-byte JPEG magic by chance; never this.
JFIF = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00"
FRAME_MARKERS = (JFIF, base64.b64encode(JFIF[:9]))
#: Frames processed before the lesson is stopped: enough to have passed through every
#: store (Redis, the worker, PostgreSQL) many times over.
FRAMES_DONE = 12
TIMEOUT = 240.0


def wait_for(
    condition: Callable[[], bool], what: str, up: subprocess.Popen[bytes], log: Path
) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not condition():
        if up.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {TIMEOUT:g}s\n{log.read_text()[-4000:]}")
        time.sleep(0.5)


def frames_done(database_url: str) -> int:
    engine = make_sync_engine(database_url)
    try:
        with engine.connect() as conn:
            return int(conn.scalar(text("SELECT count(*) FROM frames WHERE status = 'done'")))
    except Exception:  # not migrated yet, or the server still starting
        return 0
    finally:
        engine.dispose()


def frames_on_disk(root: Path) -> list[tuple[str, str]]:
    """(file, what) for every file under ``root`` that holds image bytes.

    Every file is searched for the frames' JFIF header, raw or in base64; files
    outside the PostgreSQL cluster are also searched for any image
    (``privacy_scan.image_in``: magic bytes, nested base64).
    """
    cluster = root / "postgres" / "data"
    found = []
    for path in sorted(root.rglob("*")):
        if not path.is_file():
            continue
        data = path.read_bytes()
        name = str(path.relative_to(root))
        if any(marker in data for marker in FRAME_MARKERS):
            found.append((name, "JPEG frame"))
        elif not path.is_relative_to(cluster) and (kind := image_in(data)) is not None:
            found.append((name, kind))
    return found


def test_a_demo_lesson_leaves_no_frame_byte_in_the_data_directory(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    ports = {name: free_port() for name in PORTS}
    command = [*CLASSPULSE, "up", "--demo", "--data-dir", str(data_dir)]
    for name, port in ports.items():
        command += [f"--{name}-port", str(port)]
    log = tmp_path / "up.log"  # outside the data directory: it is scanned
    with log.open("wb") as out:
        up = subprocess.Popen(command, env=up_env(), stdout=out, stderr=subprocess.STDOUT)
    try:
        links_file = data_dir / "demo-links.txt"
        wait_for(
            lambda: links_file.exists() and "\n" in links_file.read_text(),
            "the demo lesson",
            up,
            log,
        )
        links = links_file.read_text()
        # The visiting student's classroom socket, as the page opens it: the token in its URL.
        visitor = re.search(r"/classroom/([\w-]+)#token=(\S+)", links)
        assert visitor is not None, links
        lesson, token = visitor.groups()
        socket_url = f"ws://127.0.0.1:{ports['ingest']}/v1/lessons/{lesson}/stream?token={token}"
        with ws_connect(socket_url, open_timeout=10) as socket:
            socket.send(json.dumps({"seq": 1, "captured_at": "x"}))
            assert json.loads(socket.recv(timeout=10))["type"] == "error"
        redis = redis_lib.Redis(port=ports["redis"])
        persistence = {**redis.config_get("appendonly"), **redis.config_get("save")}
        redis.close()
        database_url = f"postgresql://postgres@127.0.0.1:{ports['postgres']}/classpulse"
        wait_for(lambda: frames_done(database_url) >= FRAMES_DONE, "frames done", up, log)
    finally:
        up.send_signal(signal.SIGINT)  # Ctrl-C: Redis and PostgreSQL shut down cleanly
        try:
            up.wait(timeout=90)
        except subprocess.TimeoutExpired:
            up.kill()
            raise
    assert up.returncode == 0, log.read_text()[-4000:]

    assert frames_on_disk(data_dir) == []
    assert persistence == {"appendonly": "no", "save": ""}
    # What the embedded servers wrote is their owner's alone.
    for server in ("postgres", "redis"):
        assert (data_dir / server).stat().st_mode & 0o777 == 0o700
        for path in (data_dir / server).iterdir():  # logs, pid files, the cluster
            assert path.stat().st_mode & 0o077 == 0, path
    # So is everything up and the demo wrote, and no log line holds a credential
    # (the dashboard link's key, the classroom socket's token).
    assert data_dir.stat().st_mode & 0o777 == 0o700
    shared = [
        str(p.relative_to(data_dir)) for p in data_dir.rglob("*") if p.lstat().st_mode & 0o077
    ]
    assert shared == []
    credentials = re.findall(r"[#&](?:key|token)=([^&\s]+)", links)
    assert len(credentials) == 2, links
    for path in (data_dir / "logs").iterdir():
        text = path.read_text(errors="replace")
        assert not [c for c in credentials if c in text], path


def _option(command: list[str], name: str) -> Any:
    return command[command.index(name) + 1] if name in command else None


def test_compose_redis_keeps_nothing_on_disk() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    redis = compose["services"]["redis"]
    command = redis["command"]
    assert command[0] == "redis-server"
    # Redis's defaults write RDB snapshots (save points) even with the AOF off.
    assert _option(command, "--appendonly") == "no"
    assert _option(command, "--save") == ""
    # No volume keeps its working directory; it is memory.
    assert "volumes" not in redis
    assert "/data" in redis.get("tmpfs", [])
