"""``classpulse up`` runs the whole system on this machine; ``classpulse migrate`` the schema.

``up`` uses the PostgreSQL and Redis of ``CLASSPULSE_DATABASE_URL`` /
``CLASSPULSE_REDIS_URL``; unset, it runs the embedded default (a real
PostgreSQL and Redis from wheels, data in the data directory). It migrates the
database, starts the ingest API, the analytics API and the inference workers
that are installed, waits until they are healthy and prints their URLs.
A service that dies is started again (see ``classpulse.supervise``);
Ctrl-C or SIGTERM stops everything it started. docker-compose.yml runs the same
commands (the constants below).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import importlib
import importlib.util
import os
import secrets
import shutil
import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import SecretStr

from classpulse.embedded import PRIVATE_UMASK, private_dir, write_private
from classpulse.harness.processes import (
    ANALYTICS_APP,
    CELERY_APP,
    HEALTH_PATH,
    INGEST_APP,
    api_command,
    worker_command,
)
from classpulse.processes import Child, stop_all
from classpulse.stores import Stores, check_redis, migrate_or_explain, redact, start_stores
from classpulse.supervise import RedisService, Service, Supervisor
from shared.errors import ClassPulseError, ConfigError
from shared.schemas import FRAME_QUEUE
from shared.settings import (
    ApiSettings,
    AuthSettings,
    FrameSettings,
    LiveSettings,
    PrivacySettings,
    StoreSettings,
    WorkerSettings,
    load,
)

DEMO_MODULE = "classpulse.demo"
#: Where the first worker's Celery beat keeps its schedule (periodic expiry and retention).
BEAT_SCHEDULE_FILE = "celerybeat-schedule"
#: Preferred port of the first worker's /metrics (the next ones count up; a busy one
#: gives way to a free port).
WORKER_METRICS_PORT = 9181
DEMO_SECRET_FILE = "demo-secret"


def module_exists(target: str) -> bool:
    """True when the module of ``module:attribute`` can be imported."""
    try:
        return importlib.util.find_spec(target.split(":")[0]) is not None
    except ModuleNotFoundError:
        return False


class UpSettings(
    StoreSettings,
    FrameSettings,
    PrivacySettings,
    AuthSettings,
    LiveSettings,
    WorkerSettings,
    ApiSettings,
):
    """What ``up`` reads from ``CLASSPULSE_*``, once, before it starts anything: its own
    settings (stores, token secret, worker knobs, addresses) and those its services
    will read, so that a bad value fails here, naming the variable."""


@dataclass
class UpOptions:
    data_dir: Path
    host: str
    ingest_port: int
    analytics_port: int
    postgres_port: int
    redis_port: int
    #: The first worker's /metrics port; the next ones count up (another where taken).
    worker_metrics_port: int
    workers: int
    demo: bool
    health_timeout: float


@contextlib.contextmanager
def data_dir_lock(data_dir: Path) -> Iterator[None]:
    """Hold the data directory for this ``up``; a second one on it fails clearly."""
    with (data_dir / "up.lock").open("w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ConfigError(
                f"another `classpulse up` is running on {data_dir} "
                "(stop it, or set CLASSPULSE_DATA_DIR to another directory)"
            ) from None
        yield


def token_secret(configured: SecretStr | None, data_dir: Path, demo: bool) -> str:
    """``configured`` (CLASSPULSE_TOKEN_SECRET); unset, in demo mode a random one kept in
    the data directory."""
    if configured is not None:
        return configured.get_secret_value()
    if not demo:
        raise ConfigError(
            "CLASSPULSE_TOKEN_SECRET is not set: it signs student tokens "
            "(set it to a long random string, or use `classpulse up --demo`)"
        )
    path = data_dir / DEMO_SECRET_FILE
    if not path.exists():
        write_private(path, secrets.token_urlsafe(32))
    path.chmod(0o600)  # as an earlier version may have left it
    return path.read_text().strip()


def _check_port_free(host: str, port: int, what: str) -> None:
    from classpulse.harness.ports import port_is_free

    if not port_is_free(port, host):
        raise ConfigError(
            f"port {port} on {host} is in use: choose another with --{what}-port "
            f"or CLASSPULSE_{what.upper()}_PORT"
        )


def _start_children(
    options: UpOptions, settings: UpSettings, env: dict[str, str], stack: contextlib.ExitStack
) -> tuple[dict[str, str], list[Child]]:
    """Start what is installed; return the API base URLs by service and all children."""
    logs = options.data_dir / "logs"
    children: list[Child] = []
    # Registered before any start: whatever started is stopped, even on a failed start.
    stack.callback(stop_all, children)
    urls: dict[str, str] = {}
    for name, app_path, port in (
        ("ingest", INGEST_APP, options.ingest_port),
        ("analytics", ANALYTICS_APP, options.analytics_port),
    ):
        if not module_exists(app_path):
            typer.echo(f"skipped {name}: module {app_path.split(':')[0]} not found")
            continue
        command = api_command(app_path, port, host=options.host)
        children.append(Child(name, command, env, logs / f"{name}.log"))
        urls[name] = f"http://{options.host}:{port}"
    if options.workers and not module_exists(CELERY_APP):
        typer.echo(f"skipped inference workers: module {CELERY_APP.split(':')[0]} not found")
    elif options.workers:
        for index in range(1, options.workers + 1):
            beat = options.data_dir / BEAT_SCHEDULE_FILE if index == 1 else None
            name = f"worker{index}"
            command = worker_command(
                f"{name}@%h",
                concurrency=settings.worker_concurrency,
                prefetch=settings.worker_prefetch,
                beat_schedule=beat,
            )
            worker_env = _worker_metrics_env(env, options, index)
            children.append(Child(name, command, worker_env, logs / f"{name}.log"))
            urls[f"{name} metrics"] = (
                f"http://{options.host}:{worker_env['CLASSPULSE_WORKER_METRICS_PORT']}"
            )
    by_name = {child.name: child for child in children}
    for name, url in urls.items():
        if name in by_name:
            by_name[name].wait_healthy(url + HEALTH_PATH, options.health_timeout)
    return urls, children


def _worker_metrics_env(env: dict[str, str], options: UpOptions, index: int) -> dict[str, str]:
    """A worker's /metrics port, and an empty folder where its pool's processes add up
    their samples (Prometheus multiprocess mode)."""
    from classpulse.harness.ports import pick_port

    folder = options.data_dir / "metrics" / f"worker{index}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    port = pick_port(options.worker_metrics_port + index - 1, options.host)
    return {
        **env,
        "PROMETHEUS_MULTIPROC_DIR": str(folder),
        "CLASSPULSE_WORKER_METRICS_PORT": str(port),
    }


def _start_demo(urls: dict[str, str], data_dir: Path, stop: threading.Event) -> Any:
    """Create the demo lesson and play it in the background; return it (None: no demo).

    The lesson exists before the summary is printed, so that the summary's one
    dashboard link is the demo's, key included.
    """
    if not module_exists(DEMO_MODULE):
        typer.echo("skipped the demo lesson: classpulse.demo not found")
        return None
    if "ingest" not in urls or "analytics" not in urls:
        typer.echo("skipped the demo lesson: it needs both the ingest and the analytics API")
        return None
    demo: Any = importlib.import_module(DEMO_MODULE)
    try:
        lesson = demo.prepare_demo(urls["ingest"], urls["analytics"], data_dir)
    except Exception as exc:  # the demo is a guest: its failure must not stop the system
        typer.echo(f"the demo lesson did not start: {type(exc).__name__}: {exc}", err=True)
        return None

    def play() -> None:
        try:
            demo.play_demo(urls["ingest"], lesson, stop=stop)
        except Exception as exc:
            typer.echo(f"the demo lesson stopped: {type(exc).__name__}: {exc}", err=True)

    threading.Thread(target=play, name="demo", daemon=True).start()
    return lesson


def _print_summary(
    urls: dict[str, str], stores: Stores, children: list[Child], options: UpOptions, demo: Any
) -> None:
    lines = ["ClassPulse is up (Ctrl-C stops everything):"]
    # The first dashboard link printed is one that works: the demo's carries its key.
    if demo is not None:
        lines.append(f"  dashboard:      {demo.dashboard_url}")
        lines.append(f"  classroom:      {demo.classroom_url}  (a visiting student: your webcam)")
        lines.append(f"  (demo lesson; both links are in {options.data_dir / 'demo-links.txt'})")
    elif "analytics" in urls:
        lines.append(f"  dashboard:      {urls['analytics']}/  (asks for an API key)")
    for name in ("ingest", "analytics"):
        if name in urls:
            label = f"{name} API:"
            lines.append(f"  {label:<15} {urls[name]}  (OpenAPI: {urls[name]}/docs)")
    workers = sum(child.name.startswith("worker") for child in children)
    lines.append(f'  workers:        {workers} on queue "{FRAME_QUEUE}"')
    scraped = [urls[name] for name in ("ingest", "analytics") if name in urls]
    scraped += [url for name, url in urls.items() if name.endswith(" metrics")]
    if scraped:
        lines.append("  metrics:        " + "  ".join(f"{url}/metrics" for url in scraped))
    lines.append(f"  PostgreSQL:     {redact(stores.database_url)}")
    lines.append(f"  Redis:          {redact(stores.redis_url)}")
    lines += [f"  ({note})" for note in stores.notes]
    lines.append(f"  logs:           {options.data_dir / 'logs'}")
    typer.echo("\n".join(lines))


def _expire_lost_frames(received_before: dt.datetime) -> None:
    """Ask a worker to mark ``expired`` the queued frames whose bytes a Redis restart lost."""
    from services.inference.celery_app import app
    from services.inference.tasks import EXPIRE_LOST_FRAMES_TASK

    app.send_task(
        EXPIRE_LOST_FRAMES_TASK,
        kwargs={"received_before": received_before.isoformat()},
        queue=FRAME_QUEUE,
    )
    typer.echo("up: frames queued before the Redis restart lost their bytes: marking them expired")


def _supervise(stores: Stores, children: list[Child]) -> None:
    """Return never: restart what dies; raise when a service keeps dying."""
    services: list[Service] = [*children]
    after_restart = {}
    if stores.redis is not None:
        services.insert(0, RedisService(stores.redis))
        # The embedded Redis keeps nothing: the frames waiting in it are gone, and
        # are accounted for now rather than a frame TTL later.
        if any(child.name.startswith("worker") for child in children):
            after_restart["redis"] = lambda: _expire_lost_frames(dt.datetime.now(dt.UTC))
    Supervisor(services, after_restart).run()


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def run_up(options: UpOptions, settings: UpSettings) -> None:
    """Start everything, print the URLs, and run until Ctrl-C / SIGTERM; then stop everything."""
    # Logs, the demo's links and secret, the beat schedule, the lock and port files:
    # whatever up and its services create is the owner's alone (0600, 0700).
    previous_umask = os.umask(PRIVATE_UMASK)
    private_dir(options.data_dir)
    previous_term = signal.signal(signal.SIGTERM, _interrupt)
    # Started in the background (nohup, `cmd &`), SIGINT arrives ignored and
    # Python then never raises KeyboardInterrupt: Ctrl-C / SIGINT must still stop.
    previous_int = signal.signal(signal.SIGINT, _interrupt)
    stack = contextlib.ExitStack()
    try:
        stack.enter_context(data_dir_lock(options.data_dir))
        secret = token_secret(settings.token_secret, options.data_dir, options.demo)
        _check_port_free(options.host, options.ingest_port, "ingest")
        _check_port_free(options.host, options.analytics_port, "analytics")
        stores = start_stores(
            settings, options.data_dir, options.postgres_port, options.redis_port, stack
        )
        typer.echo("migrating the database …")
        migrate_or_explain(stores.database_url)
        check_redis(stores.redis_url)
        os.environ.update(
            CLASSPULSE_DATABASE_URL=stores.database_url,
            CLASSPULSE_REDIS_URL=stores.redis_url,
            CLASSPULSE_TOKEN_SECRET=secret,
            CLASSPULSE_DATA_DIR=str(options.data_dir),
        )
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        urls, children = _start_children(options, settings, env, stack)
        stop_demo = threading.Event()
        stack.callback(stop_demo.set)
        demo = _start_demo(urls, options.data_dir, stop_demo) if options.demo else None
        _print_summary(urls, stores, children, options, demo)
        _supervise(stores, children)
    except KeyboardInterrupt:
        typer.echo("stopping ClassPulse …")
    finally:
        # A second Ctrl-C must not cut the clean shutdown short.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        try:
            stack.close()
        finally:
            signal.signal(signal.SIGINT, previous_int)
            signal.signal(signal.SIGTERM, previous_term)
            os.umask(previous_umask)
    typer.echo("ClassPulse stopped; data kept in " + str(options.data_dir))


def up_command(
    demo: Annotated[
        bool, typer.Option("--demo", help="Demo mode: a random token secret and a demo lesson")
    ] = False,
    workers: Annotated[int, typer.Option(min=0, help="Inference worker processes")] = 1,
    no_workers: Annotated[
        bool, typer.Option("--no-workers", help="Start no inference worker")
    ] = False,
    host: Annotated[str | None, typer.Option(help="Address of the APIs [CLASSPULSE_HOST]")] = None,
    ingest_port: Annotated[
        int | None, typer.Option(help="Port of the ingest API [CLASSPULSE_INGEST_PORT]")
    ] = None,
    analytics_port: Annotated[
        int | None, typer.Option(help="Port of the analytics API [CLASSPULSE_ANALYTICS_PORT]")
    ] = None,
    postgres_port: Annotated[
        int, typer.Option(help="Port of the embedded PostgreSQL (another if taken)")
    ] = 5433,
    redis_port: Annotated[
        int, typer.Option(help="Port of the embedded Redis (another if taken)")
    ] = 6380,
    worker_metrics_port: Annotated[
        int,
        typer.Option(
            help="Port of the first worker's /metrics; the next ones count up (another if taken)"
        ),
    ] = WORKER_METRICS_PORT,
    data_dir: Annotated[
        Path | None, typer.Option(help="Data directory [CLASSPULSE_DATA_DIR, .classpulse]")
    ] = None,
    health_timeout: Annotated[
        float, typer.Option(help="Seconds to wait for each API to answer")
    ] = 90.0,
) -> None:
    """Run ClassPulse here: database, migrations, ingest and analytics APIs, workers."""
    try:
        settings = load(UpSettings)  # a bad CLASSPULSE_* value fails here, naming the variable
        options = UpOptions(
            data_dir=(data_dir or settings.data_dir).resolve(),
            host=host or settings.host,
            ingest_port=ingest_port or settings.ingest_port,
            analytics_port=analytics_port or settings.analytics_port,
            postgres_port=postgres_port,
            redis_port=redis_port,
            worker_metrics_port=worker_metrics_port,
            workers=0 if no_workers else workers,
            demo=demo,
            health_timeout=health_timeout,
        )
        run_up(options, settings)
    except ClassPulseError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(code=2) from None


def migrate_command(
    revision: Annotated[str, typer.Option(help="Target revision")] = "head",
    check: Annotated[
        bool, typer.Option("--check", help="Only report differences between models and schema")
    ] = False,
) -> None:
    """Migrate the database of CLASSPULSE_DATABASE_URL, else of the running embedded default
    (to the latest schema by default)."""
    from classpulse.stores import database_url
    from shared.db import migrate

    try:
        url = database_url()
    except ClassPulseError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(code=2) from None
    if check:
        differences = migrate.check(url)
        for difference in differences:
            typer.echo(f"differs: {difference}")
        raise typer.Exit(code=1 if differences else 0)
    try:
        migrate_or_explain(url, revision)
    except ClassPulseError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(code=2) from None
    typer.echo(f"database migrated to {revision}")


def register(app: typer.Typer) -> None:
    """Add ``classpulse up`` and ``classpulse migrate`` to the command."""
    app.command("up")(up_command)
    app.command("migrate")(migrate_command)
