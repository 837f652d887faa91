"""Classifier speed: faces/s of the served model (ONNX Runtime) at several batch sizes.

Runs the default artifact (or each --model, side by side) on real 48x48 FER2013
PublicTest faces with 1 and 2 intra-op threads, and TensorFlow/Keras on the
same batches for comparison, in one run. The batches go round all 3,589
PublicTest faces, so a model that mirrors only its unsure faces is timed on
PublicTest's own share of them. Usage:

    python -m bench.classifier [--model DIR ...] [--data PATH] [--seconds 3] [--no-keras]
"""

from __future__ import annotations

import argparse
import itertools
import os
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np

from shared.settings import DEFAULT_MODEL_DIR
from shared.vision.classify import ExpressionClassifier
from training.data import DEFAULT_DATA_DIR, load


def faces_per_second(
    run: Callable[[np.ndarray], object], faces: np.ndarray, size: int, seconds: float
) -> float:
    batches = itertools.cycle(faces[i : i + size] for i in range(0, len(faces) - size + 1, size))
    run(next(batches))  # warm-up
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        batch = next(batches)
        run(batch)
        done += len(batch)
    return done / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--model", type=Path, action="append", help="artifact folder (repeat to compare)"
    )
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--no-keras", action="store_true", help="skip the TensorFlow comparison")
    args = parser.parse_args()

    models = args.model or [DEFAULT_MODEL_DIR]
    faces = load(args.data, "PublicTest").images[..., np.newaxis].astype(np.float32)
    print(f"{os.cpu_count()} CPUs; faces/s (higher is better)")
    print(f"{'model':<56}{'runtime':<42}{'batch':>6}{'faces/s':>10}")
    for model_dir in models:
        for threads in (1, 2):
            classifier = ExpressionClassifier(model_dir, threads=threads)
            meta = classifier.metadata
            runtime = f"onnxruntime {threads}t {meta.serving}"
            for size in (1, 8, 32):
                rate = faces_per_second(classifier.predict_batch, faces, size, args.seconds)
                print(f"{meta.version:<56}{runtime:<42}{size:>6}{rate:>10.0f}")
        if not args.no_keras and not (model_dir / "model.keras").is_file():
            # The default ships its ONNX model only; import-weights rebuilds the Keras one.
            print(f"{meta.version:<56}{'keras: no model.keras here':<42}")
        elif not args.no_keras:
            os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
            import keras

            model = keras.models.load_model(model_dir / "model.keras", compile=False)
            infer = partial(model, training=False)
            for size in (1, 32):
                rate = faces_per_second(infer, faces, size, args.seconds)
                print(f"{meta.version:<56}{'keras (TF eager)':<42}{size:>6}{rate:>10.0f}")


if __name__ == "__main__":
    main()
