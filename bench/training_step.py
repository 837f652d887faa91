"""Training speed: ms per SGD step in float32 and in mixed bfloat16, side by side.

``classpulse train`` picks mixed bfloat16 only on CPUs with AMX
(``training.train.native_bfloat16``); this script measures whether that
choice holds on the machine at hand. It trains on random 48x48 batches (the
step's cost does not depend on the pixel values). Usage:

    python -m bench.training_step [--arch vgg_bn] [--steps 40] [--batch-size 64]
"""

from __future__ import annotations

import argparse
import math
import os
import time

import numpy as np

from shared.labels import NUM_CLASSES
from shared.vision.preprocess import INPUT_SHAPE

#: Steps per FER2013 Training epoch at batch 64 (28,709 images).
TRAINING_IMAGES = 28_709


def ms_per_step(policy: str, arch: str, steps: int, batch_size: int) -> float:
    import keras

    from training.models import make_model

    keras.mixed_precision.set_global_policy(policy)
    model = make_model(arch)
    model.compile(
        optimizer=keras.optimizers.SGD(1e-2, momentum=0.9, nesterov=True),
        loss="categorical_crossentropy",
    )
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (steps * batch_size, *INPUT_SHAPE)).astype(np.float32)
    y = np.eye(NUM_CLASSES, dtype=np.float32)[rng.integers(0, NUM_CLASSES, len(x))]
    model.fit(x, y, batch_size=batch_size, epochs=1, verbose=0)  # compile and warm up
    start = time.perf_counter()
    model.fit(x, y, batch_size=batch_size, epochs=1, verbose=0)
    return 1000 * (time.perf_counter() - start) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--arch", default="vgg_bn")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from training.train import native_bfloat16

    steps_per_epoch = math.ceil(TRAINING_IMAGES / args.batch_size)
    print(f"{args.arch}, batch {args.batch_size}, {os.cpu_count()} CPUs; AMX: {native_bfloat16()}")
    print(f"{'policy':<16}{'ms/step':>9}{'min/epoch':>11}")
    results = {}
    for policy in ("float32", "mixed_bfloat16"):
        results[policy] = ms_per_step(policy, args.arch, args.steps, args.batch_size)
        minutes = results[policy] * steps_per_epoch / 60_000
        print(f"{policy:<16}{results[policy]:>9.0f}{minutes:>11.1f}")
    print(f"mixed_bfloat16 / float32 time: {results['mixed_bfloat16'] / results['float32']:.2f}")


if __name__ == "__main__":
    main()
