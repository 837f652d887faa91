"""The numbers the classroom page detects and aligns with are the workers' own."""

from __future__ import annotations

import numpy as np

from shared import client_detection
from shared.face_crops import CROP_SIDE
from shared.vision import blazeface
from shared.vision.align import FER_KEYPOINTS, SUPERSAMPLE
from shared.vision.preprocess import INPUT_SIZE


def test_page_detectors_are_the_workers_blazeface_specs() -> None:
    pairs = {"blazeface-full": blazeface.FULL_RANGE, "blazeface-short": blazeface.SHORT_RANGE}
    for name, spec in pairs.items():
        page = client_detection.PAGE_DETECTORS[name]  # type: ignore[index]
        assert (page.file, page.input_size, page.strides) == (
            spec.file,
            spec.input_size,
            spec.strides,
        )
        assert page.interpolated_anchor == spec.interpolated_anchor
        assert page.min_score == spec.min_score
    assert client_detection.SUPPRESSION_IOU == blazeface.SUPPRESSION_IOU
    assert client_detection.RAW_SCORE_LIMIT == blazeface.RAW_SCORE_LIMIT


def test_page_aligns_onto_the_workers_keypoints_at_their_supersampled_size() -> None:
    assert np.array_equal(np.asarray(client_detection.FER_KEYPOINTS), FER_KEYPOINTS)
    assert client_detection.MODEL_INPUT_SIDE == INPUT_SIZE
    assert CROP_SIDE == INPUT_SIZE * SUPERSAMPLE


def test_page_follows_the_workers_blazeface_and_full_range_otherwise() -> None:
    assert client_detection.page_detector("blazeface-short").name == "blazeface-short"
    for other in ("blazeface-full", "retinaface", "haar"):
        assert client_detection.page_detector(other).name == "blazeface-full"
