"""Shared fixtures: the real sample data, params pointing into a temporary folder, and a copy
of the project in a temporary git repo for end-to-end runs of the real `dvc`."""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from kerapipe.sample_data import write_digits

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent  # the venv's bin: python, dvc, kerapipe


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
    """Run a command; on unexpected failure show its output in the assertion message."""
    result = subprocess.run(
        args, cwd=cwd, env=tool_env(), capture_output=True, text=True, timeout=timeout
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"{' '.join(args)} exited {result.returncode}\n"
            f"--- stdout ---\n{result.stdout[-4000:]}\n--- stderr ---\n{result.stderr[-4000:]}"
        )
    return result


@pytest.fixture(scope="session")
def digits(tmp_path_factory) -> Path:
    """The embedded digits sample, written once per test session (read-only for tests)."""
    return write_digits(tmp_path_factory.mktemp("sample") / "digits")


@pytest.fixture
def default_params() -> dict:
    """A fresh copy of the project's params.yaml, safe to modify."""
    return yaml.safe_load((REPO / "params.yaml").read_text())


@pytest.fixture
def make_params(tmp_path, digits, default_params):
    """Build a params dict whose paths point into ``tmp_path``; write it to params.yaml there."""

    def make(updates: dict | None = None, data_dir: Path | None = None) -> tuple[dict, Path]:
        params = copy.deepcopy(default_params)
        params["DATA"].update(
            INVENTORY_DATA_DIR=str(data_dir or digits / "train"),
            INVENTORY_CSV_DIR=str(tmp_path / "inventory"),
            TRAINING_MODEL_DIR=str(tmp_path / "models"),
            PREDICTION_DATA_DIR=str(digits / "unlabelled"),
            PREDICTION_OUTPUT_DIR=str(tmp_path / "predictions"),
        )
        for dotted, value in (updates or {}).items():
            group, *keys = dotted.split(".")
            target = params[group]
            for key in keys[:-1]:
                target = target[key]
            target[keys[-1]] = value
        path = tmp_path / "params.yaml"
        path.write_text(yaml.safe_dump(params, sort_keys=False))
        return params, path

    return make


@pytest.fixture
def project(tmp_path) -> Path:
    """This project's files (tracked and not ignored) copied into a fresh git repo, committed."""
    files = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\0")
    dest = tmp_path / "project"
    for name in filter(None, files):
        source = REPO / name
        if source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    run(["git", "init", "-q"], dest)
    run(["git", "add", "-A"], dest)
    run(["git", "commit", "-qm", "kerapipe project"], dest)
    return dest
