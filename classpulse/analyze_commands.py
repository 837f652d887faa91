"""``classpulse analyze``: try the model on an image, a folder or a video, no server needed.

A video is sampled every ``--every`` seconds (5 s, as the thesis's client
sent frames). Each sample prints one line: time or file, faces, labels with
confidence, or "No face identified"; ``--json`` prints JSON lines instead.
``--report DIR`` writes the video's timeline as CSV and JSON and a chart.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from classpulse.analyze_sample import Sample
from shared.errors import ClassPulseError
from shared.settings import (
    DEFAULT_DETECTOR,
    DEFAULT_MIN_FACE_FRACTION,
    DEFAULT_MODEL_DIR,
    DetectorName,
    FrameSettings,
    load,
)

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from shared.vision.decode import DecodedFrame

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp"}
VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mjpeg"}


def read_image(path: Path, min_face: float, max_pixels: int) -> DecodedFrame:
    """An image file decoded as the worker decodes frames (large JPEGs at reduced size),
    refused above ``max_pixels`` (``CLASSPULSE_MAX_FRAME_PIXELS``)."""
    from shared.vision.decode import decode_reduced

    return decode_reduced(path.read_bytes(), min_face, max_pixels)


def video_frames(
    path: Path, every: float
) -> tuple[int, Iterator[tuple[float, npt.NDArray[np.uint8]]]]:
    """(number of samples, iterator of (seconds, BGR frame)) every ``every`` seconds."""
    import cv2
    import numpy as np

    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise ClassPulseError(f"{path}: cannot open the video")
    fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
    count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    duration = count / fps if count > 0 else 0.0
    # Only times that have a frame: the last frame starts before ``duration``, and
    # a 3.0 s clip sampled every second has frames at 0, 1 and 2 s, not at 3 s.
    times = (
        [
            t
            for t in (i * every for i in range(int(duration // every) + 1))
            if round(t * fps) < count
        ]
        if duration
        else [0.0]
    )

    def frames() -> Iterator[tuple[float, npt.NDArray[np.uint8]]]:
        try:
            index = 0
            for seconds in times:
                target = round(seconds * fps)
                # Grab forward to the sample (exact, and cheap for short steps).
                while index < target and capture.grab():
                    index += 1
                ok, frame = capture.read()
                if not ok:
                    return
                index += 1
                yield seconds, np.asarray(frame, dtype=np.uint8)  # the same array, typed
        finally:
            capture.release()

    return len(times), frames()


def analyze(
    path: Annotated[
        Path | None, typer.Argument(help="An image, a folder of images, or a video file")
    ] = None,
    video: Annotated[Path | None, typer.Option(help="A video file (same as PATH)")] = None,
    every: Annotated[float, typer.Option(min=0.01, help="Seconds between video samples")] = 5.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON lines")] = False,
    report: Annotated[
        Path | None, typer.Option(help="Write timeline.csv, timeline.json and chart.png here")
    ] = None,
    model: Annotated[Path, typer.Option(help="Model artifact directory")] = DEFAULT_MODEL_DIR,
    min_face: Annotated[
        float,
        typer.Option(
            min=0.01, max=1.0, help="Smallest face, as a fraction of the frame's shorter side"
        ),
    ] = DEFAULT_MIN_FACE_FRACTION,
    detector: Annotated[
        DetectorName,
        typer.Option(
            help="Face detector: haar (the thesis's), blazeface-short (one face near a "
            "webcam), blazeface-full, retinaface (groups, galleries; slower)"
        ),
    ] = DEFAULT_DETECTOR,
) -> None:
    """Label the faces of an image, a folder of images, or a video sampled every N seconds."""
    target = video or path
    if target is None:
        raise typer.BadParameter("give PATH or --video FILE")
    if not target.exists():
        raise typer.BadParameter(f"{target}: no such file or folder")
    is_video = target.is_file() and target.suffix.lower() in VIDEO_SUFFIXES
    if report is not None and not is_video:
        raise typer.BadParameter("--report needs a video (PATH or --video)")
    try:
        samples = list(_run(target, is_video, every, model, min_face, detector, as_json))
        if report is not None:
            from classpulse.analyze_report import write_report

            written = write_report(samples, report, every)
            typer.echo("report: " + ", ".join(str(p) for p in written), err=True)
    except ClassPulseError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(1) from None


def _run(
    target: Path,
    is_video: bool,
    every: float,
    model: Path,
    min_face: float,
    detector: str,
    as_json: bool,
) -> Iterator[Sample]:
    from tqdm import tqdm

    from shared.vision.classify import ExpressionClassifier
    from shared.vision.detect import make_detector
    from shared.vision.pipeline import Pipeline

    classifier = ExpressionClassifier(model)
    pipeline = Pipeline(
        classifier,
        make_detector(detector, min_face_fraction=min_face),
        uncertain_below=classifier.metadata.uncertain_below,
    )
    if is_video:
        total, frames = video_frames(target, every)
        with tqdm(frames, total=total, unit="sample", file=sys.stderr) as progress:
            for seconds, frame in progress:
                yield _emit(Sample(target.name, seconds, pipeline.analyze(frame)), as_json)
            # A container may promise more frames than it holds: end the bar full.
            progress.total = progress.n
            progress.refresh()
        return
    files = (
        sorted(p for p in target.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if target.is_dir()
        else [target]
    )
    if not files:
        raise ClassPulseError(f"{target}: no JPEG, PNG or WebP images")
    max_pixels = load(FrameSettings).max_frame_pixels
    for file in files:
        try:
            decoded = read_image(file, min_face, max_pixels)
        except ClassPulseError as exc:
            typer.echo(f"{file.name}: skipped: {exc.message}", err=True)
            continue
        result = pipeline.analyze(decoded.image, (decoded.width, decoded.height))
        yield _emit(Sample(file.name, None, result), as_json)


def _emit(sample: Sample, as_json: bool) -> Sample:
    typer.echo(json.dumps(sample.to_json()) if as_json else sample.line())
    return sample


def register(app: typer.Typer) -> None:
    app.command()(analyze)
