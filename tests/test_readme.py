"""The README stays true: every setting documented, the two commands exist."""

from __future__ import annotations

import re

from tests.conftest import ROOT
from tests.test_compose import setting_variables

README = (ROOT / "README.md").read_text()


def test_every_setting_is_documented() -> None:
    documented = set(re.findall(r"`(CLASSPULSE_[A-Z_]+)`", README))
    assert setting_variables() - documented == set()
    assert documented - setting_variables() == set()


def test_quick_start_commands_are_make_targets() -> None:
    quick_start = README.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"```sh\n(.+?)\n```", quick_start)
    assert commands == ["make up", "make test"]
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^up:", makefile, re.MULTILINE)
    assert re.search(r"^test:", makefile, re.MULTILINE)
    assert "exec make test" in (ROOT / ".ci" / "run").read_text()


def test_lock_refresh_is_documented() -> None:
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^lock:", makefile, re.MULTILINE)
    dependencies = README.split("## Dependencies", 1)[1].split("\n## ", 1)[0]
    assert "make lock" in dependencies
    assert "uv.lock" in dependencies
