"""``classpulse org create`` and ``classpulse keys …`` against the real database."""

from __future__ import annotations

import re

import httpx
import pytest
from sqlalchemy import Engine, text
from typer.testing import CliRunner

from classpulse.cli import app


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, pg_url: str, clean_db: Engine) -> CliRunner:
    monkeypatch.setenv("CLASSPULSE_DATABASE_URL", pg_url)
    return CliRunner()


def test_org_create_then_keys_create_list_revoke(
    cli_env: CliRunner, base_url: str, clean_db: Engine
) -> None:
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

    with clean_db.connect() as conn:
        audit = conn.execute(
            text("SELECT actor, action, subject, details FROM audit_log ORDER BY id")
        ).all()
    first_prefix = lms_key.split("_")[1]
    assert [(a.actor, a.action, a.subject) for a in audit] == [
        ("cli", "org.create", f"org:{org_id}"),
        ("cli", "key.create", f"key:{first_prefix}"),
        ("cli", "key.create", f"key:{prefix}"),
    ]
    assert audit[1].details == {"role": "lms", "per_student": True}
    assert not any(key in str(audit) for key in (lms_key, second_key))

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


def test_keys_create_sets_the_per_student_permission(cli_env: CliRunner, clean_db: Engine) -> None:
    """Teacher keys are class-only unless --per-student; LMS keys have it unless told not."""
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from shared.db.models import ApiKey, SchoolClass

    created = cli_env.invoke(app, ["org", "create", "South School"])
    org_id = re.search(r"organisation: (\S+)", created.output).group(1)
    with Session(clean_db) as session:
        school_class = SchoolClass(organisation_id=org_id, external_id="7b", title="7B")
        session.add(school_class)
        session.commit()
        class_id = str(school_class.id)

    def create(*options: str) -> tuple[str, str]:
        result = cli_env.invoke(app, ["keys", "create", "--org", org_id, *options])
        assert result.exit_code == 0, result.output
        return re.search(r"cp_(\w+?)_", result.output).group(1), result.output

    teacher, teacher_out = create("--teacher-class", class_id)
    trusted, trusted_out = create("--teacher-class", class_id, "--per-student")
    lms, _ = create()
    narrow_lms, _ = create("--no-per-student")

    assert "without per-student access" in teacher_out
    assert "with per-student access" in trusted_out
    with Session(clean_db) as session:
        granted = dict(session.execute(select(ApiKey.prefix, ApiKey.per_student)).all())
    assert (granted[teacher], granted[trusted]) == (False, True)
    assert (granted[lms], granted[narrow_lms]) == (True, False)
    listed = cli_env.invoke(app, ["keys", "list", "--org", org_id]).output.splitlines()
    columns = {line.split("\t")[0]: line.split("\t")[4] for line in listed}
    assert (columns[teacher], columns[trusted]) == ("class-only", "per-student")
