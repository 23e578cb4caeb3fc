"""What every benchmark group shares: the sizes of its models and batches, child processes
(run, timed, or a ``run.py --worker`` that reports JSON), params for a synthetic tree, the
machine's description, logging and the table's rows. Standard library only at import time, so
the parent process stays free of TensorFlow."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import synthetic

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
BIN = Path(sys.executable).parent
SEED = 42
BATCH_SIZE = 32
INPUT_SHAPE = [64, 64, 3]
# The train stage's model in the memory and dvc rows: a small simple_cnn.
MODEL_PARAMS = {"FILTERS": [4], "DENSE_UNITS": 8, "DROPOUT": 0.0}
FIT_EPOCHS = 3  # per fit call in the throughput rows; the first is not timed


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


def run_worker_weights(folder: Path) -> Path:
    """The frozen rows' weights file, made in a worker (TensorFlow stays out of this one)."""
    return Path(worker("frozen_weights", {"folder": str(folder)})["path"])


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


def yaml_load(path: Path) -> dict:
    import yaml

    return yaml.safe_load(path.read_text())


def count_images(root: Path) -> int:
    return sum(len(os.listdir(root / name)) for name in synthetic.CLASS_NAMES)


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


class Row:
    def __init__(self, what, kerapipe, baseline, ratio, target, met, note=""):
        status = "-" if met is None else "yes" if met else "NO"
        self.values = (what, kerapipe, baseline, ratio, target, status, note)


def table(rows: list[Row]) -> str:
    header = ("comparison", "kerapipe", "baseline", "ratio", "target", "met", "note")
    lines = [header, *[r.values for r in rows]]
    widths = [max(len(str(line[i])) for line in lines) for i in range(len(header))]
    fmt = " | ".join(f"{{:<{w}}}" for w in widths)
    out = [fmt.format(*header), "-+-".join("-" * w for w in widths)]
    out += [fmt.format(*map(str, r.values)) for r in rows]
    return "\n".join(out)
