"""The model artifact contract: a directory with the serving model and metadata.json.

Training writes it, the worker and ``classpulse evaluate`` read it. Loading
refuses an artifact whose labels, input shape or preprocessing differ from
this code, because such a model would silently mislabel every face.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from shared.errors import ModelArtifactError
from shared.labels import LABELS
from shared.vision.preprocess import INPUT_SHAPE, PREPROCESSING_VERSION

ARTIFACT_FORMAT = "classpulse-expression-model/1"
METADATA_FILE = "metadata.json"
ONNX_FILE = "model.onnx"
KERAS_FILE = "model.keras"
PRECISIONS = ("float32", "int8")
#: Serving zooms a model may ask for: beyond them a crop loses the face or its frame.
MIN_ZOOM, MAX_ZOOM = 0.8, 1.5


@dataclass(frozen=True)
class ModelMetadata:
    """What a model artifact says about itself (stored as metadata.json)."""

    version: str
    architecture: str
    labels: list[str]
    input_shape: list[int]
    preprocessing: str
    training_data_sha256: str
    epochs: int
    #: Test-time augmentation the model is served with: "none" or "flip".
    tta: str = "none"
    #: With flip TTA, only faces whose first pass's top probability is under this
    #: are classified mirrored as well (None: every face); chosen on PublicTest by
    #: ``classpulse tune-serving``.
    tta_below: float | None = None
    #: Crops are magnified about their centre by this factor before the network
    #: sees them: a network trained on zoomed faces reads faces best near the
    #: middle of its training zoom (``classpulse tune-serving``).
    zoom: float = 1.0
    #: Numeric type of ``model.onnx``: "float32", or "int8" after post-training
    #: quantization (``model.keras`` stays float32).
    precision: str = "float32"
    #: Top probability under which a face is reported "uncertain" instead of
    #: labelled (0: always labelled); chosen on PublicTest by ``classpulse calibrate``.
    uncertain_below: float = 0.0
    metrics: dict[str, Any] = field(default_factory=dict)
    parameters: int = 0
    created_at: str = ""
    format: str = ARTIFACT_FORMAT

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @property
    def serving(self) -> str:
        """How the model is served, for benchmark tables: ``zoom1.1 flip<0.45 int8``."""
        tta = self.tta if self.tta_below is None else f"{self.tta}<{self.tta_below:g}"
        zoom = "" if self.zoom == 1.0 else f"zoom{self.zoom:g} "
        return f"{zoom}{tta} {self.precision}"


def check_compatible(meta: ModelMetadata, where: Path) -> None:
    """Raise ``ModelArtifactError`` unless ``meta`` matches this code's contract."""
    problems = []
    if meta.format != ARTIFACT_FORMAT:
        problems.append(f"format {meta.format!r} (expected {ARTIFACT_FORMAT!r})")
    if list(meta.labels) != list(LABELS):
        problems.append(f"labels {meta.labels} (expected {list(LABELS)})")
    if list(meta.input_shape) != list(INPUT_SHAPE):
        problems.append(f"input shape {meta.input_shape} (expected {list(INPUT_SHAPE)})")
    if meta.preprocessing != PREPROCESSING_VERSION:
        problems.append(
            f"preprocessing {meta.preprocessing!r} (expected {PREPROCESSING_VERSION!r})"
        )
    if meta.tta not in ("none", "flip"):
        problems.append(f"test-time augmentation {meta.tta!r} (expected 'none' or 'flip')")
    if meta.tta_below is not None and not 0.0 < meta.tta_below <= 1.0:
        problems.append(f"tta_below {meta.tta_below!r} (expected null or over 0 up to 1)")
    if not MIN_ZOOM <= meta.zoom <= MAX_ZOOM:
        problems.append(f"zoom {meta.zoom!r} (expected {MIN_ZOOM} to {MAX_ZOOM})")
    if not 0.0 <= meta.uncertain_below <= 1.0:
        # 1: a model whose labels are more often wrong than right at every confidence.
        problems.append(f"uncertain_below {meta.uncertain_below!r} (expected 0 to 1)")
    if meta.precision not in PRECISIONS:
        problems.append(f"precision {meta.precision!r} (expected one of {', '.join(PRECISIONS)})")
    if problems:
        raise ModelArtifactError(
            f"{where}: model artifact does not match this version of ClassPulse: "
            + "; ".join(problems)
        )


def read_metadata(model_dir: Path | str) -> ModelMetadata:
    """Read and validate ``metadata.json`` of an artifact directory."""
    model_dir = Path(model_dir)
    path = model_dir / METADATA_FILE
    if not path.is_file():
        raise ModelArtifactError(f"{path}: no such file; is {model_dir} a model artifact?")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        meta = ModelMetadata(**raw)
    except (json.JSONDecodeError, TypeError, UnicodeDecodeError) as exc:
        raise ModelArtifactError(f"{path}: unreadable model metadata: {exc}") from exc
    check_compatible(meta, path)
    return meta


def write_metadata(model_dir: Path | str, meta: ModelMetadata) -> Path:
    path = Path(model_dir) / METADATA_FILE
    path.write_text(meta.to_json(), encoding="utf-8")
    return path
