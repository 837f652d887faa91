"""Head pose from keypoints: the geometry, real photos, the labelled media faces, the cost."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bench.facing import cost_per_face, score, video_frames
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
from tests.conftest import MEDIA


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


def test_keypoints_no_head_could_have_are_not_facing() -> None:
    level = Keypoints((300.0, 200.0), (340.0, 200.0), (320.0, 215.0), (320.0, 200.0))
    assert not is_facing(head_pose(level))  # mouth on the eye line
    same_eye = Keypoints((300.0, 200.0), (300.0, 200.0), (300.0, 215.0), (300.0, 240.0))
    assert head_pose(same_eye).yaw == 90.0
    assert not is_facing(head_pose(same_eye))


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
    ((_, frame),) = video_frames(MEDIA / "short_hamilton_clip.mp4", {250})
    turned = [head_pose(d.keypoints) for d in detector.detect(frame) if d.keypoints]
    flipped = np.ascontiguousarray(frame[:, ::-1])
    mirrored = [head_pose(d.keypoints) for d in detector.detect(flipped) if d.keypoints]
    assert min(p.yaw for p in turned) < -45
    # Mirroring swaps the image's sides: the same head now turns to the right.
    assert max(p.yaw for p in mirrored) > 45


#: Least share of the labelled faces (facing or turned away) called right.
MIN_ACCURACY = 0.95


@pytest.mark.parametrize(("detector_name", "min_scored"), [(BLAZEFACE_FULL, 70), (RETINAFACE, 95)])
def test_facing_call_agrees_with_the_labels(detector_name: str, min_scored: int) -> None:
    result = score(make_detector(detector_name))
    print(
        f"\n{detector_name}: facing call right on {sum(result.right.values())}/{result.scored}"
        f" labelled faces ({result.accuracy:.1%}); wrong: {result.wrong}"
    )
    assert result.scored >= min_scored
    assert result.total[True] >= 30
    assert result.total[False] >= 30
    assert result.accuracy >= MIN_ACCURACY


#: Most time one face's pose and facing call may take: 1 % of a 7 ms frame.
MAX_SECONDS_PER_FACE = 70e-6


def test_pose_costs_next_to_nothing_per_face() -> None:
    per_face = cost_per_face(make_detector(RETINAFACE))
    print(f"\nhead pose and facing call: {per_face * 1e6:.1f} us per face")
    assert per_face < MAX_SECONDS_PER_FACE
