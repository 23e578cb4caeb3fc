"""Shared test helpers: run real commands with this venv's tools, and copy the project into a
fresh git repo for end-to-end `dvc` runs."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent  # the venv's bin: python, dvc, kerapipe
# Every stage a first `dvc repro` of the project runs (the samples, upstream of inventory, too).
ALL_STAGES = {"data/dvc.yaml:samples", "validate", "inventory", "train", "export", "predict"}


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


def kerapipe(cwd: Path, *args: str, **popen) -> subprocess.CompletedProcess:
    """Run the ``kerapipe`` command in ``cwd``; its result, whatever the exit code."""
    return subprocess.run(
        [str(BIN / "kerapipe"), *args],
        cwd=cwd,
        env=tool_env(),
        capture_output=True,
        text=True,
        timeout=600,
        **popen,
    )


def kerapipe_here(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    """``kerapipe args`` through its ``main`` in this process, in ``cwd``: what it printed
    and its exit code, as ``kerapipe`` returns them (an unexpected exception propagates, as
    a process would show its traceback). For checks that need no process of their own:
    TensorFlow is already imported here, a fresh process spends seconds importing it."""
    from kerapipe.cli import exit_status

    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    out, err, before = io.StringIO(), io.StringIO(), os.getcwd()
    os.chdir(cwd)  # contextlib.chdir is Python 3.11's
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = exit_status(list(args))
    finally:
        os.chdir(before)
        root.handlers[:], root.level = handlers, level  # main's basicConfig wrote to `err`
    return subprocess.CompletedProcess(["kerapipe", *args], code, out.getvalue(), err.getvalue())


def kerapipe_without_tensorflow(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    """Run ``kerapipe args`` through its ``main`` in a fresh Python in ``cwd``; it fails
    (non-zero exit, the reason in stderr) if the command fails or imports TensorFlow."""
    code = (
        "import sys; from kerapipe.cli import main\n"
        "try:\n    code = main(sys.argv[1:])\nexcept SystemExit as exit:\n    code = exit.code\n"
        "assert code == 0, f'exit code {code}'\n"
        "assert 'tensorflow' not in sys.modules, 'tensorflow was imported'"
    )
    return subprocess.run(
        [sys.executable, "-c", code, *args], cwd=cwd, capture_output=True, text=True, timeout=600
    )


def start(args: list[str], cwd: Path) -> subprocess.Popen:
    """Start a command in its own process group (to kill it whole), output merged in .stdout.
    It handles Ctrl-C (SIGINT) as from a terminal, though pytest may have been started where
    SIGINT is ignored (a background job of a script), which its processes would inherit."""
    return subprocess.Popen(
        args,
        cwd=cwd,
        env=tool_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        preexec_fn=_sigint_as_from_a_terminal,
    )


def _sigint_as_from_a_terminal() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # Python then installs its own handler


def wait_for_epoch(
    state_file: Path, epoch: int, process: subprocess.Popen, timeout: float = 300
) -> None:
    """Block until the training ``process`` (still running) has recorded ``epoch`` completed
    epochs in its checkpoints' ``state.json``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, "training ended before it could be signalled"
        if state_file.is_file():
            try:
                if json.loads(state_file.read_text())["epoch"] >= epoch:
                    return
            except json.JSONDecodeError:
                pass
        time.sleep(0.05)
    raise AssertionError(f"no epoch {epoch} within {timeout}s")


def kill(process: subprocess.Popen) -> None:
    """SIGKILL a process started by ``start`` and everything it started."""
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()


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
        if Path(name).name == "dvc.lock":  # a developer's own run, never part of the template
            continue
        source = REPO / name
        if source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    run(["git", "init", "-q"], dest)
    run(["git", "add", "-A"], dest)
    run(["git", "commit", "-qm", "kerapipe project"], dest)
    return dest


def stages_run(output: str) -> set[str]:
    """The DVC stages a `dvc repro`/`dvc exp run` output says it ran."""
    return {line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage")}


def train_project(root: Path, params: dict, predict: bool = False) -> Path:
    """Write ``params`` to ``root/params.yaml`` and run the inventory and the training there
    (and the prediction, with ``predict``), in this process (the paths in ``params`` are
    read from ``root``)."""
    import yaml

    from kerapipe.checks import load_checked_params
    from kerapipe.steps.inventory import run_inventory
    from kerapipe.steps.predict import run_prediction
    from kerapipe.steps.train import run_training

    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    cwd = os.getcwd()
    os.chdir(root)
    try:
        checked = load_checked_params("params.yaml")
        run_inventory(context(checked))
        run_training(context(checked))
        if predict:
            run_prediction(context(checked))
    finally:
        os.chdir(cwd)
    return root


def context(params):
    """The run context of ``params`` (validated Params, or a params file's path), as a stage
    builds it: every check run first."""
    from kerapipe.config import Params, load_params
    from kerapipe.context import RunContext

    return RunContext.from_params(params if isinstance(params, Params) else load_params(params))
