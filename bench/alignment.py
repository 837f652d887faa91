"""What eye-level alignment and FER2013 framing do to the expression classifier.

PublicTest faces are shown to the pipeline as a camera would show them: each
48x48 face upscaled x4 into the middle of a 384x384 frame (gray padding), once
upright and once turned by a random angle of up to 25 degrees. The detector
finds it, and the classifier labels (a) the face box cropped as Haar boxes
are (square, 10 % margin: ``crop_face``) and (b) the aligned crop
(``aligned_crop``); the accuracy of each is printed beside the untouched
48x48 image's. A face the detector misses counts as wrong. Then, for the
media photos, the label each way, and for the 90 frames of ``video_01.mp4``
how often the woman on the left, smiling broadly throughout, is labelled
happy each way. ``--limit 0`` skips PublicTest. Usage:

    python -m bench.alignment [--detector retinaface] [--limit 1000]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from shared.settings import DEFAULT_MODEL_DIR
from shared.vision.align import aligned_crop
from shared.vision.classify import ExpressionClassifier
from shared.vision.detect import DETECTORS, RETINAFACE, FaceDetector, make_detector
from shared.vision.preprocess import crop_face
from training.data import load

FER2013 = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "fer2013"
MEDIA = Path(__file__).resolve().parents[1] / "media"
UPSCALE = 4
FRAME = 384
MAX_TILT = 25.0


def staged(face: np.ndarray, angle: float) -> np.ndarray:
    """A 48x48 face as a camera frame: upscaled, turned by ``angle``, on gray."""
    big = cv2.resize(face, None, fx=UPSCALE, fy=UPSCALE, interpolation=cv2.INTER_CUBIC)
    frame: np.ndarray = np.full((FRAME, FRAME), 128, np.uint8)
    offset = (FRAME - big.shape[0]) // 2
    frame[offset : offset + big.shape[0], offset : offset + big.shape[1]] = big
    if angle:
        turn = cv2.getRotationMatrix2D((FRAME / 2, FRAME / 2), angle, 1.0)
        frame = np.asarray(cv2.warpAffine(frame, turn, (FRAME, FRAME), borderValue=128))
    return np.asarray(cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR))


def crops(detector: FaceDetector, frame: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    found = detector.detect(frame)
    if not found:
        return None
    face = max(found, key=lambda d: d.score or 0.0)
    gray: np.ndarray = np.asarray(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY))
    if face.keypoints is None:
        box_crop = crop_face(gray, face.box)
        return box_crop, box_crop
    return crop_face(gray, face.box), aligned_crop(gray, face.keypoints)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--detector", choices=DETECTORS, default=RETINAFACE)
    parser.add_argument("--limit", type=int, default=1000)
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL_DIR)
    parser.add_argument("--data", type=Path, default=FER2013)
    args = parser.parse_args()
    classifier = ExpressionClassifier(args.model, threads=1)
    detector = make_detector(args.detector, min_face_fraction=0.05)
    if args.limit:
        public_test(classifier, detector, args)
    media(classifier, detector)


def public_test(
    classifier: ExpressionClassifier, detector: FaceDetector, args: argparse.Namespace
) -> None:
    test = load(args.data, "PublicTest").subset(args.limit)
    rng = np.random.default_rng(0)
    angles = rng.uniform(-MAX_TILT, MAX_TILT, len(test))
    raw = classifier.predict(list(test.images)).argmax(axis=1)
    print(
        f"PublicTest, first {len(test)} faces; detector {args.detector}; model {classifier.version}"
    )
    print(f"  48x48 image as is          accuracy {np.mean(raw == test.labels):.1%}")
    for title, tilt in (("upright", 0.0), (f"turned up to {MAX_TILT:g} deg", 1.0)):
        boxed: list[np.ndarray | None] = []
        aligned: list[np.ndarray | None] = []
        missed = 0
        for image, angle in zip(test.images, angles, strict=True):
            pair = crops(detector, staged(image, angle * tilt))
            if pair is None:
                missed += 1
                boxed.append(None)
                aligned.append(None)
                continue
            boxed.append(pair[0])
            aligned.append(pair[1])
        for name, faces in (("box crop", boxed), ("aligned crop", aligned)):
            found = [i for i, f in enumerate(faces) if f is not None]
            labels = classifier.predict([faces[i] for i in found]).argmax(axis=1)  # type: ignore[misc]
            right = int(np.sum(labels == test.labels[found]))
            print(
                f"  {title:<17} {name:<12} accuracy {right / len(test):.1%} "
                f"({missed} faces not found)"
            )


def media(classifier: ExpressionClassifier, detector: FaceDetector) -> None:
    print("media photos (box crop -> aligned crop):")
    for path in sorted(MEDIA.glob("*.jpg")) + sorted(MEDIA.glob("*.png")):
        frame: np.ndarray = np.asarray(cv2.imread(str(path)))
        gray: np.ndarray = np.asarray(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY))
        for face in detector.detect(frame):
            if face.keypoints is None:
                continue
            probs = classifier.predict(
                [crop_face(gray, face.box), aligned_crop(gray, face.keypoints)]
            )
            a, b = (classifier.metadata.labels[int(p.argmax())] for p in probs)
            print(f"  {path.name:<22} {a} ({probs[0].max():.0%}) -> {b} ({probs[1].max():.0%})")

    happy = classifier.metadata.labels.index("happy")
    capture = cv2.VideoCapture(str(MEDIA / "video_01.mp4"))
    counts = [0, 0]
    frames = 0
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        found = [f for f in detector.detect(np.asarray(frame)) if f.keypoints is not None]
        if not found:
            continue
        # The woman on the left has the largest face of the clip.
        face = max(found, key=lambda f: f.box.h)
        gray = np.asarray(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY))
        assert face.keypoints is not None
        probs = classifier.predict([crop_face(gray, face.box), aligned_crop(gray, face.keypoints)])
        for i in range(2):
            counts[i] += int(probs[i].argmax() == happy)
        frames += 1
    capture.release()
    print(
        f"video_01.mp4, the smiling woman, {frames} frames: happy with the box crop in "
        f"{counts[0]}, with the aligned crop in {counts[1]}"
    )


if __name__ == "__main__":
    main()
