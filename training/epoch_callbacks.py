"""Keras callbacks for runs that span sessions: the committed checkpoint and a time budget."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import keras

from training import checkpoint
from training.checkpoint import EpochRecord, RunState, Weights

log = logging.getLogger("classpulse.train")


class CommittedCheckpoint(keras.callbacks.Callback):  # type: ignore[misc]
    """After each epoch, replace the run's checkpoint in ``directory`` (training.checkpoint)."""

    def __init__(
        self, directory: Path, run_dir: Path, state: RunState, best: Weights | None, precision: str
    ) -> None:
        super().__init__()
        self.directory, self.run_dir, self.state = directory, run_dir, state
        self.best = best
        self.precision = precision
        self.cpu = checkpoint.cpu_description()
        self._started = time.monotonic()

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._started = time.monotonic()

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        val = float((logs or {}).get("val_accuracy", 0.0))
        weights = self.model.get_weights()
        if self.best is None or val > self.state.best_val_accuracy:
            self.best = weights
            self.state.best_val_accuracy, self.state.best_epoch = val, epoch + 1
        self.state.epochs_done = epoch + 1
        self.state.optimizer_steps = int(self.model.optimizer.iterations.numpy())
        seconds = round(time.monotonic() - self._started, 1)
        self.state.epochs.append(EpochRecord(epoch + 1, seconds, self.cpu, self.precision, val))
        log.info("epoch %d ran %.0fs on %s (%s)", epoch + 1, seconds, self.cpu, self.precision)
        checkpoint.save(self.directory, self.state, weights, self.best, self.run_dir)


class TimeBudget(keras.callbacks.Callback):  # type: ignore[misc]
    """Stop after the last epoch that can finish before ``deadline`` (time.monotonic())."""

    def __init__(self, deadline: float) -> None:
        super().__init__()
        self.deadline = deadline
        self.stopped_after: int | None = None
        self._started = time.monotonic()

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._started = time.monotonic()

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        now = time.monotonic()
        # The next epoch takes about as long as this one did.
        if now + (now - self._started) > self.deadline:
            self.model.stop_training = True
            self.stopped_after = epoch + 1
