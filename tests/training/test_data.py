import gzip
import shutil

import cv2
import numpy as np
import pytest

from shared.errors import DatasetError
from shared.labels import LABELS
from training.data import data_hash, load, load_csv, load_ferplus_votes, load_folder

from ..conftest import FIXTURES

SAMPLE = FIXTURES / "fer2013-sample.csv"


def test_csv_loads_each_split_with_labels_in_fer2013_order():
    train = load_csv(SAMPLE, "Training")
    public = load_csv(SAMPLE, "PublicTest")
    assert train.images.shape == (28, 48, 48)
    assert train.images.dtype == np.uint8
    assert public.class_counts() == dict.fromkeys(LABELS, 4)
    # The fixture holds four rows per label, written in file order.
    first_row = SAMPLE.read_text().splitlines()[1].split(",")
    assert int(first_row[0]) == train.labels[0]
    assert train.images[0].ravel()[:5].tolist() == [int(v) for v in first_row[1].split()[:5]]


def test_gzipped_csv_gives_the_same_data(tmp_path):
    gz = tmp_path / "fer.csv.gz"
    with SAMPLE.open("rb") as src, gzip.open(gz, "wb") as dst:
        shutil.copyfileobj(src, dst)
    plain, zipped = load_csv(SAMPLE), load(gz)
    assert data_hash(plain) == data_hash(zipped)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(DatasetError, match="nope.csv"):
        load(tmp_path / "nope.csv")


def test_wrong_column_is_named(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("label,pixels,Usage\n0,1 2 3,Training\n")
    with pytest.raises(DatasetError, match=r"bad\.csv: missing column\(s\) emotion"):
        load_csv(bad)


def test_short_row_names_file_and_row(tmp_path):
    lines = SAMPLE.read_text().splitlines()
    emotion, pixels, usage = lines[3].split(",")
    lines[3] = ",".join([emotion, " ".join(pixels.split()[:-1]), usage])
    bad = tmp_path / "short.csv"
    bad.write_text("\n".join(lines) + "\n")
    with pytest.raises(
        DatasetError, match=r"short\.csv: row 2 \(line 4\): expected 2304 pixels, found 2303"
    ):
        load_csv(bad)


def test_label_out_of_range_is_refused(tmp_path):
    lines = SAMPLE.read_text().splitlines()
    lines[1] = "9" + lines[1][1:]
    bad = tmp_path / "label.csv"
    bad.write_text("\n".join(lines) + "\n")
    with pytest.raises(DatasetError, match="row 0 .*emotion 9"):
        load_csv(bad)


def _write_folder(root, split):
    for i, (image, label) in enumerate(zip(split.images, split.labels, strict=True)):
        folder = root / LABELS[label]
        folder.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(folder / f"{i}.png"), image)


def test_kaggle_folder_layout_matches_the_csv(tmp_path):
    train, public = load_csv(SAMPLE, "Training"), load_csv(SAMPLE, "PublicTest")
    _write_folder(tmp_path / "train", train)
    _write_folder(tmp_path / "test", public)
    loaded = load(tmp_path, "Training")
    assert len(loaded) == len(train)
    assert sorted(loaded.labels.tolist()) == sorted(train.labels.tolist())
    # PNG is lossless and 48x48 needs no resize: pixels come back identical.
    assert {img.tobytes() for img in loaded.images} == {img.tobytes() for img in train.images}
    assert load_folder(tmp_path, "PublicTest").class_counts() == public.class_counts()


def test_unknown_label_folder_is_named(tmp_path):
    (tmp_path / "train" / "bored").mkdir(parents=True)
    with pytest.raises(DatasetError, match="unknown label folder 'bored'"):
        load_folder(tmp_path, "Training")


def test_ferplus_votes_reordered_to_fer2013_labels(tmp_path):
    votes = tmp_path / "ferplus.csv"
    votes.write_text(
        "Usage,Image name,neutral,happiness,surprise,sadness,anger,disgust,fear,contempt,unknown,NF\n"
        "Training,a.png,1,2,3,4,5,6,7,0,0,0\n"
    )
    table = load_ferplus_votes(votes, np.array([0]))
    # FER2013 order: angry, disgust, fear, happy, sad, surprise, neutral.
    assert table[0].tolist() == [5, 6, 7, 2, 4, 3, 1]
