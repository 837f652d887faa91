"""A multipart frame near the size cap stays in memory: no temporary file is opened.

Starlette spools an uploaded part over 1 MB to a temporary file (on Linux an
unnamed ``O_TMPFILE``, which no directory listing shows), so the test watches
the process's own file opens with an audit hook (PEP 578) while the in-process
server parses the request.
"""

from __future__ import annotations

import os
import sys
import tempfile
import threading

import httpx
import pytest

from tests.ingest.conftest import World, frame_params

pytestmark = pytest.mark.asyncio

#: The default CLASSPULSE_MAX_FRAME_BYTES, less a little: well over Starlette's 1 MB spool.
NEAR_THE_CAP = 1_990_000

_watch_lock = threading.Lock()
_watching: list[list[str]] = []


def _audit(event: str, args: tuple[object, ...]) -> None:
    if not _watching:
        return
    if event in ("tempfile.mkstemp", "tempfile.mkdtemp"):
        opened = f"{event} {args[0]}"
    elif event == "open" and isinstance(args[0], str | bytes):
        path, flags = os.fsdecode(args[0]), args[2]
        unnamed = isinstance(flags, int) and flags & os.O_TMPFILE == os.O_TMPFILE
        if not unnamed and not path.startswith(tempfile.gettempdir()):
            return
        opened = f"open {path}"
    else:
        return
    with _watch_lock:
        for record in _watching:
            record.append(opened)


tempfile.gettempdir()  # resolved now: the hook must not trigger the lookup itself
sys.addaudithook(_audit)


def _near_the_cap(photo: bytes) -> bytes:
    # A real JPEG header and trailing bytes: the intake checks the header, not the pixels.
    return photo + b"\0" * (NEAR_THE_CAP - len(photo))


async def test_a_multipart_frame_near_the_cap_never_reaches_a_temporary_file(
    base_url: str, world: World, photo: bytes
) -> None:
    opened: list[str] = []
    _watching.append(opened)
    try:
        async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
            single = await client.post(
                f"/v1/lessons/{world.lesson_id}/frames",
                data=frame_params(1),
                files={"image": ("frame.jpg", _near_the_cap(photo), "image/jpeg")},
                headers={"Authorization": f"Bearer {world.token()}"},
            )
            batch = await client.post(
                f"/v1/lessons/{world.lesson_id}/frames:batch",
                data={
                    "seq": ["2", "3"],
                    "captured_at": [frame_params(2)["captured_at"]] * 2,
                },
                files=[("image", ("f.jpg", _near_the_cap(photo), "image/jpeg"))] * 2,
                headers={"Authorization": f"Bearer {world.token()}"},
            )
    finally:
        _watching.remove(opened)
    assert single.status_code == 202, single.text
    assert batch.status_code in (200, 207), batch.text
    assert [item["status"] for item in batch.json()["results"]] == [202, 202]
    assert opened == []
