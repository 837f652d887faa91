"""Head pose from keypoints: the geometry, real photos, the labelled media faces, the cost."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass

import cv2
import numpy as np
import pytest

from bench.detection import iou
from shared.vision.detect import BLAZEFACE_FULL, RETINAFACE, Keypoints, make_detector
from shared.vision.pose import (
    MOUTH_DEPTH,
    MOUTH_DROP,
    NOSE_DEPTH,
    NOSE_DROP,
    FacingLimits,
    HeadPose,
    head_pose,
    is_facing,
)
from shared.vision.preprocess import Box
from tests.conftest import FIXTURES, MEDIA

BoxT = tuple[int, int, int, int]


@dataclass(frozen=True)
class LabelledFace:
    source: str
    frame: int | None
    box: BoxT
    #: True facing, False turned away, None borderline (not scored).
    facing: bool | None


LABELS = [
    LabelledFace(
        f["source"], f["frame"], (f["box"][0], f["box"][1], f["box"][2], f["box"][3]), f["facing"]
    )
    for f in json.loads((FIXTURES / "facing.json").read_text(encoding="utf-8"))["faces"]
]


def read(name: str) -> np.ndarray:
    image = cv2.imread(str(MEDIA / name))
    assert image is not None
    return np.asarray(image, dtype=np.uint8)


def project(yaw: float, pitch: float, roll: float = 0.0, scale: float = 80.0) -> Keypoints:
    """Keypoints of the model face nodded by ``pitch``, then turned by ``yaw`` (degrees)."""
    face = np.asarray(
        [[-0.5, 0, 0], [0.5, 0, 0], [0, NOSE_DROP, NOSE_DEPTH], [0, MOUTH_DROP, MOUTH_DEPTH]]
    )
    p, y, r = (math.radians(a) for a in (pitch, yaw, roll))
    # y down, z towards the camera: a positive pitch brings the chin forward (raised).
    nod = np.asarray([[1, 0, 0], [0, math.cos(p), -math.sin(p)], [0, math.sin(p), math.cos(p)]])
    turn = np.asarray([[math.cos(y), 0, math.sin(y)], [0, 1, 0], [-math.sin(y), 0, math.cos(y)]])
    tilt = np.asarray([[math.cos(r), -math.sin(r)], [math.sin(r), math.cos(r)]])
    points = (face @ nod.T @ turn.T)[:, :2] @ tilt.T * scale + [320.0, 240.0]
    return Keypoints(*((float(x), float(v)) for x, v in points))


@pytest.mark.parametrize(
    ("yaw", "pitch"), [(0, 0), (20, 0), (-35, 0), (0, 15), (0, -20), (30, -15)]
)
def test_angles_of_the_model_face_are_recovered(yaw: float, pitch: float) -> None:
    pose = head_pose(project(yaw, pitch))
    assert pose.yaw == pytest.approx(yaw, abs=0.5)
    assert pose.pitch == pytest.approx(pitch, abs=0.5)


def test_roll_and_size_do_not_change_the_angles() -> None:
    upright = head_pose(project(25, -10))
    tilted = head_pose(project(25, -10, roll=30, scale=200))
    assert tilted.yaw == pytest.approx(upright.yaw, abs=1e-6)
    assert tilted.pitch == pytest.approx(upright.pitch, abs=1e-6)


def test_facing_follows_the_limits() -> None:
    limits = FacingLimits(max_yaw=25, max_pitch_up=25, max_pitch_down=20)
    assert is_facing(HeadPose(24, 24), limits)
    assert is_facing(HeadPose(-24, -19), limits)
    assert not is_facing(HeadPose(26, 0), limits)
    assert not is_facing(HeadPose(-26, 0), limits)
    assert not is_facing(HeadPose(0, 26), limits)
    assert not is_facing(HeadPose(0, -21), limits)


def test_a_mirrored_frame_turns_the_other_way() -> None:
    detector = make_detector(RETINAFACE)
    # Frame 250 of the clip: an audience member turned well to the image's left.
    frame = video_frames("short_hamilton_clip.mp4", {250})[250]
    turned = [head_pose(d.keypoints) for d in detector.detect(frame) if d.keypoints]
    flipped = np.ascontiguousarray(frame[:, ::-1])
    mirrored = [head_pose(d.keypoints) for d in detector.detect(flipped) if d.keypoints]
    assert min(p.yaw for p in turned) < -45
    # Mirroring swaps the image's sides: the same head now turns to the right.
    assert max(p.yaw for p in mirrored) > 45


def video_frames(name: str, wanted: set[int]) -> dict[int, np.ndarray]:
    """Frames of a media video by their index in ``VideoCapture.read()`` order."""
    capture = cv2.VideoCapture(str(MEDIA / name))
    found: dict[int, np.ndarray] = {}
    index = 0
    while len(found) < len(wanted):
        ok, frame = capture.read()
        if not ok:
            break
        if index in wanted:
            found[index] = np.asarray(frame, dtype=np.uint8)
        index += 1
    capture.release()
    return found


def labelled_frames() -> Iterator[tuple[np.ndarray, list[LabelledFace]]]:
    """Each labelled frame with its labelled faces."""
    by_frame: dict[tuple[str, int | None], list[LabelledFace]] = {}
    for face in LABELS:
        by_frame.setdefault((face.source, face.frame), []).append(face)
    videos: dict[str, dict[int, np.ndarray]] = {}
    for (source, index), faces in by_frame.items():
        if index is None:
            yield read(source), faces
            continue
        if source not in videos:
            wanted = {f.frame for f in LABELS if f.source == source and f.frame is not None}
            videos[source] = video_frames(source, wanted)
        yield videos[source][index], faces


def as_tuple(box: Box) -> BoxT:
    return (box.x, box.y, box.w, box.h)


#: Least share of the labelled faces (facing or turned away) called right.
MIN_ACCURACY = 0.95


@pytest.mark.parametrize(("detector_name", "min_scored"), [(BLAZEFACE_FULL, 70), (RETINAFACE, 95)])
def test_facing_call_agrees_with_the_labels(detector_name: str, min_scored: int) -> None:
    detector = make_detector(detector_name)
    right = {True: 0, False: 0}
    total = {True: 0, False: 0}
    wrong: list[str] = []
    for image, faces in labelled_frames():
        found = [d for d in detector.detect(image) if d.keypoints is not None]
        for face in faces:
            if face.facing is None:
                continue
            box = face.box
            match = max(found, key=lambda d: iou(box, as_tuple(d.box)), default=None)
            if match is None or iou(box, as_tuple(match.box)) < 0.5:
                continue  # a detection miss, not a pose error
            assert match.keypoints is not None
            pose = head_pose(match.keypoints)
            expected = face.facing
            total[expected] += 1
            if is_facing(pose) == expected:
                right[expected] += 1
            else:
                wrong.append(f"{face.source}#{face.frame} {box}: {pose}")
    scored = sum(total.values())
    accuracy = sum(right.values()) / scored
    print(
        f"\n{detector_name}: facing call right on {sum(right.values())}/{scored} labelled faces"
        f" ({accuracy:.1%}); facing {right[True]}/{total[True]},"
        f" turned away {right[False]}/{total[False]}; wrong: {wrong}"
    )
    assert scored >= min_scored
    assert total[True] >= 30
    assert total[False] >= 30
    assert accuracy >= MIN_ACCURACY


#: Most time one face's pose and facing call may take: 1 % of a 7 ms frame.
MAX_SECONDS_PER_FACE = 70e-6


def test_pose_costs_next_to_nothing_per_face() -> None:
    detector = make_detector(RETINAFACE)
    (face,) = detector.detect(read("obama.jpg"))
    assert face.keypoints is not None
    runs = 20_000
    start = time.perf_counter()
    for _ in range(runs):
        is_facing(head_pose(face.keypoints))
    per_face = (time.perf_counter() - start) / runs
    print(f"\nhead pose and facing call: {per_face * 1e6:.1f} us per face")
    assert per_face < MAX_SECONDS_PER_FACE
