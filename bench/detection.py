"""Face detection quality on the labelled frames: precision and recall by face size.

The labelled set is ``tests/fixtures/face_boxes.json`` (how it was made:
``tests/fixtures/face_boxes.md``). A detection is a hit when it overlaps an
unmatched labelled face at IoU >= 0.5 (best score first, each face matched
once); a detection on an "ignore" region, or under 10 px high, is not scored;
every other detection is a false face. Face size is the labelled box height
over the frame's shorter side. Usage:

    python -m bench.detection [--detector NAME ...] [--min-face 0.1] [--markdown]

Each detector runs as shipped (its ``min_face_fraction``); ``--min-face``
adds rows at other minimum face sizes.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from shared.settings import DEFAULT_MIN_FACE_FRACTION
from shared.vision.detect import DETECTORS, FaceDetector, make_detector

ROOT = Path(__file__).resolve().parents[1]
LABELS = ROOT / "tests" / "fixtures" / "face_boxes.json"
MEDIA = ROOT / "media"
IOU = 0.5
#: Faces and detections under this height are not labelled, so not scored.
MIN_SCORED = 10
#: Face size buckets (box height / shorter frame side): small, webcam-sized, close.
BUCKETS = ((0.0, 0.1, "< 1/10"), (0.1, 0.25, "1/10-1/4"), (0.25, 10.0, ">= 1/4"))

BoxT = tuple[int, int, int, int]


@dataclass
class LabelledFrame:
    name: str
    image: np.ndarray
    faces: list[BoxT]
    ignore: list[BoxT]


def load_labelled(path: Path = LABELS, media: Path = MEDIA) -> list[LabelledFrame]:
    """The labelled frames with their pixels (photos read, video frames decoded)."""
    doc = json.loads(path.read_text(encoding="utf-8"))
    frames = []
    videos: dict[str, dict[int, np.ndarray]] = {}
    for entry in doc["frames"]:
        source, index = entry["source"], entry["frame"]
        if index is None:
            image = cv2.imread(str(media / source))
        else:
            if source not in videos:
                videos[source] = _wanted_frames(media / source, doc["frames"], source)
            image = videos[source][index]
        if image is None or image.shape[:2] != (entry["height"], entry["width"]):
            raise SystemExit(f"{source} frame {index}: not the labelled size")
        name = source if index is None else f"{source}#{index}"
        faces: list[BoxT] = [(b[0], b[1], b[2], b[3]) for b in entry["faces"]]
        ignore: list[BoxT] = [(b[0], b[1], b[2], b[3]) for b in entry["ignore"]]
        frames.append(LabelledFrame(name, image, faces, ignore))
    return frames


def _wanted_frames(path: Path, entries: list[dict[str, Any]], source: str) -> dict[int, np.ndarray]:
    wanted = {e["frame"] for e in entries if e["source"] == source}
    capture = cv2.VideoCapture(str(path))
    found: dict[int, np.ndarray] = {}
    index = 0
    while len(found) < len(wanted):
        ok, frame = capture.read()
        if not ok:
            break
        if index in wanted:
            found[index] = frame
        index += 1
    capture.release()
    return found


def iou(a: BoxT, b: BoxT) -> float:
    x0, y0 = max(a[0], b[0]), max(a[1], b[1])
    x1, y1 = min(a[0] + a[2], b[0] + b[2]), min(a[1] + a[3], b[1] + b[3])
    inter = max(0, x1 - x0) * max(0, y1 - y0)
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


def bucket(height: float, short_side: int) -> int:
    size = height / short_side
    return next(i for i, (lo, hi, _) in enumerate(BUCKETS) if lo <= size < hi)


@dataclass
class Score:
    """Counts per size bucket: labelled faces, faces found, false detections."""

    faces: list[int] = field(default_factory=lambda: [0] * len(BUCKETS))
    hits: list[int] = field(default_factory=lambda: [0] * len(BUCKETS))
    false: list[int] = field(default_factory=lambda: [0] * len(BUCKETS))
    seconds: float = 0.0
    frames: int = 0

    def recall(self, i: int) -> float:
        return self.hits[i] / self.faces[i] if self.faces[i] else float("nan")

    def recall_from(self, first: int) -> tuple[int, int]:
        return sum(self.hits[first:]), sum(self.faces[first:])

    @property
    def precision(self) -> float:
        hits, false = sum(self.hits), sum(self.false)
        return hits / (hits + false) if hits + false else float("nan")


def score_frame(score: Score, frame: LabelledFrame, found: list[tuple[BoxT, float]]) -> None:
    """Match one frame's detections (box, score) against its labels into ``score``."""
    short = min(frame.image.shape[:2])
    faces = [f for f in frame.faces if f[3] >= MIN_SCORED]
    for face in faces:
        score.faces[bucket(face[3], short)] += 1
    matched = [False] * len(faces)
    for box, _ in sorted(found, key=lambda d: -d[1]):
        if box[3] < MIN_SCORED:
            continue
        overlaps = [(iou(box, f), i) for i, f in enumerate(faces) if not matched[i]]
        best, index = max(overlaps, default=(0.0, -1))
        if best >= IOU:
            matched[index] = True
            score.hits[bucket(faces[index][3], short)] += 1
        elif not any(iou(box, region) >= IOU for region in frame.ignore):
            score.false[bucket(box[3], short)] += 1


def evaluate(detector: FaceDetector, frames: list[LabelledFrame]) -> Score:
    score = Score()
    detector.detect(frames[0].image)  # warm-up
    for frame in frames:
        start = time.perf_counter()
        detections = detector.detect(frame.image)
        score.seconds += time.perf_counter() - start
        score.frames += 1
        found = [
            ((d.box.x, d.box.y, d.box.w, d.box.h), d.score if d.score is not None else 1.0)
            for d in detections
        ]
        score_frame(score, frame, found)
    return score


def table(scores: dict[str, Score], markdown: bool) -> list[str]:
    heads = [f"recall {label}" for _, _, label in BUCKETS]
    cols = ["detector", *heads, "recall >= 1/10", "false faces", "precision", "ms/frame"]
    lines = []
    if markdown:
        lines += ["| " + " | ".join(cols) + " |", "|" + " --- |" * len(cols)]
    else:
        lines.append("  ".join(f"{c:>14}" for c in cols))
    for name, s in scores.items():
        hits, faces = s.recall_from(1)
        cells = [
            name,
            *(f"{s.hits[i]}/{s.faces[i]} ({s.recall(i):.0%})" for i in range(len(BUCKETS))),
            f"{hits}/{faces} ({hits / faces:.0%})",
            str(sum(s.false)),
            f"{s.precision:.1%}",
            f"{1000 * s.seconds / s.frames:.1f}",
        ]
        if markdown:
            lines.append("| " + " | ".join(cells) + " |")
        else:
            lines.append("  ".join(f"{c:>14}" for c in cells))
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--detector", action="append", choices=DETECTORS)
    parser.add_argument("--min-face", type=float, action="append", default=[])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    frames = load_labelled()
    faces = sum(len(f.faces) for f in frames)
    print(f"{len(frames)} labelled frames, {faces} faces; IoU >= {IOU}")
    scores = {}
    for name in args.detector or DETECTORS:
        for fraction in [DEFAULT_MIN_FACE_FRACTION, *args.min_face]:
            label = name if fraction == DEFAULT_MIN_FACE_FRACTION else f"{name} @{fraction:g}"
            detector = make_detector(name, min_face_fraction=fraction, threads=args.threads)
            scores[label] = evaluate(detector, frames)
    print("\n".join(table(scores, args.markdown)))


if __name__ == "__main__":
    main()
