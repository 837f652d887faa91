"""Vision pipeline speed per detector, beside the ``fer`` package's pipeline, in one run.

Frames: the media photos letterboxed to 640x480 and 1280x720, every 15th
frame of the media videos at the same sizes, and 1920x1080 "gallery" frames
(a 5x5 video-call grid of those frames, the smallest wanted face then 1/25 of
the height). Each pipeline analyses every frame for a few rounds; the script
prints frames/s and p50/p95 per detector and for ``fer`` on the same frames,
the ratio, and the split of a frame's time into decode (the frame as a JPEG of
quality 90, decoded as the worker decodes it, at reduced size when the
smallest wanted face allows), detect, align/crop (with the quality checks) and
classify. Frames/s and the ratio are on decoded frames, as ``fer`` takes them.

The pipelines take turns frame by frame (not one after the other), so that a
machine shared with other work slows them alike. Besides wall-clock frames/s
the script prints frames per CPU-second of the process: run it pinned to one
core (``taskset -c 0``) and that is what one core does for each pipeline
whatever else the machine runs. Detection quality is measured by
``bench.detection``. Usage:

    python -m bench.pipeline [--detector NAME ...] [--rounds 3] [--no-fer]

The comparison needs the ``fer`` package, installed without its dependency
pins by ``make bench-peers`` (it runs offline on TensorFlow Lite).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from shared.settings import DEFAULT_DETECTOR, DEFAULT_MIN_FACE_FRACTION, DEFAULT_MODEL_DIR
from shared.vision.classify import ExpressionClassifier
from shared.vision.decode import decode_reduced
from shared.vision.detect import DETECTORS, make_detector
from shared.vision.pipeline import Pipeline

MEDIA = Path(__file__).resolve().parents[1] / "media"
SIZES = ((640, 480), (1280, 720))
VIDEO_STEP = 15
GALLERY = (1920, 1080)
GALLERY_GRID = 5
#: Smallest wanted face in a gallery frame: a tile's face is about a fifth of
#: the tile's height, the tile a fifth of the frame's.
GALLERY_MIN_FACE = 0.04


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


def gallery_frames(sources: list[np.ndarray], count: int) -> list[np.ndarray]:
    """``count`` 1920x1080 frames, each a 5x5 grid of source frames (a video call)."""
    width, height = GALLERY
    tile_w, tile_h = width // GALLERY_GRID, height // GALLERY_GRID
    tiles = [letterbox(img, tile_w, tile_h) for img in sources]
    frames = []
    for n in range(count):
        rows = [
            np.hstack([tiles[(n * 7 + r * GALLERY_GRID + c) % len(tiles)] for c in range(5)])
            for r in range(GALLERY_GRID)
        ]
        frames.append(np.ascontiguousarray(np.vstack(rows)))
    return frames


@dataclass
class Timing:
    """Wall-clock latencies and the process CPU time of one pipeline."""

    latencies: list[float] = field(default_factory=list)
    cpu: float = 0.0


def timed_together(
    runs: dict[str, Callable[[np.ndarray], object]], frames: list[np.ndarray], rounds: int
) -> dict[str, Timing]:
    """Run every pipeline on each frame in turn; per pipeline, its latencies and CPU time."""
    timings = {name: Timing() for name in runs}
    for run in runs.values():
        run(frames[0])  # warm-up
    for _ in range(rounds):
        for frame in frames:
            for name, run in runs.items():
                cpu, start = time.process_time(), time.perf_counter()
                run(frame)
                timings[name].latencies.append(time.perf_counter() - start)
                timings[name].cpu += time.process_time() - cpu
    return timings


def summary(name: str, timing: Timing) -> tuple[float, float]:
    """Print and return (wall-clock frames/s, frames per CPU-second)."""
    latencies = timing.latencies
    fps = len(latencies) / sum(latencies)
    cpu_fps = len(latencies) / timing.cpu if timing.cpu > 0 else float("inf")
    q = statistics.quantiles(latencies, n=20)
    print(
        f"  {name:<22} {fps:7.1f} frames/s   p50 {q[9] * 1000:6.1f} ms   "
        f"p95 {q[18] * 1000:6.1f} ms   {cpu_fps:7.1f} frames/CPU-s"
    )
    return fps, cpu_fps


def split(pipeline: Pipeline, frames: list[np.ndarray], min_face: float) -> dict[str, float]:
    """Mean milliseconds per frame in decode, detect, align/crop and classify."""
    assert pipeline.classifier is not None
    jpegs = [cv2.imencode(".jpg", f, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes() for f in frames]
    totals = dict.fromkeys(("decode", "detect", "align/crop", "classify"), 0.0)
    for data in jpegs:
        t0 = time.perf_counter()
        decoded = decode_reduced(data, min_face, max_pixels=1 << 30)
        t1 = time.perf_counter()
        detections = pipeline.detector.detect(decoded.image)
        t2 = time.perf_counter()
        crops = [pipeline.crop(decoded.image, d) for d in detections]
        t3 = time.perf_counter()
        if crops:
            pipeline.classifier.predict(crops)
        t4 = time.perf_counter()
        for key, seconds in zip(totals, (t1 - t0, t2 - t1, t3 - t2, t4 - t3), strict=True):
            totals[key] += seconds
    return {key: 1000 * value / len(jpegs) for key, value in totals.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL_DIR)
    parser.add_argument("--detector", action="append", choices=DETECTORS)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="ONNX Runtime intra-op threads")
    parser.add_argument("--no-fer", action="store_true", help="skip the fer comparison")
    parser.add_argument("--no-gallery", action="store_true", help="skip the 1920x1080 grid")
    args = parser.parse_args()
    names = args.detector or list(DETECTORS)

    classifier = ExpressionClassifier(args.model, threads=args.threads)
    fer = None
    if not args.no_fer:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        from fer.fer import FER

        fer = FER()
    sources = source_images()
    print(
        f"{len(sources)} source frames; model {classifier.version} "
        f"(tta {classifier.metadata.tta}); default detector {DEFAULT_DETECTOR}; "
        f"{os.cpu_count()} CPUs ({platform.processor() or platform.machine()}); "
        f"{args.threads} ONNX Runtime thread(s)"
    )
    sets = [
        (f"{w}x{h}", [letterbox(img, w, h) for img in sources], DEFAULT_MIN_FACE_FRACTION)
        for w, h in SIZES
    ]
    if not args.no_gallery:
        gallery = gallery_frames(sources, max(8, len(sources) // 8))
        sets.append((f"{GALLERY[0]}x{GALLERY[1]} 5x5 gallery", gallery, GALLERY_MIN_FACE))
    for title, frames, min_face in sets:
        print(f"{title} ({len(frames)} frames, smallest face {min_face:g} of the shorter side):")
        pipelines = {
            name: Pipeline(
                classifier, make_detector(name, min_face_fraction=min_face, threads=args.threads)
            )
            for name in names
        }
        runs: dict[str, Callable[[np.ndarray], object]] = {
            name: p.analyze for name, p in pipelines.items()
        }
        if fer is not None:
            runs["fer"] = fer.detect_emotions
        timings = timed_together(runs, frames, args.rounds)
        fps = {name: summary(name, timing) for name, timing in timings.items()}
        if fer is not None:
            fer_wall, fer_cpu = fps.pop("fer")
            for name, (wall, cpu) in fps.items():
                print(
                    f"  ratio {name:<16} {wall / fer_wall:5.2f}x fer (wall clock), "
                    f"{cpu / fer_cpu:5.2f}x (CPU time)"
                )
        print("  ms per frame:            decode   detect  align/crop  classify   faces/frame")
        for name, pipeline in pipelines.items():
            parts = split(pipeline, frames, min_face)
            faces = sum(len(pipeline.detector.detect(f)) for f in frames) / len(frames)
            print(
                f"  {name:<22} {parts['decode']:7.2f}  {parts['detect']:7.2f}  "
                f"{parts['align/crop']:10.2f}  {parts['classify']:8.2f}   {faces:11.2f}"
            )


if __name__ == "__main__":
    main()
