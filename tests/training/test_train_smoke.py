"""A few training steps on real FER2013 rows, through export and the serving loader."""

import csv
import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tensorflow")

from shared.vision.classify import ExpressionClassifier  # noqa: E402
from training.data import load_csv  # noqa: E402
from training.train import TrainConfig, train  # noqa: E402

from ..conftest import FIXTURES, ROOT  # noqa: E402

SAMPLE = FIXTURES / "fer2013-sample.csv"


def small_run(out: Path, epochs: int, **overrides: object) -> TrainConfig:
    """A quick, deterministic run on the sample rows: no augmentation, float32, constant LR."""
    cfg = TrainConfig(
        arch="vgg_bn",
        data=SAMPLE,
        out=out,
        epochs=epochs,
        batch_size=7,
        learning_rate=1e-3,
        schedule="constant",
        ferplus_weight=0.0,
        augment=False,
        mixed_precision=False,
        quantize=False,
        patience=50,
        verbose=0,
    )
    return replace(cfg, **overrides)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("run")
    train(small_run(out, 12, tta="flip"))
    return out


@pytest.fixture(scope="module")
def second_member(run_dir, tmp_path_factory) -> Path:
    """Another model on the same data: one epoch on from the first run's weights."""
    out = tmp_path_factory.mktemp("second")
    train(small_run(out, 1, learning_rate=1e-4, init_from=run_dir / "best.keras"))
    return out / "artifact"


def test_loss_falls_and_run_files_exist(run_dir):
    with (run_dir / "history.csv").open() as handle:
        losses = [float(row["loss"]) for row in csv.DictReader(handle)]
    assert len(losses) == 12
    assert losses[-1] < 0.7 * losses[0]
    for name in ("train.log", "best.keras", "curves.png", "backup"):
        assert (run_dir / name).exists(), name


def test_artifact_loads_and_onnx_agrees_with_keras(run_dir):
    import keras

    artifact = run_dir / "artifact"
    classifier = ExpressionClassifier(artifact)
    meta = classifier.metadata
    assert meta.architecture == "vgg_bn"
    assert meta.metrics["public_test"]["n"] == 28
    faces = list(load_csv(SAMPLE, "PublicTest").images[:5])
    onnx_probs = classifier.predict(faces)
    np.testing.assert_allclose(onnx_probs.sum(axis=1), 1.0, atol=1e-5)
    model = keras.models.load_model(artifact / "model.keras")
    batch = np.stack(faces).astype(np.float32)[..., None]
    keras_probs = (
        model.predict(batch, verbose=0) + model.predict(batch[:, :, ::-1], verbose=0)
    ) / 2
    np.testing.assert_allclose(onnx_probs, keras_probs, atol=1e-4)


def test_resume_continues_from_the_checkpoint(run_dir):
    train(small_run(run_dir, 13, resume=True))
    with (run_dir / "history.csv").open() as handle:
        epochs = [int(row["epoch"]) for row in csv.DictReader(handle)]
    assert epochs == list(range(13))  # one more epoch, appended, not restarted


def test_committed_checkpoint_continues_the_run_in_another_folder(tmp_path):
    from shared.errors import ConfigError
    from training import checkpoint

    folder = tmp_path / "checkpoints" / "run"
    # A budget that one epoch already spends: the run stops after its first epoch.
    assert train(small_run(tmp_path / "a", 3, checkpoint=folder, budget_minutes=1e-4)) is None
    state, last, best = checkpoint.load(folder)
    steps = state.optimizer_steps
    assert (state.epochs_done, state.best_epoch, steps) == (1, 1, 4)  # 28 rows, batches of 7
    assert state.epochs[0].cpu == checkpoint.cpu_description()
    assert state.epochs[0].precision == "float32"
    assert (folder / "history.csv").read_text().count("\n") == 2  # header and epoch 0
    with pytest.raises(ConfigError, match="pass --resume"):
        train(small_run(tmp_path / "b", 3, checkpoint=folder))

    # Another session, another machine: only the committed folder is there. The run's own
    # settings (3 epochs, not 9) come from the checkpoint.
    artifact = train(small_run(tmp_path / "b", 9, checkpoint=folder, resume=True))
    assert artifact is not None
    assert (artifact / "model.onnx").is_file()
    state, _, _ = checkpoint.load(folder)
    assert (state.epochs_done, state.optimizer_steps) == (3, 3 * steps)
    assert [r.epoch for r in state.epochs] == [1, 2, 3]
    with (tmp_path / "b" / "history.csv").open() as handle:
        assert [int(row["epoch"]) for row in csv.DictReader(handle)] == [0, 1, 2]
    assert "continuing from" in (tmp_path / "b" / "train.log").read_text()


def test_evaluate_json_is_one_object_with_the_contract_fields(run_dir, tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "classpulse.cli",
            "evaluate",
            "--model",
            str(run_dir / "artifact"),
            "--data",
            str(SAMPLE),
            "--split",
            "PublicTest",
            "--json",
            "--report",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
    )
    result = json.loads(proc.stdout)
    assert set(result) >= {"accuracy", "macro_recall", "per_class_recall", "n", "model_version"}
    assert result["n"] == 28
    assert 0.0 <= result["accuracy"] <= 1.0
    matrix = np.array(result["confusion_matrix"])
    assert matrix.sum() == 28
    assert matrix.sum(axis=1).tolist() == [4] * 7
    assert result["accuracy"] == pytest.approx(np.trace(matrix) / 28)
    assert (tmp_path / "confusion.png").stat().st_size > 1000


def test_model_quality_mean_row_scores_the_mean_of_the_models_probabilities(run_dir):
    from shared.settings import DEFAULT_MODEL_DIR
    from training.evaluate import split_probabilities

    models = [DEFAULT_MODEL_DIR, run_dir / "artifact"]
    proc = subprocess.run(
        [sys.executable, "-m", "bench.model_quality", "--data", str(SAMPLE), "--mean",
         *map(str, models)],
        capture_output=True, text=True, cwd=ROOT, check=True,
    )  # fmt: skip
    rows = [line for line in proc.stdout.splitlines() if line.startswith("| ")]
    assert len(rows) == 4  # header, the two models, their mean
    split = load_csv(SAMPLE, "PublicTest")
    mean = np.mean([split_probabilities(ExpressionClassifier(m), split) for m in models], axis=0)
    accuracy = float((mean.argmax(axis=1) == split.labels).mean())
    parameters = sum(ExpressionClassifier(m).metadata.parameters for m in models)
    assert rows[3].startswith(f"| mean of the 2 models | {parameters:,} |")
    assert f"**{accuracy:.2%}**" in rows[3]


def test_init_from_starts_a_new_schedule_from_trained_weights(run_dir, second_member):
    with (run_dir / "history.csv").open() as handle:
        first_run = [float(row["loss"]) for row in csv.DictReader(handle)]
    with (second_member.parent / "history.csv").open() as handle:
        (second,) = [float(row["loss"]) for row in csv.DictReader(handle)]
    # A fresh model starts near ln(7); a warm start near where the first run ended.
    assert second < 0.8 * first_run[0]


def test_train_command_passes_its_options_to_the_run(run_dir, tmp_path):
    from typer.testing import CliRunner

    from classpulse.cli import app

    out = tmp_path / "cli"
    result = CliRunner().invoke(
        app,
        ["train", "--data", str(SAMPLE), "--out", str(out), "--epochs", "1", "--batch-size", "7",
         "--learning-rate", "1e-4", "--weight-decay", "1e-5", "--dropout", "0.2",
         "--optimizer", "sgd", "--init-from", str(run_dir / "best.keras"),
         "--teacher", str(run_dir / "artifact"), "--teacher-weight", "0.25"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    log = (out / "train.log").read_text()
    assert f"teachers {run_dir / 'artifact'}: training targets 25% theirs" in log
    assert f"weights from {run_dir / 'best.keras'}" in log
    assert '"learning_rate": 0.0001' in log
    assert '"weight_decay": 1e-05' in log
    assert '"dropout": 0.2' in log
    assert '"optimizer": "sgd"' in log
    assert ExpressionClassifier(out / "artifact").metadata.precision == "int8"


@pytest.mark.parametrize(
    ("args", "bfloat16"),
    [
        ([], None),  # decided by the CPU (native_bfloat16)
        (["--precision", "bfloat16"], True),
        (["--precision", "float32"], False),
        (["--arch", "thesis"], False),  # the thesis trained in float32
        (["--arch", "thesis", "--precision", "bfloat16"], True),
    ],
)
def test_precision_option_sets_the_training_compute(monkeypatch, tmp_path, args, bfloat16):
    from typer.testing import CliRunner

    from classpulse.cli import app

    configs: list[TrainConfig] = []
    monkeypatch.setattr("training.train.train", lambda cfg: configs.append(cfg) or tmp_path)
    result = CliRunner().invoke(
        app, ["train", "--data", str(SAMPLE), "--out", str(tmp_path), *args]
    )
    assert result.exit_code == 0, result.output
    assert configs[0].mixed_precision is bfloat16


def test_distilled_targets_mix_in_the_teachers_and_stay_distributions():
    from training.train import mix_targets

    targets = np.array([[1, 0, 0, 0, 0, 0, 0], [0, 0.7, 0.3, 0, 0, 0, 0]], dtype=np.float32)
    teacher = np.full((2, 7), 1 / 7, dtype=np.float32)
    mixed = mix_targets(targets, teacher, 0.5)
    assert mixed[0, 0] == pytest.approx(0.5 + 0.5 / 7)
    assert mixed[1, 1] == pytest.approx(0.35 + 0.5 / 7)
    assert mixed[0, 3] == pytest.approx(0.5 / 7)
    np.testing.assert_allclose(mixed.sum(axis=1), 1.0, rtol=1e-6)
    np.testing.assert_array_equal(mix_targets(targets, teacher, 0.0), targets)


def test_teacher_probabilities_are_the_mean_of_the_served_ones(run_dir):
    from training.evaluate import split_probabilities
    from training.train import teacher_probabilities

    split = load_csv(SAMPLE, "Training")
    artifact = run_dir / "artifact"
    served = split_probabilities(ExpressionClassifier(artifact), split)
    both = teacher_probabilities([artifact, artifact], split)
    assert both.shape == (len(split), 7)
    np.testing.assert_allclose(both, served, atol=1e-6)


def test_a_teacher_that_is_no_model_artifact_is_a_clear_error(tmp_path):
    from typer.testing import CliRunner

    from classpulse.cli import app

    missing = tmp_path / "no-such-model"
    result = CliRunner().invoke(
        app,
        ["train", "--data", str(SAMPLE), "--out", str(tmp_path / "run"), "--epochs", "1",
         "--teacher", str(missing)],
    )  # fmt: skip
    assert result.exit_code == 2
    assert "error:" in result.output
    assert str(missing) in result.output


def test_bfloat16_only_where_the_cpu_has_amx(tmp_path):
    from training.train import native_bfloat16

    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("flags\t\t: fpu sse2 avx2 avx512f\n")
    assert not native_bfloat16(cpuinfo)
    cpuinfo.write_text("flags\t\t: fpu sse2 avx2 avx512f avx512_bf16\n")
    assert not native_bfloat16(cpuinfo)
    cpuinfo.write_text("flags\t\t: fpu sse2 avx2 avx512f avx512_bf16 amx_bf16 amx_tile\n")
    assert native_bfloat16(cpuinfo)
    assert not native_bfloat16(tmp_path / "missing")


def test_train_without_tensorflow_says_which_extra_to_install(monkeypatch, tmp_path):
    import importlib.util

    from typer.testing import CliRunner

    from classpulse.cli import app

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *args: None if name == "tensorflow" else real_find_spec(name, *args),
    )
    result = CliRunner().invoke(app, ["train", "--data", str(SAMPLE), "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "pip install -e '.[training]'" in result.output
    assert not (tmp_path / "train.log").exists()


def test_sgd_optimizer_is_nesterov_and_unknown_names_are_refused():
    from training.optimizers import make_optimizer

    sgd = make_optimizer("sgd", 1e-2)
    assert type(sgd).__name__ == "SGD"
    assert sgd.nesterov
    assert sgd.momentum == pytest.approx(0.9)
    assert type(make_optimizer("adam", 1e-3)).__name__ == "Adam"
    with pytest.raises(ValueError, match="unknown optimizer 'rmsprop'"):
        make_optimizer("rmsprop", 1e-3)


def test_ensemble_serves_the_mean_of_its_members(run_dir, second_member, tmp_path):
    from training.ensemble import build_ensemble
    from training.evaluate import split_probabilities

    members = [run_dir / "artifact", second_member]
    train_split, val = load_csv(SAMPLE, "Training"), load_csv(SAMPLE, "PublicTest")
    out = build_ensemble(members, tmp_path / "ensemble", train_split, val, quantize=False)

    ensemble = ExpressionClassifier(out)
    meta = ensemble.metadata
    assert meta.architecture == "ensemble of vgg_bn + vgg_bn"
    assert meta.parameters == 2 * 1_242_151
    assert meta.precision == "float32"
    assert [m["version"] for m in meta.metrics["members"]] == [
        ExpressionClassifier(m).version for m in members
    ]
    each = [split_probabilities(ExpressionClassifier(m), val) for m in members]
    assert not np.allclose(each[0], each[1], atol=1e-3)  # two different models
    np.testing.assert_allclose(split_probabilities(ensemble, val), np.mean(each, axis=0), atol=1e-5)
    accuracy = float((np.mean(each, axis=0).argmax(axis=1) == val.labels).mean())
    assert meta.metrics["public_test"]["accuracy"] == pytest.approx(accuracy)


def test_ensemble_command_writes_an_int8_artifact(run_dir, second_member, tmp_path):
    from typer.testing import CliRunner

    from classpulse.cli import app

    out = tmp_path / "ensemble"
    result = CliRunner().invoke(
        app,
        ["ensemble", str(run_dir / "artifact"), str(second_member), "--out", str(out),
         "--data", str(SAMPLE)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    meta = ExpressionClassifier(out).metadata
    assert meta.precision == "int8"
    assert f"ensemble {meta.version} (int8, tta=flip): PublicTest" in result.output
    float_members = sum(
        (m / "model.onnx").stat().st_size for m in (run_dir / "artifact", second_member)
    )
    assert (out / "model.onnx").stat().st_size < 0.4 * float_members


def test_ensemble_refuses_members_trained_on_other_data(run_dir, tmp_path):
    from typer.testing import CliRunner

    from classpulse.cli import app
    from shared.settings import DEFAULT_MODEL_DIR

    out = tmp_path / "ensemble"
    result = CliRunner().invoke(
        app,
        ["ensemble", str(run_dir / "artifact"), str(DEFAULT_MODEL_DIR), "--out", str(out),
         "--data", str(SAMPLE)],
    )  # fmt: skip
    assert result.exit_code == 2
    assert f"{DEFAULT_MODEL_DIR}: trained on other data than {SAMPLE}" in result.output
    assert not (out / "model.onnx").exists()


def test_ensemble_needs_two_members(run_dir, tmp_path):
    from shared.errors import ModelArtifactError
    from training.ensemble import build_ensemble

    split = load_csv(SAMPLE, "Training")
    with pytest.raises(ModelArtifactError, match="at least two member artifacts"):
        build_ensemble([run_dir / "artifact"], tmp_path / "e", split, split)


def test_quantize_command_writes_an_int8_copy(run_dir, tmp_path):
    from typer.testing import CliRunner

    from classpulse.cli import app
    from training.evaluate import split_probabilities

    source = run_dir / "artifact"
    out = tmp_path / "int8"
    result = CliRunner().invoke(
        app, ["quantize", str(source), "--out", str(out), "--data", str(SAMPLE)]
    )
    assert result.exit_code == 0, result.output
    before, after = ExpressionClassifier(source), ExpressionClassifier(out)
    assert after.metadata.precision == "int8"
    assert after.version == f"{before.version}-int8"
    assert after.metadata.training_data_sha256 == before.metadata.training_data_sha256
    assert (out / "model.onnx").stat().st_size < 0.4 * (source / "model.onnx").stat().st_size
    val = load_csv(SAMPLE, "PublicTest")
    probabilities = split_probabilities(after, val)
    accuracy = float((probabilities.argmax(axis=1) == val.labels).mean())
    assert after.metadata.metrics["public_test"]["accuracy"] == pytest.approx(accuracy)
    # int8 rounding moves the probabilities a little, not the model.
    np.testing.assert_allclose(probabilities, split_probabilities(before, val), atol=0.05)
    assert f"{after.version} (int8, tta=flip): PublicTest {accuracy:.4f}" in result.output


def test_quantize_refuses_an_int8_artifact_and_its_own_folder(run_dir, tmp_path):
    from typer.testing import CliRunner

    from classpulse.cli import app

    source = run_dir / "artifact"
    args = ["--data", str(SAMPLE)]
    same = CliRunner().invoke(app, ["quantize", str(source), "--out", str(source), *args])
    assert same.exit_code == 2
    assert "choose another folder than the float32 artifact's" in same.output
    assert ExpressionClassifier(source).metadata.precision == "float32"

    once = tmp_path / "int8"
    first = CliRunner().invoke(app, ["quantize", str(source), "--out", str(once), *args])
    assert first.exit_code == 0, first.output
    twice = CliRunner().invoke(app, ["quantize", str(once), "--out", str(tmp_path / "x"), *args])
    assert twice.exit_code == 2
    assert f"{once}: its ONNX model is already int8" in twice.output


def test_init_from_weights_of_another_architecture_is_refused(tmp_path):
    from shared.errors import ModelArtifactError
    from shared.settings import FAST_MODEL_DIR

    start = FAST_MODEL_DIR / "model.keras"
    with pytest.raises(ModelArtifactError, match="do not fit architecture 'resnet_small'"):
        train(small_run(tmp_path / "run", 1, arch="resnet_small", init_from=start))
    assert not (tmp_path / "run" / "best.keras").exists()
