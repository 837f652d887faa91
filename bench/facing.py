"""The "facing the screen" call on real frames: accuracy, share of media faces, cost.

Accuracy is measured on ``tests/fixtures/facing.json`` (how it was made:
``tests/fixtures/facing.md``): a detection matches a labelled face at IoU >= 0.5
and its call is compared with the label; labelled faces the detector misses and
borderline ones are not scored. The share facing counts every face with
keypoints that the detector finds in every photo and every video frame of
``media/``. Usage:

    python -m bench.facing [--detector NAME ...]
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from bench.detection import iou
from shared.vision.detect import BLAZEFACE_FULL, DETECTORS, RETINAFACE, FaceDetector, make_detector
from shared.vision.pose import head_pose, is_facing

ROOT = Path(__file__).resolve().parents[1]
LABELS = ROOT / "tests" / "fixtures" / "facing.json"
MEDIA = ROOT / "media"
IOU = 0.5

BoxT = tuple[int, int, int, int]
Frame = np.ndarray


@dataclass(frozen=True)
class LabelledFace:
    source: str
    #: Index in ``VideoCapture.read()`` order; None for a photo.
    frame: int | None
    box: BoxT
    #: True facing, False turned away, None borderline (not scored).
    facing: bool | None


def load_labels(path: Path = LABELS) -> list[LabelledFace]:
    faces = json.loads(path.read_text(encoding="utf-8"))["faces"]
    return [
        LabelledFace(
            f["source"],
            f["frame"],
            (f["box"][0], f["box"][1], f["box"][2], f["box"][3]),
            f["facing"],
        )
        for f in faces
    ]


def video_frames(path: Path, wanted: set[int] | None = None) -> Iterator[tuple[int, Frame]]:
    """Frames of a video (all, or those ``wanted``) by their index in read order."""
    capture = cv2.VideoCapture(str(path))
    index = 0
    try:
        while wanted is None or index <= max(wanted, default=-1):
            ok, frame = capture.read()
            if not ok:
                break
            if wanted is None or index in wanted:
                yield index, np.asarray(frame, dtype=np.uint8)
            index += 1
    finally:
        capture.release()


def labelled_frames(
    labels: list[LabelledFace], media: Path = MEDIA
) -> Iterator[tuple[Frame, list[LabelledFace]]]:
    """Each labelled frame's pixels with its labelled faces."""
    by_frame: dict[tuple[str, int | None], list[LabelledFace]] = {}
    for face in labels:
        by_frame.setdefault((face.source, face.frame), []).append(face)
    for source in dict.fromkeys(s for s, _ in by_frame):
        if (source, None) in by_frame:
            image = cv2.imread(str(media / source))
            if image is None:
                raise SystemExit(f"{media / source}: cannot read")
            yield np.asarray(image, dtype=np.uint8), by_frame[(source, None)]
            continue
        wanted = {i for s, i in by_frame if s == source and i is not None}
        for index, frame in video_frames(media / source, wanted):
            yield frame, by_frame[(source, index)]


@dataclass
class Score:
    """How the facing call compares with the labels (matched faces only)."""

    right: dict[bool, int] = field(default_factory=lambda: {True: 0, False: 0})
    total: dict[bool, int] = field(default_factory=lambda: {True: 0, False: 0})
    wrong: list[str] = field(default_factory=list)

    @property
    def scored(self) -> int:
        return sum(self.total.values())

    @property
    def accuracy(self) -> float:
        return sum(self.right.values()) / self.scored if self.scored else 0.0


def score(detector: FaceDetector, labels: list[LabelledFace] | None = None) -> Score:
    """The facing call of ``detector``'s faces against the labels."""
    result = Score()
    for image, faces in labelled_frames(labels if labels is not None else load_labels()):
        found = [
            ((d.box.x, d.box.y, d.box.w, d.box.h), d.keypoints)
            for d in detector.detect(image)
            if d.keypoints is not None
        ]
        for face in faces:
            if face.facing is None or not found:
                continue
            box, keypoints = max(found, key=lambda f: iou(face.box, f[0]))
            if iou(face.box, box) < IOU:
                continue  # a detection miss, not a pose error
            pose = head_pose(keypoints)
            result.total[face.facing] += 1
            if is_facing(pose) == face.facing:
                result.right[face.facing] += 1
            else:
                result.wrong.append(f"{face.source}#{face.frame} {face.box}: {pose}")
    return result


def media_share(detector: FaceDetector, media: Path = MEDIA) -> dict[str, tuple[int, int]]:
    """Per media file: (faces with keypoints found, of them called facing)."""
    shares: dict[str, tuple[int, int]] = {}
    for path in sorted(media.iterdir()):
        if path.suffix in (".jpg", ".png"):
            image = cv2.imread(str(path))
            frames: Iterator[Frame] = iter([] if image is None else [np.asarray(image)])
        elif path.suffix == ".mp4":
            frames = (frame for _, frame in video_frames(path))
        else:
            continue
        faces = facing = 0
        for frame in frames:
            for d in detector.detect(frame):
                if d.keypoints is not None:
                    faces += 1
                    facing += is_facing(head_pose(d.keypoints))
        shares[path.name] = (faces, facing)
    return shares


def cost_per_face(detector: FaceDetector, runs: int = 20_000) -> float:
    """Seconds for one face's head pose and facing call (the obama.jpg face)."""
    image = cv2.imread(str(MEDIA / "obama.jpg"))
    keypoints = next(d.keypoints for d in detector.detect(np.asarray(image)) if d.keypoints)
    start = time.perf_counter()
    for _ in range(runs):
        is_facing(head_pose(keypoints))
    return (time.perf_counter() - start) / runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    cnn = [d for d in DETECTORS if d != "haar"]
    parser.add_argument("--detector", action="append", choices=cnn)
    names = parser.parse_args().detector or [BLAZEFACE_FULL, RETINAFACE]
    for name in names:
        detector = make_detector(name)
        result = score(detector)
        print(
            f"{name}: facing call right on {sum(result.right.values())}/{result.scored} labelled"
            f" faces ({result.accuracy:.1%}); facing {result.right[True]}/{result.total[True]},"
            f" turned away {result.right[False]}/{result.total[False]}"
        )
        for wrong in result.wrong:
            print(f"  wrong: {wrong}")
        shares = media_share(detector)
        for source, (faces, facing) in shares.items():
            print(f"  {source}: {facing}/{faces} faces facing ({facing / max(faces, 1):.0%})")
        faces, facing = (sum(v) for v in zip(*shares.values(), strict=True))
        print(f"  all media: {facing}/{faces} faces facing ({facing / max(faces, 1):.1%})")
        print(f"  cost: {cost_per_face(detector) * 1e6:.1f} us per face")


if __name__ == "__main__":
    main()
