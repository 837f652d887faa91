"""Post-training int8 quantization of the served ONNX model.

Conv and dense weights become int8 per output channel and their input
activations uint8, with ranges calibrated on Training images and their mirror
images (the classifier serves both under flip TTA). PublicTest is never used for calibration, so the
artifact's PublicTest figures stay a held-out measurement.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import numpy.typing as npt

from training.data import Split

#: Training images whose activation ranges set the int8 scales.
CALIBRATION_IMAGES = 1024
CALIBRATION_BATCH = 64


def calibration_batches(
    split: Split, n: int = CALIBRATION_IMAGES, seed: int = 0
) -> list[npt.NDArray[np.float32]]:
    """``n`` random images of ``split`` and their mirror images, in model input batches."""
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(split), size=min(n, len(split)), replace=False)
    images = split.images[np.sort(chosen)][..., np.newaxis].astype(np.float32)
    both = np.concatenate([images, images[:, :, ::-1, :]])
    return [both[i : i + CALIBRATION_BATCH] for i in range(0, len(both), CALIBRATION_BATCH)]


class _Reader:
    """onnxruntime's CalibrationDataReader protocol over a list of batches."""

    def __init__(self, input_name: str, batches: list[npt.NDArray[np.float32]]) -> None:
        self._feeds: Iterator[dict[str, npt.NDArray[np.float32]]] = iter(
            {input_name: batch} for batch in batches
        )

    def get_next(self) -> dict[str, npt.NDArray[np.float32]] | None:
        return next(self._feeds, None)


def quantize_onnx(float_onnx: Path, out: Path, calibration: list[npt.NDArray[np.float32]]) -> Path:
    """Write an int8 (QDQ) copy of ``float_onnx`` to ``out``; returns ``out``."""
    import onnxruntime as ort
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    input_name = (
        ort.InferenceSession(str(float_onnx), providers=["CPUExecutionProvider"])
        .get_inputs()[0]
        .name
    )
    with tempfile.TemporaryDirectory() as tmp:
        # Folds constants and fuses conv + BN first, so each conv is quantized once.
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(float_onnx), str(prepared), skip_symbolic_shape=True)
        quantize_static(
            str(prepared),
            str(out),
            _Reader(input_name, calibration),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            # Only the conv and dense layers, where the time goes: quantizing the
            # softmax would round every probability to a multiple of 1/255.
            op_types_to_quantize=["Conv", "Gemm"],
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            # 7-bit weights: without VNNI, x86 multiplies uint8 by int8 with
            # VPMADDUBSW, whose int16 sums saturate at full 8-bit range. On an
            # AVX2 CPU that cost the two-model ensemble 1.5 points of
            # PublicTest accuracy; with 7 bits it lost 0.1 (docs/benchmarks.md).
            reduce_range=True,
        )
    return out
