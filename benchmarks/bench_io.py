"""The groups that read images without training: the input pipeline alone on camera-sized
JPEGs (``input``), the predict stage (``predict``) and the inventory of many tiny files
(``inventory``), each against what a user writes by hand. The workers run in their own
process and may import TensorFlow; the parent's functions (``bench_*``) do not."""

from __future__ import annotations

import math
import os
import shutil
import statistics
import time
from pathlib import Path

import synthetic
from bench_training import tiny_model
from harness import BATCH_SIZE, INPUT_SHAPE, SEED, Row, context, log, params_for, worker

PHOTO_SHAPE = [299, 299, 3]  # the input row: 640x480 JPEGs resized to Xception's input
CACHED_EPOCHS = 3  # epochs timed after the first in the input row
# One H100 trains Xception at 1,636 images/s (Keras 3 on JAX, mixed_bfloat16, 299x299, data in
# memory); 1.1x that from the 16 cores of such a host is 113 images/s per core (issue 12).
PER_CORE_TARGET = math.ceil(1.1 * 1636 / 16)  # 113

# --- workers (run in their own process; they may import TensorFlow) -------------------------


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
    from kerapipe.config import validate_params
    from kerapipe.steps.inventory import scan_data
    from kerapipe.tasks.base import get_task

    params = validate_params(spec["params"])
    table = scan_data(context(params))
    task = get_task(params)
    files = list(table.filepath)
    for path in files:  # both start with the JPEGs in the page cache
        Path(path).read_bytes()
    work = Path(spec["work"])
    builders = input_builders(params, task, table, files)
    rates: dict[str, list[list[float]]] = {}
    for round_ in range(spec["repeats"] + 1):  # the first round warms up (tracing)
        for name, build in builders.items():
            folder = work / f"{name}_{round_}"
            shutil.rmtree(folder, ignore_errors=True)
            results = input_epochs(build, folder)
            assert all(count == len(files) for count, _, _ in results)
            if round_:
                for key, part in (("first", results[:1]), ("cached", results[1:])):
                    count = sum(r[0] for r in part)
                    wall, cpu = sum(r[1] for r in part), sum(r[2] for r in part)
                    rates.setdefault(f"{name}_{key}", []).append([count / wall, count / cpu])
            shutil.rmtree(folder, ignore_errors=True)
    return {"rates": rates, "images": len(files), "cores": len(os.sched_getaffinity(0))}


def input_builders(params, task, table, files: list[str]) -> dict:
    """The two contenders of the input row: each builds its dataset in a given folder
    (kerapipe's decoded image cache; the baseline's ``cache(file)``)."""
    from dataclasses import replace

    import numpy as np
    import tensorflow as tf

    from kerapipe.datasets import DatasetOptions

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

    return {"kerapipe": kerapipe_data, "baseline": baseline_data}


def input_epochs(build, folder: Path) -> list[tuple[int, float, float]]:
    """(images, wall s, CPU s) of the first epoch, counted from the build on, then of each
    of the next ``CACHED_EPOCHS``."""
    holder = {}

    def first():
        holder["data"] = build(folder)
        return epoch(holder["data"])

    results = [timed(first)]
    results += [timed(lambda: epoch(holder["data"])) for _ in range(CACHED_EPOCHS)]
    return results


def epoch(data) -> int:
    return sum(int(x.shape[0]) for x, _ in data)


def timed(fn):
    wall, cpu = time.perf_counter(), time.process_time()
    count = fn()
    return count, time.perf_counter() - wall, time.process_time() - cpu


# --- the comparisons -------------------------------------------------------------------------


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

    cases = (
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
    )
    return [inventory_row(*case) for case in cases]


def inventory_row(title: str, contenders, repeats: int, target: float) -> Row:
    """One inventory row: median seconds of kerapipe and its baseline, taking turns."""
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
    return Row(
        title,
        f"{med['kerapipe']:.2f}",
        f"{med['baseline']:.2f}",
        f"{ratio:.2f}x",
        f"<= {target:g}x",
        ratio <= target,
    )
