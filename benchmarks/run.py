"""kerapipe benchmarks: one command, its own data, every comparison side by side.

    python benchmarks/run.py            # the sizes of issue 5 (10,000 / 40,000 / 100,000)
    python benchmarks/run.py --quick    # tiny sizes: a smoke test of the whole harness

Builds deterministic synthetic data under benchmarks/_data/ (git- and DVC-ignored), runs each
comparison several times with kerapipe and its baseline alternating, and prints a table of the
median ratios against the targets of issue 5. Every kerapipe number comes from the real library
(kerapipe.datasets via the task's data piece, kerapipe.steps.inventory.run_inventory,
kerapipe.steps.predict.run_prediction, the `kerapipe` CLI and the train stage). TensorFlow runs
only in worker subprocesses (``--worker``), one per measurement, so runs do not share state and peak
memory is measured per process. See benchmarks/README.md for what each number means.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

import frozen  # noqa: E402
import synthetic  # noqa: E402

BIN = Path(sys.executable).parent
SEED = 42
BATCH_SIZE = 32
INPUT_SHAPE = [64, 64, 3]
# The train stage's model in the memory and dvc rows: a small simple_cnn.
MODEL_PARAMS = {"FILTERS": [4], "DENSE_UNITS": 8, "DROPOUT": 0.0}
FIT_EPOCHS = 3  # per fit call in the throughput rows; the first is not timed

SIZES = {
    "full": {"train": 10_000, "inventory": 100_000, "memory_copies": 4, "repeats": 5,
             "photos": 2_000},
    "quick": {"train": 96, "inventory": 1_000, "memory_copies": 2, "repeats": 2, "photos": 64},
}  # fmt: skip
PHOTO_SHAPE = [299, 299, 3]  # the input row: 640x480 JPEGs resized to Xception's input
CACHED_EPOCHS = 3  # epochs timed after the first in the input row
# One H100 trains Xception at 1,636 images/s (Keras 3 on JAX, mixed_bfloat16, 299x299, data in
# memory); 1.1x that from the 16 cores of such a host is 113 images/s per core (issue 12).
PER_CORE_TARGET = math.ceil(1.1 * 1636 / 16)  # 113
# The whole-command rows: epochs on the digits sample (as params.yaml) and on the tree.
COMMAND_EPOCHS = {"full": {"digits": 15, "tree": 5}, "quick": {"digits": 2, "tree": 1}}
COMMAND_TARGETS = {"digits": 0.8, "tree": 0.6}  # kerapipe's wall time / the script's


# --- helpers -------------------------------------------------------------------------------


def context(params):
    """The run context of validated params, as a stage builds it (kerapipe/context.py)."""
    from kerapipe.context import RunContext

    return RunContext.from_params(params)


def env() -> dict[str, str]:
    out = dict(os.environ)
    out["PATH"] = f"{BIN}{os.pathsep}{out.get('PATH', '')}"
    out.update(TF_CPP_MIN_LOG_LEVEL="3", DVC_NO_ANALYTICS="1", PYTHONUNBUFFERED="1")
    # The user's cache folder (remote files, decoded images) under _data, not ~/.cache.
    out["XDG_CACHE_HOME"] = str(HERE / "_data" / "user-cache")
    out.setdefault("GIT_AUTHOR_NAME", "kerapipe benchmarks")
    out.setdefault("GIT_AUTHOR_EMAIL", "benchmarks@kerapipe.invalid")
    out.setdefault("GIT_COMMITTER_NAME", "kerapipe benchmarks")
    out.setdefault("GIT_COMMITTER_EMAIL", "benchmarks@kerapipe.invalid")
    return out


def run(args: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess:
    result = subprocess.run(args, cwd=cwd, env=env(), capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(
            f"{' '.join(map(str, args))} failed ({result.returncode}):\n"
            f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        )
    return result


def worker(kind: str, spec: dict, cwd: Path | None = None) -> dict:
    """Run ``--worker kind`` in a fresh Python and return the JSON it reports."""
    out = run([sys.executable, str(HERE / "run.py"), "--worker", kind, json.dumps(spec)], cwd)
    line = [ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT ") :])


def timed_child(args: list[str], cwd: Path | None = None) -> tuple[float, int]:
    """Wall time (s) and peak RSS (bytes) of one child process, measured on that child alone."""
    usage = measured_child(args, cwd)
    return usage["wall"], usage["rss"]


def measured_child(args: list[str], cwd: Path | None = None) -> dict[str, float]:
    """Wall time (s), CPU time (user + system, s) and peak RSS (bytes) of one child process
    and what it waited for, measured on that child alone (``os.wait4``)."""
    start = time.perf_counter()
    child = subprocess.Popen(
        args, cwd=cwd, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    _, status, usage = os.wait4(child.pid, 0)
    elapsed = time.perf_counter() - start
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed: {child.stderr.read().decode()[-3000:]}")
    child.stderr.close()
    scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss is KiB on Linux
    cpu = usage.ru_utime + usage.ru_stime
    return {"wall": elapsed, "cpu": cpu, "rss": usage.ru_maxrss * scale}


def params_for(data_dir: Path, work: Path, **training) -> dict:
    """A classification params dict for one synthetic tree, with outputs under ``work``."""
    return {
        "DATA": {
            "INVENTORY_DATA_DIR": str(data_dir),
            "INVENTORY_CSV_DIR": str(work / "inventory"),
            "TRAINING_MODEL_DIR": str(work / "models"),
            "TRAINING_MODEL_NAME": "bench",
            "PREDICTION_DATA_DIR": str(data_dir),
            "PREDICTION_OUTPUT_DIR": str(work / "predictions"),
        },
        "PIPELINE": {
            "TASK_NAME": "classification",
            "TASK_PARAMS": {
                "CLASS_NAMES": synthetic.CLASS_NAMES,
                "CLASS_LABELS": list(range(len(synthetic.CLASS_NAMES))),
            },
        },
        "INVENTORY": {"VALIDATION_SPLIT": 0.2, "SEED": SEED, "FORCE": True},
        "MODEL": {
            "MODEL_NAME": "simple_cnn",
            "MODEL_PARAMS": {"INPUT_SHAPE": INPUT_SHAPE, "NUM_CLASSES": 10, **MODEL_PARAMS},
        },
        "TRAINING": {"BATCH_SIZE": BATCH_SIZE, "SEED": SEED, "FORCE": True, **training},
    }


def write_params(path: Path, params: dict) -> Path:
    import yaml

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


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


def worker_remote_fit(spec: dict) -> dict:
    """Images/s through ``fit`` of the train stage's dataset on images in S3 (fetched by the
    train stage's own code into a fresh remote cache, timed) against the same images on
    local disk, in turns, as ``worker_fit`` times them."""
    from kerapipe.backend import steps_per_execution
    from kerapipe.config import validate_params
    from kerapipe.datasets import DatasetOptions
    from kerapipe.reproducibility import seed_everything
    from kerapipe.sources import source_of
    from kerapipe.steps.inventory import scan_data
    from kerapipe.tasks.base import get_task
    from kerapipe.training.inputs import local_files

    seed_everything(SEED)
    tables, contenders = {}, {}
    for name in ("local", "s3"):
        params = validate_params(spec[name])
        task = get_task(params)
        tables[name] = scan_data(context(params))
        if name == "s3":
            start = time.perf_counter()
            source = source_of(params.DATA, "INVENTORY_DATA_DIR")
            tables[name] = local_files(task.layout.file_columns, tables[name], source)
            fetch = time.perf_counter() - start
        options = DatasetOptions.from_params(params.TRAINING)
        data = task.data.dataset(tables[name], BATCH_SIZE, shuffle_seed=SEED, options=options)
        steps = steps_per_execution(params.TRAINING.STEPS_PER_EXECUTION)
        contenders[f"kerapipe_{name}"] = (data, steps)
    count = len(tables["local"])
    assert len(tables["s3"]) == count
    return {"rates": fit_rates(contenders, count, spec["rounds"]), "fetch": fetch, "images": count}


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


def worker_predict(spec: dict) -> dict:
    """Images/s of the predict stage and of model.predict on a hand-written tf.data pipeline,
    each writing a predictions CSV; alternating, after one warm-up run of each."""
    import keras
    import pandas as pd
    import tensorflow as tf

    from kerapipe.artifacts import ModelPaths, save_model
    from kerapipe.config import validate_params
    from kerapipe.steps.predict import run_prediction

    params = validate_params(spec["params"])
    keras.utils.set_random_seed(SEED)
    paths = ModelPaths.from_params(params)
    Path(paths.run_dir).mkdir(parents=True, exist_ok=True)
    save_model(tiny_model(), paths.model, "keras")
    root = params.DATA.PREDICTION_DATA_DIR
    out_dir = Path(params.DATA.PREDICTION_OUTPUT_DIR)

    def kerapipe_predict() -> int:
        return run_prediction(context(params)).rows

    def by_hand() -> int:
        files = sorted(
            os.path.join(r, n) for r, _, names in os.walk(root) for n in names if n[0] != "."
        )
        model = keras.saving.load_model(str(paths.model), compile=False)

        def load(path):
            image = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
            return tf.image.resize(image, INPUT_SHAPE[:2])

        data = tf.data.Dataset.from_tensor_slices(files)
        data = data.map(load, num_parallel_calls=tf.data.AUTOTUNE)
        data = data.batch(BATCH_SIZE).prefetch(tf.data.AUTOTUNE)
        probs = model.predict(data, verbose=0)
        table = pd.DataFrame({"filepath": files, "label": probs.argmax(axis=1)})
        for i, name in enumerate(synthetic.CLASS_NAMES):
            table[f"prob_{name}"] = probs[:, i].round(6)
        out_dir.mkdir(parents=True, exist_ok=True)
        table.to_csv(out_dir / "by_hand.csv", index=False)
        return len(files)

    rates: dict[str, list[float]] = {"kerapipe": [], "baseline": []}
    for repeat in range(spec["repeats"] + 1):
        for name, fn in (("kerapipe", kerapipe_predict), ("baseline", by_hand)):
            start = time.perf_counter()
            rows = fn()
            if repeat:  # the first round warms up (tracing, file cache)
                rates[name].append(rows / (time.perf_counter() - start))
    return rates


def worker_input(spec: dict) -> dict:
    """The input pipeline alone (no model): images/s and images per CPU-second of the first
    epoch (from JPEG) and of the epochs after it, kerapipe's train-stage dataset against a
    hand-written tf.data pipeline, in turns.

    kerapipe: ``Task.dataset`` with ``TRAINING.CACHE: disk`` in a fresh cache folder each
    round; its first epoch counts from the build (header probes, content hashes, the decode
    into the cache) to the last batch. The baseline: read, ``decode_jpeg``, ``resize`` to
    uint8, ``cache(file)`` (a fresh file each round), ``shuffle``, ``batch``, float32,
    ``prefetch``, its first epoch from the build on as well. Both shuffle, batch 32 and cast
    to float32 per batch; every batch is pulled through Python. CPU time is the process's
    (user + system, all threads) from ``time.process_time``.
    """
    from dataclasses import replace

    import numpy as np
    import tensorflow as tf

    from kerapipe.config import validate_params
    from kerapipe.datasets import DatasetOptions
    from kerapipe.steps.inventory import scan_data
    from kerapipe.tasks.base import get_task

    params = validate_params(spec["params"])
    table = scan_data(context(params))
    task = get_task(params)
    files = list(table.filepath)
    for path in files:  # both start with the JPEGs in the page cache
        Path(path).read_bytes()
    work = Path(spec["work"])
    height, width, _ = PHOTO_SHAPE

    def kerapipe_data(folder: Path):
        options = replace(DatasetOptions.from_params(params.TRAINING), cache_dir=str(folder))
        return task.data.dataset(table, BATCH_SIZE, shuffle_seed=SEED, options=options)

    def baseline_data(folder: Path):
        def load(path, label):
            image = tf.io.decode_jpeg(tf.io.read_file(path), channels=3)
            image = tf.image.resize(image, (height, width))
            return tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.uint8), label

        folder.mkdir(parents=True)
        data = tf.data.Dataset.from_tensor_slices((files, np.zeros(len(files), np.int32)))
        data = data.map(load, num_parallel_calls=tf.data.AUTOTUNE).cache(str(folder / "c"))
        data = data.shuffle(1024, seed=SEED).batch(BATCH_SIZE)
        data = data.map(lambda x, y: (tf.cast(x, tf.float32), y))
        return data.prefetch(tf.data.AUTOTUNE)

    def epoch(data) -> int:
        return sum(int(x.shape[0]) for x, _ in data)

    def timed(fn):
        wall, cpu = time.perf_counter(), time.process_time()
        count = fn()
        return count, time.perf_counter() - wall, time.process_time() - cpu

    rates: dict[str, list[list[float]]] = {}
    for round_ in range(spec["repeats"] + 1):  # the first round warms up (tracing)
        for name, build in (("kerapipe", kerapipe_data), ("baseline", baseline_data)):
            folder = work / f"{name}_{round_}"
            shutil.rmtree(folder, ignore_errors=True)
            holder = {}

            def first():
                holder["data"] = build(folder)  # noqa: B023 - used at once
                return epoch(holder["data"])  # noqa: B023

            results = [timed(first)]
            results += [timed(lambda: epoch(holder["data"])) for _ in range(CACHED_EPOCHS)]  # noqa: B023
            assert all(count == len(files) for count, _, _ in results)
            if round_:
                for key, part in (("first", results[:1]), ("cached", results[1:])):
                    count = sum(r[0] for r in part)
                    wall, cpu = sum(r[1] for r in part), sum(r[2] for r in part)
                    rates.setdefault(f"{name}_{key}", []).append([count / wall, count / cpu])
            shutil.rmtree(folder, ignore_errors=True)
    return {"rates": rates, "images": len(files), "cores": len(os.sched_getaffinity(0))}


def worker_modules(spec: dict) -> dict:
    """Run the CLI in-process and report which heavy modules it imported."""
    import contextlib
    import io

    from kerapipe.cli import main

    with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):
        main(spec["argv"])
    return {m: m in sys.modules for m in ("tensorflow", "keras", "pandas")}


def run_worker_weights(folder: Path) -> Path:
    """The frozen rows' weights file, made in a worker (TensorFlow stays out of this one)."""
    return Path(worker("frozen_weights", {"folder": str(folder)})["path"])


WORKERS = {
    "frozen_weights": lambda spec: {"path": str(frozen.weights_file(Path(spec["folder"])))},
    "fit": worker_fit,
    "remote_fit": worker_remote_fit,
    "predict": worker_predict,
    "modules": worker_modules,
    "input": worker_input,
    "backend_fit": worker_backend_fit,
}


# --- the comparisons -------------------------------------------------------------------------


class Row:
    def __init__(self, what, kerapipe, baseline, ratio, target, met, note=""):
        status = "-" if met is None else "yes" if met else "NO"
        self.values = (what, kerapipe, baseline, ratio, target, status, note)


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


def bench_input(sizes: dict, photos: Path, work: Path) -> list[Row]:
    """The input pipeline alone on 640x480 JPEGs resized to 299x299 (see ``worker_input``):
    per core = images per CPU-second of the process, i.e. images/s divided by the cores it
    kept busy on average; the wall rate on all of this machine's cores beside it."""
    params = params_for(photos, work / "input", CACHE="disk")
    params["MODEL"]["MODEL_PARAMS"]["INPUT_SHAPE"] = PHOTO_SHAPE
    spec = {"params": params, "repeats": sizes["repeats"], "work": str(work / "input_caches")}
    result = worker("input", spec)
    rates, cores = result["rates"], result["cores"]
    for name, values in rates.items():
        shown = ", ".join(f"{wall:.0f}/s ({cpu:.0f}/CPU-s)" for wall, cpu in values)
        log(f"input {name}: {shown}")
    rows = []
    for key, what, target in (
        ("first", "first epoch, from JPEG", PER_CORE_TARGET),
        ("cached", f"cached epochs (next {CACHED_EPOCHS})", None),
    ):
        ours, theirs = rates[f"kerapipe_{key}"], rates[f"baseline_{key}"]
        per_core = statistics.median(cpu for _, cpu in ours)
        baseline = statistics.median(cpu for _, cpu in theirs)
        ratio = statistics.median(o[1] / t[1] for o, t in zip(ours, theirs, strict=True))
        wall = statistics.median(w for w, _ in ours), statistics.median(w for w, _ in theirs)
        rows.append(
            Row(
                f"input pipeline, 640x480 JPEG -> 299x299, {what} (images/s per core)",
                f"{per_core:.0f}",
                f"{baseline:.0f}",
                f"{ratio:.2f}x",
                f">= {target}/core" if target else ">= 3x the JPEG rate",
                per_core >= target if target else per_core >= 3 * target_rate(rates),
                f"{wall[0]:.0f} vs {wall[1]:.0f} images/s on {cores} cores; baseline: "
                "hand tf.data (decode_jpeg, resize, cache(file))",
            )
        )
    return rows


def target_rate(rates: dict) -> float:
    """kerapipe's per-core rate from JPEG: the cached epochs should be well above it."""
    return statistics.median(cpu for _, cpu in rates["kerapipe_first"])


def bench_jax(sizes: dict, data: Path, work: Path) -> list[Row]:
    """JAX against TensorFlow: ``fit`` throughput of the same dataset and model (a fresh
    process per backend and round, in turns); and the train stage with
    ``DISTRIBUTION: data_parallel`` in two processes on 127.0.0.1 (one CPU device each,
    BATCH_SIZE halved: the same global batch) against one process, wall time of the stage."""
    params = params_for(data, work / "jax")
    rates: dict[str, list[float]] = {"jax": [], "tensorflow": []}
    for _ in range(sizes["repeats"]):
        for backend in rates:
            spec = {"params": params, "rounds": 1, "backend": backend}
            rates[backend] += worker("backend_fit", spec)["rates"]
    log("fit on jax: " + ", ".join(f"{v:.0f}" for v in rates["jax"]) + " images/s")
    log("fit on tensorflow: " + ", ".join(f"{v:.0f}" for v in rates["tensorflow"]) + " images/s")
    ratio = statistics.median(j / t for j, t in zip(rates["jax"], rates["tensorflow"], strict=True))
    rows = [
        Row(
            "fit throughput, BACKEND: jax vs tensorflow, same data and model (images/s)",
            f"{statistics.median(rates['jax']):.0f}",
            f"{statistics.median(rates['tensorflow']):.0f}",
            f"{ratio:.2f}x",
            "-",
            None,
            "informational, CPU only: GPU figures are not measured here",
        )
    ]
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
    rows.append(
        Row(
            "train stage on JAX, data_parallel, 2 processes vs 1 (images/s, whole stage)",
            f"{rates_by[2]:.0f}",
            f"{rates_by[1]:.0f}",
            f"{rates_by[2] / rates_by[1]:.2f}x",
            "-",
            None,
            "informational: both processes on this machine's CPU cores",
        )
    )
    return rows


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


def bench_remote(sizes: dict, data: Path, work: Path) -> list[Row]:
    """Training on images in S3: a local S3-compatible server (moto, on 127.0.0.1) holds
    the training images; the train stage's code fetches them into a fresh remote cache, then
    ``fit`` runs on them in turns with ``fit`` on the same images on local disk."""
    import fsspec
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # a line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    saved = dict(os.environ)
    os.environ.update(
        AWS_ENDPOINT_URL=f"http://{host}:{port}",
        AWS_ACCESS_KEY_ID="benchmarks",
        AWS_SECRET_ACCESS_KEY="benchmarks",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_EC2_METADATA_DISABLED="true",
    )
    try:
        s3 = fsspec.filesystem("s3", skip_instance_cache=True)
        s3.mkdir("bench")
        files = sorted(p for p in data.rglob("*") if p.is_file())
        start = time.perf_counter()
        s3.put([str(f) for f in files], [f"bench/images/{f.relative_to(data)}" for f in files])
        log(f"uploaded {len(files)} images to the S3 server in {time.perf_counter() - start:.0f}s")
        local = params_for(data, work / "remote_local")
        remote = params_for(data, work / "remote_s3")
        cache = work / "remote_cache"
        shutil.rmtree(cache, ignore_errors=True)  # the first fetch is timed: start empty
        remote["DATA"].update(
            INVENTORY_DATA_SOURCE="s3",
            INVENTORY_DATA_DIR="s3://bench/images",
            REMOTE_CACHE_DIR=str(cache),
        )
        spec = {"local": local, "s3": remote, "rounds": sizes["repeats"]}
        result = worker("remote_fit", spec)
    finally:
        os.environ.clear()
        os.environ.update(saved)
        server.stop()
    rates, count = result["rates"], result["images"]
    for name, values in rates.items():
        log(f"fit {name}: " + ", ".join(f"{v:.0f}" for v in values) + " images/s")
    pairs = zip(rates["kerapipe_s3"], rates["kerapipe_local"], strict=True)
    ratio = statistics.median(s / loc for s, loc in pairs)  # each pair ran back to back
    fetch = result["fetch"]
    return [
        Row(
            "fit throughput, images in S3 (moto on 127.0.0.1), epochs 2+, vs the same on "
            "local disk (images/s)",
            f"{statistics.median(rates['kerapipe_s3']):.0f}",
            f"{statistics.median(rates['kerapipe_local']):.0f}",
            f"{ratio:.2f}x",
            ">= 0.8x",
            ratio >= 0.8,
        ),
        Row(
            f"first fetch of {count:,} images from S3 into the remote cache (s)",
            f"{fetch:.1f}",
            "-",
            "-",
            "-",
            None,
            f"informational: {count / fetch:.0f} images/s, before the first epoch",
        ),
    ]


def bench_predict(sizes: dict, data: Path, work: Path) -> list[Row]:
    params = params_for(data, work / "predict")
    rates = worker("predict", {"params": params, "repeats": sizes["repeats"]})
    for name, values in rates.items():
        log(f"predict {name}: " + ", ".join(f"{v:.0f}" for v in values) + " images/s")
    pairs = zip(rates["kerapipe"], rates["baseline"], strict=True)
    ratio = statistics.median(k / b for k, b in pairs)  # each pair ran back to back
    return [
        Row(
            "predict throughput vs model.predict on tf.data (images/s)",
            f"{statistics.median(rates['kerapipe']):.0f}",
            f"{statistics.median(rates['baseline']):.0f}",
            f"{ratio:.2f}x",
            ">= 0.95x",
            ratio >= 0.95,
        )
    ]


def bench_inventory(sizes: dict, data: Path, work: Path) -> list[Row]:
    """Two rows on the same tree of tiny files: the listing (``CHECK_IMAGES: names``) against
    a bare ``os.walk``, and the whole stage with its default check (``decode``: every image
    fully decoded by Pillow; in threads only where each file takes long enough to pay for
    them, which these do not) against a plain single-threaded Pillow loop."""
    from PIL import Image

    from kerapipe.config import validate_params
    from kerapipe.steps.inventory import run_inventory

    listing = params_for(data, work / "inventory")
    listing["INVENTORY"]["CHECK_IMAGES"] = "names"
    decoding = params_for(data, work / "inventory_decode")
    decoding["INVENTORY"]["CHECK_IMAGES"] = "decode"
    names_only, decode = validate_params(listing), validate_params(decoding)
    files = [os.path.join(r, n) for r, _, names in os.walk(data) for n in names if n[0] != "."]

    def bare_walk() -> int:
        return len([os.path.join(r, n) for r, _, names in os.walk(data) for n in names])

    def pillow_loop() -> None:
        for path in files:
            with Image.open(path) as image:
                image.load()

    rows = []
    for title, contenders, repeats, target in (
        (
            f"inventory of {sizes['inventory']:,} files vs bare os.walk (s), CHECK_IMAGES: names",
            (("baseline", bare_walk), ("kerapipe", lambda: run_inventory(context(names_only)))),
            sizes["repeats"] + 2,
            3.0,
        ),
        (
            f"inventory with CHECK_IMAGES: decode, {sizes['inventory']:,} files, vs a "
            "Pillow open+load loop (s)",
            (("baseline", pillow_loop), ("kerapipe", lambda: run_inventory(context(decode)))),
            max(2, sizes["repeats"] // 2 + 1),
            1.25,  # the same Pillow work, plus the listing, the split and the CSV
        ),
    ):
        times: dict[str, list[float]] = {"kerapipe": [], "baseline": []}
        for repeat in range(repeats):
            for name, fn in contenders:
                start = time.perf_counter()
                fn()
                if repeat:  # the first round warms the file system cache and the imports
                    times[name].append(time.perf_counter() - start)
        med = {k: statistics.median(v) for k, v in times.items()}
        ratio = med["kerapipe"] / med["baseline"]
        log(f"{title}: {med}")
        rows.append(
            Row(
                title,
                f"{med['kerapipe']:.2f}",
                f"{med['baseline']:.2f}",
                f"{ratio:.2f}x",
                f"<= {target:g}x",
                ratio <= target,
            )
        )
    return rows


def bench_startup(sizes: dict, sample_params: Path) -> list[Row]:
    kerapipe = str(BIN / "kerapipe")
    commands = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "kerapipe --help": [kerapipe, "--help"],
        "kerapipe validate": [kerapipe, "validate", "--params", str(sample_params)],
    }
    times: dict[str, list[float]] = {name: [] for name in commands}
    for repeat in range(2 * sizes["repeats"] + 2):
        for name, args in commands.items():
            elapsed, _ = timed_child(args, cwd=sample_params.parent)
            if repeat:
                times[name].append(elapsed)
    med = {k: statistics.median(v) for k, v in times.items()}
    rows = []
    for name, argv in (
        ("kerapipe --help", ["--help"]),
        ("kerapipe validate", ["validate", "--params", str(sample_params)]),
    ):
        loaded = worker("modules", {"argv": argv}, cwd=sample_params.parent)
        extra = med[name] - med["python -c pass"]
        rows.append(
            Row(
                f"start-up: {name} (s)",
                f"{med[name]:.2f}",
                f"{med['python -c pass']:.2f}",
                f"+{extra:.2f} s",
                "< +0.5 s, no TF",
                extra < 0.5 and not loaded["tensorflow"],
                "TensorFlow imported" if loaded["tensorflow"] else "TensorFlow not imported",
            )
        )
    log(f"start-up: {med}")
    return rows


def bench_memory(sizes: dict, small: Path, large: Path, work: Path) -> list[Row]:
    from kerapipe.config import validate_params
    from kerapipe.steps.inventory import run_inventory

    peaks = {}
    for name, data in (("small", small), ("large", large)):
        params = params_for(data, work / f"memory_{name}", NUM_EPOCHS=1)
        run_inventory(context(validate_params(params)))
        path = write_params(work / f"memory_{name}" / "params.yaml", params)
        args = [sys.executable, "-m", "kerapipe.cli", "train", "--params", str(path)]
        _, peaks[name] = timed_child(args, cwd=path.parent)
        log(f"train peak RSS on {data.name}: {peaks[name] / 2**20:.0f} MiB")
    growth = peaks["large"] / peaks["small"] - 1
    counts = (count_images(small), count_images(large))
    return [
        Row(
            f"train peak memory, {counts[0]:,} vs {counts[1]:,} images (MiB)",
            f"{peaks['large'] / 2**20:.0f}",
            f"{peaks['small'] / 2**20:.0f}",
            f"{growth:+.1%}",
            "within 10%",
            abs(growth) <= 0.10,
        )
    ]


def bench_dvc(sizes: dict, work: Path, quick: bool) -> list[Row]:
    """A copy of the sample project in its own git repo: one full `dvc repro`, then no-ops."""
    project = work / "dvc_sample"
    if project.exists():
        shutil.rmtree(project)
    project.mkdir(parents=True)
    for name in ("dvc.yaml", "params.yaml", ".dvcignore", ".gitignore"):
        shutil.copy(REPO / name, project / name)
    for name in ("stages", "kerapipe"):
        shutil.copytree(REPO / name, project / name, ignore=shutil.ignore_patterns("__pycache__"))
    (project / "data").mkdir()
    shutil.copy(REPO / "data" / "dvc.yaml", project / "data" / "dvc.yaml")
    if quick:  # a no-op repro does not depend on how long training took
        import yaml

        params = yaml.safe_load((project / "params.yaml").read_text())
        params["TRAINING"]["NUM_EPOCHS"] = 1
        (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    dvc = str(BIN / "dvc")
    run(["git", "init", "-q"], project)
    run([dvc, "init", "-q"], project)
    run(["git", "add", "-A"], project)
    run(["git", "commit", "-q", "-m", "sample"], project)
    run([dvc, "repro", "-q"], project)  # the sample data, inventory, train, predict
    times = [timed_child([dvc, "repro"], project)[0] for _ in range(2 * sizes["repeats"] + 1)]
    med = statistics.median(times)
    log(f"dvc repro (no-op): {times}")
    what = "no-op `dvc repro` on the sample pipeline (s)"
    return [Row(what, f"{med:.2f}", "-", "-", "< 2 s", med < 2)]


def bench_command(sizes: dict, digits: Path, tree: Path, work: Path, mode: str) -> list[Row]:
    """The whole `kerapipe train`, run as a user runs it (a fresh process, TRAINING.FORCE
    true, after `kerapipe inventory`), against benchmarks/by_hand_train.py, the script a
    Keras user writes for the same model, data, epochs, batch and split. Each pair runs back
    to back, the order swapped every pair; the ratio is the median of the pairs' ratios."""
    from kerapipe.config import validate_params
    from kerapipe.images import is_image_name
    from kerapipe.steps.inventory import run_inventory

    default = yaml_load(REPO / "params.yaml")
    digits_model = default["MODEL"]["MODEL_PARAMS"]
    cases = {
        "digits": (digits / "train", digits_model, default["PIPELINE"]["TASK_PARAMS"]),
        "tree": (tree, {"INPUT_SHAPE": INPUT_SHAPE, "NUM_CLASSES": 10, **MODEL_PARAMS}, None),
    }
    rows = []
    for case, (data, model, task_params) in cases.items():
        epochs = COMMAND_EPOCHS[mode][case]
        folder = work / f"command_{case}"
        params = params_for(data, folder, NUM_EPOCHS=epochs)
        params["MODEL"]["MODEL_PARAMS"] = model
        if task_params:
            params["PIPELINE"]["TASK_PARAMS"] = task_params
        run_inventory(context(validate_params(params)))
        path = write_params(folder / "params.yaml", params)
        height, width, channels = model["INPUT_SHAPE"]
        simple_cnn = {"FILTERS": [32, 64], "DENSE_UNITS": 128, "DROPOUT": 0.3, **model}
        contenders = {
            "kerapipe": [str(BIN / "kerapipe"), "train", "--params", str(path)],
            "by_hand": [
                sys.executable,
                str(HERE / "by_hand_train.py"),
                str(data),
                str(folder / "by_hand.keras"),
                *("--epochs", str(epochs), "--batch-size", str(BATCH_SIZE)),
                *("--height", str(height), "--width", str(width), "--channels", str(channels)),
                *("--filters", *map(str, simple_cnn["FILTERS"])),
                *("--dense-units", str(simple_cnn["DENSE_UNITS"])),
                *("--dropout", str(simple_cnn["DROPOUT"]), "--seed", str(SEED)),
            ],
        }
        if case == "tree":  # informational: the decoded images also held in memory
            memory = copy.deepcopy(params)
            memory["TRAINING"]["CACHE"] = "memory"
            memory_path = write_params(folder / "params_memory.yaml", memory)
            contenders["kerapipe_memory"] = [*contenders["kerapipe"][:-1], str(memory_path)]
        runs: dict[str, list[dict]] = {name: [] for name in contenders}
        for pair in range(sizes["repeats"]):
            order = list(contenders) if pair % 2 == 0 else list(contenders)[::-1]
            for name in order:
                runs[name].append(measured_child(contenders[name], cwd=folder))
            log(f"whole command, {case}, pair {pair + 1}: " + ", ".join(
                f"{name} {runs[name][-1]['wall']:.1f} s" for name in contenders))  # fmt: skip
        images = sum(map(is_image_name, map(str, Path(data).rglob("*"))))
        rows.append(command_row(case, images, epochs, runs))
        if "kerapipe_memory" in runs:
            rows.append(memory_row(runs))
    return rows


def memory_row(runs: dict[str, list[dict]]) -> Row:
    """The tree's whole command with ``TRAINING.CACHE: memory``, against the same script:
    informational (the default is ``disk``; memory is the user's choice)."""
    walls = {name: statistics.median(r["wall"] for r in runs[name]) for name in runs}
    return Row(
        "the same with TRAINING.CACHE: memory (wall s)",
        f"{walls['kerapipe_memory']:.1f}",
        f"{walls['by_hand']:.1f}",
        f"{median_ratio(runs, 'kerapipe_memory', 'wall'):.2f}x",
        "-",
        None,
        "informational: the decoded images also held in memory, at the user's choice",
    )


def median_ratio(runs: dict[str, list[dict]], name: str, key: str) -> float:
    """The median over back-to-back pairs of ``name``'s ``key`` over the script's."""
    pairs = zip(runs[name], runs["by_hand"], strict=True)
    return statistics.median(ours[key] / script[key] for ours, script in pairs)


def command_row(case: str, images: int, epochs: int, runs: dict[str, list[dict]]) -> Row:
    """One row: medians of wall time, CPU time and peak RSS, ratios of back-to-back pairs."""
    med = {n: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for n, rs in runs.items()}
    ratio, target = median_ratio(runs, "kerapipe", "wall"), COMMAND_TARGETS[case]
    extra_rss = (med["kerapipe"]["rss"] - med["by_hand"]["rss"]) / 2**20
    what = "digits sample" if case == "digits" else "synthetic tree"
    return Row(
        f"whole `kerapipe train` vs a hand-written script, {what}, {images:,} images, "
        f"{epochs} epoch{'s' if epochs > 1 else ''} (wall s)",
        f"{med['kerapipe']['wall']:.1f}",
        f"{med['by_hand']['wall']:.1f}",
        f"{ratio:.2f}x",
        f"<= {target}x",
        ratio <= target,
        f"CPU {med['kerapipe']['cpu']:.1f} s vs {med['by_hand']['cpu']:.1f} s "
        f"({median_ratio(runs, 'kerapipe', 'cpu'):.2f}x); "
        f"peak RSS {med['kerapipe']['rss'] / 2**20:.0f} MiB "
        f"vs {med['by_hand']['rss'] / 2**20:.0f} ({extra_rss:+.0f} MiB)",
    )


def yaml_load(path: Path) -> dict:
    import yaml

    return yaml.safe_load(path.read_text())


def count_images(root: Path) -> int:
    return sum(len(os.listdir(root / name)) for name in synthetic.CLASS_NAMES)


# --- main ------------------------------------------------------------------------------------


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def machine() -> str:
    model = platform.processor() or platform.machine()
    try:
        for line in run(["lscpu"]).stdout.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    except (RuntimeError, FileNotFoundError):
        pass
    return f"{os.cpu_count()} CPUs ({model}), no GPU used, Python {platform.python_version()}"


def table(rows: list[Row]) -> str:
    header = ("comparison", "kerapipe", "baseline", "ratio", "target", "met", "note")
    lines = [header, *[r.values for r in rows]]
    widths = [max(len(str(line[i])) for line in lines) for i in range(len(header))]
    fmt = " | ".join(f"{{:<{w}}}" for w in widths)
    out = [fmt.format(*header), "-+-".join("-" * w for w in widths)]
    out += [fmt.format(*map(str, r.values)) for r in rows]
    return "\n".join(out)


BENCHES = (
    "training", "input", "remote", "predict", "inventory", "startup", "memory", "dvc", "command",
    "jax", "frozen",
)  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes (smoke test)")
    parser.add_argument("--only", nargs="+", choices=BENCHES, help="run only these")
    parser.add_argument("--repeats", type=int, help="runs per measurement (median taken)")
    parser.add_argument("--train-images", type=int, help="images for training/predict/memory")
    parser.add_argument("--data-dir", type=Path, default=HERE / "_data", help="generated data")
    parser.add_argument(
        "--results", type=Path, default=HERE / "results", help="folder of the table's JSON"
    )
    parser.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print("RESULT " + json.dumps(WORKERS[args.worker[0]](json.loads(args.worker[1]))))
        return 0

    mode = "quick" if args.quick else "full"
    sizes = dict(SIZES[mode])
    if args.repeats:
        sizes["repeats"] = args.repeats
    if args.train_images:
        sizes["train"] = args.train_images
    chosen = args.only or BENCHES
    root = args.data_dir / mode
    work = root / "work"
    work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    log(f"{mode} run on {machine()}; data under {root}")

    train = None
    if {"training", "remote", "predict", "memory", "command", "jax"} & set(chosen):
        train = synthetic.make_images(root / f"images_{sizes['train']}", sizes["train"])
    rows: list[Row] = []
    if "training" in chosen:
        rows += bench_training(sizes, train, work)
    if {"input", "frozen"} & set(chosen):
        photos = synthetic.make_photos(root / f"photos_{sizes['photos']}", sizes["photos"])
    if "input" in chosen:
        rows += bench_input(sizes, photos, work)
    if "frozen" in chosen:
        rows += frozen.bench_frozen(sizes, photos, work, mode, sys.modules[__name__])
    if "remote" in chosen:
        rows += bench_remote(sizes, train, work)
    if "predict" in chosen:
        rows += bench_predict(sizes, train, work)
    if "inventory" in chosen:
        many = synthetic.make_small_files(root / f"small_{sizes['inventory']}", sizes["inventory"])
        rows += bench_inventory(sizes, many, work)
    sample = root / "sample"
    if {"startup", "command"} & set(chosen) and not (sample / "digits" / "train").is_dir():
        from kerapipe.sample_data import write_digits

        write_digits(sample / "digits")
    if "startup" in chosen:
        params = json.loads(json.dumps(params_for(sample / "digits" / "train", sample)))
        params["DATA"]["PREDICTION_DATA_DIR"] = str(sample / "digits" / "unlabelled")
        names = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
        params["PIPELINE"]["TASK_PARAMS"]["CLASS_NAMES"] = names
        rows += bench_startup(sizes, write_params(sample / "params.yaml", params))
    if "memory" in chosen:
        copies = sizes["memory_copies"]
        large = synthetic.make_linked_copies(train, root / f"linked_{copies}x", copies)
        rows += bench_memory(sizes, train, large, work)
    if "dvc" in chosen:
        rows += bench_dvc(sizes, work, args.quick)
    if "command" in chosen:
        rows += bench_command(sizes, sample / "digits", train, work, mode)
    if "jax" in chosen:
        rows += bench_jax(sizes, train, work)

    minutes = (time.perf_counter() - started) / 60
    print(f"\nkerapipe benchmarks ({mode}; medians of {sizes['repeats']} runs unless noted)")
    print(f"machine: {machine()}; took {minutes:.1f} min\n")
    print(table(rows))
    from kerapipe.atomic import write_text  # another run may be reading the same file

    args.results.mkdir(parents=True, exist_ok=True)

    write_text(
        args.results / f"{mode}.json",
        json.dumps({"machine": machine(), "rows": [r.values for r in rows]}, indent=2) + "\n",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
