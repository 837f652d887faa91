"""One frame (or several) to faces with boxes, quality and expression.

detect → align and crop (the 48x48 input, framed as FER2013's faces: with
keypoints the eyes are levelled first, see ``shared.vision.align``; Haar
boxes are cropped as training crops them) → quality → one CNN batch
for all the good faces of all the frames given. A face of poor quality is
reported with its flag and no label, rather than forcing a guess on it. With
expression inference switched off the classifier is never called: faces keep
their box and quality, and no expression is produced.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

import numpy as np
import numpy.typing as npt

from shared.labels import UNCERTAIN, Expression
from shared.settings import DEFAULT_DETECTOR
from shared.vision.align import aligned_crop, pose
from shared.vision.crops import AlignedFace
from shared.vision.detect import Detection, FaceDetector, Keypoints, make_detector
from shared.vision.pose import HeadPose, head_pose, is_facing
from shared.vision.preprocess import Box, GrayImage, crop_face
from shared.vision.quality import Quality, QualityThresholds, assess

Image = npt.NDArray[np.uint8]


class Classifier(Protocol):
    """What the pipeline needs of ``shared.vision.classify.ExpressionClassifier``."""

    @property
    def version(self) -> str: ...

    def predict(self, faces: list[GrayImage]) -> npt.NDArray[np.float32]: ...


@dataclass(frozen=True, slots=True)
class FaceAnalysis:
    """One face: where it is, how usable, and (if labelled) its expression."""

    box: Box
    quality: Quality
    label: Expression | None = None
    confidence: float | None = None
    #: The seven probabilities in FER2013 label order, when labelled.
    probabilities: tuple[float, ...] | None = None
    #: The detector's score and keypoints (None for Haar).
    score: float | None = None
    keypoints: Keypoints | None = None
    #: Head yaw and pitch from the keypoints (None for Haar).
    head_pose: HeadPose | None = None

    @property
    def facing(self) -> bool | None:
        """Whether the head faces the screen (``shared.vision.pose``); None without a pose."""
        return None if self.head_pose is None else is_facing(self.head_pose)

    @property
    def uncertain(self) -> bool:
        """Classified, but too unsure for a label (its probabilities are kept)."""
        return self.label is None and self.probabilities is not None

    @property
    def label_text(self) -> str | None:
        """The label's name, ``"uncertain"``, or None (not classified)."""
        if self.label is not None:
            return self.label.label
        return UNCERTAIN if self.uncertain else None


@dataclass(frozen=True, slots=True)
class FrameResult:
    """All faces of one frame, left to right."""

    width: int
    height: int
    faces: tuple[FaceAnalysis, ...] = field(default_factory=tuple)

    @property
    def no_face(self) -> bool:
        return not self.faces


@dataclass(slots=True)
class _Pending:
    """A face waiting for the batched classifier call."""

    frame: int
    face: int
    crop: GrayImage


class Pipeline:
    """Detector, quality checks and classifier, created once per process."""

    def __init__(
        self,
        classifier: Classifier | None,
        detector: FaceDetector | None = None,
        *,
        inference_enabled: bool = True,
        thresholds: QualityThresholds | None = None,
        align: bool = True,
        uncertain_below: float = 0.0,
    ) -> None:
        if inference_enabled and classifier is None:
            raise ValueError("a classifier is needed when expression inference is enabled")
        self.classifier = classifier
        self.detector = detector or make_detector(DEFAULT_DETECTOR)
        self.inference_enabled = inference_enabled
        self.thresholds = thresholds or QualityThresholds()
        #: Level the eyes of faces with keypoints (False: crop the box, as for Haar).
        self.align = align
        #: Faces whose top probability is lower get no label (the model's metadata
        #: ``uncertain_below``): a label there is more often wrong than right.
        self.uncertain_below = uncertain_below

    @property
    def model_version(self) -> str | None:
        """Version of the model that labels faces, or None with inference off."""
        if not self.inference_enabled or self.classifier is None:
            return None
        return self.classifier.version

    def analyze(self, image: Image, frame_size: tuple[int, int] | None = None) -> FrameResult:
        """Faces of one BGR (or gray) frame.

        ``frame_size`` (width, height) is the frame's own size when ``image``
        was decoded smaller (``shared.vision.decode.decode_reduced``): boxes
        and keypoints are then given in the frame's pixels.
        """
        return self.analyze_batch([image], [frame_size])[0]

    def analyze_batch(
        self,
        images: Sequence[Image],
        frame_sizes: Sequence[tuple[int, int] | None] | None = None,
    ) -> list[FrameResult]:
        """Faces of several frames, with one classifier call for all of them."""
        frames: list[list[FaceAnalysis]] = []
        sizes: list[tuple[int, int]] = []
        pending: list[_Pending] = []
        for index, image in enumerate(images):
            sizes.append((image.shape[1], image.shape[0]))
            faces: list[FaceAnalysis] = []
            for detection in self.detector.detect(image):
                crop, quality = self._prepare(image, detection)
                if quality is Quality.OK and self.inference_enabled:
                    pending.append(_Pending(index, len(faces), crop))
                faces.append(
                    FaceAnalysis(
                        detection.box,
                        quality,
                        score=detection.score,
                        keypoints=detection.keypoints,
                        head_pose=head_pose(detection.keypoints) if detection.keypoints else None,
                    )
                )
            frames.append(faces)
        if pending:
            self._label(frames, pending)
        for index, size in enumerate(frame_sizes or []):
            if size is not None and size != sizes[index]:
                frames[index] = [_rescale(f, size, sizes[index]) for f in frames[index]]
                sizes[index] = size
        return [
            FrameResult(width, height, tuple(faces))
            for (width, height), faces in zip(sizes, frames, strict=True)
        ]

    def crop(self, image: Image, detection: Detection) -> GrayImage:
        """The 48x48 model input of one detected face of a BGR (or gray) frame."""
        return self._prepare(image, detection)[0]

    def _prepare(self, image: Image, detection: Detection) -> tuple[GrayImage, Quality]:
        # Only the face's region is turned gray (crop_face, aligned_crop), not
        # the whole frame: a frame without a face needs no gray copy at all.
        kp = detection.keypoints
        if kp is None or not self.align:
            crop = crop_face(image, detection.box)
            face_pose = None
        else:
            crop = aligned_crop(image, kp)
            face_pose = pose(kp, image.shape[1], image.shape[0])
        quality = assess(detection.box, crop, self.thresholds, face_pose, detection.visible)
        return crop, quality

    def analyze_aligned(self, faces: Sequence[AlignedFace], width: int, height: int) -> FrameResult:
        """Faces a client already detected and aligned in a ``width`` x ``height`` frame.

        Detection and cropping are skipped; the quality gate, the classifier
        and the head pose run as in ``analyze``.
        """
        analyses: list[FaceAnalysis] = []
        pending: list[_Pending] = []
        for face in faces:
            detection, kp = face.detection, face.detection.keypoints
            face_pose = pose(kp, width, height) if kp is not None else None
            quality = assess(
                detection.box, face.crop, self.thresholds, face_pose, detection.visible
            )
            if quality is Quality.OK and self.inference_enabled:
                pending.append(_Pending(0, len(analyses), face.crop))
            analyses.append(
                FaceAnalysis(
                    detection.box,
                    quality,
                    score=detection.score,
                    keypoints=kp,
                    head_pose=head_pose(kp) if kp is not None else None,
                )
            )
        frames = [analyses]
        if pending:
            self._label(frames, pending)
        return FrameResult(width, height, tuple(frames[0]))

    def _label(self, frames: list[list[FaceAnalysis]], pending: list[_Pending]) -> None:
        assert self.classifier is not None  # guaranteed by __init__
        probs = self.classifier.predict([p.crop for p in pending])
        if probs.shape != (len(pending), len(Expression)):
            raise ValueError(
                f"classifier returned shape {probs.shape}, expected ({len(pending)}, 7)"
            )
        for item, row in zip(pending, probs, strict=True):
            best = int(np.argmax(row))
            old = frames[item.frame][item.face]
            frames[item.frame][item.face] = FaceAnalysis(
                old.box,
                old.quality,
                Expression(best) if row[best] >= self.uncertain_below else None,
                float(row[best]),
                tuple(float(p) for p in row),
                old.score,
                old.keypoints,
                old.head_pose,
            )


def _rescale(face: FaceAnalysis, size: tuple[int, int], decoded: tuple[int, int]) -> FaceAnalysis:
    """A face found on a reduced decode, in the pixels of the full ``size`` frame."""
    fx, fy = size[0] / decoded[0], size[1] / decoded[1]
    b = face.box
    x, y = round(b.x * fx), round(b.y * fy)
    box = Box(
        x,
        y,
        max(1, min(size[0], round((b.x + b.w) * fx)) - x),
        max(1, min(size[1], round((b.y + b.h) * fy)) - y),
    )
    kp = face.keypoints
    if kp is not None:
        kp = Keypoints(
            *((px * fx, py * fy) for px, py in (kp.right_eye, kp.left_eye, kp.nose, kp.mouth))
        )
    return replace(face, box=box, keypoints=kp)
