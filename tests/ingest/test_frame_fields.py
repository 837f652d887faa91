"""What a frame must carry: the OpenAPI document says so, every problem is reported at once,
and a student who may not send frames hears that first (real PostgreSQL and Redis)."""

from __future__ import annotations

import datetime as dt

import httpx
import pytest

from tests.ingest.conftest import World, frame_params
from tests.openapi import openapi

FRAMES = "/v1/lessons/{lesson_id}/frames"


def test_openapi_says_a_frame_needs_seq_and_captured_at() -> None:
    operation = openapi("ingest")["paths"][FRAMES]["post"]
    query = {p["name"]: p for p in operation["parameters"] if p["in"] == "query"}
    assert query["seq"]["required"] is True
    assert query["seq"]["schema"]["minimum"] == 0
    assert query["captured_at"]["required"] is True
    assert query["captured_at"]["schema"]["format"] == "date-time"
    multipart = operation["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert multipart["required"] == ["image"]


async def _post(
    client: httpx.AsyncClient, world: World, body: bytes, params: dict[str, str], token: str
) -> httpx.Response:
    return await client.post(
        f"/v1/lessons/{world.lesson_id}/frames",
        params=params,
        content=body,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "image/jpeg"},
    )


@pytest.mark.asyncio
async def test_every_field_problem_is_reported_at_once(base_url: str, world: World) -> None:
    async with httpx.AsyncClient(base_url=base_url) as client:
        nothing = await _post(client, world, b"", {}, world.token())
        wrong = await _post(
            client, world, b"", {"seq": "-1", "captured_at": "yesterday"}, world.token()
        )
        # Past PostgreSQL's bigint: a field problem, not a failing database (503).
        too_big = await _post(
            client, world, b"", {"seq": str(2**63), "captured_at": "x"}, world.token()
        )
    for answer in (nothing, wrong, too_big):
        assert answer.status_code == 422, answer.text
        error = answer.json()["error"]
        assert error["code"] == "validation_error"
        assert {e["field"] for e in error["errors"]} == {"seq", "captured_at", "image"}
        assert error["field"] == error["errors"][0]["field"]
        for problem in error["errors"]:
            assert problem["field"] in error["message"]


@pytest.mark.asyncio
async def test_multipart_fields_or_query_parameters(
    base_url: str, world: World, photo: bytes
) -> None:
    image = {"image": ("frame.jpg", photo, "image/jpeg")}
    auth = {"Authorization": f"Bearer {world.token()}"}
    url = f"/v1/lessons/{world.lesson_id}/frames"
    async with httpx.AsyncClient(base_url=base_url) as client:
        as_fields = await client.post(url, data=frame_params(1), files=image, headers=auth)
        as_query = await client.post(url, params=frame_params(2), files=image, headers=auth)
        neither = await client.post(url, files=image, headers=auth)
    assert (as_fields.status_code, as_query.status_code) == (202, 202), as_query.text
    assert as_query.json()["seq"] == 2
    assert neither.status_code == 422
    assert {e["field"] for e in neither.json()["error"]["errors"]} == {"seq", "captured_at"}


@pytest.mark.asyncio
async def test_no_consent_is_said_before_any_problem_of_the_frame(
    base_url: str, world: World, photo: bytes
) -> None:
    nocon = world.token("nocon")
    long_ago = dt.datetime.now(dt.UTC) - dt.timedelta(days=3)
    async with httpx.AsyncClient(base_url=base_url) as client:
        missing_fields = await _post(client, world, b"", {}, nocon)
        outside_lesson = await _post(client, world, photo, frame_params(1, long_ago), nocon)
        consenting = await _post(client, world, photo, frame_params(1, long_ago), world.token())
    assert missing_fields.status_code == 451, missing_fields.text
    assert outside_lesson.status_code == 451, outside_lesson.text
    assert consenting.status_code == 422  # the same frame from a consenting student
