"""A real Learning Record Store for the tests: Ralph (``ralph runserver``) on a free port.

Ralph runs from its own virtualenv, ``.venv-lrs`` (``make .venv-lrs``; its pinned
FastAPI is older than ClassPulse's, so it cannot share ``.venv``), with its
filesystem backend in a temporary directory and a basic-auth users file made
by ``ralph auth``. Ralph's filesystem backend writes its file with the
``CREATE`` operation, so a second POST to a running Ralph fails with 500 ("already
exists and overwrite is not allowed"); the tests run Ralph's own API app
(``ralph.api:app``, what ``ralph runserver`` serves, without its file-watching
reloader) with that backend set to ``APPEND``. ``validate`` checks statements against Ralph's strict xAPI
1.0.3 model (``BaseXapiStatement``: no extra or empty fields), which is stricter
than what its POST endpoint accepts.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from classpulse.harness.ports import answers, free_port
from tests.conftest import ROOT

LRS_VENV = ROOT / ".venv-lrs"
RALPH = LRS_VENV / "bin" / "ralph"
LRS_USER = "classpulse-sender"
LRS_PASSWORD = "lrs-password-that-must-never-be-logged"
XAPI_HEADERS = {"X-Experience-API-Version": "1.0.3"}

#: ``ralph runserver -b fs`` whose backend appends (see the module's docstring).
_SERVE = """
import sys, uvicorn
from ralph.backends.data.base import BaseOperationType
from ralph.backends.lrs.fs import FSLRSBackend
FSLRSBackend.default_operation_type = BaseOperationType.APPEND
uvicorn.run("ralph.api:app", host="127.0.0.1", port=int(sys.argv[1]), log_level="info")
"""
_VALIDATE = """
import json, sys
from ralph.models.xapi.base.statements import BaseXapiStatement
problems = []
for statement in json.load(sys.stdin):
    try:
        BaseXapiStatement.model_validate(statement)
    except Exception as exc:
        problems.append(f"{statement.get('id')}: {exc}")
print(json.dumps(problems))
"""


@dataclass
class Ralph:
    """One Ralph server; ``stop``/``start`` simulate an LRS outage on the same port."""

    workdir: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}/xAPI"

    def _env(self) -> dict[str, str]:
        return os.environ | {
            "RALPH_APP_DIR": str(self.workdir / "app"),
            "RALPH_AUTH_FILE": str(self.workdir / "auth.json"),
            "RALPH_RUNSERVER_BACKEND": "fs",
            "RALPH_BACKENDS__LRS__FS__DEFAULT_DIRECTORY_PATH": str(self.workdir / "data"),
        }

    def make_user(self) -> None:
        subprocess.run(
            [str(RALPH), "auth", "-u", LRS_USER, "-p", LRS_PASSWORD, "-s", "all",
             "-M", "mailto:classpulse-sender@example.org", "-w"],
            env=self._env(), check=True, capture_output=True, timeout=60,
        )  # fmt: skip

    def start(self) -> None:
        data = self.workdir / "data"
        data.mkdir(exist_ok=True)
        log = (self.workdir / "ralph.log").open("ab")
        self.process = subprocess.Popen(
            [str(LRS_VENV / "bin" / "python"), "-c", _SERVE, str(self.port)],
            env=self._env(), stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while not answers(self.port):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"Ralph did not start: see {self.workdir / 'ralph.log'}")
            time.sleep(0.2)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=20)
            self.process = None
        deadline = time.monotonic() + 20
        while answers(self.port):
            if time.monotonic() > deadline:
                raise RuntimeError(f"something still answers on Ralph's port {self.port}")
            time.sleep(0.1)

    def statements(self) -> list[dict[str, Any]]:
        """Every statement the LRS holds, read back through its xAPI GET, page by page."""
        found: list[dict[str, Any]] = []
        url: str | None = f"{self.endpoint}/statements?limit=100"
        with httpx.Client(auth=(LRS_USER, LRS_PASSWORD), headers=XAPI_HEADERS) as client:
            while url:
                response = client.get(url, timeout=10)
                response.raise_for_status()
                page = response.json()
                found.extend(page["statements"])
                more = page.get("more")
                url = f"http://127.0.0.1:{self.port}{more}" if more else None
        return found


def validate(statements: list[dict[str, Any]]) -> list[str]:
    """Problems Ralph's strict xAPI 1.0.3 statement model finds (empty: all valid)."""
    done = subprocess.run(
        [str(LRS_VENV / "bin" / "python"), "-c", _VALIDATE],
        input=json.dumps(statements).encode(), capture_output=True, check=True, timeout=60,
    )  # fmt: skip
    return list(json.loads(done.stdout))
