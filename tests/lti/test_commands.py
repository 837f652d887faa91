"""``classpulse lti``: a platform registered on the command line launches ClassPulse."""

from __future__ import annotations

import re
import uuid

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from classpulse.cli import app
from shared.db.models import Organisation
from tests.lti.conftest import Tool, launch
from tests.lti.platform import LEARNER_ROLES, Platform, Scenario


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, pg_url: str) -> CliRunner:
    monkeypatch.setenv("CLASSPULSE_DATABASE_URL", pg_url)
    return CliRunner()


def test_add_list_launch_remove(
    cli: CliRunner, tool: Tool, platform: Platform, clean_db: Engine
) -> None:
    with Session(clean_db) as session:
        org = Organisation(id=uuid.uuid4(), name="CLI school")
        session.add(org)
        session.commit()
        org_id = str(org.id)
    # The tool fixture registered this platform for its own organisation through the API;
    # the CLI registers it under another client id for this one.
    platform.client_id = "cli-client"
    reg = platform.registration()
    added = cli.invoke(
        app,
        ["lti", "add", "--org", org_id, "--issuer", reg["issuer"], "--client-id", "cli-client",
         "--deployment-id", "1", "--deployment-id", "2",
         "--auth-login-url", reg["auth_login_url"], "--auth-token-url", reg["auth_token_url"],
         "--key-set-url", reg["key_set_url"]],
    )  # fmt: skip
    assert added.exit_code == 0, added.output
    registration = re.search(r"registration: ([0-9a-f-]{36})", added.output)
    assert registration is not None
    listed = cli.invoke(app, ["lti", "list", "--org", org_id])
    assert "cli-client" in listed.output
    assert "1,2" in listed.output

    answer = launch(tool, platform, Scenario("u-cli", LEARNER_ROLES))
    assert answer.status_code == 303, answer.text
    with clean_db.connect() as conn:
        owners = conn.execute(text("SELECT organisation_id FROM classes")).scalars().all()
    assert [str(o) for o in owners] == [org_id]  # the CLI's registration's organisation

    again = cli.invoke(
        app,
        ["lti", "add", "--org", org_id, "--issuer", reg["issuer"], "--client-id", "cli-client",
         "--deployment-id", "1", "--auth-login-url", reg["auth_login_url"],
         "--auth-token-url", reg["auth_token_url"], "--key-set-url", reg["key_set_url"]],
    )  # fmt: skip
    assert again.exit_code == 2
    assert "registered already" in again.output
    removed = cli.invoke(app, ["lti", "remove", "--org", org_id, registration.group(1)])
    assert removed.exit_code == 0, removed.output
    urls = cli.invoke(app, ["lti", "urls", "--tool-url", "https://classpulse.example.org/"])
    assert "https://classpulse.example.org/lti/login" in urls.output
    assert "https://classpulse.example.org/lti/jwks" in urls.output
