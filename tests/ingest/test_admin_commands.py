"""``classpulse org create`` and ``classpulse keys …`` against the real database."""

from __future__ import annotations

import re

import httpx
import pytest
from sqlalchemy import Engine
from typer.testing import CliRunner

from classpulse.cli import app
from shared import settings


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, pg_url: str, clean_db: Engine):
    monkeypatch.setenv("CLASSPULSE_DATABASE_URL", pg_url)
    settings.clear_cache()
    yield CliRunner()
    settings.clear_cache()


def test_org_create_then_keys_create_list_revoke(cli_env: CliRunner, base_url: str) -> None:
    created = cli_env.invoke(app, ["org", "create", "North School"])
    assert created.exit_code == 0, created.output
    org_id = re.search(r"organisation: (\S+)", created.output).group(1)
    lms_key = re.search(r"(cp_\w+_\S+)", created.output).group(1)

    second = cli_env.invoke(app, ["keys", "create", "--org", org_id, "--name", "moodle"])
    assert second.exit_code == 0, second.output
    second_key = re.search(r"(cp_\w+_\S+)", second.output).group(1)
    prefix = second_key.split("_")[1]

    listed = cli_env.invoke(app, ["keys", "list", "--org", org_id])
    assert listed.exit_code == 0
    assert prefix in listed.output
    assert second_key not in listed.output  # secrets are never shown again

    def classes(key: str) -> int:
        return httpx.get(
            f"{base_url}/v1/classes", headers={"Authorization": f"Bearer {key}"}
        ).status_code

    assert classes(lms_key) == 200
    assert classes(second_key) == 200
    revoked = cli_env.invoke(app, ["keys", "revoke", prefix])
    assert revoked.exit_code == 0
    assert classes(second_key) == 401
    assert classes(lms_key) == 200
    relisted = cli_env.invoke(app, ["keys", "list", "--org", org_id]).output.splitlines()
    [revoked_line] = [line for line in relisted if line.startswith(prefix)]
    assert not revoked_line.endswith("active")

    unknown = cli_env.invoke(app, ["keys", "revoke", "nope"])
    assert unknown.exit_code == 2
