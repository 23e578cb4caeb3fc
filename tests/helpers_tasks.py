"""Helpers for the segmentation and regression tests: small drawn samples, params that point
into a temporary folder, and a copy of the project in a fresh git repo for real `dvc` runs."""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from PIL import Image

from kerapipe.config import Params, validate_params

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent  # the venv's bin: python, dvc, kerapipe


def task_params(name: str, tmp_path: Path, updates: dict[str, Any] | None = None) -> dict:
    """``params/<name>.yaml`` with its outputs under ``tmp_path`` and dotted-key ``updates``."""
    params = copy.deepcopy(yaml.safe_load((REPO / "params" / f"{name}.yaml").read_text()))
    params["DATA"].update(
        INVENTORY_CSV_DIR=str(tmp_path / "inventory"),
        TRAINING_MODEL_DIR=str(tmp_path / "models"),
        PREDICTION_OUTPUT_DIR=str(tmp_path / "predictions"),
    )
    for dotted, value in (updates or {}).items():
        *keys, last = dotted.split(".")
        target = params
        for key in keys:
            target = target[key]
        target[last] = value
    return params


def validated(params: dict) -> Params:
    return validate_params(copy.deepcopy(params), source="test params")


def save_png(path: Path, pixels: np.ndarray) -> Path:
    """Write a uint8 array as PNG (grayscale for 2-D arrays, RGB for 3 channels)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(pixels, dtype=np.uint8)).save(path)
    return path


def tool_env() -> dict[str, str]:
    """Environment for subprocesses: this venv first on PATH, a git identity, quiet TF."""
    env = dict(os.environ)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env.update(
        GIT_AUTHOR_NAME="kerapipe tests",
        GIT_AUTHOR_EMAIL="tests@kerapipe.invalid",
        GIT_COMMITTER_NAME="kerapipe tests",
        GIT_COMMITTER_EMAIL="tests@kerapipe.invalid",
        TF_CPP_MIN_LOG_LEVEL="2",
        DVC_NO_ANALYTICS="1",
    )
    return env


def run(args: list[str], cwd: Path, check: bool = True, timeout: int = 900):
    """Run a command; on failure show its output in the assertion message."""
    result = subprocess.run(
        args, cwd=cwd, env=tool_env(), capture_output=True, text=True, timeout=timeout
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"{' '.join(args)} exited {result.returncode}\n"
            f"--- stdout ---\n{result.stdout[-4000:]}\n--- stderr ---\n{result.stderr[-4000:]}"
        )
    return result


def copy_project(dest: Path) -> Path:
    """This project's files (tracked, and untracked but not ignored) in a fresh git repo."""
    files = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\0")
    for name in filter(None, files):
        source = REPO / name
        if source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    run(["git", "init", "-q"], dest)
    run(["git", "add", "-A"], dest)
    run(["git", "commit", "-qm", "kerapipe project"], dest)
    return dest


def stages_run(output: str) -> set[str]:
    return {line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage")}
