"""No credential or key of an LTI launch reaches a log line, at DEBUG."""

from __future__ import annotations

import logging
import urllib.parse

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import Engine, text

from shared import secret_box
from tests.lti.conftest import SECRETS_KEY, Tool, login, post_launch
from tests.lti.platform import INSTRUCTOR_ROLES, LEARNER_ROLES, Platform, Scenario


def test_launches_log_no_token_ticket_session_or_key(
    tool: Tool, platform: Platform, clean_db: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    platform.members = [{"status": "Active", "user_id": "u-m1", "roles": ["Learner"]}]
    secrets: list[str] = []
    for user, roles in (("u-teach", INSTRUCTOR_ROLES), ("u-learn", LEARNER_ROLES)):
        hint = platform.add(Scenario(user, roles))
        started = login(tool, platform, hint)
        id_token = platform.id_token(hint, started.nonce)
        answer = post_launch(tool, id_token, started.state, started.cookies)
        assert answer.status_code == 303, answer.text
        fragment = dict(
            urllib.parse.parse_qsl(urllib.parse.urlsplit(answer.headers["location"]).fragment)
        )
        secrets += [id_token, started.state, *started.cookies.values(), *fragment.values()]
        if "ticket" in fragment:
            session = httpx.post(
                f"{tool.analytics_url}/v1/tickets/dashboard",
                json={"ticket": fragment["ticket"], "lesson_id": fragment["lesson"]},
            )
            secrets.append(session.json()["credential"])
    secrets += list(platform.tokens)  # the names-and-roles access tokens
    assert platform.tokens
    with clean_db.connect() as conn:
        sealed = conn.execute(text("SELECT private_key_encrypted FROM lti_tool_keys")).scalar_one()
    pem = secret_box.unseal(sealed, SecretStr(SECRETS_KEY))
    # Every line of the key's body, and the sealed form.
    secrets += [line for line in pem.splitlines() if "PRIVATE KEY" not in line] + [sealed]
    lessons = {s for s in secrets if len(s) == 36 and s.count("-") == 4}  # ids are not secrets
    # The servers' lines: the test's own HTTP client (main thread) logs what it receives.
    served = [r for r in caplog.records if r.threadName != "MainThread"]
    handler = logging.StreamHandler()
    logged = "\n".join(r.getMessage() + " " + handler.format(r) for r in served)
    assert served  # the servers did log (the platform calls, at DEBUG)
    leaked = [s[:12] for s in set(secrets) - lessons if s and s in logged]
    assert leaked == []
