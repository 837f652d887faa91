"""The embedded servers: the test-suite fallback and recovery from a killed ``up``."""

from __future__ import annotations

import socket
from pathlib import Path

import psutil
import pytest
import redis as redis_lib
from sqlalchemy import text

from classpulse.embedded import (
    EmbeddedPostgres,
    EmbeddedRedis,
    answers,
    start_test_servers,
    stop_test_servers,
)
from shared.db.engine import make_sync_engine


def closed_port() -> int:
    """A port nothing listens on (bound once by the system, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.slow
def test_test_servers_start_when_the_machine_has_none_and_stop(tmp_path: Path) -> None:
    root = tmp_path / "servers"
    exports = start_test_servers(root, postgres_probe=closed_port(), redis_probe=closed_port())
    try:
        env = dict(line.removeprefix("export ").split("=", 1) for line in exports)
        assert set(env) == {"CLASSPULSE_TEST_DATABASE_URL", "CLASSPULSE_TEST_REDIS_URL"}
        engine = make_sync_engine(env["CLASSPULSE_TEST_DATABASE_URL"])
        with engine.connect() as conn:
            assert conn.scalar(text("SELECT current_user")) == "postgres"
        engine.dispose()
        client = redis_lib.Redis.from_url(env["CLASSPULSE_TEST_REDIS_URL"])
        assert client.ping()
        client.close()
        ports = [int(url.rsplit(":", 1)[1].split("/")[0]) for url in env.values()]
    finally:
        stop_test_servers(root)
    assert not any(answers(port) for port in ports)
    assert not root.exists()


def test_no_test_servers_when_the_machine_has_them(tmp_path: Path) -> None:
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        port = listening.getsockname()[1]
        assert start_test_servers(tmp_path, postgres_probe=port, redis_probe=port) == []


def test_redis_left_by_a_killed_up_is_replaced(tmp_path: Path) -> None:
    orphan = EmbeddedRedis(tmp_path / "redis", closed_port())
    orphan.start(daemonize=True)  # detached, as if its `up` had been killed
    orphan_pid = int(orphan.pid_path.read_text())
    client = redis_lib.Redis.from_url(orphan.url())
    client.set("kept", "yes")
    client.close()
    # What a Redis with persistence on (an older ClassPulse) left behind.
    (tmp_path / "redis" / "appendonly.aof").write_bytes(b"*3\r\n$3\r\nSET\r\n")
    (tmp_path / "redis" / "dump.rdb").write_bytes(b"REDIS0009")
    fresh = EmbeddedRedis(tmp_path / "redis", closed_port())
    try:
        fresh.start()
        assert not psutil.pid_exists(orphan_pid) or (
            psutil.Process(orphan_pid).status() == psutil.STATUS_ZOMBIE
        )
        client = redis_lib.Redis.from_url(fresh.url())
        assert client.get("kept") is None  # memory only: frame bytes never reach a disk
        assert client.config_get("appendonly") == {"appendonly": "no"}
        assert client.config_get("save") == {"save": ""}
        client.close()
    finally:
        fresh.stop()
    assert not answers(fresh.port)
    assert sorted(p.name for p in (tmp_path / "redis").iterdir()) == ["redis.log"]
    assert (tmp_path / "redis").stat().st_mode & 0o777 == 0o700
    assert (tmp_path / "redis" / "redis.log").stat().st_mode & 0o077 == 0


@pytest.mark.slow
def test_postgres_left_by_a_killed_up_is_restarted_with_its_data(tmp_path: Path) -> None:
    orphan = EmbeddedPostgres(tmp_path / "postgres", closed_port())
    engine = make_sync_engine(orphan.start())
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE kept (x int)"))
    engine.dispose()
    # A new `up` on the same data: the old server (its `up` is gone) gives way.
    fresh = EmbeddedPostgres(tmp_path / "postgres", closed_port())
    try:
        engine = make_sync_engine(fresh.start())
        with engine.connect() as conn:
            assert conn.scalar(text("SELECT count(*) FROM kept")) == 0
        engine.dispose()
        assert not answers(orphan.port)
    finally:
        fresh.stop()
    assert not answers(fresh.port)
