"""Request bodies read with a cap while they stream: 413 as soon as the limit passes.

A declared ``Content-Length`` over the cap is refused before a byte is read; a
chunked body, or one that lies about its length, is refused on the chunk that
crosses the cap. Neither raw nor multipart bodies are ever read whole first.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.types import Message

from shared.errors import PayloadTooLarge


def too_large(frame_limit: int) -> PayloadTooLarge:
    """The 413 for a frame over ``frame_limit`` bytes (its full size is not known)."""
    return PayloadTooLarge(f"the frame is over the limit of {frame_limit} bytes", field="image")


def capped(request: Request, body_limit: int, frame_limit: int) -> Request:
    """``request`` whose body raises ``too_large`` once more than ``body_limit`` bytes arrive.

    ``frame_limit`` is the limit the client is told about; ``body_limit`` adds
    room for what surrounds a frame (multipart boundaries and fields).
    """
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > body_limit:
        raise too_large(frame_limit)
    received = 0

    async def receive() -> Message:
        nonlocal received
        message = await request.receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > body_limit:
                raise too_large(frame_limit)
        return message

    return Request(request.scope, receive)


async def read_capped(request: Request, limit: int) -> bytes:
    """The whole raw body, or ``too_large`` as soon as it passes ``limit`` bytes."""
    return b"".join([chunk async for chunk in capped(request, limit, limit).stream()])
