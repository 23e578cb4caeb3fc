"""The frozen rows (``python benchmarks/run.py --only frozen``): a pretrained base frozen for
every epoch, MobileNetV2 at 160x160 on 2,000 JPEGs of 640x480 (``synthetic.make_photos``),
10 epochs, batch 32, against benchmarks/by_hand_frozen.py, the script a Keras user writes
(``image_dataset_from_directory``, the frozen base, the same head, ``fit``).

kerapipe runs the whole ``kerapipe train`` as a process (``python benchmarks/frozen.py
kerapipe PARAMS TIMES``: the real command, with a callback that notes each epoch's end); each
round has an empty cache folder, so it decodes the images and computes the frozen base's
features itself, then trains the head on them. The base's weights are a file both load (a
random MobileNetV2's: the same arithmetic as ImageNet's, with no download).
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
EPOCHS = {"full": 10, "quick": 2}
SIZE = 160
TARGET_RATE, TARGET_WALL = 20.0, 0.25  # issue 23: epochs after the first, the whole phase


def weights_file(folder: Path) -> Path:
    """A headless MobileNetV2's weights at 160x160 (random), made once."""
    path = folder / "mobilenet_v2_160_notop.weights.h5"
    if not path.is_file():
        import keras

        base = keras.applications.MobileNetV2(
            include_top=False, weights=None, input_shape=(SIZE, SIZE, 3)
        )
        folder.mkdir(parents=True, exist_ok=True)
        base.save_weights(path)
    return path


def kerapipe_params(params: dict, weights: Path, epochs: int, cache: Path, times: Path) -> dict:
    params["MODEL"]["MODEL_NAME"] = "mobilenet_v2"
    params["MODEL"]["MODEL_PARAMS"] = {
        "INPUT_SHAPE": [SIZE, SIZE, 3],
        "WEIGHTS": str(weights),
        "FREEZE_BASE": True,
        "DROPOUT": 0.2,
    }
    params["TRAINING"].update(
        NUM_EPOCHS=epochs,
        CACHE="disk",
        CACHE_DIR=str(cache),
        CALLBACKS=[{"CALLBACK_NAME": "epoch_clock", "CALLBACK_PARAMS": {"path": str(times)}}],
    )
    return params


def bench_frozen(sizes: dict, photos: Path, work: Path, mode: str, helpers) -> list:
    """The two rows (epochs after the first; the whole frozen phase) and the sweep's."""
    from kerapipe.config import validate_params
    from kerapipe.steps.inventory import run_inventory

    epochs, folder = EPOCHS[mode], work / "frozen"
    weights = helpers.run_worker_weights(folder)
    runs: dict[str, list[dict]] = {"kerapipe": [], "by_hand": [], "sweep": []}
    for pair in range(sizes["repeats"]):
        cache, times = folder / f"cache_{pair}", {n: folder / f"{n}_{pair}.json" for n in runs}
        params = helpers.params_for(photos, folder, NUM_EPOCHS=epochs)
        if pair == 0:  # the inventory is a stage of its own: not timed
            run_inventory(helpers.context(validate_params(params)))
        params = kerapipe_params(params, weights, epochs, cache, times["kerapipe"])
        path = helpers.write_params(folder / f"params_{pair}.yaml", params)
        sweep = kerapipe_params(params, weights, epochs, cache, times["sweep"])
        sweep_path = helpers.write_params(folder / f"sweep_{pair}.yaml", sweep)
        commands = {
            "kerapipe": [sys.executable, __file__, "kerapipe", str(path), str(times["kerapipe"])],
            "by_hand": [sys.executable, str(HERE / "by_hand_frozen.py"), str(photos),
                        str(weights), str(times["by_hand"]), "--epochs", str(epochs)],
            "sweep": [sys.executable, __file__, "kerapipe", str(sweep_path), str(times["sweep"])],
        }  # fmt: skip
        order = ["kerapipe", "by_hand"] if pair % 2 == 0 else ["by_hand", "kerapipe"]
        for name in [*order, "sweep"]:  # the sweep's run finds the features cached
            measured = helpers.measured_child(commands[name], cwd=folder)
            measured["ends"] = json.loads(times[name].read_text())
            runs[name].append(measured)
        helpers.log(f"frozen, pair {pair + 1}: " + ", ".join(
            f"{n} {runs[n][-1]['wall']:.1f} s" for n in runs))  # fmt: skip
    images = int(0.8 * sizes["photos"])  # the training split, on both sides
    return rows(runs, images, epochs, helpers.Row)


def later_rate(run: dict, images: int) -> float:
    """Training images per second over the epochs after the first."""
    ends = run["ends"]
    return images * (len(ends) - 1) / (ends[-1] - ends[0])


def rows(runs: dict[str, list[dict]], images: int, epochs: int, row) -> list:
    pairs = list(zip(runs["kerapipe"], runs["by_hand"], strict=True))
    rate_ratio = statistics.median(later_rate(k, images) / later_rate(b, images) for k, b in pairs)
    wall_ratio = statistics.median(k["wall"] / b["wall"] for k, b in pairs)
    rate = {n: statistics.median(later_rate(r, images) for r in runs[n]) for n in runs}
    wall = {n: statistics.median(r["wall"] for r in runs[n]) for n in runs}
    sweep_ratio = statistics.median(
        s["wall"] / b["wall"] for s, b in zip(runs["sweep"], runs["by_hand"], strict=True)
    )
    return [
        row(
            f"frozen MobileNetV2 160x160, {images / 0.8:,.0f} JPEGs: epochs 2-{epochs} (images/s)",
            f"{rate['kerapipe']:.0f}",
            f"{rate['by_hand']:.0f}",
            f"{rate_ratio:.1f}x",
            f">= {TARGET_RATE:.0f}x",
            rate_ratio >= TARGET_RATE,
            "kerapipe trains the head on the base's cached features",
        ),
        row(
            f"the whole frozen phase, {epochs} epochs, a fresh cache (wall s)",
            f"{wall['kerapipe']:.1f}",
            f"{wall['by_hand']:.1f}",
            f"{wall_ratio:.2f}x",
            f"<= {TARGET_WALL}x",
            wall_ratio <= TARGET_WALL,
            "whole processes: start-up, decoding into the cache, the features once, the "
            "epochs; kerapipe also evaluates and checkpoints",
        ),
        row(
            "the same in a sweep's next experiment, features cached (wall s)",
            f"{wall['sweep']:.1f}",
            f"{wall['by_hand']:.1f}",
            f"{sweep_ratio:.2f}x",
            "-",
            None,
            "informational: `dvc exp run --queue` over head settings pays the base once",
        ),
    ]


def run_kerapipe(params: str, times: str) -> None:
    """``kerapipe train --params PARAMS`` with the epoch clock registered (it writes TIMES)."""
    sys.path.insert(0, str(HERE))
    from by_hand_frozen import EpochClock

    from kerapipe.cli import run
    from kerapipe.registry import register_callback

    register_callback("epoch_clock", EpochClock)
    run(["train", "--params", params, "-q"])


if __name__ == "__main__":
    if sys.argv[1] == "kerapipe":
        run_kerapipe(sys.argv[2], sys.argv[3])
