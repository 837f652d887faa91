"""The classroom page's face detector and alignment against the worker's, on real photos.

The page's own scripts (face_detect.js, face_align.js, ONNX Runtime Web from
this server) run in headless Chromium on the same lossless pixels the
Python BlazeFace and ``aligned_crop`` get; faces, boxes, keypoints and the
48 px inputs the classifier would see must agree.
"""

from __future__ import annotations

import base64
from typing import Any

import cv2
import numpy as np
import pytest

from services.ingest.config import IngestSettings
from services.ingest.routes_classroom import _client_detection
from services.ingest.schemas import ClientDetectionOut
from shared import face_crops
from shared.vision.align import aligned_crop
from shared.vision.blazeface import FULL_RANGE, BlazeFace
from shared.vision.crops import decode_strip
from shared.vision.preprocess import INPUT_SIZE
from tests.conftest import MEDIA
from tests.e2e.conftest import Stack

pytestmark = pytest.mark.slow

# Decodes the PNG given as base64 and runs the page's detector on its pixels: how each
# script below begins (``vision``, ``bitmap``, ``pixels`` and ``faces`` are then in scope).
DETECT_IN_PNG = """
  const vision = window.ClassPulseVision;
  const bytes = Uint8Array.from(atob(png), (c) => c.charCodeAt(0));
  const bitmap = await createImageBitmap(new Blob([bytes], { type: "image/png" }));
  const canvas = new OffscreenCanvas(bitmap.width, bitmap.height);
  const context = canvas.getContext("2d");
  context.drawImage(bitmap, 0, 0);
  const pixels = context.getImageData(0, 0, bitmap.width, bitmap.height).data;
  const detector = await vision.createDetector(config);
  const faces = await detector.detect(pixels, bitmap.width, bitmap.height);
"""

#: Photos at their own sizes (910x1137 to 970x2204: each letterbox path) and a webcam frame.
PHOTOS = ("obama.jpg", "biden.jpg", "two_people.jpg", "meds-aa-S001-01.jpg", "video_01.mp4")

# Runs the page's detector and cropper on a PNG given as base64; keypoints may be
# forced (the server's) to compare the alignment alone.
RUN_PAGE_VISION = (
    "async ({ png, config, forced }) => {"
    + DETECT_IN_PNG
    + """  const crops = forced.map((kp) =>
    Array.from(vision.alignedCrop(pixels, bitmap.width, bitmap.height, kp, config)));
  return { faces, crops };
}"""
)


def read_frame(name: str) -> np.ndarray[Any, np.dtype[np.uint8]]:
    if name.endswith(".mp4"):
        capture = cv2.VideoCapture(str(MEDIA / name))
        capture.set(cv2.CAP_PROP_POS_FRAMES, 30)
        ok, image = capture.read()
        capture.release()
        assert ok
        return np.ascontiguousarray(image)
    image = cv2.imread(str(MEDIA / name))
    assert image is not None
    return image


def crops_config() -> ClientDetectionOut:
    """The detector and crop settings ingest hands a page in crop mode, by default."""
    config = _client_detection(
        IngestSettings(
            database_url="postgresql://unused", redis_url="redis://unused", token_secret="x" * 32
        ),
        None,
    )
    assert config is not None
    return config


def png_of(image: np.ndarray[Any, np.dtype[np.uint8]]) -> str:
    """The image as a lossless PNG in base64, for a page script."""
    return base64.b64encode(cv2.imencode(".png", image)[1].tobytes()).decode()


@pytest.fixture(scope="module")
def page(browser: Any, stack: Stack) -> Any:
    context = browser.new_context()
    page = context.new_page()
    page.goto(f"{stack.ingest_url}/classroom/vision-test")
    page.wait_for_function(
        "() => window.ClassPulseVision && window.ClassPulseVision.createDetector"
    )
    yield page
    context.close()


@pytest.mark.parametrize("name", PHOTOS)
def test_page_finds_and_crops_faces_as_the_worker_does(page: Any, name: str) -> None:
    image = read_frame(name)
    height, width = image.shape[:2]
    server = BlazeFace(FULL_RANGE).detect(image)
    assert server, f"{name}: the worker's detector finds no face"
    config = crops_config()
    png = png_of(image)
    forced = [
        [
            list(p)
            for p in (
                d.keypoints.right_eye,
                d.keypoints.left_eye,
                d.keypoints.nose,
                d.keypoints.mouth,
            )
        ]
        for d in server
        if d.keypoints is not None
    ]
    result = page.evaluate(
        RUN_PAGE_VISION, {"png": png, "config": config.model_dump(), "forced": forced}
    )
    faces = result["faces"]
    assert len(faces) == len(server)
    for page_face, detection in zip(faces, server, strict=True):
        box = detection.box
        x0, y0, x1, y1 = page_face["box"]
        # Boxes within a pixel of the worker's (which it rounds), keypoints within one.
        assert abs(max(0, x0) - box.x) <= 1
        assert abs(max(0, y0) - box.y) <= 1
        assert abs(min(width, x1) - (box.x + box.w)) <= 1
        assert abs(min(height, y1) - (box.y + box.h)) <= 1
        assert detection.keypoints is not None
        expected = np.asarray(forced[server.index(detection)])
        assert np.abs(np.asarray(page_face["keypoints"]) - expected).max() <= 1
        assert abs(page_face["score"] - (detection.score or 0)) < 0.01
        print(
            f"{name}: keypoints within "
            f"{np.abs(np.asarray(page_face['keypoints']) - expected).max():.3f} px, "
            f"score {page_face['score']:.4f} vs {detection.score:.4f}"
        )
    for crop, detection in zip(result["crops"], server, strict=True):
        side = config.crop_side
        strip = np.asarray(crop, dtype=np.uint8).reshape(side, side)
        page_input = cv2.resize(strip, (INPUT_SIZE, INPUT_SIZE), interpolation=cv2.INTER_AREA)
        assert detection.keypoints is not None
        worker_input = aligned_crop(image, detection.keypoints)
        difference = np.abs(page_input.astype(int) - worker_input.astype(int))
        # OpenCV warps in fixed point (1/32 px, 15-bit weights), the page in floats.
        print(
            f"{name}: 48 px input differs by {difference.mean():.3f} on average, at most {difference.max()}"
        )
        assert difference.mean() < 0.25, f"{name}: mean difference {difference.mean():.2f}"
        assert difference.max() <= 2, f"{name}: largest difference {difference.max()}"


# The page's face-crops bodies for the faces it finds in a PNG, and for no face.
PAGE_BODIES = (
    "async ({ png, config }) => {"
    + DETECT_IN_PNG
    + """  const crops = faces.map((f) =>
    vision.alignedCrop(pixels, bitmap.width, bitmap.height, f.keypoints, config));
  const encode = async (blob) => {
    let text = "";
    for (const b of new Uint8Array(await blob.arrayBuffer())) text += String.fromCharCode(b);
    return btoa(text);
  };
  const side = config.crop_side;
  return {
    crops: crops.map((c) => Array.from(c)),
    faces: await encode(await vision.faceCropsBody(
      faces, crops, bitmap.width, bitmap.height, config.detector, side)),
    none: await encode(await vision.faceCropsBody(
      [], [], bitmap.width, bitmap.height, config.detector, side)),
  };
}"""
)


def test_page_bodies_are_what_ingest_and_the_worker_read(page: Any) -> None:
    image = read_frame("two_people.jpg")
    height, width = image.shape[:2]
    config = crops_config()
    png = png_of(image)
    result = page.evaluate(PAGE_BODIES, {"png": png, "config": config.model_dump()})

    meta, strip = face_crops.unpack(base64.b64decode(result["faces"]))
    assert (meta.frame_width, meta.frame_height, len(meta.faces)) == (width, height, 2)
    # The page's own PNG encoder (CompressionStream, CRC-32) read back by OpenCV:
    # one 8-bit gray image of the crops stacked, pixel for pixel.
    decoded = decode_strip(strip, len(meta.faces))
    side = config.crop_side
    expected = np.vstack(
        [np.asarray(c, dtype=np.uint8).reshape(side, side) for c in result["crops"]]
    )
    assert np.array_equal(decoded, expected)
    none = base64.b64decode(result["none"])
    empty, no_image = face_crops.unpack(none)
    assert empty.faces == []
    assert no_image == b""
    assert len(none) < 200


STUDENT_FACE = (
    "async ({ png, config }) => {"
    + DETECT_IN_PNG
    + """  return { found: faces.map((f) => f.box), sent: vision.studentFace(faces).map((f) => f.box),
           none: vision.studentFace([]) };
}"""
)


def test_only_the_students_own_face_leaves_the_page(page: Any) -> None:
    # Two people in view: the page sends the larger face only, nothing of the other.
    image = read_frame("two_people.jpg")
    config = crops_config()
    png = png_of(image)
    result = page.evaluate(STUDENT_FACE, {"png": png, "config": config.model_dump()})

    def area(box: list[float]) -> float:
        return (box[2] - box[0]) * (box[3] - box[1])

    assert len(result["found"]) == 2
    (sent,) = result["sent"]
    assert sent == max(result["found"], key=area)
    assert result["none"] == []
