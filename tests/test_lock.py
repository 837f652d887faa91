"""Installs are reproducible: every install reads uv.lock, and uv.lock agrees with pyproject.toml.

``make up``, ``make test`` (and so ``.ci/run``) and each Dockerfile role install
the versions uv.lock pins; the code imports only what pyproject.toml declares.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

from tests.conftest import ROOT

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
LOCK = tomllib.loads((ROOT / "uv.lock").read_text())
MAKEFILE = (ROOT / "Makefile").read_text()
DOCKERFILE = (ROOT / "Dockerfile").read_text()
CI = (ROOT / ".ci" / "run").read_text()
FIRST_PARTY = {"shared", "services", "classpulse", "training", "bench", "ops", "tests"}

#: Imported directly, but installed and pinned compatibly by the framework declared for them.
PROVIDED_BY = {
    "starlette": "fastapi",
    "kombu": "celery",
    "keras": "tensorflow",
    "uvloop": "uvicorn",  # uvicorn[standard]
    "websockets": "uvicorn",
    "hypothesis": "schemathesis",
    "requests": "schemathesis",
}
#: Imported only by tools that run elsewhere or beside ClassPulse, never installed with it.
NOT_INSTALLED = {
    "fer": "bench/pipeline.py's comparison (pip install --no-deps fer)",
    "jax": "training/accelerator.py, which travels to a GPU machine on its own",
}


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def declared_distributions() -> set[str]:
    """Every distribution pyproject.toml names, in the dependencies or any extra."""
    project = PYPROJECT["project"]
    requirements = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        requirements += extra
    names = {normalise(re.split(r"[\s\[<>=!~;]", r, maxsplit=1)[0]) for r in requirements}
    return names - {"classpulse"}


def imported_modules() -> dict[str, set[str]]:
    """Top-level third-party modules imported anywhere in the repository's code."""
    modules: dict[str, set[str]] = {}
    for folder in sorted(FIRST_PARTY):
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    top = name.split(".")[0]
                    if top not in sys.stdlib_module_names and top not in FIRST_PARTY:
                        modules.setdefault(top, set()).add(str(path.relative_to(ROOT)))
    return modules


def locked_version(name: str) -> str:
    [version] = {p["version"] for p in LOCK["package"] if p["name"] == name}
    return str(version)


def test_lock_agrees_with_pyproject() -> None:
    # Offline: uv compares the lock with pyproject.toml without asking the index.
    uv = Path(sys.executable).parent / "uv"
    done = subprocess.run(
        [str(uv), "lock", "--check", "--offline"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, f"run `make lock`:\n{done.stderr}"


def test_every_install_reads_the_lock() -> None:
    for stamp in (".installed-run", ".installed-dev"):
        rule = re.search(rf"^\$\(VENV\)/{re.escape(stamp)}: (.+)\n((?:\t.+\n)+)", MAKEFILE, re.M)
        assert rule, stamp
        assert "uv.lock" in rule[1].split(), f"{stamp} must be redone when uv.lock changes"
        assert "$(UV_SYNC)" in rule[2], stamp
    assert re.search(r"^UV_SYNC := \$\(BIN\)/uv sync --locked ", MAKEFILE, re.M)
    assert re.search(r"^lock:", MAKEFILE, re.M)
    assert "exec make test" in CI
    # pip installs uv and nothing else; uv installs the rest from the lock, except the
    # peer bench.pipeline times (`make bench-peers`): pinned exactly, never in ClassPulse.
    peer = r"pip install --quiet --python \$\(BIN\)/python --no-deps fer==\$\(FER_VERSION\)$"
    assert re.search(r"^FER_VERSION := \d+(\.\d+)+$", MAKEFILE, re.M)
    for name, text in (("Makefile", MAKEFILE), ("Dockerfile", DOCKERFILE), (".ci/run", CI)):
        for line in re.findall(r"pip install .*", text):
            allowed = re.search(r"pip install (-q )?uv==\S+$", line) or (
                name == "Makefile" and re.search(peer, line)
            )
            assert allowed, f"{name}: {line}"


def test_the_uv_that_installs_is_the_locked_one() -> None:
    version = locked_version("uv")
    assert re.search(rf"^UV_VERSION := {re.escape(version)}$", MAKEFILE, re.M)
    assert f"pip install uv=={version}\n" in DOCKERFILE


def test_code_imports_only_declared_distributions() -> None:
    declared = declared_distributions()
    distributions = packages_distributions()
    undeclared = {}
    for module, paths in imported_modules().items():
        if module in NOT_INSTALLED:
            continue
        if module in PROVIDED_BY:
            assert PROVIDED_BY[module] in declared, module
            continue
        names = {normalise(d) for d in distributions.get(module, [])}
        if not names & declared:
            undeclared[module] = sorted(paths)
    assert undeclared == {}


def test_build_metadata_is_current() -> None:
    # The SPDX string (PEP 639), which setuptools reads from 77 on; the table form is deprecated.
    assert PYPROJECT["project"]["license"] == "MIT"
    [setuptools] = [r for r in PYPROJECT["build-system"]["requires"] if r.startswith("setuptools")]
    assert ">=77," in setuptools
