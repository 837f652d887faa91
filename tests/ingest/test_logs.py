"""No credential reaches a log: the APIs as ``up`` runs them, their output in a file.

uvicorn logs each WebSocket with its URL, and the classroom page's socket
carries the student token in its query string; an access log (off in ``up``,
a deployment may turn it on) writes ``?access_token=`` of SSE and export links.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import httpx
import pytest
import redis as redis_lib
import websockets

from classpulse.harness.factories import TOKEN_SECRET
from classpulse.harness.processes import ANALYTICS_APP, HEALTH_PATH, INGEST_APP, api_process
from tests.ingest.conftest import World
from tests.ingest.test_stream import send_frame, ws_url

pytestmark = pytest.mark.asyncio


@pytest.fixture
def env(pg_url: str, redis_url: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("CLASSPULSE_")}
    return {
        **base,
        "CLASSPULSE_DATABASE_URL": pg_url,
        "CLASSPULSE_REDIS_URL": redis_url,
        "CLASSPULSE_TOKEN_SECRET": TOKEN_SECRET,
        "PYTHONUNBUFFERED": "1",
    }


async def test_the_classroom_sockets_token_is_not_logged(
    world: World,
    env: dict[str, str],
    photo: bytes,
    tmp_path: Path,
    redis_client: redis_lib.Redis,
) -> None:
    log = tmp_path / "ingest.log"
    token, refused = world.token(), world.token("s2") + "forged"
    # As up serves it (its options, its health check).
    with api_process(INGEST_APP, env, log, ready_path=HEALTH_PATH) as api:
        async with websockets.connect(ws_url(api.url, world, token)) as ws:
            assert (await send_frame(ws, 1, photo))["type"] == "ack"
        async with websockets.connect(ws_url(api.url, world, refused)) as ws:
            await ws.recv()  # the error, then the server closes
    text = log.read_text()
    assert "WebSocket /v1/lessons/" in text  # the sockets were logged ...
    assert "token=[redacted]" in text
    for credential in (token, refused, token.split(".")[2]):
        assert credential not in text  # ... without their tokens


async def test_an_access_log_does_not_keep_access_tokens(
    world: World, env: dict[str, str], tmp_path: Path
) -> None:
    log = tmp_path / "analytics.log"
    # As uvicorn serves by default: with its access log.
    with api_process(ANALYTICS_APP, env, log, access_log=True, ready_path=HEALTH_PATH) as api:
        answer = httpx.get(
            f"{api.url}/v1/lessons", params={"access_token": world.lms_key, "limit": "5"}
        )
        # A key in the URL is refused (tickets replace it), and still kept out of the log.
        assert answer.status_code == 401
    text = log.read_text()
    assert "GET /v1/lessons?access_token=[redacted]" in text
    assert world.lms_key not in text
    # The secret part of cp_<id>_<secret> (the secret may itself hold underscores).
    assert world.lms_key.split("_", 2)[2] not in text


async def test_json_logs_follow_a_frame_and_keep_out_the_token(
    world: World, env: dict[str, str], photo: bytes, tmp_path: Path
) -> None:
    log = tmp_path / "ingest.log"
    json_env = {**env, "CLASSPULSE_LOG_FORMAT": "json", "CLASSPULSE_LOG_LEVEL": "DEBUG"}
    token = world.token()
    with api_process(INGEST_APP, json_env, log, ready_path=HEALTH_PATH) as api:
        async with websockets.connect(ws_url(api.url, world, token)) as ws:
            ack = await send_frame(ws, 1, photo)
            assert ack["type"] == "ack"
    lines = [line for line in log.read_text().splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    assert all(r["service"] == "ingest" and "level" in r and "time" in r for r in records)
    (accepted,) = [r for r in records if r.get("frame_id") == ack["frame_id"]]
    assert accepted["lesson_id"] == str(world.lesson_id)
    assert accepted["seq"] == 1
    # uvicorn's own lines come through the same formatter, the socket's URL redacted.
    sockets = [
        r for r in records if r["logger"].startswith("uvicorn") and "WebSocket" in r["message"]
    ]
    assert sockets
    assert all("token=[redacted]" in r["message"] for r in sockets)
    text = log.read_text()
    assert token not in text
    assert token.split(".")[2] not in text


async def test_no_credential_in_a_tracebacks_or_extra_fields_of_either_format() -> None:
    import io
    import logging

    from shared import logs
    from shared.settings import LogSettings

    secret = "cp_abc_SECRETSECRET"
    for log_format in ("text", "json"):
        out = io.StringIO()
        handler = logging.StreamHandler(out)
        handler.setFormatter(logs.formatter("test", LogSettings(log_format=log_format)))
        handler.addFilter(logs.RedactCredentials())
        logger = logging.getLogger(f"tests.redaction.{log_format}")
        logger.addHandler(handler)
        try:
            try:
                raise ValueError(f"GET /v1/lessons?access_token={secret}")
            except ValueError:
                logger.exception("failed", extra={"url": f"/live?ticket={secret}"})
        finally:
            logger.removeHandler(handler)
        written = out.getvalue()
        assert "ValueError" in written, log_format  # the traceback is there ...
        assert "access_token=[redacted]" in written, log_format
        assert secret not in written, log_format  # ... without the credential
