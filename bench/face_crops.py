"""Worker CPU per frame: a whole webcam frame against the same frame's face crops.

Frames: every 5th frame of the media videos at 640x480, as the classroom page
sends them in each mode: a JPEG of quality 80 (the page's canvas.toBlob), and
the face-crops body of the same frame (``shared.face_crops``; the crops warped
at 96 px as the page warps them, a gray PNG). Each body goes through what the
worker runs on it, without the database: decode, detect, align, quality and
classify for the frame; unpack, decode the crops, quality and classify for the
crops (``services.inference.process``). The two take turns frame by frame, and
CPU time of this process is measured (``time.process_time``): run it pinned to
one core (``taskset -c 0``). Usage:

    python -m bench.face_crops [--rounds 3]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from pathlib import Path

import cv2
import numpy as np

from shared import face_crops
from shared.settings import DEFAULT_MIN_FACE_FRACTION, DEFAULT_MODEL_DIR
from shared.vision.align import alignment_matrix
from shared.vision.classify import ExpressionClassifier
from shared.vision.crops import aligned_faces
from shared.vision.decode import decode_reduced
from shared.vision.detect import FaceDetector, make_detector
from shared.vision.pipeline import Pipeline

MEDIA = Path(__file__).resolve().parents[1] / "media"
VIDEOS = ("video_01.mp4", "video_02.mp4", "short_hamilton_clip.mp4")
STEP = 5
SIZE = (640, 480)
#: The page's JPEG quality (services/ingest/static/classroom.js).
JPEG_QUALITY = 80
MAX_PIXELS = 4096 * 4096


def frames() -> list[np.ndarray]:
    out = []
    for name in VIDEOS:
        capture = cv2.VideoCapture(str(MEDIA / name))
        index = 0
        while True:
            ok, image = capture.read()
            if not ok:
                break
            if index % STEP == 0:
                out.append(cv2.resize(image, SIZE, interpolation=cv2.INTER_AREA))
            index += 1
        capture.release()
    return out


def crops_body(image: np.ndarray, detector: FaceDetector) -> bytes:
    """The body the page would send for ``image``: its faces' 96 px aligned crops."""
    height, width = image.shape[:2]
    detections = detector.detect(image)[: face_crops.MAX_FACES]
    gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    faces, tiles = [], []
    for d in detections:
        kp = d.keypoints
        assert kp is not None
        matrix = alignment_matrix(kp, face_crops.CROP_SIDE)
        side = face_crops.CROP_SIDE
        tiles.append(cv2.warpAffine(gray, matrix, (side, side), flags=cv2.INTER_LINEAR))
        b = d.box
        faces.append(
            face_crops.CropFace(
                score=d.score or 0.0,
                box=(b.x, b.y, b.x + b.w, b.y + b.h),
                keypoints=(kp.right_eye, kp.left_eye, kp.nose, kp.mouth),
            )
        )
    meta = face_crops.FaceCrops(
        frame_width=width, frame_height=height, detector="blazeface-full", faces=faces
    )
    strip = cv2.imencode(".png", np.vstack(tiles))[1].tobytes() if tiles else b""
    return face_crops.pack(meta, strip)


def run_frame(data: bytes, pipeline: Pipeline) -> int:
    decoded = decode_reduced(data, DEFAULT_MIN_FACE_FRACTION, MAX_PIXELS)
    return len(pipeline.analyze(decoded.image, (decoded.width, decoded.height)).faces)


def run_crops(data: bytes, pipeline: Pipeline) -> int:
    meta, image = face_crops.unpack(data)
    faces = aligned_faces(meta, image, DEFAULT_MIN_FACE_FRACTION)
    return len(pipeline.analyze_aligned(faces, meta.frame_width, meta.frame_height).faces)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    pipeline = Pipeline(
        ExpressionClassifier(DEFAULT_MODEL_DIR, threads=1), make_detector("blazeface-full")
    )
    images = frames()
    jpegs = [
        cv2.imencode(".jpg", im, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])[1].tobytes()
        for im in images
    ]
    bodies = [crops_body(im, pipeline.detector) for im in images]
    has_face = [bool(face_crops.unpack(b)[0].faces) for b in bodies]
    # CPU seconds per (kind, frame has a face), over every round.
    cpu: dict[tuple[str, bool], list[float]] = {}
    faces = {"frame": 0, "crops": 0}
    for _ in range(args.rounds):
        for jpeg, body, face in zip(jpegs, bodies, has_face, strict=True):
            for kind, data, run in (("frame", jpeg, run_frame), ("crops", body, run_crops)):
                start = time.process_time()
                faces[kind] += run(data, pipeline)
                cpu.setdefault((kind, face), []).append(time.process_time() - start)
    print(f"CPU: {cpu_name()}; {len(images)} frames at 640x480, {sum(has_face)} with a face; ")
    print(f"{args.rounds} rounds; CPU time of one process; faces found {faces}")
    for face in (True, False):
        which = [i for i, f in enumerate(has_face) if f == face]
        jpeg_bytes = statistics.median(len(jpegs[i]) for i in which)
        body_bytes = statistics.median(len(bodies[i]) for i in which)
        print(f"frames {'with' if face else 'without'} a face ({len(which)}):")
        print(f"  bytes: JPEG q{JPEG_QUALITY} {jpeg_bytes:.0f}, crops {body_bytes:.0f} (medians)")
        for kind in ("frame", "crops"):
            times = sorted(cpu[(kind, face)])
            mean = statistics.fmean(times)
            p95 = times[int(0.95 * (len(times) - 1))]
            print(
                f"  {kind:>6}: mean {mean * 1000:.2f} ms CPU, "
                f"p50 {statistics.median(times) * 1000:.2f}, p95 {p95 * 1000:.2f}"
            )
    every = {k: statistics.fmean(cpu[(k, True)] + cpu[(k, False)]) for k in ("frame", "crops")}
    print(
        f"all frames: {every['frame'] * 1000:.2f} ms CPU per whole frame, "
        f"{every['crops'] * 1000:.2f} per crops body ({every['frame'] / every['crops']:.1f}x)"
    )


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


if __name__ == "__main__":
    main()
