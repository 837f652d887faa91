"""PublicTest quality of model artifacts side by side, as a Markdown table.

Each model is evaluated through the serving classifier (with its own
test-time augmentation and ONNX precision), exactly as ``classpulse evaluate`` does. Usage:

    python -m bench.model_quality [--data PATH] [--split PublicTest] [--mean] MODEL_DIR [...]

Beside FER2013's accuracy: accuracy against the FER+ majority label of each
image, and the expected calibration error (ECE, 15 bins) of the top class.
``--mean`` adds a row for the mean of the models' probabilities: what an
ensemble of them would score, at the sum of their inference costs.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from shared.labels import LABELS
from shared.settings import DEFAULT_MODEL_DIR
from shared.vision.classify import ExpressionClassifier
from training.calibration import expected_calibration_error, ferplus_accuracy
from training.data import DEFAULT_DATA_DIR, FERPLUS_NAME, Split, load, load_ferplus_votes
from training.evaluate import Evaluation, metrics, split_probabilities


def _row(
    result: Evaluation,
    parameters: int,
    served: str,
    seconds: float | None,
    probs: np.ndarray,
    split: Split,
    votes: np.ndarray | None,
) -> str:
    recalls = [f"{result.per_class_recall[label]:.1%}" for label in LABELS]
    ece = expected_calibration_error(probs, split.labels)
    ferplus = "–" if votes is None else f"{ferplus_accuracy(probs, votes)[0]:.2%}"
    row = [result.model_version, f"{parameters:,}", served,
           f"**{result.accuracy:.2%}**", f"{result.macro_recall:.2%}", ferplus, f"{ece:.3f}",
           *recalls,
           "–" if seconds is None else f"{seconds:.1f}"]  # fmt: skip
    return "| " + " | ".join(row) + " |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("models", nargs="*", type=Path, default=[DEFAULT_MODEL_DIR])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--split", default="PublicTest")
    parser.add_argument("--mean", action="store_true", help="add the models' mean as a row")
    args = parser.parse_args()

    split = load(args.data, args.split)
    ferplus = args.data / FERPLUS_NAME if args.data.is_dir() else args.data.parent / FERPLUS_NAME
    votes = load_ferplus_votes(ferplus, split.rows) if ferplus.is_file() else None
    header = ["model", "params", "served", "accuracy", "macro recall", "FER+ majority",
              "ECE", *LABELS, "eval s"]  # fmt: skip
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    probabilities, parameters = [], 0
    for model_dir in args.models:
        start = time.perf_counter()
        classifier = ExpressionClassifier(model_dir)
        probs = split_probabilities(classifier, split)
        seconds = time.perf_counter() - start
        result = metrics(split.labels, probs.argmax(axis=1), args.split, classifier.version)
        meta = classifier.metadata
        print(_row(result, meta.parameters, meta.serving, seconds, probs, split, votes))
        probabilities.append(probs)
        parameters += meta.parameters
    if args.mean and len(probabilities) > 1:
        mean = np.mean(probabilities, axis=0)
        name = f"mean of the {len(probabilities)} models"
        result = metrics(split.labels, mean.argmax(axis=1), args.split, name)
        print(_row(result, parameters, "each its own", None, mean, split, votes))
    print(f"\n{args.split}: {len(split)} images from {args.data}")


if __name__ == "__main__":
    main()
