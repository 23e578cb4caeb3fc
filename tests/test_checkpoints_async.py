"""Checkpoints written off the training thread keep every guarantee of the synchronous ones:
each file holds the model as it was at its epoch's end, state.json names only files that are
complete, a SIGKILL while the background writer is mid-file resumes cleanly, and a full disk
met by the writer stops the run with the one clear error, the last recorded epoch intact."""

from __future__ import annotations

import json
import logging
import sys
import textwrap
import time

import keras
import numpy as np
import pandas as pd
import pytest

from kerapipe.steps.inventory import run_inventory
from kerapipe.steps.train import run_training
from tests.helpers import BIN, context, kill, run, start

pytestmark = pytest.mark.e2e


def variables(model: keras.Model) -> list[np.ndarray]:
    return [np.asarray(v) for v in [*model.weights, *model.optimizer.variables]]


def test_background_checkpoints_hold_the_model_of_their_epoch(make_params, tmp_path, caplog):
    _, path = make_params({"TRAINING.NUM_EPOCHS": 3})
    run_inventory(context(path))
    caplog.set_level(logging.DEBUG, logger="kerapipe.training.epoch_writer")
    run_training(context(path))
    assert "written in the background" in caplog.text  # not the training-thread fallback
    run_dir = tmp_path / "models" / "digits_cnn"
    folder = run_dir / "checkpoints"
    state = json.loads((folder / "state.json").read_text())
    assert state["epoch"] == 3 and state["last"] == "epoch_0003.keras"
    assert sorted(p.name for p in folder.glob("*.keras")) == sorted(
        {"epoch_0002.keras", "epoch_0003.keras", state["best"]}
    )
    assert not list(folder.glob(".*"))  # no temporary file left
    # epoch 3 was saved from the writer's copy of the model; model.keras from the model
    # itself, on the training thread, after the same last epoch: the same variables.
    written = keras.saving.load_model(folder / "epoch_0003.keras")
    final = keras.saving.load_model(run_dir / "model.keras")
    assert int(written.optimizer.iterations) == 3 * 41
    for ours, theirs in zip(variables(written), variables(final), strict=True):
        np.testing.assert_array_equal(ours, theirs)
    # The best file is the very model of its epoch (a link to it, or a copy).
    best_epoch = folder / f"epoch_{int(state['best'][5:9]):04d}.keras"
    if best_epoch.exists():
        assert (folder / state["best"]).read_bytes() == best_epoch.read_bytes()
    log = pd.read_csv(run_dir / "training_log.csv")
    assert state["best_value"] == pytest.approx(log.val_loss.min())


def wait_for_temporary(folder, process, after_epoch: int, timeout: float = 300.0) -> int:
    """Block until the writer is mid-file (a temporary checkpoint in ``folder``) after
    ``after_epoch`` epochs are recorded; return the epoch state.json records then."""
    deadline = time.monotonic() + timeout
    state = folder / "state.json"
    while time.monotonic() < deadline:
        assert process.poll() is None, "training ended before the writer was caught mid-file"
        try:
            recorded = json.loads(state.read_text())["epoch"] if state.is_file() else 0
        except (ValueError, OSError):
            recorded = 0
        if recorded >= after_epoch and any(folder.glob(".epoch_*.tmp.keras")):
            return recorded
        time.sleep(0.002)
    raise AssertionError("the writer was never seen mid-file")


def test_sigkill_while_the_writer_is_mid_file_then_resume(make_params, tmp_path):
    epochs = 8
    _, path = make_params({"TRAINING.NUM_EPOCHS": epochs})
    run_inventory(context(path))
    run_dir = tmp_path / "models" / "digits_cnn"
    folder = run_dir / "checkpoints"
    command = [str(BIN / "kerapipe"), "train", "--params", str(path)]

    process = start(command, tmp_path)
    wait_for_temporary(folder, process, after_epoch=1)  # epoch 2 on: the background writer
    kill(process)
    state = json.loads((folder / "state.json").read_text())
    for name in {state["last"], state["best"]}:  # every file it names is complete
        keras.saving.load_model(folder / name)
    left = list(folder.glob(".*.tmp*"))  # the unfinished file (unless renamed just before)

    _, path = make_params({"TRAINING.NUM_EPOCHS": epochs, "TRAINING.LOAD_CHECKPOINT": True})
    result = run(command, tmp_path)
    assert f"resuming after epoch {state['epoch']} from {state['last']}" in result.stderr
    assert not any(path.exists() for path in left)  # the killed run's unfinished file
    log = pd.read_csv(run_dir / "training_log.csv")
    assert list(log.epoch) == list(range(epochs))
    final = keras.saving.load_model(run_dir / "model.keras")
    assert int(final.optimizer.iterations) == epochs * 41


FILL_THE_DISK = """
import resource, signal, sys
import keras
from kerapipe.cli import main
from kerapipe.registry import register_callback

@register_callback("fill_the_disk")
class FillTheDisk(keras.callbacks.Callback):
    '''After the first epoch, files may grow to ``limit`` bytes only (a full disk).'''

    def __init__(self, limit):
        super().__init__()
        self.limit = limit

    def on_epoch_end(self, epoch, logs=None):
        if epoch == 0:  # after the first checkpoint, saved on the training thread
            resource.setrlimit(resource.RLIMIT_FSIZE, (self.limit, self.limit))

signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
sys.exit(main(sys.argv[1:]))
"""


def test_a_full_disk_met_by_the_writer_stops_the_run_with_one_clear_error(make_params, tmp_path):
    _, path = make_params({"TRAINING.NUM_EPOCHS": 1})
    run_inventory(context(path))
    run_training(context(path))
    folder = tmp_path / "models" / "digits_cnn" / "checkpoints"
    size = (folder / "epoch_0001.keras").stat().st_size
    callback = {"CALLBACK_NAME": "fill_the_disk", "CALLBACK_PARAMS": {"limit": size // 2}}
    _, path = make_params(
        {"TRAINING.NUM_EPOCHS": 4, "TRAINING.FORCE": True, "TRAINING.CALLBACKS": [callback]}
    )
    script = tmp_path / "fill_the_disk.py"
    script.write_text(textwrap.dedent(FILL_THE_DISK))
    result = run([sys.executable, str(script), "train", "--params", str(path)], tmp_path, False)
    assert result.returncode == 1, result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    assert "cannot finish writing the checkpoints" in result.stderr
    assert "Free some space" in result.stderr
    state = json.loads((folder / "state.json").read_text())
    assert state["epoch"] == 1  # the epoch recorded before the disk filled
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        {"epoch_0001.keras", state["best"], "state.json", "training_log.csv"}
    )  # no partial file, and the earlier run's checkpoints were dropped once epoch 1 was in
