"""Nothing lost, nothing silently wrong: a failing `kerapipe train` changes nothing on disk,
stale artifacts are refused with what changed, checkpoints follow their settings whitelist,
one writer per model folder, and a damaged or full disk ends in one clear message."""

from __future__ import annotations

import hashlib
import json
import os
import resource
import shutil
import signal
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import yaml

from kerapipe.checks import load_checked_params
from kerapipe.locks import exclusive
from kerapipe.sample_data import write_digits
from kerapipe.steps.train import run_training
from tests.helpers import (
    BIN,
    REPO,
    context,
    kerapipe,
    kerapipe_here,
    kill,
    start,
    tool_env,
    train_project,
)

RUN = Path("models") / "digits_cnn"


@pytest.fixture(scope="module")
def trained_once(tmp_path_factory) -> Path:
    """A project folder (params, inventory, a 2-epoch model with checkpoints and DVCLive
    logs) made once per module; tests work on copies of it."""
    root = tmp_path_factory.mktemp("trained")
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["DATA"].update(
        INVENTORY_DATA_DIR=str(write_digits(root / "digits") / "train"),
        PREDICTION_DATA_DIR=str(root / "digits" / "unlabelled"),
        PREDICTION_LABELS=str(root / "digits" / "unlabelled_labels.csv"),
    )
    params["TRAINING"]["NUM_EPOCHS"] = 2
    return train_project(root, params)


@pytest.fixture
def project(trained_once, tmp_path) -> Path:
    """A copy of the trained project, as the working directory."""
    for name in ("params.yaml", "data", "models", "dvclive"):
        source = trained_once / name
        if source.is_dir():
            shutil.copytree(source, tmp_path / name, symlinks=True)
        elif source.exists():
            shutil.copy2(source, tmp_path / name)
    return tmp_path


def edit(project: Path, changes: dict) -> dict:
    """Apply dotted-key ``changes`` to the project's params.yaml; return the params."""
    params = yaml.safe_load((project / "params.yaml").read_text())
    for dotted, value in changes.items():
        *keys, last = dotted.split(".")
        target = params
        for key in keys:
            target = target[key]
        target[last] = value
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return params


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` with a hash of its bytes (the lock file aside)."""
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file() and path.name != ".kerapipe.lock"
    }


def one_clear_error(result: subprocess.CompletedProcess, *expected: str) -> None:
    assert result.returncode == 1, result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    for text in expected:
        assert text in result.stderr, result.stderr[-3000:]


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"MODEL.OPTIMIZER_PARAMS": {"beta_11": 0.9}}, "Did you mean 'beta_1'?"),
        (
            {"TRAINING.CALLBACKS": [{"CALLBACK_NAME": "early_stopping",
                                     "CALLBACK_PARAMS": {"patience": "2"}}]},
            "must be a number",
        ),
        ({"MODEL.MODEL_PARAMS.INITIAL_WEIGHTS": "nowhere.weights.h5"}, "not found"),
    ],
    ids=["component-argument", "argument-type", "missing-weights"],
)  # fmt: skip
def test_a_failing_train_changes_nothing_on_disk(project, changes, expected):
    before = snapshot(project)
    edit(project, {**changes, "TRAINING.LOAD_CHECKPOINT": True, "TRAINING.FORCE": True})
    one_clear_error(kerapipe_here(project, "train"), expected)
    after = snapshot(project)
    del before["params.yaml"], after["params.yaml"]
    assert after == before


def test_weights_that_do_not_fit_leave_the_checkpoints(project, tmp_path):
    """INITIAL_WEIGHTS of another architecture fail when loaded, after the checks: still
    nothing is touched."""
    other = tmp_path / "other.weights.h5"
    import keras

    keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)]).save_weights(other)
    before = snapshot(project / "models")
    edit(project, {"MODEL.MODEL_PARAMS.INITIAL_WEIGHTS": str(other), "TRAINING.FORCE": True})
    one_clear_error(kerapipe_here(project, "train"), "INITIAL_WEIGHTS", "does not match")
    assert snapshot(project / "models") == before


def test_a_changed_class_list_is_not_predicted_with_the_old_model(project):
    params = yaml.safe_load((project / "params.yaml").read_text())
    names = params["PIPELINE"]["TASK_PARAMS"]["CLASS_NAMES"]
    names[0], names[1] = names[1], names[0]
    edit(project, {"PIPELINE.TASK_PARAMS.CLASS_NAMES": names})
    inventory_before = snapshot(project / "data" / "inventory")

    result = kerapipe_here(project, "predict")
    one_clear_error(result, "trained for other classes", "PIPELINE.TASK_PARAMS.CLASS_NAMES")
    assert not (project / "predictions").exists()

    result = kerapipe_here(project, "train")
    one_clear_error(result, "inventory", "made with other settings", "INVENTORY.FORCE: true")
    result = kerapipe_here(project, "inventory")
    one_clear_error(result, "made with other settings", "CLASS_NAMES")
    assert snapshot(project / "data" / "inventory") == inventory_before


def test_a_changed_input_shape_is_refused_by_train_and_predict(project):
    edit(project, {"MODEL.MODEL_PARAMS.INPUT_SHAPE": [20, 20, 1]})
    predicted, trained = (kerapipe_here(project, command) for command in ("predict", "train"))
    one_clear_error(predicted, "MODEL.MODEL_PARAMS.INPUT_SHAPE: [16, 16, 1]")
    one_clear_error(trained, "trained with other settings", "TRAINING.FORCE")


def test_settings_that_do_not_shape_the_model_keep_it(project, caplog):
    edit(project, {"TRAINING.CACHE": "memory", "TRAINING.NUM_PARALLEL_CALLS": 2})
    caplog.set_level("INFO")
    result = run_training(context(load_checked_params(project / "params.yaml")))
    assert result.skipped and "Keeping the existing model" in caplog.text


def test_checkpoints_survive_changes_outside_the_whitelist(project, caplog):
    """An output format, a FORCE flag and a cache setting do not discard checkpoints."""
    edit(
        project,
        {
            "DATA.TRAINING_MODEL_FORMAT": "h5",
            "TRAINING.FORCE": True,
            "TRAINING.CACHE": "memory",
            "TRAINING.NUM_EPOCHS": 3,
            "TRAINING.LOAD_CHECKPOINT": True,
        },
    )
    caplog.set_level("INFO")
    result = run_training(context(load_checked_params(project / "params.yaml")))
    assert result.initial_epoch == 2, caplog.text
    assert (project / RUN / "model.h5").is_file()


def test_checkpoints_of_other_settings_are_set_aside_until_the_new_run_has_its_own(project):
    checkpoints = project / RUN / "checkpoints"
    before = snapshot(checkpoints)
    edit(project, {"TRAINING.BATCH_SIZE": 64, "TRAINING.LOAD_CHECKPOINT": True,
                   "TRAINING.FORCE": True, "TRAINING.NUM_EPOCHS": 30})  # fmt: skip
    process = start([str(BIN / "kerapipe"), "train"], project)
    set_aside = checkpoints.with_name(".checkpoints.set-aside")
    try:
        _wait_for(lambda: set_aside.is_dir(), process)
    finally:
        kill(process)  # killed before its first epoch is recorded
    assert not (checkpoints / "state.json").exists()
    # The next run (with the old settings) finds the old checkpoints back in place.
    edit(project, {"TRAINING.BATCH_SIZE": 32, "TRAINING.NUM_EPOCHS": 2})
    result = run_training(context(load_checked_params(project / "params.yaml")))
    assert result.initial_epoch == 2 and not set_aside.exists()
    assert snapshot(checkpoints) == before

    edit(project, {"TRAINING.BATCH_SIZE": 64, "TRAINING.NUM_EPOCHS": 1})
    result = run_training(context(load_checked_params(project / "params.yaml")))
    assert result.initial_epoch == 0 and not set_aside.exists()
    assert json.loads((checkpoints / "state.json").read_text())["epoch"] == 1


def _wait_for(condition, process, timeout=120.0):
    import time

    deadline = time.monotonic() + timeout
    while not condition():
        assert process.poll() is None, process.stdout.read()[-3000:]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_a_second_writer_fails_at_once_naming_the_holder(project):
    edit(project, {"TRAINING.FORCE": True})
    before = snapshot(project / "models")
    with exclusive(project / RUN, "test"):
        result = kerapipe(project, "train")
    one_clear_error(result, f"is in use by another kerapipe train (pid {os.getpid()} on")
    assert snapshot(project / "models") == before


def test_a_corrupt_state_file_starts_fresh_with_a_warning(project):
    (project / RUN / "checkpoints" / "state.json").write_text('{"epoch": 2, "la')
    edit(project, {"TRAINING.LOAD_CHECKPOINT": True, "TRAINING.FORCE": True,
                   "TRAINING.NUM_EPOCHS": 1})  # fmt: skip
    result = kerapipe_here(project, "train")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "state.json cannot be read" in result.stderr and "starting fresh" in result.stderr


def test_a_truncated_checkpoint_falls_back_to_the_last_one_that_loads(project):
    for name in ("epoch_0002.keras", "best_0002.keras"):  # the two files of the last epoch
        damaged = project / RUN / "checkpoints" / name
        damaged.write_bytes(damaged.read_bytes()[:1000])
    edit(project, {"TRAINING.LOAD_CHECKPOINT": True, "TRAINING.FORCE": True,
                   "TRAINING.NUM_EPOCHS": 3})  # fmt: skip
    result = kerapipe_here(project, "train")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "epoch_0002.keras does not load" in result.stderr
    assert "resuming after epoch 1 from epoch_0001.keras" in result.stderr
    log = pd.read_csv(project / RUN / "training_log.csv")
    assert list(log.epoch) == [0, 1, 2]


def _file_size_limit(limit: int):
    def apply():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past it fails with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def test_a_full_disk_while_checkpointing_leaves_no_partial_file(project):
    """A file-size limit below one checkpoint's size stands in for a full disk: the write
    fails with EFBIG as it would with ENOSPC."""
    before = snapshot(project / "models")
    edit(project, {"TRAINING.FORCE": True, "TRAINING.SEED": 7})
    size = (project / RUN / "checkpoints" / "epoch_0002.keras").stat().st_size
    result = kerapipe(project, "train", preexec_fn=_file_size_limit(size // 2))
    one_clear_error(result, "cannot finish writing the checkpoints", "Free some space")
    assert snapshot(project / "models") == before  # the earlier run's files, all of them


def test_components_listing_into_a_closed_pipe(tmp_path):
    result = subprocess.run(
        f"{BIN / 'kerapipe'} components | head -1",
        shell=True,
        cwd=tmp_path,
        env=tool_env(),
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0 and result.stdout == "models:\n"
    assert result.stderr == "", result.stderr
