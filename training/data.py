"""Load FER2013 in the two layouts people have: the original CSV and Kaggle folders.

Both loaders return a :class:`Split` of 48x48 uint8 images and FER2013 label
indices. Folder images go through ``shared.vision.preprocess.to_model_input``,
the same function serving uses, so a model never sees pixels prepared another way.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import cv2
import numpy as np
import numpy.typing as npt

from shared.errors import DatasetError
from shared.labels import LABELS, NUM_CLASSES, Expression
from shared.vision.preprocess import INPUT_SIZE, to_model_input

#: Default location of the data set, relative to the repository root.
DEFAULT_DATA_DIR = Path("../shared/datasets/fer2013")
DEFAULT_CSV_NAME = "fer2013-train-publictest.csv.gz"
FERPLUS_NAME = "ferplus-labels.csv"
SPLITS = ("Training", "PublicTest", "PrivateTest")
#: The Kaggle folder layout names its splits train/ and test/.
FOLDER_SPLITS = {"Training": "train", "PublicTest": "test", "PrivateTest": "test"}
CSV_COLUMNS = ("emotion", "pixels", "Usage")
PIXELS_PER_IMAGE = INPUT_SIZE * INPUT_SIZE
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp"}
#: FER+ vote columns in the order of FER2013's labels (contempt, unknown and
#: not-a-face have no FER2013 counterpart).
FERPLUS_COLUMNS = ("anger", "disgust", "fear", "happiness", "sadness", "surprise", "neutral")


@dataclass(frozen=True)
class Split:
    """Images (N, 48, 48) uint8 and labels (N,) int64 of one data split."""

    images: npt.NDArray[np.uint8]
    labels: npt.NDArray[np.int64]
    source: str
    #: Row index in the source CSV (or -1 for folders), to join FER+ votes.
    rows: npt.NDArray[np.int64]

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def class_counts(self) -> dict[str, int]:
        counts = np.bincount(self.labels, minlength=NUM_CLASSES)
        return {LABELS[i]: int(c) for i, c in enumerate(counts)}

    def subset(self, count: int) -> Split:
        """The first ``count`` samples (for smoke tests and quick runs)."""
        return Split(self.images[:count], self.labels[:count], self.source, self.rows[:count])


def load(path: Path | str, split: str = "Training") -> Split:
    """Load ``split`` from a FER2013 CSV (plain or .gz) or a Kaggle-style folder."""
    if split not in SPLITS:
        raise DatasetError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    path = Path(path)
    if not path.exists():
        raise DatasetError(f"{path}: no such file or directory")
    if path.is_dir():
        csv_path = path / DEFAULT_CSV_NAME
        if csv_path.exists():
            return load_csv(csv_path, split)
        return load_folder(path, split)
    return load_csv(path, split)


def _open_text(path: Path) -> IO[str]:
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", newline="")
    return path.open(encoding="utf-8", newline="")


def _iter_csv(path: Path) -> Iterator[tuple[int, dict[str, str]]]:
    try:
        with _open_text(path) as handle:
            reader = csv.DictReader(handle)
            header = tuple(reader.fieldnames or ())
            missing = [c for c in CSV_COLUMNS if c not in header]
            if missing:
                raise DatasetError(
                    f"{path}: missing column(s) {', '.join(missing)}; "
                    f"expected header {','.join(CSV_COLUMNS)}, "
                    f"found {','.join(header) or 'nothing'}"
                )
            # Line 1 is the header, so data row i is on line i + 2.
            yield from enumerate(reader)
    except (OSError, EOFError, UnicodeDecodeError, csv.Error) as exc:
        raise DatasetError(f"{path}: cannot read CSV: {exc}") from exc


def load_csv(path: Path | str, split: str = "Training") -> Split:
    """Rows of the original ``fer2013.csv`` whose ``Usage`` is ``split``."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: no such file")
    images: list[npt.NDArray[np.uint8]] = []
    labels: list[int] = []
    rows: list[int] = []
    for row_index, row in _iter_csv(path):
        if row["Usage"] != split:
            continue
        where = f"{path}: row {row_index} (line {row_index + 2})"
        try:
            label = int(row["emotion"])
        except (TypeError, ValueError):
            raise DatasetError(f"{where}: emotion {row['emotion']!r} is not an integer") from None
        if not 0 <= label < NUM_CLASSES:
            raise DatasetError(f"{where}: emotion {label} is outside 0..{NUM_CLASSES - 1}")
        values = (row["pixels"] or "").split()
        if len(values) != PIXELS_PER_IMAGE:
            raise DatasetError(f"{where}: expected {PIXELS_PER_IMAGE} pixels, found {len(values)}")
        try:
            pixels = np.array(values, dtype=np.int32)
        except ValueError:
            raise DatasetError(f"{where}: pixels must be integers 0..255") from None
        if pixels.min() < 0 or pixels.max() > 255:
            raise DatasetError(f"{where}: pixels must be integers 0..255")
        images.append(pixels.astype(np.uint8).reshape(INPUT_SIZE, INPUT_SIZE))
        labels.append(label)
        rows.append(row_index)
    if not images:
        raise DatasetError(f"{path}: no rows with Usage={split}")
    return Split(
        np.stack(images),
        np.array(labels, dtype=np.int64),
        str(path),
        np.array(rows, dtype=np.int64),
    )


def _label_from_folder(folder: Path) -> int:
    name = folder.name.strip().lower()
    if name.isdigit() and int(name) < NUM_CLASSES:
        return int(name)
    try:
        return int(Expression.from_label(name))
    except ValueError:
        raise DatasetError(
            f"{folder}: unknown label folder {folder.name!r}; "
            f"expected one of {', '.join(LABELS)} (or 0..{NUM_CLASSES - 1})"
        ) from None


def load_folder(root: Path | str, split: str = "Training") -> Split:
    """Kaggle layout: ``root/train/<label>/*.png|jpg`` and ``root/test/<label>/…``."""
    root = Path(root)
    split_dir = root / FOLDER_SPLITS[split]
    if not split_dir.is_dir():
        raise DatasetError(f"{split_dir}: no such folder (expected {root}/train and {root}/test)")
    images: list[npt.NDArray[np.uint8]] = []
    labels: list[int] = []
    for folder in sorted(p for p in split_dir.iterdir() if p.is_dir()):
        label = _label_from_folder(folder)
        for file in sorted(folder.iterdir()):
            if file.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            image = cv2.imread(str(file), cv2.IMREAD_GRAYSCALE)
            if image is None or image.size == 0:
                raise DatasetError(f"{file}: not a readable image")
            images.append(to_model_input(image.astype(np.uint8, copy=False)))
            labels.append(label)
    if not images:
        raise DatasetError(f"{split_dir}: no images in any label folder")
    return Split(
        np.stack(images),
        np.array(labels, dtype=np.int64),
        str(split_dir),
        np.full(len(labels), -1, dtype=np.int64),
    )


def load_ferplus_votes(path: Path | str, rows: npt.NDArray[np.int64]) -> npt.NDArray[np.float32]:
    """FER+ votes for the given original-CSV rows, in FER2013 label order.

    Returns (N, 7) vote counts; rows without any of the seven votes are zeros.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: no such file")
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in FERPLUS_COLUMNS if c not in (reader.fieldnames or ())]
        if missing:
            raise DatasetError(f"{path}: missing FER+ column(s) {', '.join(missing)}")
        table = np.array(
            [[float(r[c] or 0) for c in FERPLUS_COLUMNS] for r in reader], dtype=np.float32
        )
    if rows.size and (rows.min() < 0 or rows.max() >= len(table)):
        raise DatasetError(f"{path}: has {len(table)} rows; cannot join row {int(rows.max())}")
    return table[rows]


def data_hash(*splits: Split) -> str:
    """SHA-256 over the images and labels a model was trained on."""
    digest = hashlib.sha256()
    for split in splits:
        digest.update(np.ascontiguousarray(split.images).tobytes())
        digest.update(np.ascontiguousarray(split.labels).tobytes())
    return digest.hexdigest()
