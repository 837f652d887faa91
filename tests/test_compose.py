"""docker-compose.yml is valid and runs what ``classpulse up`` runs.

No Docker engine runs here: the file is checked against the Compose
specification offline and compared with the commands and settings of ``up``.
"""

from __future__ import annotations

import inspect
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic_settings import BaseSettings

from classpulse import up
from classpulse.harness.processes import (
    ANALYTICS_APP,
    CELERY_APP,
    HEALTH_PATH,
    INGEST_APP,
    api_command,
    beat_command,
    worker_command,
)
from shared import settings
from tests.conftest import ROOT

COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
APP_SERVICES = ("migrate", "ingest", "analytics", "inference", "beat")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def setting_variables() -> set[str]:
    """Every ``CLASSPULSE_*`` variable the settings read."""
    classes = [
        cls
        for _, cls in inspect.getmembers(settings, inspect.isclass)
        if issubclass(cls, BaseSettings) and cls is not BaseSettings
    ]
    return {settings.ENV_PREFIX + name.upper() for cls in classes for name in cls.model_fields}


def test_compose_file_follows_the_compose_specification() -> None:
    checker = Path(sys.executable).parent / "check-jsonschema"
    done = subprocess.run(
        [str(checker), "--builtin-schema", "vendor.compose-spec", str(COMPOSE)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_apis_run_the_commands_of_up(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert services["ingest"]["command"] == api_command(
        INGEST_APP, 8000, host="0.0.0.0", python="python"
    )
    assert services["analytics"]["command"] == api_command(
        ANALYTICS_APP, 8001, host="0.0.0.0", python="python"
    )
    for name, port in (("ingest", 8000), ("analytics", 8001)):
        assert services[name]["ports"] == [f"{port}:{port}"]
        health = " ".join(services[name]["healthcheck"]["test"])
        assert f"http://127.0.0.1:{port}{HEALTH_PATH}" in health


def test_workers_run_the_commands_of_up(compose: dict[str, Any]) -> None:
    services = compose["services"]
    defaults = settings.WorkerSettings.model_fields
    assert services["inference"]["command"] == worker_command(
        "worker@%h",
        concurrency=defaults["worker_concurrency"].default,
        prefetch=defaults["worker_prefetch"].default,
        python="python",
    )
    assert services["beat"]["command"] == beat_command(
        Path("/data") / up.BEAT_SCHEDULE_FILE, python="python"
    )
    # Scaling `inference` must not multiply the periodic tasks.
    assert "-B" not in services["inference"]["command"]
    assert CELERY_APP in " ".join(services["inference"]["healthcheck"]["test"])


def test_migrate_runs_once_before_the_services(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert services["migrate"]["command"] == ["classpulse", "migrate"]
    assert services["migrate"]["restart"] == "no"
    for name in ("ingest", "analytics", "inference", "beat"):
        condition = services[name]["depends_on"]["migrate"]["condition"]
        assert condition == "service_completed_successfully"
    for name in ("postgres", "redis", "ingest", "analytics", "inference"):
        assert "healthcheck" in services[name], name


def test_settings_are_real_variables_and_complete(compose: dict[str, Any]) -> None:
    known = setting_variables()
    for name in APP_SERVICES:
        env = compose["services"][name]["environment"]
        unknown = {key for key in env if key.startswith("CLASSPULSE_")} - known
        assert unknown == set(), f"{name}: {unknown}"
        for required in ("DATABASE_URL", "REDIS_URL", "TOKEN_SECRET"):
            assert f"CLASSPULSE_{required}" in env, name
    database_url = compose["services"]["ingest"]["environment"]["CLASSPULSE_DATABASE_URL"]
    postgres_env = compose["services"]["postgres"]["environment"]
    assert database_url == (
        f"postgresql://{postgres_env['POSTGRES_USER']}:{postgres_env['POSTGRES_PASSWORD']}"
        f"@postgres:5432/{postgres_env['POSTGRES_DB']}"
    )


def test_api_images_install_no_tensorflow_and_workers_get_the_model(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    for name in ("migrate", "ingest", "analytics"):
        assert services[name]["build"]["target"] == "api"
    for name in ("inference", "beat"):
        assert services[name]["build"]["target"] == "worker"
    stages = re.split(r"^FROM ", DOCKERFILE.read_text(), flags=re.MULTILINE)
    by_target = {stage.split("\n", 1)[0].split(" AS ")[-1].strip(): stage for stage in stages[1:]}
    # Each role installs its own extra at the versions of uv.lock (tests/test_lock.py).
    assert "uv sync --locked --extra api\n" in by_target["api"]
    assert "uv sync --locked --extra worker\n" in by_target["worker"]
    assert "COPY models/default " in by_target["worker"]
    assert "models/fast/model.onnx" in by_target["worker"]
    # Workers detect with these weights and ingest serves them to the classroom page.
    assert "COPY models/detectors" in by_target["base"]
    dockerfile = DOCKERFILE.read_text()
    for extra in ("training", "embedded", "dev"):
        assert f"--extra {extra}" not in dockerfile
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    heavy = ("tensorflow", "opencv", "onnxruntime")
    assert not [dep for dep in extras["api"] if dep.startswith(heavy)]
