"""How long ``classpulse up`` takes to start and to stop on the embedded default.

Runs ``up`` as a user would (a subprocess, no configured servers) in a fresh
data directory: first start (initdb, migrations from empty), stop, second
start on the kept data, stop. Prints seconds until the URLs are printed and
seconds from SIGINT to exit, per run.

    .venv/bin/python -m bench.up_startup [--runs 2] [--no-workers]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from classpulse.harness.ports import free_port


def one_run(data_dir: Path, workers: bool) -> tuple[float, float, str]:
    """Seconds to "ClassPulse is up", seconds to stop, and the workers line."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLASSPULSE_")}
    env |= {"CLASSPULSE_TOKEN_SECRET": "bench-" + "x" * 26, "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-c", "from classpulse.cli import main; main()", "up"]
    command += ["--data-dir", str(data_dir)]
    for name in ("ingest", "analytics", "postgres", "redis"):
        command += [f"--{name}-port", str(free_port())]
    if not workers:
        command.append("--no-workers")
    started = time.perf_counter()
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    workers_line = ""
    for line in proc.stdout:
        if "workers:" in line:
            workers_line = line.strip()
        if "logs:" in line:
            break
    else:
        raise SystemExit(f"up exited with {proc.wait()} before it was up")
    up_seconds = time.perf_counter() - started
    stopping = time.perf_counter()
    proc.send_signal(signal.SIGINT)
    proc.stdout.read()
    proc.wait(timeout=60)
    return up_seconds, time.perf_counter() - stopping, workers_line


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--no-workers", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="classpulse-up-bench-") as tmp:
        data_dir = Path(tmp) / "data"
        for run in range(1, args.runs + 1):
            up_s, stop_s, workers = one_run(data_dir, not args.no_workers)
            kind = "first start (initdb)" if run == 1 else "restart on kept data"
            print(f"run {run} {kind}: up in {up_s:.1f} s, stopped in {stop_s:.1f} s ({workers})")


if __name__ == "__main__":
    main()
