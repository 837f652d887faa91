"""Vision pipeline speed beside the ``fer`` package's pipeline, on the same real frames.

Frames: the media photos letterboxed to 640x480 and 1280x720, and every 15th
frame of the media videos at the same sizes. Each pipeline runs over all
frames for a few rounds; the script prints frames/s, p50/p95 latency and the
ratio, then each pipeline's face detection alone (the ceiling of the ratio,
since both use the same cascade), and checks that no face of at least 1/6 of
the frame height is lost (the reference is a thorough full-resolution Haar
pass: scale step 1.05, 24 px minimum). Usage:

    python -m bench.pipeline [--model DIR] [--rounds 3] [--no-fer]

The comparison needs the ``fer`` package, installed without its dependency
pins: ``pip install --no-deps fer`` (it runs offline on TensorFlow Lite).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np

from shared.settings import DEFAULT_MODEL_DIR
from shared.vision.classify import ExpressionClassifier
from shared.vision.detect import HAAR_CASCADE_FILE, HaarDetector, HaarSettings, load_cascade
from shared.vision.pipeline import Pipeline
from shared.vision.preprocess import Box

MEDIA = Path(__file__).resolve().parents[1] / "media"
SIZES = ((640, 480), (1280, 720))
VIDEO_STEP = 15


def letterbox(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """Fit ``image`` into width x height without distortion, padding with gray."""
    h, w = image.shape[:2]
    scale = min(width / w, height / h)
    resized = cv2.resize(image, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
    canvas = np.full((height, width, 3), 128, dtype=np.uint8)
    y, x = (height - resized.shape[0]) // 2, (width - resized.shape[1]) // 2
    canvas[y : y + resized.shape[0], x : x + resized.shape[1]] = resized
    return canvas


def source_images() -> list[np.ndarray]:
    images: list[np.ndarray] = []
    for path in sorted(MEDIA.glob("*.jpg")) + sorted(MEDIA.glob("*.png")):
        image = cv2.imread(str(path))
        if image is None:
            raise SystemExit(f"{path}: not a readable image")
        images.append(np.asarray(image))
    for video in sorted(MEDIA.glob("*.mp4")):
        capture = cv2.VideoCapture(str(video))
        index = 0
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            if index % VIDEO_STEP == 0:
                images.append(np.asarray(frame))
            index += 1
        capture.release()
    return images


def timed(
    run: Callable[[np.ndarray], object], frames: list[np.ndarray], rounds: int
) -> list[float]:
    run(frames[0])  # warm-up
    latencies = []
    for _ in range(rounds):
        for frame in frames:
            start = time.perf_counter()
            run(frame)
            latencies.append(time.perf_counter() - start)
    return latencies


def summary(name: str, latencies: list[float]) -> float:
    fps = len(latencies) / sum(latencies)
    q = statistics.quantiles(latencies, n=20)
    print(
        f"  {name:<18} {fps:7.1f} frames/s   p50 {q[9] * 1000:6.1f} ms   p95 {q[18] * 1000:6.1f} ms"
    )
    return fps


def iou(a: Box, b: Box) -> float:
    x0, y0 = max(a.x, b.x), max(a.y, b.y)
    x1, y1 = min(a.x + a.w, b.x + b.w), min(a.y + a.h, b.y + b.h)
    inter = max(0, x1 - x0) * max(0, y1 - y0)
    return inter / float(a.w * a.h + b.w * b.h - inter)


def large_reference_faces(frames: list[np.ndarray]) -> list[list[Box]]:
    """Per frame, the faces >= 1/6 of its height found by a thorough full-resolution pass."""
    reference = load_cascade(cv2.data.haarcascades + HAAR_CASCADE_FILE)  # type: ignore[attr-defined]
    faces = []
    for frame in frames:
        gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        found = reference.detectMultiScale(gray, 1.05, 5, minSize=(24, 24))
        faces.append(
            [Box(int(x), int(y), int(w), int(h)) for x, y, w, h in found if h >= gray.shape[0] / 6]
        )
    return faces


def detection_counts(
    frames: list[np.ndarray], reference: list[list[Box]], detector: HaarDetector
) -> tuple[int, int]:
    """(faces the detector finds, reference faces it misses)."""
    found = missed = 0
    for frame, large in zip(frames, reference, strict=True):
        boxes = [d.box for d in detector.detect(frame)]
        found += len(boxes)
        missed += sum(1 for face in large if not any(iou(face, b) >= 0.3 for b in boxes))
    return found, missed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL_DIR)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="ONNX Runtime intra-op threads")
    parser.add_argument("--no-fer", action="store_true", help="skip the fer comparison")
    parser.add_argument(
        "--min-face",
        type=float,
        action="append",
        help="minimum face (fraction of the shorter side) to measure besides the default; "
        "repeatable",
    )
    args = parser.parse_args()

    classifier = ExpressionClassifier(args.model, threads=args.threads)
    default = HaarSettings()
    variants = {"classpulse": HaarDetector(default)}
    for fraction in args.min_face or []:
        variants[f"min face {fraction:.3g}"] = HaarDetector(
            replace(default, min_face_fraction=fraction)
        )
    pipelines = {name: Pipeline(classifier, detector) for name, detector in variants.items()}
    fer = None
    if not args.no_fer:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        from fer.fer import FER

        fer = FER()
    sources = source_images()
    print(
        f"{len(sources)} source frames; model {classifier.version} "
        f"(tta {classifier.metadata.tta}); detector {default}; {os.cpu_count()} CPUs"
    )
    for width, height in SIZES:
        frames = [letterbox(img, width, height) for img in sources]
        print(f"{width}x{height}:")
        fps = {
            name: summary(name, timed(p.analyze, frames, args.rounds))
            for name, p in pipelines.items()
        }
        if fer is not None:
            fer_fps = summary("fer", timed(fer.detect_emotions, frames, args.rounds))
            for name, value in fps.items():
                print(f"  ratio {name:<18} {value / fer_fps:5.2f}x")
            # Both detect with the same Haar cascade, so detection alone bounds
            # the ratio (as if classification were free).
            print("  face detection alone:")
            fer_detect_fps = summary("fer", timed(fer.find_faces, frames, args.rounds))
            print(f"  (fer spends {fer_fps / fer_detect_fps:.0%} of its frame time detecting)")
            for name, detector in variants.items():
                detect_fps = summary(name, timed(detector.detect, frames, args.rounds))
                print(f"  ceiling {name:<16} {detect_fps / fer_fps:5.2f}x")
        reference = large_reference_faces(frames)
        total = sum(len(faces) for faces in reference)
        for name, detector in variants.items():
            found, missed = detection_counts(frames, reference, detector)
            print(
                f"  {name}: faces found {found}; of {total} reference faces >= 1/6 frame "
                f"height, missed {missed}"
            )


if __name__ == "__main__":
    main()
