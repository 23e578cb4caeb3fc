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

This file is the entry point: the options, the groups chosen, the data each needs, the table
and its JSON, and the ``--worker`` mode the measurements run in. The groups live beside it
(bench_training.py, bench_remote.py, bench_io.py, bench_commands.py, frozen.py), what they
share in harness.py, the data generators in synthetic.py.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import frozen  # noqa: E402
import harness  # noqa: E402
import synthetic  # noqa: E402
from bench_commands import (  # noqa: E402
    bench_command,
    bench_dvc,
    bench_memory,
    bench_startup,
    worker_modules,
)
from bench_io import bench_input, bench_inventory, bench_predict, worker_input, worker_predict  # noqa: E402
from bench_remote import bench_remote, worker_remote_fit  # noqa: E402
from bench_training import bench_jax, bench_training, worker_backend_fit, worker_fit  # noqa: E402
from harness import Row, log, machine, params_for, table, write_params  # noqa: E402

SIZES = {
    "full": {"train": 10_000, "inventory": 100_000, "memory_copies": 4, "repeats": 5,
             "photos": 2_000},
    "quick": {"train": 96, "inventory": 1_000, "memory_copies": 2, "repeats": 2, "photos": 64},
}  # fmt: skip
BENCHES = (
    "training", "input", "remote", "predict", "inventory", "startup", "memory", "dvc", "command",
    "jax", "frozen",
)  # fmt: skip
WORKERS = {
    "frozen_weights": lambda spec: {"path": str(frozen.weights_file(Path(spec["folder"])))},
    "fit": worker_fit,
    "remote_fit": worker_remote_fit,
    "predict": worker_predict,
    "modules": worker_modules,
    "input": worker_input,
    "backend_fit": worker_backend_fit,
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
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
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
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
    rows = image_groups(chosen, sizes, root, work, mode, train)
    rows += process_groups(chosen, sizes, root, work, mode, train)
    report(rows, mode, sizes, started, args.results)
    return 0


def image_groups(chosen, sizes: dict, root: Path, work: Path, mode: str, train) -> list[Row]:
    """The groups that read the synthetic trees, in the table's order, each after its data."""
    rows: list[Row] = []
    if "training" in chosen:
        rows += bench_training(sizes, train, work)
    if {"input", "frozen"} & set(chosen):
        photos = synthetic.make_photos(root / f"photos_{sizes['photos']}", sizes["photos"])
    if "input" in chosen:
        rows += bench_input(sizes, photos, work)
    if "frozen" in chosen:
        rows += frozen.bench_frozen(sizes, photos, work, mode, harness)
    if "remote" in chosen:
        rows += bench_remote(sizes, train, work)
    if "predict" in chosen:
        rows += bench_predict(sizes, train, work)
    if "inventory" in chosen:
        many = synthetic.make_small_files(root / f"small_{sizes['inventory']}", sizes["inventory"])
        rows += bench_inventory(sizes, many, work)
    return rows


def process_groups(chosen, sizes: dict, root: Path, work: Path, mode: str, train) -> list[Row]:
    """The groups that run whole commands (and jax, last), in the table's order."""
    rows: list[Row] = []
    sample = root / "sample"
    if {"startup", "command"} & set(chosen) and not (sample / "digits" / "train").is_dir():
        from kerapipe.sample_data import write_digits

        write_digits(sample / "digits")
    if "startup" in chosen:
        rows += bench_startup(sizes, startup_params(sample))
    if "memory" in chosen:
        copies = sizes["memory_copies"]
        large = synthetic.make_linked_copies(train, root / f"linked_{copies}x", copies)
        rows += bench_memory(sizes, train, large, work)
    if "dvc" in chosen:
        rows += bench_dvc(sizes, work, mode == "quick")
    if "command" in chosen:
        rows += bench_command(sizes, sample / "digits", train, work, mode)
    if "jax" in chosen:
        rows += bench_jax(sizes, train, work)
    return rows


def startup_params(sample: Path) -> Path:
    """The params file of the start-up rows: the digits sample, its class names."""
    params = json.loads(json.dumps(params_for(sample / "digits" / "train", sample)))
    params["DATA"]["PREDICTION_DATA_DIR"] = str(sample / "digits" / "unlabelled")
    names = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
    params["PIPELINE"]["TASK_PARAMS"]["CLASS_NAMES"] = names
    return write_params(sample / "params.yaml", params)


def report(rows: list[Row], mode: str, sizes: dict, started: float, results: Path) -> None:
    """Print the table and write it as JSON to ``results/<mode>.json``."""
    minutes = (time.perf_counter() - started) / 60
    print(f"\nkerapipe benchmarks ({mode}; medians of {sizes['repeats']} runs unless noted)")
    print(f"machine: {machine()}; took {minutes:.1f} min\n")
    print(table(rows))
    from kerapipe.atomic import write_text  # another run may be reading the same file

    results.mkdir(parents=True, exist_ok=True)

    write_text(
        results / f"{mode}.json",
        json.dumps({"machine": machine(), "rows": [r.values for r in rows]}, indent=2) + "\n",
    )


if __name__ == "__main__":
    sys.exit(main())
