"""WebSocket intake: a JSON header then a binary image per frame, one JSON answer each.

Same checks and code path as ``POST /frames``: the binary message may be a
browser's face-crops body (``shared.face_crops``) instead of an image. The
socket also carries the results of this student's frames as the workers
finish them.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from pydantic import AwareDatetime, BaseModel, ValidationError
from redis.exceptions import RedisError

from services.api.live_hub import LiveHub
from services.ingest.deps import IngestResources
from services.ingest.errors import retry_after_seconds
from services.ingest.intake import IncomingFrame, accept_frame, require_own_lesson
from services.ingest.schemas import Seq
from shared import metrics
from shared.errors import ClassPulseError, RateLimited, ServiceUnavailable
from shared.schemas import LiveNotice

router = APIRouter(tags=["frames (student token)"])
#: Policy violation: the token is missing, invalid or for another lesson.
CLOSE_POLICY = 1008
#: The server cannot serve now (a store is down); reconnect later.
CLOSE_TRY_AGAIN_LATER = 1013
#: Frame ids of this connection remembered to label results with their seq.
SEQ_MEMORY = 1024


class FrameHeader(BaseModel):
    seq: Seq
    captured_at: AwareDatetime


def _error(
    seq: int | None,
    code: str,
    message: str,
    field: str | None = None,
    retry_after: int | None = None,
) -> dict[str, Any]:
    return {
        "type": "error",
        "seq": seq,
        "error": {"code": code, "message": message, "field": field},
        "retry_after": retry_after,
    }


def _from_exception(seq: int | None, exc: ClassPulseError) -> dict[str, Any]:
    return _error(seq, exc.code, exc.message, exc.field, retry_after_seconds(exc))


class _Connection:
    def __init__(self, websocket: WebSocket, student_id: uuid.UUID) -> None:
        self.websocket = websocket
        self.student_id = student_id
        self.seqs: dict[uuid.UUID, int] = {}
        self._send_lock = asyncio.Lock()

    async def send(self, message: dict[str, Any]) -> None:
        async with self._send_lock:
            await self.websocket.send_json(message)

    def remember(self, frame_id: uuid.UUID, seq: int) -> None:
        self.seqs[frame_id] = seq
        if len(self.seqs) > SEQ_MEMORY:
            self.seqs.pop(next(iter(self.seqs)))

    async def forward_results(self, notices: asyncio.Queue[LiveNotice]) -> None:
        while True:
            notice = await notices.get()
            if notice.student_id != self.student_id:
                continue
            await self.send(
                {
                    "type": "result",
                    "frame_id": str(notice.frame_id),
                    "seq": self.seqs.get(notice.frame_id),
                    "status": notice.status,
                    "faces": notice.faces,
                    "labels": notice.labels,
                }
            )


async def _refused(
    conn: _Connection, resources: IngestResources, message: dict[str, Any]
) -> dict[str, Any]:
    """A refused message costs the student's rate; the 429 instead once it is used up."""
    try:
        await resources.admission.charge(conn.student_id)
    except RateLimited as exc:
        return _from_exception(message["seq"], exc)
    return message


async def _frames(conn: _Connection, resources: IngestResources, lesson_id: uuid.UUID) -> None:
    websocket = conn.websocket
    token = websocket.query_params.get("token", "")
    header: FrameHeader | None = None
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            raise WebSocketDisconnect(message.get("code", 1000))
        if message.get("text") is not None:
            try:
                header = FrameHeader.model_validate_json(message["text"])
            except ValidationError as exc:
                header = None
                first = exc.errors()[0]
                field = ".".join(str(p) for p in first["loc"]) or None
                error = _error(None, "validation_error", str(first["msg"]), field)
                await conn.send(await _refused(conn, resources, error))
            continue
        data: bytes = message.get("bytes") or b""
        if header is None:
            error = _error(
                None,
                "validation_error",
                "send a JSON header {seq, captured_at} before each image",
                "seq",
            )
            await conn.send(await _refused(conn, resources, error))
            continue
        seq, header_now = header.seq, header
        header = None
        if not data:
            error = _error(seq, "validation_error", "the image is empty", "image")
            await conn.send(await _refused(conn, resources, error))
            continue
        frame = IncomingFrame(seq, header_now.captured_at, data, len(data))
        try:
            # Verified per frame so that a token expiring mid-lesson stops being accepted.
            principal = resources.tokens.verify(token)
            async with resources.admission.counting_refusals(conn.student_id):
                accepted = await accept_frame(resources, principal, lesson_id, frame)
        except ClassPulseError as exc:
            await conn.send(_from_exception(seq, exc))
            continue
        conn.remember(accepted.frame_id, seq)
        await conn.send(
            {
                "type": "ack",
                "seq": seq,
                "frame_id": str(accepted.frame_id),
                "status": "repeated" if accepted.repeated else "queued",
            }
        )


@router.websocket("/v1/lessons/{lesson_id}/stream")
async def stream(websocket: WebSocket, lesson_id: uuid.UUID) -> None:
    """Frames in, acknowledgements and results out; ``?token=`` carries the student token."""
    resources: IngestResources = websocket.app.state.resources
    hub: LiveHub = websocket.app.state.live_hub
    await websocket.accept()
    try:
        principal = resources.tokens.verify(websocket.query_params.get("token", ""))
        student_id = require_own_lesson(principal, lesson_id)
    except ClassPulseError as exc:
        # Browsers cannot read an HTTP error of a WebSocket handshake: say it, then close.
        await websocket.send_json(_from_exception(None, exc))
        await websocket.close(code=CLOSE_POLICY, reason=exc.code)
        return
    conn = _Connection(websocket, student_id)
    sockets = metrics.OPEN_STREAMS.labels(kind="websocket")
    sockets.inc()
    try:
        async with hub.listen(lesson_id) as notices:
            forwarder = asyncio.create_task(conn.forward_results(notices))
            try:
                await _frames(conn, resources, lesson_id)
            except WebSocketDisconnect:
                pass
            finally:
                forwarder.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await forwarder
    except (RedisError, OSError):
        # Redis is down: no frame could be stored either. Tell the client to come back.
        down = ServiceUnavailable("live channel unavailable; reconnect later")
        with contextlib.suppress(Exception):
            await websocket.send_json(_from_exception(None, down))
            await websocket.close(code=CLOSE_TRY_AGAIN_LATER, reason=down.code)
    finally:
        sockets.dec()
