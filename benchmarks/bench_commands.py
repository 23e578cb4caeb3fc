"""The groups that time whole commands as a user runs them, each in a fresh process: the
CLI's start-up (``startup``), the train stage's peak memory (``memory``), a no-op
``dvc repro`` (``dvc``) and the whole ``kerapipe train`` against a hand-written script
(``command``)."""

from __future__ import annotations

import copy
import shutil
import statistics
import sys
from pathlib import Path

from harness import (
    BATCH_SIZE,
    BIN,
    HERE,
    INPUT_SHAPE,
    MODEL_PARAMS,
    REPO,
    SEED,
    Row,
    context,
    count_images,
    log,
    measured_child,
    params_for,
    run,
    timed_child,
    worker,
    write_params,
    yaml_load,
)

# The whole-command rows: epochs on the digits sample (as params.yaml) and on the tree.
COMMAND_EPOCHS = {"full": {"digits": 15, "tree": 5}, "quick": {"digits": 2, "tree": 1}}
COMMAND_TARGETS = {"digits": 0.8, "tree": 0.6}  # kerapipe's wall time / the script's


def worker_modules(spec: dict) -> dict:
    """Run the CLI in-process and report which heavy modules it imported."""
    import contextlib
    import io

    from kerapipe.cli import main

    with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):
        main(spec["argv"])
    return {m: m in sys.modules for m in ("tensorflow", "keras", "pandas")}


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
        contenders = command_contenders(case, data, folder, params, epochs)
        runs = command_pairs(sizes, case, contenders, folder)
        images = sum(map(is_image_name, map(str, Path(data).rglob("*"))))
        rows.append(command_row(case, images, epochs, runs))
        if "kerapipe_memory" in runs:
            rows.append(memory_row(runs))
    return rows


def command_contenders(
    case: str, data: Path, folder: Path, params: dict, epochs: int
) -> dict[str, list[str]]:
    """The command lines of one case: `kerapipe train` on its params file and the script with
    the same sizes and layers; on the tree, `kerapipe train` with ``CACHE: memory`` too."""
    path = write_params(folder / "params.yaml", params)
    model = params["MODEL"]["MODEL_PARAMS"]
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
    return contenders


def command_pairs(
    sizes: dict, case: str, contenders: dict[str, list[str]], folder: Path
) -> dict[str, list[dict]]:
    """Each contender measured once per pair, back to back, the order swapped every pair."""
    runs: dict[str, list[dict]] = {name: [] for name in contenders}
    for pair in range(sizes["repeats"]):
        order = list(contenders) if pair % 2 == 0 else list(contenders)[::-1]
        for name in order:
            runs[name].append(measured_child(contenders[name], cwd=folder))
        log(f"whole command, {case}, pair {pair + 1}: " + ", ".join(
            f"{name} {runs[name][-1]['wall']:.1f} s" for name in contenders))  # fmt: skip
    return runs


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
