"""The pipeline's plumbing with a fake classifier, and its structure with the real model."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from shared.labels import Expression
from shared.vision.classify import ExpressionClassifier
from shared.vision.pipeline import Pipeline
from shared.vision.preprocess import INPUT_SIZE
from shared.vision.quality import Quality
from tests.conftest import MEDIA


class FakeClassifier:
    """Says "surprise" for bright crops and "sad" for others; records every call."""

    version = "fake-1"

    def __init__(self) -> None:
        self.calls: list[int] = []

    def predict(self, faces: list[np.ndarray]) -> np.ndarray:
        self.calls.append(len(faces))
        for face in faces:
            assert face.shape == (INPUT_SIZE, INPUT_SIZE)
            assert face.dtype == np.uint8
        probs = np.full((len(faces), 7), 0.05, dtype=np.float32)
        for i, face in enumerate(faces):
            best = Expression.SURPRISE if face.mean() > 110 else Expression.SAD
            probs[i, best] = 0.7
        return probs


class RefusingClassifier:
    version = "never"

    def predict(self, faces: list[np.ndarray]) -> np.ndarray:
        raise AssertionError("the classifier must not run with inference switched off")


def photo(name: str) -> np.ndarray:
    return cv2.imread(str(MEDIA / name))


def test_faces_are_labelled_through_the_classifier() -> None:
    fake = FakeClassifier()
    result = Pipeline(fake).analyze(photo("two_people.jpg"))
    assert (result.width, result.height) == (1126, 661)
    assert not result.no_face
    assert len(result.faces) == 2
    assert fake.calls == [2]  # both faces in one batch
    for face in result.faces:
        assert face.quality is Quality.OK
        assert face.label in (Expression.SURPRISE, Expression.SAD)
        assert face.confidence == pytest.approx(0.7)
        assert face.probabilities is not None
        assert len(face.probabilities) == 7
        assert face.probabilities[face.label] == pytest.approx(0.7)


def test_blank_frame_is_no_face_and_skips_the_classifier() -> None:
    fake = FakeClassifier()
    result = Pipeline(fake).analyze(np.full((480, 640, 3), 90, dtype=np.uint8))
    assert result.no_face
    assert result.faces == ()
    assert fake.calls == []


def test_batch_gives_the_same_results_as_one_by_one_in_one_call() -> None:
    images = [photo("obama.jpg"), np.zeros((240, 320, 3), np.uint8), photo("two_people.jpg")]
    fake = FakeClassifier()
    batch = Pipeline(fake).analyze_batch(images)
    assert fake.calls == [3]
    single = [Pipeline(FakeClassifier()).analyze(image) for image in images]
    assert batch == single
    assert [len(r.faces) for r in batch] == [1, 0, 2]


def test_dark_face_is_flagged_and_not_labelled() -> None:
    dark = (photo("meds-aa-S001-01.jpg") * 0.2).astype(np.uint8)
    fake = FakeClassifier()
    result = Pipeline(fake).analyze(dark)
    assert len(result.faces) == 1, "Haar still finds the face in the dark copy"
    (face,) = result.faces
    assert face.quality is Quality.TOO_DARK
    assert face.label is None
    assert face.probabilities is None
    assert face.confidence is None
    assert fake.calls == []


def test_blurred_face_is_flagged() -> None:
    # Out of focus: Haar still sees the face, the crop has lost its edges.
    blurred = cv2.GaussianBlur(photo("astronaut.png"), (0, 0), 5)
    result = Pipeline(FakeClassifier()).analyze(blurred)
    assert [f.quality for f in result.faces] == [Quality.TOO_BLURRED]
    assert result.faces[0].label is None


def test_small_face_is_flagged() -> None:
    # A 24 px face on a small 160x120 frame: detected, but too small to label.
    image = photo("obama.jpg")
    small = cv2.resize(image, (96, 120), interpolation=cv2.INTER_AREA)
    frame = np.full((120, 160, 3), 128, np.uint8)
    frame[:, 32:128] = small
    result = Pipeline(FakeClassifier()).analyze(frame)
    assert len(result.faces) == 1
    assert result.faces[0].box.h < 32
    assert result.faces[0].quality is Quality.TOO_SMALL
    assert result.faces[0].label is None


def test_inference_switch_off_keeps_boxes_and_never_classifies() -> None:
    pipeline = Pipeline(RefusingClassifier(), inference_enabled=False)
    result = pipeline.analyze(photo("two_people.jpg"))
    assert len(result.faces) == 2
    assert all(f.label is None and f.probabilities is None for f in result.faces)
    assert all(f.quality is Quality.OK for f in result.faces)
    assert pipeline.model_version is None
    assert Pipeline(None, inference_enabled=False).analyze(photo("obama.jpg")).faces


def test_inference_on_needs_a_classifier() -> None:
    with pytest.raises(ValueError, match="classifier"):
        Pipeline(None)


def test_real_model_gives_seven_probabilities_and_the_argmax() -> None:
    pipeline = Pipeline(ExpressionClassifier(threads=1))
    result = pipeline.analyze_batch([photo("astronaut.png"), photo("two_people.jpg")])
    faces = [f for r in result for f in r.faces]
    assert len(faces) == 3
    for face in faces:
        assert face.probabilities is not None
        probs = np.array(face.probabilities)
        assert probs.shape == (7,)
        assert (probs >= 0).all()
        assert probs.sum() == pytest.approx(1.0, abs=1e-4)
        assert face.label == Expression(int(np.argmax(probs)))
        assert face.confidence == pytest.approx(probs.max())
    assert pipeline.model_version


def test_a_face_under_the_models_threshold_is_uncertain_not_labelled() -> None:
    classifier = ExpressionClassifier(threads=1)
    image = photo("two_people.jpg")
    labelled = Pipeline(classifier).analyze(image).faces
    # A threshold between the two faces' confidences: the less sure one loses its label.
    low, high = sorted(f.confidence for f in labelled if f.confidence is not None)
    assert low < high
    faces = Pipeline(classifier, uncertain_below=(low + high) / 2).analyze(image).faces
    by_confidence = sorted(faces, key=lambda f: f.confidence or 0.0)
    unsure, sure = by_confidence
    assert unsure.uncertain
    assert unsure.label is None
    assert unsure.label_text == "uncertain"
    assert unsure.probabilities is not None
    assert unsure.confidence == pytest.approx(low)
    assert not sure.uncertain
    assert sure.label is not None
    assert sure.label_text == sure.label.label
