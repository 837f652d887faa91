"""Generated requests against both APIs served by uvicorn processes: no 5xx, and every
answer has a documented status, content type and body shape.

Schemathesis (Hypothesis underneath) builds valid and invalid requests from each
OpenAPI document. Known path ids (class, lesson, student) are swapped for the
realm's real ones so requests reach the code behind the lookups, and each
operation is called with the credential it is meant for, so checks past
authentication run too.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from tests.openapi import openapi
from tests.reliability.conftest import Realm, bearer
from tests.reliability.processes import Scratch, service_process

pytestmark = pytest.mark.slow

#: Examples per operation: over 1,000 requests per API, under two minutes each.
EXAMPLES = {"ingest": 60, "analytics": 160}
#: Operations of a student token; every other one is called with the LMS key.
STUDENT_PATHS = ("/consent", "/me", "/frames")
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]

ingest_schema = schemathesis.openapi.from_dict(openapi("ingest"))
analytics_schema = schemathesis.openapi.from_dict(openapi("analytics"))
SENT: Counter[str] = Counter()
SEEN: dict[str, set[str]] = {"ingest": set(), "analytics": set()}
#: Operations whose test started in this process.
STARTED: dict[str, set[str]] = {"ingest": set(), "analytics": set()}


@pytest.fixture(autouse=True)
def started(request: pytest.FixtureRequest) -> None:
    api = request.node.originalname.removeprefix("test_")
    STARTED[api].add(request.node.operation_label)


@pytest.fixture(scope="module")
def urls(
    pg_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, str]]:
    root = tmp_path_factory.mktemp("schemathesis")
    scratch = Scratch(root / "scratch", root)
    env = scratch.env(pg_url, redis_url)
    with (
        service_process("ingest", scratch, env) as ingest,
        service_process("analytics", scratch, env) as analytics,
    ):
        yield {"ingest": ingest, "analytics": analytics}
    for api, schema in (("ingest", ingest_schema), ("analytics", analytics_schema)):
        print(f"\n{api}: {SENT[api]} generated requests over {len(SEEN[api])} operations")
        # Each operation test that ran here sent requests (tests that never ran at
        # all are caught by tests/conftest.py's count at the end of the session).
        assert SEEN[api] == STARTED[api], f"{api}: no request for {STARTED[api] - SEEN[api]}"
        every = {op.ok().label for op in schema.get_all_operations()}
        if STARTED[api] == every:  # the whole API ran here: it must have had its 1,000
            assert SENT[api] >= 1000, f"{api}: only {SENT[api]} requests generated"


@pytest.fixture(scope="module")
def session() -> Iterator[requests.Session]:
    with requests.Session() as http:
        yield http


def realistic(case: Any, realm: Realm) -> None:
    """Real ids for the id path parameters (not on the endless live stream)."""
    if case.path_parameters is None or case.path.endswith("/live"):
        return
    real = {
        "class_id": realm.a.class_id,
        "lesson_id": realm.a.lesson_id,
        "lesson": realm.a.lesson_id,
        "student": realm.a.students["s1"],
    }
    for name, value in real.items():
        if name in case.path_parameters:
            case.path_parameters[name] = str(value)


def run(api: str, case: Any, realm: Realm, urls: dict[str, str], http: requests.Session) -> None:
    realistic(case, realm)
    student = any(part in case.path for part in STUDENT_PATHS)
    credential = realm.token("s1") if student else realm.a.lms_key
    headers = {**(case.headers or {}), **bearer(credential)}
    SENT[api] += 1
    SEEN[api].add(case.operation.label)
    case.call_and_validate(
        base_url=urls[api], session=http, headers=headers, checks=CHECKS, timeout=30
    )


_SETTINGS = {
    "deadline": None,
    "derandomize": True,
    "suppress_health_check": list(HealthCheck),
}


@ingest_schema.parametrize()
@settings(max_examples=EXAMPLES["ingest"], **_SETTINGS)  # type: ignore[arg-type]
def test_ingest(case: Any, realm: Realm, urls: dict[str, str], session: requests.Session) -> None:
    run("ingest", case, realm, urls, session)


@analytics_schema.parametrize()
@settings(max_examples=EXAMPLES["analytics"], **_SETTINGS)  # type: ignore[arg-type]
def test_analytics(
    case: Any, realm: Realm, urls: dict[str, str], session: requests.Session
) -> None:
    run("analytics", case, realm, urls, session)
