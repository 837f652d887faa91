"""The default detector against the rule it was chosen by, on the hand-labelled frames
(``tests/fixtures/face_boxes.json``; the full table: ``python -m bench.detection``)."""

from __future__ import annotations

import pytest

from bench.detection import LabelledFrame, Score, evaluate, load_labelled
from shared.settings import DEFAULT_DETECTOR
from shared.vision.detect import make_detector

#: Index of the first size band the rule covers: faces of at least 1/10 of the shorter side.
WEBCAM_SIZED = 1


@pytest.fixture(scope="module")
def frames() -> list[LabelledFrame]:
    return load_labelled()


@pytest.fixture(scope="module")
def haar(frames: list[LabelledFrame]) -> Score:
    return evaluate(make_detector("haar"), frames)


def test_the_labelled_set_is_the_documented_one(frames: list[LabelledFrame]) -> None:
    assert (len(frames), sum(len(f.faces) for f in frames)) == (32, 87)


def test_the_default_finds_more_faces_than_haar_with_no_more_false_ones(
    frames: list[LabelledFrame], haar: Score
) -> None:
    """No detector becomes the default with lower recall than Haar on faces of at least
    1/10 of the frame, or with more false faces."""
    default = evaluate(make_detector(DEFAULT_DETECTOR), frames)
    found, faces = default.recall_from(WEBCAM_SIZED)
    haar_found, haar_faces = haar.recall_from(WEBCAM_SIZED)
    assert faces == haar_faces == 35
    assert found >= 26 > haar_found
    assert sum(default.false) <= sum(haar.false)
