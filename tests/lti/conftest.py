"""LTI fixtures: a simulated Moodle on a free port, ClassPulse's ingest and analytics APIs
(real uvicorn servers) on the test database and Redis, an organisation with the platform
registered through the API."""

from __future__ import annotations

import urllib.parse
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from classpulse.harness.factories import TOKEN_SECRET
from classpulse.harness.servers import serving
from services.analytics.app import create_app as create_analytics
from services.analytics.config import AnalyticsSettings
from services.ingest.app import create_app as create_ingest
from services.ingest.config import IngestSettings
from services.ingest.keys import new_api_key
from shared.db.models import KeyRole, Organisation
from tests.lti.platform import Platform, Scenario

SECRETS_KEY = "lti-test-secrets-key-0123456789abcdef"
#: Rows a launch may create; bad input must leave every count as it was.
COUNTED = (
    "classes",
    "lessons",
    "students",
    "enrolments",
    "consents",
    "lti_contexts",
    "lti_resource_links",
)


def counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {t: conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one() for t in COUNTED}


@pytest.fixture
def platform() -> Iterator[Platform]:
    moodle = Platform()
    with serving(moodle.app(), moodle.port):
        yield moodle


@dataclass
class Tool:
    url: str
    analytics_url: str
    organisation_id: uuid.UUID
    lms_key: str
    registration_id: str

    @property
    def lms(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.lms_key}"}


@pytest.fixture
def tool(
    clean_db: Engine, pg_url: str, redis_url: str, redis_client: object, platform: Platform
) -> Iterator[Tool]:
    analytics = AnalyticsSettings(
        database_url=pg_url, redis_url=redis_url, token_secret=TOKEN_SECRET
    )
    with serving(create_analytics(analytics)) as analytics_url:
        ingest = IngestSettings(
            database_url=pg_url,
            redis_url=redis_url,
            token_secret=TOKEN_SECRET,
            secrets_key=SecretStr(SECRETS_KEY),
            lti_dashboard_url=analytics_url,
        )
        with serving(create_ingest(ingest)) as url:
            platform.tool_url = url
            with Session(clean_db) as session:
                org_id = uuid.uuid4()
                session.add(Organisation(id=org_id, name="LTI school"))
                session.flush()
                row, lms_key = new_api_key(org_id, KeyRole.LMS, "lms")
                session.add(row)
                session.commit()
            answer = httpx.post(
                f"{url}/v1/lti/registrations",
                json={**platform.registration(), "school_consent": True},
                headers={"Authorization": f"Bearer {lms_key}"},
            )
            assert answer.status_code == 201, answer.text
            yield Tool(url, analytics_url, org_id, lms_key, answer.json()["id"])


@dataclass
class Login:
    state: str
    nonce: str
    cookies: dict[str, str]


def login(tool: Tool, platform: Platform, hint: str) -> Login:
    """The OIDC login initiation as Moodle starts it; the tool's redirect read by hand."""
    answer = httpx.post(f"{tool.url}/lti/login", data=platform.login_params(hint))
    assert answer.status_code == 302, answer.text
    location = urllib.parse.urlsplit(answer.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == (
        f"{platform.url}/mod/lti/auth.php"
    )
    query = dict(urllib.parse.parse_qsl(location.query))
    cookies = {}
    for header in answer.headers.get_list("set-cookie"):
        name, _, rest = header.partition("=")
        cookies[name] = rest.split(";", 1)[0]
        lowered = header.lower()
        assert "samesite=none" in lowered
        assert "secure" in lowered
        assert "httponly" in lowered
    return Login(query["state"], query["nonce"], cookies)


def post_launch(tool: Tool, id_token: str, state: str, cookies: dict[str, str]) -> httpx.Response:
    cookie = "; ".join(f"{k}={v}" for k, v in cookies.items())
    return httpx.post(
        f"{tool.url}/lti/launch",
        data={"id_token": id_token, "state": state},
        headers={"Cookie": cookie} if cookie else {},
    )


def launch(tool: Tool, platform: Platform, scenario: Scenario) -> httpx.Response:
    hint = platform.add(scenario)
    started = login(tool, platform, hint)
    return post_launch(tool, platform.id_token(hint, started.nonce), started.state, started.cookies)
