"""Train an expression model on FER2013 Training, selected on PublicTest.

Settings live in :class:`TrainConfig`. A run writes into its output folder:
``train.log``, ``history.csv``, ``backup/`` (the resumable checkpoint of the
last finished epoch), ``best.keras`` (best PublicTest accuracy so far),
``curves.png`` and, at the end, the model artifact in ``artifact/``. With
``checkpoint`` the run also keeps a committed checkpoint (training.checkpoint)
that continues it in a later session, on another machine.
"""

from __future__ import annotations

import json
import logging
import math
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from shared.errors import ConfigError, ModelArtifactError
from training import checkpoint
from training.data import DEFAULT_DATA_DIR, FERPLUS_NAME, Split, data_hash, load, load_ferplus_votes
from training.optimizers import make_optimizer

log = logging.getLogger("classpulse.train")


@dataclass
class TrainConfig:
    arch: str = "vgg_bn"
    data: Path = DEFAULT_DATA_DIR
    out: Path = Path("runs/default")
    epochs: int = 60
    batch_size: int = 64
    #: Peak learning rate; the default recipe warms up then decays on a cosine.
    learning_rate: float = 2e-3
    warmup_epochs: int = 2
    #: "cosine" (default recipe) or "constant" (the thesis: Adam at 1e-3).
    schedule: str = "cosine"
    #: "adam", or "sgd" (Nesterov momentum 0.9), which often generalises
    #: better on FER2013 (Khaireddin & Chen 2021) at a tenfold learning rate.
    optimizer: str = "adam"
    #: Weight of the FER+ annotator vote distribution mixed into the one-hot
    #: FER2013 target: a label-noise-aware smoothing (0 turns it off).
    ferplus_weight: float = 0.3
    label_smoothing: float = 0.0
    #: Model artifacts whose mean served probabilities (their test-time
    #: augmentation included) on each training image are mixed into its target
    #: with ``teacher_weight``: an ensemble distilled into one network, which
    #: serves at the cost of one.
    teachers: tuple[Path, ...] = ()
    teacher_weight: float = 0.5
    augment: bool = True
    #: Probability of random erasing (Zhong et al. 2020) per training image; 0 is off.
    random_erasing: float = 0.0
    #: Stop when PublicTest accuracy has not improved for this many epochs.
    patience: int = 12
    seed: int = 1337
    #: L2 penalty of the conv layers (5e-4 for a fresh run; lower it for a
    #: fine-tuning cycle of a model that underfits).
    weight_decay: float = 5e-4
    #: Dropout rate of the classifier head; None keeps the architecture's own
    #: (0.4). Lower it for a network that underfits.
    dropout: float | None = None
    #: bfloat16 compute (float32 weights). None: on only where the CPU has AMX
    #: (``native_bfloat16``); elsewhere it trains slower than float32.
    mixed_precision: bool | None = None
    tta: str = "flip"
    #: Serve an int8 ONNX model calibrated on Training images (model.keras stays float32).
    quantize: bool = True
    #: Use only the first N training / validation samples (smoke tests).
    limit: int = 0
    resume: bool = False
    #: Start from the weights of this checkpoint (``best.keras`` of an earlier
    #: run) with a fresh schedule: a second cosine cycle that continues a run
    #: whose first cycle was cut short by the time budget.
    init_from: Path | None = None
    #: Folder of the run's committed checkpoint (e.g. models/checkpoints/<run>),
    #: replaced after each epoch; with ``resume`` the run continues from it.
    checkpoint: Path | None = None
    #: Stop after the last epoch that fits in this many minutes (0: no limit); the
    #: run then continues with ``resume`` and ``checkpoint``.
    budget_minutes: float = 0.0
    verbose: int = 1


#: Settings a resumed run takes from the command line; the rest are the run's own.
PER_SESSION = frozenset({"data", "out", "checkpoint", "resume", "budget_minutes", "verbose"})


def resumed_config(cfg: TrainConfig, saved: dict[str, Any]) -> TrainConfig:
    """``cfg`` with the settings a checkpointed run started with (its schedule, recipe)."""
    names = {f.name for f in fields(TrainConfig)} - PER_SESSION
    values = {k: v for k, v in saved.items() if k in names}
    values["teachers"] = tuple(Path(t) for t in saved.get("teachers") or ())
    values["init_from"] = None  # the checkpoint's weights take its place
    return replace(cfg, **values)


def native_bfloat16(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """Whether this CPU has AMX bfloat16 tile units, where mixed bfloat16 trains faster.

    AVX-512 bfloat16 alone is not enough: on such a Xeon without AMX a
    ``vgg_bn`` step took 1.5x as long in mixed bfloat16 as in float32
    (``python -m bench.training_step``).
    """
    try:
        flags = cpuinfo.read_text()
    except OSError:
        return False
    return "amx_bf16" in flags.split()


def mix_targets(
    targets: npt.NDArray[np.float32], other: npt.NDArray[np.float32], weight: float
) -> npt.NDArray[np.float32]:
    """``targets`` with ``weight`` of ``other`` mixed in (distributions stay distributions)."""
    return ((1 - weight) * targets + weight * other).astype(np.float32)


def _targets(
    split: Split, votes: npt.NDArray[np.float32] | None, weight: float
) -> npt.NDArray[np.float32]:
    onehot = np.eye(7, dtype=np.float32)[split.labels]
    if votes is None or weight <= 0:
        return onehot
    totals = votes.sum(axis=1, keepdims=True)
    has_votes = totals[:, 0] > 0
    soft = onehot.copy()
    soft[has_votes] = mix_targets(onehot[has_votes], votes[has_votes] / totals[has_votes], weight)
    return soft


def teacher_probabilities(teachers: Sequence[Path], split: Split) -> npt.NDArray[np.float32]:
    """(N, 7) mean of the teachers' served probabilities for every image of ``split``."""
    from shared.vision.classify import ExpressionClassifier
    from training.evaluate import split_probabilities

    return np.mean(
        [split_probabilities(ExpressionClassifier(t), split) for t in teachers], axis=0
    ).astype(np.float32)


def _setup_logging(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(out / "train.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    root = logging.getLogger("classpulse")
    root.setLevel(logging.INFO)
    root.addHandler(handler)
    if not any(
        isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler)
        for h in root.handlers
    ):
        stream = logging.StreamHandler(sys.stderr)
        stream.setFormatter(logging.Formatter("%(message)s"))
        root.addHandler(stream)


def _committed_start(
    cfg: TrainConfig,
) -> tuple[TrainConfig, checkpoint.RunState | None, checkpoint.Weights, checkpoint.Weights]:
    """The run's settings and, when it continues a committed checkpoint, its state and weights."""
    folder = cfg.checkpoint
    if folder is None or not checkpoint.exists(folder):
        return cfg, None, [], []
    if not cfg.resume:
        raise ConfigError(
            f"{folder} holds a run's checkpoint; pass --resume to continue it "
            "or choose another --checkpoint"
        )
    state, last, best = checkpoint.load(folder)
    cfg = resumed_config(cfg, state.config)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    for name in checkpoint.RUN_FILES:  # the run's log and history go on where they stopped
        if not (out / name).exists() and (folder / name).is_file():
            (out / name).write_bytes((folder / name).read_bytes())
    return cfg, state, last, best


def train(cfg: TrainConfig) -> Path | None:
    """Run one training; returns the artifact folder, or None when the time budget
    stopped it first. Resumable with ``cfg.resume``."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import tensorflow as tf

    from training.augment import make_augmenter
    from training.epoch_callbacks import CommittedCheckpoint, TimeBudget
    from training.export import export_artifact
    from training.models import make_model
    from training.report import plot_curves

    started = time.monotonic()
    cfg, committed, last_weights, best_weights = _committed_start(cfg)
    out = Path(cfg.out)
    _setup_logging(out)
    backup_dir = out / "backup"
    if backup_dir.exists() and not cfg.resume:
        raise SystemExit(
            f"{backup_dir} holds an unfinished run; pass --resume to continue it "
            "or choose another --out"
        )
    log.info("config %s", json.dumps(asdict(cfg), default=str))
    if committed is not None:
        log.info(
            "continuing from %s after epoch %d (best PublicTest %.4f at epoch %d)",
            cfg.checkpoint,
            committed.epochs_done,
            committed.best_val_accuracy,
            committed.best_epoch,
        )
    keras.utils.set_random_seed(cfg.seed)
    bf16 = native_bfloat16() if cfg.mixed_precision is None else cfg.mixed_precision
    keras.mixed_precision.set_global_policy("mixed_bfloat16" if bf16 else "float32")
    log.info("compute: %s", keras.mixed_precision.global_policy().name)

    t0 = time.time()
    train_split = load(cfg.data, "Training")
    val_split = load(cfg.data, "PublicTest")
    if cfg.limit:
        train_split, val_split = train_split.subset(cfg.limit), val_split.subset(cfg.limit)
    votes = None
    data_dir = Path(cfg.data) if Path(cfg.data).is_dir() else Path(cfg.data).parent
    ferplus = data_dir / FERPLUS_NAME
    if cfg.ferplus_weight > 0 and ferplus.is_file() and (train_split.rows >= 0).all():
        votes = load_ferplus_votes(ferplus, train_split.rows)
    log.info(
        "data: %d training, %d PublicTest images loaded in %.1fs (FER+ votes: %s)",
        len(train_split),
        len(val_split),
        time.time() - t0,
        "yes" if votes is not None else "no",
    )
    y_train = _targets(train_split, votes, cfg.ferplus_weight)
    if cfg.teachers:
        t1 = time.time()
        teacher = teacher_probabilities(cfg.teachers, train_split)
        y_train = mix_targets(y_train, teacher, cfg.teacher_weight)
        log.info(
            "teachers %s: training targets %.0f%% theirs (their training accuracy %.4f, %.1fs)",
            ", ".join(map(str, cfg.teachers)),
            100 * cfg.teacher_weight,
            float((teacher.argmax(axis=1) == train_split.labels).mean()),
            time.time() - t1,
        )
    y_val = np.eye(7, dtype=np.float32)[val_split.labels]
    x_train = train_split.images[..., np.newaxis].astype(np.float32)
    x_val = val_split.images[..., np.newaxis].astype(np.float32)

    augmenter = make_augmenter(cfg.seed, cfg.random_erasing)
    train_ds = (
        tf.data.Dataset.from_tensor_slices((x_train, y_train))
        .shuffle(len(x_train), seed=cfg.seed, reshuffle_each_iteration=True)
        .batch(cfg.batch_size)
    )
    if cfg.augment:
        train_ds = train_ds.map(
            lambda x, y: (tf.clip_by_value(augmenter(x, training=True), 0.0, 255.0), y),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
    train_ds = train_ds.prefetch(tf.data.AUTOTUNE)
    val_ds = tf.data.Dataset.from_tensor_slices((x_val, y_val)).batch(256)

    steps_per_epoch = math.ceil(len(x_train) / cfg.batch_size)
    if cfg.schedule == "cosine":
        lr: float | keras.optimizers.schedules.LearningRateSchedule = (
            keras.optimizers.schedules.CosineDecay(
                initial_learning_rate=cfg.learning_rate / 10,
                decay_steps=max(1, steps_per_epoch * (cfg.epochs - cfg.warmup_epochs)),
                warmup_target=cfg.learning_rate,
                warmup_steps=steps_per_epoch * cfg.warmup_epochs,
                alpha=0.01,
            )
        )
    else:
        lr = cfg.learning_rate
    model = make_model(cfg.arch, weight_decay=cfg.weight_decay, dropout=cfg.dropout)
    if cfg.init_from is not None:
        if cfg.init_from.name.endswith(".npz"):
            # Weights trained on a GPU by training.accelerator (a committed checkpoint).
            from training.from_accelerator import keras_model

            start = keras_model(cfg.init_from)
        else:
            start = keras.models.load_model(cfg.init_from, compile=False)
        if [w.shape for w in start.get_weights()] != [w.shape for w in model.get_weights()]:
            raise ModelArtifactError(
                f"{cfg.init_from}: its weights ({start.name}, {start.count_params():,} "
                f"parameters) do not fit architecture {cfg.arch!r}"
            )
        model.set_weights(start.get_weights())
        log.info("weights from %s", cfg.init_from)
    model.compile(
        optimizer=make_optimizer(cfg.optimizer, lr),
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=cfg.label_smoothing),
        metrics=["accuracy"],
    )
    log.info("model %s: %d parameters", cfg.arch, model.count_params())
    if committed is not None:
        model.set_weights(last_weights)
        # The step count places the learning-rate schedule where the run left it.
        model.optimizer.build(model.trainable_variables)
        model.optimizer.iterations.assign(committed.optimizer_steps)

    callbacks: list[keras.callbacks.Callback] = [
        keras.callbacks.ModelCheckpoint(
            str(out / "best.keras"), monitor="val_accuracy", mode="max", save_best_only=True
        ),
        keras.callbacks.CSVLogger(
            str(out / "history.csv"), append=cfg.resume or committed is not None
        ),
        keras.callbacks.EarlyStopping(
            monitor="val_accuracy", mode="max", patience=cfg.patience, restore_best_weights=False
        ),
        keras.callbacks.LambdaCallback(
            on_epoch_end=lambda epoch, logs: log.info(
                "epoch %d/%d %s",
                epoch + 1,
                cfg.epochs,
                " ".join(f"{k}={v:.4f}" for k, v in sorted((logs or {}).items())),
            )
        ),
    ]
    saver = None
    if cfg.checkpoint is not None:
        # The committed checkpoint is the run's backup: one restore path on every machine.
        state = committed or checkpoint.RunState(config=asdict(cfg))
        precision = model.dtype_policy.name
        saver = CommittedCheckpoint(cfg.checkpoint, out, state, best_weights or None, precision)
        callbacks.append(saver)
    else:
        callbacks.insert(
            0, keras.callbacks.BackupAndRestore(str(backup_dir), delete_checkpoint=False)
        )
    budget = None
    if cfg.budget_minutes > 0:
        budget = TimeBudget(started + 60 * cfg.budget_minutes)
        callbacks.append(budget)
    model.fit(
        train_ds,
        validation_data=val_ds,
        epochs=cfg.epochs,
        initial_epoch=committed.epochs_done if committed is not None else 0,
        callbacks=callbacks,
        verbose=cfg.verbose,
    )
    if (
        budget is not None
        and budget.stopped_after is not None
        and budget.stopped_after < cfg.epochs
    ):
        log.info(
            "time budget of %.4g min spent after epoch %d of %d; --resume continues the run",
            cfg.budget_minutes,
            budget.stopped_after,
            cfg.epochs,
        )
        return None
    if saver is not None and saver.best is not None:
        # The best epoch may have run in an earlier session: its weights are the checkpoint's.
        model.set_weights(saver.best)
        model.save(out / "best.keras")
    plot_curves(out / "history.csv", out / "curves.png", title=cfg.arch)
    epochs_run = sum(1 for _ in (out / "history.csv").open()) - 1
    artifact = export_artifact(
        best_keras=out / "best.keras",
        arch=cfg.arch,
        out=out / "artifact",
        val=val_split,
        data_sha256=data_hash(train_split, val_split),
        epochs=epochs_run,
        tta=cfg.tta,
        calibration=train_split if cfg.quantize else None,
        extra={"config": {k: str(v) for k, v in asdict(cfg).items()}},
    )
    log.info("artifact written to %s in %.1f min", artifact, (time.time() - t0) / 60)
    return artifact
