"""A run's committed checkpoint: what lets a CPU training run go on in a later session.

A training run may need more CPU hours than one session has, and the next
session may run on another machine. With ``--checkpoint DIR`` (for instance
``models/checkpoints/<run>/``) every finished epoch replaces one file,
``DIR/checkpoint.npz`` (the last and the best weights, float16 where that is
lossless enough, and the optimizer's step count, which places the learning-rate
schedule), and writes ``DIR/state.json`` (the run's settings, the best PublicTest
accuracy so far and, per epoch, the CPU it ran on) beside copies of the run's log
and history. ``classpulse train --resume --checkpoint DIR`` continues from it on
any machine. SGD's momentum is not kept: it is rebuilt within a few dozen of an
epoch's hundreds of steps, and leaving it out halves the file.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from shared.errors import ModelArtifactError

CHECKPOINT_NAME = "checkpoint.npz"
STATE_NAME = "state.json"
#: The run files copied beside the checkpoint after each epoch.
RUN_FILES = ("train.log", "history.csv")

Weights = list[npt.NDArray[Any]]


@dataclass
class EpochRecord:
    """Where and how one epoch ran: the machines of a run differ between sessions."""

    epoch: int
    seconds: float
    cpu: str
    precision: str
    val_accuracy: float


@dataclass
class RunState:
    """``state.json``: enough to continue the run and to read its history."""

    config: dict[str, Any]
    epochs_done: int = 0
    optimizer_steps: int = 0
    best_val_accuracy: float = 0.0
    best_epoch: int = 0
    epochs: list[EpochRecord] = field(default_factory=list)


def cpu_description(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """The CPU's model name and its widest vector/matrix extension, e.g. ``Xeon (AMX)``."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return platform.processor() or platform.machine()
    name = next(
        (line.split(":", 1)[1].strip() for line in text.splitlines() if "model name" in line),
        platform.machine(),
    )
    flags = set(next((ln for ln in text.splitlines() if ln.startswith("flags")), "").split())
    kind = next(
        (label for flag, label in (("amx_bf16", "AMX"), ("avx512f", "AVX-512"), ("avx2", "AVX2"))
         if flag in flags),
        "no AVX2",
    )  # fmt: skip
    return f"{name} ({kind})"


def _pack(prefix: str, weights: Weights) -> dict[str, npt.NDArray[Any]]:
    # float16 keeps a trained net's accuracy; BatchNorm's moving variance can be
    # tiny or large, so float32 stays for small (non-kernel) arrays.
    return {
        f"{prefix}/{i:03d}": w.astype(np.float16) if w.ndim > 1 else w.astype(np.float32)
        for i, w in enumerate(weights)
    }


def _unpack(archive: Any, prefix: str) -> Weights:
    names = sorted(n for n in archive.files if n.startswith(prefix + "/"))
    return [archive[n].astype(np.float32) for n in names]


def _replace(path: Path, write: Any) -> None:
    """Write through a temporary file in the same folder, then rename: a stop mid-write
    leaves the previous checkpoint whole."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save(directory: Path, state: RunState, last: Weights, best: Weights, run_dir: Path) -> None:
    """Replace the checkpoint in ``directory`` with this epoch's; copy the run's log files."""
    directory.mkdir(parents=True, exist_ok=True)
    arrays = {**_pack("last", last), **_pack("best", best)}
    savez: Any = np.savez  # numpy's stub types keyword arrays as its own options
    _replace(directory / CHECKPOINT_NAME, lambda handle: savez(handle, **arrays))
    text = json.dumps(asdict(state), indent=1, default=str) + "\n"
    _replace(directory / STATE_NAME, lambda handle: handle.write(text.encode()))
    for name in RUN_FILES:
        if (run_dir / name).is_file():
            shutil.copyfile(run_dir / name, directory / name)


def load(directory: Path) -> tuple[RunState, Weights, Weights]:
    """The state and the last and best weights saved in ``directory``."""
    try:
        raw = json.loads((directory / STATE_NAME).read_text())
        with np.load(directory / CHECKPOINT_NAME) as archive:
            last, best = _unpack(archive, "last"), _unpack(archive, "best")
    except (OSError, ValueError, KeyError) as exc:
        raise ModelArtifactError(f"{directory} holds no usable checkpoint: {exc}") from exc
    records = [EpochRecord(**r) for r in raw.pop("epochs", [])]
    return RunState(**raw, epochs=records), last, best


def exists(directory: Path) -> bool:
    return (directory / CHECKPOINT_NAME).is_file() and (directory / STATE_NAME).is_file()
