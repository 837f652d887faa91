"""Looking for image bytes where none may be: Redis values, PostgreSQL rows, files.

An image is found by its magic bytes anywhere in raw data, as the start of a
base64 run (also nested, as in a Celery message body), or as the start of a
PostgreSQL ``bytea`` literal (``\\x…``) in a text dump.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterator
from pathlib import Path

import redis as redis_lib
from sqlalchemy import Engine, text

MAGIC = {
    "jpeg": b"\xff\xd8\xff",
    "png": b"\x89PNG\r\n\x1a\n",
    "gif": b"GIF8",
}
_WEBP = re.compile(rb"RIFF....WEBP", re.DOTALL)
_BASE64_RUN = re.compile(rb"[A-Za-z0-9+/]{16,}={0,2}")
_BYTEA_MAGIC = [f"\\x{magic.hex()}" for magic in MAGIC.values()] + ["\\x52494646"]


def image_in(data: bytes, depth: int = 2) -> str | None:
    """The kind of image found in ``data`` ("jpeg", "png", "gif", "webp"), else None."""
    for kind, magic in MAGIC.items():
        if magic in data:
            return kind
    if _WEBP.search(data):
        return "webp"
    if depth == 0:
        return None
    for run in _BASE64_RUN.findall(data):
        try:
            decoded = base64.b64decode(run[: len(run) - len(run) % 4])
        except (binascii.Error, ValueError):
            continue
        if any(decoded.startswith(magic) for magic in MAGIC.values()) or _WEBP.match(decoded):
            return "base64 image"
        if (found := image_in(decoded, depth - 1)) is not None:
            return found
    return None


def redis_values(client: redis_lib.Redis) -> Iterator[tuple[bytes, bytes]]:
    """Every key of the client's database with each value it holds (all types)."""
    for key in client.scan_iter(count=1000):
        kind = client.type(key)
        values: list[bytes]
        if kind == b"string":
            values = [client.get(key) or b""]  # type: ignore[list-item]
        elif kind == b"list":
            values = list(client.lrange(key, 0, -1))  # type: ignore[arg-type]
        elif kind == b"hash":
            values = [v for pair in client.hgetall(key).items() for v in pair]  # type: ignore[union-attr]
        elif kind == b"set":
            values = list(client.smembers(key))  # type: ignore[arg-type]
        elif kind == b"zset":
            values = [member for member, _ in client.zrange(key, 0, -1, withscores=True)]  # type: ignore[union-attr]
        else:
            values = [kind]
        for value in values:
            yield key, value


def images_in_redis(client: redis_lib.Redis) -> list[tuple[bytes, str]]:
    return [(key, kind) for key, value in redis_values(client) if (kind := image_in(value))]


def binary_columns(engine: Engine) -> list[tuple[str, str]]:
    """Columns of the database that could hold bytes (``bytea``, large objects)."""
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT table_name, column_name FROM information_schema.columns "
                "WHERE table_schema = 'public' AND data_type IN ('bytea', 'oid')"
            )
        )
        return [(str(t), str(c)) for t, c in rows]


def images_in_postgres(engine: Engine) -> list[tuple[str, str]]:
    """(table, kind) for every table whose text dump holds an image; large objects too."""
    found = []
    with engine.connect() as conn:
        if conn.scalar(text("SELECT count(*) FROM pg_largeobject_metadata")):
            found.append(("pg_largeobject", "large object"))
        tables = conn.scalars(
            text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        ).all()
        for table in tables:
            dump = conn.scalar(text(f"SELECT string_agg(t::text, E'\\n') FROM \"{table}\" t"))
            if not dump:
                continue
            if any(marker in dump for marker in _BYTEA_MAGIC):
                found.append((table, "bytea literal"))
            elif (kind := image_in(dump.encode())) is not None:
                found.append((table, kind))
    return found


def images_on_disk(root: Path) -> list[tuple[Path, str]]:
    """Files under ``root`` that hold an image."""
    return [
        (path, kind)
        for path in root.rglob("*")
        if path.is_file() and (kind := image_in(path.read_bytes())) is not None
    ]
