"""The training groups: ``fit`` throughput of the train stage's dataset against the datasets a
Keras user builds by hand (``training``), and JAX against TensorFlow, in one process and in two
with ``data_parallel`` (``jax``). The workers run in their own process and may import
TensorFlow; the parent's functions (``bench_*``) do not."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import synthetic
from harness import (
    BATCH_SIZE,
    FIT_EPOCHS,
    INPUT_SHAPE,
    SEED,
    Row,
    context,
    count_images,
    env,
    log,
    params_for,
    run,
    worker,
    write_params,
)

# --- workers (run in their own process; they may import TensorFlow) -------------------------


def worker_fit(spec: dict) -> dict:
    """Images/s through a multi-epoch ``fit`` for every contender, in one process.

    Each round runs one ``fit(epochs=FIT_EPOCHS)`` per contender in turn (so they share the
    machine's load), fed the way its user would feed it: kerapipe as the train stage does
    (``TRAINING.STEPS_PER_EXECUTION``, 32 batches per call), the baselines as plain
    ``fit(dataset)``. Only the
    epochs after the first are timed, from Keras' own epoch callbacks: the first epoch (start
    of the iterator, buffers filling) and the end of ``fit`` (iterator teardown, which waits
    for tf.data's autotune thread to wake, a wait that doubles up to seconds) are costs paid
    once per training, and timing them would quantise every rate to that thread's sleeps.
    """
    from dataclasses import replace

    import keras

    from kerapipe.backend import steps_per_execution
    from kerapipe.config import validate_params
    from kerapipe.datasets import DatasetOptions
    from kerapipe.reproducibility import seed_everything
    from kerapipe.steps.inventory import scan_data
    from kerapipe.tasks.base import get_task

    params = validate_params(spec["params"])
    steps = steps_per_execution(params.TRAINING.STEPS_PER_EXECUTION)
    root = spec["params"]["DATA"]["INVENTORY_DATA_DIR"]
    seed_everything(SEED)  # as the train stage does (op determinism is process-wide: all get it)
    table = scan_data(context(params))
    options = DatasetOptions.from_params(params.TRAINING)
    task = get_task(params)
    by_hand = keras.utils.image_dataset_from_directory(
        root,
        class_names=synthetic.CLASS_NAMES,
        batch_size=BATCH_SIZE,
        image_size=tuple(INPUT_SHAPE[:2]),
        shuffle=True,
        seed=SEED,
        verbose=False,
    )
    cached = replace(options, cache="memory")
    contenders = {  # name: (data, steps_per_execution)
        "kerapipe": (
            task.data.dataset(table, BATCH_SIZE, shuffle_seed=SEED, options=options),
            steps,
        ),
        "image_dataset_from_directory": (by_hand, 1),
        "pydataset_pil": (pil_dataset(root), 1),
        # Informational: TRAINING.CACHE: memory (decoded once, in the warm-up).
        "kerapipe_cache_memory": (
            task.data.dataset(table, BATCH_SIZE, shuffle_seed=SEED, options=cached),
            steps,
        ),
    }
    return {"rates": fit_rates(contenders, len(table), spec["rounds"]), "images": len(table)}


def fit_rates(contenders: dict, count: int, rounds: int) -> dict[str, list[float]]:
    """Images/s of the epochs after the first of one ``fit(epochs=FIT_EPOCHS)`` per
    contender and round, the contenders taking turns (each warmed up once first)."""
    import keras

    class EpochTimer(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.seconds: list[float] = []

        def on_epoch_begin(self, epoch, logs=None):
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.seconds.append(time.perf_counter() - self.started)

    models = {}
    for name, (data, steps) in contenders.items():  # build, trace and warm up
        models[name] = tiny_model()
        models[name].compile(
            optimizer="adam", loss="sparse_categorical_crossentropy", steps_per_execution=steps
        )
        models[name].fit(data, epochs=1, verbose=0)
    rates: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(rounds):
        for name, (data, _) in contenders.items():
            timer = EpochTimer()
            models[name].fit(data, epochs=FIT_EPOCHS, verbose=0, callbacks=[timer])
            timed = timer.seconds[1:]
            rates[name].append(count * len(timed) / sum(timed))
    return rates


def worker_backend_fit(spec: dict) -> dict:
    """Images/s through ``fit`` of the train stage's dataset and the throughput rows' model on
    ``spec["backend"]`` (Keras' backend is chosen here, before Keras is imported)."""
    os.environ["KERAS_BACKEND"] = spec["backend"]
    from kerapipe.backend import steps_per_execution
    from kerapipe.config import validate_params
    from kerapipe.datasets import DatasetOptions
    from kerapipe.reproducibility import seed_everything
    from kerapipe.steps.inventory import scan_data
    from kerapipe.tasks.base import get_task

    params = validate_params(spec["params"])
    steps = steps_per_execution(params.TRAINING.STEPS_PER_EXECUTION)
    seed_everything(SEED)
    table = scan_data(context(params))
    options = DatasetOptions.from_params(params.TRAINING)
    data = get_task(params).data.dataset(table, BATCH_SIZE, shuffle_seed=SEED, options=options)
    rates = fit_rates({spec["backend"]: (data, steps)}, len(table), spec["rounds"])
    return {"rates": rates[spec["backend"]], "images": len(table)}


def tiny_model():
    """The model of the throughput rows, the same for every contender: cheap enough (about
    3,000 images/s on 2 cores) that the input pipeline, not the network, sets the pace."""
    import keras
    from keras import layers

    return keras.Sequential(
        [
            keras.Input(tuple(INPUT_SHAPE)),
            layers.Rescaling(1 / 255),
            layers.AveragePooling2D(4),
            layers.Conv2D(8, 3, activation="relu"),
            layers.GlobalAveragePooling2D(),
            layers.Dense(10, activation="softmax"),
        ],
        name="tiny",
    )


def pil_dataset(root: str):
    """The old generator design: a keras.utils.PyDataset that decodes and resizes with PIL
    in Python (Keras' defaults: one worker thread, no multiprocessing)."""
    import keras
    import numpy as np
    from PIL import Image

    class PILDataset(keras.utils.PyDataset):
        def __init__(self, paths, labels, batch_size):
            super().__init__()
            self.paths, self.labels, self.batch_size = paths, np.asarray(labels), batch_size
            self.order = np.arange(len(paths))
            self.rng = np.random.default_rng(SEED)
            self.rng.shuffle(self.order)

        def __len__(self):
            return -(-len(self.paths) // self.batch_size)

        def __getitem__(self, index):
            rows = self.order[index * self.batch_size : (index + 1) * self.batch_size]
            images = np.stack([self.load(self.paths[i]) for i in rows])
            return images, self.labels[rows]

        def load(self, path):
            with Image.open(path) as image:
                image = image.convert("RGB").resize(tuple(INPUT_SHAPE[1::-1]), Image.BILINEAR)
                return np.asarray(image, dtype=np.float32)

        def on_epoch_end(self):
            self.rng.shuffle(self.order)

    paths, labels = [], []
    for label, name in enumerate(synthetic.CLASS_NAMES):
        folder = Path(root) / name
        names = sorted(n for n in os.listdir(folder) if not n.startswith("."))
        paths += [str(folder / n) for n in names]
        labels += [label] * len(names)
    return PILDataset(paths, labels, BATCH_SIZE)


# --- the comparisons -------------------------------------------------------------------------


def bench_training(sizes: dict, data: Path, work: Path) -> list[Row]:
    params = params_for(data, work / "fit")
    result = worker("fit", {"params": params, "rounds": sizes["repeats"]})
    rates = result["rates"]
    for name, values in rates.items():
        log(f"fit {name}: " + ", ".join(f"{v:.0f}" for v in values) + " images/s")
    med = {c: statistics.median(v) for c, v in rates.items()}
    rows = []
    for baseline, target in (("image_dataset_from_directory", 1.0), ("pydataset_pil", 2.5)):
        # the median of the per-round ratios: each pair of epochs ran back to back
        pairs = zip(rates["kerapipe"], rates[baseline], strict=True)
        ratio = statistics.median(k / b for k, b in pairs)
        rows.append(
            Row(
                f"fit throughput vs {baseline} (images/s)",
                f"{med['kerapipe']:.0f}",
                f"{med[baseline]:.0f}",
                f"{ratio:.2f}x",
                f">= {target}x",
                ratio >= target,
            )
        )
    pairs = zip(rates["kerapipe_cache_memory"], rates["image_dataset_from_directory"], strict=True)
    rows.append(
        Row(
            "fit throughput, TRAINING.CACHE: memory, vs image_dataset_from_directory",
            f"{statistics.median(rates['kerapipe_cache_memory']):.0f}",
            f"{med['image_dataset_from_directory']:.0f}",
            f"{statistics.median(k / b for k, b in pairs):.2f}x",
            "-",
            None,
            "informational: the cache filled in the warm-up",
        )
    )
    return rows


def bench_jax(sizes: dict, data: Path, work: Path) -> list[Row]:
    """JAX against TensorFlow: ``fit`` throughput of the same dataset and model (a fresh
    process per backend and round, in turns); and the train stage with
    ``DISTRIBUTION: data_parallel`` in two processes on 127.0.0.1 (one CPU device each,
    BATCH_SIZE halved: the same global batch) against one process, wall time of the stage."""
    params = params_for(data, work / "jax")
    return [jax_fit_row(sizes, params), jax_processes_row(sizes, data, work)]


def jax_fit_row(sizes: dict, params: dict) -> Row:
    """``fit`` throughput on JAX against TensorFlow, a fresh worker per backend and round."""
    rates: dict[str, list[float]] = {"jax": [], "tensorflow": []}
    for _ in range(sizes["repeats"]):
        for backend in rates:
            spec = {"params": params, "rounds": 1, "backend": backend}
            rates[backend] += worker("backend_fit", spec)["rates"]
    log("fit on jax: " + ", ".join(f"{v:.0f}" for v in rates["jax"]) + " images/s")
    log("fit on tensorflow: " + ", ".join(f"{v:.0f}" for v in rates["tensorflow"]) + " images/s")
    ratio = statistics.median(j / t for j, t in zip(rates["jax"], rates["tensorflow"], strict=True))
    return Row(
        "fit throughput, BACKEND: jax vs tensorflow, same data and model (images/s)",
        f"{statistics.median(rates['jax']):.0f}",
        f"{statistics.median(rates['tensorflow']):.0f}",
        f"{ratio:.2f}x",
        "-",
        None,
        "informational, CPU only: GPU figures are not measured here",
    )


def jax_processes_row(sizes: dict, data: Path, work: Path) -> Row:
    """The whole train stage on JAX with ``data_parallel``, two processes against one."""
    epochs = FIT_EPOCHS
    seconds = {}
    batch = BATCH_SIZE if count_images(data) >= 1000 else 8  # a full batch of validation images
    for processes in (1, 2):
        folder = work / f"jax_processes_{processes}"
        stage = params_for(data, folder, BACKEND="jax", DISTRIBUTION="data_parallel")
        stage["TRAINING"].update(NUM_EPOCHS=epochs, BATCH_SIZE=batch // processes)
        path = write_params(folder / "params.yaml", stage)
        run([sys.executable, "-m", "kerapipe.cli", "inventory", "--params", str(path)], folder)
        seconds[processes] = statistics.median(
            train_in_processes(path, processes) for _ in range(sizes["repeats"])
        )
        log(f"train stage, {processes} process(es): {seconds[processes]:.1f} s")
    images = count_images(data) * 0.8 * epochs  # the training split, every epoch
    rates_by = {n: images / s for n, s in seconds.items()}
    return Row(
        "train stage on JAX, data_parallel, 2 processes vs 1 (images/s, whole stage)",
        f"{rates_by[2]:.0f}",
        f"{rates_by[1]:.0f}",
        f"{rates_by[2] / rates_by[1]:.2f}x",
        "-",
        None,
        "informational: both processes on this machine's CPU cores",
    )


def train_in_processes(params: Path, processes: int) -> float:
    """Wall time of ``kerapipe train`` in ``processes`` processes joined on 127.0.0.1."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    cluster = {
        "KERAS_DISTRIBUTION_JOB_ADDRESSES": f"127.0.0.1:{port}",
        "KERAS_DISTRIBUTION_NUM_PROCESSES": str(processes),
        "XLA_FLAGS": "--xla_force_host_platform_device_count=1",
    }
    args = [sys.executable, "-m", "kerapipe.cli", "train", "-q", "--params", str(params)]
    start = time.perf_counter()
    children = [
        subprocess.Popen(
            args,
            cwd=params.parent if i == 0 else params.parent.parent,
            env={
                **env(),
                **(cluster if processes > 1 else {}),
                "KERAS_DISTRIBUTION_PROCESS_ID": str(i),
            },
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(processes)
    ]
    errors = [child.communicate()[1] for child in children]
    elapsed = time.perf_counter() - start
    for child, error in zip(children, errors, strict=True):
        if child.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} failed: {error[-3000:]}")
    return elapsed
