"""``classpulse train``, ``ensemble``, ``quantize``, ``evaluate``, ``calibrate``,
``tune-serving`` and ``import-weights``."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from shared.errors import ClassPulseError
from shared.settings import DEFAULT_MODEL_DIR
from training.optimizers import Optimizer

if TYPE_CHECKING:
    from shared.vision.artifact import ModelMetadata
    from training.data import Split


class Precision(StrEnum):
    float32 = "float32"
    bfloat16 = "bfloat16"


DATA_HELP = (
    "FER2013 CSV (plain or .gz) or a folder (the data set folder or Kaggle train/ test/ layout)"
)
DataOption = Annotated[Path, typer.Option(help=DATA_HELP)]
QuantizeOption = Annotated[
    bool, typer.Option(help="Serve an int8 ONNX model (calibrated on Training images)")
]
DEFAULT_DATA = Path("../shared/datasets/fer2013")


def _build_scored(build: Callable[[Split, Split], Path], data: Path) -> ModelMetadata:
    """Run ``build(Training, PublicTest)``; errors end the command with their message."""
    from shared.vision.artifact import read_metadata
    from training.data import load

    try:
        return read_metadata(build(load(data, "Training"), load(data, "PublicTest")))
    except (ClassPulseError, FileNotFoundError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


def train(
    arch: Annotated[
        str,
        typer.Option(
            help="Architecture: vgg_bn (default), vgg_bn_40, vgg_bn_wide, vgg_bn_64, resnet18, "
            "resnet_small, thesis"
        ),
    ] = "vgg_bn",
    data: Annotated[Path, typer.Option(help=DATA_HELP)] = Path("../shared/datasets/fer2013"),
    out: Annotated[
        Path, typer.Option(help="Run folder: log, checkpoints, curves, artifact")
    ] = Path("runs/default"),
    epochs: Annotated[int, typer.Option(min=1)] = 40,
    batch_size: Annotated[int, typer.Option(min=1)] = 64,
    learning_rate: Annotated[
        float | None, typer.Option(help="Peak LR (thesis: 1e-3 constant)")
    ] = None,
    weight_decay: Annotated[
        float | None,
        typer.Option(min=0.0, help="Conv L2 penalty (default 5e-4; not the thesis CNN)"),
    ] = None,
    dropout: Annotated[
        float | None,
        typer.Option(min=0.0, max=0.9, help="Head dropout rate (default 0.4; not the thesis CNN)"),
    ] = None,
    optimizer: Annotated[
        Optimizer, typer.Option(help="adam, or sgd with Nesterov momentum 0.9")
    ] = Optimizer.adam,
    patience: Annotated[int, typer.Option(help="Early stopping on PublicTest accuracy")] = 12,
    seed: int = 1337,
    resume: Annotated[
        bool, typer.Option(help="Continue the run in --out from its last checkpoint")
    ] = False,
    limit: Annotated[int, typer.Option(help="Use only N samples per split (smoke runs)")] = 0,
    init_from: Annotated[
        Path | None,
        typer.Option(help="Start from this checkpoint's weights with a fresh schedule"),
    ] = None,
    teacher: Annotated[
        list[Path] | None,
        typer.Option(
            help="Model artifact to distil from (repeat for an ensemble): its probabilities "
            "become part of each training target"
        ),
    ] = None,
    teacher_weight: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Share of the teachers in the target")
    ] = 0.5,
    checkpoint: Annotated[
        Path | None,
        typer.Option(
            help="Folder of the run's committed checkpoint (e.g. models/checkpoints/RUN), "
            "replaced after each epoch; with --resume the run continues from it, on any machine"
        ),
    ] = None,
    budget_minutes: Annotated[
        float,
        typer.Option(min=0.0, help="Stop after the last epoch that fits (0: no limit)"),
    ] = 0.0,
    random_erasing: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Share of images given a box of noise")
    ] = 0.0,
    quantize: Annotated[
        bool, typer.Option(help="Serve an int8 ONNX model (calibrated on Training images)")
    ] = True,
    precision: Annotated[
        Precision | None,
        typer.Option(
            help="Training compute: float32, or bfloat16 with float32 weights (default: "
            "bfloat16 only on CPUs with AMX; float32 for the thesis CNN)"
        ),
    ] = None,
) -> None:
    """Train an expression model on FER2013 Training, selecting on PublicTest."""
    import importlib.util

    from training.train import TrainConfig
    from training.train import train as run

    if importlib.util.find_spec("tensorflow") is None:
        typer.echo(
            "error: training needs TensorFlow: pip install -e '.[training]' "
            "(`make test` installs it too)",
            err=True,
        )
        raise typer.Exit(2)

    cfg = TrainConfig(
        arch=arch,
        data=data,
        out=out,
        epochs=epochs,
        batch_size=batch_size,
        dropout=dropout,
        optimizer=optimizer.value,
        patience=patience,
        seed=seed,
        resume=resume,
        limit=limit,
        init_from=init_from,
        teachers=tuple(teacher or ()),
        teacher_weight=teacher_weight,
        quantize=quantize,
        checkpoint=checkpoint,
        budget_minutes=budget_minutes,
        random_erasing=random_erasing,
        verbose=1 if sys.stdout.isatty() else 2,
    )
    if arch == "thesis":
        # The thesis recipe: Adam at a constant 1e-3, hard labels, float32, no TTA.
        cfg.schedule, cfg.learning_rate, cfg.ferplus_weight = "constant", 1e-3, 0.0
        cfg.mixed_precision, cfg.tta, cfg.quantize = False, "none", False
    if precision is not None:
        cfg.mixed_precision = precision is Precision.bfloat16
    if learning_rate is not None:
        cfg.learning_rate = learning_rate
    if weight_decay is not None:
        cfg.weight_decay = weight_decay
    try:
        artifact = run(cfg)
    except ClassPulseError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    if artifact is None:
        typer.echo(f"time budget spent; continue with --resume --checkpoint {checkpoint}")
    else:
        typer.echo(f"model artifact: {artifact}")


def evaluate(
    data: Annotated[Path, typer.Option(help=DATA_HELP)] = Path("../shared/datasets/fer2013"),
    model: Annotated[Path, typer.Option(help="Model artifact folder")] = DEFAULT_MODEL_DIR,
    split: Annotated[str, typer.Option(help="Training, PublicTest or PrivateTest")] = "PublicTest",
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object on stdout")] = False,
    report: Annotated[
        Path | None, typer.Option(help="Folder for confusion-matrix PNG and JSON")
    ] = None,
) -> None:
    """Accuracy, macro recall, per-class recall and confusion matrix of a model."""
    from training.data import load
    from training.evaluate import evaluate as run
    from training.evaluate import format_report

    try:
        result = run(model, load(data, split), split)
    except ClassPulseError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    if report is not None:
        from training.report import plot_confusion

        report.mkdir(parents=True, exist_ok=True)
        plot_confusion(
            result.confusion,
            report / "confusion.png",
            f"{result.model_version} on {split}: {result.accuracy:.1%}",
        )
        (report / "evaluation.json").write_text(json.dumps(result.as_dict(), indent=2))
    if as_json:
        typer.echo(json.dumps(result.as_dict()))
    else:
        typer.echo(format_report(result))


def calibrate(
    model: Annotated[Path, typer.Option(help="Model artifact folder")] = DEFAULT_MODEL_DIR,
    data: DataOption = DEFAULT_DATA,
    min_accuracy: Annotated[
        float,
        typer.Option(
            min=0.0,
            max=1.0,
            help="Withhold labels of confidences whose labels are right less often (0: never)",
        ),
    ] = 0.5,
    apply: Annotated[
        bool,
        typer.Option(
            help="Serve the threshold: faces under it get no label (class shares then lean "
            "towards the expressions the model is sure of; see the model card)"
        ),
    ] = False,
) -> None:
    """Find on PublicTest the confidence under which faces would be reported "uncertain"."""
    from training.calibration import calibrate_artifact
    from training.data import load

    try:
        found = calibrate_artifact(
            model, load(data, "PublicTest"), min_accuracy=min_accuracy, apply=apply
        )
    except ClassPulseError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    withheld = found.withheld_accuracy
    verb = "are now reported" if apply else "would be reported"
    typer.echo(
        f"{model}: faces under {found.below:.2f} top probability {verb} as uncertain; "
        f"{found.coverage:.1%} of PublicTest keep a label, {found.labelled_accuracy:.1%} of "
        f"them right (all: {found.accuracy:.1%}"
        + (f"; withheld ones {withheld:.1%})" if withheld is not None else ")")
        + ("" if apply else "; --apply serves it")
    )


def tune_serving(
    model: Annotated[Path, typer.Option(help="Model artifact folder")] = DEFAULT_MODEL_DIR,
    data: DataOption = DEFAULT_DATA,
    apply: Annotated[
        bool, typer.Option(help="Serve the chosen zoom and flip threshold (a new version)")
    ] = False,
) -> None:
    """Choose on PublicTest the zoom a model reads faces best at, and the faces worth
    a mirrored second pass; run ``calibrate`` again after applying."""
    from training.data import load
    from training.serving_tune import tune_artifact

    try:
        found = tune_artifact(model, load(data, "PublicTest"), apply=apply)
    except ClassPulseError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    which = "every face" if found.tta_below is None else f"faces under {found.tta_below:g}"
    typer.echo(
        f"{model}: zoom {found.zoom:g}, mirrored pass for {which}: PublicTest "
        f"{found.accuracy:.2%} at {found.passes_per_face:.2f} passes a face (every face "
        f"mirrored: {found.every_face_flipped:.2%} at 2)"
        + ("; now served so" if apply else "; --apply serves it")
    )


def ensemble(
    members: Annotated[
        list[Path], typer.Argument(help="Model artifact folders to average (two or more)")
    ],
    out: Annotated[Path, typer.Option(help="Folder for the ensemble's model artifact")],
    data: DataOption = DEFAULT_DATA,
    quantize: QuantizeOption = True,
) -> None:
    """One model artifact serving the mean probabilities of trained models, scored on PublicTest."""
    from training.ensemble import build_ensemble

    meta = _build_scored(
        lambda train, val: build_ensemble(members, out, train, val, quantize=quantize), data
    )
    for member in meta.metrics["members"]:
        accuracy = member["public_test_accuracy"]
        scored = "not recorded" if accuracy is None else f"{accuracy:.4f}"
        typer.echo(f"member {member['version']}: PublicTest {scored}")
    _echo_scored(f"ensemble {meta.version}", meta, out)


def _echo_scored(name: str, meta: ModelMetadata, artifact: Path) -> None:
    """The PublicTest figures a new artifact's metadata records, and where it is."""
    result = meta.metrics["public_test"]
    typer.echo(
        f"{name} ({meta.precision}, tta={meta.tta}): PublicTest "
        f"{result['accuracy']:.4f}, macro recall {result['macro_recall']:.4f}"
    )
    typer.echo(f"model artifact: {artifact}")


def quantize(
    model: Annotated[Path, typer.Argument(help="A float32 model artifact folder")],
    out: Annotated[Path, typer.Option(help="Folder for the int8 model artifact")],
    data: Annotated[Path, typer.Option(help=DATA_HELP)] = Path("../shared/datasets/fer2013"),
) -> None:
    """An int8 copy of a model artifact (calibrated on Training images), scored on PublicTest."""
    from shared.vision.artifact import read_metadata
    from training.data import load
    from training.export import quantize_artifact

    try:
        before = read_metadata(model).metrics.get("public_test", {}).get("accuracy")
        artifact = quantize_artifact(model, out, load(data, "Training"), load(data, "PublicTest"))
    except ClassPulseError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    scored = "not recorded" if before is None else f"{before:.4f}"
    typer.echo(f"float32: PublicTest {scored}")
    meta = read_metadata(artifact)
    _echo_scored(meta.version, meta, artifact)


def import_weights(
    weights: Annotated[
        Path,
        typer.Argument(
            help="Weights of training.accelerator: NAME.npz, or the name its .part files share"
        ),
    ],
    out: Annotated[Path, typer.Option(help="Folder for the model artifact")],
    data: DataOption = DEFAULT_DATA,
    quantize: QuantizeOption = True,
) -> None:
    """A model artifact of weights trained on a GPU (training.accelerator), scored on PublicTest."""
    from training.from_accelerator import export_weights

    meta = _build_scored(
        lambda train, val: export_weights(weights, out, train, val, quantize=quantize), data
    )
    _echo_scored(meta.version, meta, out)


def register(app: typer.Typer) -> None:
    app.command()(train)
    app.command()(ensemble)
    app.command()(quantize)
    app.command()(evaluate)
    app.command()(calibrate)
    app.command("tune-serving")(tune_serving)
    app.command("import-weights")(import_weights)
