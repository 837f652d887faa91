"""The verified-token cache keeps refusing what the verifier refuses."""

from __future__ import annotations

import datetime as dt
import time
import uuid

import pytest

from services.ingest.tokens import StudentTokens
from shared.auth import issue_student_token
from shared.errors import AuthError

SECRET = "a-secret-of-at-least-thirty-two-bytes-long"


def test_cached_token_still_expires() -> None:
    tokens = StudentTokens(SECRET)
    student, lesson = uuid.uuid4(), uuid.uuid4()
    token = issue_student_token(SECRET, student_id=student, lesson_id=lesson, ttl_seconds=2)
    assert tokens.verify(token).student_id == student
    assert tokens.verify(token).lesson_id == lesson  # from the cache
    time.sleep(2.1)
    with pytest.raises(AuthError, match="expired"):
        tokens.verify(token)


def test_forged_and_foreign_tokens_are_refused_and_the_cache_is_bounded() -> None:
    tokens = StudentTokens(SECRET, size=2)
    foreign = issue_student_token(
        "another-secret-of-thirty-two-bytes!!",
        student_id=uuid.uuid4(),
        lesson_id=uuid.uuid4(),
        ttl_seconds=60,
    )
    with pytest.raises(AuthError):
        tokens.verify(foreign)
    old = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    expired = issue_student_token(
        SECRET, student_id=uuid.uuid4(), lesson_id=uuid.uuid4(), ttl_seconds=60, now=old
    )
    with pytest.raises(AuthError):
        tokens.verify(expired)
    valid = [
        issue_student_token(SECRET, student_id=uuid.uuid4(), lesson_id=uuid.uuid4(), ttl_seconds=60)
        for _ in range(3)
    ]
    assert [tokens.verify(t).student_id for t in valid] == [
        tokens.verify(t).student_id for t in valid
    ]
    assert len(tokens._verified) == 2
