"""Train large expression networks on a GPU with JAX, and distil them into a small one.

FER2013 networks that beat today's default need hundreds of epochs, which two
CPU cores cannot give in a session; a GPU gives them in minutes. This module
runs where only NumPy and JAX are installed (no TensorFlow, no project
imports at module level), so it can travel to such a machine on its own:

* ``pack`` (here): FER2013 Training and its FER+ votes into a small lossless
  bundle (MED-predicted pixel residuals, xz), about 45 MB.
* ``train`` (there): one network, SGD with Nesterov momentum and weight decay,
  a cosine schedule over a *time* budget (so that a run ends on time whatever
  the GPU's speed), flips, shifts, rotations, zoom, brightness/contrast and
  random erasing on the GPU; with ``--teacher`` it distils the mean of
  trained networks into this one. Writes float16 weights in Keras's order.
* ``run`` (there): the teachers side by side, then the students.

``training.from_accelerator`` loads the weights into the Keras builders of
``training.models`` here, where they are exported and scored on PublicTest.
The layer order below mirrors those builders layer for layer.
"""

from __future__ import annotations

import argparse
import json
import lzma
import math
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

SIZE = 48
CLASSES = 7
PIXELS_FILE = "train-pixels.med.xz"
META_FILE = "train-meta.npz"
#: Keras's BatchNormalization defaults, so the weights load unchanged.
BN_EPSILON = 1e-3
BN_MOMENTUM = 0.99
#: Largest file the device tool brings back is 16 MiB: bigger weights travel in parts.
PART_BYTES = 15 * 2**20
#: A student's process start, data load and compilation (teachers' graphs included), measured
#: generously: what ``run`` keeps back from the deadline before the students' training budget.
STUDENT_OVERHEAD_SECONDS = 75

#: Architectures by name: (kind, width), the names of ``training.models``.
ARCHS: dict[str, tuple[str, int]] = {
    "vgg_bn": ("vgg", 32),
    "vgg_bn_40": ("vgg", 40),
    "vgg_bn_wide": ("vgg", 48),
    "vgg_bn_64": ("vgg", 64),
    "resnet18": ("resnet", 64),
}


# --------------------------------------------------------------------------- data


def _med_prediction(padded: np.ndarray) -> np.ndarray:
    """LOCO-I median edge predictor of each pixel from its left, upper and upper-left ones."""
    left, up, up_left = padded[..., 1:, :-1], padded[..., :-1, 1:], padded[..., :-1, :-1]
    low, high = np.minimum(left, up), np.maximum(left, up)
    return np.where(up_left >= high, low, np.where(up_left <= low, high, left + up - up_left))


def encode_pixels(images: np.ndarray) -> bytes:
    """(N, 48, 48) uint8 → xz of MED residuals (about 12 % smaller than xz of the pixels)."""
    padded = np.zeros((len(images), SIZE + 1, SIZE + 1), np.int16)
    padded[:, 1:, 1:] = images
    residual = (images.astype(np.int16) - _med_prediction(padded)) % 256
    return lzma.compress(residual.astype(np.uint8).tobytes(), preset=6)


def decode_pixels(blob: bytes) -> np.ndarray:
    """Inverse of :func:`encode_pixels`: pixels are rebuilt row by row, all images at once."""
    residual = np.frombuffer(lzma.decompress(blob), np.uint8).reshape(-1, SIZE, SIZE)
    padded = np.zeros((len(residual), SIZE + 1, SIZE + 1), np.int16)
    for y in range(SIZE):
        for x in range(SIZE):
            window = padded[:, y : y + 2, x : x + 2]
            prediction = _med_prediction(window)[:, 0, 0]
            padded[:, y + 1, x + 1] = (prediction + residual[:, y, x]) % 256
    return padded[:, 1:, 1:].astype(np.uint8)


def pack(data: Path, out: Path) -> None:
    """Write FER2013 Training (pixels, labels, FER+ votes) as the bundle ``train`` reads."""
    from training.data import FERPLUS_NAME, load, load_ferplus_votes

    split = load(data, "Training")
    votes = load_ferplus_votes(data / FERPLUS_NAME, split.rows)
    out.mkdir(parents=True, exist_ok=True)
    (out / PIXELS_FILE).write_bytes(encode_pixels(split.images))
    np.savez_compressed(
        out / META_FILE, labels=split.labels.astype(np.uint8), votes=votes.astype(np.uint8)
    )
    print(f"packed {len(split)} images into {out}")


def load_bundle(folder: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pixels, labels and FER+ votes of a bundle, or of its decoded copy (``decoded.npy``)."""
    decoded = folder / "decoded.npy"
    images = (
        np.load(decoded)
        if decoded.is_file()
        else decode_pixels((folder / PIXELS_FILE).read_bytes())
    )
    meta = np.load(folder / META_FILE)
    return images, meta["labels"].astype(np.int32), meta["votes"].astype(np.float32)


def base_targets(labels: np.ndarray, votes: np.ndarray, ferplus_weight: float) -> np.ndarray:
    """One-hot FER2013 labels mixed with the FER+ vote distribution where there is one."""
    onehot = np.eye(CLASSES, dtype=np.float32)[labels]
    totals = votes.sum(axis=1, keepdims=True)
    has_votes = totals[:, 0] > 0
    mixed = onehot.copy()
    mixed[has_votes] = (1 - ferplus_weight) * onehot[has_votes] + ferplus_weight * (
        votes[has_votes] / totals[has_votes]
    )
    return mixed


# --------------------------------------------------------------------------- networks
# Parameters are a list of layers in Keras's weight order; each layer is a dict.


def _glorot(rng: np.random.Generator, shape: tuple[int, ...], fan_in: int, fan_out: int) -> Any:
    """Keras's default kernel initializer (Glorot uniform), drawn on the host: no GPU compiles."""
    limit = math.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, shape).astype(np.float32)


def layer_plan(arch: str) -> list[tuple[str, int, int, int]]:
    """(kind, kernel size, in channels, out channels) per weighted layer, in Keras's order."""
    kind, width = ARCHS[arch]
    plan: list[tuple[str, int, int, int]] = []
    if kind == "vgg":
        cin = 1
        for multiplier in (1, 2, 4, 8):
            for _ in range(2):
                plan += [("conv", 3, cin, width * multiplier), ("bn", 0, 0, width * multiplier)]
                cin = width * multiplier
        plan += [("dense", 0, cin, 256), ("dense", 0, 256, CLASSES)]
        return plan
    plan += [("conv", 3, 1, width), ("bn", 0, 0, width)]
    cin = width
    for stage, multiplier in enumerate((1, 2, 4, 8)):
        for block in range(2):
            cout = width * multiplier
            plan += [("conv", 3, cin, cout), ("bn", 0, 0, cout)]
            plan += [("conv", 3, cout, cout), ("bn", 0, 0, cout)]
            if stage > 0 and block == 0:
                plan += [("conv", 1, cin, cout), ("bn", 0, 0, cout)]
            cin = cout
    plan += [("dense", 0, cin, CLASSES)]
    return plan


def init_params(arch: str, seed: int) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    layers: list[dict[str, Any]] = []
    for kind, k, cin, cout in layer_plan(arch):
        if kind == "conv":
            layers.append({"kernel": _glorot(rng, (k, k, cin, cout), k * k * cin, k * k * cout)})
        elif kind == "bn":
            ones, zeros = np.ones(cout, np.float32), np.zeros(cout, np.float32)
            layers.append({"gamma": ones, "beta": zeros, "mean": zeros.copy(), "var": ones.copy()})
        else:
            layers.append(
                {"kernel": _glorot(rng, (cin, cout), cin, cout), "bias": np.zeros(cout, np.float32)}
            )
    return layers


def forward(
    arch: str, params: list[dict[str, Any]], pixels: Any, train: bool, key: Any, dropout: float
) -> tuple[Any, list[dict[str, Any]]]:
    """Logits for (N, 48, 48, 1) pixels in 0..255, and the layers with updated BN statistics."""
    import jax
    import jax.numpy as jnp
    from jax import lax

    kind, _ = ARCHS[arch]
    compute = jnp.dtype(os.environ.get("ACCELERATOR_COMPUTE", "bfloat16"))
    updated = [dict(layer) for layer in params]
    position = iter(range(len(params)))

    def conv(x: Any, stride: int = 1) -> Any:
        i = next(position)
        # bfloat16 products, float32 accumulation: the GPU's fast path
        # (ACCELERATOR_COMPUTE=float32 for a quick check on a CPU, where bfloat16 is emulated).
        return lax.conv_general_dilated(
            x.astype(compute),
            params[i]["kernel"].astype(compute),
            (stride, stride),
            "SAME",
            dimension_numbers=("NHWC", "HWIO", "NHWC"),
            preferred_element_type=jnp.float32,
        )

    def bn(x: Any) -> Any:
        i = next(position)
        layer = params[i]
        if train:
            mean = x.mean(axis=(0, 1, 2))
            var = x.var(axis=(0, 1, 2))
            updated[i]["mean"] = BN_MOMENTUM * layer["mean"] + (1 - BN_MOMENTUM) * mean
            updated[i]["var"] = BN_MOMENTUM * layer["var"] + (1 - BN_MOMENTUM) * var
        else:
            mean, var = layer["mean"], layer["var"]
        return (x - mean) * lax.rsqrt(var + BN_EPSILON) * layer["gamma"] + layer["beta"]

    def dense(x: Any) -> Any:
        i = next(position)
        return x @ params[i]["kernel"] + params[i]["bias"]

    def drop(x: Any, rng: Any) -> Any:
        if not train or dropout == 0:
            return x
        keep = jax.random.bernoulli(rng, 1 - dropout, x.shape)
        return jnp.where(keep, x / (1 - dropout), 0.0)

    def pool(x: Any) -> Any:
        return lax.reduce_window(x, -jnp.inf, lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")

    x = pixels.astype(jnp.float32) / 255.0
    k1, k2 = jax.random.split(key)
    if kind == "vgg":
        for _ in range(4):
            x = jax.nn.relu(bn(conv(x)))
            x = jax.nn.relu(bn(conv(x)))
            x = pool(x)
        x = drop(x.mean(axis=(1, 2)), k1)
        x = drop(jax.nn.relu(dense(x)), k2)
        return dense(x), updated
    x = jax.nn.relu(bn(conv(x)))
    for stage in range(4):
        for block in range(2):
            stride = 2 if stage > 0 and block == 0 else 1
            y = jax.nn.relu(bn(conv(x, stride)))
            y = bn(conv(y))
            shortcut = bn(conv(x, stride)) if stride != 1 else x
            x = jax.nn.relu(y + shortcut)
    x = drop(x.mean(axis=(1, 2)), k1)
    return dense(x), updated


# --------------------------------------------------------------------------- augmentation


def augment(key: Any, images: Any) -> Any:
    """Random mirror, rotation (±15°), zoom (0.9–1.2), shift (±10 %), brightness/contrast
    (±20 %) and erasing (p 0.5) of (N, 48, 48) uint8 images; returns (N, 48, 48, 1) float32."""
    import jax
    import jax.numpy as jnp
    from jax.scipy.ndimage import map_coordinates

    n = images.shape[0]
    keys = jax.random.split(key, 10)
    u = lambda k, lo, hi: jax.random.uniform(k, (n,), minval=lo, maxval=hi)  # noqa: E731
    angle = u(keys[0], -math.pi / 12, math.pi / 12)
    zoom = u(keys[1], 0.9, 1.2)
    aspect = u(keys[2], 0.9, 1.1)
    shift_y, shift_x = u(keys[3], -4.8, 4.8), u(keys[4], -4.8, 4.8)
    flip = jax.random.bernoulli(keys[5], 0.5, (n,))
    brightness = u(keys[6], -0.2, 0.2) * 255
    contrast = u(keys[7], 0.8, 1.2)

    grid = jnp.arange(SIZE, dtype=jnp.float32) - (SIZE - 1) / 2
    yy, xx = jnp.meshgrid(grid, grid, indexing="ij")

    def warp(img: Any, a: Any, z: Any, r: Any, dy: Any, dx: Any, f: Any) -> Any:
        xs = jnp.where(f, -xx, xx)
        zy, zx = z * jnp.sqrt(r), z / jnp.sqrt(r)
        src_y = (jnp.cos(a) * yy - jnp.sin(a) * xs) / zy - dy + (SIZE - 1) / 2
        src_x = (jnp.sin(a) * yy + jnp.cos(a) * xs) / zx - dx + (SIZE - 1) / 2
        return map_coordinates(img, [src_y, src_x], order=1, mode="nearest")

    out = jax.vmap(warp)(images.astype(jnp.float32), angle, zoom, aspect, shift_y, shift_x, flip)
    mean = out.mean(axis=(1, 2), keepdims=True)
    out = (out - mean) * contrast[:, None, None] + mean + brightness[:, None, None]

    # Random erasing (Zhong et al. 2020): a box of 2–25 % of the area, aspect 0.3–3.3, noise.
    erase = jax.random.bernoulli(keys[8], 0.5, (n,))
    ek = jax.random.split(keys[9], 5)
    area = jax.random.uniform(ek[0], (n,), minval=0.02, maxval=0.25) * SIZE * SIZE
    ratio = jnp.exp(jax.random.uniform(ek[1], (n,), minval=math.log(0.3), maxval=math.log(3.3)))
    h = jnp.clip(jnp.sqrt(area * ratio), 1, SIZE)
    w = jnp.clip(jnp.sqrt(area / ratio), 1, SIZE)
    top = jax.random.uniform(ek[2], (n,)) * (SIZE - h)
    left = jax.random.uniform(ek[3], (n,)) * (SIZE - w)
    rows = jnp.arange(SIZE)[None, :, None]
    cols = jnp.arange(SIZE)[None, None, :]
    box = (
        (rows >= top[:, None, None])
        & (rows < (top + h)[:, None, None])
        & (cols >= left[:, None, None])
        & (cols < (left + w)[:, None, None])
        & erase[:, None, None]
    )
    noise = jax.random.uniform(ek[4], out.shape, minval=0, maxval=255)
    out = jnp.where(box, noise, out)
    return jnp.clip(out, 0, 255)[..., None]


# --------------------------------------------------------------------------- training


def _decayed(layer_index: int, name: str, plan: list[tuple[str, int, int, int]]) -> bool:
    return name == "kernel" and plan[layer_index][0] in ("conv", "dense")


def train(args: argparse.Namespace) -> None:
    import jax
    import jax.numpy as jnp

    started = time.time()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    log_path = out / f"{args.name}.log"

    def log(message: str) -> None:
        line = f"[{time.time() - started:7.1f}s] {args.name}: {message}"
        print(line, flush=True)
        with log_path.open("a") as handle:
            handle.write(line + "\n")

    log(f"devices {jax.devices()} jax {jax.__version__} arch {args.arch}")
    images, labels, votes = load_bundle(Path(args.data))
    if args.limit:
        images, labels, votes = images[: args.limit], labels[: args.limit], votes[: args.limit]
    targets = base_targets(labels, votes, args.ferplus_weight)
    if args.soft_targets:
        # Probabilities a teacher gave each training image (computed elsewhere, in
        # Training order): distillation without the teacher's weights on this machine.
        soft = np.load(args.soft_targets).astype(np.float32)[: len(targets)]
        targets = (1 - args.teacher_weight) * targets + args.teacher_weight * soft
        log(f"targets {args.teacher_weight:.0%} from {args.soft_targets}")
    log(f"{len(images)} images decoded")

    teachers = [load_weights(Path(p)) for p in args.teacher]
    teacher_archs = [arch for arch, _ in teachers]
    teacher_params = [jax.tree_util.tree_map(jnp.asarray, params) for _, params in teachers]

    plan = layer_plan(args.arch)
    key = jax.random.key(args.seed)
    if args.init_from:
        # Continue from a checkpoint (a new cosine cycle): runs span sessions.
        init_arch, host_params = load_weights(Path(args.init_from))
        if init_arch != args.arch:
            sys.exit(f"{args.init_from} holds {init_arch} weights, not {args.arch}")
        log(f"weights from {args.init_from}")
    else:
        host_params = init_params(args.arch, args.seed)
    params = jax.device_put(host_params)
    velocity = jax.device_put(jax.tree_util.tree_map(np.zeros_like, host_params))
    n_params = sum(int(np.prod(a.shape)) for a in jax.tree_util.tree_leaves(params)) - sum(
        2 * int(layer["mean"].shape[0]) for layer in params if "mean" in layer
    )
    log(f"{n_params} trainable+BN-affine parameters; teachers {teacher_archs}")

    device_images = jnp.asarray(images)
    device_targets = jnp.asarray(targets)
    steps_per_epoch = len(images) // args.batch
    temperature = args.temperature

    def loss_fn(p: Any, x: Any, y: Any, rng: Any) -> tuple[Any, Any]:
        logits, updated = forward(args.arch, p, x, True, rng, args.dropout)
        log_probs = jax.nn.log_softmax(logits)
        loss = -(y * log_probs).sum(axis=1).mean()
        if teacher_params:
            soft = jnp.mean(
                jnp.stack(
                    [
                        jax.nn.softmax(forward(a, tp, x, False, rng, 0.0)[0] / temperature)
                        for a, tp in zip(teacher_archs, teacher_params, strict=True)
                    ]
                ),
                axis=0,
            )
            soft = jax.lax.stop_gradient(soft)
            kd = -(soft * jax.nn.log_softmax(logits / temperature)).sum(axis=1).mean()
            loss = (1 - args.teacher_weight) * loss + args.teacher_weight * temperature**2 * kd
        accuracy = (logits.argmax(axis=1) == y.argmax(axis=1)).mean()
        return loss, (updated, accuracy)

    grad_fn = jax.value_and_grad(loss_fn, has_aux=True)

    def step(carry: Any, batch_index: Any) -> tuple[Any, Any]:
        p, v, rng, lr = carry
        rng, aug_key, drop_key = jax.random.split(rng, 3)
        x = augment(aug_key, device_images[batch_index])
        y = device_targets[batch_index]
        (loss, (updated, accuracy)), grads = grad_fn(p, x, y, drop_key)
        new_p, new_v = [], []
        for i, (layer, grad_layer, vel_layer, upd_layer) in enumerate(
            zip(p, grads, v, updated, strict=True)
        ):
            np_layer, nv_layer = {}, {}
            for name, value in layer.items():
                if name in ("mean", "var"):
                    np_layer[name], nv_layer[name] = upd_layer[name], vel_layer[name]
                    continue
                g = grad_layer[name]
                if _decayed(i, name, plan):
                    g = g + args.weight_decay * value
                vel = args.momentum * vel_layer[name] + g
                # Nesterov momentum, as in PyTorch's SGD.
                np_layer[name] = value - lr * (g + args.momentum * vel)
                nv_layer[name] = vel
            new_p.append(np_layer)
            new_v.append(nv_layer)
        return (new_p, new_v, rng, lr), (loss, accuracy)

    @jax.jit  # type: ignore[untyped-decorator]
    def run_chunk(p: Any, v: Any, rng: Any, lr: Any, indices: Any) -> Any:
        (p, v, rng, _), (losses, accuracies) = jax.lax.scan(step, (p, v, rng, lr), indices)
        return p, v, rng, losses.mean(), accuracies.mean()

    chunk = min(args.chunk, steps_per_epoch)
    budget = args.seconds
    warmup = 0.03
    order_rng = np.random.default_rng(args.seed)
    train_started = None
    epoch, seen, progress, lr = 0, 0, 0.0, 0.0
    losses: list[float] = []
    accuracies: list[float] = []
    last_save = time.time()
    history: list[dict[str, float]] = []
    while progress < 1.0:
        order = order_rng.permutation(len(images))[: steps_per_epoch * args.batch]
        batches = order.reshape(steps_per_epoch, args.batch)
        for start in range(0, steps_per_epoch - chunk + 1, chunk):
            if train_started is not None:
                progress = (time.time() - train_started) / budget
            if progress >= 1.0:
                break
            lr = args.lr * (
                progress / warmup
                if progress < warmup
                else 0.5 * (1 + math.cos(math.pi * (progress - warmup) / (1 - warmup)))
            )
            lr = max(lr, args.lr * 1e-3)
            params, velocity, key, loss, accuracy = run_chunk(
                params, velocity, key, jnp.float32(lr), jnp.asarray(batches[start : start + chunk])
            )
            losses.append(float(loss))
            accuracies.append(float(accuracy))
            if train_started is None:
                # The first chunk includes compilation: the budget starts after it.
                train_started = time.time()
                log("compiled; training starts")
            seen += chunk * args.batch
        if not losses:
            break
        epoch += 1
        history.append(
            {
                "epoch": epoch,
                "progress": round(progress, 4),
                "loss": float(np.mean(losses)),
                "accuracy": float(np.mean(accuracies)),
            }
        )
        if epoch % 5 == 0 or progress >= 1.0:
            log(
                f"epoch {epoch} progress {progress:.3f} lr {lr:.5f} "
                f"loss {np.mean(losses):.4f} train-acc {np.mean(accuracies):.4f}"
            )
        losses.clear()
        accuracies.clear()
        if time.time() - last_save > args.save_every:
            save_weights(out / f"{args.name}.npz", args.arch, params)
            last_save = time.time()
    save_weights(out / f"{args.name}.npz", args.arch, params)
    (out / f"{args.name}.history.json").write_text(json.dumps(history))
    log(f"done: {epoch} epochs, {seen} images seen, {time.time() - started:.0f}s in all")


# --------------------------------------------------------------------------- weights


def save_weights(path: Path, arch: str, params: list[dict[str, Any]]) -> None:
    """Weights in Keras's order as float16 (BN statistics float32), split into parts if big."""
    arrays: dict[str, np.ndarray] = {"arch": np.array(arch)}
    for i, layer in enumerate(params):
        for name, value in layer.items():
            host = np.asarray(value, dtype=np.float32)
            arrays[f"{i:03d}.{name}"] = host if name in ("mean", "var") else host.astype(np.float16)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, **arrays)  # type: ignore[arg-type]
    blob = tmp.read_bytes()
    tmp.unlink()
    for old in path.parent.glob(path.name + ".part*"):
        old.unlink()
    if len(blob) <= PART_BYTES:
        path.write_bytes(blob)
        return
    path.unlink(missing_ok=True)
    for part, start in enumerate(range(0, len(blob), PART_BYTES)):
        Path(f"{path}.part{part}").write_bytes(blob[start : start + PART_BYTES])


def read_weight_file(path: Path) -> dict[str, np.ndarray]:
    """The arrays of a weights file written by :func:`save_weights` (whole or in parts)."""
    import io

    if path.is_file():
        blob = path.read_bytes()
    else:
        parts = sorted(
            path.parent.glob(path.name + ".part*"), key=lambda p: int(p.name.rsplit("part", 1)[1])
        )
        if not parts:
            raise FileNotFoundError(path)
        blob = b"".join(p.read_bytes() for p in parts)
    with np.load(io.BytesIO(blob)) as archive:
        return {name: archive[name] for name in archive.files}


def load_weights(path: Path) -> tuple[str, list[dict[str, np.ndarray]]]:
    arrays = read_weight_file(path)
    arch = str(arrays.pop("arch"))
    layers: dict[int, dict[str, np.ndarray]] = {}
    for key, value in arrays.items():
        index, name = key.split(".")
        layers.setdefault(int(index), {})[name] = value.astype(np.float32)
    return arch, [layers[i] for i in sorted(layers)]


# --------------------------------------------------------------------------- orchestration


def run(args: argparse.Namespace) -> None:
    """Teachers side by side on one GPU, then students distilled from their mean.

    Everything is written to ``--work``; finished weights are copied to
    ``--out`` after each phase (so a run cut short still returns its
    teachers) and the logs and histories are tarred there at the end, which
    keeps what comes back to a handful of files.
    """
    import shutil
    import tarfile

    started = time.time()
    out, work = Path(args.out), Path(args.work)
    out.mkdir(parents=True, exist_ok=True)
    work.mkdir(parents=True, exist_ok=True)
    data = Path(args.data)
    # Decode once for every process of the run.
    shutil.copy(data / META_FILE, work / META_FILE)
    np.save(work / "decoded.npy", decode_pixels((data / PIXELS_FILE).read_bytes()))
    env = dict(os.environ, XLA_PYTHON_CLIENT_PREALLOCATE="false", PYTHONUNBUFFERED="1")

    def phase(models: list[tuple[str, list[str]]], seconds: float, first_seed: int) -> list[str]:
        """Train ``(name:arch, extra flags)`` side by side; returns the names that finished."""
        procs = []
        for i, (spec, extra) in enumerate(models):
            name, arch = spec.split(":")
            command = [sys.executable, __file__, "train", "--name", name, "--arch", arch]
            command += ["--data", str(work), "--out", str(work), "--seconds", str(seconds)]
            command += ["--seed", str(first_seed + i), "--limit", str(args.limit), *extra]
            procs.append((name, subprocess.Popen(command, env=env)))
        finished = [name for name, proc in procs if proc.wait() == 0]
        print(f"finished: {finished} of {[name for name, _ in procs]}", flush=True)
        for name in finished:
            for path in work.glob(f"{name}.npz*"):
                shutil.copy(path, out / path.name)
        return finished

    teacher_flags = ["--lr", str(args.teacher_lr)]
    if args.soft_targets:
        # Students learn from a teacher's stored probabilities: all train at once.
        soft = ["--soft-targets", args.soft_targets]
        phase(
            [(t, teacher_flags) for t in args.teachers] + [(s, soft) for s in args.students],
            args.teach_seconds,
            100,
        )
    else:
        teachers = phase([(t, teacher_flags) for t in args.teachers], args.teach_seconds, 100)
        # Students get what is left before the deadline, less their start and compilation.
        left = args.deadline - (time.time() - started) - STUDENT_OVERHEAD_SECONDS
        seconds = min(args.student_seconds, left)
        print(f"students train for {seconds:.0f}s", flush=True)
        if teachers and seconds > 10:
            flags = [f for name in teachers for f in ("--teacher", str(work / f"{name}.npz"))]
            phase([(s, flags) for s in args.students], seconds, 200)
    with tarfile.open(out / "logs.tar", "w") as tar:
        for path in sorted(work.glob("*.log")) + sorted(work.glob("*.history.json")):
            tar.add(path, arcname=path.name)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("pack", help="bundle FER2013 Training for the GPU (runs here)")
    p.add_argument("--data", default="../shared/datasets/fer2013")
    p.add_argument("--out", default="runs/accelerator-data")

    t = sub.add_parser("train", help="train one network on the GPU")
    t.add_argument("--name", required=True)
    t.add_argument("--arch", choices=sorted(ARCHS), required=True)
    t.add_argument("--data", default="runs/accelerator-data")
    t.add_argument("--out", required=True)
    t.add_argument("--seconds", type=float, default=240, help="training time budget")
    t.add_argument("--batch", type=int, default=int(os.environ.get("ACCELERATOR_BATCH", "128")))
    t.add_argument("--lr", type=float, default=0.02)
    t.add_argument("--momentum", type=float, default=0.9)
    t.add_argument("--weight-decay", type=float, default=5e-4)
    t.add_argument("--dropout", type=float, default=0.4)
    t.add_argument("--ferplus-weight", type=float, default=0.3)
    t.add_argument("--teacher", action="append", default=[])
    t.add_argument("--init-from", help="weights file to continue from (a new cosine cycle)")
    t.add_argument("--soft-targets", help="(N, 7) .npy of a teacher's Training probabilities")
    t.add_argument("--teacher-weight", type=float, default=0.7)
    t.add_argument("--temperature", type=float, default=2.0)
    t.add_argument("--chunk", type=int, default=16, help="steps per compiled call")
    t.add_argument("--seed", type=int, default=1)
    t.add_argument("--limit", type=int, default=0)
    t.add_argument("--save-every", type=float, default=60)

    r = sub.add_parser("run", help="teachers side by side, then distilled students")
    r.add_argument("--data", default="runs/accelerator-data")
    r.add_argument("--out", required=True)
    r.add_argument("--work", default="/tmp/accelerator-run")
    r.add_argument("--teachers", nargs="+", default=["resnet18:resnet18", "vgg64:vgg_bn_64"])
    r.add_argument("--students", nargs="+", default=["student32:vgg_bn", "student40:vgg_bn_40"])
    r.add_argument("--teach-seconds", type=float, default=240)
    r.add_argument("--student-seconds", type=float, default=150)
    r.add_argument("--teacher-lr", type=float, default=0.02)
    r.add_argument(
        "--soft-targets", help="students learn from these stored probabilities, beside the teachers"
    )
    r.add_argument("--limit", type=int, default=0)
    r.add_argument("--deadline", type=float, default=560, help="seconds the whole run may take")
    args = parser.parse_args(argv)
    if args.command == "pack":
        pack(Path(args.data), Path(args.out))
    elif args.command == "train":
        train(args)
    else:
        run(args)


if __name__ == "__main__":
    main()
