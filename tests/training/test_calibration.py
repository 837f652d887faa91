"""Expected calibration error and FER+ majority labels."""

from pathlib import Path

import numpy as np
import pytest

from training.calibration import (
    expected_calibration_error,
    ferplus_accuracy,
    ferplus_majority,
    uncertain_threshold,
)


def _probs(top: float, winners: list[int]) -> np.ndarray:
    rest = (1 - top) / 6
    probs = np.full((len(winners), 7), rest)
    probs[np.arange(len(winners)), winners] = top
    return probs


def test_confidence_that_matches_accuracy_has_no_calibration_error():
    # 80 % confident everywhere and right on 8 of 10 images.
    probs = _probs(0.8, [0] * 10)
    labels = np.array([0] * 8 + [1] * 2)
    assert expected_calibration_error(probs, labels) == pytest.approx(0.0, abs=1e-9)


def test_overconfidence_is_the_gap_between_confidence_and_accuracy():
    # 90 % confident, right half the time.
    probs = _probs(0.9, [0] * 10)
    labels = np.array([0] * 5 + [1] * 5)
    assert expected_calibration_error(probs, labels) == pytest.approx(0.4)


def test_ferplus_majority_leaves_out_ties_and_images_without_votes():
    votes = np.array(
        [[0, 0, 0, 9, 0, 1, 0], [0, 0, 0, 5, 0, 5, 0], [0] * 7, [6, 0, 0, 0, 4, 0, 0]],
        dtype=np.float32,
    )
    assert ferplus_majority(votes).tolist() == [3, -1, -1, 0]
    accuracy, counted = ferplus_accuracy(_probs(0.5, [3, 3, 3, 4]), votes)
    assert counted == 2
    assert accuracy == pytest.approx(0.5)


def test_labels_are_withheld_where_they_are_more_often_wrong_than_right():
    # 40 faces at 0.9 (36 right), 40 at 0.6 (24 right), 40 at 0.4 (12 right).
    probs = np.concatenate([_probs(0.9, [0] * 40), _probs(0.6, [0] * 40), _probs(0.4, [0] * 40)])
    labels = np.array([0] * 36 + [1] * 4 + [0] * 24 + [1] * 16 + [0] * 12 + [1] * 28)
    found = uncertain_threshold(probs, labels)
    assert found.below == pytest.approx(0.45)  # the top of the 0.40..0.45 bin
    assert found.coverage == pytest.approx(80 / 120)
    assert found.labelled_accuracy == pytest.approx(60 / 80)
    assert found.withheld_accuracy == pytest.approx(12 / 40)
    assert found.accuracy == pytest.approx(72 / 120)


def test_a_bin_too_small_to_say_anything_does_not_move_the_threshold():
    # Five wrong faces at 0.95 above 40 good ones at 0.7: no threshold.
    probs = np.concatenate([_probs(0.95, [0] * 5), _probs(0.7, [0] * 40)])
    labels = np.array([1] * 5 + [0] * 40)
    found = uncertain_threshold(probs, labels)
    assert found.below == 0.0
    assert found.coverage == 1.0
    assert found.withheld_accuracy is None


def test_a_model_right_everywhere_keeps_every_label_and_zero_means_never():
    probs = _probs(0.3, [2] * 30)
    labels = np.array([2] * 30)
    assert uncertain_threshold(probs, labels).below == 0.0
    assert uncertain_threshold(probs, np.array([1] * 30), min_accuracy=0.0).below == 0.0


def test_calibrate_records_the_threshold_and_serves_it_only_when_applied(tmp_path):
    import shutil

    from typer.testing import CliRunner

    from classpulse.cli import app
    from services.inference.config import WorkerProcessSettings
    from services.inference.resources import build_pipeline
    from shared.vision.artifact import read_metadata

    fixtures = Path(__file__).resolve().parents[1] / "fixtures"
    rows = (fixtures / "fer2013-sample.csv").read_text().splitlines()
    # Each PublicTest image ten times: bins full enough to count.
    public = [r for r in rows[1:] if r.endswith("PublicTest")]
    data = tmp_path / "fer2013.csv"
    data.write_text("\n".join([rows[0], *(public * 10)]) + "\n")
    model = tmp_path / "model"
    # models/fast: a model that does not serve a threshold yet.
    shutil.copytree(Path(__file__).resolve().parents[2] / "models" / "fast", model)
    runner = CliRunner()
    # Bar at 100 %: any bin with a wrong label is withheld.
    args = ["calibrate", "--model", str(model), "--data", str(data), "--min-accuracy", "1"]

    found = runner.invoke(app, args)
    assert found.exit_code == 0, found.output
    meta = read_metadata(model)
    below = meta.metrics["uncertain"]["below"]
    assert 0 < below < 1
    assert meta.uncertain_below == 0.0
    assert "would be reported as uncertain" in found.output

    applied = runner.invoke(app, [*args, "--apply"])
    assert applied.exit_code == 0, applied.output
    assert read_metadata(model).uncertain_below == below
    serving = WorkerProcessSettings(
        database_url="postgresql://unused/x", redis_url="redis://unused/0", model_dir=model
    )
    assert build_pipeline(serving).uncertain_below == below
