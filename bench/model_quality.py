"""PublicTest quality of model artifacts side by side, as a Markdown table.

Each model is evaluated through the serving classifier (with its own
test-time augmentation), exactly as ``classpulse evaluate`` does. Usage:

    python -m bench.model_quality [--data PATH] [--split PublicTest] MODEL_DIR [MODEL_DIR ...]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from shared.labels import LABELS
from shared.settings import DEFAULT_MODEL_DIR
from shared.vision.artifact import read_metadata
from training.data import DEFAULT_DATA_DIR, load
from training.evaluate import evaluate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("models", nargs="*", type=Path, default=[DEFAULT_MODEL_DIR])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--split", default="PublicTest")
    args = parser.parse_args()

    split = load(args.data, args.split)
    header = ["model", "params", "TTA", "accuracy", "macro recall", *LABELS, "eval s"]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for model_dir in args.models:
        start = time.perf_counter()
        result = evaluate(model_dir, split, args.split)
        seconds = time.perf_counter() - start
        meta = read_metadata(model_dir)
        recalls = [f"{result.per_class_recall[label]:.1%}" for label in LABELS]
        row = [result.model_version, f"{meta.parameters:,}", meta.tta,
               f"**{result.accuracy:.2%}**", f"{result.macro_recall:.2%}", *recalls,
               f"{seconds:.1f}"]  # fmt: skip
        print("| " + " | ".join(row) + " |")
    print(f"\n{args.split}: {len(split)} images from {args.data}")


if __name__ == "__main__":
    main()
