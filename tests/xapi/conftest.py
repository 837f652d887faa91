"""xAPI fixtures: a real Ralph LRS for the session, an LRS key for the secrets box."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.xapi.lrs_server import RALPH, Ralph

#: Encrypts LRS passwords in these tests (``CLASSPULSE_SECRETS_KEY``).
SECRETS_KEY = "xapi-test-secrets-key-0123456789abcdef"


@pytest.fixture(scope="session")
def ralph(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ralph]:
    """Ralph running on a free port with one basic-auth user, for the whole session."""
    if not RALPH.exists():
        pytest.fail("Ralph is not installed: `make .venv-lrs` (make test does it)")
    server = Ralph(Path(tmp_path_factory.mktemp("ralph")))
    server.make_user()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def lrs(ralph: Ralph) -> Iterator[Ralph]:
    """The session's Ralph, running (a test that stopped it gets it started again)."""
    if ralph.process is None:
        ralph.start()
    yield ralph
    if ralph.process is None:
        ralph.start()


@pytest.fixture
def secrets_key(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("CLASSPULSE_SECRETS_KEY", SECRETS_KEY)
    return SECRETS_KEY
